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

    def write(connection, items):
        batches.append(len(items))
        connection.execute(insert(_ROWS), [{"n": n} for n in items])

    committer = GroupCommit(db, write, max_batch=20)

    async def main():
        await asyncio.gather(*(committer.add(n) for n in range(50)))
        assert _count(db) == 50  # committed when each add returned
        await committer.add(50)  # idle: at once, alone

    asyncio.run(main())
    assert batches == [20, 20, 10, 1]


def test_a_failing_item_fails_alone(db):
    def write(connection, items):
        if 13 in items:
            raise ValueError("thirteen")
        connection.execute(insert(_ROWS), [{"n": n} for n in items])

    committer = GroupCommit(db, write)

    async def main():
        return await asyncio.gather(*(committer.add(n) for n in range(20)), return_exceptions=True)

    outcomes = asyncio.run(main())
    assert [type(o) for o in outcomes if o is not None] == [ValueError]
    assert isinstance(outcomes[13], ValueError)
    assert _count(db) == 19


def test_each_event_loop_has_its_own_batches(db):
    committer = GroupCommit(db, lambda connection, items: connection.execute(insert(_ROWS), [{"n": n} for n in items]))

    def run(first: int) -> None:
        async def main():
            await asyncio.gather(*(committer.add(n) for n in range(first, first + 10)))
        asyncio.run(main())

    threads = [threading.Thread(target=run, args=(first,)) for first in (0, 100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert _count(db) == 20
