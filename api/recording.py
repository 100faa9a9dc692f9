"""Recording every verification by a relying party (``store.verification_store``): who (the API
client and its agency, from its access token), what and the outcome. Called by the three API
verification routes after the report is made; the public QR page is not recorded (anonymous)."""

from __future__ import annotations

from api.platform import Platform
from api.tokens import AccessToken
from store.verification_store import record_verification
from verify.certificate import CertificateReport
from verify.pdf import PdfReport
from verify.qr import QrReport


def _record(platform: Platform, caller: AccessToken, **values) -> None:
    with platform.db.transaction() as connection:
        record_verification(connection, client_id=caller.client_id, agency_id=caller.agency_id, **values)


def record_pdf(platform: Platform, caller: AccessToken, report: PdfReport) -> None:
    """Subject: the license identifier of a registry match, else the file's SHA-256; result: the indication."""
    match = report.registry.license if report.registry is not None else None
    _record(platform, caller, kind="pdf", subject=match.identifier if match else report.sha256,
            file_sha256=report.sha256, result=report.indication)


def record_qr(platform: Platform, caller: AccessToken, report: QrReport) -> None:
    """Subject: the license identifier the token names (none for an unreadable token); result: the status."""
    _record(platform, caller, kind="qr", subject=report.license.identifier if report.license else None,
            result=report.status)


def record_certificate(platform: Platform, caller: AccessToken, report: CertificateReport) -> None:
    """Subject: the certificate's serial (hex); result: the indication."""
    _record(platform, caller, kind="certificate", subject=report.certificate.serial, result=report.indication)
