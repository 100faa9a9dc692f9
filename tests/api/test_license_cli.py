"""``eauth license …`` and ``eauth agency seal-image`` as an operator runs them: the demo catalog,
issuance to a file, lifecycle, and errors as one line on stderr."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from tests.api.test_cli import Cli, _database, assert_one_line_error
from tests.conftest import require_seal_font, require_tool
from tests.helpers import citizen_id
from tests.pdf_helpers import png

DRIVING = "11100000000013338W902"
IDENTIFIER = re.compile(r"1\.2\.156\.3005\.2\.\S+")
LICENSE_ID = re.compile(r"\(id ([0-9a-f]{32})\)")


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    require_seal_font()
    workdir = tmp_path_factory.mktemp("license-cli")
    databases = _database()
    try:
        runner = Cli(workdir=workdir, data_dir=workdir / "var", database_url=next(databases))
        runner.ok("init")
        assert "license types" in runner.ok("seed-demo").stdout
        yield runner
    finally:
        databases.close()


def fields(number: str) -> list[str]:
    values = {"name": "张三", "sex": "男", "nationality": "中国", "birth_date": "1990-01-02", "citizen_id": number,
              "vehicle_class": "C1", "first_issued_on": "2012-03-04"}
    return [arg for name, value in values.items() for arg in ("--field", f"{name}={value}")]


def issue(cli: Cli, *extra: str) -> tuple[str, str]:
    result = cli.ok("license", "issue", "--type", DRIVING, "--agency", "demo-amr", *fields(citizen_id()), *extra)
    return IDENTIFIER.search(result.stdout).group(), LICENSE_ID.search(result.stdout).group(1)


def test_demo_catalog(cli):
    listed = cli.ok("license", "type", "list").stdout
    assert "11100000000013338W9" in listed
    spec = json.loads(cli.ok("license", "type", "show", DRIVING).stdout)
    assert spec["name_zh"] == "机动车驾驶证" and spec["holder_kind"] == "person"


def test_issue_to_a_file_that_pdfsig_reads(cli, tmp_path):
    out = tmp_path / "licence.pdf"
    identifier, _ = issue(cli, "--out", str(out))
    assert identifier.startswith(f"1.2.156.3005.2.{DRIVING}.")
    report = subprocess.run([require_tool("pdfsig"), str(out)], capture_output=True, text=True).stdout
    assert "Signature is Valid" in report and "Total document signed" in report


def test_same_request_key_twice(cli):
    number = citizen_id()
    first = cli.ok("license", "issue", "--type", DRIVING, "--agency", "demo-amr", *fields(number),
                   "--request-key", "k-1")
    again = cli.ok("license", "issue", "--type", DRIVING, "--agency", "demo-amr", *fields(number),
                   "--request-key", "k-1")
    assert "already issued" in again.stdout
    assert IDENTIFIER.search(first.stdout).group() == IDENTIFIER.search(again.stdout).group()


def test_lifecycle_and_show(cli):
    identifier, license_id = issue(cli)
    assert "suspended" in cli.ok("license", "suspend", license_id).stdout
    assert_one_line_error(cli.run("license", "suspend", license_id), "license_status_conflict")
    assert_one_line_error(cli.run("license", "revoke", license_id), "reason")
    assert "revoked" in cli.ok("license", "revoke", license_id, "--reason", "obtained by fraud").stdout
    shown = cli.ok("license", "show", identifier).stdout
    assert "revoked" in shown and "obtained by fraud" in shown
    for action in ("issue", "suspend", "revoke"):
        assert action in shown


def test_bad_input_is_one_line(cli, tmp_path):
    assert_one_line_error(cli.run("license", "issue", "--type", DRIVING, "--agency", "demo-amr",
                                  *fields("11010519491231002Y")), "invalid_license_data", "citizen_id")
    assert_one_line_error(cli.run("license", "issue", "--type", "11100000000013338W999", "--agency", "demo-amr",
                                  *fields(citizen_id())), "not_found")
    assert_one_line_error(cli.run("license", "show", "0" * 32), "not_found")
    not_png = tmp_path / "seal.png"
    not_png.write_bytes(b"GIF89a")
    assert_one_line_error(cli.run("agency", "seal-image", "demo-amr", str(not_png)), "invalid_seal_image")


def test_seal_image(cli, tmp_path):
    image = tmp_path / "seal.png"
    image.write_bytes(png(64, 64))
    assert "seal image of demo-amr set" in cli.ok("agency", "seal-image", "demo-amr", str(image)).stdout
    issue(cli)
