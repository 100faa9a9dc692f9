"""Logging in with a certificate from the holder's (or a relying system's) side: load the PKCS#12,
ask the platform for a challenge, sign it, and get the login token.

    from api.login_client import load_pkcs12, login
    credential = load_pkcs12(Path("holder.p12").read_bytes(), password)
    token = login("https://eauth.example", credential, audience="tax-service").token

``login`` takes an ``httpx.Client`` (or makes one for ``base_url``), so tests and embedded callers may
pass one with their own transport. Refusals come back as ``LoginFailed`` carrying the platform's
problem code; an unreachable platform as ``ServiceUnreachable``.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, pkcs12

from eauth.errors import InvalidInput, LoginFailed, ServiceUnreachable


@dataclass(frozen=True, slots=True)
class Credential:
    """A holder's certificate, its private key and the CA certificates that came with it."""

    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()


@dataclass(frozen=True, slots=True)
class LoginResult:
    token: str
    expires_in: int
    subject: str
    audience: str


def load_pkcs12(data: bytes, password: str | None) -> Credential:
    """The credential in a PKCS#12 file; InvalidInput for a wrong password or an unusable file."""
    try:
        key, certificate, extra = pkcs12.load_key_and_certificates(data, password.encode() if password else None)
    except ValueError:
        raise InvalidInput("cannot open the PKCS#12 file: wrong password or not a PKCS#12 file") from None
    if certificate is None or not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise InvalidInput("the PKCS#12 file holds no certificate with an EC or RSA private key")
    return Credential(key, certificate, tuple(extra))


def sign(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, message: bytes) -> bytes:
    """ECDSA with SHA-256 (DER) or RSASSA-PKCS1-v1_5 with SHA-256: what the platform verifies."""
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    return key.sign(message, ec.ECDSA(hashes.SHA256()))


def login(base_url: str, credential: Credential, *, audience: str, client: httpx.Client | None = None
          ) -> LoginResult:
    """A login token for ``audience`` from the platform at ``base_url``."""
    own = client is None
    http = client or httpx.Client(base_url=base_url, timeout=30)
    try:
        challenge = _call(http, "/api/v1/auth/challenge", {"audience": audience})
        signature = sign(credential.key, challenge["to_be_signed"].encode())
        body = {
            "certificate": credential.certificate.public_bytes(Encoding.PEM).decode(),
            "chain": [c.public_bytes(Encoding.PEM).decode() for c in credential.chain],
            "nonce": challenge["nonce"], "audience": audience,
            "signature": base64.b64encode(signature).decode(),
        }
        done = _call(http, "/api/v1/auth/login", body)
    finally:
        if own:
            http.close()
    return LoginResult(done["token"], done["expires_in"], done["subject"], done["audience"])


def _call(http: httpx.Client, path: str, body: dict) -> dict:
    try:
        response = http.post(path, json=body)
    except httpx.HTTPError as exc:
        raise ServiceUnreachable(f"cannot reach the platform: {exc}") from None
    try:
        document = response.json()
    except ValueError:
        document = None
    if response.status_code != 200 or not isinstance(document, dict):
        code = document.get("code") if isinstance(document, dict) else None
        detail = document.get("detail") if isinstance(document, dict) else response.text[:200]
        raise LoginFailed(f"{path}: {response.status_code} {code or ''} {detail}".replace("  ", " "),
                          server_code=code, status=response.status_code)
    return document
