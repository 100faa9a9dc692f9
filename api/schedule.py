"""Work an API process does on its own: refreshing CRLs before their nextUpdate, and signing
checkpoints of the audit chain.

Every process runs the loop; the database decides (``ca.crl``): of several processes finding a CRL due
at once, one publishes it and the others find it fresh and stop; of several signing an audit checkpoint
of the same entry, one row is kept. Nothing here is needed for correctness in any one process: cron
jobs running ``eauth crl publish`` and ``eauth audit checkpoint`` do the same.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import timedelta

from api.audit import checkpoint
from api.platform import Platform
from ca.authority import Clock, utcnow
from ca.crl import CrlPolicy, CrlPublisher, StoredCrl
from store.crl_store import crl_transactions

log = logging.getLogger("eauth.schedule")


def crl_publisher(p: Platform, *, clock: Clock = utcnow) -> CrlPublisher:
    """The CRL publisher with the platform's settings (cheap: made per use)."""
    policy = CrlPolicy(validity=timedelta(hours=p.settings.crl_validity_hours),
                       refresh_margin=timedelta(minutes=p.settings.crl_refresh_margin_minutes))
    return CrlPublisher(p.keys, policy=policy, clock=clock)


def refresh_crls(p: Platform, *, clock: Clock = utcnow) -> list[StoredCrl]:
    """Publish every CRL that is missing or within the refresh margin of its nextUpdate. A CA that
    fails is logged and does not keep the others from being refreshed."""

    def failed(issuer: str, exc: Exception) -> None:
        log.error("CRL of %s not refreshed: %s", issuer, exc, exc_info=exc)

    return crl_publisher(p, clock=clock).refresh(crl_transactions(p.db), on_error=failed)


async def _refresh_loop(p: Platform, interval: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            for crl in await asyncio.to_thread(refresh_crls, p):
                log.info("CRL of %s: number %d, %d entries, next update %s", crl.issuer, crl.number, crl.entries,
                         crl.next_update.isoformat())
        except Exception:  # logged and retried at the next round: the loop must outlive a bad moment
            log.exception("CRL refresh failed")
        await _pause(stop, interval)


async def _checkpoint_loop(p: Platform, interval: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            made = await asyncio.to_thread(checkpoint, p)
            if made is not None:
                log.info("audit checkpoint signed at seq %d", made.seq)
        except Exception:  # e.g. two processes signing the same seq at once: the next round is fine
            log.exception("audit checkpoint failed")
        await _pause(stop, interval)


async def _pause(stop: asyncio.Event, interval: float) -> None:
    # Jitter: processes started together drift apart instead of all checking at the same instant.
    with suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=interval * random.uniform(0.9, 1.1))


@asynccontextmanager
async def background(p: Platform) -> AsyncIterator[None]:
    """Run the CRL refresh (every ``crl_refresh_interval_seconds``) and the audit checkpoints (every
    ``audit_checkpoint_interval_seconds``), each at start and then periodically, while the app serves;
    an interval of 0 turns one off. On shutdown work under way is finished, not abandoned halfway."""
    stop = asyncio.Event()
    loops = ((_refresh_loop, p.settings.crl_refresh_interval_seconds, "crl-refresh"),
             (_checkpoint_loop, p.settings.audit_checkpoint_interval_seconds, "audit-checkpoint"))
    tasks = [asyncio.create_task(loop(p, interval, stop), name=name) for loop, interval, name in loops if interval > 0]
    try:
        yield
    finally:
        stop.set()
        for task in tasks:
            await task
