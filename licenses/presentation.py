"""License presentation (亮证): a short-lived token by which a holder discloses the fields of a
license they choose, and nothing else.

A compact ES256 JWS, header ``{"alg":"ES256","kid":...,"typ":"lp+jwt"}``, JSON payload::

    {"iss": platform base URL, "lid": license identifier, "lt": type code, "ls": issuer code,
     "f": {chosen field: value}, "iat": ..., "exp": ..., "jti": ...}

It is signed with the license QR key (``qr-token``): relying parties and offline verifiers already
hold that key (JWKS, trust bundles), so a presentation checks offline like a printed QR. The two
cannot be taken for one another: a QR token has no ``typ`` and a packed (non-JSON) payload, and the
QR verifier refuses any header but alg and kid; this module requires ``typ`` ``lp+jwt``.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey

from eauth.errors import InvalidPresentation, PresentationExpired
from keys.base import Signer
from keys.jws import encode_es256

TYPE = "lp+jwt"
MAX_TTL_MINUTES = 10
_VERIFYING_JWS = jwt.PyJWS(algorithms=["ES256"])


@dataclass(frozen=True, slots=True, kw_only=True)
class PresentationClaims:
    """What a presentation discloses."""

    issuer: str
    identifier: str
    type_code: str
    issuer_code: str
    fields: Mapping[str, str]
    issued_at: int
    expires_at: int
    token_id: str = field(default_factory=lambda: secrets.token_urlsafe(9))

    def to_json(self) -> bytes:
        return json.dumps({"iss": self.issuer, "lid": self.identifier, "lt": self.type_code, "ls": self.issuer_code,
                           "f": dict(self.fields), "iat": self.issued_at, "exp": self.expires_at,
                           "jti": self.token_id}, ensure_ascii=False, separators=(",", ":")).encode()


def choose_fields(values: Mapping[str, str], chosen: list[str]) -> dict[str, str]:
    """The chosen fields' values, in the order chosen; InvalidPresentation for an unknown name."""
    unknown = [name for name in chosen if name not in values]
    if unknown:
        raise InvalidPresentation(f"the license has no field {unknown[0]!r}; it has: {', '.join(values)}",
                                  field="fields", reason="unknown_field")
    return {name: values[name] for name in dict.fromkeys(chosen)}


def sign_presentation(claims: PresentationClaims, signer: Signer, *, kid: str) -> str:
    return encode_es256(claims.to_json(), signer, kid=kid, headers={"typ": TYPE})


def verify_presentation(token: str, keys: Mapping[str, EllipticCurvePublicKey], *, now: float) -> PresentationClaims:
    """The claims of a genuine presentation unexpired at ``now``; InvalidPresentation (``reason``
    malformed, unknown_key or bad_signature) or PresentationExpired otherwise."""
    try:
        header = _VERIFYING_JWS.get_unverified_header(token)
    except jwt.InvalidTokenError as exc:
        raise InvalidPresentation(f"not a presentation token: {exc}", reason="malformed") from None
    if header.get("alg") != "ES256" or header.get("typ") != TYPE:
        raise InvalidPresentation(f"not a presentation token (header must be ES256, typ {TYPE})", reason="malformed")
    key = keys.get(header.get("kid")) if isinstance(header.get("kid"), str) else None
    if key is None:
        raise InvalidPresentation("presentation signed with a key this platform does not know", reason="unknown_key")
    try:
        payload = json.loads(_VERIFYING_JWS.decode(token, key, algorithms=["ES256"]))
    except jwt.InvalidSignatureError:
        raise InvalidPresentation("presentation signature does not verify (altered or forged)",
                                  reason="bad_signature") from None
    except (jwt.InvalidTokenError, ValueError) as exc:
        raise InvalidPresentation(f"presentation token invalid: {exc}", reason="malformed") from None
    try:
        claims = PresentationClaims(
            issuer=_text(payload["iss"]), identifier=_text(payload["lid"]), type_code=_text(payload["lt"]),
            issuer_code=_text(payload["ls"]), fields={_text(k): _text(v) for k, v in payload["f"].items()},
            issued_at=_integer(payload["iat"]), expires_at=_integer(payload["exp"]), token_id=_text(payload["jti"]))
    except (KeyError, TypeError, AttributeError, ValueError):
        raise InvalidPresentation("presentation payload lacks or mistypes a claim", reason="malformed") from None
    if claims.expires_at <= now:
        raise PresentationExpired("the presentation has expired: ask the holder to show a new one", reason="expired",
                                  identifier=claims.identifier)
    return claims


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("not a string")
    return value


def _integer(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("not an integer")
    return value
