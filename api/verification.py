"""Wiring of PDF and certificate verification (``verify.pdf``, ``verify.certificate``) to the platform:
the trust anchors (our root, named after the platform, and the roots of the platforms imported for
mutual recognition, named after their import: ``api.mutual``), the CA certificates as intermediates,
the current status of certificates our CAs issued (from our records) or an imported platform's CA
issued (from its OCSP responder), and the registry lookup by the PDF's SHA-256. Shared
by the HTTP route (``api/routes/verify_pdf.py``, through ``verify_job`` in a worker process of
``api/pool.py``) and in-process callers (tests, the benchmark)."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import date, datetime, timezone

from sqlalchemy import select

from api.licenses import license_service
from api.mutual import ImportedTrust, foreign_status, imported
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
    """Per process: the platform's CA certificates, read once (they never change after init), and the
    imported platforms' as ``api.mutual`` has them now (read again every few seconds)."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        with platform.db.session() as session:
            authorities = SqlCaStore(session).authorities()
        roots = tuple(TrustAnchor(platform.settings.platform_name, a.certificate)
                      for a in authorities if a.role == "root")
        self.own = TrustAnchors(roots=roots, intermediates=tuple(a.certificate for a in authorities
                                                                 if a.role != "root"))
        self._combined: tuple[ImportedTrust, TrustAnchors] | None = None
        #: Issuer Name (DER) → our CA's name, for the certificates table.
        self.issuers = {a.certificate.subject.public_bytes(): a.name for a in authorities}
        #: Our own CA certificates (TSA, OCSP signers, CAs) by (issuer DER, serial): not in the
        #: certificates table, valid as long as the platform is.
        self.authorities = {(a.certificate.issuer.public_bytes(), a.certificate.serial_number): a.name
                            for a in authorities}

    @property
    def trust(self) -> TrustAnchors:
        """Our anchors, then the imported platforms' (ours first: our names win)."""
        foreign = imported(self.platform)
        combined = self._combined
        if combined is None or combined[0] is not foreign:
            anchors = TrustAnchors(roots=self.own.roots + foreign.roots,
                                   intermediates=self.own.intermediates + foreign.intermediates)
            combined = self._combined = (foreign, anchors)
        return combined[1]

    def status(self, issuer: bytes, serial: int) -> CertificateState:
        """``verify.pdf.CertificateStatus``: our certificates table, or the OCSP responder of the
        imported platform whose CA issued the certificate."""
        if (issuer, serial) in self.authorities:
            return CertificateState("good", source=f"platform CA certificate {self.authorities[issuer, serial]}")
        name = self.issuers.get(issuer)
        if name is None:
            return foreign_status(self.platform, imported(self.platform), issuer, serial) or UNKNOWN
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
        """The report; a file that is not in our registry but signed under an imported platform's root
        says whose license it is and where its status is."""
        report = verify_pdf(pdf, trust=self.trust, registry=self.lookup, status=self.status,
                            now=datetime.now(timezone.utc), limits=self.platform.settings.pdf_limits)
        if report.registry is None or report.registry.found:
            return report
        foreign = imported(self.platform)
        owner = next((foreign.platform(s.trust_anchor) for s in report.signatures
                      if foreign.platform(s.trust_anchor) is not None), None)
        if owner is None:
            return report
        where = f"; check its status at {owner.base_url}" if owner.base_url else ""
        return replace(report, registry=replace(
            report.registry, detail=f"a license of {owner.name} (signed under its root), not in this platform's "
                                    f"registry{where}"))


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
