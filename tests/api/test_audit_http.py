"""The audit trail over HTTP (``GET /api/v1/audit``, ``/api/v1/audit/verify``): state changes and
verifications leave entries, filters and paging, scopes; and ``GET /api/v1/stats``: issued, verified
and revoked counts, the operator's view of every agency and an agency's view of its own."""

from __future__ import annotations

import pytest

from store.agencies import add_agency
from tests.conftest import require_seal_font, token_for
from tests.helpers import assert_problem, citizen_id, ec_csr
from tests.licenses.test_issuance import driver


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def operator(api, platform) -> dict[str, str]:
    with platform.db.session() as session:
        add_agency(session, code="audit-operator", name="平台运营", credit_code=None)
    return bearer(token_for(api, platform, "audit-operator", {"audit:read", "stats:read"}))


def _entries(api, operator, **params) -> list[dict]:
    response = api.get("/api/v1/audit", params=params, headers=operator)
    assert response.status_code == 200, response.text
    return response.json()["entries"]


def _stats(api, headers, **params) -> dict:
    response = api.get("/api/v1/stats", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_license_lifecycle_and_verification_are_audited_and_counted(api, platform, licensing, operator):
    require_seal_font()
    scope = {"agency": licensing.agency.code, "license_type": licensing.driving.code}
    before = _stats(api, operator, **scope)["totals"]
    response = api.post("/api/v1/licenses", json={"type_code": licensing.driving.code, "fields": driver()},
                        headers=licensing.headers)
    assert response.status_code == 201, response.text
    issued = response.json()
    for action, body in (("suspend", None), ("reinstate", None), ("revoke", {"reason": "test"})):
        assert api.post(f"/api/v1/licenses/{issued['id']}/{action}", json=body,
                        headers=licensing.headers).status_code == 200
    relying = bearer(token_for(api, platform, licensing.agency.code, {"verify"}))
    token = issued["current"]["qr_url"].rsplit("/", 1)[1]
    assert api.get(f"/api/v1/verify/qr/{token}", headers=relying).status_code == 200

    trail = _entries(api, operator, subject=issued["identifier"])
    assert [e["action"] for e in trail] == ["license.issue", "license.suspend", "license.reinstate",
                                            "license.revoke", "verify.qr"]
    assert trail[0]["actor"].startswith("client:") and trail[0]["details"]["license_id"] == issued["id"]
    assert trail[3]["details"]["reason"] == "test" and trail[4]["details"]["result"] == "revoked"
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(trail, trail[1:]) if b["seq"] == a["seq"] + 1)

    after = _stats(api, operator, **scope)
    assert {k: after["totals"][k] - before[k] for k in before} == {"issued": 1, "verified": 1, "revoked": 1}
    assert {r["agency"] for r in after["rows"]} == {licensing.agency.code}
    assert {r["license_type"] for r in after["rows"]} == {licensing.driving.code}
    assert api.get("/api/v1/audit/verify", headers=operator).json()["intact"] is True


def test_certificate_issue_and_admin_actions_are_audited(api, platform, ra_headers, operator):
    body = {"profile": "citizen", "name": "李四", "id_number": citizen_id(), "csr": ec_csr()[0].decode()}
    response = api.post("/api/v1/certificates", json=body, headers=ra_headers)
    assert response.status_code == 201, response.text
    serial = response.json()["serial"]
    [entry] = _entries(api, operator, subject=serial)
    assert entry["action"] == "certificate.issue" and entry["details"]["profile"] == "citizen"
    assert _entries(api, operator, action="agency.add", limit=1000)  # the operator's own agency at least
    assert any(e["subject"] == "root" for e in _entries(api, operator, action="authority.add"))


def test_filters_and_paging(api, operator):
    first = _entries(api, operator, limit=2)
    assert len(first) == 2 and first[1]["seq"] == first[0]["seq"] + 1
    page = api.get("/api/v1/audit", params={"limit": 2}, headers=operator).json()
    assert page["next_after"] == first[1]["seq"]
    following = _entries(api, operator, after=page["next_after"], limit=1)
    assert following[0]["seq"] == first[1]["seq"] + 1
    late = first[1]["at"]
    assert all(e["at"] >= late for e in _entries(api, operator, since=late, limit=50))
    assert _entries(api, operator, until="2000-01-01") == []
    assert all(e["action"].startswith("license.") for e in _entries(api, operator, action="license."))


def test_audit_refusals(api, platform, licensing, operator):
    assert_problem(api.get("/api/v1/audit"), 401, "invalid_token")
    assert_problem(api.get("/api/v1/audit", headers=licensing.headers), 403, "insufficient_scope")
    assert_problem(api.get("/api/v1/audit/verify", headers=licensing.headers), 403, "insufficient_scope")
    assert_problem(api.get("/api/v1/audit", params={"since": "yesterday"}, headers=operator), 400, "invalid_input")
    assert_problem(api.get("/api/v1/audit", params={"since": "2026-01-01T00:00:00"}, headers=operator), 400,
                   "invalid_input")  # no zone
    assert api.get("/api/v1/audit", params={"limit": 0}, headers=operator).status_code == 422


def test_stats_scopes(api, platform, licensing, operator):
    own = _stats(api, licensing.headers)  # licenses:read: its own agency, by default
    assert own["agency"] == licensing.agency.code
    assert {r["agency"] for r in own["rows"]} <= {licensing.agency.code}
    assert _stats(api, licensing.headers, agency=licensing.agency.code)["agency"] == licensing.agency.code
    assert_problem(api.get("/api/v1/stats", params={"agency": "audit-operator"}, headers=licensing.headers),
                   403, "forbidden")
    relying = bearer(token_for(api, platform, licensing.agency.code, {"verify"}))
    assert_problem(api.get("/api/v1/stats", headers=relying), 403, "insufficient_scope")
    assert_problem(api.get("/api/v1/stats"), 401, "invalid_token")
    assert_problem(api.get("/api/v1/stats", params={"agency": "no-such-agency"}, headers=operator), 404, "not_found")
    assert_problem(api.get("/api/v1/stats", params={"until": "31/12/2026"}, headers=operator), 400, "invalid_input")
    everyone = _stats(api, operator)
    assert everyone["agency"] is None
    assert _stats(api, operator, since="2999-01-01")["rows"] == []
