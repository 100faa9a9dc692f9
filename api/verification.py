"""Wiring of PDF verification (``verify.pdf``) to the platform: the trust anchors (our root, named
after the platform; imported platforms' roots to come), the issuing CAs as intermediates, the
current status of certificates our CAs issued, and the registry lookup by the PDF's SHA-256. Shared
by the HTTP route (``api/routes/verify_pdf.py``, through ``verify_job`` in a worker process of
``api/pool.py``) and in-process callers (tests, the benchmark)."""

from __future__ import annotations

import threading
from datetime import date, datetime, timezone

from sqlalchemy import select

from api.licenses import license_service
from api.platform import Platform
from licenses.issuance import effective_status
from store.ca_store import SqlCaStore
from store.license_store import SqlLicenseStore
from store.models import Agency
from verify.pdf import (
    UNKNOWN,
    CertificateState,
    CertificateStatus,
    PdfReport,
    Registry,
    RegistryMatch,
    TrustAnchor,
    TrustAnchors,
    verify_pdf,
)

_AGENCIES = Agency.__table__
_lock = threading.Lock()


class PlatformVerification:
    """Per process: the platform's CA certificates, read once (they never change after init)."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        with platform.db.session() as session:
            authorities = SqlCaStore(session).authorities()
        roots = tuple(TrustAnchor(platform.settings.platform_name, a.certificate)
                      for a in authorities if a.role == "root")
        self.trust = TrustAnchors(roots=roots, intermediates=tuple(a.certificate for a in authorities
                                                                   if a.role != "root"))
        #: Issuer Name (DER) → our CA's name, for the certificates table.
        self.issuers = {a.certificate.subject.public_bytes(): a.name for a in authorities}
        #: Our own CA certificates (TSA, OCSP signers, CAs) by (issuer DER, serial): not in the
        #: certificates table, valid as long as the platform is.
        self.authorities = {(a.certificate.issuer.public_bytes(), a.certificate.serial_number): a.name
                            for a in authorities}

    def status(self, issuer: bytes, serial: int) -> CertificateState:
        """``verify.pdf.CertificateStatus`` over our certificates table."""
        if (issuer, serial) in self.authorities:
            return CertificateState("good", source=f"platform CA certificate {self.authorities[issuer, serial]}")
        name = self.issuers.get(issuer)
        if name is None:
            return UNKNOWN
        with self.platform.db.transaction() as connection:
            record = SqlCaStore(connection).certificate(f"{serial:x}")
        if record is None or record.issuer != name:
            return CertificateState("unknown", source=f"not issued by the platform's {name} CA")
        source = f"the platform's {name} CA records"
        if record.status == "revoked":
            return CertificateState("revoked", reason=record.revocation_reason,
                                    since=_utc(record.invalidity_date or record.revoked_at), source=source)
        if record.status == "suspended":
            return CertificateState("suspended", reason=record.revocation_reason, since=_utc(record.revoked_at),
                                    source=source)
        return CertificateState("good", source=source)

    def lookup(self, sha256: str) -> RegistryMatch | None:
        """``verify.pdf.Registry``: the license version issued with exactly this PDF."""
        service = license_service(self.platform)
        with self.platform.db.transaction() as connection:
            store = SqlLicenseStore(connection)
            version = store.version_by_pdf(sha256)
            if version is None:
                return None
            license = store.license(version.license_id)
            if license is None:
                return None
            license_type = service.license_type(store, license.type_code, agency_id=None)
            issuer = connection.execute(select(_AGENCIES.c.name).where(_AGENCIES.c.id == license.agency_id)).scalar()
        return RegistryMatch(
            license_id=license.id, identifier=version.identifier, type_code=license.type_code,
            type_name=license_type.name_zh, issuer_name=issuer,
            status=effective_status(license, date.today(), version=version), status_reason=license.status_reason,
            version=version.version, current_version=license.version, current_identifier=license.identifier)

    def verify(self, pdf: bytes) -> PdfReport:
        return verify_pdf(pdf, trust=self.trust, registry=self.lookup, status=self.status,
                          now=datetime.now(timezone.utc))


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.utcoffset() is not None else moment.replace(tzinfo=timezone.utc)


def verification(platform: Platform) -> PlatformVerification:
    """The platform's verification wiring, made on first use and kept on it."""
    found = getattr(platform, "_pdf_verification", None)
    if found is None:
        with _lock:
            found = getattr(platform, "_pdf_verification", None)
            if found is None:
                found = PlatformVerification(platform)
                platform._pdf_verification = found
    return found


def trust_anchors(platform: Platform) -> TrustAnchors:
    return verification(platform).trust


def certificate_status(platform: Platform) -> CertificateStatus:
    return verification(platform).status


def registry(platform: Platform) -> Registry:
    return verification(platform).lookup


def verify_job(pdf: bytes) -> PdfReport:
    """Process-pool job: the report on ``pdf`` in this worker's platform (plain, picklable values;
    NotAPdf / EncryptedPdf pickle as themselves)."""
    from api.pool import worker_platform

    return verification(worker_platform()).verify(pdf)


__all__ = ["PlatformVerification", "certificate_status", "registry", "trust_anchors", "verification", "verify_job"]
