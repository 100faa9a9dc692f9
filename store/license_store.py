"""The license registry (``licenses.records.LicenseStore``) over SQLAlchemy Core, within the caller's
transaction, and the agency seal images."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict

from sqlalchemy import Row, bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from eauth.errors import AlreadyExists
from store import audit
from licenses.records import (
    EventRecord,
    LicenseRecord,
    LicenseTransaction,
    LicenseTypeRecord,
    RequestKey,
    VersionRecord,
)
from store.db import Database
from store.direct import DirectQuery, KeptConnections
from store.models import (
    Agency,
    License,
    LicenseEvent,
    LicenseRequest,
    LicenseSerial,
    LicenseType,
    LicenseVersion,
)

_TYPES = LicenseType.__table__
_LICENSES = License.__table__
_VERSIONS = LicenseVersion.__table__
_EVENTS = LicenseEvent.__table__
_REQUESTS = LicenseRequest.__table__
_SERIALS = LicenseSerial.__table__
_AGENCIES = Agency.__table__
_UPSERT = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
_LICENSE_COLUMNS = [c.name for c in _LICENSES.columns]
_VERSION_COLUMNS = [c.name for c in _VERSIONS.columns]


_INSERT_LICENSE, _INSERT_VERSION, _INSERT_EVENT, _INSERT_REQUEST = (
    insert(table) for table in (_LICENSES, _VERSIONS, _EVENTS, _REQUESTS))
_REGISTRY_ENTRY = (
    select(*(c.label(f"l_{c.name}") for c in _LICENSES.columns), *(c.label(f"v_{c.name}") for c in _VERSIONS.columns),
           _AGENCIES.c.name.label("agency_name"))
    .join_from(_VERSIONS, _LICENSES, _VERSIONS.c.license_id == _LICENSES.c.id)
    .join(_AGENCIES, _AGENCIES.c.id == _LICENSES.c.agency_id)
    .where(_VERSIONS.c.identifier == bindparam("identifier"))
)


class RegistryLookup:
    """``SqlLicenseStore.registry_entry`` as a ``store.direct`` query, for QR verification (one per
    request): the same records, without a transaction or a pool check-out."""

    def __init__(self, db: Database) -> None:
        self._connections = KeptConnections(db)
        self._query = DirectQuery(self._connections, _REGISTRY_ENTRY)

    def entry(self, identifier: str) -> tuple[LicenseRecord, VersionRecord, str] | None:
        rows = self._query.rows(identifier=identifier)
        if not rows:
            return None
        row, split = rows[0], len(_LICENSE_COLUMNS)
        license = LicenseRecord(**dict(zip(_LICENSE_COLUMNS, row[:split])))
        version = VersionRecord(**dict(zip(_VERSION_COLUMNS, row[split:split + len(_VERSION_COLUMNS)])))
        return license, version, row[-1]

    def close(self) -> None:
        self._connections.close()


def _license(row: Row) -> LicenseRecord:
    return LicenseRecord(**{name: getattr(row, name) for name in _LICENSE_COLUMNS})


def _version(row: Row) -> VersionRecord:
    return VersionRecord(**{name: getattr(row, name) for name in _VERSION_COLUMNS})


class SqlLicenseStore:
    """``LicenseStore`` within the caller's transaction (an ORM session or a bare connection)."""

    def __init__(self, session: Session | Connection) -> None:
        self.session = session

    def _dialect(self) -> str:
        bind = self.session if isinstance(self.session, Connection) else self.session.get_bind()
        return bind.dialect.name

    # -- catalog -----------------------------------------------------------------------------------

    def license_type(self, code: str) -> LicenseTypeRecord | None:
        row = self.session.execute(select(_TYPES).where(_TYPES.c.code == code)).first()
        return LicenseTypeRecord(row.code, row.agency_id, json.loads(row.spec)) if row is not None else None

    def license_types(self, agency_id: int | None = None) -> list[LicenseTypeRecord]:
        query = select(_TYPES).order_by(_TYPES.c.code)
        if agency_id is not None:
            query = query.where(_TYPES.c.agency_id == agency_id)
        return [LicenseTypeRecord(r.code, r.agency_id, json.loads(r.spec)) for r in self.session.execute(query)]

    def add_license_type(self, record: LicenseTypeRecord, *, name_zh: str, name_en: str) -> None:
        try:
            with self._savepoint():
                self.session.execute(insert(_TYPES).values(
                    code=record.code, agency_id=record.agency_id, name_zh=name_zh, name_en=name_en,
                    spec=json.dumps(record.spec, ensure_ascii=False, sort_keys=True),
                    created_at=datetime.now(timezone.utc)))
        except IntegrityError:
            raise AlreadyExists(f"license type {record.code} already exists") from None
        audit.record(self.session, actor=f"agency:{record.agency_id}", action="license_type.add", subject=record.code,
                     details={"agency_id": record.agency_id, "name_zh": name_zh, "name_en": name_en})

    # -- issuance ----------------------------------------------------------------------------------

    def request(self, agency_id: int, key: str) -> tuple[str, str] | None:
        row = self.session.execute(
            select(_REQUESTS.c.request_sha256, _REQUESTS.c.license_id)
            .where(_REQUESTS.c.agency_id == agency_id, _REQUESTS.c.request_key == key)).first()
        return (row.request_sha256, row.license_id) if row is not None else None

    def take_serials(self, type_code: str, issuer_code: str, count: int = 1) -> int:
        """One statement: insert the counter or add ``count`` to it, returning the new next value; the
        row lock (PostgreSQL) or the write lock (SQLite) makes concurrent takers queue, never collide."""
        upsert = _UPSERT[self._dialect()](_SERIALS).values(
            type_code=type_code, issuer_code=issuer_code, next_serial=1 + count)
        upsert = upsert.on_conflict_do_update(
            index_elements=[_SERIALS.c.type_code, _SERIALS.c.issuer_code],
            set_={"next_serial": _SERIALS.c.next_serial + count},
        ).returning(_SERIALS.c.next_serial)
        return self.session.execute(upsert).scalar_one() - count

    def add_license(self, license: LicenseRecord, version: VersionRecord, event: EventRecord,
                    request: RequestKey | None) -> None:
        # The parameters are made before the first statement: on SQLite that takes the one write lock,
        # which every issuing process queues for until this transaction commits. No savepoint: a clash
        # fails the whole transaction, which the caller then rolls back.
        rows = [(_INSERT_LICENSE, asdict(license)), (_INSERT_VERSION, asdict(version)), (_INSERT_EVENT, asdict(event))]
        if request is not None:
            rows.append((_INSERT_REQUEST, {"agency_id": request.agency_id, "request_key": request.key,
                                           "request_sha256": request.request_sha256, "license_id": license.id,
                                           "created_at": event.at}))
        try:
            for statement, parameters in rows:
                self.session.execute(statement, parameters)
        except IntegrityError:
            raise AlreadyExists(f"license {license.identifier} or its request key exists already") from None
        _audit_event(self.session, license, event)

    def add_version(self, license: LicenseRecord, version: VersionRecord, event: EventRecord) -> None:
        self.session.execute(
            update(_VERSIONS).where(_VERSIONS.c.license_id == license.id, _VERSIONS.c.superseded_at.is_(None))
            .values(superseded_at=event.at))
        self.session.execute(insert(_VERSIONS).values(**asdict(version)))
        self.session.execute(update(_LICENSES).where(_LICENSES.c.id == license.id).values(
            version=license.version, identifier=license.identifier, valid_until=license.valid_until,
            holder_name=license.holder_name, updated_at=license.updated_at))
        self.session.execute(insert(_EVENTS).values(**asdict(event)))
        _audit_event(self.session, license, event)

    # -- reading -----------------------------------------------------------------------------------

    def license(self, license_id: str, *, for_update: bool = False) -> LicenseRecord | None:
        query = select(_LICENSES).where(_LICENSES.c.id == license_id)
        if for_update and self._dialect() == "sqlite":
            # No row locks, and pysqlite begins a transaction only at its first write: a read first
            # would let another writer change the license before this one's update (two amendments
            # of one version, two revocations). A write first takes the database's write lock.
            self.session.execute(update(_LICENSES).where(_LICENSES.c.id == license_id)
                                 .values(status=_LICENSES.c.status))
        elif for_update:
            query = query.with_for_update()
        row = self.session.execute(query).first()
        return _license(row) if row is not None else None

    def license_by_identifier(self, identifier: str) -> tuple[LicenseRecord, VersionRecord] | None:
        found = self.registry_entry(identifier)
        return found[:2] if found is not None else None

    def registry_entry(self, identifier: str) -> tuple[LicenseRecord, VersionRecord, str] | None:
        """The license, the version an identifier names and the issuing agency's name, in one query
        (what a QR verification needs)."""
        row = self.session.execute(_REGISTRY_ENTRY, {"identifier": identifier}).first()
        if row is None:
            return None
        values = row._mapping
        license = LicenseRecord(**{name: values[f"l_{name}"] for name in _LICENSE_COLUMNS})
        version = VersionRecord(**{name: values[f"v_{name}"] for name in _VERSION_COLUMNS})
        return license, version, values["agency_name"]

    def version(self, license_id: str, version: int) -> VersionRecord | None:
        row = self.session.execute(
            select(_VERSIONS).where(_VERSIONS.c.license_id == license_id, _VERSIONS.c.version == version)).first()
        return _version(row) if row is not None else None

    def version_by_pdf(self, sha256: str) -> VersionRecord | None:
        row = self.session.execute(select(_VERSIONS).where(_VERSIONS.c.pdf_sha256 == sha256)).first()
        return _version(row) if row is not None else None

    def licenses_of_holder(self, holder_kind: str, holder_index: str) -> list[LicenseRecord]:
        rows = self.session.execute(
            select(_LICENSES).where(_LICENSES.c.holder_kind == holder_kind, _LICENSES.c.holder_index == holder_index)
            .order_by(_LICENSES.c.created_at, _LICENSES.c.id))
        return [_license(row) for row in rows]

    def set_status(self, license: LicenseRecord, event: EventRecord) -> None:
        self.session.execute(update(_LICENSES).where(_LICENSES.c.id == license.id).values(
            status=license.status, status_reason=license.status_reason, updated_at=license.updated_at))
        self.session.execute(insert(_EVENTS).values(**asdict(event)))
        _audit_event(self.session, license, event)

    def events(self, license_id: str) -> list[EventRecord]:
        rows = self.session.execute(
            select(_EVENTS).where(_EVENTS.c.license_id == license_id).order_by(_EVENTS.c.id))
        return [EventRecord(r.license_id, r.version, r.action, r.actor, r.reason, r.at) for r in rows]

    # -- agency seal images ------------------------------------------------------------------------

    def seal_image_key(self, agency_id: int) -> str | None:
        return self.session.execute(
            select(_AGENCIES.c.seal_image_sha256).where(_AGENCIES.c.id == agency_id)).scalar_one_or_none()

    def set_seal_image_key(self, agency_id: int, key: str | None, *, actor: str) -> None:
        self.session.execute(update(_AGENCIES).where(_AGENCIES.c.id == agency_id).values(seal_image_sha256=key))
        audit.record(self.session, actor=actor, action="agency.seal_image", subject=f"agency:{agency_id}",
                     details={"sha256": key})

    @contextmanager
    def _savepoint(self) -> Iterator[None]:
        with self.session.begin_nested():
            yield


def _audit_event(session: Session | Connection, license: LicenseRecord, event: EventRecord) -> None:
    """The audit entry of a license event, last in its transaction."""
    audit.record(session, actor=event.actor, action=f"license.{event.action}", subject=license.identifier,
                 details={"license_id": license.id, "version": event.version, "type_code": license.type_code,
                          "agency_id": license.agency_id, "status": license.status, "reason": event.reason})


def license_transactions(db: Database) -> LicenseTransaction:
    """Transactions on bare connections (no ORM session to set up on the issuance path)."""

    @contextmanager
    def transaction() -> Iterator[SqlLicenseStore]:
        with db.transaction() as connection:
            yield SqlLicenseStore(connection)

    return transaction
