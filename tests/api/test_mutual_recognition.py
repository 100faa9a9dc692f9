"""Mutual recognition (互认) between two real instances: two data dirs, two databases, two ``eauth
serve`` processes. Platform B issues a certificate, a license (PDF + QR) and a login token; A does not
trust them; B's operator exports its bundle, A's imports it; then A's verification of each passes (or,
for the QR's status, points to B) and names B; A removes the import and they fail again."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from api.login_client import load_pkcs12, login
from bench.server import free_port
from licenses.catalog import DRIVING_LICENCE_CODE
from tests.api.test_cli import _entry_point
from tests.conftest import fresh_database, require_seal_font
from tests.helpers import PASSPHRASE, citizen_id
from tests.licenses.test_issuance import driver



@dataclass
class Instance:
    """One platform: its environment, its CLI and its running server."""

    name: str
    env: dict[str, str]
    base: str
    workdir: Path

    def cli(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([*_entry_point(), *args], cwd=self.workdir, env=self.env, capture_output=True,
                                text=True, timeout=180)
        if ok:
            assert result.returncode == 0, f"{args}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
        return result

    def http(self) -> httpx.Client:
        """A client of the server with the demo client's access token (every scope)."""
        demo = json.loads((Path(self.env["EAUTH_DATA_DIR"]) / "demo-client.json").read_text())
        token = httpx.post(f"{self.base}/api/v1/oauth/token", data={"grant_type": "client_credentials"},
                           auth=(demo["client_id"], demo["client_secret"]), timeout=10)
        assert token.status_code == 200, token.text
        return httpx.Client(base_url=self.base, timeout=60,
                            headers={"Authorization": f"Bearer {token.json()['access_token']}"})


def _start(stack: ExitStack, directory: Path, name: str) -> Instance:
    directory.mkdir()
    database = fresh_database(directory)
    url = next(database)
    stack.callback(database.close)  # drops a PostgreSQL database
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EAUTH_")} | {
        "EAUTH_DATA_DIR": str(directory / "var"), "EAUTH_DATABASE_URL": url, "EAUTH_KEY_PASSPHRASE": PASSPHRASE,
        "EAUTH_PUBLIC_BASE_URL": base, "EAUTH_PLATFORM_NAME": name, "EAUTH_SIGNING_PROCESSES": "1",
        "EAUTH_TRUSTED_PLATFORMS_REFRESH_SECONDS": "0", "EAUTH_CRL_REFRESH_INTERVAL_SECONDS": "0",
        "EAUTH_AUDIT_CHECKPOINT_INTERVAL_SECONDS": "0",
    }
    instance = Instance(name, env, base, directory)
    instance.cli("init")
    instance.cli("seed-demo")
    server = subprocess.Popen([sys.executable, "-m", "api.cli", "serve", "--port", str(port)], cwd=directory, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop() -> None:
        server.terminate()
        server.wait(20)

    stack.callback(stop)
    for _ in range(300):
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return instance
        except httpx.HTTPError:
            pass
        if server.poll() is not None:
            raise RuntimeError(f"eauth serve of {name} exited with {server.returncode}")
        time.sleep(0.1)
    raise RuntimeError(f"eauth serve of {name} did not answer at {base}")


@pytest.fixture(scope="module")
def platforms(tmp_path_factory) -> Iterator[tuple[Instance, Instance]]:
    require_seal_font()
    root = tmp_path_factory.mktemp("mutual")
    with ExitStack() as stack:
        yield _start(stack, root / "a", "Platform A"), _start(stack, root / "b", "Platform B")


@dataclass
class Issued:
    """What B issued: a citizen certificate (PEM), a login token of its holder, a license PDF and QR token."""

    certificate: str
    login_token: str
    pdf: bytes
    qr_token: str


@pytest.fixture(scope="module")
def issued(platforms) -> Issued:
    _, b = platforms
    with b.http() as http:
        cert = http.post("/api/v1/certificates", json={"profile": "citizen", "name": "李四", "id_number": citizen_id(),
                                                       "pkcs12_password": "holder-pass-1"})
        assert cert.status_code == 201, cert.text
        credential = load_pkcs12(base64.b64decode(cert.json()["pkcs12"]), "holder-pass-1")
        token = login(b.base, credential, audience="tax-service").token
        license = http.post("/api/v1/licenses", json={"type_code": DRIVING_LICENCE_CODE, "fields": driver()})
        assert license.status_code == 201, license.text
        pdf = http.get(f"/api/v1/licenses/{license.json()['id']}/pdf")
        assert pdf.status_code == 200, pdf.text
    qr = license.json()["current"]["qr_url"]
    assert qr.startswith(b.base + "/v/")
    return Issued(cert.json()["certificate_pem"], token, pdf.content, qr.rsplit("/v/", 1)[1])


def _verify(a: Instance, issued: Issued) -> dict:
    """A's verdicts on what B issued, over A's HTTP API and public page."""
    with a.http() as http:
        certificate = http.post("/api/v1/verify/certificate", json={"certificate": issued.certificate}).json()
        pdf = http.post("/api/v1/verify/pdf", files={"file": ("license.pdf", issued.pdf, "application/pdf")}).json()
        qr = http.get(f"/api/v1/verify/qr/{issued.qr_token}").json()
        login_token = http.post("/api/v1/verify/login-token",
                                json={"token": issued.login_token, "audience": "tax-service"}).json()
    page = httpx.get(f"{a.base}/v/{issued.qr_token}", timeout=30).text
    return {"certificate": certificate, "pdf": pdf, "qr": qr, "login": login_token, "page": page}


def _assert_untrusted(verdicts: dict) -> None:
    certificate, pdf, qr = verdicts["certificate"], verdicts["pdf"], verdicts["qr"]
    assert certificate["indication"] == "INDETERMINATE", certificate
    assert certificate["sub_indication"] == "NO_CERTIFICATE_CHAIN_FOUND" and certificate["trust_anchor"] is None
    assert pdf["indication"] != "TOTAL_PASSED", pdf["detail"]
    assert all(s["trust_anchor"] is None for s in pdf["signatures"])
    assert qr["status"] == "invalid" and qr["error_code"] == "qr_token_unknown_key" and qr["issued_by"] is None
    assert verdicts["login"]["valid"] is False and verdicts["login"]["reason"] == "unknown_key"
    assert "Platform B" not in verdicts["page"]


def test_mutual_recognition(platforms, issued, tmp_path):
    a, b = platforms

    # B's own verification accepts what it issued, and names itself.
    with b.http() as http:
        own = http.post("/api/v1/verify/certificate", json={"certificate": issued.certificate}).json()
    assert own["indication"] == "TOTAL_PASSED" and own["trust_anchor"] == "Platform B"

    # A does not know B.
    _assert_untrusted(_verify(a, issued))

    # B's operator exports its bundle; A's operator confirms B's root fingerprint out of band (here: the
    # root certificate B publishes) and imports it.
    bundle = tmp_path / "b-bundle.json"
    b.cli("trust", "export", "--out", str(bundle))
    root = httpx.get(f"{b.base}/ca/root.cer", timeout=10).content
    fingerprint = hashlib.sha256(root).hexdigest()
    imported = a.cli("trust", "import", str(bundle), "--name", "Platform B", "--root-sha256", fingerprint)
    assert "trusted Platform B" in imported.stdout
    assert "Platform B" in a.cli("trust", "list").stdout
    again = a.cli("trust", "import", str(bundle), "--name", "B again", "--root-sha256", fingerprint, ok=False)
    assert again.returncode == 1 and "platform_already_trusted" in again.stderr

    # Now A accepts B's certificate, PDF, QR token and login token, and says they are B's.
    verdicts = _verify(a, issued)
    certificate, pdf, qr, login_token = (verdicts[k] for k in ("certificate", "pdf", "qr", "login"))
    assert certificate["indication"] == "TOTAL_PASSED", certificate
    assert certificate["trust_anchor"] == "Platform B"
    assert certificate["status"]["status"] == "good" and "Platform B" in certificate["status"]["source"]
    assert pdf["indication"] == "TOTAL_PASSED", pdf
    assert [s["trust_anchor"] for s in pdf["signatures"]] == ["Platform B"]
    assert pdf["registry"]["found"] is False
    assert "a license of Platform B" in pdf["registry"]["detail"] and b.base in pdf["registry"]["detail"]
    assert qr["status"] == "foreign" and qr["signature_valid"] is True and qr["valid"] is False
    assert qr["issued_by"] == {"name": "Platform B", "base_url": b.base}
    assert qr["license"]["type_code"] == DRIVING_LICENCE_CODE and b.base in qr["detail"]
    assert 'data-status="foreign"' in verdicts["page"] and "Platform B" in verdicts["page"]
    assert b.base in verdicts["page"]
    assert login_token["valid"] is True, login_token
    assert login_token["platform"] == "Platform B" and login_token["issuer"] == b.base

    # A stops trusting B: everything fails again.
    a.cli("trust", "remove", "Platform B")
    assert "no trusted platforms" in a.cli("trust", "list").stdout
    _assert_untrusted(_verify(a, issued))
