"""Production mode as docs/deploy.md sets it up: keys in an HSM (SoftHSM2 through PKCS#11), one
database, two nodes started with ``eauth serve`` (one of them with ``--workers 2``) behind what would be
a load balancer. Every step of a request flow lands on another node than the one before, so anything
correct that lived in one process's memory (tokens, challenges, statuses, counters) would show here.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from api.holder import PLATFORM_AUDIENCE
from licenses.catalog import DRIVING_LICENCE_CODE
from tests.conftest import fresh_database, require_seal_font, require_tool
from tests.helpers import citizen_id, eauth_serve, ec_csr
from tests.licenses.test_issuance import driver
from verify.login import challenge_message

pytestmark = pytest.mark.interop

EAUTH = str(Path(sys.executable).with_name("eauth"))
PUBLIC_BASE_URL = "https://eauth.example.gov.cn"  # the load balancer's address, as every node is told


@pytest.fixture(scope="module")
def deployment(softhsm_token, tmp_path_factory) -> Iterator[dict[str, str]]:
    """The environment of every node: a token of its own on the session's SoftHSM2, a fresh database,
    a shared data dir (the documents every node must see), initialized and seeded once."""
    require_seal_font()
    module, _, _ = softhsm_token
    root = tmp_path_factory.mktemp("deploy")
    label, pin = "eauth-deploy", "24680"
    subprocess.run([require_tool("softhsm2-util"), "--init-token", "--free", "--label", label, "--pin", pin,
                    "--so-pin", "13579"], check=True, capture_output=True)
    (root / "pin").write_text(pin + "\n")
    databases = fresh_database(root)
    env = {**os.environ, "EAUTH_DATA_DIR": str(root / "data"), "EAUTH_DATABASE_URL": next(databases),
           "EAUTH_KEY_BACKEND": "pkcs11", "EAUTH_PKCS11_MODULE": str(module), "EAUTH_PKCS11_TOKEN": label,
           "EAUTH_PKCS11_PIN_FILE": str(root / "pin"), "EAUTH_PUBLIC_BASE_URL": PUBLIC_BASE_URL,
           "EAUTH_SIGNING_PROCESSES": "1"}
    for command in ("init", "seed-demo"):
        done = subprocess.run([EAUTH, command], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
    assert not list((root / "data").glob("keys/*")), "with PKCS#11 no key material belongs in the data dir"
    yield env
    databases.close()


@pytest.fixture(scope="module")
def nodes(deployment) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    with eauth_serve(deployment, workers=2) as (_, a), eauth_serve(deployment, workers=1) as (_, b):
        with httpx.Client(base_url=a, timeout=60) as first, httpx.Client(base_url=b, timeout=60) as second:
            yield first, second


@pytest.fixture(scope="module")
def agency_headers(deployment, nodes) -> dict[str, str]:
    """A bearer token obtained from node A with the demo client's credentials."""
    credentials = json.loads((Path(deployment["EAUTH_DATA_DIR"]) / "demo-client.json").read_text())
    response = nodes[0].post("/api/v1/oauth/token", data={"grant_type": "client_credentials"},
                             auth=(credentials["client_id"], credentials["client_secret"]))
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _ocsp_status(client: httpx.Client, certificate: x509.Certificate, issuer: x509.Certificate) -> ocsp.OCSPCertStatus:
    request = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, hashes.SHA1()).build()
    response = client.post("/ocsp", content=request.public_bytes(Encoding.DER),
                           headers={"Content-Type": "application/ocsp-request"})
    assert response.status_code == 200, response.text
    return ocsp.load_der_ocsp_response(response.content).certificate_status


def test_a_token_from_one_node_works_on_every_node(nodes, agency_headers):
    for client in nodes:
        assert client.get("/api/v1/license-types", headers=agency_headers).status_code == 200


def test_certificate_issued_on_one_node_is_revoked_on_another_and_every_node_says_so(nodes, agency_headers):
    a, b = nodes
    csr, _ = ec_csr("李四")
    issued = b.post("/api/v1/certificates", headers=agency_headers,
                    json={"profile": "citizen", "name": "李四", "id_number": citizen_id(), "csr": csr.decode()})
    assert issued.status_code == 201, issued.text
    serial = issued.json()["serial"]
    certificate = x509.load_pem_x509_certificate(issued.json()["certificate_pem"].encode())
    issuer = x509.load_der_x509_certificate(a.get("/ca/citizen.cer").content)
    assert _ocsp_status(a, certificate, issuer) is ocsp.OCSPCertStatus.GOOD  # stored, without nonce
    assert a.post(f"/api/v1/certificates/{serial}/revoke", headers=agency_headers,
                  json={"reason": "keyCompromise"}).status_code == 200
    for client in (a, b, a, b):  # the response A stored while it was good must not be served again
        assert _ocsp_status(client, certificate, issuer) is ocsp.OCSPCertStatus.REVOKED


def test_license_lifecycle_across_nodes(nodes, agency_headers):
    a, b = nodes
    request = {"type_code": DRIVING_LICENCE_CODE, "fields": driver(), "request_key": "deploy-1"}
    issued = a.post("/api/v1/licenses", headers=agency_headers, json=request)
    assert issued.status_code == 201, issued.text
    body = issued.json()
    again = b.post("/api/v1/licenses", headers=agency_headers, json=request)  # a retry sent to another node
    assert again.status_code == 200 and again.json()["id"] == body["id"], again.text
    pdf = b.get(body["pdf_url"], headers=agency_headers)  # the document written by A, read by B
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    token = body["current"]["qr_url"].rsplit("/", 1)[1]

    def status(client: httpx.Client) -> str:
        report = client.get(f"/api/v1/verify/qr/{token}", headers=agency_headers)
        assert report.status_code == 200, report.text
        return report.json()["status"]

    assert status(b) == "valid"
    assert b.post(f"/api/v1/licenses/{body['id']}/suspend", headers=agency_headers,
                  json={"reason": "inspection"}).status_code == 200
    assert [status(a) for _ in range(6)] == ["suspended"] * 6  # whichever of A's workers answers
    page = a.get(f"/v/{token}")
    assert page.status_code == 200 and "suspended" in page.text.lower(), page.text


def test_login_challenge_from_one_node_answered_at_another(nodes, agency_headers):
    a, b = nodes
    csr, key = ec_csr("王五")
    issued = a.post("/api/v1/certificates", headers=agency_headers,
                    json={"profile": "citizen", "name": "王五", "id_number": citizen_id(), "csr": csr.decode()})
    assert issued.status_code == 201, issued.text
    challenge = a.post("/api/v1/auth/challenge", json={"audience": PLATFORM_AUDIENCE})
    assert challenge.status_code == 200, challenge.text
    nonce = challenge.json()["nonce"]
    message = challenge_message(nonce=nonce, audience=PLATFORM_AUDIENCE, issuer=PUBLIC_BASE_URL)
    signature = base64.b64encode(key.sign(message, ec.ECDSA(hashes.SHA256()))).decode()
    answer = {"certificate": issued.json()["certificate_pem"], "nonce": nonce, "signature": signature}
    login = b.post("/api/v1/auth/login", json=answer)
    assert login.status_code == 200, login.text
    replay = a.post("/api/v1/auth/login", json=answer)  # a challenge is good once, whichever node sees it
    assert replay.status_code == 401, replay.text
    me = a.get("/api/v1/me", headers={"Authorization": f"Bearer {login.json()['token']}"})
    assert me.status_code == 200 and me.json()["name"] == "王五", me.text


def test_audit_chain_written_by_every_process_verifies(deployment, nodes):
    done = subprocess.run([EAUTH, "audit", "verify"], env=deployment, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "intact" in done.stdout
