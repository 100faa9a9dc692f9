"""Rate limiting per client, shared by every process and node through the database.

The client is the OAuth client of a valid agency access token, the holder (pseudonymous subject) of a
valid login token, else the remote address (as uvicorn gives it: behind a proxy, set
FORWARDED_ALLOW_IPS so that it is the caller's, see docs/deploy.md). The revocation endpoints (OCSP,
CRL, CA certificates) have a per-address budget of their own, off by default: relying parties behind
one NAT address poll them, and their answers are cached and cheap.

Budgets are per fixed minute and live in ``rate_limit_windows`` (``store.rate_limits``): each process
reserves a lease of a fiftieth of the limit at a time, so the database sees one statement per lease,
not per request, and a client never gets more than the limit in a minute across all processes
(docs/limits.md). Over budget: 429 problem+json ``rate_limited`` with Retry-After (the seconds left in
the minute).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from api.holder import PLATFORM_AUDIENCE
from api.login import login_service
from api.platform import Platform
from api.problems import problem
from eauth.errors import EauthError
from store import rate_limits
from verify.login import LoginKey, verify_login_token

log = logging.getLogger("eauth.ratelimit")

WINDOW_SECONDS = 60
LEASES_PER_WINDOW = 50
#: Never limited: load balancers' health checks.
EXEMPT_PATHS = frozenset({"/healthz"})
#: Path prefixes of the revocation endpoints, limited per address by ``per_revocation_address``.
REVOCATION_PREFIXES = ("/ocsp", "/crl/", "/ca/")
#: How long a process reuses the login keys it read: a token signed by a key rotated in since then
#: counts against its address until the next read, and is never refused for it.
LOGIN_KEYS_SECONDS = 30
_MEMO_SIZE = 10_000
#: In a process's leases: the client's budget for this window is spent across all processes.
SPENT = -1


class RateLimit:
    """ASGI middleware admitting at most ``per_client`` requests a minute per agency client,
    ``per_holder`` per logged-in holder, ``per_address`` per remote address for any other caller and
    ``per_revocation_address`` per remote address on the revocation endpoints (0: that class is not
    limited). ``clock`` gives the time that decides the window (injectable for tests)."""

    def __init__(self, app: ASGIApp, *, platform: Platform, per_client: int, per_address: int,
                 per_holder: int = 0, per_revocation_address: int = 0,
                 clock: Callable[[], float] = time.time) -> None:
        self.app = app
        self.platform = platform
        self.per_client = per_client
        self.per_holder = per_holder
        self.per_address = per_address
        self.per_revocation_address = per_revocation_address
        self.clock = clock
        self._leases: dict[str, int] = {}  # client → requests left in this process's lease
        self._window = 0
        self._lock = threading.Lock()
        self._holders: dict[str, tuple[str, int]] = {}  # verified login token → (subject, expires at)
        self._login_keys: tuple[float, dict[str, LoginKey]] = (0.0, {})

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
        path = scope.get("path", "")
        if path.startswith(REVOCATION_PREFIXES):
            return f"revocation:{_address(scope)}", self.per_revocation_address
        for name, value in scope.get("headers", ()):
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                token = value[7:].decode("latin-1").strip()
                try:
                    return f"client:{self.platform.tokens.verify(token).client_id}", self.per_client
                except (EauthError, ValueError):
                    pass  # not an agency token: a holder's login token, or junk (limited by address)
                subject = self._holder(token)
                if subject is not None:
                    return f"holder:{subject}", self.per_holder
                break
        return f"address:{_address(scope)}", self.per_address

    def _holder(self, token: str) -> str | None:
        """The subject of a valid login token for the platform itself, verified once per process (the
        route verifies it again, and re-reads its certificate); None for anything else."""
        now = time.time()
        known = self._holders.get(token)
        if known is not None and known[1] > now:
            return known[0]
        try:
            claims = verify_login_token(token, keys=self._current_login_keys(now), audience=PLATFORM_AUDIENCE,
                                        now=now)
        except (EauthError, ValueError):
            return None
        if len(self._holders) >= _MEMO_SIZE:
            self._holders.clear()
        self._holders[token] = (claims.subject, claims.expires_at)
        return claims.subject

    def _current_login_keys(self, now: float) -> dict[str, LoginKey]:
        read_at, keys = self._login_keys
        if now - read_at >= LOGIN_KEYS_SECONDS:
            try:
                keys = login_service(self.platform).keys()
            except EauthError as exc:  # the database is down: login tokens count by address meanwhile
                log.warning("login keys not read for rate limiting: %s", exc.detail)
            self._login_keys = (now, keys)
        return keys

    def _admit(self, client: str, limit: int, now: float) -> bool:
        window = int(now) // WINDOW_SECONDS * WINDOW_SECONDS
        with self._lock:
            if window != self._window:
                self._leases.clear()
                self._window = window
                self._purge(before=window - WINDOW_SECONDS)
            left = self._leases.get(client, 0)
            if left == SPENT:
                return False
            if left == 0:
                left = self._reserve(client, window, limit)
            if left == 0:
                # Final for this window (leases are never given back): refusals cost no statement.
                self._leases[client] = SPENT
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


def _address(scope: Scope) -> str:
    return (scope.get("client") or ("unknown",))[0]
