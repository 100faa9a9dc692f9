"""A full disk in the data dir: the data dir is a small tmpfs of its own (SQLite, keys and documents on
it; with EAUTH_TEST_DATABASE_URL the database is elsewhere and only the documents fill up), filled to
the last byte. Issuing a license is a 503 ``storage_full`` problem, ``eauth backup`` and ``eauth sign``
onto it fail with one line; nothing is recorded, no partial file is left; once space is freed the same
requests succeed."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from licenses.catalog import DRIVING_LICENCE_CODE
from store.models import Certificate, License
from tests.conftest import fresh_postgres_database
from tests.faults.conftest import REQUEST_TIMEOUT, Deployment, deployment_on, unavailable
from tests.helpers import assert_problem
from tests.licenses.test_issuance import driver
from tests.pdf_helpers import one_page_pdf

SIZE = "24m"


@pytest.fixture
def small_data_dir(tmp_path) -> Iterator[Path]:
    """``tmp_path/data`` as a tmpfs of ``SIZE`` (mounting needs root or CAP_SYS_ADMIN)."""
    mount = tmp_path / "data"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE},mode=0700", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        unavailable(f"cannot mount a small tmpfs for the data dir: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.fixture
def database_url(small_data_dir) -> Iterator[str]:
    server = os.environ.get("EAUTH_TEST_DATABASE_URL")
    if server:
        yield from fresh_postgres_database(server)
    else:
        yield f"sqlite:///{small_data_dir / 'eauth.db'}"


def _fill(directory: Path) -> Path:
    """A file taking every free byte of ``directory``'s filesystem."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as file:
        for chunk in (1 << 20, 4096, 1):
            try:
                while True:
                    file.write(b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    return filler


def _files(directory: Path) -> set[Path]:
    return {p for p in directory.rglob("*") if p.is_file()}


def _one_line_failure(done: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_a_full_data_dir_is_a_clear_error_and_nothing_half_written(small_data_dir, database_url, tmp_path):
    deployment: Deployment = deployment_on(database_url, tmp_path)
    seal_serial = _demo_seal(deployment)
    document = tmp_path / "document.pdf"
    document.write_bytes(one_page_pdf())
    with deployment.serve() as node, httpx.Client(base_url=node.url, timeout=REQUEST_TIMEOUT) as client:
        headers = deployment.agency_headers(client)
        request = {"type_code": DRIVING_LICENCE_CODE, "fields": driver(), "request_key": "full-1"}
        assert client.post("/api/v1/licenses", headers=headers, json=request | {"request_key": "room"}).status_code == 201
        licenses = deployment.scalar(select(func.count()).select_from(License))
        filler = _fill(small_data_dir)
        documents = _files(small_data_dir / "documents")

        for _ in range(2):
            response = client.post("/api/v1/licenses", headers=headers, json=request)
            body = assert_problem(response, 503, "storage_full")
            assert int(response.headers["retry-after"]) > 0 and "space" in body["detail"]
        assert deployment.scalar(select(func.count()).select_from(License)) == licenses
        assert _files(small_data_dir / "documents") == documents  # no partial or temporary file

        _one_line_failure(deployment.eauth("backup", str(small_data_dir / "backup.tar")), "backup_failed",
                          "No space left")
        _one_line_failure(deployment.eauth("sign", str(document), "--seal", seal_serial, "--level", "B-B",
                                           "--out", str(small_data_dir / "signed.pdf")), "No space left",
                          "signed.pdf")
        assert not [p for p in _files(small_data_dir) if "backup" in p.name or "signed" in p.name]

        filler.unlink()
        again = client.post("/api/v1/licenses", headers=headers, json=request)
        assert again.status_code == 201, again.text
        assert client.get(again.json()["pdf_url"], headers=headers).content.startswith(b"%PDF")
    deployment.ok("sign", str(document), "--seal", seal_serial, "--level", "B-B", "--out",
                  str(small_data_dir / "signed.pdf"))
    deployment.ok("backup", str(small_data_dir / "backup.tar"))
    assert deployment.unbacked_versions() == []
    deployment.audit_intact()


def _demo_seal(deployment: Deployment) -> str:
    """The serial of the demo agency's seal certificate (made by ``eauth seed-demo``)."""
    return deployment.scalar(select(Certificate.serial).where(Certificate.profile == "agency-seal"))
