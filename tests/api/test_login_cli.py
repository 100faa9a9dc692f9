"""Logging in from the holder's side: ``eauth login`` against a real server (uvicorn on a free port)
and the client helper ``api.login_client`` over an httpx transport into the app."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from api.login_client import Credential, load_pkcs12, login
from ca.lifecycle import RevocationReason
from ca.profiles import SubjectKind
from ca.records import Actor
from ca.subjects import SubjectIdentity
from eauth.errors import InvalidInput, LoginFailed, ServiceUnreachable
from store.ca_store import SqlCaStore
from tests.api.holders import registrar
from tests.helpers import citizen_id, served

PASSWORD = "holder pkcs12 password"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def base_url(platform) -> Iterator[str]:
    """The app served by uvicorn in a thread, on a free port."""
    with served(platform) as url:
        yield url


def pkcs12_holder(platform, directory: Path) -> tuple[Path, str]:
    """A citizen certificate with a server-made key, delivered as PKCS#12 (the file and the serial)."""
    with platform.db.session() as session:
        issued = platform.ca.issue(SqlCaStore(session), profile_name="citizen", pkcs12_password=PASSWORD,
                                   subject=SubjectIdentity(SubjectKind.PERSON, "李四", citizen_id()),
                                   requested_by=registrar(platform))
    path = directory / f"{issued.record.serial}.p12"
    path.write_bytes(issued.pkcs12)
    return path, issued.record.serial


def eauth(*args: str, password: str | None = PASSWORD) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EAUTH_")}
    if password is not None:
        env["EAUTH_P12_PASSWORD"] = password
    return subprocess.run([sys.executable, "-m", "api.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)


def test_cli_login_prints_a_token(platform, base_url, tmp_path):
    p12, serial = pkcs12_holder(platform, tmp_path)
    done = eauth("login", "--p12", str(p12), "--audience", "tax-service", "--url", base_url)
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["aud"] == "tax-service" and claims["cert_serial"] == serial
    (tmp_path / "password").write_text(PASSWORD + "\n")
    again = eauth("login", "--p12", str(p12), "--audience", "eauth", "--url", base_url,
                  "--password-file", str(tmp_path / "password"), password=None)
    assert again.returncode == 0, again.stderr
    me = httpx.get(f"{base_url}/api/v1/me", headers={"Authorization": f"Bearer {again.stdout.strip()}"})
    assert me.status_code == 200 and me.json()["certificate_serial"] == serial


def test_cli_login_errors_are_one_line(platform, base_url, tmp_path):
    p12, serial = pkcs12_holder(platform, tmp_path)
    wrong = eauth("login", "--p12", str(p12), "--audience", "eauth", "--url", base_url, password="wrong password")
    assert wrong.returncode == 1 and "invalid_input" in wrong.stderr and len(wrong.stderr.strip().splitlines()) == 1
    missing = eauth("login", "--p12", str(p12), "--audience", "eauth", "--url", base_url, password=None)
    assert missing.returncode == 1 and "EAUTH_P12_PASSWORD" in missing.stderr
    with platform.db.session() as session:
        platform.lifecycle.revoke(SqlCaStore(session), serial, reason=RevocationReason.KEY_COMPROMISE,
                                  actor=Actor(None))
    refused = eauth("login", "--p12", str(p12), "--audience", "eauth", "--url", base_url)
    assert refused.returncode == 1 and "login_certificate_refused" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    down = eauth("login", "--p12", str(p12), "--audience", "eauth", "--url", f"http://127.0.0.1:{closed}")
    assert down.returncode == 1 and "service_unreachable" in down.stderr


def test_client_helper_over_a_transport(api, platform, tmp_path):
    p12, serial = pkcs12_holder(platform, tmp_path)
    credential = load_pkcs12(p12.read_bytes(), PASSWORD)
    result = login("http://testserver", credential, audience="tax-service", client=api)
    assert jwt.decode(result.token, options={"verify_signature": False})["cert_serial"] == serial
    assert result.audience == "tax-service" and result.expires_in == platform.settings.login_token_ttl_seconds
    with pytest.raises(InvalidInput):
        load_pkcs12(p12.read_bytes(), "wrong")
    with pytest.raises(InvalidInput):
        load_pkcs12(b"not a pkcs12", PASSWORD)
    from cryptography.hazmat.primitives.asymmetric import ec

    stranger = Credential(ec.generate_private_key(ec.SECP256R1()), credential.certificate)
    with pytest.raises(LoginFailed) as refused:
        login("http://testserver", stranger, audience="eauth", client=api)
    assert refused.value.extra["server_code"] == "login_signature_invalid"
    with pytest.raises(ServiceUnreachable):
        login("http://127.0.0.1:9", credential, audience="eauth")
