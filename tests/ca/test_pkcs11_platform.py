"""The whole platform with its keys in an HSM (SoftHSM2): init, issuance in process and over HTTP,
chains that openssl accepts, and no key material in the data dir."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from fastapi.testclient import TestClient

from api.http import create_app
from api.platform import Platform, initialize_platform
from ca.profiles import SubjectKind
from ca.subjects import SubjectIdentity
from eauth.settings import Settings
from store.agencies import add_agency
from store.ca_store import SqlCaStore
from tests.conftest import fresh_database, require_tool, token_for
from tests.helpers import citizen_id, credit_code, ec_csr

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def hsm_platform(softhsm_token, tmp_path_factory):
    module, label, pin = softhsm_token
    data_dir = tmp_path_factory.mktemp("hsm-data")
    databases = fresh_database(data_dir)
    settings = Settings(_env_file=None, data_dir=data_dir, database_url=next(databases), key_backend="pkcs11",
                        pkcs11_module=module, pkcs11_token=label, pkcs11_pin=pin)
    result, _ = initialize_platform(settings)
    assert "root" in result.created
    platform = Platform.open(settings)
    yield platform
    platform.close()
    databases.close()


def _openssl_verify(tmp_path: Path, platform: Platform, leaf: x509.Certificate, issuer: str) -> None:
    with platform.db.session() as session:
        store = SqlCaStore(session)
        for name in ("root", issuer):
            (tmp_path / f"{name}.pem").write_bytes(store.authority(name).certificate.public_bytes(Encoding.PEM))
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(Encoding.PEM))
    result = subprocess.run(
        [require_tool("openssl"), "verify", "-x509_strict", "-CAfile", tmp_path / "root.pem",
         "-untrusted", tmp_path / f"{issuer}.pem", tmp_path / "leaf.pem"],
        capture_output=True, text=True,
    )
    assert result.returncode == 0 and ": OK" in result.stdout, result.stdout + result.stderr


def test_init_is_idempotent_on_the_token(hsm_platform):
    result, migrated = initialize_platform(hsm_platform.settings)
    assert result.created == () and not migrated


def test_issue_in_process_with_hsm_keys(hsm_platform, tmp_path):
    with hsm_platform.db.session() as session:
        agency = add_agency(session, code="hsm-ra", name="HSM RA", credit_code=None)
        issued = hsm_platform.ca.issue(SqlCaStore(session), profile_name="citizen", requested_by=agency.id,
                                       csr=ec_csr()[0], subject=SubjectIdentity(SubjectKind.PERSON, "赵六", citizen_id()))
    _openssl_verify(tmp_path, hsm_platform, issued.record.certificate, "citizen")


def test_seal_key_made_and_kept_on_the_token(hsm_platform, tmp_path):
    with hsm_platform.db.session() as session:
        agency = add_agency(session, code="hsm-seal", name="HSM Seal Agency", credit_code=None)
        issued = hsm_platform.ca.issue(SqlCaStore(session), profile_name="agency-seal", requested_by=agency.id,
                                       subject=SubjectIdentity(SubjectKind.AGENCY, "某市人民政府", credit_code()))
    assert issued.pkcs12 is None and issued.record.key_label
    signer = hsm_platform.keys.signer(issued.record.key_label)
    assert signer.public_key.public_numbers() == issued.record.certificate.public_key().public_numbers()
    _openssl_verify(tmp_path, hsm_platform, issued.record.certificate, "seal")


def test_issue_over_http_with_hsm_keys(hsm_platform, tmp_path):
    with hsm_platform.db.session() as session:
        add_agency(session, code="hsm-http", name="HSM HTTP RA", credit_code=None)
    with TestClient(create_app(platform=hsm_platform)) as api:
        token = token_for(api, hsm_platform, "hsm-http", {"certificates:issue"})
        response = api.post("/api/v1/certificates", headers={"Authorization": f"Bearer {token}"},
                            json={"profile": "enterprise", "name": "某某科技有限公司", "id_number": credit_code(),
                                  "pkcs12_password": "a long password"})
    assert response.status_code == 201, response.text
    from cryptography.hazmat.primitives.serialization import pkcs12

    key, cert, _ = pkcs12.load_key_and_certificates(base64.b64decode(response.json()["pkcs12"]), b"a long password")
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    _openssl_verify(tmp_path, hsm_platform, cert, "enterprise")


def test_no_key_material_in_the_data_dir(hsm_platform):
    files = [p for p in Path(hsm_platform.settings.data_dir).rglob("*") if p.is_file()]
    assert not any("key" in p.name for p in files), files
