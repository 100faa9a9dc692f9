"""Statistics: licenses issued, verified and revoked per issuing agency, license type and day (UTC),
counted in SQL from ``license_events`` and ``verifications`` (SQLite and PostgreSQL alike)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Date, and_, cast, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from store.models import Agency, License, LicenseEvent, LicenseVersion, Verification

_EVENTS = LicenseEvent.__table__
_LICENSES = License.__table__
_VERSIONS = LicenseVersion.__table__
_VERIFICATIONS = Verification.__table__
_AGENCIES = Agency.__table__
#: Verification kinds whose subject is a license identifier (a certificate's is its serial).
LICENSE_KINDS = ("pdf", "qr", "presentation")


@dataclass(frozen=True, slots=True)
class StatsRow:
    day: date
    agency_id: int
    agency_code: str
    license_type: str
    issued: int = 0
    verified: int = 0
    revoked: int = 0


def _day(column, dialect: str):
    # The UTC calendar day: SQLite stores UTC text ('YYYY-MM-DD HH:MM:SS…'); PostgreSQL's date of a
    # timestamptz would follow the session's time zone, so it is converted to UTC first.
    return func.date(column) if dialect == "sqlite" else cast(func.timezone("UTC", column), Date)


def license_stats(connection: Connection | Session, *, since: datetime | None = None, until: datetime | None = None,
                  agency_id: int | None = None, license_type: str | None = None) -> list[StatsRow]:
    """Counts per (day, issuing agency, license type) in [since, until), newest day first. Issued and
    revoked: license events; verified: verifications by relying parties whose subject is a license
    identifier (any version of it), counted for the license's agency and type."""
    bind = connection if isinstance(connection, Connection) else connection.get_bind()
    dialect = bind.dialect.name

    def scoped(query, at):
        conditions = [c for c in (
            at >= since if since is not None else None, at < until if until is not None else None,
            _LICENSES.c.agency_id == agency_id if agency_id is not None else None,
            _LICENSES.c.type_code == license_type if license_type is not None else None) if c is not None]
        return query.where(and_(*conditions)) if conditions else query

    counts: dict[tuple, dict[str, int]] = {}
    for name, action in (("issued", "issue"), ("revoked", "revoke")):
        day = _day(_EVENTS.c.at, dialect).label("day")
        query = (select(day, _LICENSES.c.agency_id, _LICENSES.c.type_code, func.count())
                 .join_from(_EVENTS, _LICENSES, _LICENSES.c.id == _EVENTS.c.license_id)
                 .where(_EVENTS.c.action == action)
                 .group_by(day, _LICENSES.c.agency_id, _LICENSES.c.type_code))
        for d, agency, type_code, n in connection.execute(scoped(query, _EVENTS.c.at)):
            counts.setdefault((d, agency, type_code), {})[name] = n
    day = _day(_VERIFICATIONS.c.at, dialect).label("day")
    query = (select(day, _LICENSES.c.agency_id, _LICENSES.c.type_code, func.count())
             .join_from(_VERIFICATIONS, _VERSIONS, _VERSIONS.c.identifier == _VERIFICATIONS.c.subject)
             .join(_LICENSES, _LICENSES.c.id == _VERSIONS.c.license_id)
             .where(_VERIFICATIONS.c.kind.in_(LICENSE_KINDS))
             .group_by(day, _LICENSES.c.agency_id, _LICENSES.c.type_code))
    for d, agency, type_code, n in connection.execute(scoped(query, _VERIFICATIONS.c.at)):
        counts.setdefault((d, agency, type_code), {})["verified"] = n
    codes = dict(connection.execute(select(_AGENCIES.c.id, _AGENCIES.c.code)).all()) if counts else {}
    rows = [StatsRow(d if isinstance(d, date) else date.fromisoformat(d), agency, codes.get(agency, ""), type_code,
                     **values) for (d, agency, type_code), values in counts.items()]
    return sorted(rows, key=lambda r: (-r.day.toordinal(), r.agency_code, r.license_type))
