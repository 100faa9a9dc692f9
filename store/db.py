"""Engine, sessions and schema migration for SQLite (embedded) and PostgreSQL (production)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from eauth.errors import DatabaseUnavailable, EauthError, NotInitialized, StorageFull

_MIGRATIONS = Path(__file__).with_name("migrations")
#: Seconds to wait for a PostgreSQL connection before answering 503 (a host that drops packets would
#: otherwise hold a request for the kernel's TCP timeout, minutes); ``?connect_timeout=`` in the URL wins.
CONNECT_TIMEOUT_SECONDS = 5
#: Seconds a request waits for a free pooled connection before answering 503.
POOL_TIMEOUT_SECONDS = 10
#: PostgreSQL SQLSTATEs and SQLite messages that mean the disk is full.
_DISK_FULL_SQLSTATES = frozenset({"53100"})  # disk_full
_SQLITE_DISK_FULL = "database or disk is full"


def database_error(exc: Exception) -> EauthError | None:
    """The domain error for a database failure that is the infrastructure's, not the request's: the
    server unreachable, restarting or gone mid-transaction, the pool exhausted, SQLite busy or locked
    (DatabaseUnavailable), the disk full (StorageFull). None for anything else (a constraint, a bug)."""
    if isinstance(exc, PoolTimeout):
        return DatabaseUnavailable("no database connection free in time; retry")
    if not isinstance(exc, DBAPIError):
        return None
    original = exc.orig
    message = str(original).strip().splitlines()[0] if str(original).strip() else type(original).__name__
    if getattr(original, "sqlstate", None) in _DISK_FULL_SQLSTATES or _SQLITE_DISK_FULL in message:
        return StorageFull(f"the database has no space left: {message}")
    if isinstance(exc, OperationalError | InterfaceError) or exc.connection_invalidated:
        return DatabaseUnavailable(f"database error: {message}")
    return None


@contextmanager
def _translated() -> Iterator[None]:
    """Infrastructure failures inside as ``database_error`` says; the rest as they are."""
    try:
        yield
    except (DBAPIError, PoolTimeout) as exc:
        mapped = database_error(exc)
        if mapped is None:
            raise
        raise mapped from None


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


class Database:
    """One engine and its session factory."""

    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith("sqlite"):
            self.engine: Engine = create_engine(url, connect_args={"check_same_thread": False})
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            # pre-ping: a connection the server dropped (restart, failover) is replaced at check-out,
            # not found broken by the request's first statement.
            connect_args = {} if "connect_timeout" in make_url(url).query else \
                {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
            self.engine = create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True,
                                        pool_timeout=POOL_TIMEOUT_SECONDS, connect_args=connect_args)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on any error."""
        with _translated(), self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A bare connection in one transaction, for Core-only hot paths (no ORM session to set up)."""
        with _translated(), self.engine.begin() as connection:
            yield connection

    def _alembic_config(self) -> Config:
        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        config.attributes["engine"] = self.engine
        return config

    def migrate(self) -> bool:
        """Bring the schema to the latest revisions (every branch head); True if anything was applied."""
        before = self.revisions()
        with _translated():
            command.upgrade(self._alembic_config(), "heads")
        return self.revisions() != before

    def revisions(self) -> frozenset[str]:
        """The applied revision of each migration branch (empty for a database never migrated)."""
        with _translated(), self.engine.connect() as connection:
            return frozenset(MigrationContext.configure(connection).get_current_heads())

    def require_current(self) -> None:
        """NotInitialized unless the schema is at the latest revision of every branch."""
        heads = frozenset(ScriptDirectory.from_config(self._alembic_config()).get_heads())
        if self.revisions() != heads:
            raise NotInitialized("database schema missing or out of date (run `eauth init`)")

    def dispose(self) -> None:
        self.engine.dispose()
