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
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from eauth.errors import EauthError, ErrorKind, NotInitialized

_MIGRATIONS = Path(__file__).with_name("migrations")


class DatabaseUnavailable(EauthError):
    """The database cannot be reached or refused the operation for a transient reason."""

    code = "database_unavailable"
    kind = ErrorKind.UNAVAILABLE
    title = "Database unavailable"


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
            self.engine = create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on any error."""
        with self._sessions() as session:
            try:
                with session.begin():
                    yield session
            except OperationalError as exc:
                raise DatabaseUnavailable(f"database error: {exc.orig}") from None

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A bare connection in one transaction, for Core-only hot paths (no ORM session to set up)."""
        try:
            with self.engine.begin() as connection:
                yield connection
        except OperationalError as exc:
            raise DatabaseUnavailable(f"database error: {exc.orig}") from None

    def _alembic_config(self) -> Config:
        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        config.attributes["engine"] = self.engine
        return config

    def migrate(self) -> bool:
        """Bring the schema to the latest revisions (every branch head); True if anything was applied."""
        before = self.revisions()
        command.upgrade(self._alembic_config(), "heads")
        return self.revisions() != before

    def revisions(self) -> frozenset[str]:
        """The applied revision of each migration branch (empty for a database never migrated)."""
        with self.engine.connect() as connection:
            return frozenset(MigrationContext.configure(connection).get_current_heads())

    def require_current(self) -> None:
        """NotInitialized unless the schema is at the latest revision of every branch."""
        heads = frozenset(ScriptDirectory.from_config(self._alembic_config()).get_heads())
        if self.revisions() != heads:
            raise NotInitialized("database schema missing or out of date (run `eauth init`)")

    def dispose(self) -> None:
        self.engine.dispose()
