"""verify.login: the to-be-signed format, challenge signatures, and login-token verification against a
key source that is a parameter (this platform's keys, or an imported platform's)."""

from __future__ import annotations

import json

import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from eauth.errors import InvalidLoginToken, LoginSignatureInvalid, LoginTokenExpired
from keys.base import KeyAlgorithm, SoftwareKeySigner
from keys.jws import encode_es256
from verify.login import LoginKey, challenge_message, verify_challenge_signature, verify_login_token

ISSUER = "https://eauth.example"
NOW = 1_800_000_000


def make_token(key, *, kid="k1", issuer=ISSUER, audience="svc", exp=NOW + 600, **changes) -> str:
    claims = {"iss": issuer, "sub": "PABC", "aud": audience, "iat": NOW, "exp": exp, "jti": "j",
              "id_kind": "citizen_id", "cert_serial": "ab"} | changes
    signer = SoftwareKeySigner("t", KeyAlgorithm.EC_P256, key)
    return encode_es256(json.dumps(claims).encode(), signer, kid=kid, headers={"typ": "JWT"})


@pytest.fixture(scope="module")
def key():
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def keys(key):
    return {"k1": LoginKey("k1", key.public_key(), ISSUER, "ours")}


def test_challenge_message_is_the_documented_format():
    assert challenge_message(nonce="n0", audience="svc", issuer=ISSUER) == (
        b"eauth-login-v1\nissuer=https://eauth.example\naudience=svc\nnonce=n0")


def test_a_good_token(keys, key):
    claims = verify_login_token(make_token(key), keys=keys, audience="svc", now=NOW)
    assert (claims.subject, claims.platform, claims.certificate_serial, claims.kid) == ("PABC", "ours", "ab", "k1")


@pytest.mark.parametrize(("changes", "reason"), [
    ({"audience": "other"}, "wrong_audience"),
    ({"issuer": "https://elsewhere.example"}, "wrong_issuer"),
    ({"kid": "unknown"}, "unknown_key"),
])
def test_refusals(keys, key, changes, reason):
    with pytest.raises(InvalidLoginToken) as refused:
        verify_login_token(make_token(key, **changes), keys=keys, audience="svc", now=NOW)
    assert refused.value.extra["reason"] == reason


def test_expired(keys, key):
    with pytest.raises(LoginTokenExpired):
        verify_login_token(make_token(key, exp=NOW), keys=keys, audience="svc", now=NOW)


def test_another_key_under_a_known_kid(keys):
    with pytest.raises(InvalidLoginToken) as refused:
        verify_login_token(make_token(ec.generate_private_key(ec.SECP256R1())), keys=keys, audience="svc", now=NOW)
    assert refused.value.extra["reason"] == "bad_signature"


def test_unsigned_and_hmac_tokens_are_malformed(keys):
    for token in (jwt.encode({"sub": "x"}, None, algorithm="none", headers={"kid": "k1"}),
                  jwt.encode({"sub": "x"}, "secret" * 6, algorithm="HS256", headers={"kid": "k1"}), "junk"):
        with pytest.raises(InvalidLoginToken) as refused:
            verify_login_token(token, keys=keys, audience="svc", now=NOW)
        assert refused.value.extra["reason"] == "malformed"


def test_a_missing_claim_is_malformed(keys, key):
    claims = {"iss": ISSUER, "sub": "P", "aud": "svc", "iat": NOW, "exp": NOW + 60, "jti": "j", "id_kind": "x"}
    signer = SoftwareKeySigner("t", KeyAlgorithm.EC_P256, key)
    token = encode_es256(json.dumps(claims).encode(), signer, kid="k1", headers={"typ": "JWT"})
    with pytest.raises(InvalidLoginToken):
        verify_login_token(token, keys=keys, audience="svc", now=NOW)


def test_an_imported_platforms_keys_verify_its_tokens(keys, key):
    theirs = ec.generate_private_key(ec.SECP256R1())
    source = keys | {"k9": LoginKey("k9", theirs.public_key(), "https://other.example", "other platform")}
    claims = verify_login_token(make_token(theirs, kid="k9", issuer="https://other.example"), keys=source,
                                audience="svc", now=NOW)
    assert claims.platform == "other platform"
    with pytest.raises(InvalidLoginToken):  # our key cannot speak for them
        verify_login_token(make_token(key, kid="k1", issuer="https://other.example"), keys=source, audience="svc",
                           now=NOW)


def test_challenge_signatures_der_and_raw():
    holder_key = ec.generate_private_key(ec.SECP256R1())
    certificate = _self_signed(holder_key)
    message = challenge_message(nonce="n", audience="svc", issuer=ISSUER)
    der = holder_key.sign(message, ec.ECDSA(hashes.SHA256()))
    verify_challenge_signature(certificate, message, der)
    r, s = decode_dss_signature(der)
    verify_challenge_signature(certificate, message, r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    with pytest.raises(LoginSignatureInvalid):
        verify_challenge_signature(certificate, message + b"x", der)


def _self_signed(key):
    from datetime import datetime, timedelta, timezone

    from cryptography import x509
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    now = datetime.now(timezone.utc)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + timedelta(days=1))
            .sign(key, hashes.SHA256()))
