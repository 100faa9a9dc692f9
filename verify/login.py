"""Certificate login (统一身份认证 / 单点登录): the challenge a holder signs, the checks on its
certificate and signature, and the verification of the login token a relying system receives.

To be signed (UTF-8, lines joined by a single ``\\n``, no trailing newline)::

    eauth-login-v1
    issuer=<the platform's public base URL>
    audience=<the relying service id>
    nonce=<the challenge nonce>

Binding the issuer and the audience means a signature made for one service, or for another platform,
is of no use anywhere else; the nonce is single use. Signatures: ECDSA with SHA-256 (DER, or the raw
64-byte r || s of WebCrypto) for EC keys, RSASSA-PKCS1-v1_5 with SHA-256 for RSA keys.

A login token is a compact ES256 JWS (JWT) with ``kid``. Its keys come from a ``LoginKeySource``
(any ``Mapping[str, LoginKey]`` will do): this platform's published keys, and those of platforms
whose trust was imported, each carrying the issuer whose tokens it may sign.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import jwt
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID

from eauth.errors import InvalidLoginToken, LoginCertificateRefused, LoginSignatureInvalid, LoginTokenExpired
from verify.certificate import CertificateReport

CONTEXT = "eauth-login-v1"
#: The certificate profiles whose holders log in.
LOGIN_PROFILES = {"citizen": "citizen_id", "enterprise": "credit_code"}
MAX_SIGNATURE_BYTES = 1024
_VERIFYING_JWS = jwt.PyJWT()


def challenge_message(*, nonce: str, audience: str, issuer: str) -> bytes:
    """The bytes a holder signs to answer the challenge ``nonce`` for ``audience`` at ``issuer``."""
    return "\n".join((CONTEXT, f"issuer={issuer}", f"audience={audience}", f"nonce={nonce}")).encode()


def check_login_certificate(report: CertificateReport, certificate: x509.Certificate) -> str:
    """The id kind ("citizen_id" or "credit_code") of a certificate fit to log in with: chained to a
    trust anchor, good now, a citizen or enterprise profile with digitalSignature and clientAuth.
    LoginCertificateRefused (extra ``reason``) otherwise."""
    if not report.passed:
        reason = {"REVOKED": "revoked", "TRY_LATER": "suspended", "OUT_OF_BOUNDS_NOT_REVOKED": "expired",
                  "REVOCATION_UNKNOWN": "unknown"}.get(report.sub_indication or "", "untrusted")
        raise LoginCertificateRefused(f"certificate {certificate.serial_number:x} not accepted: {report.detail}",
                                      reason=reason)
    id_kind = LOGIN_PROFILES.get(report.profile)
    if id_kind is None:
        raise LoginCertificateRefused(f"a {report.profile} certificate is not a citizen or enterprise certificate",
                                      reason="not_holder")
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
        eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        raise LoginCertificateRefused("the certificate lacks key usage or extended key usage",
                                      reason="usage") from None
    if not usage.digital_signature or ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
        raise LoginCertificateRefused("the certificate is not for digital signatures and client authentication",
                                      reason="usage")
    return id_kind


def verify_challenge_signature(certificate: x509.Certificate, message: bytes, signature: bytes) -> None:
    """Nothing if ``signature`` over ``message`` verifies with the certificate's key;
    LoginSignatureInvalid otherwise (wrong key, altered message, unsupported key type)."""
    key = certificate.public_key()
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            size = (key.curve.key_size + 7) // 8
            if len(signature) == 2 * size and signature[0] != 0x30:  # raw r || s (JOSE, WebCrypto)
                signature = encode_dss_signature(int.from_bytes(signature[:size], "big"),
                                                 int.from_bytes(signature[size:], "big"))
            key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        else:
            raise LoginSignatureInvalid(f"a {type(key).__name__} key cannot sign a login challenge")
    except InvalidSignature:
        raise LoginSignatureInvalid("the signature does not verify with the certificate's key "
                                    "(another key, or another challenge, audience or issuer)") from None


@dataclass(frozen=True, slots=True)
class LoginKey:
    """A public key that signs login tokens, and whose they are."""

    kid: str
    public_key: ec.EllipticCurvePublicKey
    #: The ``iss`` of the tokens it signs (the owning platform's public base URL).
    issuer: str
    #: The owning platform's name, for reports.
    platform: str


class LoginKeySource(Protocol):
    """Where login keys are found by kid (a ``dict[str, LoginKey]`` is one)."""

    def get(self, kid: str, /) -> LoginKey | None: ...


@dataclass(frozen=True, slots=True)
class LoginClaims:
    """What a verified login token says."""

    issuer: str
    platform: str
    subject: str  # pseudonymous subject id
    audience: str
    id_kind: str
    certificate_serial: str
    issued_at: int
    expires_at: int
    token_id: str
    kid: str


REQUIRED = ("iss", "sub", "aud", "exp", "iat", "jti", "id_kind", "cert_serial")


def verify_login_token(token: str, *, keys: LoginKeySource, audience: str | Sequence[str],
                       now: float | None = None) -> LoginClaims:
    """The claims of ``token`` if a key of ``keys`` signed it (ES256), its issuer is that key's, it is
    for ``audience`` and unexpired at ``now``; InvalidLoginToken (``reason`` extra) otherwise."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as exc:
        raise InvalidLoginToken(f"not a login token: {exc}", reason="malformed") from None
    if header.get("alg") != "ES256" or header.get("typ") != "JWT" or not isinstance(header.get("kid"), str):
        raise InvalidLoginToken("not a login token (header must be ES256, typ JWT, with a kid)", reason="malformed")
    key = keys.get(header["kid"])
    if key is None:
        raise InvalidLoginToken(f"login token signed with an unknown or retired key {header['kid'][:64]!r}",
                                reason="unknown_key")
    moment = time.time() if now is None else now
    try:
        claims = _VERIFYING_JWS.decode(token, key.public_key, algorithms=["ES256"], audience=audience,
                                       issuer=key.issuer, options={"require": list(REQUIRED), "verify_exp": False,
                                                                   "verify_iat": False, "verify_nbf": False})
    except jwt.InvalidSignatureError:
        raise InvalidLoginToken("login token signature does not verify (altered or forged)",
                                reason="bad_signature") from None
    except jwt.InvalidAudienceError:
        raise InvalidLoginToken("login token is for another audience", reason="wrong_audience") from None
    except jwt.InvalidIssuerError:
        raise InvalidLoginToken("login token issuer is not the key owner's", reason="wrong_issuer") from None
    except jwt.InvalidTokenError as exc:
        raise InvalidLoginToken(f"login token invalid: {exc}", reason="malformed") from None
    if not isinstance(claims["exp"], int) or not isinstance(claims["iat"], int):
        raise InvalidLoginToken("login token exp and iat must be integers", reason="malformed")
    if not all(isinstance(claims[name], str) for name in ("iss", "sub", "jti", "id_kind", "cert_serial")):
        raise InvalidLoginToken("login token iss, sub, jti, id_kind and cert_serial must be strings",
                                reason="malformed")
    if claims["exp"] <= moment:
        raise LoginTokenExpired(f"login token expired at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(claims['exp']))}",
                                reason="expired")
    aud = claims["aud"]
    return LoginClaims(issuer=claims["iss"], platform=key.platform, subject=claims["sub"],
                       audience=aud if isinstance(aud, str) else aud[0], id_kind=claims["id_kind"],
                       certificate_serial=claims["cert_serial"], issued_at=claims["iat"], expires_at=claims["exp"],
                       token_id=claims["jti"], kid=key.kid)
