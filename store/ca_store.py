"""The CA's storage (``ca.records.CaStore``) over a SQLAlchemy session."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from sqlalchemy import Row, bindparam, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from ca.profiles import profile
from ca.records import Actor, AuthorityRecord, CertificateRecord, StatusChange, SubjectRecord
from store import audit
from store.models import Authority, Certificate, OcspResponse, Subject


_AUTHORITIES = Authority.__table__
_SUBJECTS = Subject.__table__
_OCSP_RESPONSES = OcspResponse.__table__
_CERTIFICATES = Certificate.__table__
# Statements built once: issuance runs them per request, and building them costs more than running them.
_SUBJECT_BY_INDEX = select(_SUBJECTS).where(
    _SUBJECTS.c.kind == bindparam("kind"), _SUBJECTS.c.id_number_index == bindparam("index")
)
_CERTIFICATE_BY_SERIAL = select(_CERTIFICATES).where(_CERTIFICATES.c.serial == bindparam("serial"))
_INSERT_CERTIFICATE = insert(_CERTIFICATES)
#: SQLite's stand-in for FOR UPDATE: a write that changes nothing, to take the write lock (see below).
_LOCK_CERTIFICATE = (update(_CERTIFICATES).where(_CERTIFICATES.c.serial == bindparam("locked_serial"))
                     .values(status=_CERTIFICATES.c.status))
_STATUS_ACTIONS = {"revoked": "revoke", "suspended": "suspend", "valid": "reinstate"}
_AGENCY_SEAL_ISSUER = profile("agency-seal").issuer


def _actor(actor: Actor) -> str:
    return "operator" if actor.agency_id is None else f"agency:{actor.agency_id}"


def _authority(row: Row) -> AuthorityRecord:
    certificate = x509.load_der_x509_certificate(row.certificate_der)
    return AuthorityRecord(row.name, row.role, row.parent, row.key_label, certificate)


def _subject(row: Row) -> SubjectRecord:
    return SubjectRecord(**{f: getattr(row, f) for f in SubjectRecord.__slots__})


def _certificate(row: Row) -> CertificateRecord:
    return CertificateRecord(**{f: getattr(row, f) for f in CertificateRecord.__slots__})


_INSERT_IGNORING_CONFLICTS = {
    "postgresql": postgresql.insert(_SUBJECTS).on_conflict_do_nothing(),
    "sqlite": sqlite.insert(_SUBJECTS).on_conflict_do_nothing(),
}


class SqlCaStore:
    """``CaStore`` within the caller's transaction: an ORM session, or a bare connection (lighter, for
    the issuance hot path). Only Core statements, so both work the same."""

    def __init__(self, session: Session | Connection) -> None:
        self.session = session

    def _dialect(self) -> str:
        bind = self.session if isinstance(self.session, Connection) else self.session.get_bind()
        return bind.dialect.name

    def authority(self, name: str) -> AuthorityRecord | None:
        row = self.session.execute(select(_AUTHORITIES).where(_AUTHORITIES.c.name == name)).first()
        return _authority(row) if row else None

    def authorities(self) -> list[AuthorityRecord]:
        rows = self.session.execute(select(_AUTHORITIES).order_by(_AUTHORITIES.c.created_at, _AUTHORITIES.c.name))
        return [_authority(row) for row in rows]

    def add_authority(self, record: AuthorityRecord) -> None:
        cert = record.certificate
        self.session.execute(
            insert(_AUTHORITIES).values(
                name=record.name,
                role=record.role,
                parent=record.parent,
                key_label=record.key_label,
                serial=f"{cert.serial_number:x}",
                certificate_der=cert.public_bytes(Encoding.DER),
                not_after=cert.not_valid_after_utc,
                created_at=cert.not_valid_before_utc,
            )
        )
        audit.record(self.session, actor="operator", action="authority.add", subject=record.name,
                     details={"role": record.role, "parent": record.parent, "serial": f"{cert.serial_number:x}"})

    def subject_by_index(self, kind: str, id_number_index: str) -> SubjectRecord | None:
        row = self.session.execute(_SUBJECT_BY_INDEX, {"kind": kind, "index": id_number_index}).first()
        return _subject(row) if row else None

    def subject(self, subject_id: str) -> SubjectRecord | None:
        row = self.session.execute(select(_SUBJECTS).where(_SUBJECTS.c.id == subject_id)).first()
        return _subject(row) if row else None

    def get_or_add_subject(self, record: SubjectRecord) -> SubjectRecord:
        # Issuance is the hot path: Core statements, and INSERT .. ON CONFLICT DO NOTHING so that two
        # agencies registering the same person at once both end up with the one stored subject.
        found = self.subject_by_index(record.kind, record.id_number_index)
        if found is None:
            values = {f: getattr(record, f) for f in SubjectRecord.__slots__} | {"created_at": datetime.now(timezone.utc)}
            self.session.execute(_INSERT_IGNORING_CONFLICTS[self._dialect()], values)
            found = self.subject_by_index(record.kind, record.id_number_index)
        if found.name != record.name:
            self.session.execute(update(_SUBJECTS).where(_SUBJECTS.c.id == found.id).values(name=record.name))
            found = replace(found, name=record.name)
        return found

    def add_certificate(self, record: CertificateRecord) -> None:
        self.session.execute(_INSERT_CERTIFICATE, {f: getattr(record, f) for f in CertificateRecord.__slots__})
        audit.record(self.session, actor=f"agency:{record.requested_by}",
                     action="certificate.renew" if record.replaces else "certificate.issue", subject=record.serial,
                     details={"issuer": record.issuer, "profile": record.profile, "subject_id": record.subject_id,
                              "sha256": record.sha256, "replaces": record.replaces})

    def certificate(self, serial: str) -> CertificateRecord | None:
        serial = serial.lower().lstrip("0") or "0"
        row = self.session.execute(_CERTIFICATE_BY_SERIAL, {"serial": serial}).first()
        return _certificate(row) if row else None

    def certificate_for_update(self, serial: str) -> CertificateRecord | None:
        serial = serial.lower().lstrip("0") or "0"
        if self._dialect() == "sqlite":
            # SQLite has no row locks, and pysqlite begins a transaction only at its first write: a read
            # first would let another writer change the row before this one's update (two revocations
            # of one certificate). A write first takes the database's write lock until the commit.
            self.session.execute(_LOCK_CERTIFICATE, {"locked_serial": serial})
            row = self.session.execute(_CERTIFICATE_BY_SERIAL, {"serial": serial}).first()
        else:
            row = self.session.execute(_CERTIFICATE_BY_SERIAL.with_for_update(), {"serial": serial}).first()
        return _certificate(row) if row else None

    def set_status(self, change: StatusChange, *, actor: Actor) -> None:
        self.session.execute(
            update(_CERTIFICATES)
            .where(_CERTIFICATES.c.serial == change.serial)
            .values(status=change.status, revoked_at=change.revoked_at, revocation_reason=change.reason,
                    invalidity_date=change.invalidity_date, revocation_entry=change.crl_entry)
        )
        self.session.execute(
            delete(_OCSP_RESPONSES).where(
                _OCSP_RESPONSES.c.issuer == change.issuer, _OCSP_RESPONSES.c.serial == change.serial
            )
        )
        audit.record(self.session, actor=_actor(actor), action=f"certificate.{_STATUS_ACTIONS[change.status]}",
                     subject=change.serial, details={"issuer": change.issuer, "reason": change.reason,
                                                     "invalidity_date": change.invalidity_date})

    def certificates_of_subject(self, subject_id: str) -> list[CertificateRecord]:
        rows = self.session.execute(
            select(_CERTIFICATES)
            .where(_CERTIFICATES.c.subject_id == subject_id)
            .order_by(_CERTIFICATES.c.not_before.desc(), _CERTIFICATES.c.created_at.desc())
        )
        return [_certificate(r) for r in rows]

    def agency_seal(self, agency_id: int, *, now: datetime) -> CertificateRecord | None:
        """The agency's newest valid, unexpired agency-seal certificate with a platform-kept key. By its
        issuing CA too: ix_certificates_issuer_status then reads the seal CA's valid certificates, not
        every citizen's (a sequential scan, ~0.5 s with a million certificates, on every license)."""
        row = self.session.execute(
            select(_CERTIFICATES)
            .where(_CERTIFICATES.c.issuer == _AGENCY_SEAL_ISSUER, _CERTIFICATES.c.requested_by == agency_id,
                   _CERTIFICATES.c.profile == "agency-seal",
                   _CERTIFICATES.c.status == "valid", _CERTIFICATES.c.key_label.is_not(None),
                   _CERTIFICATES.c.not_after > now)
            .order_by(_CERTIFICATES.c.not_before.desc(), _CERTIFICATES.c.created_at.desc())
            .limit(1)
        ).first()
        return _certificate(row) if row else None

