"""``POST /api/v1/verify/certificate``: a relying party sends a certificate (PEM or base64 DER) and,
optionally, certificates that may help build its chain; it gets the chain to a trust anchor, the
certificate's profile and its status from the issuing CA's own records (``verify.certificate``).
Scope ``verify``."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from api.deps import platform, scoped
from api.platform import Platform
from api.recording import record_certificate
from api.routes.verify_pdf import CertificateStateView, CertificateView
from api.tokens import AccessToken
from api.verification import certificate_status, trust_anchors
from verify.certificate import MAX_CHAIN, CertificateReport, parse_certificate, verify_certificate

PATH = "/api/v1/verify/certificate"

router = APIRouter(tags=["verification"])


class CertificateRequest(BaseModel):
    certificate: str = Field(max_length=100_000, description="The certificate: PEM, or base64 of its DER.")
    chain: list[Annotated[str, Field(max_length=100_000)]] = Field(
        default_factory=list, max_length=MAX_CHAIN,
        description="Optional certificates (PEM or base64 DER) that may help build the chain; never trusted "
                    "as anchors.")


class CertificateReportView(BaseModel):
    indication: str = Field(description="TOTAL_PASSED, TOTAL_FAILED or INDETERMINATE (ETSI EN 319 102-1).")
    sub_indication: str | None = Field(description="REVOKED, NO_CERTIFICATE_CHAIN_FOUND, CHAIN_CONSTRAINTS_FAILURE, "
                                                   "OUT_OF_BOUNDS_NOT_REVOKED, OUT_OF_BOUNDS_NO_POE, TRY_LATER "
                                                   "(suspended), REVOCATION_UNKNOWN.")
    detail: str
    findings: list[str]
    certificate: CertificateView
    sha256: str
    profile: str = Field(description="citizen, enterprise, agency-seal, ocsp-responder, tsa, ca or other.")
    key_usage: list[str]
    extended_key_usage: list[str]
    chain: list[CertificateView] = Field(description="The certificate first, the trust anchor last; empty: no path.")
    trust_anchor: str | None = Field(description="Name of the platform whose root anchors the chain; null: untrusted.")
    status: CertificateStateView = Field(description="From the issuing CA's records (this platform's CAs).")


def now() -> datetime:
    """The validation time (a function so that tests can move it)."""
    return datetime.now(timezone.utc)


def check(p: Platform, body: CertificateRequest) -> CertificateReport:
    certificate = parse_certificate(body.certificate, field="certificate")
    chain = [parse_certificate(text, field=f"chain[{i}]") for i, text in enumerate(body.chain)]
    return verify_certificate(certificate, chain=chain, trust=trust_anchors(p), status=certificate_status(p),
                              now=now())


@router.post(PATH, response_model=CertificateReportView, summary="Verify a certificate: chain, profile, status")
async def verify_certificate_route(
    body: CertificateRequest,
    p: Annotated[Platform, Depends(platform)],
    caller: Annotated[AccessToken, Depends(scoped("verify"))],
) -> CertificateReportView:
    """The path from the certificate to a trust anchor (each signature, CA constraint, key usage, path
    length and validity checked), its profile by extended key usage and subject, and its status now
    from the issuing CA's records (``good``, ``revoked`` with reason and time, ``suspended``,
    ``unknown``). 200 with a report for any certificate; 400 ``invalid_certificate`` for input that
    is not one."""
    report = await run_in_threadpool(check, p, body)  # signatures and status lookups: off the event loop
    await record_certificate(p, caller, report)
    return CertificateReportView.model_validate(report, from_attributes=True)
