"""Rate limiting per client, one budget shared by every process through the database."""

from __future__ import annotations

import asyncio
import time

from fastapi.testclient import TestClient

from api.http import create_app
from api.ratelimit import RateLimit
from tests.conftest import token_for
from tests.helpers import assert_problem


def _not_at_a_minute_boundary() -> None:
    """Budgets are per clock minute: start a test that counts them well inside one."""
    left = 60 - time.time() % 60
    if left < 5:
        time.sleep(left + 0.1)


def _app(platform, **limits):
    settings = platform.settings.model_copy(update=limits)
    return create_app(settings, platform=platform)


def test_two_processes_share_one_budget(platform):
    _not_at_a_minute_boundary()
    # Two apps with their own middleware (and leases): what each process of a node has.
    limits = {"rate_limit_per_address_per_minute": 10, "rate_limit_per_client_per_minute": 0}
    with TestClient(_app(platform, **limits), client=("192.0.2.7", 5000)) as a, \
            TestClient(_app(platform, **limits), client=("192.0.2.7", 5001)) as b:
        statuses = [(a if n % 2 else b).get("/.well-known/jwks.json").status_code for n in range(16)]
        assert statuses.count(200) <= 10 and statuses.count(429) >= 6, statuses
        refused = assert_problem(a.get("/.well-known/jwks.json"), 429, "rate_limited")
        assert "10 requests a minute" in refused["detail"]
        assert 1 <= int(a.get("/ca").headers["retry-after"]) <= 60
        assert a.get("/healthz").status_code == 200  # health checks are never limited
    with TestClient(_app(platform, **limits), client=("192.0.2.8", 5000)) as other:
        assert other.get("/.well-known/jwks.json").status_code == 200  # another address, its own budget


def test_an_agency_client_is_limited_by_its_id_from_any_address(platform, api, agency):
    _not_at_a_minute_boundary()
    headers = {"Authorization": f"Bearer {token_for(api, platform, agency.code, {'certificates:read'})}"}
    limits = {"rate_limit_per_client_per_minute": 4, "rate_limit_per_address_per_minute": 0}
    app = _app(platform, **limits)
    statuses = []
    for port in range(6):
        with TestClient(app, client=(f"198.51.100.{port}", 4000)) as client:
            statuses.append(client.get("/api/v1/certificates", headers=headers).status_code)
    assert [s != 429 for s in statuses] == [True] * 4 + [False] * 2, statuses  # 422: the query is incomplete


def test_budget_comes_back_in_the_next_minute(platform):
    now = [1_000_020.0]
    calls = []

    async def ok(scope, receive, send):
        calls.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    limiter = RateLimit(ok, platform=platform, per_client=0, per_address=3, clock=lambda: now[0])
    sent = []

    async def send(message):
        if message["type"] == "http.response.start":
            sent.append(message["status"])

    async def request():
        scope = {"type": "http", "path": "/x", "headers": [], "client": ("203.0.113.9", 1)}
        await limiter(scope, None, send)

    async def run(times):
        for _ in range(times):
            await request()

    asyncio.run(run(5))
    assert sent == [200, 200, 200, 429, 429]
    now[0] += 60
    asyncio.run(run(2))
    assert sent[5:] == [200, 200] and len(calls) == 5


def test_zero_turns_limiting_off(platform):
    with TestClient(_app(platform, rate_limit_per_address_per_minute=0)) as client:
        assert all(client.get("/.well-known/jwks.json").status_code == 200 for _ in range(30))
