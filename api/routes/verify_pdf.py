"""``POST /api/v1/verify/pdf``: a relying party uploads a signed PDF (multipart ``file``) and gets
the verification report (``verify.pdf``, see docs/verification.md) as JSON. Scope ``verify``. The
body limit of this path is ``max_document_bytes``; the verification (CPU-bound pyHanko) runs in the
app's process pool."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, File, Request, UploadFile
from pydantic import BaseModel, Field

from api.deps import scoped
from api.pool import WorkerPool
from api.recording import record_pdf
from api.tokens import AccessToken
from api.verification import verify_job
from eauth.errors import InvalidInput

PATH = "/api/v1/verify/pdf"

router = APIRouter(tags=["verification"])


class CertificateView(BaseModel):
    subject: str
    serial: str = Field(description="Serial number, hex.")
    issuer: str
    not_before: datetime
    not_after: datetime


class TimestampView(BaseModel):
    time: datetime
    tsa: str = Field(description="Subject of the time-stamping authority's certificate.")
    intact: bool
    valid: bool
    trusted: bool
    trust_anchor: str | None


class SigningTimeView(BaseModel):
    claimed: datetime | None = Field(description="The signing time the signer claims (not proof).")
    timestamp: TimestampView | None = Field(description="The signature timestamp token, if any.")
    proven: bool = Field(description="A valid, trusted timestamp proves the signature existed at its time.")


class CertificateStateView(BaseModel):
    status: str = Field(description="good, revoked, suspended or unknown.")
    reason: str | None
    since: datetime | None
    source: str


class RevocationView(BaseModel):
    at_signing_time: CertificateStateView = Field(description="From the revocation data embedded in the PDF.")
    now: CertificateStateView = Field(description="From the issuing CA's records (this platform's CAs).")
    tsa_now: CertificateStateView | None


class IntegrityView(BaseModel):
    digest_ok: bool
    signature_ok: bool
    digest_algorithm: str
    signature_algorithm: str


class ModificationsView(BaseModel):
    level: str | None = Field(description="pyHanko's modification level: NONE, LTA_UPDATES, FORM_FILLING, "
                                          "ANNOTATIONS, OTHER.")
    acceptable: bool
    findings: list[str]
    later_revisions: int


class DocMdpView(BaseModel):
    certification: bool
    permission: str | None = Field(description="NO_CHANGES, FILL_FORMS or ANNOTATE.")
    respected: bool | None


class SignatureView(BaseModel):
    field: str
    indication: str
    sub_indication: str | None
    findings: list[str]
    signer: CertificateView | None
    chain: list[CertificateView] = Field(description="Signer first, trust anchor last.")
    trust_anchor: str | None = Field(description="Name of the platform whose root anchors the chain; null: untrusted.")
    signing_time: SigningTimeView
    revocation: RevocationView
    integrity: IntegrityView
    coverage: str = Field(description="ENTIRE_FILE, ENTIRE_REVISION or PARTIAL.")
    modifications: ModificationsView
    docmdp: DocMdpView
    level: str | None = Field(description="PAdES level reached: B-B, B-T, B-LT, B-LTA; null: not PAdES.")
    subfilter: str | None
    revision: int


class DocumentTimestampView(BaseModel):
    field: str
    indication: str
    sub_indication: str | None
    findings: list[str]
    timestamp: TimestampView | None
    coverage: str
    modifications: ModificationsView
    revision: int


class RegistryMatchView(BaseModel):
    license_id: str
    identifier: str
    type_code: str
    type_name: str | None
    issuer_name: str | None
    status: str = Field(description="valid, suspended, revoked, cancelled, expired or superseded.")
    status_reason: str | None
    version: int
    current_version: int
    current_identifier: str


class RegistryView(BaseModel):
    found: bool
    byte_identical: bool
    license: RegistryMatchView | None
    detail: str


class PdfReportView(BaseModel):
    indication: str = Field(description="TOTAL_PASSED, TOTAL_FAILED or INDETERMINATE (ETSI EN 319 102-1).")
    sub_indication: str | None
    detail: str
    sha256: str
    size: int
    revisions: int
    signatures: list[SignatureView]
    document_timestamps: list[DocumentTimestampView]
    findings: list[str]
    registry: RegistryView | None


@router.post(PATH, response_model=PdfReportView, summary="Verify a signed PDF (an electronic license or any "
             "signed document)")
async def verify_pdf_upload(
    request: Request,
    caller: Annotated[AccessToken, Depends(scoped("verify"))],
    file: Annotated[UploadFile, File(description="The PDF to verify.")],
) -> PdfReportView:
    """Every signature's integrity, coverage, modifications after signing, DocMDP, chain to a trust
    anchor, signing time and its timestamp, revocation at signing time and now, PAdES level; and
    whether the file is, byte for byte, a license this platform issued, with that license's current
    status. 200 with a report for any PDF, however broken; 400 ``not_a_pdf`` / ``encrypted_pdf``."""
    pdf = await file.read()
    if not pdf:
        raise InvalidInput("the uploaded file is empty", field="file")
    pool: WorkerPool = request.app.state.signing_pool
    report = await pool.run(verify_job, pdf)
    await record_pdf(request.app.state.platform, caller, report)
    return PdfReportView.model_validate(report, from_attributes=True)
