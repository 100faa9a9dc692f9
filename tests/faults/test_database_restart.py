"""The database restarting under load: a PostgreSQL cluster of this test's own is stopped at once
(``pg_ctl stop -m immediate``: every backend killed, as in a crash or a failover) while ``eauth serve``
issues certificates and licenses and answers QR and OCSP verifications from several threads, then
started again. While it is down every request is a 503 problem+json with Retry-After (OCSP: tryLater),
none hangs, none is a 500; once it is back requests succeed without restarting the app; and nothing is
half-written: every license the client was told about exists once with its PDF, a request that got a 503
and is retried with its request key gives one license, and the audit chain verifies."""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from sqlalchemy import func, select

from licenses.catalog import DRIVING_LICENCE_CODE
from store.models import Certificate, License, LicenseRequest
from tests.faults.conftest import REQUEST_TIMEOUT, deployment_on
from tests.helpers import citizen_id, ec_csr
from tests.licenses.test_issuance import driver

OPERATIONS = ("certificate", "license", "qr", "ocsp")
THREADS = 4
#: How many answers of each operation every phase must see before the test moves on.
PER_PHASE = 3


@dataclass(frozen=True)
class Outcome:
    operation: str
    started: str  # the phase when the request was sent: before, down, after (or a transition)
    ended: str
    status: int | None  # None: no HTTP answer (connection error, timeout)
    response: httpx.Response | None
    key: str  # the license's request key, the certificate's subject name
    request: dict | None = None  # the JSON body sent
    error: str = ""


class Load:
    """Threads sending the four operations in turn until told to stop; every answer kept."""

    def __init__(self, url: str, headers: dict[str, str], *, qr_token: str, ocsp_request: bytes) -> None:
        self.url, self.headers, self.qr_token, self.ocsp_request = url, headers, qr_token, ocsp_request
        self.phase = "before"
        self.outcomes: list[Outcome] = []
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(THREADS)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(REQUEST_TIMEOUT + 10)

    def _run(self, offset: int) -> None:
        with httpx.Client(base_url=self.url, timeout=REQUEST_TIMEOUT) as client:
            for n in itertools.count(offset):
                if self._stop.is_set():
                    return
                self._send(client, OPERATIONS[n % len(OPERATIONS)])

    def _send(self, client: httpx.Client, operation: str) -> None:
        number = next(self._numbers)
        key, started, body = f"fault-{number:05d}-x", self.phase, None
        try:
            if operation == "certificate":
                csr, _ = ec_csr(key)
                body = {"profile": "citizen", "name": key, "id_number": citizen_id(number), "csr": csr.decode()}
                response = client.post("/api/v1/certificates", headers=self.headers, json=body)
            elif operation == "license":
                body = {"type_code": DRIVING_LICENCE_CODE, "fields": driver(), "request_key": key}
                response = client.post("/api/v1/licenses", headers=self.headers, json=body)
            elif operation == "qr":
                response = client.get(f"/api/v1/verify/qr/{self.qr_token}", headers=self.headers)
            else:
                response = client.post("/ocsp", content=self.ocsp_request,
                                       headers={"Content-Type": "application/ocsp-request"})
            outcome = Outcome(operation, started, self.phase, response.status_code, response, key, body)
        except httpx.HTTPError as exc:
            outcome = Outcome(operation, started, self.phase, None, None, key, body, error=repr(exc))
        with self._lock:
            self.outcomes.append(outcome)

    def within(self, phase: str) -> list[Outcome]:
        """The answers to requests sent and answered within ``phase``."""
        with self._lock:
            return [o for o in self.outcomes if o.started == o.ended == phase]

    def wait_for(self, phase: str) -> None:
        """Until every operation has ``PER_PHASE`` answers within ``phase`` (bounded: a stuck app fails)."""
        deadline = time.monotonic() + 120
        while any(sum(o.operation == op for o in self.within(phase)) < PER_PHASE for op in OPERATIONS):
            assert time.monotonic() < deadline, f"too few answers while {phase}: {self.within(phase)}"
            time.sleep(0.05)


def _ocsp_status(response: httpx.Response) -> ocsp.OCSPResponseStatus:
    assert response.headers["content-type"] == "application/ocsp-response", response.text
    return ocsp.load_der_ocsp_response(response.content).response_status


def _assert_unavailable(outcome: Outcome) -> None:
    """A 503 problem+json naming the database, with retry advice (OCSP: its own tryLater)."""
    response = outcome.response
    if outcome.operation == "ocsp":
        assert response.status_code == 200 and _ocsp_status(response) is ocsp.OCSPResponseStatus.TRY_LATER
        return
    assert response.status_code == 503, (outcome.operation, response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json")
    assert int(response.headers["retry-after"]) > 0
    assert response.json()["code"] == "database_unavailable", response.text


def _assert_served(outcome: Outcome) -> None:
    response = outcome.response
    assert response.status_code in (200, 201), (outcome.operation, response.status_code, response.text)
    if outcome.operation == "ocsp":
        assert _ocsp_status(response) is ocsp.OCSPResponseStatus.SUCCESSFUL


def test_requests_fail_cleanly_while_the_database_restarts_and_recover(private_postgres, tmp_path):
    deployment = deployment_on(private_postgres.url, tmp_path)
    with deployment.serve(workers=1) as node, httpx.Client(base_url=node.url, timeout=REQUEST_TIMEOUT) as client:
        headers = deployment.agency_headers(client)
        first = client.post("/api/v1/licenses", headers=headers,
                            json={"type_code": DRIVING_LICENCE_CODE, "fields": driver(), "request_key": "warm-up"})
        assert first.status_code == 201, first.text
        csr, _ = ec_csr("ocsp-subject")
        issued = client.post("/api/v1/certificates", headers=headers, json={
            "profile": "citizen", "name": "ocsp-subject", "id_number": citizen_id(), "csr": csr.decode()})
        assert issued.status_code == 201, issued.text
        certificate = x509.load_pem_x509_certificate(issued.json()["certificate_pem"].encode())
        issuer = x509.load_der_x509_certificate(client.get("/ca/citizen.cer").content)
        ocsp_request = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, hashes.SHA1()).build()
        qr_token = first.json()["current"]["qr_url"].rsplit("/", 1)[1]

        with Load(node.url, headers, qr_token=qr_token,
                  ocsp_request=ocsp_request.public_bytes(Encoding.DER)) as load:
            load.wait_for("before")
            load.phase = "stopping"
            private_postgres.stop()
            load.phase = "down"
            load.wait_for("down")
            load.phase = "starting"
            private_postgres.start()
            load.phase = "after"
            load.wait_for("after")
        outcomes = load.outcomes

        hangs = [o for o in outcomes if o.status is None]
        assert not hangs, f"requests without an answer (connection error or longer than {REQUEST_TIMEOUT} s): {hangs}"
        assert not [o for o in outcomes if o.status not in (200, 201, 503)], \
            [(o.operation, o.status, o.response.text) for o in outcomes if o.status not in (200, 201, 503)]
        for outcome in outcomes:
            if outcome.status == 503:
                _assert_unavailable(outcome)
        for outcome in load.within("down"):
            _assert_unavailable(outcome)
        for outcome in load.within("before") + load.within("after"):
            _assert_served(outcome)

        # A license request that got a 503 is retried with its request key: one license either way
        # (201 if it was not written, 200 if its commit landed just before the connection was lost).
        refused = [o for o in outcomes if o.operation == "license" and o.status == 503]
        for outcome in refused:
            again = client.post("/api/v1/licenses", headers=headers, json=outcome.request)
            assert again.status_code in (200, 201), again.text

    license_keys = {o.key for o in outcomes if o.operation == "license"} | {"warm-up"}
    assert deployment.scalar(select(func.count()).select_from(License)) == deployment.scalar(
        select(func.count()).select_from(LicenseRequest)) == len(license_keys)
    assert deployment.unbacked_versions() == []
    for outcome in (o for o in outcomes if o.operation == "certificate"):
        stored = deployment.scalar(select(func.count()).select_from(Certificate)
                                   .where(Certificate.subject_dn.contains(f"CN={outcome.key}")))
        if outcome.status == 201:
            assert stored == 1, outcome
            assert deployment.scalar(select(func.count()).select_from(Certificate).where(
                Certificate.serial == outcome.response.json()["serial"])) == 1
        else:  # not written, or (a commit whose answer the lost connection swallowed) written whole, once
            assert stored in (0, 1), outcome
    deployment.audit_intact()
