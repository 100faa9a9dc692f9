"""Grants of licenses to agencies and their access log (``licenses.grants.GrantStore``) over SQLAlchemy
Core, within the caller's transaction; audit entries go into the same transaction."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime

from sqlalchemy import Row, func, insert, select, update
from sqlalchemy.engine import Connection

from licenses.grants import AccessRecord, GrantRecord, GrantTransaction
from licenses.records import LicenseRecord, VersionRecord
from store import audit
from store.db import Database
from store.license_store import SqlLicenseStore
from store.models import Agency, License, LicenseGrant, LicenseGrantAccess

_GRANTS = LicenseGrant.__table__
_ACCESSES = LicenseGrantAccess.__table__
_AGENCIES = Agency.__table__
_LICENSES = License.__table__
_GRANT_COLUMNS = [c.name for c in _GRANTS.columns]


def _grant(row: Row) -> GrantRecord:
    return GrantRecord(**{name: getattr(row, name) for name in _GRANT_COLUMNS})


class SqlGrantStore:
    """``GrantStore`` within the caller's transaction (a bare connection), plus the listings."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._licenses = SqlLicenseStore(connection)

    # -- what the domain needs ---------------------------------------------------------------------

    def license(self, license_id: str) -> LicenseRecord | None:
        return self._licenses.license(license_id)

    def license_by_identifier(self, identifier: str) -> tuple[LicenseRecord, VersionRecord] | None:
        return self._licenses.license_by_identifier(identifier)

    def version(self, license_id: str, version: int) -> VersionRecord | None:
        return self._licenses.version(license_id, version)

    def agency_id(self, code: str) -> int | None:
        return self.connection.execute(select(_AGENCIES.c.id).where(_AGENCIES.c.code == code)).scalar_one_or_none()

    def add_grant(self, grant: GrantRecord) -> None:
        self.connection.execute(insert(_GRANTS).values(**asdict(grant)))

    def grant(self, grant_id: str, *, for_update: bool = False) -> GrantRecord | None:
        query = select(_GRANTS).where(_GRANTS.c.id == grant_id)
        if for_update and self.connection.dialect.name == "sqlite":
            # No row locks on SQLite, and pysqlite begins a transaction only at its first write: a write
            # that changes nothing takes the write lock first, so two withdrawals cannot both read it open.
            self.connection.execute(update(_GRANTS).where(_GRANTS.c.id == grant_id)
                                    .values(withdrawn_at=_GRANTS.c.withdrawn_at))
        elif for_update:
            query = query.with_for_update()
        row = self.connection.execute(query).first()
        return _grant(row) if row is not None else None

    def withdraw(self, grant_id: str, at: datetime) -> None:
        self.connection.execute(update(_GRANTS).where(_GRANTS.c.id == grant_id).values(withdrawn_at=at))

    def add_access(self, access: AccessRecord) -> None:
        self.connection.execute(insert(_ACCESSES).values(**asdict(access)))

    def audit(self, *, actor: str, action: str, subject: str, details: dict) -> None:
        audit.record(self.connection, actor=actor, action=action, subject=subject, details=details)

    # -- listings ----------------------------------------------------------------------------------

    def grants_of_holder(self, holder_kind: str, holder_index: str) -> list[tuple[GrantRecord, str, str, int]]:
        """Every grant the holder made, newest first: (grant, license identifier, agency code, accesses)."""
        accesses = (select(func.count()).where(_ACCESSES.c.grant_id == _GRANTS.c.id)
                    .correlate(_GRANTS).scalar_subquery())
        rows = self.connection.execute(
            select(_GRANTS, _LICENSES.c.identifier, _AGENCIES.c.code.label("agency_code"), accesses.label("accesses"))
            .join(_LICENSES, _LICENSES.c.id == _GRANTS.c.license_id)
            .join(_AGENCIES, _AGENCIES.c.id == _GRANTS.c.agency_id)
            .where(_GRANTS.c.holder_kind == holder_kind, _GRANTS.c.holder_index == holder_index)
            .order_by(_GRANTS.c.created_at.desc(), _GRANTS.c.id))
        return [(_grant(row), row.identifier, row.agency_code, row.accesses) for row in rows]

    def live_grants_for(self, agency_id: int, now: datetime) -> list[tuple[GrantRecord, LicenseRecord]]:
        """The agency's grants that are live at ``now``, soonest to end first, with their licenses."""
        rows = self.connection.execute(
            select(*(c.label(f"g_{c.name}") for c in _GRANTS.columns), _LICENSES)
            .join(_LICENSES, _LICENSES.c.id == _GRANTS.c.license_id)
            .where(_GRANTS.c.agency_id == agency_id, _GRANTS.c.withdrawn_at.is_(None), _GRANTS.c.valid_until > now)
            .order_by(_GRANTS.c.valid_until, _GRANTS.c.id))
        found = []
        for row in rows:
            values = row._mapping
            grant = GrantRecord(**{name: values[f"g_{name}"] for name in _GRANT_COLUMNS})
            license = LicenseRecord(**{c.name: values[c.name] for c in _LICENSES.columns})
            found.append((grant, license))
        return found

    def accesses(self, grant_id: str) -> list[AccessRecord]:
        rows = self.connection.execute(
            select(_ACCESSES).where(_ACCESSES.c.grant_id == grant_id).order_by(_ACCESSES.c.id))
        return [AccessRecord(r.grant_id, r.agency_id, r.client_id, r.purpose, r.what, r.at) for r in rows]


def grant_transactions(db: Database) -> GrantTransaction:
    """Transactions over the grant store on bare connections."""

    @contextmanager
    def transaction() -> Iterator[SqlGrantStore]:
        with db.transaction() as connection:
            yield SqlGrantStore(connection)

    return transaction
