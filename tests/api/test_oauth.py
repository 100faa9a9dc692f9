"""OAuth2 client credentials at the token endpoint, and bearer access tokens on the API: issued,
published in the JWKS, and every forged, expired or malformed token refused as problem+json."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import update

from api.tokens import AUDIENCE, TOKEN_KEY_LABEL, TokenService
from store.agencies import add_client
from store.models import ApiClient
from tests.helpers import assert_problem

TOKEN = "/api/v1/oauth/token"
CERTIFICATES = "/api/v1/certificates"
GRANT = {"grant_type": "client_credentials"}
BOTH_SCOPES = {"certificates:issue", "certificates:read"}



def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def new_client(platform, agency, scopes=frozenset(BOTH_SCOPES)) -> tuple[str, str]:
    with platform.db.session() as session:
        client, secret = add_client(session, agency_code=agency.code, name="oauth test", scopes=set(scopes))
    return client.client_id, secret


@pytest.fixture
def client(platform, agency) -> tuple[str, str]:
    return new_client(platform, agency)


@pytest.fixture
def access_token(api, client) -> str:
    response = api.post(TOKEN, data=GRANT, auth=client)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def _protected(api, token: str | None = None, *, authorization: str | bytes | None = None):
    """A call to an endpoint that needs certificates:read (a valid token gets 404: no such serial)."""
    headers = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if authorization is not None:
        headers["Authorization"] = authorization
    return api.get(f"{CERTIFICATES}/{'ab' * 16}", headers=headers)


def assert_invalid_token(response) -> dict:
    problem = assert_problem(response, 401, "invalid_token")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    return problem


# --- token endpoint: success ----------------------------------------------------------------------------


def _check_token_response(response, platform, client_id: str, scopes: set[str]) -> str:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["Cache-Control"] == "no-store"  # RFC 6749 §5.1
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == platform.settings.access_token_ttl_seconds
    assert body["scope"].split() == sorted(scopes)
    header = jwt.get_unverified_header(body["access_token"])
    assert header["alg"] == "ES256" and header["kid"] == platform.tokens.kid
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["sub"] == client_id and claims["aud"] == AUDIENCE
    assert claims["iss"] == platform.settings.public_base_url
    assert claims["exp"] - claims["iat"] == platform.settings.access_token_ttl_seconds
    return body["access_token"]


def test_token_with_basic_auth(api, platform, agency, client):
    token = _check_token_response(api.post(TOKEN, data=GRANT, auth=client), platform, client[0], BOTH_SCOPES)
    assert jwt.decode(token, options={"verify_signature": False})["agency"] == agency.id
    assert _protected(api, token).status_code == 404  # authenticated and authorized; no such certificate


def test_token_with_form_fields(api, platform, client):
    client_id, secret = client
    response = api.post(TOKEN, data={**GRANT, "client_id": client_id, "client_secret": secret})
    token = _check_token_response(response, platform, client_id, BOTH_SCOPES)
    assert _protected(api, token).status_code == 404


def test_token_with_a_subset_of_the_scopes(api, platform, client):
    response = api.post(TOKEN, data={**GRANT, "scope": "certificates:issue"}, auth=client)
    token = _check_token_response(response, platform, client[0], {"certificates:issue"})
    assert_problem(_protected(api, token), 403, "insufficient_scope")


# --- token endpoint: refusals ---------------------------------------------------------------------------


def assert_invalid_client(response) -> dict:
    problem = assert_problem(response, 401, "invalid_client")
    assert response.headers["WWW-Authenticate"] == 'Basic realm="eauth"'
    assert "access_token" not in response.text
    return problem


def test_wrong_secret(api, client):
    assert_invalid_client(api.post(TOKEN, data=GRANT, auth=(client[0], client[1] + "x")))


def test_wrong_secret_in_form(api, client):
    assert_invalid_client(api.post(TOKEN, data={**GRANT, "client_id": client[0], "client_secret": "nope"}))


def test_unknown_client_looks_like_a_wrong_secret(api, client):
    unknown = assert_invalid_client(api.post(TOKEN, data=GRANT, auth=("nobody-00000000", client[1])))
    wrong = assert_invalid_client(api.post(TOKEN, data=GRANT, auth=(client[0], "nope")))
    assert unknown["detail"] == wrong["detail"]  # no oracle for which client ids exist


def test_disabled_client(api, platform, client):
    with platform.db.session() as session:
        session.execute(update(ApiClient).where(ApiClient.client_id == client[0]).values(disabled=True))
    assert_invalid_client(api.post(TOKEN, data=GRANT, auth=client))


def test_no_credentials(api):
    assert_invalid_client(api.post(TOKEN, data=GRANT))


def test_secret_without_client_id(api, client):
    assert_invalid_client(api.post(TOKEN, data={**GRANT, "client_secret": client[1]}))


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param("Basic !!!not-base64!!!", id="not-base64"),
        pytest.param("Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(), id="not-utf8"),
        pytest.param("Basic " + base64.b64encode(b"only-a-client-id").decode(), id="no-colon"),
        pytest.param("Basic ", id="empty"),
        pytest.param("Basic " + base64.b64encode(b":").decode(), id="empty-id-and-secret"),
    ],
)
def test_malformed_basic_auth(api, authorization):
    assert_invalid_client(api.post(TOKEN, data=GRANT, headers={"Authorization": authorization}))


@pytest.mark.parametrize(
    "client_id",
    [pytest.param("a\x00b", id="nul"), pytest.param("x" * 500, id="very-long"), pytest.param("äöü", id="non-ascii")],
)
def test_impossible_client_ids_are_unknown_clients(api, client_id):
    """Client ids no client can have are refused like any unknown one, not as a database error."""
    basic = "Basic " + base64.b64encode(f"{client_id}:secret".encode()).decode()
    assert_invalid_client(api.post(TOKEN, data=GRANT, headers={"Authorization": basic}))
    if len(client_id) <= 64:
        assert_invalid_client(api.post(TOKEN, data={**GRANT, "client_id": client_id, "client_secret": "secret"}))


@pytest.mark.parametrize("scope", ["certificates:read", "licenses:issue", "certificates:issue licenses:issue"])
def test_requesting_a_scope_the_client_does_not_have(api, platform, agency, scope):
    client = new_client(platform, agency, {"certificates:issue"})
    response = api.post(TOKEN, data={**GRANT, "scope": scope}, auth=client)
    problem = assert_problem(response, 400, "invalid_scope")  # RFC 6749 §5.2
    assert "access_token" not in response.text
    missing = set(scope.split()) - {"certificates:issue"}
    assert all(s in problem["detail"] for s in missing)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({}, id="no-grant-type"),
        pytest.param({"grant_type": "password"}, id="password-grant"),
        pytest.param({"grant_type": "authorization_code"}, id="code-grant"),
        pytest.param({**GRANT, "scope": "x" * 1001}, id="scope-too-long"),
    ],
)
def test_request_not_matching_the_schema(api, client, data):
    problem = assert_problem(api.post(TOKEN, data=data, auth=client), 422, "invalid_request")
    assert problem["errors"]


def test_json_instead_of_form(api, client):
    assert_problem(api.post(TOKEN, json=GRANT, auth=client), 422, "invalid_request")


# --- bearer tokens on the API ---------------------------------------------------------------------------


def test_missing_token(api):
    problem = assert_invalid_token(_protected(api))
    assert "missing" in problem["detail"]


@pytest.mark.parametrize(
    "authorization",
    ["Basic " + base64.b64encode(b"a:b").decode(), "Bearer", "Bearer ", "Token abc"],
)
def test_other_authorization_schemes_are_a_missing_token(api, authorization):
    assert_invalid_token(_protected(api, authorization=authorization))


@pytest.mark.parametrize("garbage", ["garbage", "a.b.c", "a.b", "....", "eyJhbGciOiJFUzI1NiJ9.e30.", "é" * 10])
def test_garbage_token(api, garbage):
    assert_invalid_token(_protected(api, authorization=f"Bearer {garbage}".encode()))


def test_expired_token(api, platform, client):
    signer = platform.keys.signer(TOKEN_KEY_LABEL)
    expired = TokenService(signer, issuer=platform.settings.public_base_url, ttl_seconds=-60)
    token, _ = expired.issue(client_id=client[0], agency_id=1, scopes=frozenset(BOTH_SCOPES))
    assert jwt.get_unverified_header(token)["kid"] == platform.tokens.kid
    problem = assert_invalid_token(_protected(api, token))
    assert "expired" in problem["detail"]


def test_token_from_another_issuer(api, platform, client):
    signer = platform.keys.signer(TOKEN_KEY_LABEL)
    other = TokenService(signer, issuer="https://other-platform.example", ttl_seconds=300)
    token, _ = other.issue(client_id=client[0], agency_id=1, scopes=frozenset(BOTH_SCOPES))
    assert_invalid_token(_protected(api, token))


def test_forged_token_same_claims_and_kid_other_key(api, access_token):
    claims = jwt.decode(access_token, options={"verify_signature": False})
    header = jwt.get_unverified_header(access_token)
    forged = jwt.encode(claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256",
                        headers={"kid": header["kid"], "typ": header["typ"]})
    assert jwt.get_unverified_header(forged)["kid"] == header["kid"]
    assert_invalid_token(_protected(api, forged))


def test_token_with_alg_none(api, access_token):
    header, payload, _ = access_token.split(".")
    kid = jwt.get_unverified_header(access_token)["kid"]
    for alg in ("none", "None", "NONE"):
        unsigned_header = b64url(json.dumps({"alg": alg, "kid": kid, "typ": "at+jwt"}).encode())
        assert_invalid_token(_protected(api, f"{unsigned_header}.{payload}."))
    assert_invalid_token(_protected(api, f"{header}.{payload}."))  # our header, signature stripped


def test_token_hs256_keyed_with_the_public_key(api, platform, access_token):
    """The classic algorithm confusion: HMAC with the published public key as the secret."""
    _, payload, _ = access_token.split(".")
    kid = jwt.get_unverified_header(access_token)["kid"]
    public = platform.keys.signer(TOKEN_KEY_LABEL).public_key
    for secret in (
        public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo),
        public.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint),
        json.dumps(platform.tokens.jwk).encode(),
    ):
        signing_input = f"{b64url(json.dumps({'alg': 'HS256', 'kid': kid, 'typ': 'at+jwt'}).encode())}.{payload}"
        signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        assert_invalid_token(_protected(api, f"{signing_input}.{b64url(signature)}"))


def test_tampered_claims(api, access_token):
    header, payload, signature = access_token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["exp"] += 86400
    tampered = b64url(json.dumps(claims, separators=(",", ":")).encode())
    assert_invalid_token(_protected(api, f"{header}.{tampered}.{signature}"))


def test_token_with_another_kid(api, access_token):
    """Signed by our key, but naming a kid we don't publish: refused before any signature check."""
    _, payload, signature = access_token.split(".")
    header = b64url(json.dumps({"alg": "ES256", "kid": "not-our-kid", "typ": "at+jwt"}).encode())
    assert_invalid_token(_protected(api, f"{header}.{payload}.{signature}"))


def test_token_signed_by_our_key_without_required_claims(api, platform, client):
    key = platform.keys.signer(TOKEN_KEY_LABEL).private_key
    issued = jwt.decode(
        TokenService(platform.keys.signer(TOKEN_KEY_LABEL), issuer=platform.settings.public_base_url,
                     ttl_seconds=300).issue(client_id=client[0], agency_id=1, scopes=frozenset(BOTH_SCOPES))[0],
        options={"verify_signature": False},
    )
    for claim in ("exp", "scope", "agency", "sub"):
        claims = {k: v for k, v in issued.items() if k != claim}
        token = jwt.encode(claims, key, algorithm="ES256", headers={"kid": platform.tokens.kid})
        assert_invalid_token(_protected(api, token))
    # the same construction with every claim is accepted: the refusals above are about the claims
    token = jwt.encode(issued, key, algorithm="ES256", headers={"kid": platform.tokens.kid})
    assert _protected(api, token).status_code == 404


def test_client_lacking_the_scope(api, platform, agency):
    client = new_client(platform, agency, {"certificates:issue"})
    token = api.post(TOKEN, data=GRANT, auth=client).json()["access_token"]
    problem = assert_problem(_protected(api, token), 403, "insufficient_scope")
    assert problem["required"] == "certificates:read"


# --- JWKS -----------------------------------------------------------------------------------------------


def test_jwks_publishes_the_token_key(api, platform, access_token):
    response = api.get("/.well-known/jwks.json")
    assert response.status_code == 200
    keys = {k["kid"]: k for k in response.json()["keys"]}  # with the login-token keys (docs/login.md)
    jwk = keys[jwt.get_unverified_header(access_token)["kid"]]
    assert jwk["kty"] == "EC" and jwk["crv"] == "P-256" and jwk["alg"] == "ES256" and jwk["use"] == "sig"
    assert "d" not in jwk
    assert jwk["kid"] == jwt.get_unverified_header(access_token)["kid"]
    # kid is the RFC 7638 thumbprint, computed here independently
    canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"), sort_keys=True)
    assert jwk["kid"] == b64url(hashlib.sha256(canonical.encode()).digest())
    # a relying system verifies our tokens with nothing but the published key
    claims = jwt.decode(access_token, jwt.PyJWK(jwk).key, algorithms=["ES256"], audience=AUDIENCE)
    assert claims["iss"] == platform.settings.public_base_url
