"""The holder's wallet and presentations (亮证) over HTTP: only one's own licenses, only the chosen
fields, short-lived, and the license's current status."""

from __future__ import annotations

import re
import time

import pytest

import api.routes.presentations as presentations
from tests.api.holders import holder_login
from tests.conftest import require_seal_font, token_for
from tests.helpers import assert_problem, citizen_id
from tests.licenses.test_issuance import driver


@pytest.fixture(scope="module", autouse=True)
def font():
    require_seal_font()


@pytest.fixture(scope="module")
def verifier(api, platform, agency):
    return {"Authorization": f"Bearer {token_for(api, platform, agency.code, {'verify'})}"}


def issue(api, licensing, number: str) -> dict:
    response = api.post("/api/v1/licenses", json={"type_code": licensing.driving.code, "fields": driver(number)},
                        headers=licensing.headers)
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture(scope="module")
def wallet(api, platform, licensing):
    """A logged-in holder with a license, and another person's license."""
    _, holder = holder_login(api, platform, id_number=citizen_id())
    own = issue(api, licensing, holder.id_number)
    others = issue(api, licensing, citizen_id())
    return holder, own, others


def present(api, holder, identifier: str, fields: list[str], **extra):
    return api.post("/api/v1/me/presentations", json={"license": identifier, "fields": fields} | extra,
                    headers=holder.headers)


def test_holder_sees_only_own_licenses(api, wallet):
    holder, own, others = wallet
    listed = api.get("/api/v1/me/licenses", headers=holder.headers).json()
    assert [item["identifier"] for item in listed] == [own["identifier"]]
    detail = api.get(f"/api/v1/me/licenses/{own['identifier']}", headers=holder.headers).json()
    assert detail["fields"]["citizen_id"] == holder.id_number and detail["status"] == "valid"
    pdf = api.get(f"/api/v1/me/licenses/{own['identifier']}/pdf", headers=holder.headers)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert pdf.headers["etag"] == f'"{own["current"]["pdf_sha256"]}"'
    for path in (f"/api/v1/me/licenses/{others['identifier']}", f"/api/v1/me/licenses/{others['identifier']}/pdf"):
        assert_problem(api.get(path, headers=holder.headers), 404, "not_found")
    assert_problem(present(api, holder, others["identifier"], ["name"]), 404, "not_found")


def test_presentation_shows_only_the_chosen_fields(api, platform, wallet, verifier):
    holder, own, _ = wallet
    response = present(api, holder, own["identifier"], ["name", "vehicle_class"], ttl_minutes=3)
    assert response.status_code == 201, response.text
    made = response.json()
    assert made["url"] == f"{platform.settings.public_base_url}/p/{made['token']}"
    assert made["qr_svg"].lstrip().startswith("<?xml") and "<svg" in made["qr_svg"]
    report = api.get(f"/api/v1/verify/presentation/{made['token']}", headers=verifier).json()
    assert report["valid"] and report["status"] == "valid"
    assert report["fields"] == {"name": "张三", "vehicle_class": "C1"} and report["license"] == own["identifier"]
    page = api.get(f"/p/{made['token']}")
    assert page.status_code == 200 and 'data-status="valid"' in page.text and "C1" in page.text
    assert holder.id_number not in page.text and "1990-01-02" not in page.text and "<script" not in page.text
    assert holder.id_number not in made["token"]
    assert_problem(api.get(f"/api/v1/verify/presentation/{made['token']}"), 401, "invalid_token")


def test_expired_and_forged_presentations_fail(api, wallet, verifier, monkeypatch):
    holder, own, _ = wallet
    token = present(api, holder, own["identifier"], ["vehicle_class"], ttl_minutes=1).json()["token"]
    head, payload, signature = token.split(".")
    forged = f"{head}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    bad = api.get(f"/api/v1/verify/presentation/{forged}", headers=verifier).json()
    assert not bad["valid"] and bad["status"] == "invalid" and bad["fields"] is None
    later = time.time() + 61
    monkeypatch.setattr(presentations, "now", lambda: later)
    report = api.get(f"/api/v1/verify/presentation/{token}", headers=verifier).json()
    assert report["status"] == "expired" and report["error_code"] == "presentation_expired"
    assert report["fields"] is None and "expired" in report["detail"]
    page = api.get(f"/p/{token}")
    assert 'data-status="expired"' in page.text and "C1" not in page.text


def test_a_revoked_license_shows_revoked(api, platform, licensing, verifier):
    _, holder = holder_login(api, platform, id_number=citizen_id())
    license = issue(api, licensing, holder.id_number)
    token = present(api, holder, license["identifier"], ["name"]).json()["token"]
    revoked = api.post(f"/api/v1/licenses/{license['id']}/revoke", json={"reason": "吊销"}, headers=licensing.headers)
    assert revoked.status_code == 200, revoked.text
    report = api.get(f"/api/v1/verify/presentation/{token}", headers=verifier).json()
    assert report["status"] == "revoked" and not report["valid"] and report["fields"] == {"name": "张三"}
    assert 'data-status="revoked"' in api.get(f"/p/{token}").text


def test_bad_presentation_requests(api, wallet):
    holder, own, _ = wallet
    problem = assert_problem(present(api, holder, own["identifier"], ["no_such_field"]), 400, "invalid_presentation")
    assert "no_such_field" in problem["detail"]
    assert_problem(present(api, holder, own["identifier"], ["name"], ttl_minutes=11), 422, "invalid_request")
    assert_problem(present(api, holder, own["identifier"], []), 422, "invalid_request")
    assert_problem(api.post("/api/v1/me/presentations", json={"license": own["identifier"], "fields": ["name"]}),
                   401, "invalid_token")


def test_presentations_are_recorded(api, platform, wallet, verifier):
    from sqlalchemy import select

    from store.models import Verification

    holder, own, _ = wallet
    token = present(api, holder, own["identifier"], ["name"]).json()["token"]
    api.get(f"/api/v1/verify/presentation/{token}", headers=verifier)
    with platform.db.session() as session:
        rows = session.execute(select(Verification.subject, Verification.result)
                               .where(Verification.kind == "presentation")).all()
    assert (own["identifier"], "valid") in rows
    assert re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", token)


def test_presentations_are_audited(api, platform, wallet):
    from store.audit import entries

    holder, own, _ = wallet
    present(api, holder, own["identifier"], ["vehicle_class"])
    with platform.db.transaction() as connection:
        found = entries(connection, action="presentation.create", subject=f"license:{own['identifier']}",
                        limit=1000)
    assert found and found[-1].details["fields"] == ["vehicle_class"] and found[-1].actor.startswith("holder:P")
