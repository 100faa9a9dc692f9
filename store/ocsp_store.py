"""The responder's storage (``ca.ocsp.OcspStore``): certificate status and cached responses.

Every request costs one query that reads the certificate's status together with any cached response
for it; a miss costs one more statement that stores the new response only if the status it was made
for is still the status in the table. That condition is what keeps a response from outliving a status
change that commits while it is being signed: on SQLite the store waits for the single writer and
then sees the latest data; on PostgreSQL ``FOR SHARE`` waits for the row lock a status change holds
(``certificate_for_update``) and re-reads the row, so either the change comes first and nothing is
stored, or the response is stored first and the change's ``set_status`` deletes it.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import and_, bindparam, exists, false, literal_column, null, select, true, union_all
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError
from sqlalchemy.sql.selectable import CompoundSelect

from ca.ocsp import CachedResponse, CertificateStatus
from store.db import Database, DatabaseUnavailable
from store.direct import DirectQuery, KeptConnections
from store.models import Authority, Certificate, OcspResponse

_CERTIFICATES = Certificate.__table__
_AUTHORITIES = Authority.__table__
_RESPONSES = OcspResponse.__table__


def _lookup(serial_clause) -> CompoundSelect:
    """Status of end-entity certificates (with the cached response) and of the platform's own
    certificates the CA issued (issuing CAs, responders, the TSA), for the serials ``serial_clause`` picks."""
    c, a, o = _CERTIFICATES.c, _AUTHORITIES.c, _RESPONSES.c
    end_entities = (
        select(c.serial, c.status, c.revoked_at, c.revocation_reason, c.invalidity_date,
               o.this_update, o.next_update, o.der, true().label("cacheable"))
        .select_from(_CERTIFICATES.outerjoin(_RESPONSES, and_(o.issuer == c.issuer, o.serial == c.serial)))
        .where(c.issuer == bindparam("issuer"), serial_clause(c.serial))
    )
    authorities = select(
        a.serial, a.status, a.revoked_at, a.revocation_reason, null(), null(), null(), null(), false()
    ).where(a.parent == bindparam("issuer"), serial_clause(a.serial))
    return union_all(end_entities, authorities)


# Statements built once: the responder runs one per request, and building costs more than running.
_ONE = _lookup(lambda column: column == bindparam("serial"))
_SEVERAL = _lookup(lambda column: column.in_(bindparam("serials", expanding=True)))
_KEPT = ("issuer", "serial", "this_update", "next_update", "der")


def _keep_statement(dialect: str):
    c = _CERTIFICATES.c
    unchanged = (
        select(literal_column("1"))
        .where(c.issuer == bindparam("issuer", type_=c.issuer.type),
               c.serial == bindparam("serial", type_=c.serial.type),
               c.status == bindparam("status", type_=c.status.type),
               c.revoked_at.is_not_distinct_from(bindparam("revoked_at", type_=c.revoked_at.type)))
        .with_for_update(read=True)  # FOR SHARE on PostgreSQL; nothing on SQLite (one writer at a time)
    )
    r = _RESPONSES.c
    values = select(*(bindparam(name, type_=r[name].type) for name in _KEPT)).where(exists(unchanged))
    insert = (postgresql if dialect == "postgresql" else sqlite).insert(_RESPONSES)
    statement = insert.from_select(list(_KEPT), values)
    return statement.on_conflict_do_update(
        index_elements=["issuer", "serial"],
        set_={"this_update": statement.excluded.this_update, "next_update": statement.excluded.next_update,
              "der": statement.excluded.der},
    )


class SqlOcspStore:
    """``OcspStore`` over a database. Each call is its own short transaction (a read, or one write), so
    a lookup never holds SQLite's write lock and a signature in progress holds no lock at all. The
    one-serial lookup, run on every request, is a ``store.direct`` query (straight to the driver)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._keep = _keep_statement(db.engine.dialect.name)
        self._connections = KeptConnections(db)
        self._one = DirectQuery(self._connections, _ONE)

    def close(self) -> None:
        """Close the connections every thread kept."""
        self._connections.close()

    def lookup(self, issuer: str, serials: Sequence[str]) -> dict[str, CertificateStatus]:
        if not serials:
            return {}
        if len(serials) == 1:
            rows = self._one.rows(issuer=issuer, serial=serials[0])
        else:
            try:
                with self.db.engine.connect() as connection:
                    rows = connection.execute(_SEVERAL, {"issuer": issuer, "serials": list(serials)}).all()
            except OperationalError as exc:
                raise DatabaseUnavailable(f"database error: {exc.orig}") from None
        return {
            serial: CertificateStatus(
                status, revoked_at, reason, invalidity_date,
                CachedResponse(this_update, next_update, der) if der is not None else None, bool(cacheable),
            )
            for serial, status, revoked_at, reason, invalidity_date, this_update, next_update, der, cacheable in rows
        }

    def keep(self, issuer: str, serial: str, seen: CertificateStatus, response: CachedResponse) -> None:
        with self.db.transaction() as connection:
            connection.execute(self._keep, {
                "issuer": issuer, "serial": serial, "status": seen.status, "revoked_at": seen.revoked_at,
                "this_update": response.this_update, "next_update": response.next_update, "der": response.der,
            })
