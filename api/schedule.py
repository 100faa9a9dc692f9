"""Work an API process does on its own: refreshing CRLs before their nextUpdate.

Every process runs the loop; the database decides (``ca.crl``): of several processes finding a CRL due
at once, one publishes it and the others find it fresh and stop. Nothing here is needed for
correctness in any one process: a cron job running ``eauth crl publish`` does the same.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import timedelta

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
        # Jitter: processes started together drift apart instead of all checking at the same instant.
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval * random.uniform(0.9, 1.1))


@asynccontextmanager
async def background(p: Platform) -> AsyncIterator[None]:
    """Run the CRL refresh (at start, then every ``crl_refresh_interval_seconds``) while the app serves.
    On shutdown a refresh under way is finished, not abandoned halfway."""
    interval = p.settings.crl_refresh_interval_seconds
    if interval <= 0:
        yield
        return
    stop = asyncio.Event()
    task = asyncio.create_task(_refresh_loop(p, interval, stop), name="crl-refresh")
    try:
        yield
    finally:
        stop.set()
        await task
