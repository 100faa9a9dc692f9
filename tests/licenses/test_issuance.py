"""Issuing licenses end to end (validate, render, sign, store) and their lifecycle, with the tools
nobody here wrote reading the result: pdfsig, zbarimg, pdffonts, pdftotext, pyHanko's validator."""

from __future__ import annotations

import asyncio
import hashlib
import io
import subprocess
from datetime import date, timedelta
from pathlib import Path

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives.serialization import Encoding
from jwt.algorithms import ECAlgorithm
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.fields import MDPPerm
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko.sign.validation.dss import DocumentSecurityStore

from api.licenses import issuer_of, license_service, qr_jwks
from eauth.errors import (
    Forbidden,
    InvalidInput,
    InvalidLicenseData,
    LicenseStatusConflict,
    NotFound,
    RequestKeyReused,
)
from licenses.issuance import Actor, Issuer, effective_status
from licenses.token import verify_qr_token
from store.ca_store import SqlCaStore
from store.license_store import SqlLicenseStore
from tests.conftest import require_seal_font, require_tool
from tests.helpers import citizen_id, credit_code


def driver(number: str | None = None, **changes) -> dict:
    return {"name": "张三", "sex": "男", "nationality": "中国", "birth_date": "1990-01-02",
            "citizen_id": number or citizen_id(), "vehicle_class": "C1", "first_issued_on": "2012-03-04"} | changes


def enterprise(code: str | None = None, **changes) -> dict:
    return {"name": "深圳市示例科技有限公司", "credit_code": code or credit_code(), "entity_type": "有限责任公司",
            "legal_representative": "王五", "registered_capital": "100", "established_on": "2015-06-01",
            "address": "广东省深圳市南山区科技园路1号",
            "business_scope": "软件开发；信息技术咨询服务；数据处理和存储支持服务。" * 6} | changes


@pytest.fixture(scope="module")
def service(platform):
    require_seal_font()
    return license_service(platform)


@pytest.fixture(scope="module")
def actor(licensing):
    return Actor(agency_id=licensing.agency.id, name="client:test")


@pytest.fixture(scope="module")
def business(service, licensing, actor):
    """A business license and its PDF, issued once for the module."""
    issued = service.issue(issuer_of(licensing.agency), type_code=licensing.business.code, fields=enterprise(),
                           actor=actor)
    return issued, service.pdf(issued.version)


def write(tmp_path: Path, pdf: bytes) -> Path:
    path = tmp_path / "license.pdf"
    path.write_bytes(pdf)
    return path


def test_issued_record(business, licensing):
    issued, pdf = business
    license, version = issued.license, issued.version
    assert license.identifier == version.identifier
    assert license.identifier.startswith(f"1.2.156.3005.2.{licensing.business.code}.{licensing.agency.credit_code}.")
    assert license.status == "valid" and license.version == 1
    assert version.pdf_size == len(pdf)
    assert version.pdf_sha256 == hashlib.sha256(pdf).hexdigest()
    assert version.seal_serial == licensing.seal.serial


def test_pdfsig_valid_total_trusted(business, nss_db, tmp_path):
    pdfsig = require_tool("pdfsig")
    report = subprocess.run([pdfsig, "-no-ocsp", "-nssdir", f"sql:{nss_db}", str(write(tmp_path, business[1]))],
                            capture_output=True, text=True).stdout
    assert "Signature is Valid" in report, report
    assert "Total document signed" in report, report
    assert "Certificate is Trusted" in report, report


def test_certified_no_changes_b_lt_with_embedded_data(business, platform):
    with platform.db.session() as session:
        root = SqlCaStore(session).authority("root").certificate
    # Revocation checking required, nothing fetched: it passes only with what the DSS holds.
    reader = PdfFileReader(io.BytesIO(business[1]))
    kwargs = {"trust_roots": [asn1_x509.Certificate.load(root.public_bytes(Encoding.DER))],
              "allow_fetching": False, "revocation_mode": "hard-fail"}
    contexts = [DocumentSecurityStore.read_dss(reader).as_validation_context(kwargs) for _ in range(2)]
    status = asyncio.run(async_validate_pdf_signature(reader.embedded_signatures[0], contexts[0],
                                                      ts_validation_context=contexts[1]))
    assert status.intact and status.valid and status.trusted, status.pretty_print_details()
    assert reader.embedded_signatures[0].docmdp_level is MDPPerm.NO_CHANGES  # certified: no changes
    assert status.docmdp_ok
    assert status.timestamp_validity is not None and status.timestamp_validity.valid


def test_qr_read_from_the_page_and_token_verifies(business, platform, tmp_path):
    pdftoppm, zbarimg = require_tool("pdftoppm"), require_tool("zbarimg")
    subprocess.run([pdftoppm, "-r", "150", "-png", str(write(tmp_path, business[1])), str(tmp_path / "page")],
                   check=True)
    page = next(tmp_path.glob("page*.png"))
    url = subprocess.run([zbarimg, "--raw", "-q", str(page)], capture_output=True, text=True, check=True).stdout.strip()
    assert url == f"{platform.settings.public_base_url}/v/{business[0].version.qr_token}"
    jwk = qr_jwks(platform)["keys"][0]
    claims = verify_qr_token(url.rsplit("/", 1)[1], {jwk["kid"]: ECAlgorithm.from_jwk(jwk)})
    assert str(claims.identifier) == business[0].license.identifier
    assert claims.binds(bytes.fromhex(business[0].version.digest))


def test_fonts_embedded_and_chinese_text_extractable(business, tmp_path):
    pdffonts, pdftotext = require_tool("pdffonts"), require_tool("pdftotext")
    path = write(tmp_path, business[1])
    fonts = subprocess.run([pdffonts, str(path)], capture_output=True, text=True, check=True).stdout.splitlines()[2:]
    assert fonts and all(" yes yes " in line for line in fonts), fonts
    text = subprocess.run([pdftotext, str(path), "-"], capture_output=True, text=True, check=True).stdout
    compact = "".join(text.split())
    for value in ("深圳市示例科技有限公司", "王五", "广东省深圳市南山区科技园路1号", "软件开发；信息技术咨询服务"):
        assert value in compact, value


def test_same_request_key_same_license(service, licensing, actor):
    fields = driver()
    first = service.issue(issuer_of(licensing.agency), type_code=licensing.driving.code, fields=fields,
                          actor=actor, request_key="crm-1")
    again = service.issue(issuer_of(licensing.agency), type_code=licensing.driving.code, fields=fields,
                          actor=actor, request_key="crm-1")
    assert first.created and not again.created
    assert again.license.id == first.license.id and again.version.pdf_sha256 == first.version.pdf_sha256
    with pytest.raises(RequestKeyReused):
        service.issue(issuer_of(licensing.agency), type_code=licensing.driving.code, fields=driver(),
                      actor=actor, request_key="crm-1")


def counts(platform) -> tuple[int, int, int]:
    from sqlalchemy import func, select

    from store.models import License, LicenseEvent, LicenseVersion

    with platform.db.session() as session:
        return tuple(session.scalar(select(func.count()).select_from(t)) for t in (License, LicenseVersion, LicenseEvent))


@pytest.mark.parametrize("fields, error, field", [
    (driver(citizen_id="11010519491231002Y"), InvalidLicenseData, "citizen_id"),  # bad check character
    ({k: v for k, v in driver().items() if k != "sex"}, InvalidLicenseData, "sex"),
    (driver(birth_date="1990-02-30"), InvalidLicenseData, "birth_date"),
    (driver(vehicle_class="Z9"), InvalidLicenseData, "vehicle_class"),
    (driver(colour="blue"), InvalidLicenseData, "colour"),
])
def test_bad_fields_issue_nothing(service, licensing, actor, platform, fields, error, field):
    before = counts(platform)
    with pytest.raises(error) as raised:
        service.issue(issuer_of(licensing.agency), type_code=licensing.driving.code, fields=fields, actor=actor)
    assert field in str(raised.value.extra)
    assert counts(platform) == before


def test_unknown_type_and_a_type_of_another_agency(service, licensing, actor, agency):
    with pytest.raises(NotFound):
        service.issue(issuer_of(licensing.agency), type_code=credit_code() + "001", fields=driver(), actor=actor)
    other = Issuer(agency_id=agency.id, name=agency.name, credit_code=credit_code())
    with pytest.raises(Forbidden):
        service.issue(other, type_code=licensing.driving.code, fields=driver(),
                      actor=Actor(agency_id=other.agency_id, name="x"))


def test_lifecycle_events_and_conflicts(service, licensing, actor, platform):
    issued = service.issue(issuer_of(licensing.agency), type_code=licensing.driving.code, fields=driver(), actor=actor)
    license_id = issued.license.id
    assert service.change_status(license_id, "suspend", actor=actor).status == "suspended"
    with pytest.raises(LicenseStatusConflict):
        service.change_status(license_id, "suspend", actor=actor)
    assert service.change_status(license_id, "reinstate", actor=actor).status == "valid"
    with pytest.raises(InvalidInput, match="reason"):
        service.change_status(license_id, "revoke", actor=actor)
    revoked = service.change_status(license_id, "revoke", actor=actor, reason="fraudulently obtained")
    assert revoked.status == "revoked" and revoked.status_reason == "fraudulently obtained"
    with pytest.raises(LicenseStatusConflict):
        service.change_status(license_id, "revoke", actor=actor, reason="again")
    with pytest.raises(LicenseStatusConflict):
        service.amend(license_id, issuer_of(licensing.agency), fields=driver(), actor=actor)
    with platform.db.transaction() as connection:
        events = SqlLicenseStore(connection).events(license_id)
    assert [e.action for e in events] == ["issue", "suspend", "reinstate", "revoke"]
    assert all(e.actor == "client:test" and e.at is not None for e in events)
    with pytest.raises(NotFound):  # another agency cannot touch it
        service.change_status(license_id, "cancel", actor=Actor(agency_id=licensing.agency.id + 10_000, name="x"))


def test_amend_supersedes_the_previous_version(service, licensing, actor, platform):
    number = citizen_id()
    issued = service.issue(issuer_of(licensing.agency), type_code=licensing.driving.code, fields=driver(number),
                           actor=actor)
    amended = service.amend(issued.license.id, issuer_of(licensing.agency),
                            fields=driver(number, vehicle_class="B2"), actor=actor)
    assert amended.license.version == 2 and amended.license.identifier.split(".")[-2] == "002"
    assert amended.license.identifier.rsplit(".", 2)[0] == issued.license.identifier.rsplit(".", 2)[0]
    with platform.db.transaction() as connection:
        store = SqlLicenseStore(connection)
        license, old = store.license_by_identifier(issued.license.identifier)
        assert old.superseded_at is not None
        assert effective_status(license, date.today(), version=old) == "superseded"
        assert service.cipher.decrypt(store.version(license.id, 2))["vehicle_class"] == "B2"
    with pytest.raises(Exception) as raised:  # the holder's number cannot change
        service.amend(issued.license.id, issuer_of(licensing.agency), fields=driver(), actor=actor)
    assert "holder" in str(raised.value)


def test_expiry_from_the_validity_rule(service, licensing, actor):
    issued = service.issue(issuer_of(licensing.agency), type_code=licensing.driving.code, fields=driver(), actor=actor)
    assert issued.license.valid_until == issued.version.issued_on.replace(year=issued.version.issued_on.year + 6)
    later = issued.license.valid_until + timedelta(days=1)
    assert effective_status(issued.license, later) == "expired"
    long_term = service.issue(issuer_of(licensing.agency), type_code=licensing.business.code, fields=enterprise(),
                              actor=actor)
    assert long_term.license.valid_until is None  # no 营业期限: 长期


def test_wallet_finds_the_holders_licenses(service, licensing, actor, platform):
    number = citizen_id()
    issued = service.issue(issuer_of(licensing.agency), type_code=licensing.driving.code, fields=driver(number),
                           actor=actor)
    with platform.db.transaction() as connection:
        found = SqlLicenseStore(connection).licenses_of_holder("person", service.holder_index("person", number))
    assert [license.id for license in found] == [issued.license.id]


def test_bad_holder_number_names_the_field(service, licensing, actor):
    with pytest.raises(InvalidLicenseData) as raised:
        service.issue(issuer_of(licensing.agency), type_code=licensing.business.code,
                      fields=enterprise("91440300MA5DC1234X"), actor=actor)
    assert raised.value.extra["field"] == "credit_code"
