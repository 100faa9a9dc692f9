"""What the CA stores, and the storage it needs (implemented in ``store.ca_store``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from cryptography import x509


@dataclass(frozen=True, slots=True)
class AuthorityRecord:
    """One of the platform's own certificates (root, issuing CA, OCSP signer, TSA) and its key's label."""

    name: str
    role: str
    parent: str | None
    key_label: str
    certificate: x509.Certificate


@dataclass(frozen=True, slots=True)
class SubjectRecord:
    """A registered person, enterprise or agency; the identity number only encrypted and blind-indexed."""

    id: str
    kind: str
    name: str
    pseudonym: str
    id_number_index: str
    id_number_ciphertext: bytes
    registered_by: int


@dataclass(frozen=True, slots=True)
class CertificateRecord:
    """An issued end-entity certificate with its status."""

    serial: str
    issuer: str
    profile: str
    subject_id: str
    subject_dn: str
    not_before: datetime
    not_after: datetime
    status: str
    sha256: str
    der: bytes
    key_label: str | None
    requested_by: int
    created_at: datetime
    revoked_at: datetime | None = None
    revocation_reason: str | None = None
    invalidity_date: datetime | None = None
    replaces: str | None = None

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.der)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asks for a status change: an agency (by id), or the platform operator (``agency_id=None``)."""

    agency_id: int | None

    def may_change(self, record: CertificateRecord) -> bool:
        """The operator may change any certificate; an agency only those it registered."""
        return self.agency_id is None or self.agency_id == record.requested_by


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A certificate's new status; the revocation fields are None when it is valid again."""

    serial: str
    issuer: str
    status: str
    revoked_at: datetime | None
    reason: str | None
    invalidity_date: datetime | None
    crl_entry: bytes | None


class CaStore(Protocol):
    """Persistence the CA needs, within one transaction."""

    def authority(self, name: str) -> AuthorityRecord | None: ...

    def add_authority(self, record: AuthorityRecord) -> None: ...

    def get_or_add_subject(self, record: SubjectRecord) -> SubjectRecord:
        """The stored subject with ``record``'s kind and index, inserting ``record`` if there is none;
        the name is updated to ``record.name`` (the registering agency has just verified it)."""
        ...

    def subject_by_index(self, kind: str, id_number_index: str) -> SubjectRecord | None: ...

    def add_certificate(self, record: CertificateRecord) -> None: ...

    def certificate(self, serial: str) -> CertificateRecord | None: ...

    def certificates_of_subject(self, subject_id: str) -> list[CertificateRecord]: ...

    def subject(self, subject_id: str) -> SubjectRecord | None: ...

    def certificate_for_update(self, serial: str) -> CertificateRecord | None:
        """The certificate, locked against concurrent status changes until the transaction ends."""
        ...

    def set_status(self, change: StatusChange, *, actor: Actor) -> None:
        """Record a status change (and who made it, for the audit trail) and drop every cached status
        answer (OCSP) for the certificate."""
        ...
