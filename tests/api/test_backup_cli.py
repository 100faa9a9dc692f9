"""``eauth backup`` / ``eauth restore`` as an operator runs them: back up a platform with certificates and
licenses while it serves and writes, wipe (a new data dir and a new database), restore, and the restored
platform verifies its licenses (PDF from the restored blob, QR), certificates, OCSP and audit chain.
And every bad archive or target refused in one line, with nothing left half-written."""

from __future__ import annotations

import io
import tarfile
import threading
from pathlib import Path

import pytest
from cryptography.x509 import ocsp
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect

from api.http import create_app
from api.licenses import blob_store
from api.platform import Platform
from eauth.settings import Settings
from tests.api.test_cli import Cli, _database, assert_one_line_error
from tests.api.test_ocsp_http import issue as issue_certificate, issuer_of, request_der
from tests.api.test_verify_certificate import pem
from tests.conftest import require_seal_font, token_for
from tests.helpers import PASSPHRASE
from tests.licenses.test_issuance import driver


def _issue(api, licensing) -> dict:
    response = api.post("/api/v1/licenses", json={"type_code": licensing.driving.code, "fields": driver()},
                        headers=licensing.headers)
    assert response.status_code == 201, response.text
    return response.json()


def _source(tmp_path: Path, settings: Settings) -> Cli:
    """The CLI on the running test platform's data dir and database."""
    return Cli(workdir=tmp_path, data_dir=Path(settings.data_dir), database_url=settings.database_url)


@pytest.fixture(scope="module")
def backed_up(platform, api, licensing, agency, tmp_path_factory):
    """A backup made while the platform serves and a license is being issued, and what it holds."""
    require_seal_font()
    licenses = [_issue(api, licensing) for _ in range(2)]
    certificate = issue_certificate(platform, agency)
    workdir = tmp_path_factory.mktemp("backup")
    archive = workdir / "platform.tar.gz"
    writes, stop = [], threading.Event()

    def keep_writing() -> None:
        while not stop.is_set() or not writes:
            writes.append(_issue(api, licensing))

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        result = _source(workdir, platform.settings).ok("backup", str(archive))
    finally:
        stop.set()
        writer.join()
    assert "backup written to" in result.stdout and archive.is_file()
    return licenses, certificate, archive, workdir


@pytest.fixture(scope="module")
def restored(backed_up, tmp_path_factory):
    """The backup restored into a new data dir and a new database, opened with the same passphrase."""
    _, _, archive, _ = backed_up
    databases = _database()
    database_url = next(databases)
    workdir = tmp_path_factory.mktemp("restore")
    target = Cli(workdir=workdir, data_dir=workdir / "var", database_url=database_url)
    result = target.ok("restore", str(archive))
    assert "restored" in result.stdout and "key files" in result.stdout
    settings = Settings(_env_file=None, data_dir=target.data_dir, database_url=database_url,
                        key_passphrase=PASSPHRASE, public_base_url="http://127.0.0.1:8000")
    opened = Platform.open(settings)
    try:
        yield target, opened
    finally:
        opened.close()
        databases.close()


def test_restored_platform_verifies_licenses_certificates_ocsp_and_audit(backed_up, restored, licensing):
    licenses, certificate, _, _ = backed_up
    target, platform = restored
    with TestClient(create_app(platform=platform)) as api:
        verifier = {"Authorization": f"Bearer {token_for(api, platform, licensing.agency.code, {'verify'})}"}
        for issued in licenses:
            pdf = blob_store(platform).get(issued["current"]["pdf_sha256"])  # from the restored blob store
            report = api.post("/api/v1/verify/pdf", files={"file": ("l.pdf", pdf, "application/pdf")},
                              headers=verifier).json()
            assert report["indication"] == "TOTAL_PASSED", report
            assert report["registry"]["byte_identical"] is True
            assert report["registry"]["license"]["identifier"] == issued["identifier"]
            token = issued["current"]["qr_url"].rsplit("/", 1)[1]
            qr = api.get(f"/api/v1/verify/qr/{token}", headers=verifier).json()
            assert qr["status"] == "valid", qr
            assert api.get(f"/api/v1/licenses/{issued['id']}", headers=licensing.headers).status_code == 200
        report = api.post("/api/v1/verify/certificate", json={"certificate": pem(certificate.certificate),
                                                              "chain": []}, headers=verifier).json()
        assert report["indication"] == "TOTAL_PASSED", report
        answer = api.post("/ocsp", content=request_der(certificate, issuer_of(platform, "citizen")),
                          headers={"Content-Type": "application/ocsp-request"})
        response = ocsp.load_der_ocsp_response(answer.content)
        assert response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
        assert response.certificate_status is ocsp.OCSPCertStatus.GOOD
        # The restored platform works on: it issues (sequences and serials follow the restored rows).
        assert _issue(api, licensing)["status"] == "valid"
    audit = target.ok("audit", "verify")
    assert "intact" in audit.stdout
    assert (target.data_dir / "config-from-backup.json").is_file()


def test_restore_into_a_non_empty_target_is_refused(backed_up, restored):
    _, _, archive, _ = backed_up
    target, _ = restored
    before = sorted(p.name for p in target.data_dir.iterdir())
    assert_one_line_error(target.run("restore", str(archive)), "restore_target_not_empty")
    assert sorted(p.name for p in target.data_dir.iterdir()) == before


def _rewrite(archive: Path, out: Path, change) -> None:
    """A copy of ``archive`` with each member's bytes passed through ``change(name, data)``."""
    with tarfile.open(archive) as source, tarfile.open(out, "w:gz") as copy:
        for member in source:
            data = change(member.name, source.extractfile(member).read())
            member.size = len(data)
            copy.addfile(member, io.BytesIO(data))


@pytest.fixture
def empty_target(tmp_path) -> Cli:
    databases = _database()
    database_url = next(databases)
    yield Cli(workdir=tmp_path, data_dir=tmp_path / "var", database_url=database_url)
    databases.close()


def _assert_nothing_restored(target: Cli) -> None:
    assert not target.data_dir.exists() or not any(target.data_dir.iterdir())
    assert [p.name for p in target.workdir.iterdir() if p.name.startswith(".")] == []  # no staging dir left
    if target.database_url:
        engine = create_engine(target.database_url)
        try:
            assert inspect(engine).get_table_names() == []
        finally:
            engine.dispose()


def test_tampered_archive_is_refused(backed_up, empty_target, tmp_path):
    _, _, archive, _ = backed_up
    tampered = tmp_path / "tampered.tar.gz"
    _rewrite(archive, tampered,
             lambda name, data: data.replace(b'"valid"', b'"revoked"', 1) if name == "db/licenses.jsonl" else data)
    line = assert_one_line_error(empty_target.run("restore", str(tampered)), "backup_invalid", "db/licenses.jsonl")
    assert "altered" in line
    _assert_nothing_restored(empty_target)


def test_truncated_archive_is_refused(backed_up, empty_target, tmp_path):
    _, _, archive, _ = backed_up
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size * 2 // 3])
    assert_one_line_error(empty_target.run("restore", str(truncated)), "backup_invalid")
    _assert_nothing_restored(empty_target)


def test_wrong_passphrase_restores_nothing(backed_up, empty_target):
    _, _, archive, _ = backed_up
    result = empty_target.run("restore", str(archive), env={"EAUTH_KEY_PASSPHRASE": "not the passphrase"})
    assert_one_line_error(result, "key_store_locked")
    _assert_nothing_restored(empty_target)


def test_backup_to_an_unwritable_path_is_one_line(platform, tmp_path):
    (tmp_path / "a-file").write_text("not a directory")
    result = _source(tmp_path, platform.settings).run("backup", str(tmp_path / "a-file" / "backup.tar.gz"))
    assert_one_line_error(result, "backup_failed", "backup.tar.gz")


def test_backup_never_overwrites(backed_up, platform):
    _, _, archive, workdir = backed_up
    before = archive.read_bytes()
    assert_one_line_error(_source(workdir, platform.settings).run("backup", str(archive)), "already exists")
    assert archive.read_bytes() == before
    assert sorted(p.name for p in workdir.iterdir() if p.name.startswith(".")) == []  # no temporary file left
