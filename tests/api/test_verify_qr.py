"""QR verification: the relying-party API and the public page, for genuine, revoked, superseded,
forged and foreign tokens."""

from __future__ import annotations

import base64
from datetime import date

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from keys.base import KeyAlgorithm, SoftwareKeySigner
from licenses.identifiers import LicenseIdentifier
from licenses.token import QrClaims, QrTokenSigner, qr_key_id
from tests.conftest import require_seal_font, token_for
from tests.helpers import assert_problem, citizen_id
from tests.licenses.test_issuance import driver
from verify.qr import mask_name


@pytest.fixture(scope="module")
def verifier(api, platform, licensing):
    require_seal_font()
    return {"Authorization": f"Bearer {token_for(api, platform, licensing.agency.code, {'verify'})}"}


def issued(api, licensing, fields=None) -> dict:
    response = api.post("/api/v1/licenses", json={"type_code": licensing.driving.code, "fields": fields or driver()},
                        headers=licensing.headers)
    assert response.status_code == 201, response.text
    return response.json()


def token_of(license: dict) -> str:
    return license["current"]["qr_url"].rsplit("/", 1)[1]


def test_genuine_license_is_valid(api, licensing, verifier):
    license = issued(api, licensing, driver(name="欧阳娜娜"))
    report = api.get(f"/api/v1/verify/qr/{token_of(license)}", headers=verifier).json()
    assert report["valid"] and report["status"] == "valid" and report["signature_valid"]
    assert report["license"]["identifier"] == license["identifier"]
    assert report["license"]["holder"] == "欧**娜"  # masked: the QR is on paper
    assert report["license"]["type_name"] == "机动车驾驶证" and report["license"]["issuer_name"] == licensing.agency.name
    page = api.get(f"/v/{token_of(license)}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "有效" in page.text and 'data-status="valid"' in page.text and "欧阳娜娜" not in page.text
    assert "<script" not in page.text and page.headers["cache-control"] == "no-store"


def test_revoked_and_superseded(api, licensing, verifier):
    revoked = issued(api, licensing)
    api.post(f"/api/v1/licenses/{revoked['id']}/revoke", json={"reason": "lost"}, headers=licensing.headers)
    report = api.get(f"/api/v1/verify/qr/{token_of(revoked)}", headers=verifier).json()
    assert (report["status"], report["valid"], report["signature_valid"]) == ("revoked", False, True)
    assert 'data-status="revoked"' in api.get(f"/v/{token_of(revoked)}").text

    number = citizen_id()
    old = issued(api, licensing, driver(number))
    new = api.post(f"/api/v1/licenses/{old['id']}/amend", json={"fields": driver(number, vehicle_class="B1")},
                   headers=licensing.headers).json()
    report = api.get(f"/api/v1/verify/qr/{token_of(old)}", headers=verifier).json()
    assert report["status"] == "superseded" and report["license"]["current_identifier"] == new["identifier"]
    assert api.get(f"/api/v1/verify/qr/{token_of(new)}", headers=verifier).json()["status"] == "valid"


def test_forged_and_foreign_tokens(api, licensing, verifier):
    genuine = token_of(issued(api, licensing))
    header, payload, signature = genuine.split(".")
    altered = bytearray(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    altered[-1] ^= 1
    forged = ".".join((header, base64.urlsafe_b64encode(bytes(altered)).rstrip(b"=").decode(), signature))
    report = api.get(f"/api/v1/verify/qr/{forged}", headers=verifier).json()
    assert report["status"] == "invalid" and report["error_code"] == "qr_token_bad_signature"

    stranger = SoftwareKeySigner("stranger", KeyAlgorithm.EC_P256, ec.generate_private_key(ec.SECP256R1()))
    claims = QrClaims(identifier=LicenseIdentifier.parse(issued(api, licensing)["identifier"]),
                      issued_on=date.today(), expires_on=None, digest_prefix=bytes(16))
    foreign = QrTokenSigner(stranger, qr_key_id(stranger.public_key)).sign(claims)
    report = api.get(f"/api/v1/verify/qr/{foreign}", headers=verifier).json()
    assert report["status"] == "invalid" and report["error_code"] == "qr_token_unknown_key"
    for bad in ("garbage", "a.b.c", "x" * 2000):
        assert api.get(f"/api/v1/verify/qr/{bad}", headers=verifier).json()["status"] == "invalid"
        assert api.get(f"/v/{bad}").status_code == 200


def test_the_api_needs_the_verify_scope(api, licensing):
    assert_problem(api.get("/api/v1/verify/qr/abc", headers=licensing.headers), 403, "insufficient_scope")


@pytest.mark.parametrize("name, masked", [("张三", "张*"), ("李", "李"), ("欧阳娜娜", "欧**娜"),
                                          ("深圳市示例科技有限公司", "深圳***公司")])
def test_mask_name(name, masked):
    assert mask_name(name) == masked
