"""What the license registry stores, and the storage it needs (implemented in ``store.license_store``
and ``store.blobs``)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

#: Statuses a license record can be in. "expired" is also derived from the date before a sweep records
#: it; "superseded" is derived for a version that is no longer current.
STATUSES = ("valid", "suspended", "revoked", "cancelled", "expired")


@dataclass(frozen=True, slots=True)
class LicenseTypeRecord:
    """A catalog entry: the owning agency and the type's definition as JSON."""

    code: str
    agency_id: int
    spec: dict


@dataclass(frozen=True, slots=True)
class LicenseRecord:
    """A license across its versions, with its current status and version."""

    id: str
    type_code: str
    agency_id: int
    issuer_code: str
    serial: str
    holder_kind: str
    holder_index: str
    holder_name: str
    status: str
    status_reason: str | None
    version: int
    identifier: str
    valid_until: date | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class VersionRecord:
    """One issued version: encrypted fields, the data digest the QR binds, the PDF's hash and size."""

    license_id: str
    version: int
    identifier: str
    fields_ciphertext: bytes
    digest: str
    issued_on: date
    valid_until: date | None
    pdf_sha256: str
    pdf_size: int
    seal_serial: str
    qr_token: str
    created_at: datetime
    superseded_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One change of a license: who did what, when, and why."""

    license_id: str
    version: int
    action: str
    actor: str
    reason: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class RequestKey:
    """A client's idempotency key for an issuance, with the hash of the request it named."""

    agency_id: int
    key: str
    request_sha256: str


class BlobStore(Protocol):
    """Documents by their SHA-256 (hex): a directory by default, an object store in production."""

    def put(self, data: bytes) -> str:
        """Store ``data`` durably and return its key (SHA-256 hex); storing it twice is harmless."""
        ...

    def get(self, key: str) -> bytes:
        """The document; NotFound if there is none."""
        ...

    def exists(self, key: str) -> bool: ...


class LicenseStore(Protocol):
    """The registry, within one transaction."""

    def license_type(self, code: str) -> LicenseTypeRecord | None: ...

    def license_types(self, agency_id: int | None = None) -> list[LicenseTypeRecord]: ...

    def add_license_type(self, record: LicenseTypeRecord, *, name_zh: str, name_en: str) -> None:
        """AlreadyExists if the code is taken."""
        ...

    def request(self, agency_id: int, key: str) -> tuple[str, str] | None:
        """The (request SHA-256, license id) an idempotency key made, if any."""
        ...

    def take_serials(self, type_code: str, issuer_code: str, count: int = 1) -> int:
        """Reserve ``count`` consecutive serial numbers and return the first."""
        ...

    def add_license(self, license: LicenseRecord, version: VersionRecord, event: EventRecord,
                    request: RequestKey | None) -> None:
        """Insert a new license with its first version; AlreadyExists if ``request`` was taken meanwhile
        (the transaction is then unusable: roll it back)."""
        ...

    def add_version(self, license: LicenseRecord, version: VersionRecord, event: EventRecord) -> None:
        """A new current version (amendment): the previous one superseded, the license updated."""
        ...

    def license(self, license_id: str, *, for_update: bool = False) -> LicenseRecord | None: ...

    def license_by_identifier(self, identifier: str) -> tuple[LicenseRecord, VersionRecord] | None:
        """The license and the version an identifier (of any version) names."""
        ...

    def version(self, license_id: str, version: int) -> VersionRecord | None: ...

    def version_by_pdf(self, sha256: str) -> VersionRecord | None: ...

    def licenses_of_holder(self, holder_kind: str, holder_index: str) -> list[LicenseRecord]: ...

    def set_status(self, license: LicenseRecord, event: EventRecord) -> None:
        """Store ``license``'s new status with the event that changed it."""
        ...

    def events(self, license_id: str) -> list[EventRecord]: ...


#: A new transaction over the registry: committed when the block ends, rolled back on an error.
LicenseTransaction = Callable[[], AbstractContextManager[LicenseStore]]

