"""Bulk import end to end: ``eauth license import`` (the installed entry point, its own processes, on the
session platform's database), the HTTP job API, and a SIGKILL part-way followed by a re-run that
issues every row exactly once."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import time
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from api.licenses import blob_store, license_service
from ca.identifiers import validate_citizen_id
from eauth.errors import InvalidIdentifier
from licenses.catalog import demo_types
from store import import_store
from store.agencies import add_agency
from store.models import ImportJob, License, LicenseRequest, LicenseVersion
from tests.api.test_cli import _entry_point, assert_one_line_error
from tests.api.test_crl_cli import _eauth
from tests.conftest import require_seal_font, token_for
from tests.helpers import PASSPHRASE, assert_problem, credit_code
from tests.pdf_helpers import issue_seal

FIELDS = ("name", "sex", "nationality", "birth_date", "citizen_id", "vehicle_class", "first_issued_on")
SUMMARY = re.compile(r"(\d[\d,]*) rows: (\d[\d,]*) issued, (\d[\d,]*) skipped \(issued before\), (\d[\d,]*) rejected")
URL = "/api/v1/license-imports"


def citizen(n: int) -> str:
    """A valid GB 11643 number, distinct for each n < 10 million (birth date and sequence vary)."""
    body = f"110101{date(1950, 1, 1) + timedelta(days=n // 500):%Y%m%d}{n % 500 * 2:03d}"
    for check in "0123456789X":
        try:
            return validate_citizen_id(body + check)
        except InvalidIdentifier:
            continue
    raise AssertionError(body)


def driver(n: int, **changes: str) -> dict[str, str]:
    return {"name": f"驾驶员{n}", "sex": "男" if n % 2 else "女", "nationality": "中国",
            "birth_date": (date(1950, 1, 1) + timedelta(days=n // 500)).isoformat(), "citizen_id": citizen(n),
            "vehicle_class": "C1", "first_issued_on": "2012-03-04"} | changes


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def importer(platform):
    """An issuing agency with a credit code and a seal; ``new_type()`` defines a driving-licence type of
    its own with a fresh code, so each test counts exactly its own licenses."""
    require_seal_font()
    code = f"imp-{os.urandom(3).hex()}"
    with platform.db.session() as session:
        agency = add_agency(session, code=code, name="某市公安局交通警察支队", credit_code=credit_code())
    issue_seal(platform, agency.id, name=agency.name)
    driving = demo_types(code)[1]

    def new_type() -> str:
        license_type = replace(driving, code=credit_code() + "902")
        license_service(platform).define_type(license_type, agency_id=agency.id)
        return license_type.code

    return agency, new_type


def licenses_of(platform, type_code: str) -> int:
    with platform.db.transaction() as connection:
        return connection.scalar(select(func.count()).select_from(License).where(License.type_code == type_code))


def jobs_of(platform, type_code: str) -> list:
    with platform.db.transaction() as connection:
        ids = connection.scalars(select(ImportJob.id).where(ImportJob.type_code == type_code)
                                 .order_by(ImportJob.created_at)).all()
        return [import_store.job(connection, job_id) for job_id in ids]


def summary(stdout: str) -> tuple[int, int, int, int]:
    found = SUMMARY.search(stdout)
    assert found, stdout
    return tuple(int(n.replace(",", "")) for n in found.groups())


def run_import(platform, tmp_path, path: Path, type_code: str, agency, *more: str):
    return _eauth(platform, tmp_path, "license", "import", str(path), "--type", type_code, "--agency", agency.code,
                  *more)


# -- the command line ------------------------------------------------------------------------------


def test_cli_import_issues_every_row_and_a_rerun_skips_them(platform, importer, tmp_path):
    agency, new_type = importer
    type_code = new_type()
    path = write_csv(tmp_path / "stock.csv", [driver(n) for n in range(36)])
    first = run_import(platform, tmp_path, path, type_code, agency)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Traceback" not in first.stderr
    assert summary(first.stdout) == (36, 36, 0, 0)
    assert "licenses/s" in first.stdout
    assert licenses_of(platform, type_code) == 36
    (job,) = jobs_of(platform, type_code)
    assert (job.status, job.rows, job.issued, job.skipped, job.rejected) == ("done", 36, 36, 0, 0)
    assert job.finished_at is not None and job.source.endswith("stock.csv")

    again = run_import(platform, tmp_path, path, type_code, agency, "--workers", "1")
    assert again.returncode == 0, again.stdout + again.stderr
    assert summary(again.stdout) == (36, 0, 36, 0)
    assert licenses_of(platform, type_code) == 36
    assert [j.status for j in jobs_of(platform, type_code)] == ["done", "done"]


def test_cli_rejected_rows_reported_with_row_numbers(platform, importer, tmp_path):
    agency, new_type = importer
    type_code = new_type()
    bad_check = driver(2)
    bad_check["citizen_id"] = bad_check["citizen_id"][:-1] + ("0" if bad_check["citizen_id"][-1] != "0" else "1")
    path = write_csv(tmp_path / "stock.csv", [driver(1), bad_check, driver(3, sex=""), driver(4), driver(5)])
    # Row 4 with broken UTF-8 bytes: the bytes of 驾驶员 cut short.
    lines = path.read_bytes().split(b"\n")
    lines[4] = lines[4].replace("驾驶员4".encode(), "驾驶员".encode()[:-1] + b"4")
    path.write_bytes(b"\n".join(lines))
    report = tmp_path / "rejected.csv"
    result = run_import(platform, tmp_path, path, type_code, agency, "--report", str(report))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert summary(result.stdout) == (5, 2, 0, 3)
    assert licenses_of(platform, type_code) == 2
    with open(report, encoding="utf-8", newline="") as stream:
        rejected = list(csv.reader(stream))
    assert rejected[0] == ["row", "reason"]
    assert [row for row, _ in rejected[1:]] == ["2", "3", "4"]
    reasons = {int(row): reason for row, reason in rejected[1:]}
    assert "citizen_id" in reasons[2] and "check" in reasons[2]
    assert "sex" in reasons[3] and "required" in reasons[3]
    assert "not UTF-8" in reasons[4] and "line 5" in reasons[4]
    for row in ("2", "3", "4"):  # also printed
        assert re.search(rf"│ {row} +│", result.stdout), result.stdout
    (job,) = jobs_of(platform, type_code)
    assert (job.status, job.issued, job.rejected) == ("done", 2, 3)
    with platform.db.transaction() as connection:
        assert [row for row, _ in import_store.rejections(connection, job.id)] == [2, 3, 4]


def test_cli_wrong_columns_refused_before_any_row(platform, importer, tmp_path):
    agency, new_type = importer
    type_code = new_type()
    path = tmp_path / "stock.csv"
    path.write_text("name,sex,licence_no\n张三,男,123\n", encoding="utf-8")
    line = assert_one_line_error(run_import(platform, tmp_path, path, type_code, agency), "invalid_import_file",
                                 "'licence_no'", "citizen_id")
    assert "no column" in line
    assert licenses_of(platform, type_code) == 0
    assert jobs_of(platform, type_code) == []


# -- HTTP ------------------------------------------------------------------------------------------


def wait_for(api, headers, location: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        response = api.get(location, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        if body["status"] != "running":
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.2)


def test_http_import_job(api, platform, importer):
    agency, new_type = importer
    type_code = new_type()
    headers = {"Authorization": f"Bearer {token_for(api, platform, agency.code, {'licenses:issue'})}"}
    lines = [json.dumps(driver(n), ensure_ascii=False) for n in range(10)]
    lines[3] = '{"name": "驾驶员3", '  # cut short
    lines[6] = json.dumps(driver(6, vehicle_class="Z9"), ensure_ascii=False)
    data = ("\n".join(lines) + "\n").encode()
    response = api.post(URL, params={"type_code": type_code}, headers=headers,
                        files={"file": ("stock.jsonl", data, "application/x-ndjson")})
    assert response.status_code == 202, response.text
    location = response.headers["Location"]
    assert location == f"{URL}/{response.json()['id']}"
    assert response.json()["status"] == "running" and response.json()["source"] == "stock.jsonl"
    body = wait_for(api, headers, location)
    assert body["status"] == "done", body
    assert (body["rows"], body["issued"], body["skipped"], body["rejected"]) == (10, 8, 0, 2)
    assert [r["row"] for r in body["rejected_rows"]] == [4, 7]
    assert "not JSON" in body["rejected_rows"][0]["reason"]
    assert "vehicle_class" in body["rejected_rows"][1]["reason"]
    assert licenses_of(platform, type_code) == 8
    uploads = Path(platform.settings.data_dir) / "imports"
    deadline = time.monotonic() + 10
    while list(uploads.glob("upload-*")):  # the upload is removed once the job is over
        assert time.monotonic() < deadline
        time.sleep(0.1)

    # The same rows again: a new job, everything skipped or rejected again.
    again = api.post(URL, params={"type_code": type_code}, headers=headers,
                     files={"file": ("stock.jsonl", data, "application/x-ndjson")})
    assert again.status_code == 202, again.text
    body = wait_for(api, headers, again.headers["Location"])
    assert (body["status"], body["issued"], body["skipped"], body["rejected"]) == ("done", 0, 8, 2)
    assert licenses_of(platform, type_code) == 8


def test_http_import_refusals(api, platform, importer, agency):
    owner, new_type = importer
    type_code = new_type()
    headers = {"Authorization": f"Bearer {token_for(api, platform, owner.code, {'licenses:issue'})}"}
    good = ",".join(FIELDS) + "\n" + ",".join(driver(1).values()) + "\n"

    def post(data: str | bytes, *, name: str = "stock.csv", code: str = type_code, with_headers=headers, **params):
        return api.post(URL, params={"type_code": code, **params}, headers=with_headers,
                        files={"file": (name, data, "text/csv")})

    body = assert_problem(post("name,sex,licence_no\n张三,男,1\n"), 400, "invalid_import_file")
    assert "licence_no" in body["detail"] and body["unknown_columns"] == ["licence_no"]
    assert_problem(post(good, name="stock.txt"), 400, "invalid_import_file")
    assert_problem(post(b"\xff\xfe\n"), 400, "invalid_import_file")
    assert_problem(post(good, code=credit_code() + "902"), 404, "not_found")
    other = {"Authorization": f"Bearer {token_for(api, platform, agency.code, {'licenses:issue'})}"}
    assert_problem(post(good, with_headers=other), 403, "forbidden")  # not its type
    reader = {"Authorization": f"Bearer {token_for(api, platform, owner.code, {'licenses:read'})}"}
    assert_problem(post(good, with_headers=reader), 403, "insufficient_scope")
    assert_problem(api.get(f"{URL}/{'0' * 32}", headers=headers), 404, "not_found")
    assert licenses_of(platform, type_code) == 0 and jobs_of(platform, type_code) == []

    # A job is seen by its own agency only; the format may be given when the name does not tell it.
    started = post(good, name="export.txt", format="csv")
    assert started.status_code == 202, started.text
    assert_problem(api.get(started.headers["Location"], headers=other), 404, "not_found")
    assert wait_for(api, headers, started.headers["Location"])["issued"] == 1


def test_http_upload_larger_than_the_limit(platform):
    from fastapi.testclient import TestClient

    from api.http import create_app

    small = platform.settings.model_copy(update={"max_document_bytes": 4096})
    client = TestClient(create_app(small, platform=platform))  # no lifespan: refused before any route
    data = (",".join(FIELDS) + "\n" + ",".join(driver(1).values()) + "\n") * 100
    response = client.post(URL, params={"type_code": "x"}, files={"file": ("stock.csv", data, "text/csv")})
    assert_problem(response, 413, "request_too_large")


# -- a crash part-way ------------------------------------------------------------------------------


def test_sigkill_part_way_then_rerun_issues_every_row_exactly_once(platform, importer, tmp_path):
    agency, new_type = importer
    type_code = new_type()
    rows = 150
    path = write_csv(tmp_path / "stock.csv", [driver(10_000 + n) for n in range(rows)])
    settings = platform.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("EAUTH_")} | {
        "EAUTH_DATA_DIR": str(settings.data_dir), "EAUTH_DATABASE_URL": settings.resolved_database_url,
        "EAUTH_KEY_PASSPHRASE": PASSPHRASE, "COLUMNS": "200",
    }
    with open(tmp_path / "killed.out", "wb") as output:
        process = subprocess.Popen(
            [*_entry_point(), "license", "import", str(path), "--type", type_code, "--agency", agency.code,
             "--workers", "2"],
            cwd=tmp_path, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while licenses_of(platform, type_code) < 20:
                assert process.poll() is None, (tmp_path / "killed.out").read_text()
                assert time.monotonic() < deadline, "no licenses issued within 60 s"
                time.sleep(0.05)
        finally:
            os.killpg(process.pid, signal.SIGKILL)  # the CLI and its worker processes
            process.wait()
    assert process.returncode == -signal.SIGKILL
    time.sleep(0.5)
    killed_at = licenses_of(platform, type_code)
    assert 20 <= killed_at < rows
    (job,) = jobs_of(platform, type_code)
    assert job.status == "running" and job.finished_at is None  # as the kill left it

    result = run_import(platform, tmp_path, path, type_code, agency, "--workers", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert summary(result.stdout) == (rows, rows - killed_at, killed_at, 0)
    first, second = jobs_of(platform, type_code)
    assert first.id == job.id and first.status == "running"
    assert (second.status, second.issued, second.skipped) == ("done", rows - killed_at, killed_at)

    blobs = blob_store(platform)
    with platform.db.transaction() as connection:
        licenses = connection.execute(select(License.id, License.holder_index, License.identifier)
                                      .where(License.type_code == type_code)).all()
        ids = [license.id for license in licenses]
        versions = connection.execute(select(LicenseVersion.license_id, LicenseVersion.pdf_sha256)
                                      .where(LicenseVersion.license_id.in_(ids))).all()
        keys = connection.scalars(select(LicenseRequest.request_key).where(LicenseRequest.license_id.in_(ids))).all()
    assert len(licenses) == rows
    assert len({license.holder_index for license in licenses}) == rows  # one license per row's holder
    assert len({license.identifier for license in licenses}) == rows
    assert len(versions) == rows and {v.license_id for v in versions} == set(ids)
    assert len(set(keys)) == rows and all(key.startswith("import:") for key in keys)
    assert all(blobs.exists(version.pdf_sha256) for version in versions)  # no record without its PDF
    assert len({version.pdf_sha256 for version in versions}) == rows
