"""Offline verification with a trust bundle (``verify.bundle``): no network, no database, no
registry. What a relying party without access to the platform can establish:

- a PDF: everything ``verify.pdf`` checks from the document itself (integrity, coverage,
  modifications, DocMDP, the chain to the bundle's roots, the signing time and its timestamp, the
  revocation data embedded at signing time, the PAdES level); not the signer's status now and not
  whether the file is the registry's copy (``registry`` is absent, ``revocation.now`` is ``unknown``
  with the source saying it was not checked);
- a license QR token: its signature with the bundle's QR keys and its claims (identifier, type,
  issuer, dates); the status is ``genuine`` (or ``expired`` past the expiry date it carries),
  never ``valid``: whether the license is still valid now only the registry says (online).
"""

from __future__ import annotations

from datetime import date, datetime

from eauth.errors import InvalidQrToken
from licenses.token import QrClaims, verify_qr_token
from verify.bundle import TrustBundle
from verify.pdf import CertificateState, PdfReport, verify_pdf
from verify.qr import QrLicense, QrReport

NOT_CHECKED = CertificateState("unknown", source="offline: the current status was not checked")
OFFLINE_QR = "offline: registry status not checked"


def _not_checked(issuer: bytes, serial: int) -> CertificateState:
    return NOT_CHECKED


def verify_pdf_offline(pdf: bytes, bundle: TrustBundle, *, now: datetime) -> PdfReport:
    """``verify.pdf.verify_pdf`` with the bundle's anchors, no registry and no current status.
    Raises only NotAPdf and EncryptedPdf."""
    return verify_pdf(pdf, trust=bundle.trust_anchors(), registry=None, status=_not_checked, now=now)


def verify_qr_offline(token: str, bundle: TrustBundle, *, today: date) -> QrReport:
    """The token's signature and claims; never raises for a bad token (status ``invalid`` and the
    error code say why)."""
    try:
        claims = verify_qr_token(token, bundle.qr_keys())
    except InvalidQrToken as exc:
        return QrReport(status="invalid", signature_valid=False, detail=exc.detail, error_code=exc.code)
    license = _from_claims(claims)
    if claims.expires_on is not None and claims.expires_on < today:
        return QrReport(status="expired", signature_valid=True, license=license,
                        detail=f"genuine, but expired on {claims.expires_on.isoformat()} ({OFFLINE_QR})")
    return QrReport(status="genuine", signature_valid=True, license=license, detail=f"genuine ({OFFLINE_QR})")


def _from_claims(claims: QrClaims) -> QrLicense:
    return QrLicense(identifier=str(claims.identifier), type_code=claims.type_code, type_name=None,
                     issuer_code=claims.issuer_code, issuer_name=None, holder=None, issued_on=claims.issued_on,
                     valid_until=claims.expires_on, version=claims.identifier.version, current_identifier=None)
