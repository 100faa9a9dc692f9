"""Rate limiting per client, shared by every process and node through the database.

The client is the OAuth client of a valid agency access token, else the remote address (as uvicorn
gives it: behind a proxy, set FORWARDED_ALLOW_IPS so that it is the caller's, see docs/deploy.md).
Budgets are per fixed minute and live in ``rate_limit_windows`` (``store.rate_limits``): each process
reserves a lease of a fiftieth of the limit at a time, so the database sees one statement per lease,
not per request, and a client never gets more than the limit in a minute across all processes. Over
budget: 429 problem+json ``rate_limited`` with Retry-After (the seconds left in the minute).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from api.platform import Platform
from api.problems import problem
from eauth.errors import EauthError
from store import rate_limits

log = logging.getLogger("eauth.ratelimit")

WINDOW_SECONDS = 60
LEASES_PER_WINDOW = 50
#: Never limited: load balancers' health checks.
EXEMPT_PATHS = frozenset({"/healthz"})


class RateLimit:
    """ASGI middleware admitting at most ``per_client`` requests a minute per agency client and
    ``per_address`` per remote address (0: that class is not limited)."""

    def __init__(self, app: ASGIApp, *, platform: Platform, per_client: int, per_address: int,
                 clock: Callable[[], float] = time.time) -> None:
        self.app = app
        self.platform = platform
        self.per_client = per_client
        self.per_address = per_address
        self.clock = clock
        self._leases: dict[str, int] = {}  # client → requests left in this process's lease
        self._window = 0
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        client, limit = self._client(scope)
        now = self.clock()
        if limit and not self._admit(client, limit, now):
            retry = max(1, int(WINDOW_SECONDS - now % WINDOW_SECONDS))
            response = problem(429, "rate_limited", "Too many requests",
                               f"more than {limit} requests a minute from this client; retry in {retry} s",
                               instance=scope.get("path"))
            response.headers["Retry-After"] = str(retry)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _client(self, scope: Scope) -> tuple[str, int]:
        for name, value in scope.get("headers", ()):
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                try:
                    token = self.platform.tokens.verify(value[7:].decode("latin-1").strip())
                except (EauthError, ValueError):
                    break  # not an agency token (a holder's login token, or junk): limited by address
                return f"client:{token.client_id}", self.per_client
        address = (scope.get("client") or ("unknown",))[0]
        return f"address:{address}", self.per_address

    def _admit(self, client: str, limit: int, now: float) -> bool:
        window = int(now) // WINDOW_SECONDS * WINDOW_SECONDS
        with self._lock:
            if window != self._window:
                self._leases.clear()
                self._window = window
                self._purge(before=window - WINDOW_SECONDS)
            left = self._leases.get(client, 0)
            if left == 0:
                left = self._reserve(client, window, limit)
            if left == 0:
                return False
            self._leases[client] = left - 1
            return True

    def _reserve(self, client: str, window: int, limit: int) -> int:
        wanted = max(1, limit // LEASES_PER_WINDOW)
        try:
            with self.platform.db.transaction() as connection:
                return rate_limits.reserve(connection, client=client, window=window, wanted=wanted, limit=limit)
        except EauthError as exc:  # the database is down: the request itself will say so (503)
            log.warning("rate limit not checked for %s: %s", client, exc.detail)
            return 1

    def _purge(self, *, before: int) -> None:
        try:
            with self.platform.db.transaction() as connection:
                rate_limits.purge(connection, before=before)
        except EauthError as exc:
            log.warning("old rate-limit windows not purged: %s", exc.detail)
