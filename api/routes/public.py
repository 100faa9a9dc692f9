"""Unauthenticated endpoints: CA certificates (the AIA caIssuers URLs), the token and QR JWKS, health."""

from __future__ import annotations

from typing import Annotated

from cryptography.hazmat.primitives.serialization import Encoding
from fastapi import APIRouter, Depends, Path, Response
from pydantic import BaseModel

from api.deps import platform
from api.licenses import qr_jwks
from api.login import login_service
from api.platform import Platform
from eauth.errors import NotFound
from store.ca_store import SqlCaStore

router = APIRouter(tags=["public"])


class AuthorityView(BaseModel):
    name: str
    role: str
    parent: str | None
    subject: str
    serial: str
    not_after: str
    certificate_pem: str


@router.get("/ca/{name}.cer", summary="A CA certificate (DER)", response_class=Response,
            responses={200: {"content": {"application/pkix-cert": {}}}})
def authority_certificate(
    name: Annotated[str, Path(pattern="^[a-z-]{1,32}$")], p: Annotated[Platform, Depends(platform)]
) -> Response:
    with p.db.session() as session:
        record = SqlCaStore(session).authority(name)
    if record is None:
        raise NotFound(f"no authority {name!r}")
    return Response(record.certificate.public_bytes(Encoding.DER), media_type="application/pkix-cert",
                    headers={"Cache-Control": "public, max-age=86400"})


@router.get("/api/v1/ca", response_model=list[AuthorityView], summary="The platform's CA hierarchy")
def authorities(p: Annotated[Platform, Depends(platform)]) -> list[AuthorityView]:
    with p.db.session() as session:
        records = SqlCaStore(session).authorities()
    return [
        AuthorityView(
            name=r.name, role=r.role, parent=r.parent, subject=r.certificate.subject.rfc4514_string(),
            serial=f"{r.certificate.serial_number:x}", not_after=r.certificate.not_valid_after_utc.isoformat(),
            certificate_pem=r.certificate.public_bytes(Encoding.PEM).decode(),
        )
        for r in records
    ]


@router.get("/.well-known/jwks.json", summary="Keys that sign the platform's tokens")
def jwks(p: Annotated[Platform, Depends(platform)]) -> dict:
    """The agency access-token key and the login-token keys (current and retired-but-unexpired)."""
    return {"keys": p.tokens.jwks()["keys"] + login_service(p).jwks()}


@router.get("/.well-known/qr-keys.json", summary="Keys that sign the QR tokens printed on licenses")
def qr_keys(p: Annotated[Platform, Depends(platform)]) -> dict:
    """A JWKS: what a verifier needs to check a license's QR token offline (kid as in the token)."""
    return qr_jwks(p)


@router.get("/healthz", summary="Liveness and database reachability")
def health(p: Annotated[Platform, Depends(platform)]) -> dict:
    with p.db.session() as session:
        session.connection()
    return {"status": "ok"}
