"""The process pool for CPU-heavy work (PDF rendering and signing, DESIGN.md "Runtime").

pyHanko's ``sign_pdf`` is synchronous and CPU-bound: on the event loop it would stall every request, in
threads it does not scale (GIL). So the API process keeps a pool of worker processes, made in the app
lifespan, each opening its own ``Platform`` from the settings once (``open_worker``). Workers are
*spawned*, never forked: the parent has threads, database pools and possibly a PKCS#11 session. A job is
a module-level function taking and returning plain (picklable) values; a worker crash answers 503
``signing_unavailable`` and the pool is made anew. The benchmark (``bench/pades_bench.py``) uses the
same ``executor``/``open_worker``.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from api.platform import Platform
from eauth.errors import SigningUnavailable
from eauth.settings import Settings

START_METHOD = "spawn"
T = TypeVar("T")

_worker: dict[str, Platform] = {}


def open_worker(settings: Settings) -> None:
    """Pool initializer: the worker process opens the platform once (key store, database pool)."""
    _worker["platform"] = Platform.open(settings)


def worker_platform() -> Platform:
    """The platform of this worker process (opened by ``open_worker``)."""
    return _worker["platform"]


def processes(settings: Settings) -> int:
    """``signing_processes``, 0 meaning one per CPU."""
    return settings.signing_processes or os.cpu_count() or 1


def executor(settings: Settings, workers: int | None = None) -> ProcessPoolExecutor:
    """A spawned process pool whose workers each open the platform of ``settings`` (started on demand)."""
    return ProcessPoolExecutor(workers or processes(settings), mp_context=multiprocessing.get_context(START_METHOD),
                               initializer=open_worker, initargs=(settings,))


class WorkerPool:
    """The app's pool; replaced by a fresh one when a worker dies (BrokenProcessPool)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._executor = executor(settings)

    async def run(self, job: Callable[..., T], *args: Any) -> T:
        """``job(*args)`` in a worker; its EauthError arrives as itself, a crash as SigningUnavailable."""
        current = self._executor
        try:
            return await asyncio.get_running_loop().run_in_executor(current, job, *args)
        except BrokenProcessPool:
            self._replace(current)
            raise SigningUnavailable("a signing worker process stopped; retry the request") from None

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._executor is broken:  # the first of the failed requests replaces it
                self._executor = executor(self.settings)
        broken.shutdown(wait=False, cancel_futures=True)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


@asynccontextmanager
async def worker_pool(settings: Settings) -> AsyncIterator[WorkerPool]:
    """The pool for the app's lifetime; its workers are stopped (after their current job) on exit."""
    pool = WorkerPool(settings)
    try:
        yield pool
    finally:
        await asyncio.to_thread(pool.shutdown)
