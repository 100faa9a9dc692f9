"""SIGKILL during issuance: ``eauth serve --workers 2`` issues licenses from several threads while a
signing process (the pool that renders and signs, ``api/pool.py``) and then an HTTP worker are killed
with SIGKILL. The requests they held fail (503 ``signing_unavailable``, or the connection drops with
the HTTP worker); the rest keep being served; retried with their request keys they give one license
each; no identifier or serial is given twice; no record is without its PDF; a PDF without a record is
at most one per kill and removed by ``eauth documents sweep``; the audit chain verifies."""

from __future__ import annotations

import hashlib
import itertools
import os
import signal
import threading
import time

import httpx
from sqlalchemy import distinct, func, select

from licenses.catalog import DRIVING_LICENCE_CODE
from store.models import License, LicenseRequest
from tests.conftest import fresh_database
from tests.faults.conftest import REQUEST_TIMEOUT, children, command_line, deployment_on, descendants
from tests.licenses.test_issuance import driver

THREADS = 4


class Issuing:
    """Threads issuing licenses (each with its own request key) until stopped; every answer kept."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.url, self.headers = url, headers
        self.answers: list[tuple[dict, int | None, str]] = []  # (request, status or None, text)
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(THREADS)]

    def __enter__(self) -> Issuing:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(REQUEST_TIMEOUT + 10)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=REQUEST_TIMEOUT) as client:
            while not self._stop.is_set():
                request = {"type_code": DRIVING_LICENCE_CODE, "fields": driver(),
                           "request_key": f"kill-{next(self._numbers)}"}
                try:
                    response = client.post("/api/v1/licenses", headers=self.headers, json=request)
                    answer = (request, response.status_code, response.text)
                except httpx.TransportError as exc:  # the HTTP worker holding it was killed
                    answer = (request, None, repr(exc))
                with self._lock:
                    self.answers.append(answer)

    def issued(self) -> int:
        with self._lock:
            return sum(status == 201 for _, status, _ in self.answers)

    def wait_for_more(self, count: int) -> None:
        """Until ``count`` more licenses are issued than now (bounded: a platform that stopped fails)."""
        target, deadline = self.issued() + count, time.monotonic() + 120
        while self.issued() < target:
            assert time.monotonic() < deadline, f"issuance stopped: {self.answers[-5:]}"
            time.sleep(0.05)


def _spawned(pids: list[int]) -> list[int]:
    """The processes among ``pids`` that multiprocessing spawned to run work (not its resource tracker)."""
    return [pid for pid in pids if "spawn_main" in command_line(pid)]


def test_sigkill_of_a_signing_process_and_of_a_worker_leaves_nothing_half_issued(tmp_path):
    databases = fresh_database(tmp_path)
    deployment = deployment_on(next(databases), tmp_path)
    try:
        with deployment.serve(workers=2) as node, httpx.Client(base_url=node.url, timeout=REQUEST_TIMEOUT) as client:
            headers = deployment.agency_headers(client)
            with Issuing(node.url, headers) as load:
                load.wait_for_more(4)
                workers = _spawned(children(node.process.pid))
                signers = _spawned([pid for worker in workers for pid in descendants(worker)])
                assert len(workers) == 2 and signers, (workers, signers)
                os.kill(signers[0], signal.SIGKILL)
                load.wait_for_more(2)  # the pool is made anew; both workers go on
                os.kill(workers[0], signal.SIGKILL)
                load.wait_for_more(3)  # the other worker serves meanwhile; uvicorn starts a new one
            answers = load.answers
            failed = [(request, status, text) for request, status, text in answers if status != 201]
            for request, status, text in failed:
                assert status in (None, 503), (status, text)  # never a 500
                if status == 503:
                    assert '"code":"signing_unavailable"' in text, text
            assert any(status == 503 for _, status, _ in failed), "the signing process was not caught mid-flight"
            for request, _, _ in failed:  # a client retries with the same request key
                again = client.post("/api/v1/licenses", headers=headers, json=request)
                assert again.status_code in (200, 201), again.text

        keys = {request["request_key"] for request, _, _ in answers}
        licenses = deployment.scalar(select(func.count()).select_from(License))
        assert licenses == deployment.scalar(select(func.count()).select_from(LicenseRequest)) == len(keys)
        assert deployment.scalar(select(func.count(distinct(License.identifier)))) == licenses
        assert deployment.scalar(select(func.count()).select_from(
            select(License.type_code, License.issuer_code, License.serial).distinct().subquery())) == licenses
        # What a kill between writing a PDF and recording it leaves: a blob no record names, at most one
        # per kill, listed and removed by `eauth documents sweep` (here with one more made by hand).
        stray = b"%PDF-1.7 signed, then the process was killed"
        stray_path = deployment.data_dir / "documents" / _path(hashlib.sha256(stray).hexdigest())
        stray_path.parent.mkdir(parents=True, exist_ok=True)
        stray_path.write_bytes(stray)
        listed = deployment.ok("documents", "sweep", "--older-than-hours", "0")
        orphans = [line for line in listed.splitlines() if line.startswith("unreferenced ")]
        assert f"unreferenced {stray_path}" in orphans and len(orphans) <= 1 + 2, listed  # two kills
        deployment.ok("documents", "sweep", "--older-than-hours", "0", "--delete")
        assert not stray_path.exists()
        assert deployment.ok("documents", "sweep", "--older-than-hours", "0").startswith("0 unreferenced")
        assert deployment.unbacked_versions() == []
        deployment.audit_intact()
    finally:
        databases.close()



def _path(key: str) -> str:
    return f"{key[:2]}/{key[2:4]}/{key}"
