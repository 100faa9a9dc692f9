"""pyHanko's ``TimeStamper`` over our own TSA, in process: no HTTP, no network, same tokens.

    timestamper = InProcessTimeStamper(platform.timestamp_authority())
    PdfTimeStamper(timestamper) / PdfSignatureMetadata(...) with timestamper=timestamper

A token is asked of the authority directly (``token``), without the TimeStampReq and TimeStampResp that
pyHanko would build, encode, parse and check per token over HTTP (~1 ms of asn1crypto each, for
nothing in process). A digest the TSA does not accept is refused as pyHanko's TimestampRequestError,
as a ``badAlg`` rejection would be over HTTP.
"""

from __future__ import annotations

from asn1crypto import algos, cms
from pyhanko.sign.timestamps import TimeStamper, TimestampRequestError

from signing.tsa import TimeStampAuthority


class InProcessTimeStamper(TimeStamper):
    """A pyHanko timestamper that asks ``authority`` directly."""

    def __init__(self, authority: TimeStampAuthority) -> None:
        super().__init__(include_nonce=False)
        self.authority = authority

    def token(self, message_digest: bytes, md_algorithm: str) -> bytes:
        """The DER token over ``message_digest`` (made with ``md_algorithm``, a pyHanko digest name)."""
        try:
            return self.authority.token_for(message_digest, algos.DigestAlgorithmId(md_algorithm.lower()).dotted)
        except ValueError:
            raise TimestampRequestError(
                f"the time-stamping authority refuses {md_algorithm} (bad_alg): use SHA-256, SHA-384 or SHA-512"
            ) from None

    async def async_timestamp(self, message_digest, md_algorithm) -> cms.ContentInfo:
        return cms.ContentInfo.load(self.token(message_digest, md_algorithm))
