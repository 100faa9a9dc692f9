"""The trust bundle over HTTP and from `eauth trust export`, and offline verification with it:
`eauth verify FILE.pdf --trust BUNDLE` and `eauth verify --qr TOKEN --trust BUNDLE`, run as the
installed entry point with no EAUTH_* variable at all (no data dir, no database, no platform)."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from api.platform import Platform, initialize_platform
from api.trust import trust_bundle
from eauth.settings import Settings
from tests.api.test_cli import Cli, assert_one_line_error
from tests.conftest import require_seal_font
from tests.helpers import PASSPHRASE
from tests.licenses.test_issuance import driver
from tests.pdf_helpers import one_page_pdf
from verify.bundle import TrustBundle

_NO_PLATFORM = {"EAUTH_DATA_DIR": None, "EAUTH_KEY_PASSPHRASE": None, "EAUTH_DATABASE_URL": None}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("offline")


@pytest.fixture(scope="module")
def exporter(files, settings) -> Cli:
    """The CLI on the test session's platform (to export its bundle)."""
    return Cli(workdir=files, data_dir=Path(settings.data_dir), database_url=settings.database_url)


@pytest.fixture(scope="module")
def offline(files) -> Cli:
    """The CLI with no platform: every EAUTH_* variable removed, run in an empty directory."""
    empty = files / "nowhere"
    empty.mkdir(exist_ok=True)
    cli = Cli(workdir=empty, data_dir=empty / "var", database_url=None)
    original = cli.run

    def run(*args, env=None):
        return original(*args, env=_NO_PLATFORM | (env or {}))

    cli.run = run
    return cli


@pytest.fixture(scope="module")
def bundle_file(exporter, files) -> Path:
    path = files / "bundle.json"
    result = exporter.ok("trust", "export", "--out", str(path))
    assert "written to" in result.stderr
    return path


@pytest.fixture(scope="module")
def foreign_bundle(files) -> Path:
    """The bundle of another platform: same default name, its own keys (a second initialize_platform)."""
    settings = Settings(_env_file=None, data_dir=files / "foreign", key_passphrase=PASSPHRASE)
    initialize_platform(settings)
    other = Platform.open(settings)
    try:
        path = files / "foreign.json"
        path.write_text(trust_bundle(other).to_json())
    finally:
        other.close()
    return path


@pytest.fixture(scope="module")
def license(api, licensing, files) -> tuple[dict, Path, str]:
    require_seal_font()
    response = api.post("/api/v1/licenses", json={"type_code": licensing.driving.code, "fields": driver()},
                        headers=licensing.headers)
    assert response.status_code == 201, response.text
    issued = response.json()
    pdf = files / "license.pdf"
    pdf.write_bytes(api.get(issued["pdf_url"], headers=licensing.headers).content)
    return issued, pdf, issued["current"]["qr_url"].rsplit("/", 1)[1]


def test_http_bundle_is_public_and_matches_the_export(api, bundle_file, platform):
    response = api.get("/api/v1/trust-bundle")
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    served = TrustBundle.from_json(response.content)
    exported = TrustBundle.from_json(bundle_file.read_bytes())
    assert served.platform_id == exported.platform_id and served.certificates == exported.certificates
    assert served.qr_keys().keys() == exported.qr_keys().keys()
    assert served.platform_name == platform.settings.platform_name
    assert "/api/v1/trust-bundle" in api.get("/openapi.json").json()["paths"]


def test_export_to_stdout(exporter, bundle_file):
    result = exporter.ok("trust", "export")
    assert TrustBundle.from_json(result.stdout).platform_id == TrustBundle.from_json(bundle_file.read_text()).platform_id


def test_pdf_offline_passes(offline, bundle_file, license, platform):
    _, pdf, _ = license
    result = offline.run("verify", str(pdf), "--trust", str(bundle_file), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["indication"] == "TOTAL_PASSED" and report["registry"] is None
    (signature,) = report["signatures"]
    assert signature["trust_anchor"] == platform.settings.platform_name and signature["level"] == "B-LT"
    assert signature["signing_time"]["proven"] and signature["revocation"]["at_signing_time"]["status"] == "good"
    assert signature["revocation"]["now"] == {"status": "unknown", "reason": None, "since": None,
                                              "source": "offline: the current status was not checked"}


def test_pdf_report_has_the_api_shape(in_process, bundle_file, license, api, licensing, platform):
    from tests.conftest import token_for

    _, pdf, _ = license
    headers = {"Authorization": f"Bearer {token_for(api, platform, licensing.agency.code, {'verify'})}"}
    online = api.post("/api/v1/verify/pdf", files={"file": ("l.pdf", pdf.read_bytes(), "application/pdf")},
                      headers=headers).json()
    report = json.loads(in_process("verify", str(pdf), "--trust", str(bundle_file), "--json").stdout)
    assert report.keys() == online.keys()
    assert report["signatures"][0].keys() == online["signatures"][0].keys()


def test_qr_offline_genuine(offline, bundle_file, license):
    issued, _, token = license
    result = offline.run("verify", "--qr", token, "--trust", str(bundle_file), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "genuine" and report["signature_valid"] and report["error_code"] is None
    assert report["detail"] == "genuine (offline: registry status not checked)"
    assert report["license"]["identifier"] == issued["identifier"]


def test_qr_offline_forged(offline, bundle_file, license):
    header, payload, signature = license[2].split(".")
    altered = bytearray(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    altered[-1] ^= 1
    forged = ".".join((header, base64.urlsafe_b64encode(bytes(altered)).rstrip(b"=").decode(), signature))
    result = offline.run("verify", "--qr", forged, "--trust", str(bundle_file), "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["status"] == "invalid" and report["error_code"] == "qr_token_bad_signature"


def test_another_platforms_bundle(offline, foreign_bundle, license):
    _, pdf, token = license
    result = offline.run("verify", str(pdf), "--trust", str(foreign_bundle), "--json")
    assert result.returncode == 2, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["indication"] == "INDETERMINATE"
    assert report["signatures"][0]["trust_anchor"] is None
    qr = offline.run("verify", "--qr", token, "--trust", str(foreign_bundle), "--json")
    assert qr.returncode == 1 and json.loads(qr.stdout)["error_code"] == "qr_token_unknown_key"


def test_unsigned_pdf_fails(in_process, bundle_file, files):
    path = files / "plain.pdf"
    path.write_bytes(one_page_pdf())
    result = in_process("verify", str(path), "--trust", str(bundle_file))
    assert result.exit_code in (1, 2) and "TOTAL_PASSED" not in result.stdout


@pytest.fixture
def in_process(files, monkeypatch):
    """`eauth …` in this process (typer's runner) with no EAUTH_* variable, in an empty directory: for
    the cases a subprocess each would make slow."""
    from typer.testing import CliRunner

    from api.cli import app

    for name in [n for n in os.environ if n.startswith("EAUTH_")]:
        monkeypatch.delenv(name)
    (files / "nowhere").mkdir(exist_ok=True)
    monkeypatch.chdir(files / "nowhere")
    return lambda *args: CliRunner().invoke(app, list(args))


def test_human_summaries(in_process, bundle_file, license):
    issued, pdf, token = license
    result = in_process("verify", str(pdf), "--trust", str(bundle_file))
    assert result.exit_code == 0, result.output
    assert "TOTAL_PASSED" in result.stdout and "B-LT" in result.stdout and "offline" in result.stdout
    result = in_process("verify", "--qr", issued["current"]["qr_url"], "--trust", str(bundle_file))  # the URL works
    assert result.exit_code == 0 and "GENUINE" in result.stdout and "registry status not checked" in result.stdout
    result = in_process("verify", "--qr", "garbage", "--trust", str(bundle_file))
    assert result.exit_code == 1 and "qr_token_malformed" in result.stdout


@pytest.mark.parametrize("case", ["no-trust", "both", "neither", "missing-bundle", "bad-bundle", "not-a-pdf",
                                  "encrypted", "missing-pdf"])
def test_usage_errors(in_process, bundle_file, files, license, case):
    bad = files / "bad.json"
    bad.write_text('{"format": "eauth-trust-bundle"}')
    text = files / "text.pdf"
    text.write_text("hello")
    encrypted = files / "encrypted.pdf"
    encrypted.write_bytes(one_page_pdf(encrypt="secret"))
    trust = ["--trust", str(bundle_file)]
    args, needle = {
        "no-trust": ([str(license[1])], "--trust"),
        "both": ([str(license[1]), "--qr", license[2], *trust], "either"),
        "neither": (trust, "either"),
        "missing-bundle": ([str(license[1]), "--trust", str(files / "nope.json")], "nope.json"),
        "bad-bundle": ([str(license[1]), "--trust", str(bad)], "invalid_trust_bundle"),
        "not-a-pdf": ([str(text), *trust], "not_a_pdf"),
        "encrypted": ([str(encrypted), *trust], "encrypted_pdf"),
        "missing-pdf": ([str(files / "nope.pdf"), *trust], "nope.pdf"),
    }[case]
    result = in_process("verify", *args)
    assert result.exit_code == 2 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert needle in line and line.startswith("error (")


def test_usage_error_from_the_entry_point(offline, license):
    assert_one_line_error(offline.run("verify", str(license[1])), "--trust")


def test_no_platform_files_written(offline):
    assert not (offline.workdir / "var").exists()
