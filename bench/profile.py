"""Where the time of a benchmark's operation goes, for the targets that ``make bench`` does not meet:
``python -m bench.profile ca`` (one certificate issuance in process) and ``python -m bench.profile qr``
(one QR verification through the ASGI app, next to a bare FastAPI endpoint called the same way; not
our sync routes such as ``/healthz``: 32 of them at once in one process measure the thread pool
fighting over the GIL, not the route). Each prints the operation's time per call measured without the profiler, then, from a
cProfile run, the cumulative time of the parts that matter, per call and as a share of the total.

The shares come from the profiled run (the profiler inflates Python code more than C code, so the
Python parts are somewhat overstated); the totals from the unprofiled one. Parts are nested: an
indented part is included in the one above it.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

#: (label, depth, file suffix, function name): the parts reported for each operation.
CA_PARTS = (
    ("issuance (CertificateAuthority.issue)", 0, "ca/authority.py", "issue"),
    ("CSR parse and proof of possession (ECDSA verify)", 1, "ca/csr.py", "parse_csr"),
    ("subject look-up", 1, "store/ca_store.py", "subject_by_index"),
    ("certificate built and signed (_sign)", 1, "ca/authority.py", "_sign"),
    ("the issuing CA's ECDSA signature (cryptography)", 2, "keys/x509.py", "sign_certificate"),
    ("certificate stored (insert + audit entry)", 1, "store/ca_store.py", "add_certificate"),
    ("audit entry (head update, chained insert)", 2, "store/audit.py", "record_many"),
    ("transaction begin and commit (Database.transaction)", 0, "store/db.py", "transaction"),
    ("every SQL statement's driver call", 0, "sqlalchemy/engine/default.py", "do_execute"),
    ("every SQLAlchemy statement execution (compile cache, params, result)", 0, "sqlalchemy/engine/base.py",
     "_execute_clauseelement"),
)
QR_PARTS = (
    ("the request in the app (FastAPI.__call__: middleware, routing, endpoint)", 0, "fastapi/applications.py",
     "__call__"),
    ("rate limiter: whose budget (the access token verified)", 1, "api/ratelimit.py", "_client"),
    ("rate limiter: the budget (in-process lease)", 1, "api/ratelimit.py", "_admit"),
    ("dependencies solved (FastAPI), the access token among them", 1, "fastapi/dependencies/utils.py",
     "solve_dependencies"),
    ("QR check (api.routes.verify.check)", 1, "api/routes/verify.py", "check"),
    ("QR token signature verified (JWS ES256)", 2, "licenses/token.py", "verify_qr_token"),
    ("registry lookup (one direct query)", 2, "store/direct.py", "rows"),
    ("response model validated and serialized", 1, "fastapi/routing.py", "serialize_response"),
    ("verifications recorded (group commit: one transaction a batch)", 0, "store/group_commit.py", "_commit"),
    ("every access token verified (api.tokens)", 0, "api/tokens.py", "verify"),
    ("every ECDSA verification (cryptography, through pyjwt)", 0, "jwt/algorithms.py", "verify"),
    ("every compact JWS parsed by pyjwt (base64 checks)", 0, "jwt/api_jws.py", "_load"),
)
#: Requests in flight at once in the ASGI calls, as wrk's connections keep them (bench/verify_qr_bench).
CONCURRENCY = 32


def measure(operation: Callable[[], object], count: int, *, each: int = 1) -> float:
    """Seconds per call of ``operation`` over ``count`` calls, after a warm-up; an operation that makes
    ``each`` calls at once counts as that many."""
    for _ in range(max(1, min(50, count) // each)):
        operation()
    start = time.perf_counter()
    for _ in range(max(1, count // each)):
        operation()
    return (time.perf_counter() - start) / (max(1, count // each) * each)


def breakdown(operation: Callable[[], object], count: int, parts, *, each: int = 1) -> list[tuple[str, int, float]]:
    """(label, depth, seconds per call) of each part found in a cProfile run of ``count`` calls, the
    profiled total per call first. A part is the function of that name in that file; where several
    match (nested closures of one name), the outermost (largest) one."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(max(1, count // each)):
        operation()
    profiler.disable()
    calls = max(1, count // each) * each
    stats = pstats.Stats(profiler).stats  # (file, line, function) → (cc, nc, tottime, cumtime, callers)
    rows = [("profiled total", 0, sum(tottime for _, _, tottime, _, _ in stats.values()) / calls)]
    for label, depth, suffix, function in parts:
        cumulative = max((ct for (file, _, name), (_, _, _, ct, _) in stats.items()
                          if name == function and file.replace("\\", "/").endswith(suffix)), default=0.0)
        if cumulative:
            rows.append((label, depth, cumulative / calls))
    return rows


def show(title: str, unprofiled: float, rows: list[tuple[str, int, float]] = ()) -> None:
    print(f"\n{title}: {unprofiled * 1e6:,.0f} µs a call without the profiler ({1 / unprofiled:,.0f}/s)")
    total = rows[0][2] if rows else 0.0
    for label, depth, seconds in rows:
        print(f"  {'  ' * depth}{label:<{72 - 2 * depth}} {seconds * 1e6:>9,.0f} µs {seconds / total:>6.0%}")


def profile_ca(count: int) -> None:
    from cryptography import x509

    from api.platform import Platform, initialize_platform
    from bench.ca_bench import _csr, operations
    from eauth.settings import Settings
    from store import audit
    from store.agencies import add_agency

    data_dir = Path(tempfile.mkdtemp(prefix="eauth-profile-"))
    settings = Settings(_env_file=None, data_dir=data_dir, key_passphrase="bench passphrase")
    initialize_platform(settings)
    platform = Platform.open(settings)
    try:
        with platform.db.session() as session:
            agency = add_agency(session, code="bench", name="bench", credit_code=None)
        csr = _csr()
        issue, sign_only, raw = operations(platform, agency.id, csr)
        csr_check = x509.load_pem_x509_csr(csr)

        def audited_commit() -> None:
            with platform.db.transaction() as connection:
                audit.record(connection, actor="bench", action="bench.profile", subject=None)

        show("baseline: cryptography CertificateBuilder.sign, same content and key", measure(raw, count))
        show("alone: proof of possession (CertificateSigningRequest.is_signature_valid)",
             measure(lambda: csr_check.is_signature_valid, count))
        show("alone: our signing core (CertificateAuthority._sign: profile, name, extensions, signature)",
             measure(sign_only, count))
        show("alone: a transaction with one audit entry, committed", measure(audited_commit, count))
        show("certificate issued in process (SQLite, one committed transaction)", measure(issue, count),
             breakdown(issue, count, CA_PARTS))
    finally:
        platform.close()
        shutil.rmtree(data_dir, ignore_errors=True)


class AsgiCaller:
    """Calls an ASGI app's GET routes directly on one event loop, the app's lifespan entered, with
    ``CONCURRENCY`` requests in flight at once: what a request costs in the app, without a server or a
    network in front of it."""

    def __init__(self, app) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self._lifespan = app.router.lifespan_context(app)
        self.loop.run_until_complete(self._lifespan.__aenter__())

    def get(self, path: str, headers: dict[str, str] | None = None) -> Callable[[], None]:
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                 "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
                 "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
                 "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8000)}
        request = {"type": "http.request", "body": b"", "more_body": False}

        async def receive() -> dict:
            return request

        async def once() -> None:
            status = []

            async def send(message: dict) -> None:
                if message["type"] == "http.response.start":
                    status.append(message["status"])

            await self.app(dict(scope), receive, send)
            if status != [200]:
                raise RuntimeError(f"GET {path} answered {status}")

        async def together() -> None:
            await asyncio.gather(*(once() for _ in range(CONCURRENCY)))

        return lambda: self.loop.run_until_complete(together())

    def close(self) -> None:
        self.loop.run_until_complete(self._lifespan.__aexit__(None, None, None))
        self.loop.close()


def profile_qr(count: int) -> None:
    from api.http import create_app
    from api.licenses import qr_public_keys
    from api.platform import Platform
    from api.routes.verify import check
    from bench.verify_qr_bench import PASSPHRASE, _prepare, bare
    from eauth.settings import Settings
    from licenses.token import verify_qr_token
    from store.models import ApiClient

    data_dir = Path(tempfile.mkdtemp(prefix="eauth-profile-"))
    token, client_id, _ = _prepare(data_dir, {})
    settings = Settings(_env_file=None, data_dir=data_dir, key_passphrase=PASSPHRASE,
                        rate_limit_per_client_per_minute=10**9, rate_limit_per_address_per_minute=10**9)
    platform = Platform.open(settings)
    ours = AsgiCaller(create_app(settings, platform=platform))
    plain = AsgiCaller(bare)
    try:
        with platform.db.session() as session:
            agency_id = session.get(ApiClient, client_id).agency_id
        access, _ = platform.tokens.issue(client_id=client_id, agency_id=agency_id,
                                          scopes=frozenset({"verify"}))
        verify = ours.get(f"/api/v1/verify/qr/{token}", {"Authorization": f"Bearer {access}"})
        keys = qr_public_keys(platform)
        show("alone: the QR token's signature and claims (licenses.token.verify_qr_token)",
             measure(lambda: verify_qr_token(token, keys), count))
        show("alone: the whole QR check (api.routes.verify.check: signature, registry lookup)",
             measure(lambda: check(platform, token), count))
        show("alone: the access token (api.tokens.TokenService.verify)",
             measure(lambda: platform.tokens.verify(access), count))
        each = CONCURRENCY
        show("baseline: bare FastAPI app, GET /ping (constant JSON)", measure(plain.get("/ping"), count, each=each))
        show("GET /api/v1/verify/qr/{token} on our app (scope verify, recorded)", measure(verify, count, each=each),
             breakdown(verify, count, QR_PARTS, each=each))
    finally:
        ours.close()
        plain.close()
        platform.close()
        shutil.rmtree(data_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("operation", choices=("ca", "qr"))
    parser.add_argument("--count", type=int, default=500, help="Calls measured, and calls profiled.")
    args = parser.parse_args()
    {"ca": profile_ca, "qr": profile_qr}[args.operation](args.count)


if __name__ == "__main__":
    main()
