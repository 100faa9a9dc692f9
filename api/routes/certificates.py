"""Certificates: an agency, acting as registration authority, requests and looks them up, renews and
re-keys them, suspends, reinstates and revokes them."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from cryptography.hazmat.primitives.serialization import Encoding
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field, SecretStr, field_validator

from api.deps import platform, scoped
from api.platform import Platform
from api.tokens import AccessToken
from ca.authority import IssuedCertificate
from ca.identifiers import validate_citizen_id, validate_credit_code
from ca.lifecycle import RevocationReason
from ca.profiles import PROFILES, SubjectKind, profile
from ca.records import Actor, CertificateRecord
from ca.subjects import SubjectIdentity
from eauth.errors import NotFound
from store.ca_store import SqlCaStore

router = APIRouter(prefix="/api/v1/certificates", tags=["certificates"])

PEM_CHAIN = "application/pem-certificate-chain"
PKIX_CERT = "application/pkix-cert"
#: C0 and C1 control characters (NUL, newline, BEL ...) have no place in a certificate subject, and
#: PostgreSQL refuses NUL in text columns.
NO_CONTROL_CHARACTERS = r"^[^\x00-\x1f\x7f-\x9f]+$"
MAX_CSR_CHARACTERS = 16384

Serial = Annotated[str, Path(pattern="^[0-9a-fA-F]{1,40}$", description="Hex serial number.")]


class CertificateRequest(BaseModel):
    """A certificate for a person, enterprise or agency whose identity the calling agency has verified."""

    profile: str = Field(description=f"One of: {', '.join(PROFILES)}.", examples=["citizen"])
    name: str = Field(
        min_length=1, max_length=128, pattern=NO_CONTROL_CHARACTERS,
        description="Verified name of the subject (no control characters).",
    )
    id_number: str = Field(
        min_length=1, max_length=32,
        description="Citizen ID (GB 11643) for persons, unified social credit code (GB 32100) otherwise.",
    )
    csr: str | None = Field(
        None, max_length=MAX_CSR_CHARACTERS,
        description="PEM PKCS#10 request with the holder's key. Omit to have the server make the key.",
    )
    pkcs12_password: SecretStr | None = Field(
        None, max_length=200,
        description="Without a CSR, for holder-kept keys: password protecting the PKCS#12 returned once.",
    )

    @field_validator("pkcs12_password")
    @classmethod
    def _encodable(cls, value: SecretStr | None) -> SecretStr | None:
        # SecretStr, unlike str, lets a lone surrogate (JSON "\ud800") through, and it cannot become bytes.
        if value is not None:
            try:
                value.get_secret_value().encode()
            except UnicodeEncodeError:
                raise ValueError("password must be valid Unicode text") from None
        return value


class CertificateView(BaseModel):
    serial: str = Field(description="Lower-case hex.")
    profile: str
    issuer: str
    status: str
    subject_id: str
    subject_dn: str
    not_before: datetime
    not_after: datetime
    sha256: str
    certificate_pem: str
    platform_key: bool = Field(description="True when the platform keeps the private key (agency seals).")
    revoked_at: datetime | None = Field(None, description="When it was revoked or suspended; null while valid.")
    revocation_reason: str | None = Field(
        None, description="RFC 5280 reason while revoked (e.g. keyCompromise); certificateHold while suspended."
    )
    invalidity_date: datetime | None = Field(
        None, description="When the key is known or suspected to have been compromised, if the revoker said so."
    )
    replaces: str | None = Field(None, description="Serial of the certificate this one renews or re-keys.")


class IssuedView(CertificateView):
    chain_pem: list[str] = Field(description="Issuing CA certificate(s), leaf's issuer first; the root is not included.")
    pkcs12: str | None = Field(None, description="Base64 PKCS#12 with the server-made key; returned only this once.")


class SubjectCertificates(BaseModel):
    subject_id: str
    items: list[CertificateView]


def _view(record: CertificateRecord) -> dict:
    pem = record.certificate.public_bytes(Encoding.PEM).decode()
    return {
        "serial": record.serial, "profile": record.profile, "issuer": record.issuer, "status": record.status,
        "subject_id": record.subject_id, "subject_dn": record.subject_dn, "not_before": record.not_before,
        "not_after": record.not_after, "sha256": record.sha256, "certificate_pem": pem,
        "platform_key": record.key_label is not None, "revoked_at": record.revoked_at,
        "revocation_reason": record.revocation_reason, "invalidity_date": record.invalidity_date,
        "replaces": record.replaces,
    }


def _issued_view(issued: IssuedCertificate) -> IssuedView:
    return IssuedView(
        **_view(issued.record),
        chain_pem=[c.public_bytes(Encoding.PEM).decode() for c in issued.chain],
        pkcs12=base64.b64encode(issued.pkcs12).decode() if issued.pkcs12 else None,
    )


@router.post("", status_code=201, response_model=IssuedView, summary="Request a certificate")
async def request_certificate(
    body: CertificateRequest,
    response: Response,
    p: Annotated[Platform, Depends(platform)],
    token: Annotated[AccessToken, Depends(scoped("certificates:issue"))],
) -> IssuedView:
    """Issue a certificate under ``profile`` for a verified subject: from the holder's CSR (proof of
    possession checked), or with a key made by the server."""
    # Deliberately run on the event loop, not in the thread pool: the work is ~1 ms of CPU plus a short
    # transaction, and threads holding SQLite's write lock while waiting for the GIL halved throughput
    # (measured with wrk: 244/s in threads, 491/s inline, one worker). Scale with worker processes.
    kind = profile(body.profile).subject_kind
    password = body.pkcs12_password.get_secret_value() if body.pkcs12_password else None
    with p.db.transaction() as connection:
        issued = p.ca.issue(
            SqlCaStore(connection),
            profile_name=body.profile,
            subject=SubjectIdentity(kind, body.name, body.id_number),
            requested_by=token.agency_id,
            csr=body.csr,
            pkcs12_password=password,
        )
    response.headers["Location"] = f"/api/v1/certificates/{issued.record.serial}"
    return _issued_view(issued)


@router.get(
    "/{serial}",
    response_model=CertificateView,
    summary="Fetch a certificate",
    responses={200: {"content": {PKIX_CERT: {}, PEM_CHAIN: {}}}},
)
def get_certificate(
    serial: Serial,
    request: Request,
    p: Annotated[Platform, Depends(platform)],
    _: Annotated[AccessToken, Depends(scoped("certificates:read"))],
):
    """JSON by default; DER with ``Accept: application/pkix-cert``, PEM leaf + chain with
    ``Accept: application/pem-certificate-chain``."""
    with p.db.session() as session:
        store = SqlCaStore(session)
        record = store.certificate(serial)
        if record is None:
            raise NotFound(f"no certificate with serial {serial}")
        accept = request.headers.get("accept", "")
        if PKIX_CERT in accept:
            return Response(record.der, media_type=PKIX_CERT)
        if PEM_CHAIN in accept:
            issuer = store.authority(record.issuer).certificate
            pem = record.certificate.public_bytes(Encoding.PEM) + issuer.public_bytes(Encoding.PEM)
            return Response(pem, media_type=PEM_CHAIN)
    return CertificateView(**_view(record))


@router.get("", response_model=SubjectCertificates, summary="List a subject's certificates")
def list_certificates(
    p: Annotated[Platform, Depends(platform)],
    _: Annotated[AccessToken, Depends(scoped("certificates:read"))],
    kind: Annotated[SubjectKind, Query(description="person, enterprise or agency")],
    id_number: Annotated[str, Query(min_length=1, max_length=32, description="The subject's identity number.")],
) -> SubjectCertificates:
    """A subject's certificates, newest first, found by identity number through the blind index (the
    number itself is never stored in clear)."""
    number = validate_citizen_id(id_number) if kind is SubjectKind.PERSON else validate_credit_code(id_number)
    with p.db.session() as session:
        store = SqlCaStore(session)
        subject = store.subject_by_index(kind.value, p.ca.identities.index(kind, number))
        if subject is None:
            raise NotFound(f"no {kind.value} with that identity number is registered")
        records = store.certificates_of_subject(subject.id)
    return SubjectCertificates(subject_id=subject.id, items=[CertificateView(**_view(r)) for r in records])


# --- lifecycle ------------------------------------------------------------------------------------------
# async like request_certificate, for the same reason: a short transaction with no awaits inside it.


class RevocationRequest(BaseModel):
    """Why the certificate is revoked and, for a compromised key, since when it should not be trusted."""

    reason: str = Field(
        RevocationReason.UNSPECIFIED.value, max_length=64,
        description="RFC 5280 reason; an unknown one is refused with 400 invalid_input.",
        json_schema_extra={"enum": [r.value for r in RevocationReason]},
    )
    invalidity_date: datetime | None = Field(
        None,
        description="RFC 3339 date-time with offset: when the key is known or suspected to have been compromised. "
                    "Between the certificate's notBefore and now.",
        examples=["2026-11-01T00:00:00Z"],
    )


class RenewalRequest(BaseModel):
    csr: str | None = Field(
        None, max_length=MAX_CSR_CHARACTERS,
        description="PEM PKCS#10 request with the holder's new key (re-key). Omit to renew with the same key.",
    )


def _change_status(p: Platform, serial: str, change: Callable[[SqlCaStore], object]) -> CertificateView:
    """Apply ``change`` in one transaction and return the certificate as it now is, read in that
    same transaction."""
    with p.db.transaction() as connection:
        store = SqlCaStore(connection)
        change(store)
        record = store.certificate(serial)
    return CertificateView(**_view(record))


@router.post("/{serial}/revoke", response_model=CertificateView, summary="Revoke a certificate")
async def revoke_certificate(
    serial: Serial,
    p: Annotated[Platform, Depends(platform)],
    token: Annotated[AccessToken, Depends(scoped("certificates:revoke"))],
    body: RevocationRequest | None = None,
) -> CertificateView:
    """Revoke for good a valid or suspended certificate the agency registered. The body may be left out
    (reason ``unspecified``). Visible in OCSP at once, in the issuer's CRL from its next update."""
    body = body or RevocationRequest()
    reason = RevocationReason.parse(body.reason)
    return _change_status(p, serial, lambda store: p.lifecycle.revoke(
        store, serial, reason=reason, actor=Actor(token.agency_id), invalidity_date=body.invalidity_date))


@router.post("/{serial}/suspend", response_model=CertificateView, summary="Suspend a certificate")
async def suspend_certificate(
    serial: Serial,
    p: Annotated[Platform, Depends(platform)],
    token: Annotated[AccessToken, Depends(scoped("certificates:revoke"))],
) -> CertificateView:
    """Put a valid certificate on hold (CRL reason ``certificateHold``) until it is reinstated or revoked."""
    return _change_status(p, serial, lambda store: p.lifecycle.suspend(store, serial, actor=Actor(token.agency_id)))


@router.post("/{serial}/reinstate", response_model=CertificateView, summary="Reinstate a suspended certificate")
async def reinstate_certificate(
    serial: Serial,
    p: Annotated[Platform, Depends(platform)],
    token: Annotated[AccessToken, Depends(scoped("certificates:revoke"))],
) -> CertificateView:
    """Lift a suspension: the certificate is valid again and leaves the CRL."""
    return _change_status(p, serial, lambda store: p.lifecycle.reinstate(store, serial, actor=Actor(token.agency_id)))


@router.post("/{serial}/renew", status_code=201, response_model=IssuedView, summary="Renew or re-key a certificate")
async def renew_certificate(
    serial: Serial,
    response: Response,
    p: Annotated[Platform, Depends(platform)],
    token: Annotated[AccessToken, Depends(scoped("certificates:issue"))],
    body: RenewalRequest | None = None,
) -> IssuedView:
    """A new certificate for the same subject and profile, with ``replaces`` naming the old one: the same
    key without a CSR (renewal), the CSR's key with one (re-key). Only a valid, unexpired certificate is
    renewed; the old one stays valid (revoke it with reason ``superseded`` if it must stop now)."""
    with p.db.transaction() as connection:
        issued = p.ca.renew(SqlCaStore(connection), serial, actor=Actor(token.agency_id),
                            csr=body.csr if body else None)
    response.headers["Location"] = f"/api/v1/certificates/{issued.record.serial}"
    return _issued_view(issued)
