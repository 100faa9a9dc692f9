"""pyHanko's ``TimeStamper`` over our own TSA, in process: no HTTP, no network, same tokens.

    timestamper = InProcessTimeStamper(platform.timestamp_authority())
    PdfTimeStamper(timestamper) / PdfSignatureMetadata(...) with timestamper=timestamper

pyHanko builds the TimeStampReq (with certReq, so the token carries the TSA's certificates for its
validation paths, and a nonce that it checks), and checks the response's status and nonce itself.
"""

from __future__ import annotations

from asn1crypto import tsp
from pyhanko.sign.timestamps import TimeStamper

from signing.tsa import TimeStampAuthority, TimeStampResp


class InProcessTimeStamper(TimeStamper):
    """A pyHanko timestamper that asks ``authority`` directly."""

    def __init__(self, authority: TimeStampAuthority, *, include_nonce: bool = True) -> None:
        super().__init__(include_nonce=include_nonce)
        self.authority = authority

    async def async_request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        # Our TimeStampResp parses a rejection too (asn1crypto's wants a token in every response), so
        # pyHanko reports a refusal as its TimestampRequestError with our status text and failInfo.
        return TimeStampResp.load(self.authority.respond_to(req))
