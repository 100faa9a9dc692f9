"""Sealing an agency's own PDF documents: wires a seal certificate, its key, our TSA and our own
revocation data (OCSP responder and CRLs, in process) into ``signing.pades``. Shared by the HTTP
route (``api/routes/documents.py``, through ``sign_job`` in a worker process of ``api/pool.py``) and
``eauth sign`` (in process)."""

from __future__ import annotations

import hashlib
import time
from datetime import datetime, timedelta, timezone

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp as x509_ocsp
from cryptography.x509.oid import NameOID

from api.platform import Platform
from api.schedule import crl_publisher
from ca.ocsp import OcspResponder, ResponseStatus
from ca.records import CertificateRecord
from eauth.errors import NoSealKey
from signing.pades import Appearance, RevocationData, SealSpec, sign_pdf
from signing.timestamper import InProcessTimeStamper
from store import audit
from store.ca_store import SqlCaStore
from store.crl_store import crl_transactions
from store.ocsp_store import SqlOcspStore

SEAL_PROFILE = "agency-seal"
#: How long the revocation data gathered for a seal is embedded again, in seconds.
REVOCATION_REUSE = 60.0


class DocumentSealer:
    """Per process: the OCSP responder and the CA certificates, prepared once (they never change)."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        settings = platform.settings
        with platform.db.session() as session:
            store = SqlCaStore(session)
            authorities = {a.name: a for a in store.authorities()}
        self.root = authorities["root"].certificate
        self.seal_ca = authorities["seal"].certificate
        self.tsa = authorities["tsa"].certificate
        self.responder = OcspResponder(
            authorities.values(), platform.keys, validity=timedelta(minutes=settings.ocsp_validity_minutes),
            reuse_margin=timedelta(minutes=settings.ocsp_reuse_margin_minutes),
        )
        self.ocsp_store = SqlOcspStore(platform.db)
        self.timestamper = InProcessTimeStamper(platform.timestamp_authority())
        self._revocation: dict[int, tuple[float, RevocationData]] = {}

    def seal(self, serial: str, *, agency_id: int | None, long_term: bool) -> SealSpec:
        """The seal of certificate ``serial``: an agency-seal certificate with a platform-kept key, valid,
        registered by ``agency_id`` (any agency's when None: the operator, from the CLI). NoSealKey
        otherwise, saying no more about another agency's certificate than that it is not usable."""
        with self.platform.db.session() as session:
            record = SqlCaStore(session).certificate(serial.lower())
        usable = (record is not None and record.profile == SEAL_PROFILE and record.key_label is not None
                  and (agency_id is None or record.requested_by == agency_id))
        if not usable:
            whose = "of this agency " if agency_id is not None else ""
            raise NoSealKey(f"certificate {serial} is not an agency seal {whose}with a key kept by the platform")
        if record.status != "valid":
            raise NoSealKey(f"seal certificate {serial} is {record.status}")
        return self._spec(record, long_term=long_term)

    def _spec(self, record: CertificateRecord, *, long_term: bool) -> SealSpec:
        certificate = record.certificate
        return SealSpec(
            signer=self.platform.keys.signer(record.key_label),
            certificate=certificate,
            chain=(self.seal_ca,),
            trust_roots=(self.root,),
            name=_organization(certificate, record),
            timestamper=self.timestamper,
            revocation=self.revocation(certificate) if long_term else RevocationData(),
            other_certificates=(self.tsa,),
        )

    def agency_seal(self, agency_id: int) -> SealSpec:
        """The seal an agency's licenses are signed with: its newest valid agency-seal certificate
        with a platform-kept key, with everything B-LT embeds. NoSealKey if it has none."""
        with self.platform.db.transaction() as connection:
            record = SqlCaStore(connection).agency_seal(agency_id, now=datetime.now(timezone.utc))
        if record is None:
            raise NoSealKey("the agency has no valid agency-seal certificate with a key kept by the platform "
                            "(eauth cert issue --profile agency-seal --agency CODE --name NAME --id-number CREDIT_CODE)")
        return self._spec(record, long_term=True)

    def revocation(self, certificate: x509.Certificate) -> RevocationData:
        """OCSP responses for the seal and TSA certificates from our responder, and the current CRLs of
        the root and the seal CA (covering the seal CA itself): everything B-LT embeds, no network.

        Kept for ``REVOCATION_REUSE`` per seal (gathering it is ~3 ms of database reads, a quarter of
        a B-LT signature): an embedded OCSP response may then be up to that much older than the
        signature, well within its validity. Whether the seal may sign at all is read anew for every
        signature (``seal``), so a revoked seal stops signing at once."""
        now = time.monotonic()
        kept = self._revocation.get(certificate.serial_number)
        if kept is not None and now < kept[0]:
            return kept[1]
        ocsps = tuple(self._ocsp(c) for c in (certificate, self.tsa))
        publisher, transaction = crl_publisher(self.platform), crl_transactions(self.platform.db)
        crls = tuple(publisher.current(transaction, name).der for name in ("root", "seal"))
        data = RevocationData(ocsps=ocsps, crls=crls)
        self._revocation[certificate.serial_number] = (now + REVOCATION_REUSE, data)
        return data

    def _ocsp(self, certificate: x509.Certificate) -> bytes:
        request = x509_ocsp.OCSPRequestBuilder().add_certificate(certificate, self.seal_ca, hashes.SHA1()).build()
        answer = self.responder.respond(request.public_bytes(Encoding.DER), self.ocsp_store)
        if answer.status is not ResponseStatus.SUCCESSFUL:
            raise RuntimeError(f"our OCSP responder answered {answer.status.name}")
        return answer.der


def _organization(certificate: x509.Certificate, record: CertificateRecord) -> str:
    names = certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return str(names[0].value) if names else record.subject_dn


def sealer(platform: Platform) -> DocumentSealer:
    """The platform's sealer, made on first use and kept on it (nothing in it is state)."""
    return platform.kept(DocumentSealer)


def sign_job(pdf: bytes, serial: str, agency_id: int | None, level: str, certify: str | None,
             appearance: Appearance | None) -> bytes:
    """Process-pool job (plain, picklable values in and out): seal ``pdf`` with seal ``serial`` of agency
    ``agency_id`` in this worker's platform. Domain errors (NoSealKey, PageOutOfRange, ...) pickle."""
    from api.pool import worker_platform

    platform = worker_platform()
    spec = sealer(platform).seal(serial, agency_id=agency_id, long_term=level in ("B-LT", "B-LTA"))
    return sign_pdf(pdf, seal=spec, level=level, certify=certify, appearance=appearance,
                    limits=platform.settings.pdf_limits)


def record_signing(platform: Platform, *, actor: str, seal: str, pdf: bytes, signed: bytes, level: str) -> None:
    """The audit entry of a document sealed (the seal, the level and the digests in and out)."""
    with platform.db.transaction() as connection:
        audit.record(connection, actor=actor, action="document.sign", subject=seal.lower(),
                     details={"level": level, "input_sha256": hashlib.sha256(pdf).hexdigest(),
                              "output_sha256": hashlib.sha256(signed).hexdigest()})
