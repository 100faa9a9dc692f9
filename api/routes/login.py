"""Certificate login (single sign-on): a challenge, the login with a certificate and a signature over
it, the OpenID-style discovery document, and the verification of login tokens by relying systems
(scope ``verify``). See docs/login.md."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from api.deps import platform, scoped
from api.holder import PLATFORM_AUDIENCE
from api.login import login_service
from api.platform import Platform
from api.recording import record_login
from api.tokens import AccessToken
from eauth.errors import InvalidLoginToken
from verify.certificate import MAX_CHAIN
from verify.login import CONTEXT

CHALLENGE_PATH = "/api/v1/auth/challenge"
LOGIN_PATH = "/api/v1/auth/login"
VERIFY_PATH = "/api/v1/verify/login-token"

router = APIRouter(tags=["login"])
Audience = Annotated[str, Field(min_length=1, max_length=100, examples=[PLATFORM_AUDIENCE],
                                description="The relying service the login is for (the token's aud); "
                                            f"{PLATFORM_AUDIENCE!r} for this platform's own /api/v1/me.")]


class ChallengeRequest(BaseModel):
    audience: Audience


class ChallengeView(BaseModel):
    nonce: str
    audience: str
    issuer: str
    expires_at: datetime
    to_be_signed: str = Field(description="Exactly the UTF-8 text to sign (lines joined by \\n, no trailing newline).")


class LoginRequest(BaseModel):
    certificate: str = Field(max_length=100_000, description="The holder's certificate: PEM, or base64 of its DER.")
    chain: list[Annotated[str, Field(max_length=100_000)]] = Field(
        default_factory=list, max_length=MAX_CHAIN, description="Optional intermediate certificates.")
    nonce: str = Field(min_length=1, max_length=64)
    audience: Audience | None = Field(None, description="The challenge's audience (checked when given).")
    signature: str = Field(min_length=1, max_length=2048,
                           description="base64 signature of to_be_signed: ECDSA SHA-256 (DER or r||s) or RSA "
                                       "PKCS#1 v1.5 SHA-256, by the certificate's key.")


class LoginView(BaseModel):
    token: str = Field(description="The login token: a JWT (ES256), verifiable with /.well-known/jwks.json.")
    token_type: str = "Bearer"
    expires_in: int
    subject: str = Field(description="The pseudonymous subject id (the token's sub).")
    audience: str
    name: str


class TokenRequest(BaseModel):
    token: str = Field(min_length=1, max_length=4096)
    audience: Audience


class LoginTokenReport(BaseModel):
    valid: bool
    detail: str
    error_code: str | None = Field(None, description="invalid_login_token or login_token_expired when not valid.")
    reason: str | None = Field(None, description="malformed, unknown_key, bad_signature, wrong_audience, "
                                                 "wrong_issuer or expired when not valid.")
    issuer: str | None = None
    platform: str | None = None
    subject: str | None = None
    audience: str | None = None
    id_kind: str | None = None
    certificate_serial: str | None = None
    issued_at: datetime | None = None
    expires_at: datetime | None = None
    token_id: str | None = None


def _time(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


@router.post(CHALLENGE_PATH, response_model=ChallengeView, summary="A login challenge (single-use nonce)")
async def challenge(body: ChallengeRequest, p: Annotated[Platform, Depends(platform)]) -> ChallengeView:
    """A nonce, valid for ``login_challenge_ttl_seconds`` (2 min by default) and one login, for
    ``audience``. Sign ``to_be_signed`` with the certificate's key and POST it to /api/v1/auth/login."""
    service = login_service(p)
    made = service.challenge(body.audience)
    return ChallengeView(nonce=made.nonce, audience=made.audience, issuer=service.issuer,
                         expires_at=made.expires_at, to_be_signed=service.message(made).decode())


@router.post(LOGIN_PATH, response_model=LoginView, summary="Log in with a certificate")
def login(body: LoginRequest, p: Annotated[Platform, Depends(platform)]) -> LoginView:
    """Checks the certificate (chain to a trust anchor, good now, citizen or enterprise with
    digitalSignature and clientAuth, issued by this platform), consumes the nonce (single use, same
    audience) and checks the signature; returns a login token for the challenge's audience.
    401 ``challenge_invalid``, ``login_certificate_refused`` (extra ``reason``), ``login_signature_invalid``."""
    done = login_service(p).login(certificate=body.certificate, chain=body.chain, nonce=body.nonce, audience=body.audience,
                         signature=body.signature)
    return LoginView(token=done.token, expires_in=done.claims.expires_at - done.claims.issued_at,
                     subject=done.claims.subject, audience=done.claims.audience, name=done.holder_name)


@router.post(VERIFY_PATH, response_model=LoginTokenReport, summary="Verify a login token", tags=["verification"])
async def verify_login_token(
    body: TokenRequest,
    p: Annotated[Platform, Depends(platform)],
    caller: Annotated[AccessToken, Depends(scoped("verify"))],
) -> LoginTokenReport:
    """Whether ``token`` is a genuine, unexpired login token for ``audience`` of this platform or of a
    platform it trusts (mutual recognition; ``platform`` names which), and what it says. 200 with ``valid: false`` and the reason for a token that is not."""
    try:
        claims = login_service(p).verify(body.token, audience=body.audience)
    except InvalidLoginToken as exc:
        report = LoginTokenReport(valid=False, detail=exc.detail, error_code=exc.code, reason=exc.extra.get("reason"))
        await record_login(p, caller, subject=None, result=exc.extra.get("reason") or exc.code)
        return report
    await record_login(p, caller, subject=claims.subject, result="valid")
    return LoginTokenReport(
        valid=True, detail=f"a login token of {claims.platform} for {claims.audience}", issuer=claims.issuer,
        platform=claims.platform, subject=claims.subject, audience=claims.audience, id_kind=claims.id_kind,
        certificate_serial=claims.certificate_serial, issued_at=_time(claims.issued_at),
        expires_at=_time(claims.expires_at), token_id=claims.token_id,
    )


@router.get("/.well-known/openid-configuration", summary="Discovery: issuer, keys, login endpoints", tags=["public"])
async def openid_configuration(p: Annotated[Platform, Depends(platform)]) -> dict:
    """An OpenID Provider-style metadata document (RFC 8414 / OpenID Discovery members), for relying
    systems to find the issuer and the keys. The login itself is this platform's challenge/response
    with a certificate (not the OAuth authorization-code flow)."""
    base = p.settings.public_base_url.rstrip("/")
    return {
        "issuer": p.settings.public_base_url,
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "challenge_endpoint": f"{base}{CHALLENGE_PATH}",
        "login_endpoint": f"{base}{LOGIN_PATH}",
        "token_endpoint": f"{base}/api/v1/oauth/token",
        "login_token_verification_endpoint": f"{base}{VERIFY_PATH}",
        "userinfo_endpoint": f"{base}/api/v1/me",
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "jti", "id_kind", "cert_serial"],
        "login_challenge_format": CONTEXT,
        "login_signature_algorithms_supported": ["ES256", "RS256"],
        "login_token_ttl_seconds": p.settings.login_token_ttl_seconds,
    }
