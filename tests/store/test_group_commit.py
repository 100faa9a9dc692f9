"""Group commit: every item committed before its caller is answered, batches share a transaction, and
one bad item fails only its own caller."""

from __future__ import annotations

import asyncio
import threading

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, func, insert, select

from store.db import Database
from store.group_commit import GroupCommit

_METADATA = MetaData()
_ROWS = Table("rows", _METADATA, Column("n", Integer, primary_key=True))


@pytest.fixture
def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'group.db'}")
    _METADATA.create_all(database.engine)
    yield database
    database.dispose()


def _count(db: Database) -> int:
    with db.transaction() as connection:
        return connection.execute(select(func.count()).select_from(_ROWS)).scalar_one()


def test_concurrent_items_are_committed_in_shared_batches(db):
    batches: list[int] = []
    release = threading.Event()

    def write(connection, items):
        release.wait(5)  # the first batch holds the writer while the others queue up
        batches.append(len(items))
        connection.execute(insert(_ROWS), [{"n": n} for n in items])

    committer = GroupCommit(db, write)

    async def main():
        tasks = [asyncio.create_task(committer.add(n)) for n in range(50)]
        await asyncio.sleep(0.05)
        release.set()
        await asyncio.gather(*tasks)

    try:
        asyncio.run(main())
        assert _count(db) == 50  # committed when each add returned
        assert sum(batches) == 50 and len(batches) < 50
    finally:
        committer.close()


def test_a_failing_item_fails_alone(db):
    def write(connection, items):
        if 13 in items:
            raise ValueError("thirteen")
        connection.execute(insert(_ROWS), [{"n": n} for n in items])

    committer = GroupCommit(db, write)
    try:
        futures = [committer.submit(n) for n in range(20)]
        errors = [f.exception(5) for f in futures]
        assert [type(e) for e in errors if e is not None] == [ValueError]
        assert errors[13] is not None
        assert _count(db) == 19
    finally:
        committer.close()


def test_close_commits_what_is_queued_and_refuses_more(db):
    committer = GroupCommit(db, lambda connection, items: connection.execute(insert(_ROWS), [{"n": n} for n in items]))
    futures = [committer.submit(n) for n in range(10)]
    committer.close()
    assert all(f.done() and f.exception() is None for f in futures)
    assert _count(db) == 10
    with pytest.raises(RuntimeError):
        committer.submit(99)
