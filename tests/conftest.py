"""Shared fixtures: a database (SQLite, or PostgreSQL when EAUTH_TEST_DATABASE_URL is set), an
initialized platform with its test PKI made at session start (never committed), an HTTP client."""

from __future__ import annotations

import os
import shutil
import secrets
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


def require_tool(name: str) -> str:
    """Path of an external tool; skip the test without it, or fail when CI requires interop."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not installed"
        if REQUIRE_INTEROP:
            pytest.fail(message + " (EAUTH_REQUIRE_INTEROP=1)")
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> Iterator[str]:
    """A fresh, empty database for this test session (one per xdist worker)."""
    server = os.environ.get("EAUTH_TEST_DATABASE_URL")
    if not server:
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'eauth.db'}"
        return
    yield from fresh_postgres_database(server)


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
