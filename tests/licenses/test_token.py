"""License QR tokens: signed through the key store, verified offline, refused when altered, signed
by another key or with another algorithm, and short enough for a QR of version 12 at level M."""

import base64
import hashlib
import hmac
import json
from datetime import date

import jwt
import pytest
import qrcode
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from eauth.errors import (
    InvalidQrToken,
    QrTokenBadSignature,
    QrTokenMalformed,
    QrTokenUnknownKey,
    UnsupportedAlgorithm,
)
from keys.base import KeyAlgorithm
from keys.filestore import FileKeyStore
from keys.jws import encode_es256
from licenses.catalog import BUSINESS_LICENSE_CODE, demo_types, expiry, license_digest, validate_fields
from licenses.identifiers import LicenseIdentifier
from licenses.token import QrClaims, QrTokenSigner, qr_key_id, qr_url, verify_qr_token
from tests.helpers import PASSPHRASE

BASE = "https://zwfw.example.gov.cn"
BUSINESS, _ = demo_types("demo-amr")
COMPANY = {
    "name": "深圳市示例科技有限公司", "credit_code": "9144030071526726XG", "entity_type": "有限责任公司",
    "legal_representative": "张三", "registered_capital": "5000", "established_on": "1999-04-15",
    "valid_until": "2049-04-14", "address": "深圳市南山区科技园路1号", "business_scope": "计算机软硬件的技术开发。",
}
# A realistic identifier of ours: an 18-character credit code as issuer code and a 10-digit serial.
IDENTIFIER = LicenseIdentifier(type_code=BUSINESS_LICENSE_CODE, issuer_code="11220000013544541J", serial="2025000001")
ISSUED = date(2025, 5, 22)


@pytest.fixture(scope="module")
def key_store(tmp_path_factory):
    store = FileKeyStore(tmp_path_factory.mktemp("keys"), PASSPHRASE, create=True)
    store.generate("license-qr", KeyAlgorithm.EC_P256)
    return store


@pytest.fixture(scope="module")
def signer(key_store):
    return key_store.signer("license-qr")


@pytest.fixture(scope="module")
def kid(signer):
    return qr_key_id(signer.public_key)


@pytest.fixture(scope="module")
def keys(signer, kid):
    return {kid: signer.public_key}


@pytest.fixture(scope="module")
def claims():
    fields = validate_fields(BUSINESS, COMPANY)
    digest = license_digest(identifier=IDENTIFIER.text, type_code=BUSINESS.code, fields=fields)
    return QrClaims(identifier=IDENTIFIER, issued_on=ISSUED, expires_on=expiry(BUSINESS, fields, ISSUED),
                    digest_prefix=digest[:16])


@pytest.fixture(scope="module")
def token(signer, kid, claims):
    return QrTokenSigner(signer, kid).sign(claims)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_round_trip(token, keys, claims, kid):
    assert jwt.get_unverified_header(token) == {"alg": "ES256", "kid": kid}
    verified = verify_qr_token(token, keys)
    assert verified == claims
    assert (verified.type_code, verified.issuer_code) == (BUSINESS.code, "11220000013544541J")
    assert verified.expires_on == date(2049, 4, 14)
    fields = validate_fields(BUSINESS, COMPANY)
    assert verified.binds(license_digest(identifier=IDENTIFIER.text, type_code=BUSINESS.code, fields=fields))
    altered = fields | {"legal_representative": "王五"}
    assert not verified.binds(license_digest(identifier=IDENTIFIER.text, type_code=BUSINESS.code, fields=altered))


def test_long_term_license_has_no_expiry(signer, kid, keys, claims):
    long_term = QrClaims(identifier=IDENTIFIER, issued_on=ISSUED, expires_on=None, digest_prefix=claims.digest_prefix)
    assert verify_qr_token(QrTokenSigner(signer, kid).sign(long_term), keys).expires_on is None


def test_url_fits_qr_version_12_at_level_m(token):
    url = qr_url(BASE + "/", token)
    assert url == f"{BASE}/v/{token}"
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M)
    qr.add_data(url)
    qr.make(fit=True)
    print(f"identifier {len(IDENTIFIER.text)} chars, token {len(token)} chars, URL {len(url)} chars, "
          f"QR version {qr.version} at level M")
    assert qr.version <= 12


def test_tampered_payload(token, keys):
    header, payload, signature = token.split(".")
    raw = bytearray(b64url_decode(payload))
    raw[3:5] = (0xFFFF).to_bytes(2, "big")  # a later expiry
    with pytest.raises(QrTokenBadSignature) as info:
        verify_qr_token(f"{header}.{b64url(bytes(raw))}.{signature}", keys)
    assert info.value.code == "qr_token_bad_signature"


def test_tampered_signature(token, keys):
    header, payload, signature = token.split(".")
    raw = bytearray(b64url_decode(signature))
    raw[-1] ^= 1
    with pytest.raises(QrTokenBadSignature):
        verify_qr_token(f"{header}.{payload}.{b64url(bytes(raw))}", keys)


def test_unknown_kid(token, signer, claims):
    with pytest.raises(QrTokenUnknownKey) as info:
        verify_qr_token(token, {"other-pl": signer.public_key})
    assert info.value.code == "qr_token_unknown_key" and info.value.extra["kid"] in info.value.detail
    renamed = QrTokenSigner(signer, "elsewhere").sign(claims)  # our key under a kid we do not publish
    with pytest.raises(QrTokenUnknownKey):
        verify_qr_token(renamed, {qr_key_id(signer.public_key): signer.public_key})


def test_another_key_under_our_kid(tmp_path, kid, keys, claims):
    other = FileKeyStore(tmp_path, PASSPHRASE, create=True).generate("forger", KeyAlgorithm.EC_P256)
    forged = QrTokenSigner(other, kid).sign(claims)
    with pytest.raises(QrTokenBadSignature):
        verify_qr_token(forged, keys)
    assert verify_qr_token(forged, {kid: other.public_key}) == claims


def test_alg_none_refused(token, keys, kid):
    _, payload, _ = token.split(".")
    for alg in ("none", "None", "NONE"):
        header = b64url(json.dumps({"alg": alg, "kid": kid}).encode())
        with pytest.raises(QrTokenMalformed) as info:
            verify_qr_token(f"{header}.{payload}.", keys)
        assert info.value.extra["reason"] == "algorithm"


def test_hs256_keyed_with_the_public_key_refused(token, keys, kid, signer):
    _, payload, _ = token.split(".")
    for secret in (signer.public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo),
                   signer.public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)):
        signing_input = f"{b64url(json.dumps({'alg': 'HS256', 'kid': kid}).encode())}.{payload}"
        signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        with pytest.raises(QrTokenMalformed) as info:
            verify_qr_token(f"{signing_input}.{b64url(signature)}", keys)
        assert "ES256" in info.value.detail


def test_extra_header_refused(token, signer, kid, keys):
    payload = b64url_decode(token.split(".")[1])
    with_typ = encode_es256(payload, signer, kid=kid, headers={"typ": "JWT"})
    with pytest.raises(QrTokenMalformed) as info:
        verify_qr_token(with_typ, keys)
    assert info.value.extra["reason"] == "header"


@pytest.mark.parametrize("garbage", ["", "garbage", "a.b.c", "a.b", "....", "eyJhbGciOiJFUzI1NiJ9.e30.", "é" * 10])
def test_garbage(garbage, keys):
    with pytest.raises(QrTokenMalformed):
        verify_qr_token(garbage, keys)


@pytest.mark.parametrize("payload", [
    b"",  # empty
    b"\x02" + bytes(20) + b"X",  # another format
    b"\x01" + bytes(20),  # no identifier
    b"\x01" + bytes(20) + b"11100000000013338W901.11220000013544541J.1.001.X",  # wrong check character
    b"\x01\x00\x10\x00\x01" + bytes(16) + IDENTIFIER.text[15:].encode(),  # expiry before issue
    b"\x01" + bytes(20) + "é".encode(),
    b'{"i":"x"}',  # JSON claims are not this format
])
def test_signed_but_malformed_payload(payload, signer, kid, keys):
    token = encode_es256(payload, signer, kid=kid, headers={"typ": None})
    with pytest.raises(QrTokenMalformed) as info:
        verify_qr_token(token, keys)
    assert info.value.extra["reason"] == "payload" and isinstance(info.value, InvalidQrToken)


def test_claims_validation():
    with pytest.raises(ValueError):
        QrClaims(identifier=IDENTIFIER, issued_on=ISSUED, expires_on=date(2025, 5, 21), digest_prefix=bytes(16))
    with pytest.raises(ValueError):
        QrClaims(identifier=IDENTIFIER, issued_on=ISSUED, expires_on=None, digest_prefix=bytes(32))
    with pytest.raises(ValueError):
        QrClaims(identifier=IDENTIFIER, issued_on=date(1969, 12, 31), expires_on=None, digest_prefix=bytes(16))


def test_long_kid_refused(signer):
    with pytest.raises(ValueError):
        QrTokenSigner(signer, "x" * 43)


def test_rsa_signer_refused(tmp_path, claims):
    rsa = FileKeyStore(tmp_path, PASSPHRASE, create=True).generate("rsa", KeyAlgorithm.RSA_2048)
    with pytest.raises(UnsupportedAlgorithm):
        QrTokenSigner(rsa, "rsa").sign(claims)


def test_key_id_is_stable_and_short(signer):
    assert qr_key_id(signer.public_key) == qr_key_id(signer.public_key) and len(qr_key_id(signer.public_key)) == 8
    assert qr_key_id(ec.generate_private_key(ec.SECP256R1()).public_key()) != qr_key_id(signer.public_key)
