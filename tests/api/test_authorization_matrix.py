"""The authorization matrix (issue 7): every endpoint of the app × every kind of caller.

``MATRIX`` classifies each (method, path) the app serves as public, an agency scope, or the logged-in
holder; a route added without a row fails ``test_matrix_covers_exactly_the_app_routes``. Each route is
then called by every role (no token, garbage, forged and foreign-audience tokens, an agency client
without and with the scope, a holder) and the outcome class checked: refusals are 401/403 problems,
admissions are anything but 401/403, nothing is ever a 5xx. The ownership tests below check the other
half: the right credential still reaches only the caller's own licenses, certificates and grants."""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from functools import cache
from datetime import datetime, timedelta, timezone

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.routing import iter_route_contexts

from api.tokens import TOKEN_KEY_LABEL
from keys.jws import encode_es256
from store.agencies import SCOPES, add_agency
from tests.api.holders import holder_login
from tests.conftest import require_seal_font, token_for
from tests.helpers import assert_problem, citizen_id, credit_code
from tests.licenses.test_issuance import driver

PUBLIC = "public"
HOLDER = "holder"


@dataclass(frozen=True)
class Scope:
    """An agency-client route: a token with any one of ``any_of`` is admitted."""

    any_of: tuple[str, ...]


def scope(*any_of: str) -> Scope:
    return Scope(any_of)


MATRIX: dict[tuple[str, str], object] = {
    # framework: the API's own description
    ("GET", "/openapi.json"): PUBLIC, ("HEAD", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC, ("HEAD", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC, ("HEAD", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC, ("HEAD", "/redoc"): PUBLIC,
    # PKI services and published keys
    ("POST", "/ocsp"): PUBLIC, ("GET", "/ocsp"): PUBLIC, ("HEAD", "/ocsp"): PUBLIC,
    ("GET", "/ocsp/{encoded:path}"): PUBLIC, ("HEAD", "/ocsp/{encoded:path}"): PUBLIC,
    ("POST", "/ocsp/{encoded:path}"): PUBLIC,
    ("POST", "/tsa"): PUBLIC,
    ("GET", "/crl/{name}.crl"): PUBLIC,
    ("GET", "/ca/{name}.cer"): PUBLIC,
    ("GET", "/api/v1/ca"): PUBLIC,
    ("GET", "/.well-known/jwks.json"): PUBLIC,
    ("GET", "/.well-known/qr-keys.json"): PUBLIC,
    ("GET", "/.well-known/openid-configuration"): PUBLIC,
    ("GET", "/api/v1/trust-bundle"): PUBLIC,
    ("GET", "/healthz"): PUBLIC,
    # credentials: the client-credentials grant authenticates with its own Basic auth
    ("POST", "/api/v1/oauth/token"): PUBLIC,
    ("POST", "/api/v1/auth/challenge"): PUBLIC,
    ("POST", "/api/v1/auth/login"): PUBLIC,
    # public pages a QR code leads to
    ("GET", "/v/{token}"): PUBLIC,
    ("GET", "/p/{token}"): PUBLIC,
    # certificates
    ("POST", "/api/v1/certificates"): scope("certificates:issue"),
    ("GET", "/api/v1/certificates/{serial}"): scope("certificates:read"),
    ("GET", "/api/v1/certificates"): scope("certificates:read"),
    ("POST", "/api/v1/certificates/{serial}/revoke"): scope("certificates:revoke"),
    ("POST", "/api/v1/certificates/{serial}/suspend"): scope("certificates:revoke"),
    ("POST", "/api/v1/certificates/{serial}/reinstate"): scope("certificates:revoke"),
    ("POST", "/api/v1/certificates/{serial}/renew"): scope("certificates:issue"),
    # documents
    ("POST", "/api/v1/documents/sign"): scope("documents:sign"),
    # licenses
    ("POST", "/api/v1/license-types"): scope("licenses:issue"),
    ("GET", "/api/v1/license-types"): scope("licenses:read"),
    ("GET", "/api/v1/license-types/{code}"): scope("licenses:read"),
    ("POST", "/api/v1/licenses"): scope("licenses:issue"),
    ("GET", "/api/v1/licenses/{license_id}"): scope("licenses:read"),
    ("GET", "/api/v1/licenses/{license_id}/pdf"): scope("licenses:read"),
    ("POST", "/api/v1/licenses/{license_id}/amend"): scope("licenses:issue"),
    ("POST", "/api/v1/licenses/{license_id}/suspend"): scope("licenses:revoke"),
    ("POST", "/api/v1/licenses/{license_id}/reinstate"): scope("licenses:revoke"),
    ("POST", "/api/v1/licenses/{license_id}/revoke"): scope("licenses:revoke"),
    ("POST", "/api/v1/licenses/{license_id}/cancel"): scope("licenses:revoke"),
    ("POST", "/api/v1/wallet"): scope("licenses:wallet"),
    ("PUT", "/api/v1/agency/seal-image"): scope("licenses:issue"),
    ("POST", "/api/v1/license-imports"): scope("licenses:issue"),
    ("GET", "/api/v1/license-imports/{job_id}"): scope("licenses:issue"),
    # relying parties
    ("GET", "/api/v1/verify/qr/{token}"): scope("verify"),
    ("POST", "/api/v1/verify/pdf"): scope("verify"),
    ("POST", "/api/v1/verify/certificate"): scope("verify"),
    ("POST", "/api/v1/verify/login-token"): scope("verify"),
    ("GET", "/api/v1/verify/presentation/{token}"): scope("verify"),
    # authorized use (授权用证): the agency side
    ("GET", "/api/v1/granted"): scope("licenses:granted"),
    ("GET", "/api/v1/granted/{grant_id}/license"): scope("licenses:granted"),
    ("GET", "/api/v1/granted/{grant_id}/pdf"): scope("licenses:granted"),
    # operator
    ("GET", "/api/v1/audit"): scope("audit:read"),
    ("GET", "/api/v1/audit/verify"): scope("audit:read"),
    ("GET", "/api/v1/stats"): scope("stats:read", "licenses:read"),
    ("GET", "/api/v1/trust/platforms"): scope("trust:manage"),
    ("POST", "/api/v1/trust/platforms"): scope("trust:manage"),
    ("DELETE", "/api/v1/trust/platforms/{name}"): scope("trust:manage"),
    # the logged-in holder
    ("GET", "/api/v1/me"): HOLDER,
    ("GET", "/api/v1/me/certificates"): HOLDER,
    ("GET", "/api/v1/me/licenses"): HOLDER,
    ("GET", "/api/v1/me/licenses/{identifier}"): HOLDER,
    ("GET", "/api/v1/me/licenses/{identifier}/pdf"): HOLDER,
    ("POST", "/api/v1/me/presentations"): HOLDER,
    ("POST", "/api/v1/me/grants"): HOLDER,
    ("GET", "/api/v1/me/grants"): HOLDER,
    ("DELETE", "/api/v1/me/grants/{grant_id}"): HOLDER,
    ("GET", "/api/v1/me/grants/{grant_id}/accesses"): HOLDER,
}

#: Plausible values for path parameters: well-formed, naming nothing that exists.
DUMMIES = {"encoded": "MAA", "name": "root", "token": "eyJhbGciOiJFUzI1NiJ9.e30.c2ln", "serial": "1f",
           "code": "99999999999999999999", "license_id": "0" * 32, "job_id": "0" * 32, "grant_id": "0" * 32,
           "identifier": "11100000000013338W901.0000000000000001.1"}

#: Required query parameters, so that an admitted call reaches the endpoint's own checks.
QUERIES = {"/api/v1/certificates": {"kind": "person", "id_number": "11010519491231002X"},
           "/api/v1/granted/{grant_id}/license": {"purpose": "核验"},
           "/api/v1/granted/{grant_id}/pdf": {"purpose": "核验"}}

#: Routes answering in their own protocol (RFC 6960 OCSP, RFC 3161 TSP) rather than problem+json.
PROTOCOL_MEDIA = {"/ocsp": "application/ocsp-response", "/ocsp/{encoded:path}": "application/ocsp-response",
                  "/tsa": "application/timestamp-reply"}

ROLES = ("anonymous", "garbage", "forged_access_token", "access_token_other_audience", "agency_without_scope",
         "agency_with_scope", "holder", "forged_login_token", "login_token_other_audience")


def concrete(template: str) -> str:
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: DUMMIES[m.group(1)], template)


def unverified_claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def resigned(token: str) -> str:
    """``token`` with the same header and claims, signed by a key that is not the platform's."""
    header = jwt.get_unverified_header(token)
    return jwt.encode(unverified_claims(token), ec.generate_private_key(ec.SECP256R1()), algorithm="ES256",
                      headers={k: v for k, v in header.items() if k != "alg"})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def credentials(api, platform):
    """Headers for every role: per scope, a client with only it and a client with every other scope."""
    code = f"mx-{secrets.token_hex(4)}"
    with platform.db.session() as session:
        add_agency(session, code=code, name="矩阵测试机关", credit_code=credit_code())
    only = {s: bearer(token_for(api, platform, code, {s})) for s in SCOPES}
    everything = token_for(api, platform, code, set(SCOPES))
    claims = unverified_claims(everything) | {"aud": "another-api"}
    other_audience = encode_es256(json.dumps(claims).encode(), platform.keys.signer(TOKEN_KEY_LABEL),
                                  kid=platform.tokens.kid, headers={"typ": "at+jwt"})
    holder_token, _ = holder_login(api, platform, id_number=citizen_id())
    foreign_token, _ = holder_login(api, platform, id_number=citizen_id(), audience="tax-service")
    return {
        "anonymous": {},
        "garbage": bearer("not-a-token"),
        "forged_access_token": bearer(resigned(everything)),
        "access_token_other_audience": bearer(other_audience),
        "agency_with_every_scope": bearer(everything),
        "only": only,
        "without": cache(lambda required: bearer(token_for(api, platform, code, set(SCOPES) - set(required)))),
        "holder": bearer(holder_token),
        "forged_login_token": bearer(resigned(holder_token)),
        "login_token_other_audience": bearer(foreign_token),
    }


def call(api, method: str, template: str, headers: dict[str, str]):
    params = QUERIES.get(template)
    if template in PROTOCOL_MEDIA and method == "POST":
        return api.request(method, concrete(template), content=b"\x30\x00", params=params, headers=headers)
    body = {} if method in ("POST", "PUT", "DELETE") else None
    return api.request(method, concrete(template), json=body, params=params, headers=headers)


def assert_well_formed(response, template: str) -> None:
    """Never a 5xx; every error a problem+json (or, on OCSP and TSA, that protocol's own answer)."""
    assert response.status_code < 500, response.text
    if response.status_code < 400:
        return
    media = response.headers.get("content-type", "").split(";")[0].strip()
    if media == PROTOCOL_MEDIA.get(template):
        return
    assert media == "application/problem+json", (response.status_code, media, response.text)
    body = response.json()
    assert {"type", "title", "status", "code"} <= body.keys(), body
    assert body["status"] == response.status_code and body["type"].endswith("/" + body["code"]), body


def assert_refused(response, template: str, status: int, code: str | None = None) -> None:
    assert_well_formed(response, template)
    assert response.status_code == status, response.text
    if code is not None:
        assert response.json()["code"] == code, response.text
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer"), response.headers


def assert_admitted(response, template: str) -> None:
    assert_well_formed(response, template)
    assert response.status_code not in (401, 403), response.text
    if response.status_code == 404 and "json" in response.headers["content-type"]:
        assert response.json()["title"] != "Not Found", "the dummy path matched no route"


def test_matrix_covers_exactly_the_app_routes(api):
    served = {(method, route.path) for route in iter_route_contexts(api.app.routes) for method in route.methods}
    assert served - MATRIX.keys() == set(), "routes without an authorization row"
    assert MATRIX.keys() - served == set(), "rows for routes the app does not serve"


def test_every_scope_is_required_somewhere():
    required = {s for access in MATRIX.values() if isinstance(access, Scope) for s in access.any_of}
    assert required == SCOPES.keys()


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "template"), list(MATRIX), ids=[f"{m} {p}" for m, p in MATRIX])
def test_route_by_role(api, credentials, method, template, role):
    """Public: admitted for everyone. Scope: 401 for no, a bad or a login token, 403 without the scope.
    Holder: 401 for anything but a platform login token (the agency roles use a client with every scope)."""
    access = MATRIX[(method, template)]
    if access == PUBLIC:
        headers = {"agency_without_scope": credentials["agency_with_every_scope"],
                   "agency_with_scope": credentials["agency_with_every_scope"]}.get(role) or credentials[role]
        assert_admitted(call(api, method, template, headers), template)
    elif isinstance(access, Scope):
        if role == "agency_with_scope":
            for name in access.any_of:
                assert_admitted(call(api, method, template, credentials["only"][name]), template)
        elif role == "agency_without_scope":
            assert_refused(call(api, method, template, credentials["without"](access.any_of)), template,
                           403, "insufficient_scope")
        else:
            assert_refused(call(api, method, template, credentials[role]), template, 401)
    else:
        assert access == HOLDER
        if role == "holder":
            assert_admitted(call(api, method, template, credentials["holder"]), template)
        else:
            headers = credentials["agency_with_every_scope"] if role.startswith("agency") else credentials[role]
            assert_refused(call(api, method, template, headers), template, 401)


# -- ownership: the right credential reaches only the caller's own ------------------------------------


@pytest.fixture(scope="module")
def world(api, platform, licensing):
    """Agency A (``licensing``) issued a license to holder X and one to holder Y; agency B has every
    license and certificate scope but no wallet; Y granted Y's license to agency G."""
    require_seal_font()
    b_code = f"agb-{secrets.token_hex(4)}"
    g_code = f"agg-{secrets.token_hex(4)}"
    with platform.db.session() as session:
        add_agency(session, code=b_code, name="另一登记机关", credit_code=credit_code())
        add_agency(session, code=g_code, name="某区车辆管理所", credit_code=None)
    b = bearer(token_for(api, platform, b_code, {"licenses:issue", "licenses:read", "licenses:revoke",
                                                 "licenses:granted", "certificates:issue", "certificates:revoke"}))
    g = bearer(token_for(api, platform, g_code, {"licenses:granted"}))
    _, x = holder_login(api, platform, id_number=citizen_id())
    _, y = holder_login(api, platform, id_number=citizen_id(), name="李四")
    licenses = {}
    for holder in (x, y):
        response = api.post("/api/v1/licenses", headers=licensing.headers,
                            json={"type_code": licensing.driving.code, "fields": driver(holder.id_number)})
        assert response.status_code == 201, response.text
        licenses[holder.id_number] = response.json()
    until = (datetime.now(timezone.utc) + timedelta(days=30)).isoformat()
    granted = api.post("/api/v1/me/grants", headers=y.headers, json={
        "license": licenses[y.id_number]["identifier"], "agency": g_code, "purpose": "核验驾驶证", "valid_until": until})
    assert granted.status_code == 201, granted.text
    return {"a": licensing, "b": b, "g": g, "x": x, "y": y, "x_license": licenses[x.id_number],
            "y_license": licenses[y.id_number], "grant": granted.json()}


@pytest.mark.parametrize(("method", "action", "body"), [
    ("GET", "", None), ("GET", "/pdf", None), ("POST", "/amend", {"fields": driver()}),
    ("POST", "/suspend", {}), ("POST", "/reinstate", {}), ("POST", "/revoke", {"reason": "试图吊销"}),
    ("POST", "/cancel", {}),
], ids=["read", "pdf", "amend", "suspend", "reinstate", "revoke", "cancel"])
def test_agency_cannot_reach_another_agencys_license(api, world, method, action, body):
    license = world["y_license"]
    response = api.request(method, f"/api/v1/licenses/{license['id']}{action}", json=body, headers=world["b"])
    assert_problem(response, 404, "not_found")
    own = api.get(f"/api/v1/licenses/{license['id']}", headers=world["a"].headers).json()
    assert (own["status"], own["version"], [e["action"] for e in own["events"]]) == ("valid", 1, ["issue"])


def test_agency_cannot_use_another_agencys_license_type(api, world):
    a = world["a"]
    issued = api.post("/api/v1/licenses", headers=world["b"],
                      json={"type_code": a.driving.code, "fields": driver()})
    assert_problem(issued, 403, "forbidden")
    spec = api.get(f"/api/v1/license-types/{a.driving.code}", headers=a.headers).json()
    defined = api.post("/api/v1/license-types", headers=world["b"], json=spec | {"code": credit_code() + "999"})
    assert_problem(defined, 400, "invalid_input")


@pytest.mark.parametrize("action", ["revoke", "suspend", "reinstate", "renew"])
def test_agency_cannot_change_a_certificate_another_agency_registered(api, world, action):
    y = world["y"]
    assert_problem(api.post(f"/api/v1/certificates/{y.serial}/{action}", json={}, headers=world["b"]),
                   403, "forbidden")
    mine = {c["serial"]: c["status"] for c in api.get("/api/v1/me/certificates", headers=y.headers).json()}
    assert mine == {y.serial: "valid"}


def test_agency_statistics_of_another_agency_need_stats_read(api, world):
    assert_problem(api.get("/api/v1/stats", params={"agency": world["a"].agency.code}, headers=world["b"]),
                   403, "forbidden")


@pytest.mark.parametrize("what", ["", "/pdf"], ids=["license", "pdf"])
def test_holder_cannot_read_another_holders_license(api, world, what):
    x, mine, theirs = world["x"], world["x_license"]["identifier"], world["y_license"]["identifier"]
    assert api.get(f"/api/v1/me/licenses/{mine}{what}", headers=x.headers).status_code == 200
    assert_problem(api.get(f"/api/v1/me/licenses/{theirs}{what}", headers=x.headers), 404, "not_found")


def test_holder_lists_only_own_licenses_and_certificates(api, world):
    x, y = world["x"], world["y"]
    listed = {item["identifier"] for item in api.get("/api/v1/me/licenses", headers=x.headers).json()}
    assert listed == {world["x_license"]["identifier"]}
    assert {c["serial"] for c in api.get("/api/v1/me/certificates", headers=x.headers).json()} == {x.serial}
    assert y.serial != x.serial


def test_holder_cannot_present_or_grant_another_holders_license(api, world):
    x, theirs = world["x"], world["y_license"]["identifier"]
    assert_problem(api.post("/api/v1/me/presentations", headers=x.headers,
                            json={"license": theirs, "fields": ["name"]}), 404, "not_found")
    until = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
    granted = api.post("/api/v1/me/grants", headers=x.headers, json={
        "license": theirs, "agency": world["a"].agency.code, "purpose": "核验", "valid_until": until})
    assert assert_problem(granted, 404, "not_found")["field"] == "license"


def test_holder_cannot_see_or_withdraw_another_holders_grant(api, world):
    x, grant = world["x"], world["grant"]
    assert_problem(api.get(f"/api/v1/me/grants/{grant['id']}/accesses", headers=x.headers), 404, "grant_not_found")
    assert_problem(api.delete(f"/api/v1/me/grants/{grant['id']}", headers=x.headers), 404, "grant_not_found")
    assert grant["id"] not in {g["id"] for g in api.get("/api/v1/me/grants", headers=x.headers).json()}
    state = {g["id"]: g["state"] for g in api.get("/api/v1/me/grants", headers=world["y"].headers).json()}
    assert state[grant["id"]] == "live"


def test_only_the_granted_agency_fetches_and_only_until_withdrawal(api, world):
    grant, purpose = world["grant"], {"purpose": "核验驾驶证"}
    for what in ("license", "pdf"):
        url = f"/api/v1/granted/{grant['id']}/{what}"
        assert_problem(api.get(url, params=purpose, headers=world["b"]), 404, "grant_not_found")
        assert_problem(api.get(url, params=purpose, headers=world["a"].headers), 403, "insufficient_scope")
        assert api.get(url, params=purpose, headers=world["g"]).status_code == 200
    assert api.delete(f"/api/v1/me/grants/{grant['id']}", headers=world["y"].headers).status_code == 200
    for what in ("license", "pdf"):
        url = f"/api/v1/granted/{grant['id']}/{what}"
        assert_problem(api.get(url, params=purpose, headers=world["g"]), 403, "grant_not_live")
