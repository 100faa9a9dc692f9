"""Access tokens: short-lived ES256 JWTs signed by a key in the key store, and the JWKS publishing it."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass

import jwt
from jwt.algorithms import ECAlgorithm

from eauth.errors import InsufficientScope, InvalidToken
from keys.base import Signer
from keys.jws import encode_es256, jwk_thumbprint

TOKEN_KEY_LABEL = "api-token"
AUDIENCE = "eauth-api"
_MEMO_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class AccessToken:
    """A verified token's meaning."""

    client_id: str
    agency_id: int
    scopes: frozenset[str]
    expires_at: int

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            raise InsufficientScope(f"this operation needs the scope {scope!r}", required=scope)


class TokenService:
    """Issues and verifies access tokens for agency clients."""

    def __init__(self, signer: Signer, *, issuer: str, ttl_seconds: int) -> None:
        self._signer = signer
        self.issuer = issuer
        self.ttl_seconds = ttl_seconds
        self.jwk = json.loads(ECAlgorithm.to_jwk(signer.public_key))
        self.kid = jwk_thumbprint(self.jwk)
        self.jwk |= {"kid": self.kid, "use": "sig", "alg": "ES256"}
        self._verified: dict[str, AccessToken] = {}

    def issue(self, *, client_id: str, agency_id: int, scopes: frozenset[str]) -> tuple[str, int]:
        """A token and its lifetime in seconds."""
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": client_id,
            "agency": agency_id,
            "scope": " ".join(sorted(scopes)),
            "iat": now,
            "exp": now + self.ttl_seconds,
            "jti": secrets.token_urlsafe(12),
        }
        payload = json.dumps(claims, separators=(",", ":")).encode()
        token = encode_es256(payload, self._signer, kid=self.kid, headers={"typ": "at+jwt"})
        return token, self.ttl_seconds

    def verify(self, token: str) -> AccessToken:
        """The token's meaning if it is ours, intact and unexpired; InvalidToken otherwise.

        A verified token is remembered by this process until it expires, sparing an ECDSA verification
        per request; the memo is an optimisation only (any process verifies any token from scratch).
        """
        known = self._verified.get(token)
        if known is not None and known.expires_at > time.time():
            return known
        verified = self._verify(token)
        if len(self._verified) >= _MEMO_SIZE:
            self._verified.clear()
        self._verified[token] = verified
        return verified

    def _verify(self, token: str) -> AccessToken:
        try:
            header = jwt.get_unverified_header(token)
            if header.get("kid") != self.kid or header.get("alg") != "ES256":
                raise InvalidToken("access token not signed by this platform's current key")
            claims = jwt.decode(
                token,
                self._signer.public_key,
                algorithms=["ES256"],
                audience=AUDIENCE,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "sub", "scope", "agency"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("access token expired") from None
        except jwt.InvalidTokenError as exc:
            raise InvalidToken(f"access token invalid: {exc}") from None
        if not (isinstance(claims["sub"], str) and isinstance(claims["scope"], str) and _integer(claims["agency"])
                and _integer(claims["exp"])):
            raise InvalidToken("access token invalid: sub and scope must be strings, agency and exp integers")
        return AccessToken(claims["sub"], claims["agency"], frozenset(claims["scope"].split()), claims["exp"])

    def jwks(self) -> dict:
        return {"keys": [self.jwk]}


def _integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
