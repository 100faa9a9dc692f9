"""POST /api/v1/verify/pdf: a relying party (scope verify) uploads a PDF and gets the report; broken
and hostile uploads are a report or a 4xx problem, never a 5xx; the body limit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import require_seal_font, token_for
from tests.helpers import assert_problem
from tests.licenses.test_issuance import driver
from tests.pdf_helpers import one_page_pdf

URL = "/api/v1/verify/pdf"
CORPUS = Path("/work/shared/corpus/pdf-attacks")


@pytest.fixture(scope="module")
def verifier(api, platform, licensing):
    return {"Authorization": f"Bearer {token_for(api, platform, licensing.agency.code, {'verify'})}"}


@pytest.fixture(scope="module")
def license_pdf(api, licensing) -> tuple[dict, bytes]:
    require_seal_font()
    response = api.post("/api/v1/licenses", json={"type_code": licensing.driving.code, "fields": driver()},
                        headers=licensing.headers)
    assert response.status_code == 201, response.text
    issued = response.json()
    pdf = api.get(issued["pdf_url"], headers=licensing.headers)
    assert pdf.status_code == 200
    return issued, pdf.content


def upload(api, headers, data: bytes, name: str = "license.pdf"):
    return api.post(URL, files={"file": (name, data, "application/pdf")}, headers=headers)


def test_issued_license(api, verifier, license_pdf, platform):
    issued, pdf = license_pdf
    response = upload(api, verifier, pdf)
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["indication"] == "TOTAL_PASSED" and report["sub_indication"] is None
    (signature,) = report["signatures"]
    assert signature["level"] == "B-LT" and signature["coverage"] == "ENTIRE_FILE"
    assert signature["docmdp"] == {"certification": True, "permission": "NO_CHANGES", "respected": True}
    assert signature["trust_anchor"] == platform.settings.platform_name
    assert signature["signing_time"]["proven"] and signature["revocation"]["now"]["status"] == "good"
    assert report["registry"]["byte_identical"] is True
    assert report["registry"]["license"]["identifier"] == issued["identifier"]
    assert report["registry"]["license"]["status"] == "valid"


def test_revoked_license_over_http(api, verifier, licensing, license_pdf):
    response = api.post("/api/v1/licenses", json={"type_code": licensing.driving.code, "fields": driver()},
                        headers=licensing.headers)
    issued = response.json()
    pdf = api.get(issued["pdf_url"], headers=licensing.headers).content
    api.post(f"/api/v1/licenses/{issued['id']}/revoke", json={"reason": "lost"}, headers=licensing.headers)
    report = upload(api, verifier, pdf).json()
    assert report["indication"] == "TOTAL_PASSED"
    assert report["registry"]["license"]["status"] == "revoked"


def test_scope_required(api, platform, licensing, license_pdf):
    assert_problem(upload(api, {}, license_pdf[1]), 401, "invalid_token")
    other = {"Authorization": f"Bearer {token_for(api, platform, licensing.agency.code, {'licenses:read'})}"}
    assert_problem(upload(api, other, license_pdf[1]), 403, "insufficient_scope")


@pytest.mark.parametrize("data, code", [
    (b"hello, not a pdf", "not_a_pdf"),
    (os.urandom(5000), "not_a_pdf"),
    (one_page_pdf(encrypt="secret"), "encrypted_pdf"),
])
def test_not_verifiable_is_a_problem(api, verifier, data, code):
    assert_problem(upload(api, verifier, data), 400, code)


def test_empty_upload(api, verifier):
    assert_problem(upload(api, verifier, b""), 400, "invalid_input")


def test_missing_file(api, verifier):
    response = api.post(URL, headers=verifier)
    assert 400 <= response.status_code < 500


@pytest.mark.parametrize("mangle", ["truncated", "garbage", "header-then-random", "flipped"])
def test_broken_pdfs_get_a_report(api, verifier, license_pdf, mangle):
    pdf = license_pdf[1]
    data = {"truncated": pdf[: len(pdf) // 3], "garbage": pdf + os.urandom(1000),
            "header-then-random": b"%PDF-1.7\n" + os.urandom(30_000),
            "flipped": pdf[:200] + bytes([pdf[200] ^ 0xFF]) + pdf[201:]}[mangle]
    response = upload(api, verifier, data)
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["indication"] != "TOTAL_PASSED" and report["detail"]
    assert report["registry"]["found"] is False


def test_attack_file(api, verifier):
    path = CORPUS / "dss" / "pdf-signed-added-page.pdf"
    if not path.is_file():
        pytest.skip("attack corpus not present")
    report = upload(api, verifier, path.read_bytes()).json()
    assert report["indication"] == "TOTAL_FAILED" and report["sub_indication"] == "FORMAT_FAILURE"
    assert "modified after signing" in report["detail"]


def test_too_large_upload(api, verifier):
    big = b"%PDF-1.7\n" + bytes(50 * 1024 * 1024 + 10)
    assert_problem(upload(api, verifier, big), 413, "request_too_large")


def test_in_openapi(api):
    assert URL in api.get("/openapi.json").json()["paths"]
