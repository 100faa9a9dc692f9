"""Group commit: small writes from many concurrent requests committed together, one transaction per
batch.

A caller waits until its item is committed (nothing is acknowledged that a crash could lose), but the
cost of a transaction (begin, commit, SQLite's single write lock, PostgreSQL's round trips, the audit
chain's head) is shared by every item that arrived in the same turn of the event loop. Under load that
turns one write transaction per request into one per several; idle, an item commits at once. Used for
the records of verifications (and their audit entries), one per verification request.

The batch is written on the event loop's own thread, at the next turn of the loop: a writer thread
would have to win the GIL back from the busy loop for every statement (Python hands it over every 5
ms), which made each batch wait tens of milliseconds. The write blocks the loop as briefly as the
registry lookups the same requests already make.

If a batch fails, each of its items is retried alone, so one bad item fails only its own caller; if it
failed because the database is unreachable or the disk full (``store.db.database_error``), the whole
batch fails at once: its transaction rolled back, nothing of it written, every caller told
(503, retry), and no item alone tries again (each would wait up to the connect timeout, on the loop).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar
from weakref import WeakKeyDictionary

from sqlalchemy.engine import Connection

from eauth.errors import DatabaseUnavailable, StorageFull
from store.db import Database

T = TypeVar("T")


class GroupCommit(Generic[T]):
    """Batches items to one database: ``write(connection, items)`` stores a batch (a multi-row insert,
    say) in the transaction it is given."""

    def __init__(self, db: Database, write: Callable[[Connection, list[T]], None], *, max_batch: int = 256) -> None:
        self._db = db
        self._write = write
        self._max_batch = max_batch
        #: Per event loop (a platform may serve several, one after another in tests): items waiting.
        self._pending: WeakKeyDictionary[asyncio.AbstractEventLoop, list[tuple[T, asyncio.Future]]] = \
            WeakKeyDictionary()

    async def add(self, item: T) -> None:
        """Return once ``item`` is committed; raise the error that stopped it otherwise."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        pending = self._pending.get(loop)
        if pending is None:
            pending = self._pending[loop] = []
            loop.call_soon(self._flush, loop)  # after the requests already running this turn
        pending.append((item, future))
        await future

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        queued = self._pending.pop(loop, [])
        for start in range(0, len(queued), self._max_batch):
            self._commit(queued[start:start + self._max_batch])

    def _commit(self, batch: list[tuple[T, asyncio.Future]]) -> None:
        try:
            with self._db.transaction() as connection:
                self._write(connection, [item for item, _ in batch])
        except Exception as exc:
            if len(batch) == 1 or isinstance(exc, DatabaseUnavailable | StorageFull):
                for _, future in batch:
                    _settle(future, exc)
            else:  # find which item failed: each alone
                for one in batch:
                    self._commit([one])
        else:
            for _, future in batch:
                _settle(future, None)


def _settle(future: asyncio.Future, error: Exception | None) -> None:
    if future.done():  # the caller was cancelled (client gone): its item was still written, or not
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
