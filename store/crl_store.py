"""The storage of CRL publication (``ca.crl.CrlStore``) over a SQLAlchemy connection."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from datetime import datetime

from sqlalchemy import Row, select, union_all, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from ca.crl import CRL_ISSUER_ROLES, StoredCrl
from ca.records import AuthorityRecord
from store.ca_store import SqlCaStore
from store.db import Database
from store.models import Authority, Certificate, Crl

_AUTHORITIES = Authority.__table__
_CERTIFICATES = Certificate.__table__
_CRLS = Crl.__table__
_HEADER = (_CRLS.c.issuer, _CRLS.c.number, _CRLS.c.this_update, _CRLS.c.next_update, _CRLS.c.entries)

#: Rows fetched per round trip when streaming entries (~70 bytes each).
BATCH = 20_000

_UPSERT = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def _stored(row: Row, der: bytes | None = None) -> StoredCrl:
    return StoredCrl(row.issuer, row.number, row.this_update, row.next_update, row.entries, der)


class SqlCrlStore:
    """``CrlStore`` within the caller's transaction (an ORM session or a bare connection)."""

    def __init__(self, session: Session | Connection) -> None:
        self.session = session

    def _dialect(self) -> str:
        bind = self.session if isinstance(self.session, Connection) else self.session.get_bind()
        return bind.dialect.name

    def authority(self, name: str) -> AuthorityRecord | None:
        return SqlCaStore(self.session).authority(name)

    def crl_issuers(self) -> list[str]:
        rows = self.session.execute(
            select(_AUTHORITIES.c.name, _AUTHORITIES.c.role).where(_AUTHORITIES.c.role.in_(CRL_ISSUER_ROLES))
        )
        # The root first (its CAs may be made at the same second, so created_at does not order them).
        return [name for name, _ in sorted(rows, key=lambda row: (row.role != "root", row.name))]

    def crl(self, issuer: str, *, with_der: bool = True) -> StoredCrl | None:
        columns = (*_HEADER, _CRLS.c.der) if with_der else _HEADER
        row = self.session.execute(select(*columns).where(_CRLS.c.issuer == issuer)).first()
        if row is None:
            return None
        return _stored(row, row.der if with_der else None)

    def revocation_entries(self, issuer: str) -> Iterator[Sequence[bytes]]:
        # Revoked and suspended certificates (the (issuer, status) index finds them) and CA certificates
        # the issuer signed that are revoked: one statement, so one consistent read. yield_per streams
        # (a server-side cursor on PostgreSQL; SQLite steps through the rows as they are fetched).
        certificates = select(_CERTIFICATES.c.revocation_entry).where(
            _CERTIFICATES.c.issuer == issuer,
            _CERTIFICATES.c.status.in_(("revoked", "suspended")),
            _CERTIFICATES.c.revocation_entry.is_not(None),
        )
        authorities = select(_AUTHORITIES.c.revocation_entry).where(
            _AUTHORITIES.c.parent == issuer, _AUTHORITIES.c.revocation_entry.is_not(None)
        )
        statement = union_all(certificates, authorities).execution_options(yield_per=BATCH)
        yield from self.session.execute(statement).scalars().partitions()

    def allocate_crl_number(self, issuer: str, *, this_update: datetime, next_update: datetime
                            ) -> tuple[int, StoredCrl | None]:
        # One write statement, and the first of the transaction: on SQLite it takes the database's
        # write lock at once (a read first would make a later write fail when another writer got in
        # between); on PostgreSQL it locks the CA's row, so a concurrent publisher waits and then
        # sees the number and thisUpdate this one stores. The new row's placeholder values are
        # replaced by save_crl in the same transaction.
        insert = _UPSERT[self._dialect()](_CRLS).values(
            issuer=issuer, number=1, this_update=this_update, next_update=next_update, entries=0, der=b""
        )
        statement = insert.on_conflict_do_update(
            index_elements=[_CRLS.c.issuer], set_={"number": _CRLS.c.number + 1}
        ).returning(*_HEADER)
        row = self.session.execute(statement).one()
        # An existing row was at least 1 before the increment: number 1 means the row is new.
        previous = None if row.number == 1 else replace(_stored(row), number=row.number - 1)
        return row.number, previous

    def save_crl(self, crl: StoredCrl) -> None:
        result = self.session.execute(
            update(_CRLS)
            .where(_CRLS.c.issuer == crl.issuer, _CRLS.c.number == crl.number)
            .values(this_update=crl.this_update, next_update=crl.next_update, entries=crl.entries, der=crl.der)
        )
        if result.rowcount != 1:
            raise RuntimeError(f"CRL number {crl.number} of {crl.issuer} was not allocated in this transaction")


def crl_transactions(db: Database) -> Callable[[], AbstractContextManager[SqlCrlStore]]:
    """A ``ca.crl.CrlTransaction`` over ``db``: each call opens one transaction on a bare connection."""

    @contextmanager
    def transaction() -> Iterator[SqlCrlStore]:
        with db.transaction() as connection:
            yield SqlCrlStore(connection)

    return transaction
