"""License types: the demo types accept real data, every kind of bad input names its field, the JSON
form round-trips and a wrong schema is refused saying where."""

import copy
import hashlib
import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from eauth.errors import InvalidLicenseData, InvalidLicenseType
from licenses.catalog import (
    BUSINESS_LICENSE_CODE,
    DRIVING_LICENCE_CODE,
    FieldSpec,
    FieldType,
    FixedTerm,
    HolderKind,
    LicenseType,
    LongTerm,
    UntilField,
    demo_types,
    expiry,
    license_digest,
    validate_fields,
)

_VECTORS_PATH = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "identifiers.json"
if not _VECTORS_PATH.is_file():
    pytest.skip(f"real identifier vectors not found at {_VECTORS_PATH}", allow_module_level=True)
VECTORS = json.loads(_VECTORS_PATH.read_text(encoding="utf-8"))
CITIZEN_IDS = VECTORS["citizen_id_gb11643_valid"]
CREDIT_CODES = VECTORS["uscc_gb32100_valid"]

BUSINESS, DRIVING = demo_types("demo-amr")
COMPANY = {
    "name": "深圳市示例科技有限公司",
    "credit_code": CREDIT_CODES[5].lower(),  # 9144030071526726XG, an enterprise
    "entity_type": "有限责任公司",
    "legal_representative": "张三",
    "registered_capital": "5000",
    "established_on": "1999-04-15",
    "valid_until": date(2049, 4, 14),
    "address": "深圳市南山区科技园路1号",
    "business_scope": "  计算机软硬件的技术开发；\r\n信息系统集成服务。 ",
}
DRIVER = {
    "name": "李四",
    "sex": "女",
    "nationality": "中国",
    "birth_date": "1949-12-31",
    "citizen_id": CITIZEN_IDS[0][:17] + "x",  # 11010519491231002X with a lowercase check
    "vehicle_class": "C1",
    "first_issued_on": "2010-03-10",
}


def refused(license_type: LicenseType, data: dict) -> InvalidLicenseData:
    with pytest.raises(InvalidLicenseData) as info:
        validate_fields(license_type, data)
    error = info.value
    assert error.code == "invalid_license_data"
    assert error.extra["field"] == error.extra["errors"][0]["field"]
    return error


def schema_refused(obj) -> InvalidLicenseType:
    with pytest.raises(InvalidLicenseType) as info:
        LicenseType.from_json(obj)
    assert info.value.code == "invalid_license_type"
    return info.value


def test_demo_types():
    assert (BUSINESS.code, DRIVING.code) == (BUSINESS_LICENSE_CODE, DRIVING_LICENCE_CODE)
    assert (BUSINESS.holder_kind, DRIVING.holder_kind) == (HolderKind.ENTERPRISE, HolderKind.PERSON)
    assert BUSINESS.agency_code == DRIVING.agency_code == "demo-amr"
    assert BUSINESS.field_specs["credit_code"].type is FieldType.CREDIT_CODE
    assert DRIVING.field_specs["citizen_id"].type is FieldType.CITIZEN_ID


def test_business_license_accepts_real_data_normalised():
    values = validate_fields(BUSINESS, COMPANY)
    assert values["credit_code"] == "9144030071526726XG"
    assert values["valid_until"] == "2049-04-14" and values["established_on"] == "1999-04-15"
    assert values["business_scope"] == "计算机软硬件的技术开发；\n信息系统集成服务。"
    assert values["registered_capital"] == "5000"
    assert all(isinstance(v, str) for v in values.values())


@pytest.mark.parametrize("credit_code", CREDIT_CODES)
def test_business_license_accepts_every_real_credit_code(credit_code):
    assert validate_fields(BUSINESS, COMPANY | {"credit_code": credit_code})["credit_code"] == credit_code


def test_optional_fields_left_out_when_empty():
    values = validate_fields(BUSINESS, COMPANY | {"valid_until": None, "registered_capital": "  "})
    assert "valid_until" not in values and "registered_capital" not in values


@pytest.mark.parametrize("citizen_id", CITIZEN_IDS)
def test_driving_licence_accepts_real_citizen_ids(citizen_id):
    assert validate_fields(DRIVING, DRIVER | {"citizen_id": citizen_id})["citizen_id"] == citizen_id


def test_driving_licence_normalises_the_check_x():
    assert validate_fields(DRIVING, DRIVER)["citizen_id"] == "11010519491231002X"


@pytest.mark.parametrize(("field", "value", "words"), [
    ("name", 42, "must be a string"),
    ("name", "深圳市\n示例", "one line"),
    ("name", "名" * 101, "at most 100"),
    ("business_scope", "经营\x00范围", "control characters"),
    ("entity_type", "有限公司", "not one of"),
    ("established_on", "1999/04/15", "YYYY-MM-DD"),
    ("established_on", "1999-02-30", "YYYY-MM-DD"),
    ("established_on", "19990415", "YYYY-MM-DD"),
    ("established_on", 19990415, "must be a string"),
    ("registered_capital", "5千", "decimal"),
    ("registered_capital", "1e3", "decimal"),
    ("registered_capital", float("nan"), "finite"),
    ("registered_capital", True, "decimal"),
    ("credit_code", "9144030071526726XH", "position 18"),
    ("credit_code", "9144030071526726", "18 characters"),
])
def test_bad_business_data_names_the_field(field, value, words):
    error = refused(BUSINESS, COMPANY | {field: value})
    assert error.extra["field"] == field and words in error.detail and field in error.detail
    assert error.extra["errors"] == [{"field": field, "detail": error.detail}]


@pytest.mark.parametrize(("field", "value", "words"), [
    ("citizen_id", CITIZEN_IDS[0][:17] + "1", "position 18"),
    ("citizen_id", "11010519491331002X", "month"),
    ("citizen_id", "110105194912310", "18 characters"),
    ("sex", "M", "not one of 男, 女"),
    ("vehicle_class", "C9", "not one of"),
    ("birth_date", date(1949, 12, 31).isoformat() + "T00:00", "YYYY-MM-DD"),
])
def test_bad_driver_data_names_the_field(field, value, words):
    error = refused(DRIVING, DRIVER | {field: value})
    assert error.extra["field"] == field and words in error.detail


def test_datetime_is_not_a_date():
    assert refused(DRIVING, DRIVER | {"birth_date": datetime(1949, 12, 31)}).extra["field"] == "birth_date"


def test_missing_required_and_unknown_fields_all_reported():
    data = {k: v for k, v in DRIVER.items() if k not in ("name", "citizen_id")} | {"nam": "李四", "sex": "X"}
    error = refused(DRIVING, data)
    assert [e["field"] for e in error.extra["errors"]] == ["nam", "name", "sex", "citizen_id"]
    assert "unknown field 'nam'" in error.detail and "3 more" in error.detail
    assert "required" in error.extra["errors"][1]["detail"]


def test_blank_required_field_is_missing():
    assert "required" in refused(DRIVING, DRIVER | {"name": "   "}).detail


def test_integer_decimal_and_pattern_normalisation():
    kind = LicenseType(
        code=BUSINESS_LICENSE_CODE, name_zh="测试", name_en="Test", agency_code="demo", holder_kind="enterprise",
        holder_field="code", holder_name_field="name", validity=LongTerm(),
        fields=(
            FieldSpec(name="name", label_zh="名称", label_en="Name"),
            FieldSpec(name="code", label_zh="代码", label_en="Code", type="credit_code"),
            FieldSpec(name="count", label_zh="数量", label_en="Count", type=FieldType.INTEGER, required=False),
            FieldSpec(name="amount", label_zh="金额", label_en="Amount", type=FieldType.DECIMAL, required=False),
            FieldSpec(name="plate", label_zh="号牌", label_en="Plate", required=False, pattern=r"[京沪粤][A-Z]\d{5}"),
        ),
    )
    base = {"name": "某公司", "code": CREDIT_CODES[5]}
    values = validate_fields(kind, base | {"count": "+007", "amount": 100.5, "plate": "粤B12345"})
    assert (values["count"], values["amount"], values["plate"]) == ("7", "100.5", "粤B12345")
    assert validate_fields(kind, base | {"count": -3, "amount": Decimal("1E+3")})["amount"] == "1000"
    assert validate_fields(kind, base | {"amount": "0012.50"})["amount"] == "12.50"
    assert "pattern" in refused(kind, base | {"plate": "粤b12345"}).detail
    assert refused(kind, base | {"count": "1.5"}).extra["field"] == "count"
    assert refused(kind, base | {"count": 2.0}).extra["field"] == "count"


def test_expiry_rules():
    issued = date(2024, 2, 29)
    assert expiry(DRIVING, validate_fields(DRIVING, DRIVER), issued) == date(2030, 2, 28)
    assert expiry(BUSINESS, validate_fields(BUSINESS, COMPANY), issued) == date(2049, 4, 14)
    assert expiry(BUSINESS, validate_fields(BUSINESS, COMPANY | {"valid_until": None}), issued) is None
    assert FixedTerm(years=1, months=1, days=1).expiry(date(2024, 12, 31)) == date(2026, 2, 1)
    assert FixedTerm(months=14).expiry(date(2024, 1, 31)) == date(2025, 3, 31)
    with pytest.raises(InvalidLicenseData) as info:
        expiry(BUSINESS, validate_fields(BUSINESS, COMPANY | {"valid_until": "2020-01-01"}), issued)
    assert info.value.extra["field"] == "valid_until"


@pytest.mark.parametrize("license_type", [BUSINESS, DRIVING], ids=lambda t: t.name_en)
def test_json_round_trip(license_type):
    obj = license_type.to_json()
    assert json.loads(json.dumps(obj, ensure_ascii=False)) == obj  # plain JSON values only
    assert LicenseType.from_json(obj) == license_type
    assert LicenseType.from_json(obj).to_json() == obj


def test_from_json_fills_defaults():
    obj = DRIVING.to_json()
    del obj["layout"]
    obj["fields"] = [{"name": "name", "label_zh": "姓名", "label_en": "Name"}, obj["fields"][4]]
    obj["validity"] = {"kind": "fixed_term", "years": 6}
    kind = LicenseType.from_json(obj)
    assert kind.layout == "standard" and kind.fields[0].type is FieldType.STRING and kind.fields[0].required
    assert kind.validity == FixedTerm(years=6)


def _with(change) -> dict:
    obj = copy.deepcopy(BUSINESS.to_json())
    change(obj)
    return obj


@pytest.mark.parametrize(("change", "path", "words"), [
    (lambda o: o["fields"].append(dict(o["fields"][0])), "fields", "defined twice"),
    (lambda o: o.update(holder_field="name"), "holder_field", "credit_code field"),
    (lambda o: o.update(holder_field="nobody"), "holder_field", "not one of the fields"),
    (lambda o: o.update(holder_name_field="established_on"), "holder_name_field", "string field"),
    (lambda o: o.update(holder_kind="person"), "holder_field", "citizen_id field"),
    (lambda o: o.update(holder_kind="robot"), "holder_kind", "not one of"),
    (lambda o: o["fields"][2].update(type="set"), "fields[2].type", "unknown type 'set'"),
    (lambda o: o["fields"][2].update(choices=[]), "fields[2].choices", "needs choices"),
    (lambda o: o["fields"][2].update(choices=["a", "a"]), "fields[2].choices", "twice"),
    (lambda o: o["fields"][2].update(choices=["a", 1]), "fields[2].choices", "list of strings"),
    (lambda o: o["fields"][0].update(choices=["a"]), "fields[0].choices", "for enum fields"),
    (lambda o: o["fields"][0].update(name="Legal Rep"), "fields[0].name", "a-z"),
    (lambda o: o["fields"][0].update(max_length=0), "fields[0].max_length", "positive"),
    (lambda o: o["fields"][0].update(max_length=True), "fields[0].max_length", "int or null"),
    (lambda o: o["fields"][0].update(pattern="(["), "fields[0].pattern", "not a regular expression"),
    (lambda o: o["fields"][0].update(label_zh=""), "fields[0].label_zh", "non-empty"),
    (lambda o: o["fields"][0].update(colour="red"), "fields[0]", "unknown member(s) colour"),
    (lambda o: o["fields"][0].pop("name"), "fields[0].name", "missing"),
    (lambda o: o.update(fields=[]), "fields", "at least one field"),
    (lambda o: o.update(fields={}), "fields", "must be list"),
    (lambda o: o.update(code="11100000000013338W90"), "code", "3 digits"),
    (lambda o: o.update(code="11100000000013338X901"), "code", "position 18"),
    (lambda o: o.update(agency_code="市场监管局"), "agency_code", "ASCII"),
    (lambda o: o.update(layout="Standard Layout"), "layout", "a-z"),
    (lambda o: o.update(validity={"kind": "forever"}), "validity.kind", "not one of"),
    (lambda o: o.update(validity={"kind": "until_field", "field": "name"}), "validity.field", "date fields"),
    (lambda o: o.update(validity={"kind": "until_field"}), "validity.field", "missing"),
    (lambda o: o.update(validity={"kind": "fixed_term"}), "validity", "cannot be zero"),
    (lambda o: o.update(validity={"kind": "fixed_term", "years": -1}), "validity", "non-negative"),
    (lambda o: o.update(validity={"kind": "long_term", "years": 1}), "validity", "unknown member(s) years"),
    (lambda o: o.pop("name_zh"), "name_zh", "missing"),
    (lambda o: o.update(extra=1), "", "unknown member(s) extra"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_schema_errors_say_where(change, path, words):
    error = schema_refused(_with(change))
    assert error.extra["path"] == path and words in error.detail, (error.extra, error.detail)


def test_schema_error_names_the_field():
    error = schema_refused(_with(lambda o: o["fields"][2].update(choices=[])))
    assert error.extra["field"] == "entity_type"


def test_not_an_object():
    assert schema_refused([1, 2]).extra["path"] == ""
    assert schema_refused(_with(lambda o: o["fields"].append("name"))).extra["path"] == "fields[9]"


def test_validity_rules_direct():
    assert isinstance(BUSINESS.validity, UntilField) and BUSINESS.validity.field == "valid_until"
    assert DRIVING.validity == FixedTerm(years=6)


def test_license_digest_is_sha256_of_canonical_json():
    fields = {"name": "李四", "citizen_id": "11010519491231002X"}
    digest = license_digest(identifier="1.2.156.3005.2.X", type_code=DRIVING_LICENCE_CODE, fields=fields)
    canonical = ('{"fields":{"citizen_id":"11010519491231002X","name":"李四"},'
                 f'"identifier":"1.2.156.3005.2.X","type_code":"{DRIVING_LICENCE_CODE}"}}')
    assert digest == hashlib.sha256(canonical.encode("utf-8")).digest()
    reordered = dict(reversed(list(fields.items())))
    assert license_digest(identifier="1.2.156.3005.2.X", type_code=DRIVING_LICENCE_CODE, fields=reordered) == digest
    changed = fields | {"name": "李五"}
    assert license_digest(identifier="1.2.156.3005.2.X", type_code=DRIVING_LICENCE_CODE, fields=changed) != digest


def test_a_lone_surrogate_is_refused_naming_the_field():
    from licenses.catalog import demo_types

    driving = demo_types("demo-amr")[1]
    fields = {"name": "\ud800", "sex": "男", "nationality": "中国", "birth_date": "1949-12-31",
              "citizen_id": "11010519491231002X", "vehicle_class": "C1", "first_issued_on": "2010-05-01"}
    with pytest.raises(InvalidLicenseData) as raised:
        validate_fields(driving, fields)
    assert raised.value.extra["field"] == "name" and "Unicode" in str(raised.value)
