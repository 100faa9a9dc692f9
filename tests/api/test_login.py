"""Certificate login over HTTP: challenge, login, the token as a relying system verifies it (PyJWT
with the key from /.well-known/jwks.json), every refusal, key rotation, the holder endpoints."""

from __future__ import annotations

import json
from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding

import api.login as login_module
from api.holder import PLATFORM_AUDIENCE
from api.login import login_service
from ca.lifecycle import RevocationReason
from ca.profiles import SubjectKind
from ca.records import Actor
from store.ca_store import SqlCaStore
from tests.api.holders import enroll, holder_login, login, sign
from tests.conftest import token_for
from tests.helpers import assert_problem
from verify.login import challenge_message


@pytest.fixture(scope="module")
def verifier_headers(api, platform, agency):
    return {"Authorization": f"Bearer {token_for(api, platform, agency.code, {'verify'})}"}


def jwks_key(api, kid: str) -> jwt.PyJWK:
    """The key ``kid`` exactly as a relying system finds it: in the published JWKS."""
    keys = {k["kid"]: k for k in api.get("/.well-known/jwks.json").json()["keys"]}
    assert kid in keys, f"{kid} not published"
    return jwt.PyJWK(keys[kid])


def test_login_token_verifies_with_the_published_key(api, platform):
    token, holder = holder_login(api, platform, audience="tax-service")
    kid = jwt.get_unverified_header(token)["kid"]
    claims = jwt.decode(token, jwks_key(api, kid), algorithms=["ES256"], audience="tax-service",
                        issuer=platform.settings.public_base_url)
    assert claims["sub"].startswith("P") and holder.id_number not in token
    assert claims["id_kind"] == "citizen_id" and claims["cert_serial"] == holder.serial
    assert claims["exp"] - claims["iat"] == platform.settings.login_token_ttl_seconds
    assert holder.id_number not in json.dumps(claims)
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(token, jwks_key(api, kid), algorithms=["ES256"], audience="another-service")


def test_subject_is_stable_across_certificates_and_differs_between_people(api, platform):
    first, a = holder_login(api, platform)
    second, _ = holder_login(api, platform, id_number=a.id_number)
    third, _ = holder_login(api, platform)
    sub = [jwt.decode(t, options={"verify_signature": False})["sub"] for t in (first, second, third)]
    assert sub[0] == sub[1] != sub[2]


def test_enterprise_and_rsa_keys_log_in(api, platform):
    holder = enroll(platform, kind=SubjectKind.ENTERPRISE, name="深圳某某科技有限公司")
    response = login(api, platform, holder)
    assert response.status_code == 200, response.text
    assert jwt.decode(response.json()["token"], options={"verify_signature": False})["id_kind"] == "credit_code"
    rsa_holder = enroll(platform, key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    assert login(api, platform, rsa_holder).status_code == 200


def test_challenge_is_single_use(api, platform):
    holder = enroll(platform)
    nonce = api.post("/api/v1/auth/challenge", json={"audience": "eauth"}).json()["nonce"]
    body = {"certificate": holder.certificate.public_bytes(Encoding.PEM).decode(), "nonce": nonce,
            "signature": sign(holder.key, challenge_message(nonce=nonce, audience="eauth",
                                                            issuer=platform.settings.public_base_url))}
    assert api.post("/api/v1/auth/login", json=body).status_code == 200
    replayed = api.post("/api/v1/auth/login", json=body)
    assert_problem(replayed, 401, "challenge_invalid")
    assert replayed.headers["www-authenticate"] == 'Bearer realm="eauth"'  # never Basic: no browser password dialog


def test_unknown_and_expired_challenges_are_refused(api, platform, monkeypatch):
    holder = enroll(platform)
    pem = holder.certificate.public_bytes(Encoding.PEM).decode()
    message = challenge_message(nonce="made-up", audience="eauth", issuer=platform.settings.public_base_url)
    assert_problem(api.post("/api/v1/auth/login", json={"certificate": pem, "nonce": "made-up",
                                                         "signature": sign(holder.key, message)}),
                   401, "challenge_invalid")
    challenge = api.post("/api/v1/auth/challenge", json={"audience": "eauth"}).json()
    later = login_module.utcnow() + timedelta(seconds=platform.settings.login_challenge_ttl_seconds + 1)
    monkeypatch.setattr(login_module, "utcnow", lambda: later)
    message = challenge_message(nonce=challenge["nonce"], audience="eauth", issuer=platform.settings.public_base_url)
    assert_problem(api.post("/api/v1/auth/login", json={"certificate": pem, "nonce": challenge["nonce"],
                                                         "signature": sign(holder.key, message)}),
                   401, "challenge_invalid")


def test_to_be_signed_is_what_the_challenge_says(api, platform):
    challenge = api.post("/api/v1/auth/challenge", json={"audience": "tax-service"}).json()
    assert challenge["to_be_signed"].encode() == challenge_message(
        nonce=challenge["nonce"], audience="tax-service", issuer=platform.settings.public_base_url)


def test_signature_by_another_key_is_refused(api, platform):
    holder = enroll(platform)
    body = assert_problem(login(api, platform, holder, key=ec.generate_private_key(ec.SECP256R1())),
                          401, "login_signature_invalid")
    assert "token" not in body


def test_signature_for_another_audience_is_refused(api, platform):
    """The signature binds the audience: a challenge for one service answered for another fails."""
    holder = enroll(platform)
    nonce = api.post("/api/v1/auth/challenge", json={"audience": "tax-service"}).json()["nonce"]
    pem = holder.certificate.public_bytes(Encoding.PEM).decode()
    signed_for_other = sign(holder.key, challenge_message(nonce=nonce, audience="eauth",
                                                          issuer=platform.settings.public_base_url))
    assert_problem(api.post("/api/v1/auth/login", json={"certificate": pem, "nonce": nonce,
                                                         "signature": signed_for_other}),
                   401, "login_signature_invalid")
    nonce = api.post("/api/v1/auth/challenge", json={"audience": "tax-service"}).json()["nonce"]
    assert_problem(api.post("/api/v1/auth/login", json={"certificate": pem, "nonce": nonce, "audience": "eauth",
                                                         "signature": signed_for_other}),
                   401, "challenge_invalid")


def change_status(platform, serial: str, action: str) -> None:
    """Revoke or suspend a certificate as the platform operator would."""
    with platform.db.session() as session:
        store = SqlCaStore(session)
        if action == "revoke":
            platform.lifecycle.revoke(store, serial, reason=RevocationReason.KEY_COMPROMISE, actor=Actor(None))
        else:
            platform.lifecycle.suspend(store, serial, actor=Actor(None))


@pytest.mark.parametrize(("action", "reason"), [("revoke", "revoked"), ("suspend", "suspended")])
def test_revoked_and_suspended_certificates_are_refused(api, platform, action, reason):
    holder = enroll(platform)
    change_status(platform, holder.serial, action)
    problem = assert_problem(login(api, platform, holder), 401, "login_certificate_refused")
    assert problem["reason"] == reason


def test_foreign_ca_is_refused(api, platform):
    from datetime import datetime, timezone

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "张三")])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))
    holder = enroll(platform)
    forged = type(holder)(holder.kind, holder.name, holder.id_number, cert, key, f"{cert.serial_number:x}")
    problem = assert_problem(login(api, platform, forged), 401, "login_certificate_refused")
    assert problem["reason"] == "untrusted"


def test_bad_input_is_a_clear_problem(api, platform):
    assert_problem(api.post("/api/v1/auth/challenge", json={"audience": "no spaces"}), 400, "invalid_input")
    nonce = api.post("/api/v1/auth/challenge", json={"audience": "eauth"}).json()["nonce"]
    assert_problem(api.post("/api/v1/auth/login", json={"certificate": "junk", "nonce": nonce, "signature": "AA=="}),
                   400, "invalid_certificate")
    holder = enroll(platform)
    pem = holder.certificate.public_bytes(Encoding.PEM).decode()
    assert_problem(api.post("/api/v1/auth/login", json={"certificate": pem, "nonce": nonce, "signature": "!!"}),
                   400, "invalid_input")


def test_relying_system_verifies_tokens(api, platform, verifier_headers):
    token, holder = holder_login(api, platform, audience="tax-service")
    report = api.post("/api/v1/verify/login-token", json={"token": token, "audience": "tax-service"},
                      headers=verifier_headers).json()
    assert report["valid"] and report["certificate_serial"] == holder.serial and report["id_kind"] == "citizen_id"
    wrong = api.post("/api/v1/verify/login-token", json={"token": token, "audience": "eauth"},
                     headers=verifier_headers).json()
    assert not wrong["valid"] and wrong["reason"] == "wrong_audience"
    altered = token[:-4] + ("AAAA" if token[-4:] != "AAAA" else "BBBB")
    bad = api.post("/api/v1/verify/login-token", json={"token": altered, "audience": "tax-service"},
                   headers=verifier_headers).json()
    assert not bad["valid"] and bad["reason"] in ("bad_signature", "malformed")
    from sqlalchemy import select

    from store.models import Verification

    with platform.db.session() as session:
        results = session.execute(select(Verification.result).where(Verification.kind == "login")).scalars().all()
    assert {"valid", "wrong_audience"} <= set(results)
    assert api.post("/api/v1/verify/login-token", json={"token": token, "audience": "x"}).status_code == 401


def test_expired_token_is_refused(api, platform, verifier_headers, monkeypatch):
    token, holder = holder_login(api, platform)
    assert api.get("/api/v1/me", headers=holder.headers).status_code == 200
    later = login_module.utcnow() + timedelta(seconds=platform.settings.login_token_ttl_seconds + 1)
    monkeypatch.setattr(login_module, "utcnow", lambda: later)
    assert_problem(api.get("/api/v1/me", headers=holder.headers), 401, "login_token_expired")
    report = api.post("/api/v1/verify/login-token", json={"token": token, "audience": PLATFORM_AUDIENCE},
                      headers=verifier_headers).json()
    assert not report["valid"] and report["error_code"] == "login_token_expired"


def test_rotation_keeps_old_tokens_until_they_expire(api, platform, monkeypatch):
    old_token, holder = holder_login(api, platform)
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    new = login_service(platform).rotate()
    new_token, _ = holder_login(api, platform)
    assert jwt.get_unverified_header(new_token)["kid"] == new.kid != old_kid
    published = {k["kid"] for k in api.get("/.well-known/jwks.json").json()["keys"]}
    assert {old_kid, new.kid} <= published and platform.tokens.kid in published
    jwt.decode(old_token, jwks_key(api, old_kid), algorithms=["ES256"], audience=PLATFORM_AUDIENCE)
    assert api.get("/api/v1/me", headers=holder.headers).status_code == 200
    later = login_module.utcnow() + timedelta(seconds=platform.settings.login_token_ttl_seconds) \
        + login_module.RETIRE_MARGIN + timedelta(seconds=1)
    monkeypatch.setattr(login_module, "utcnow", lambda: later)
    published = {k["kid"] for k in api.get("/.well-known/jwks.json").json()["keys"]}
    assert old_kid not in published and new.kid in published and platform.tokens.kid in published


def test_openid_configuration(api, platform):
    config = api.get("/.well-known/openid-configuration").json()
    base = platform.settings.public_base_url
    assert config["issuer"] == base and config["jwks_uri"] == f"{base}/.well-known/jwks.json"
    assert config["id_token_signing_alg_values_supported"] == ["ES256"]
    assert config["challenge_endpoint"].endswith("/api/v1/auth/challenge")


def test_holder_sees_only_own_certificates(api, platform):
    token, holder = holder_login(api, platform)
    second = enroll(platform, id_number=holder.id_number)
    other_token, other = holder_login(api, platform)
    me = api.get("/api/v1/me", headers=holder.headers).json()
    assert holder.id_number not in json.dumps(me) and me["id_number_masked"].endswith(holder.id_number[-4:])
    serials = {c["serial"] for c in api.get("/api/v1/me/certificates", headers=holder.headers).json()}
    assert serials == {holder.serial, second.serial}
    assert {c["serial"] for c in api.get("/api/v1/me/certificates", headers=other.headers).json()} == {other.serial}


def test_holder_endpoints_need_a_platform_login_token(api, platform, ra_headers):
    token, _ = holder_login(api, platform, audience="tax-service")
    assert_problem(api.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}), 401, "invalid_login_token")
    assert_problem(api.get("/api/v1/me"), 401, "invalid_token")
    assert_problem(api.get("/api/v1/me", headers=ra_headers), 401, "invalid_login_token")


def test_revoking_the_certificate_ends_the_session(api, platform):
    _, holder = holder_login(api, platform)
    assert api.get("/api/v1/me", headers=holder.headers).status_code == 200
    change_status(platform, holder.serial, "suspend")
    problem = assert_problem(api.get("/api/v1/me", headers=holder.headers), 401, "invalid_login_token")
    assert problem["reason"] == "certificate_suspended"


def test_logins_and_rotations_are_audited(api, platform):
    from store.audit import entries

    _, holder = holder_login(api, platform)
    rotated = login_service(platform).rotate()
    with platform.db.transaction() as connection:
        logins = entries(connection, action="holder.login", subject=f"certificate:{holder.serial}")
        rotations = entries(connection, action="login_key.rotate", subject=f"login-key:{rotated.kid}")
    assert len(logins) == 1 and logins[0].details["audience"] == PLATFORM_AUDIENCE
    assert logins[0].actor.startswith("holder:P") and holder.id_number not in json.dumps(logins[0].details)
    assert len(rotations) == 1 and rotations[0].details["label"] == rotated.label
