"""Database failures that are the infrastructure's become DatabaseUnavailable / StorageFull (503 with
Retry-After) in one place, ``store.db.database_error``; the request's own (a constraint) stay what they
are. Made with real SQLite files: a write lock held by another connection, a database that can't open."""

from __future__ import annotations

import sqlite3

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from api import problems
from eauth.errors import DatabaseUnavailable
from store.db import Database, database_error
from tests.helpers import assert_problem


@pytest.fixture
def database(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'locked.db'}")
    with db.transaction() as connection:
        connection.execute(text("CREATE TABLE item (id INTEGER PRIMARY KEY)"))
    yield db, tmp_path / "locked.db"
    db.dispose()


def test_sqlite_locked_by_another_writer_is_database_unavailable(database):
    db, path = database
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's write transaction
    try:
        with pytest.raises(DatabaseUnavailable, match="locked"):
            with db.transaction() as connection:
                connection.exec_driver_sql("PRAGMA busy_timeout=0")  # the platform waits 10 s first
                connection.execute(text("INSERT INTO item (id) VALUES (1)"))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with db.transaction() as connection:  # the lock released, the same database works
        connection.execute(text("INSERT INTO item (id) VALUES (1)"))


def test_a_constraint_violation_is_not_an_outage(database):
    db, _ = database
    with pytest.raises(IntegrityError) as caught:
        with db.transaction() as connection:
            connection.execute(text("INSERT INTO item (id) VALUES (7), (7)"))
    assert database_error(caught.value) is None


def test_a_driver_error_escaping_the_store_is_a_503_problem(tmp_path):
    unreachable = Database(f"sqlite:///{tmp_path / 'no such directory' / 'eauth.db'}")
    app = FastAPI()
    problems.install(app)

    @app.get("/bare")
    def bare() -> dict:
        with unreachable.engine.connect() as connection:  # outside Database.session/transaction
            return {"one": connection.scalar(text("SELECT 1"))}

    try:
        response = TestClient(app, raise_server_exceptions=False).get("/bare")
    finally:
        unreachable.dispose()
    assert_problem(response, 503, "database_unavailable")
    assert int(response.headers["retry-after"]) > 0
