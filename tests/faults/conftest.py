"""Real faults, made for real: a PostgreSQL cluster of the test's own that it stops and starts, ``eauth
serve`` processes it kills, a small filesystem it fills. Nothing here is a mock."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, select

from store.models import LicenseVersion
from tests.conftest import REQUIRE_INTEROP, require_seal_font
from tests.helpers import PASSPHRASE, eauth_serve

EAUTH = str(Path(sys.executable).with_name("eauth"))
POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")
#: Longest any one request may take, fault or not: a request held longer counts as a hang.
REQUEST_TIMEOUT = 30


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def unavailable(message: str) -> None:
    if REQUIRE_INTEROP:
        pytest.fail(message + " (EAUTH_REQUIRE_INTEROP=1)")
    pytest.skip(message)


@dataclass
class PrivatePostgres:
    """A PostgreSQL cluster only this test uses (the shared server on 5432 is never touched): its own
    directory, port and socket directory, trust authentication, run as the ``postgres`` user."""

    root: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/eauth"

    def _run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A server program, as the ``postgres`` user when we are root (PostgreSQL refuses to run as root)."""
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        done = subprocess.run([*as_postgres, *command], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 or not check, done.stdout + done.stderr
        return done

    def start(self) -> None:
        """Start and wait until it accepts connections (``pg_ctl -w``)."""
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(str(POSTGRES_BIN / "pg_ctl"), "-D", str(self.root / "data"), "-l", str(self.root / "log"),
                  "-o", options, "-w", "start")

    def stop(self) -> None:
        """Stop at once: every backend is killed, no checkpoint (what a crash or a failover does)."""
        self._run(str(POSTGRES_BIN / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    if not (POSTGRES_BIN / "initdb").is_file():
        unavailable(f"PostgreSQL server binaries not in {POSTGRES_BIN}")
    root = Path(tempfile.mkdtemp(prefix="eauth-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    cluster = PrivatePostgres(root, free_port())
    try:
        cluster._run(str(POSTGRES_BIN / "initdb"), "-D", str(root / "data"), "-U", "postgres", "-A", "trust",
                     "--no-sync", "-E", "UTF8")
        cluster.start()
        cluster._run(str(POSTGRES_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres",
                     "eauth")
        yield cluster
    finally:
        cluster._run(str(POSTGRES_BIN / "pg_ctl"), "-D", str(root / "data"), "-m", "immediate", "stop", check=False)
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class Node:
    """One ``eauth serve`` (its master process; workers and signing processes are its descendants)."""

    process: subprocess.Popen
    url: str


@dataclass
class Deployment:
    """A platform driven as an operator would: the ``eauth`` command with EAUTH_* variables only."""

    root: Path
    database_url: str
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EAUTH_")}
        return env | {"EAUTH_DATA_DIR": str(self.data_dir), "EAUTH_DATABASE_URL": self.database_url,
                      "EAUTH_KEY_PASSPHRASE": PASSPHRASE, "EAUTH_SIGNING_PROCESSES": "1",
                      "EAUTH_PUBLIC_BASE_URL": "http://127.0.0.1:8000"} | self.extra_env

    def eauth(self, *args: str, env: dict[str, str | None] | None = None) -> subprocess.CompletedProcess[str]:
        environment = self.env
        for key, value in (env or {}).items():
            if value is None:
                environment.pop(key, None)
            else:
                environment[key] = value
        return subprocess.run([EAUTH, *args], cwd=self.root, env=environment, capture_output=True, text=True,
                              timeout=300)

    def ok(self, *args: str) -> str:
        done = self.eauth(*args)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    @contextmanager
    def serve(self, *, workers: int = 1) -> Iterator[Node]:
        with eauth_serve(self.env, workers=workers, cwd=self.root, log=self.root / "serve.log") as (process, url):
            yield Node(process, url)

    def agency_headers(self, client: httpx.Client) -> dict[str, str]:
        """A bearer token of the demo agency's client (every scope)."""
        credentials = json.loads((self.data_dir / "demo-client.json").read_text())
        response = client.post("/api/v1/oauth/token", data={"grant_type": "client_credentials"},
                               auth=(credentials["client_id"], credentials["client_secret"]))
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    def audit_intact(self) -> str:
        """``eauth audit verify`` succeeds and says the chain is intact; its output."""
        out = self.ok("audit", "verify")
        assert "intact" in out, out
        return out

    def unbacked_versions(self) -> list[str]:
        """License versions whose PDF is not in the blob store (must always be none)."""
        keys = self.scalars(select(LicenseVersion.pdf_sha256))
        documents = self.data_dir / "documents"
        return [key for key in keys if not (documents / key[:2] / key[2:4] / key).is_file()]

    def scalar(self, statement):
        return self.scalars(statement)[0]

    def scalars(self, statement) -> list:
        engine = create_engine(self.database_url)
        try:
            with engine.connect() as connection:
                return connection.scalars(statement).all()
        finally:
            engine.dispose()


def deployment_on(database_url: str, root: Path) -> Deployment:
    """An initialized platform with the demo agency (``eauth init`` and ``eauth seed-demo``)."""
    require_seal_font()
    deployment = Deployment(root, database_url)
    deployment.ok("init")
    deployment.ok("seed-demo")
    return deployment


def _children() -> dict[int, list[int]]:
    """Every process's children, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry.name))
    return children


def children(pid: int) -> list[int]:
    return _children().get(pid, [])


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, nearest first."""
    tree, found, queue = _children(), [], [pid]
    while queue:
        for child in tree.get(queue.pop(0), []):
            found.append(child)
            queue.append(child)
    return found


def command_line(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""
