"""Authorized use (授权用证) over HTTP: a holder grants agency X one license for a purpose until a time;
X fetches the data and the PDF stating the purpose, each access logged; every other caller, a withdrawn
or expired grant, a wrong purpose, someone else's license or grant: refused with a clear problem."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, update

from store.agencies import add_agency
from store.models import AuditEntry, LicenseGrant, LicenseGrantAccess
from tests.api.holders import holder_login
from tests.conftest import require_seal_font, token_for
from tests.helpers import assert_problem, citizen_id
from tests.licenses.test_issuance import driver

PURPOSE = "办理车辆年检：核验驾驶证"


@pytest.fixture(scope="module", autouse=True)
def font():
    require_seal_font()


def issue(api, licensing, number: str) -> dict:
    response = api.post("/api/v1/licenses", json={"type_code": licensing.driving.code, "fields": driver(number)},
                        headers=licensing.headers)
    assert response.status_code == 201, response.text
    return response.json()


def relying_agency(api, platform, scopes=frozenset({"licenses:granted"})):
    """A relying agency: its code and its client's headers."""
    code = f"rel-{secrets.token_hex(4)}"
    with platform.db.session() as session:
        add_agency(session, code=code, name="某区车辆管理所", credit_code=None)
    return code, {"Authorization": f"Bearer {token_for(api, platform, code, set(scopes))}"}


@pytest.fixture(scope="module")
def world(api, platform, licensing):
    """A logged-in holder with a license, another holder with theirs, agencies X and Y."""
    _, holder = holder_login(api, platform, id_number=citizen_id())
    _, other = holder_login(api, platform, id_number=citizen_id(), name="李四")
    x_code, x = relying_agency(api, platform)
    y_code, y = relying_agency(api, platform)
    return {"holder": holder, "license": issue(api, licensing, holder.id_number), "other": other,
            "others_license": issue(api, licensing, other.id_number), "x_code": x_code, "x": x, "y_code": y_code,
            "y": y}


def later(**delta) -> str:
    return (datetime.now(timezone.utc) + timedelta(**delta)).isoformat()


def grant(api, holder, license: str, agency: str, *, purpose: str = PURPOSE, valid_until: str | None = None):
    return api.post("/api/v1/me/grants", headers=holder.headers, json={
        "license": license, "agency": agency, "purpose": purpose, "valid_until": valid_until or later(days=30)})


def made(api, world, **extra) -> dict:
    response = grant(api, world["holder"], world["license"]["identifier"], world["x_code"], **extra)
    assert response.status_code == 201, response.text
    return response.json()


def fetch(api, headers, grant_id: str, what: str = "license", purpose: str | None = PURPOSE):
    params = {"purpose": purpose} if purpose is not None else {}
    return api.get(f"/api/v1/granted/{grant_id}/{what}", params=params, headers=headers)


def audit_actions(platform, grant_id: str) -> list[str]:
    with platform.db.transaction() as connection:
        return list(connection.execute(select(AuditEntry.action).where(AuditEntry.subject == grant_id)
                                       .order_by(AuditEntry.seq)).scalars())


def test_agency_fetches_data_and_pdf_and_each_access_is_logged(api, platform, world):
    holder, license = world["holder"], world["license"]
    created = made(api, world)
    assert created["state"] == "live" and created["accesses"] == 0 and created["license"] == license["identifier"]
    listed = api.get("/api/v1/granted", headers=world["x"]).json()
    assert [(g["grant_id"], g["purpose"]) for g in listed if g["grant_id"] == created["id"]] == [
        (created["id"], PURPOSE)]

    data = fetch(api, world["x"], created["id"])
    assert data.status_code == 200, data.text
    body = data.json()
    assert body["fields"]["citizen_id"] == holder.id_number and body["status"] == "valid"
    assert body["identifier"] == license["identifier"] and [v["version"] for v in body["versions"]] == [1]
    pdf = fetch(api, world["x"], created["id"], "pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert hashlib.sha256(pdf.content).hexdigest() == license["current"]["pdf_sha256"]
    issued = api.get(f"/api/v1/me/licenses/{license['identifier']}/pdf", headers=holder.headers)
    assert pdf.content == issued.content

    mine = {g["id"]: g for g in api.get("/api/v1/me/grants", headers=holder.headers).json()}
    assert mine[created["id"]]["accesses"] == 2 and mine[created["id"]]["agency"] == world["x_code"]
    log = api.get(f"/api/v1/me/grants/{created['id']}/accesses", headers=holder.headers).json()
    assert [(a["what"], a["purpose"]) for a in log] == [("license", PURPOSE), ("pdf", PURPOSE)]
    assert all(a["client_id"].startswith(world["x_code"]) for a in log)
    assert audit_actions(platform, created["id"]) == ["grant.create", "grant.access", "grant.access"]


def test_the_purpose_must_be_stated_and_be_the_granted_one(api, platform, world):
    created = made(api, world)
    assert_problem(fetch(api, world["x"], created["id"], purpose="市场营销"), 403, "grant_purpose_mismatch")
    assert_problem(fetch(api, world["x"], created["id"], "pdf", purpose=None), 422, "invalid_request")
    assert_problem(fetch(api, world["x"], created["id"], purpose="   "), 400, "invalid_input")
    assert fetch(api, world["x"], created["id"], purpose=f"  {PURPOSE} ").status_code == 200
    log = api.get(f"/api/v1/me/grants/{created['id']}/accesses", headers=world["holder"].headers).json()
    assert [a["what"] for a in log] == ["license"]  # refusals are not accesses...
    assert audit_actions(platform, created["id"]).count("grant.access_refused") == 1  # ...but are in the trail


def test_another_agency_is_refused(api, platform, world):
    created = made(api, world)
    for what in ("license", "pdf"):
        assert_problem(fetch(api, world["y"], created["id"], what), 404, "grant_not_found")
    assert created["id"] not in [g["grant_id"] for g in api.get("/api/v1/granted", headers=world["y"]).json()]
    assert_problem(fetch(api, world["y"], secrets.token_hex(16)), 404, "grant_not_found")
    with platform.db.transaction() as connection:
        assert connection.execute(select(LicenseGrantAccess).where(
            LicenseGrantAccess.grant_id == created["id"])).first() is None


def test_withdrawn_grant_is_refused_and_withdrawal_is_idempotent(api, platform, world):
    holder, created = world["holder"], made(api, world)
    assert fetch(api, world["x"], created["id"]).status_code == 200
    first = api.delete(f"/api/v1/me/grants/{created['id']}", headers=holder.headers)
    assert first.status_code == 200 and first.json()["state"] == "withdrawn" and first.json()["accesses"] == 1
    again = api.delete(f"/api/v1/me/grants/{created['id']}", headers=holder.headers)
    assert again.status_code == 200 and again.json()["withdrawn_at"] == first.json()["withdrawn_at"]
    for what in ("license", "pdf"):
        body = assert_problem(fetch(api, world["x"], created["id"], what), 403, "grant_not_live")
        assert body["reason"] == "withdrawn"
    assert created["id"] not in [g["grant_id"] for g in api.get("/api/v1/granted", headers=world["x"]).json()]
    assert audit_actions(platform, created["id"]).count("grant.withdraw") == 1


def test_expired_grant_is_refused(api, platform, world):
    created = made(api, world, valid_until=later(hours=1))
    assert fetch(api, world["x"], created["id"]).status_code == 200
    with platform.db.transaction() as connection:  # an hour and a second later
        connection.execute(update(LicenseGrant).where(LicenseGrant.id == created["id"]).values(
            valid_until=datetime.now(timezone.utc) - timedelta(seconds=1)))
    body = assert_problem(fetch(api, world["x"], created["id"], "pdf"), 403, "grant_not_live")
    assert body["reason"] == "expired"
    assert created["id"] not in [g["grant_id"] for g in api.get("/api/v1/granted", headers=world["x"]).json()]
    mine = {g["id"]: g for g in api.get("/api/v1/me/grants", headers=world["holder"].headers).json()}
    assert mine[created["id"]]["state"] == "expired"


def test_a_holder_grants_only_their_own_licenses(api, world):
    holder = world["holder"]
    assert_problem(grant(api, holder, world["others_license"]["identifier"], world["x_code"]), 404, "not_found")
    assert_problem(grant(api, holder, "没有这个证照", world["x_code"]), 404, "not_found")
    assert_problem(grant(api, holder, world["license"]["identifier"], "no-such-agency"), 404, "not_found")


def test_a_holder_sees_and_withdraws_only_their_own_grants(api, world):
    created = made(api, world)
    other = world["other"]
    assert_problem(api.delete(f"/api/v1/me/grants/{created['id']}", headers=other.headers), 404, "grant_not_found")
    assert_problem(api.get(f"/api/v1/me/grants/{created['id']}/accesses", headers=other.headers), 404,
                   "grant_not_found")
    assert created["id"] not in [g["id"] for g in api.get("/api/v1/me/grants", headers=other.headers).json()]
    assert fetch(api, world["x"], created["id"]).status_code == 200  # still live


@pytest.mark.parametrize("changes, status, code", [
    ({"purpose": " "}, 400, "invalid_input"),
    ({"purpose": "用途" * 101}, 422, "invalid_request"),
    ({"purpose": "a\u0000b"}, 400, "invalid_input"),
    ({"valid_until": "2020-01-01T00:00:00Z"}, 400, "invalid_input"),
    ({"valid_until": later(days=400)}, 400, "invalid_input"),
    ({"valid_until": "2030-01-01T00:00:00"}, 400, "invalid_input"),
    ({"valid_until": "next week"}, 422, "invalid_request"),
])
def test_bad_grants_are_refused_and_nothing_is_written(api, platform, world, changes, status, code):
    with platform.db.transaction() as connection:
        before = len(connection.execute(select(LicenseGrant.id)).all())
    response = grant(api, world["holder"], world["license"]["identifier"], world["x_code"], **changes)
    assert_problem(response, status, code)
    with platform.db.transaction() as connection:
        assert len(connection.execute(select(LicenseGrant.id)).all()) == before


def test_revoked_license_is_shown_revoked_and_cannot_be_granted_anew(api, licensing, world):
    holder = world["holder"]
    license = issue(api, licensing, holder.id_number)
    created = grant(api, holder, license["identifier"], world["x_code"]).json()
    revoked = api.post(f"/api/v1/licenses/{license['id']}/revoke", json={"reason": "以欺骗手段取得"},
                       headers=licensing.headers)
    assert revoked.status_code == 200, revoked.text
    body = fetch(api, world["x"], created["id"]).json()
    assert body["status"] == "revoked" and body["status_reason"] == "以欺骗手段取得"
    assert_problem(grant(api, holder, license["identifier"], world["x_code"]), 409, "license_status_conflict")


def test_who_may_call_what(api, platform, world):
    created = made(api, world)
    _, wrong_scope = relying_agency(api, platform, {"licenses:read"})
    for path in ("/api/v1/granted", f"/api/v1/granted/{created['id']}/license?purpose=x"):
        assert_problem(api.get(path, headers=wrong_scope), 403, "insufficient_scope")
        assert_problem(api.get(path, headers=world["holder"].headers), 401, "invalid_token")  # a login token
        assert_problem(api.get(path), 401, "invalid_token")
    for method, path in (("get", "/api/v1/me/grants"), ("delete", f"/api/v1/me/grants/{created['id']}"),
                         ("get", f"/api/v1/me/grants/{created['id']}/accesses")):
        response = api.request(method.upper(), path, headers=world["x"])  # an agency client token
        assert response.status_code == 401 and response.json()["code"] in {"invalid_token", "invalid_login_token"}
        assert api.request(method.upper(), path).status_code == 401
    assert_problem(api.get("/api/v1/granted/not-a-grant/license?purpose=x", headers=world["x"]), 422,
                   "invalid_request")
