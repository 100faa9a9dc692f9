"""The QR token printed on a license: a compact ES256 JWS that binds the printed copy to its data.

The QR carries ``{public base}/v/{token}``. A phone lands on the public verify page (online status);
an offline verifier checks the signature against the published key and compares the data digest.
The URL must fit a QR of version 12 at error correction M (287 bytes) so phones scan it from paper.

Wire format. Header ``{"alg":"ES256","kid":...}`` without ``typ``; keep the kid short
(``qr_key_id``: 8 characters). The payload is packed bytes, not JSON claims: a JSON payload with
the claims ``i`` (identifier), ``t`` (type code), ``s`` (issuer code), ``d``, ``e`` and ``h``
makes a ~400-character URL (QR version 15), and even JSON with only ``i``, ``d``, ``e``, ``h`` and
without the identifier's fixed prefix is ~305 (version 13). Packed, a realistic URL is ~265. The
claims keep their letters here:

====  ======  ==============================================================================
byte  claim   content
====  ======  ==============================================================================
0             format, 1
1-2   ``d``   issue date, days since 1970-01-01, unsigned big-endian (shorter than "YYYYMMDD")
3-4   ``e``   expiry date, the same; 0 for a long-term (长期) license
5-20  ``h``   the first 16 bytes of ``licenses.catalog.license_digest``
21-   ``i``   the identifier without its fixed ``1.2.156.3005.2.`` prefix, ASCII
====  ======  ==============================================================================

``t`` (type code) and ``s`` (issuer code) are segments of ``i`` and read from it
(``QrClaims.type_code``, ``QrClaims.issuer_code``) rather than carried twice.

Errors, all ``InvalidQrToken`` (code ``invalid_qr_token``) subclasses with their own stable codes:
``qr_token_malformed`` (not a compact JWS, an algorithm other than ES256 such as ``none`` or HS256,
a header other than alg and kid, a payload not in the format above; extra ``reason``),
``qr_token_unknown_key`` (a kid that is neither ours nor an imported platform's; extra ``kid``),
``qr_token_bad_signature`` (altered or forged; extra ``kid``).
"""

from __future__ import annotations

import hmac
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from jwt.algorithms import ECAlgorithm

from eauth.errors import InvalidLicenseIdentifier, QrTokenBadSignature, QrTokenMalformed, QrTokenUnknownKey
from keys.base import Signer
from keys.jws import encode_es256, jwk_thumbprint
from licenses.identifiers import PREFIX, LicenseIdentifier

FORMAT = 1
DIGEST_PREFIX_LENGTH = 16
VERIFY_PATH = "/v/"
_EPOCH = date(1970, 1, 1)
_LAST_DAY = _EPOCH + timedelta(days=0xFFFF)  # 2149-06-06, the last date two bytes hold
_PACKED = struct.Struct(f">BHH{DIGEST_PREFIX_LENGTH}s")
_KID = re.compile(r"[A-Za-z0-9_-]{1,16}")
_VERIFYING_JWS = jwt.PyJWS(algorithms=["ES256"])


@dataclass(frozen=True, slots=True, kw_only=True)
class QrClaims:
    """What a license QR token asserts."""

    identifier: LicenseIdentifier  # i
    issued_on: date  # d
    expires_on: date | None  # e; None for a long-term (长期) license
    digest_prefix: bytes  # h: the first 16 bytes of the license data digest

    def __post_init__(self) -> None:
        if not _EPOCH <= self.issued_on <= _LAST_DAY:
            raise ValueError(f"issue date {self.issued_on} is outside {_EPOCH}..{_LAST_DAY}")
        if self.expires_on is not None and not self.issued_on <= self.expires_on <= _LAST_DAY:
            raise ValueError(f"expiry date {self.expires_on} is outside {self.issued_on}..{_LAST_DAY}")
        if len(self.digest_prefix) != DIGEST_PREFIX_LENGTH:
            raise ValueError(f"digest prefix must be {DIGEST_PREFIX_LENGTH} bytes, got {len(self.digest_prefix)}")

    @property
    def type_code(self) -> str:  # t
        return self.identifier.type_code

    @property
    def issuer_code(self) -> str:  # s
        return self.identifier.issuer_code

    def binds(self, digest: bytes) -> bool:
        """Whether ``digest`` (``license_digest`` of the license data) is the one this token was made for."""
        return hmac.compare_digest(self.digest_prefix, digest[:DIGEST_PREFIX_LENGTH])


def qr_key_id(public_key: EllipticCurvePublicKey) -> str:
    """A short kid for a QR signing key: the first 8 characters of its RFC 7638 thumbprint (48 bits)."""
    return jwk_thumbprint(ECAlgorithm.to_jwk(public_key, as_dict=True))[:8]


class QrTokenSigner:
    """Signs QR tokens with one key of the key store (which may be an HSM)."""

    def __init__(self, signer: Signer, kid: str) -> None:
        if not _KID.fullmatch(kid):
            raise ValueError(f"QR token kid {kid!r} must be 1-16 base64url characters: every license prints it")
        self._signer = signer
        self.kid = kid

    def sign(self, claims: QrClaims) -> str:
        """The compact JWS for ``claims``."""
        return encode_es256(_pack(claims), self._signer, kid=self.kid, headers={"typ": None})


def verify_qr_token(token: str, keys: Mapping[str, EllipticCurvePublicKey]) -> QrClaims:
    """The claims of ``token`` if one of ``keys`` (P-256 public keys by kid) signed it; offline, no status."""
    try:
        header = _VERIFYING_JWS.get_unverified_header(token)
    except jwt.InvalidTokenError as exc:
        raise QrTokenMalformed(f"not a compact JWS: {exc}", reason="encoding") from None
    if header.get("alg") != "ES256":
        alg = header.get("alg")
        raise QrTokenMalformed(f"algorithm {alg!r} refused: license QR tokens are ES256", reason="algorithm")
    if set(header) != {"alg", "kid"}:
        members = ", ".join(sorted(header))
        raise QrTokenMalformed(f"the header must hold exactly alg and kid, not {members}", reason="header")
    kid = header["kid"]
    key = keys.get(kid)
    if key is None:
        raise QrTokenUnknownKey(
            f"signed with key {kid!r}, which is neither this platform's nor an imported platform's", kid=kid
        )
    try:
        payload = _VERIFYING_JWS.decode(token, key, algorithms=["ES256"])
    except jwt.InvalidSignatureError:
        detail = f"the signature does not verify with key {kid!r}: altered or forged"
        raise QrTokenBadSignature(detail, kid=kid) from None
    except jwt.InvalidTokenError as exc:
        raise QrTokenMalformed(f"not a compact JWS: {exc}", reason="encoding") from None
    return _unpack(payload)


def qr_url(base: str, token: str) -> str:
    """The URL the QR code carries: the public verify page for ``token``."""
    return f"{base.rstrip('/')}{VERIFY_PATH}{token}"


def _pack(claims: QrClaims) -> bytes:
    expires = 0 if claims.expires_on is None else (claims.expires_on - _EPOCH).days
    tail = claims.identifier.text.removeprefix(PREFIX + ".")
    return _PACKED.pack(FORMAT, (claims.issued_on - _EPOCH).days, expires, claims.digest_prefix) + tail.encode("ascii")


def _unpack(payload: bytes) -> QrClaims:
    if len(payload) <= _PACKED.size or payload[0] != FORMAT:
        raise QrTokenMalformed(f"payload is not a format {FORMAT} license QR token", reason="payload")
    _, issued, expires, digest_prefix = _PACKED.unpack_from(payload)
    try:
        identifier = LicenseIdentifier.parse(f"{PREFIX}.{payload[_PACKED.size:].decode('ascii')}")
        return QrClaims(
            identifier=identifier,
            issued_on=_EPOCH + timedelta(days=issued),
            expires_on=None if expires == 0 else _EPOCH + timedelta(days=expires),
            digest_prefix=digest_prefix,
        )
    except (ValueError, InvalidLicenseIdentifier) as exc:
        raise QrTokenMalformed(f"payload is not a valid license QR token: {exc}", reason="payload") from None
