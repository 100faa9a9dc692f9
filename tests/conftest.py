"""Shared fixtures: a database (SQLite, or PostgreSQL when EAUTH_TEST_DATABASE_URL is set), an
initialized platform with its test PKI made at session start (never committed), an HTTP client."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from api.http import create_app
from api.platform import Platform, initialize_platform
from eauth.settings import Settings
from store.agencies import add_agency, add_client
from tests.helpers import PASSPHRASE

REQUIRE_INTEROP = os.environ.get("EAUTH_REQUIRE_INTEROP") == "1"
# The platform's own settings come from each test, never from the shell that runs the suite (the
# harness's own EAUTH_FUZZ_* knobs, docs/fuzzing.md, are not platform settings).
for _name in [n for n in os.environ if n.startswith("EAUTH_") and not n.startswith("EAUTH_FUZZ_")]:
    if _name not in ("EAUTH_TEST_DATABASE_URL", "EAUTH_REQUIRE_INTEROP"):
        del os.environ[_name]


def require_tool(name: str) -> str:
    """Path of an external tool; skip the test without it, or fail when CI requires interop."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not installed"
        if REQUIRE_INTEROP:
            pytest.fail(message + " (EAUTH_REQUIRE_INTEROP=1)")
        pytest.skip(message)
    return path


def require_seal_font() -> None:
    """Skip a test that needs the seal font (Debian fonts-wqy-microhei) without it, or fail when CI
    requires interop."""
    from signing.pades import SEAL_FONT

    if not SEAL_FONT.is_file():
        message = f"seal font {SEAL_FONT} not installed (fonts-wqy-microhei)"
        if REQUIRE_INTEROP:
            pytest.fail(message + " (EAUTH_REQUIRE_INTEROP=1)")
        pytest.skip(message)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> Iterator[str]:
    """A fresh, empty database for this test session (one per xdist worker)."""
    yield from fresh_database(tmp_path_factory.mktemp("db"))


def fresh_database(directory: Path) -> Iterator[str]:
    """URL of a new empty database: PostgreSQL when EAUTH_TEST_DATABASE_URL names a server (dropped
    afterwards), else a SQLite file in ``directory``."""
    server = os.environ.get("EAUTH_TEST_DATABASE_URL")
    if server:
        yield from fresh_postgres_database(server)
    else:
        yield f"sqlite:///{directory / 'eauth.db'}"


def fresh_postgres_database(server: str) -> Iterator[str]:
    name = f"eauth_test_{secrets.token_hex(6)}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def settings(tmp_path_factory, database_url) -> Settings:
    return Settings(
        _env_file=None,
        data_dir=tmp_path_factory.mktemp("data"),
        database_url=database_url,
        key_passphrase=PASSPHRASE,
        public_base_url="http://127.0.0.1:8000",
        signing_processes=2,  # the app's signing pool (spawned on demand, ~1 s a worker)
        # Session-scoped fixtures hold tokens for the whole run, which on a busy CI machine outlasts the
        # five- and ten-minute defaults; tests that check expiry read these settings.
        access_token_ttl_seconds=3600,
        login_token_ttl_seconds=3600,
    )


@pytest.fixture(scope="session")
def platform(settings) -> Iterator[Platform]:
    initialize_platform(settings)
    opened = Platform.open(settings)
    yield opened
    opened.close()


@pytest.fixture(scope="session")
def agency(platform):
    with platform.db.session() as session:
        return add_agency(session, code="test-ra", name="测试登记机关", credit_code=None)


@pytest.fixture(scope="session")
def api(platform) -> Iterator[TestClient]:
    with TestClient(create_app(platform=platform)) as client:
        yield client


def token_for(api: TestClient, platform: Platform, agency_code: str, scopes: set[str]) -> str:
    with platform.db.session() as session:
        client, secret = add_client(session, agency_code=agency_code, name="test", scopes=scopes)
    response = api.post("/api/v1/oauth/token", data={"grant_type": "client_credentials"},
                        auth=(client.client_id, secret))
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


@pytest.fixture(scope="session")
def ra_headers(api, platform, agency) -> dict[str, str]:
    """Authorization for an agency client with every certificate scope."""
    token = token_for(api, platform, agency.code, {"certificates:issue", "certificates:read"})
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="session")
def pki_dir(platform, tmp_path_factory) -> Path:
    """The platform's CA certificates as PEM files (root.pem, citizen.pem, ...), for openssl and pkilint."""
    from cryptography.hazmat.primitives.serialization import Encoding
    from store.ca_store import SqlCaStore

    directory = tmp_path_factory.mktemp("pki")
    with platform.db.session() as session:
        for record in SqlCaStore(session).authorities():
            (directory / f"{record.name}.pem").write_bytes(record.certificate.public_bytes(Encoding.PEM))
    return directory


@pytest.fixture(scope="session")
def nss_db(pki_dir, tmp_path_factory) -> Path:
    """An NSS database trusting our root, for pdfsig. Trust flags SSL,email,object-signing: pdfsig checks
    signers for the email (S/MIME) usage, so "C,," (trusted for TLS only) would leave the issuer untrusted."""
    certutil = require_tool("certutil")
    directory = tmp_path_factory.mktemp("nss")
    subprocess.run([certutil, "-N", "-d", f"sql:{directory}", "--empty-password"], check=True, capture_output=True)
    subprocess.run([certutil, "-A", "-d", f"sql:{directory}", "-n", "root", "-t", "C,C,C", "-i",
                    str(pki_dir / "root.pem")], check=True, capture_output=True)
    return directory


SOFTHSM_MODULES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/opt/homebrew/lib/softhsm/libsofthsm2.so",
)


@pytest.fixture(scope="session")
def softhsm_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, str]]:
    """A fresh SoftHSM2 token: (module_path, token_label, user_pin).

    SoftHSM reads SOFTHSM2_CONF once, when the module is first initialized in the process, so there is
    one token per test session (per xdist worker); tests share it and must use their own key labels.
    """
    util = require_tool("softhsm2-util")
    candidates = (os.environ.get("SOFTHSM2_MODULE"), *SOFTHSM_MODULES)
    module = next((Path(p) for p in candidates if p and Path(p).is_file()), None)
    if module is None:
        pytest.fail("softhsm2-util is installed but libsofthsm2.so is not in a known place: set SOFTHSM2_MODULE")
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    label, pin = "eauth-test", "1234"
    subprocess.run(
        [util, "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", "5678"],
        check=True, capture_output=True,
    )
    yield module, label, pin
    if previous is None:
        del os.environ["SOFTHSM2_CONF"]
    else:
        os.environ["SOFTHSM2_CONF"] = previous


@pytest.fixture(scope="session")
def licensing(platform, api):
    """A license-issuing agency (credit code, agency seal, the two demo license types under codes of its
    own) and its client's headers with every license scope."""
    from dataclasses import replace
    from types import SimpleNamespace

    from api.licenses import license_service
    from licenses.catalog import demo_types
    from tests.helpers import credit_code
    from tests.pdf_helpers import issue_seal

    code = f"lic-{secrets.token_hex(4)}"
    with platform.db.session() as session:
        issuing = add_agency(session, code=code, name="某市市场监督管理局", credit_code=credit_code())
    seal = issue_seal(platform, issuing.id, name=issuing.name)
    business, driving = (replace(t, code=credit_code() + f"{n:03d}") for n, t in enumerate(demo_types(code), 901))
    for license_type in (business, driving):
        license_service(platform).define_type(license_type, agency_id=issuing.id)
    scopes = {"licenses:issue", "licenses:read", "licenses:revoke", "licenses:wallet"}
    headers = {"Authorization": f"Bearer {token_for(api, platform, code, scopes)}"}
    return SimpleNamespace(agency=issuing, seal=seal, business=business, driving=driving, headers=headers)
