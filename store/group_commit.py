"""Group commit: small writes from many concurrent requests committed together, one transaction per
batch, by one writer thread per process.

A caller waits until its write is committed (nothing is acknowledged that a crash could lose), but
the cost of a transaction (begin, commit, the WAL sync, SQLite's single write lock, PostgreSQL's
round trips) is shared by every write that arrived while the previous batch was committing. Under
load that turns one write transaction per request into one per few dozen; idle, a write commits at
once. Used for the records of verifications (and their audit entries), one per verification request.

If a batch fails, each of its writes is retried alone, so one bad write fails only its own caller.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

from sqlalchemy.engine import Connection

from store.db import Database

T = TypeVar("T")
_STOP = object()


class GroupCommit(Generic[T]):
    """Batches items to one database: ``write(connection, items)`` stores a batch (a multi-row insert,
    say); ``close`` commits what is queued and stops the thread."""

    def __init__(self, db: Database, write: Callable[[Connection, list[T]], None], *, max_batch: int = 256) -> None:
        self._db = db
        self._write = write
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, item: T) -> Future:
        """Queue ``item``; the future resolves once it is committed, or with the error that stopped it."""
        future: Future = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("group commit closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
                self._thread.start()
            self._queue.put((item, future))
        return future

    async def add(self, item: T) -> None:
        """``submit`` and wait without blocking the event loop."""
        await asyncio.wrap_future(self.submit(item))

    def close(self) -> None:
        with self._lock:
            self._closed, thread = True, self._thread
        if thread is not None:
            self._queue.put(_STOP)
            thread.join()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            batch = [item]
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    self._commit(batch)
                    return
                batch.append(item)
            self._commit(batch)

    def _commit(self, batch: list[tuple[T, Future]]) -> None:
        try:
            with self._db.transaction() as connection:
                self._write(connection, [item for item, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                batch[0][1].set_exception(exc)
            else:  # find which write failed: each alone
                for item in batch:
                    self._settle(item)
        else:
            for _, future in batch:
                future.set_result(None)

    def _settle(self, queued: tuple[T, Future]) -> None:
        item, future = queued
        try:
            with self._db.transaction() as connection:
                self._write(connection, [item])
        except Exception as exc:
            future.set_exception(exc)
        else:
            future.set_result(None)
