"""The CA's storage (``ca.records.CaStore``) over a SQLAlchemy session."""

from __future__ import annotations

from datetime import datetime, timezone

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ca.records import AuthorityRecord, CertificateRecord, SubjectRecord
from store.models import Authority, Certificate, Subject


def _subject(row: Subject) -> SubjectRecord:
    return SubjectRecord(
        id=row.id,
        kind=row.kind,
        name=row.name,
        pseudonym=row.pseudonym,
        id_number_index=row.id_number_index,
        id_number_ciphertext=row.id_number_ciphertext,
        registered_by=row.registered_by,
    )


def _certificate(row: Certificate) -> CertificateRecord:
    return CertificateRecord(
        serial=row.serial,
        issuer=row.issuer,
        profile=row.profile,
        subject_id=row.subject_id,
        subject_dn=row.subject_dn,
        not_before=row.not_before,
        not_after=row.not_after,
        status=row.status,
        sha256=row.sha256,
        der=row.der,
        key_label=row.key_label,
        requested_by=row.requested_by,
        created_at=row.created_at,
    )


class SqlCaStore:
    """``CaStore`` within the caller's transaction."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def authority(self, name: str) -> AuthorityRecord | None:
        row = self.session.get(Authority, name)
        if row is None:
            return None
        cert = x509.load_der_x509_certificate(row.certificate_der)
        return AuthorityRecord(row.name, row.role, row.parent, row.key_label, cert)

    def authorities(self) -> list[AuthorityRecord]:
        names = self.session.scalars(select(Authority.name).order_by(Authority.created_at, Authority.name))
        return [self.authority(name) for name in names]

    def add_authority(self, record: AuthorityRecord) -> None:
        cert = record.certificate
        self.session.add(
            Authority(
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
        self.session.flush()

    def subject_by_index(self, kind: str, id_number_index: str) -> SubjectRecord | None:
        row = self.session.scalar(
            select(Subject).where(Subject.kind == kind, Subject.id_number_index == id_number_index)
        )
        return _subject(row) if row else None

    def subject(self, subject_id: str) -> SubjectRecord | None:
        row = self.session.get(Subject, subject_id)
        return _subject(row) if row else None

    def get_or_add_subject(self, record: SubjectRecord) -> SubjectRecord:
        for _ in range(2):
            row = self.session.scalar(
                select(Subject).where(Subject.kind == record.kind, Subject.id_number_index == record.id_number_index)
            )
            if row is not None:
                if row.name != record.name:
                    row.name = record.name
                return _subject(row)
            try:
                with self.session.begin_nested():
                    self.session.add(
                        Subject(
                            id=record.id,
                            kind=record.kind,
                            name=record.name,
                            pseudonym=record.pseudonym,
                            id_number_index=record.id_number_index,
                            id_number_ciphertext=record.id_number_ciphertext,
                            registered_by=record.registered_by,
                            created_at=datetime.now(timezone.utc),
                        )
                    )
                return record
            except IntegrityError:
                continue  # registered concurrently by another request: read theirs
        raise RuntimeError("subject neither insertable nor found")

    def add_certificate(self, record: CertificateRecord) -> None:
        self.session.add(
            Certificate(
                serial=record.serial,
                issuer=record.issuer,
                profile=record.profile,
                subject_id=record.subject_id,
                subject_dn=record.subject_dn,
                not_before=record.not_before,
                not_after=record.not_after,
                status=record.status,
                sha256=record.sha256,
                der=record.der,
                key_label=record.key_label,
                requested_by=record.requested_by,
                created_at=record.created_at,
            )
        )
        self.session.flush()

    def certificate(self, serial: str) -> CertificateRecord | None:
        row = self.session.get(Certificate, serial.lower().lstrip("0") or "0")
        return _certificate(row) if row else None

    def certificates_of_subject(self, subject_id: str) -> list[CertificateRecord]:
        rows = self.session.scalars(
            select(Certificate).where(Certificate.subject_id == subject_id).order_by(Certificate.not_before.desc())
        )
        return [_certificate(r) for r in rows]
