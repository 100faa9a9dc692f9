"""Holders for tests of other features: a citizen (or enterprise) certificate enrolled through the real
CA and a login token from the real challenge flow (``POST /api/v1/auth/challenge`` then ``/login``).

    token, holder = holder_login(api, platform)
    api.get("/api/v1/me", headers=holder.headers)
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from api.holder import PLATFORM_AUDIENCE
from ca.profiles import SubjectKind
from ca.subjects import SubjectIdentity
from store.agencies import add_agency
from store.ca_store import SqlCaStore
from tests.helpers import citizen_id, credit_code, ec_csr
from verify.login import challenge_message


@dataclass(frozen=True)
class Holder:
    """An enrolled holder: identity, certificate and private key; after login, its token."""

    kind: SubjectKind
    name: str
    id_number: str
    certificate: x509.Certificate
    key: object
    serial: str
    token: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def registrar(platform) -> int:
    """A registering agency (a new one each call: its id is what matters)."""
    with platform.db.session() as session:
        return add_agency(session, code=f"reg-{secrets.token_hex(4)}", name="登记机关", credit_code=None).id


def enroll(platform, *, kind: SubjectKind = SubjectKind.PERSON, name: str = "张三", id_number: str | None = None,
           key=None, agency_id: int | None = None) -> Holder:
    """A holder with a fresh certificate (citizen or enterprise profile) for its own key (default EC P-256)."""
    id_number = id_number or (citizen_id() if kind is SubjectKind.PERSON else credit_code())
    csr, key = ec_csr(name, key=key)
    profile = "citizen" if kind is SubjectKind.PERSON else "enterprise"
    with platform.db.session() as session:
        issued = platform.ca.issue(SqlCaStore(session), profile_name=profile, csr=csr,
                                   subject=SubjectIdentity(kind, name, id_number),
                                   requested_by=agency_id or registrar(platform))
    return Holder(kind, name, id_number, issued.record.certificate, key, issued.record.serial)


def sign(key, message: bytes) -> str:
    """The base64 signature of ``message`` by ``key`` (ECDSA with SHA-256, or RSA PKCS#1 v1.5 SHA-256)."""
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    else:
        signature = key.sign(message, ec.ECDSA(hashes.SHA256()))
    return base64.b64encode(signature).decode()


def login(client, platform, holder: Holder, *, audience: str = PLATFORM_AUDIENCE, key=None):
    """The raw response of a login of ``holder`` (signing with ``key``, default its own) to ``audience``."""
    challenge = client.post("/api/v1/auth/challenge", json={"audience": audience})
    assert challenge.status_code == 200, challenge.text
    nonce = challenge.json()["nonce"]
    message = challenge_message(nonce=nonce, audience=audience, issuer=platform.settings.public_base_url)
    return client.post("/api/v1/auth/login", json={
        "certificate": holder.certificate.public_bytes(Encoding.PEM).decode(),
        "nonce": nonce,
        "signature": sign(key or holder.key, message),
    })


def holder_login(client, platform, *, kind: SubjectKind = SubjectKind.PERSON, name: str = "张三",
                 id_number: str | None = None, audience: str = PLATFORM_AUDIENCE) -> tuple[str, Holder]:
    """Enroll a holder and log it in: (login token, holder with ``token`` and ``headers``)."""
    holder = enroll(platform, kind=kind, name=name, id_number=id_number)
    response = login(client, platform, holder, audience=audience)
    assert response.status_code == 200, response.text
    token = response.json()["token"]
    return token, Holder(**{**holder.__dict__, "token": token})
