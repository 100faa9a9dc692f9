"""The licenses API over HTTP: catalog, issuance (in the signing pool), lifecycle, wallet, seal image,
and every bad input as problem+json with nothing half-issued."""

from __future__ import annotations

import hashlib
import io
import json

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader

from tests.conftest import require_seal_font, token_for
from tests.helpers import assert_problem, citizen_id, credit_code
from tests.licenses.test_issuance import counts, driver, enterprise
from tests.pdf_helpers import png


@pytest.fixture(scope="module", autouse=True)
def font():
    require_seal_font()


def issue(api, licensing, fields=None, **extra):
    body = {"type_code": licensing.driving.code, "fields": fields or driver()} | extra
    return api.post("/api/v1/licenses", json=body, headers=licensing.headers)


def test_issue_fetch_download(api, licensing):
    response = issue(api, licensing, request_key="http-1")
    assert response.status_code == 201, response.text
    issued = response.json()
    assert issued["created"] and issued["status"] == "valid" and issued["version"] == 1
    assert response.headers["location"] == f"/api/v1/licenses/{issued['id']}"
    assert issued["current"]["qr_url"].startswith("http://127.0.0.1:8000/v/")
    detail = api.get(f"/api/v1/licenses/{issued['id']}", headers=licensing.headers).json()
    assert detail["fields"]["vehicle_class"] == "C1" and [e["action"] for e in detail["events"]] == ["issue"]
    pdf = api.get(issued["pdf_url"], headers=licensing.headers)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert hashlib.sha256(pdf.content).hexdigest() == issued["current"]["pdf_sha256"]
    assert PdfFileReader(io.BytesIO(pdf.content)).embedded_signatures[0].field_name.startswith("Seal-")


def test_same_request_key_returns_the_same_license(api, licensing):
    fields = driver()
    first = issue(api, licensing, fields, request_key="http-2")
    again = issue(api, licensing, fields, request_key="http-2")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"] and again.json()["created"] is False
    assert_problem(issue(api, licensing, driver(), request_key="http-2"), 409, "request_key_reused")


@pytest.mark.parametrize("fields, code, field", [
    (driver(citizen_id="11010519491231002Y"), "invalid_license_data", "citizen_id"),
    ({"name": "张三"}, "invalid_license_data", "sex"),
    (driver(first_issued_on="yesterday"), "invalid_license_data", "first_issued_on"),
])
def test_bad_fields_are_problems_naming_the_field(api, licensing, platform, fields, code, field):
    before = counts(platform)
    body = assert_problem(issue(api, licensing, fields), 400, code)
    assert field in str(body.get("field")) + str(body.get("errors"))
    assert counts(platform) == before


def test_unknown_type_and_another_agencys_type(api, licensing, platform, agency):
    assert_problem(api.post("/api/v1/licenses", json={"type_code": credit_code() + "001", "fields": driver()},
                            headers=licensing.headers), 404, "not_found")
    other = {"Authorization": f"Bearer {token_for(api, platform, agency.code, {'licenses:issue'})}"}
    assert_problem(api.post("/api/v1/licenses", json={"type_code": licensing.driving.code, "fields": driver()},
                            headers=other), 403, "forbidden")


def test_scopes_are_required(api, licensing, platform):
    read_only = {"Authorization": f"Bearer {token_for(api, platform, licensing.agency.code, {'licenses:read'})}"}
    assert_problem(api.post("/api/v1/licenses", json={"type_code": licensing.driving.code, "fields": driver()},
                            headers=read_only), 403, "insufficient_scope")
    assert_problem(api.post("/api/v1/licenses", json={}), 401, "invalid_token")


def test_lifecycle_over_http(api, licensing):
    license_id = issue(api, licensing).json()["id"]
    post = lambda action, **body: api.post(f"/api/v1/licenses/{license_id}/{action}", json=body or None,  # noqa: E731
                                           headers=licensing.headers)
    assert post("suspend").json()["status"] == "suspended"
    assert_problem(post("suspend"), 409, "license_status_conflict")
    assert post("reinstate").json()["status"] == "valid"
    assert_problem(post("revoke"), 400, "invalid_input")  # a reason is required
    assert post("revoke", reason="obtained by fraud").json()["status"] == "revoked"
    assert_problem(post("revoke", reason="twice"), 409, "license_status_conflict")
    events = api.get(f"/api/v1/licenses/{license_id}", headers=licensing.headers).json()["events"]
    assert [e["action"] for e in events] == ["issue", "suspend", "reinstate", "revoke"]


def test_amend_over_http(api, licensing):
    number = citizen_id()
    license_id = issue(api, licensing, driver(number)).json()["id"]
    amended = api.post(f"/api/v1/licenses/{license_id}/amend", json={"fields": driver(number, vehicle_class="A1")},
                       headers=licensing.headers)
    assert amended.status_code == 200, amended.text
    assert amended.json()["version"] == 2
    detail = api.get(f"/api/v1/licenses/{license_id}", headers=licensing.headers).json()
    assert [v["status"] for v in detail["versions"]] == ["superseded", "current"]
    old = api.get(f"/api/v1/licenses/{license_id}/pdf?version=1", headers=licensing.headers)
    assert hashlib.sha256(old.content).hexdigest() == detail["versions"][0]["pdf_sha256"]


def test_wallet(api, licensing):
    code = credit_code()
    created = api.post("/api/v1/licenses", json={"type_code": licensing.business.code, "fields": enterprise(code)},
                       headers=licensing.headers).json()
    found = api.post("/api/v1/wallet", json={"holder_kind": "enterprise", "id_number": code}, headers=licensing.headers)
    assert [item["id"] for item in found.json()] == [created["id"]]
    assert_problem(api.post("/api/v1/wallet", json={"holder_kind": "person", "id_number": "11010519491231002Y"},
                            headers=licensing.headers), 400, "invalid_identifier")


def test_catalog_over_http(api, licensing):
    listed = api.get("/api/v1/license-types?mine=true", headers=licensing.headers).json()
    assert {t["code"] for t in listed} == {licensing.business.code, licensing.driving.code}
    spec = licensing.driving.to_json() | {"code": credit_code() + "123", "name_zh": "导游证"}
    assert api.post("/api/v1/license-types", json=spec, headers=licensing.headers).status_code == 201
    assert_problem(api.post("/api/v1/license-types", json=spec, headers=licensing.headers), 409, "already_exists")
    assert_problem(api.post("/api/v1/license-types", json=spec | {"code": credit_code() + "124", "agency_code": "x"},
                            headers=licensing.headers), 400, "invalid_input")
    assert_problem(api.post("/api/v1/license-types", json={"code": "nope"}, headers=licensing.headers),
                   400, "invalid_license_type")


def test_seal_image_is_stored_and_checked(api, licensing):
    image = png(64, 64)
    response = api.put("/api/v1/agency/seal-image", files={"image": ("seal.png", image, "image/png")},
                       headers=licensing.headers)
    assert response.status_code == 204, response.text
    assert response.headers["etag"] == f'"{hashlib.sha256(image).hexdigest()}"'
    assert issue(api, licensing).status_code == 201  # rendered with the stored image
    assert_problem(api.put("/api/v1/agency/seal-image", files={"image": ("seal.png", b"GIF89a", "image/png")},
                           headers=licensing.headers), 400, "invalid_seal_image")


def test_qr_keys_are_published(api):
    keys = api.get("/.well-known/qr-keys.json").json()["keys"]
    assert len(keys) == 1 and keys[0]["alg"] == "ES256" and keys[0]["crv"] == "P-256" and len(keys[0]["kid"]) == 8


def test_a_lone_surrogate_in_json_is_a_problem_not_a_500(api, licensing):
    body = json.dumps({"type_code": licensing.driving.code, "fields": driver()}).replace(
        json.dumps("张三"), '"\\ud800"')
    response = api.post("/api/v1/licenses", content=body,
                        headers=licensing.headers | {"Content-Type": "application/json"})
    assert assert_problem(response, 400, "invalid_license_data")["field"] == "name"
