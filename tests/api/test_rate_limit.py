"""Rate limiting per client, one budget shared by every process through the database.

Each "process" is an app with its own ``RateLimit`` middleware (its own leases), as each worker of a
node has, over the suite's database (SQLite, or PostgreSQL with EAUTH_TEST_DATABASE_URL). The window
is decided by an injected clock, so nothing waits for a minute to pass.
"""

from __future__ import annotations

import itertools

from fastapi.testclient import TestClient
from sqlalchemy import select

from api.http import create_app
from api.ratelimit import RateLimit
from store.models import RateLimitWindow
from tests.api.holders import holder_login
from tests.conftest import token_for
from tests.helpers import assert_problem

UNLIMITED = {"rate_limit_per_client_per_minute": 0, "rate_limit_per_address_per_minute": 0,
             "rate_limit_per_holder_per_minute": 0, "rate_limit_revocation_per_address_per_minute": 0}
_minutes = itertools.count(1)


class Clock:
    """A settable clock, starting 10 s into a minute no other test has used (budgets are per minute)."""

    def __init__(self) -> None:
        self.now = 1_700_000_000 // 60 * 60 + next(_minutes) * 6000 + 10.0

    def __call__(self) -> float:
        return self.now


def process(platform, clock: Clock, **limits) -> RateLimit:
    """An app whose only rate limiting is ``limits`` on ``clock``: one process of a node."""
    app = create_app(platform.settings.model_copy(update=UNLIMITED), platform=platform)
    return RateLimit(app, platform=platform, clock=clock, **{"per_client": 0, "per_address": 0} | limits)


def test_two_processes_share_one_budget_and_refuse_with_a_problem(platform):
    clock = Clock()
    with TestClient(process(platform, clock, per_address=10), client=("192.0.2.7", 5000)) as a, \
            TestClient(process(platform, clock, per_address=10), client=("192.0.2.7", 5001)) as b:
        statuses = [(a if n % 2 else b).get("/.well-known/jwks.json").status_code for n in range(16)]
        assert statuses.count(200) <= 10 and statuses.count(429) >= 6, statuses
        assert statuses[:2] == [200, 200]
        refused = a.get("/.well-known/jwks.json")
        body = assert_problem(refused, 429, "rate_limited")
        assert "10 requests a minute" in body["detail"]
        assert refused.headers["retry-after"] == "50"  # the seconds left in the minute
        assert a.get("/healthz").status_code == 200  # health checks are never limited
        clock.now += 45
        assert b.get("/.well-known/jwks.json").headers["retry-after"] == "5"
    with TestClient(process(platform, clock, per_address=10), client=("192.0.2.8", 5000)) as other:
        assert other.get("/.well-known/jwks.json").status_code == 200  # another address, its own budget


def test_the_shared_total_is_never_exceeded(platform):
    clock = Clock()
    processes = [TestClient(process(platform, clock, per_address=100), client=("192.0.2.9", 1)) for _ in range(3)]
    with processes[0] as a, processes[1] as b, processes[2] as c:
        statuses = [[a, b, c][n % 3].get("/api/v1/ca").status_code for n in range(150)]
    # Leases of 2 taken in turn, the last partly granted: every lease gets spent here, so exactly the
    # budget is admitted, never more.
    assert statuses.count(200) == 100, statuses


def test_the_budget_comes_back_in_the_next_minute(platform):
    clock = Clock()
    with TestClient(process(platform, clock, per_address=3), client=("203.0.113.9", 1)) as client:
        assert [client.get("/api/v1/ca").status_code for _ in range(5)] == [200, 200, 200, 429, 429]
        reserved = _reserved(platform, "address:203.0.113.9")
        assert [client.get("/api/v1/ca").status_code for _ in range(3)] == [429] * 3
        assert _reserved(platform, "address:203.0.113.9") == reserved  # a spent budget costs no statement
        clock.now += 60
        assert [client.get("/api/v1/ca").status_code for _ in range(4)] == [200, 200, 200, 429]


def _reserved(platform, client: str) -> list[int]:
    with platform.db.transaction() as connection:
        return list(connection.execute(select(RateLimitWindow.admitted).where(RateLimitWindow.client == client))
                    .scalars())


def test_an_agency_client_is_limited_by_its_id_from_any_address(platform, api, agency):
    clock = Clock()
    headers = {"Authorization": f"Bearer {token_for(api, platform, agency.code, {'certificates:read'})}"}
    limited = process(platform, clock, per_client=4, per_address=1)
    statuses = []
    for port in range(6):
        with TestClient(limited, client=(f"198.51.100.{port}", 4000)) as client:
            statuses.append(client.get("/api/v1/certificates", headers=headers).status_code)
    assert [s != 429 for s in statuses] == [True] * 4 + [False] * 2, statuses  # 422: the query is incomplete
    with TestClient(limited, client=("198.51.100.1", 4000)) as client:  # a forged token counts by address
        assert client.get("/api/v1/certificates", headers={"Authorization": "Bearer x.y.z"}).status_code == 401


def test_a_holder_is_limited_by_its_login_not_its_address(platform, api):
    clock = Clock()
    _, holder = holder_login(api, platform, name="限流")
    limited = process(platform, clock, per_holder=3, per_address=1)
    statuses = []
    for port in range(5):
        with TestClient(limited, client=(f"198.51.100.{port + 20}", 4000)) as client:
            statuses.append(client.get("/api/v1/me", headers=holder.headers).status_code)
    assert statuses == [200, 200, 200, 429, 429], statuses


def test_revocation_endpoints_have_a_budget_of_their_own(platform):
    clock = Clock()
    limited = process(platform, clock, per_address=1, per_revocation_address=2)
    with TestClient(limited, client=("192.0.2.50", 1)) as client:
        assert client.get("/api/v1/ca").status_code == 200  # the address's one general request
        assert [client.get("/ca/root.cer").status_code for _ in range(3)] == [200, 200, 429]
        assert client.get("/api/v1/ca").status_code == 429
    unlimited = process(platform, clock, per_address=1)  # the default: revocation not limited
    with TestClient(unlimited, client=("192.0.2.51", 1)) as client:
        assert all(client.get("/ca/root.cer").status_code == 200 for _ in range(5))


def test_zero_turns_limiting_off(platform):
    with TestClient(create_app(platform.settings.model_copy(update=UNLIMITED), platform=platform)) as client:
        assert all(client.get("/.well-known/jwks.json").status_code == 200 for _ in range(30))
