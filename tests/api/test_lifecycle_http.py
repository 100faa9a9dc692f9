"""The certificate lifecycle over HTTP: suspend, reinstate, revoke, renew and re-key, each refusal as
problem+json with its stable code, and the certificate left as it was when refused."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from cryptography import x509
from sqlalchemy import func, select

from store.agencies import add_agency
from store.models import Certificate
from tests.conftest import token_for
from tests.helpers import assert_problem, citizen_id, ec_csr

CERTIFICATES = "/api/v1/certificates"
ALL_SCOPES = {"certificates:issue", "certificates:read", "certificates:revoke"}
UNKNOWN_SERIAL = "ab" * 16
ENDPOINTS = ("revoke", "suspend", "reinstate", "renew")



def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def headers(api, platform, agency) -> dict[str, str]:
    """The registering agency, with every certificate scope."""
    return bearer(token_for(api, platform, agency.code, ALL_SCOPES))


@pytest.fixture(scope="module")
def other_headers(api, platform) -> dict[str, str]:
    """Another agency, with every certificate scope too."""
    with platform.db.session() as session:
        other = add_agency(session, code="http-other-ra", name="另一登记机关", credit_code=None)
    return bearer(token_for(api, platform, other.code, ALL_SCOPES))


@pytest.fixture
def issued(api, headers) -> dict:
    body = {"profile": "citizen", "name": "张三", "id_number": citizen_id(), "csr": ec_csr()[0].decode()}
    response = api.post(CERTIFICATES, json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def post(api, headers, serial: str, action: str, body: dict | None = None):
    return api.post(f"{CERTIFICATES}/{serial}/{action}", json=body, headers=headers)


def current(api, headers, serial: str) -> dict:
    response = api.get(f"{CERTIFICATES}/{serial}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def instant(value: str) -> datetime:
    return datetime.fromisoformat(value)


def renewals(platform, serial: str) -> int:
    with platform.db.session() as session:
        return session.scalar(select(func.count()).select_from(Certificate).where(Certificate.replaces == serial))


# --- the transitions -----------------------------------------------------------------------------------


def test_suspend_reinstate_then_revoke(api, headers, issued):
    serial = issued["serial"]
    assert (issued["revoked_at"], issued["revocation_reason"], issued["invalidity_date"], issued["replaces"]) == (
        None, None, None, None)

    suspended = post(api, headers, serial, "suspend")
    assert suspended.status_code == 200, suspended.text
    view = suspended.json()
    assert (view["serial"], view["status"], view["revocation_reason"]) == (serial, "suspended", "certificateHold")
    assert abs(instant(view["revoked_at"]) - datetime.now(timezone.utc)) < timedelta(minutes=1)
    assert current(api, headers, serial) == view

    reinstated = post(api, headers, serial, "reinstate")
    assert reinstated.status_code == 200, reinstated.text
    view = reinstated.json()
    assert (view["status"], view["revoked_at"], view["revocation_reason"], view["invalidity_date"]) == (
        "valid", None, None, None)
    assert current(api, headers, serial) == view

    # An offset other than Z is the same instant, reported in UTC.
    compromised = instant(issued["not_before"]).astimezone(timezone(timedelta(hours=8))).isoformat()
    revoked = post(api, headers, serial, "revoke", {"reason": "keyCompromise", "invalidity_date": compromised})
    assert revoked.status_code == 200, revoked.text
    view = revoked.json()
    assert (view["status"], view["revocation_reason"]) == ("revoked", "keyCompromise")
    assert instant(view["invalidity_date"]) == instant(issued["not_before"])
    assert instant(view["invalidity_date"]).utcoffset() == timedelta(0)
    assert view["certificate_pem"] == issued["certificate_pem"]
    assert current(api, headers, serial) == view


@pytest.mark.parametrize("body", [None, {}], ids=["no-body", "empty-object"])
def test_revoke_reason_defaults_to_unspecified(api, headers, issued, body):
    response = post(api, headers, issued["serial"], "revoke", body)
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["revocation_reason"]) == ("revoked", "unspecified")


def test_revoke_a_suspended_certificate(api, headers, issued):
    assert post(api, headers, issued["serial"], "suspend").status_code == 200
    response = post(api, headers, issued["serial"], "revoke", {"reason": "superseded"})
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["revocation_reason"]) == ("revoked", "superseded")


def test_serial_is_case_insensitive(api, headers, issued):
    response = post(api, headers, issued["serial"].upper(), "suspend")
    assert response.status_code == 200, response.text
    assert response.json()["serial"] == issued["serial"]


def test_renew_with_the_same_key(api, headers, issued):
    response = post(api, headers, issued["serial"], "renew")
    assert response.status_code == 201, response.text
    new = response.json()
    assert response.headers["Location"] == f"{CERTIFICATES}/{new['serial']}"
    assert new["replaces"] == issued["serial"] and new["serial"] != issued["serial"]
    assert (new["status"], new["profile"], new["issuer"], new["subject_id"], new["subject_dn"]) == (
        "valid", issued["profile"], issued["issuer"], issued["subject_id"], issued["subject_dn"])
    assert new["pkcs12"] is None and new["chain_pem"] == issued["chain_pem"]
    old_cert = x509.load_pem_x509_certificate(issued["certificate_pem"].encode())
    new_cert = x509.load_pem_x509_certificate(new["certificate_pem"].encode())
    assert new_cert.public_key() == old_cert.public_key()
    new_cert.verify_directly_issued_by(x509.load_pem_x509_certificate(new["chain_pem"][0].encode()))
    assert current(api, headers, new["serial"])["replaces"] == issued["serial"]
    assert current(api, headers, issued["serial"])["status"] == "valid"  # the old one is left as it was


def test_rekey_with_a_csr(api, headers, issued):
    csr, key = ec_csr()
    response = post(api, headers, issued["serial"], "renew", {"csr": csr.decode()})
    assert response.status_code == 201, response.text
    new = response.json()
    assert new["replaces"] == issued["serial"]
    assert x509.load_pem_x509_certificate(new["certificate_pem"].encode()).public_key() == key.public_key()
    assert new["subject_dn"] == issued["subject_dn"]


# --- refusals --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("action", ENDPOINTS)
def test_unknown_serial_is_404(api, headers, action):
    problem = assert_problem(post(api, headers, UNKNOWN_SERIAL, action), 404, "not_found")
    assert UNKNOWN_SERIAL in problem["detail"]
    assert problem["instance"] == f"{CERTIFICATES}/{UNKNOWN_SERIAL}/{action}"


@pytest.mark.parametrize("action", ENDPOINTS)
def test_malformed_serial_is_422(api, headers, action):
    assert_problem(post(api, headers, "not-hex", action), 422, "invalid_request")


ILLEGAL = {
    "reinstate-valid": ([], "reinstate"),
    "suspend-suspended": (["suspend"], "suspend"),
    "revoke-revoked": (["revoke"], "revoke"),
    "suspend-revoked": (["revoke"], "suspend"),
    "reinstate-revoked": (["revoke"], "reinstate"),
    "renew-suspended": (["suspend"], "renew"),
    "renew-revoked": (["revoke"], "renew"),
}


@pytest.mark.parametrize("case", ILLEGAL)
def test_wrong_transition_is_409(api, platform, headers, issued, case):
    before, attempt = ILLEGAL[case]
    for step in before:
        assert post(api, headers, issued["serial"], step).status_code == 200
    state = current(api, headers, issued["serial"])
    problem = assert_problem(post(api, headers, issued["serial"], attempt), 409, "invalid_status_transition")
    assert issued["serial"] in problem["detail"]
    assert current(api, headers, issued["serial"]) == state
    assert renewals(platform, issued["serial"]) == 0


@pytest.mark.parametrize("action", ENDPOINTS)
def test_another_agencys_certificate_is_403(api, platform, headers, other_headers, issued, action):
    if action == "reinstate":
        assert post(api, headers, issued["serial"], "suspend").status_code == 200
    state = current(api, headers, issued["serial"])
    problem = assert_problem(post(api, other_headers, issued["serial"], action), 403, "forbidden")
    assert "another agency" in problem["detail"]
    assert current(api, headers, issued["serial"]) == state
    assert renewals(platform, issued["serial"]) == 0


@pytest.mark.parametrize(("scopes", "action", "required"), [
    ({"certificates:issue", "certificates:read"}, "revoke", "certificates:revoke"),
    ({"certificates:issue", "certificates:read"}, "suspend", "certificates:revoke"),
    ({"certificates:issue", "certificates:read"}, "reinstate", "certificates:revoke"),
    ({"certificates:revoke", "certificates:read"}, "renew", "certificates:issue"),
])
def test_missing_scope_is_403(api, platform, agency, headers, issued, scopes, action, required):
    token = token_for(api, platform, agency.code, scopes)
    problem = assert_problem(post(api, bearer(token), issued["serial"], action), 403, "insufficient_scope")
    assert problem["required"] == required
    assert current(api, headers, issued["serial"])["status"] == "valid"


@pytest.mark.parametrize("action", ENDPOINTS)
def test_missing_token_is_401(api, issued, action):
    assert_problem(post(api, {}, issued["serial"], action), 401, "invalid_token")


@pytest.mark.parametrize("reason", ["bogus", "KeyCompromise", "certificateHold", "cACompromise", ""])
def test_unknown_reason_is_400_invalid_input(api, headers, issued, reason):
    """The reason is checked by the domain (one list of reasons): 400 invalid_input naming the known ones."""
    problem = assert_problem(post(api, headers, issued["serial"], "revoke", {"reason": reason}), 400, "invalid_input")
    assert "keyCompromise" in problem["detail"] and "superseded" in problem["detail"]
    assert current(api, headers, issued["serial"])["status"] == "valid"


@pytest.mark.parametrize("body", [
    pytest.param({"reason": 1}, id="reason-a-number"),
    pytest.param({"reason": "x" * 65}, id="reason-too-long"),
    pytest.param({"invalidity_date": "yesterday"}, id="date-not-a-date"),
    pytest.param({"csr": "A" * 16385}, id="csr-too-long"),
    pytest.param([], id="array-not-object"),
])
def test_schema_violations_are_422(api, headers, issued, body):
    action = "renew" if isinstance(body, dict) and "csr" in body else "revoke"
    assert_problem(post(api, headers, issued["serial"], action, body), 422, "invalid_request")
    assert current(api, headers, issued["serial"])["status"] == "valid"


@pytest.mark.parametrize(
    "when",
    [
        pytest.param(lambda issued: (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat(), id="future"),
        pytest.param(lambda issued: (instant(issued["not_before"]) - timedelta(seconds=1)).isoformat(),
                     id="before-not-before"),
        pytest.param(lambda issued: instant(issued["not_before"]).replace(tzinfo=None).isoformat(), id="no-offset"),
    ],
)
def test_bad_invalidity_date_is_400(api, headers, issued, when):
    body = {"reason": "keyCompromise", "invalidity_date": when(issued)}
    problem = assert_problem(post(api, headers, issued["serial"], "revoke", body), 400, "invalid_input")
    assert "invalidity date" in problem["detail"]
    assert current(api, headers, issued["serial"])["status"] == "valid"


def test_rekey_with_a_bad_csr_is_400(api, platform, headers, issued):
    assert_problem(post(api, headers, issued["serial"], "renew", {"csr": "not a request"}), 400, "invalid_csr")
    assert renewals(platform, issued["serial"]) == 0


def test_documented_in_openapi(api):
    paths = api.get("/openapi.json").json()["paths"]
    for action in ENDPOINTS:
        assert "post" in paths[f"{CERTIFICATES}/{{serial}}/{action}"]
