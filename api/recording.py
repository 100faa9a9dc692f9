"""Recording every verification by a relying party (``store.verification_store``): who (the API
client and its agency, from its access token), what and the outcome. Called by the API
verification routes after the report is made; the public QR page is not recorded (anonymous)."""

from __future__ import annotations

from api.platform import Platform
from api.tokens import AccessToken
from store.group_commit import GroupCommit
from store.verification_store import Verified, record_verifications
from verify.certificate import CertificateReport
from verify.pdf import PdfReport
from verify.qr import QrReport


def _group_commit(platform: Platform) -> GroupCommit[Verified]:
    return GroupCommit(platform.db, record_verifications)


async def _record(platform: Platform, caller: AccessToken, **values) -> None:
    """Committed before the caller answers, together with the other verifications that arrived
    meanwhile (``store.group_commit``: one write transaction per batch, not per request)."""
    await platform.kept(_group_commit).add(Verified(client_id=caller.client_id, agency_id=caller.agency_id, **values))


async def record_pdf(platform: Platform, caller: AccessToken, report: PdfReport) -> None:
    """Subject: the license identifier of a registry match, else the file's SHA-256; result: the indication."""
    match = report.registry.license if report.registry is not None else None
    await _record(platform, caller, kind="pdf", subject=match.identifier if match else report.sha256,
                  file_sha256=report.sha256, result=report.indication)


async def record_qr(platform: Platform, caller: AccessToken, report: QrReport) -> None:
    """Subject: the license identifier the token names (none for an unreadable token); result: the status."""
    await _record(platform, caller, kind="qr", subject=report.license.identifier if report.license else None,
                  result=report.status)


async def record_certificate(platform: Platform, caller: AccessToken, report: CertificateReport) -> None:
    """Subject: the certificate's serial (hex); result: the indication."""
    await _record(platform, caller, kind="certificate", subject=report.certificate.serial, result=report.indication)


async def record_login(platform: Platform, caller: AccessToken, *, subject: str | None, result: str) -> None:
    """Subject: the token's pseudonymous subject (none for a token that does not verify); result:
    ``valid`` or why not (``verify.login`` reasons)."""
    await _record(platform, caller, kind="login", subject=subject, result=result)


async def record_presentation(platform: Platform, caller: AccessToken, *, identifier: str | None, result: str) -> None:
    """Subject: the license identifier the presentation names; result: its status or why it is invalid."""
    await _record(platform, caller, kind="presentation", subject=identifier, result=result)
