"""License types: what a type of electronic license holds, who holds it, and how long it is valid.

An agency defines its types (stored as JSON, accepted from the HTTP API) and every license issued is
validated against its type's field schema first, so the registry only holds normalised values
(ISO dates, upper-case identity numbers) and the QR digest of a license is reproducible.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from types import NoneType

from ca.identifiers import validate_citizen_id, validate_credit_code
from eauth.errors import InvalidIdentifier, InvalidLicenseData, InvalidLicenseIdentifier, InvalidLicenseType
from licenses.identifiers import validate_type_code


class FieldType(StrEnum):
    """The kinds of value a license field takes, each with its own normalisation."""

    STRING = "string"  # one line
    TEXT = "text"  # long, wrapped over several lines by the layout; may contain newlines
    DATE = "date"  # stored as YYYY-MM-DD
    INTEGER = "integer"
    DECIMAL = "decimal"  # fixed-point, no exponent
    ENUM = "enum"  # one of the field's choices
    CITIZEN_ID = "citizen_id"  # GB 11643, check character verified
    CREDIT_CODE = "credit_code"  # GB 32100, check characters verified


class HolderKind(StrEnum):
    """Who a license is issued to."""

    PERSON = "person"
    ENTERPRISE = "enterprise"


#: The field type that identifies a holder of each kind.
HOLDER_ID_TYPES = {HolderKind.PERSON: FieldType.CITIZEN_ID, HolderKind.ENTERPRISE: FieldType.CREDIT_CODE}

_FIELD_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_LAYOUT_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")
_AGENCY_CODE = re.compile(r"[A-Za-z0-9_-]{1,64}")  # as store.agencies.add_agency accepts
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_INTEGER = re.compile(r"[+-]?\d+")
_DECIMAL = re.compile(r"[+-]?\d+(\.\d+)?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BUT_NEWLINE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")


def _bad_type(detail: str, path: str, **extra: str) -> InvalidLicenseType:
    return InvalidLicenseType(detail, path=path, **extra)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldSpec:
    """One field of a license type: its key, its labels on the license, and the values it accepts."""

    name: str  # ASCII key, e.g. legal_representative
    label_zh: str
    label_en: str
    type: FieldType = FieldType.STRING
    required: bool = True
    max_length: int | None = None  # of the normalised value
    choices: tuple[str, ...] = ()  # enum only, in display order
    pattern: str | None = None  # a regular expression the whole normalised value must match

    def __post_init__(self) -> None:
        def fail(detail: str, attribute: str) -> InvalidLicenseType:
            return _bad_type(f"field {self.name!r}: {detail}", attribute, field=str(self.name))

        if not isinstance(self.name, str) or not _FIELD_NAME.fullmatch(self.name):
            raise fail("a field name is 1-64 characters a-z, 0-9, _ starting with a letter", "name")
        for attribute in ("label_zh", "label_en"):
            if not isinstance(getattr(self, attribute), str) or not getattr(self, attribute).strip():
                raise fail(f"{attribute} must be a non-empty string", attribute)
        try:
            object.__setattr__(self, "type", FieldType(self.type))
        except ValueError:
            raise fail(f"unknown type {self.type!r}; use one of {', '.join(FieldType)}", "type") from None
        if not isinstance(self.required, bool):
            raise fail("required must be true or false", "required")
        if self.max_length is not None and (not _is_count(self.max_length) or self.max_length == 0):
            raise fail("max_length must be a positive integer", "max_length")
        object.__setattr__(self, "choices", tuple(self.choices))
        if self.type is FieldType.ENUM:
            if not self.choices:
                raise fail("an enum field needs choices", "choices")
            if not all(isinstance(c, str) and c.strip() for c in self.choices):
                raise fail("choices must be non-empty strings", "choices")
            if len(set(self.choices)) != len(self.choices):
                raise fail("choices are listed twice", "choices")
        elif self.choices:
            raise fail(f"choices are for enum fields, not {self.type}", "choices")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except (re.error, TypeError) as exc:
                raise fail(f"pattern {self.pattern!r} is not a regular expression: {exc}", "pattern") from None

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name, "label_zh": self.label_zh, "label_en": self.label_en, "type": self.type.value,
            "required": self.required, "max_length": self.max_length, "choices": list(self.choices),
            "pattern": self.pattern,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class FixedTerm:
    """Valid for a fixed term from the issue date (a driving licence: 6 years)."""

    years: int = 0
    months: int = 0
    days: int = 0

    def __post_init__(self) -> None:
        if not all(_is_count(n) for n in (self.years, self.months, self.days)):
            raise _bad_type("a fixed term's years, months and days are non-negative integers", "validity")
        if not (self.years or self.months or self.days):
            raise _bad_type("a fixed term cannot be zero; use long_term for licenses that do not expire", "validity")

    def expiry(self, issued_on: date) -> date:
        """Issue date plus the term; a day that does not exist in the target month becomes its last day."""
        year, month = divmod(issued_on.month - 1 + self.years * 12 + self.months, 12)
        year, month = issued_on.year + year, month + 1
        day = min(issued_on.day, calendar.monthrange(year, month)[1])
        return date(year, month, day) + timedelta(days=self.days)


@dataclass(frozen=True, slots=True)
class UntilField:
    """Valid until the date in one of the license's own date fields (营业期限); long-term (长期) when empty."""

    field: str


@dataclass(frozen=True, slots=True)
class LongTerm:
    """Never expires (长期)."""


ValidityRule = FixedTerm | UntilField | LongTerm


@dataclass(frozen=True, slots=True, kw_only=True)
class LicenseType:
    """A type of electronic license an agency issues, with the schema its data follows."""

    code: str  # type code: the defining agency's credit code + 3 digits
    name_zh: str
    name_en: str
    agency_code: str  # the owning agency (store.agencies code)
    holder_kind: HolderKind
    holder_field: str  # the field with the holder's citizen ID (person) or credit code (enterprise)
    holder_name_field: str  # the field with the holder's name
    fields: tuple[FieldSpec, ...]
    validity: ValidityRule
    layout: str = "standard"  # the name of the layout template the license is rendered with

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "code", validate_type_code(self.code))
        except InvalidLicenseIdentifier as exc:
            raise _bad_type(exc.detail, "code") from None
        for attribute in ("name_zh", "name_en"):
            if not isinstance(getattr(self, attribute), str) or not getattr(self, attribute).strip():
                raise _bad_type(f"{attribute} must be a non-empty string", attribute)
        if not isinstance(self.agency_code, str) or not _AGENCY_CODE.fullmatch(self.agency_code):
            raise _bad_type("agency_code must be 1-64 ASCII letters, digits, '-' or '_'", "agency_code")
        try:
            object.__setattr__(self, "holder_kind", HolderKind(self.holder_kind))
        except ValueError:
            kinds = ", ".join(HolderKind)
            raise _bad_type(f"holder_kind {self.holder_kind!r} is not one of {kinds}", "holder_kind") from None
        if not isinstance(self.layout, str) or not _LAYOUT_NAME.fullmatch(self.layout):
            raise _bad_type(f"layout {self.layout!r} must be 1-64 characters a-z, 0-9, _, - from a letter", "layout")
        self._check_fields()
        self._check_validity()

    def _check_fields(self) -> None:
        object.__setattr__(self, "fields", tuple(self.fields))
        if not self.fields:
            raise _bad_type("a license type needs at least one field", "fields")
        names: set[str] = set()
        for spec in self.fields:
            if not isinstance(spec, FieldSpec):
                raise _bad_type(f"fields must be FieldSpecs, not {type(spec).__name__}", "fields")
            if spec.name in names:
                raise _bad_type(f"field {spec.name!r} is defined twice", "fields", field=spec.name)
            names.add(spec.name)
        specs = self.field_specs
        holder_type = HOLDER_ID_TYPES[self.holder_kind]
        for attribute, wanted in (("holder_field", holder_type), ("holder_name_field", FieldType.STRING)):
            name = getattr(self, attribute)
            spec = specs.get(name)
            if spec is None:
                raise _bad_type(f"{attribute} {name!r} is not one of the fields", attribute, field=str(name))
            if spec.type is not wanted or not spec.required:
                raise _bad_type(
                    f"{attribute} {name!r} must be a required {wanted} field (holder_kind {self.holder_kind}),"
                    f" not {'a required' if spec.required else 'an optional'} {spec.type} field",
                    attribute, field=name,
                )

    def _check_validity(self) -> None:
        if not isinstance(self.validity, ValidityRule):
            raise _bad_type(f"validity must be a FixedTerm, UntilField or LongTerm, not {self.validity!r}", "validity")
        if isinstance(self.validity, UntilField):
            spec = self.field_specs.get(self.validity.field)
            if spec is None or spec.type is not FieldType.DATE:
                raise _bad_type(
                    f"validity is taken from field {self.validity.field!r}, which must be one of the date fields",
                    "validity.field", field=str(self.validity.field),
                )

    @property
    def field_specs(self) -> dict[str, FieldSpec]:
        """The fields by name."""
        return {spec.name: spec for spec in self.fields}

    def to_json(self) -> dict[str, object]:
        """The plain-dict form ``from_json`` reads back (a database JSON column, the HTTP API)."""
        return {
            "code": self.code, "name_zh": self.name_zh, "name_en": self.name_en, "agency_code": self.agency_code,
            "holder_kind": self.holder_kind.value, "holder_field": self.holder_field,
            "holder_name_field": self.holder_name_field, "fields": [spec.to_json() for spec in self.fields],
            "validity": _validity_to_json(self.validity), "layout": self.layout,
        }

    @classmethod
    def from_json(cls, obj: object) -> LicenseType:
        """A license type from its plain-dict form, or InvalidLicenseType naming the member at fault."""
        members = _members(obj, _TYPE_MEMBERS, "")
        fields = []
        for index, item in enumerate(members.pop("fields")):
            path = f"fields[{index}]"
            spec = _members(item, _FIELD_MEMBERS, path)
            spec["choices"] = tuple(_string_list(spec["choices"], f"{path}.choices"))
            try:
                fields.append(FieldSpec(**spec))
            except InvalidLicenseType as exc:
                raise _bad_type(exc.detail, f"{path}.{exc.extra['path']}", field=exc.extra["field"]) from None
        return cls(fields=tuple(fields), validity=_validity_from_json(members.pop("validity")), **members)


# Member name → (accepted JSON types, default; _REQUIRED if it must be present).
_REQUIRED = object()
_TYPE_MEMBERS: dict[str, tuple[tuple[type, ...], object]] = {
    "code": ((str,), _REQUIRED), "name_zh": ((str,), _REQUIRED), "name_en": ((str,), _REQUIRED),
    "agency_code": ((str,), _REQUIRED), "holder_kind": ((str,), _REQUIRED), "holder_field": ((str,), _REQUIRED),
    "holder_name_field": ((str,), _REQUIRED), "fields": ((list,), _REQUIRED), "validity": ((dict,), _REQUIRED),
    "layout": ((str,), "standard"),
}
_FIELD_MEMBERS: dict[str, tuple[tuple[type, ...], object]] = {
    "name": ((str,), _REQUIRED), "label_zh": ((str,), _REQUIRED), "label_en": ((str,), _REQUIRED),
    "type": ((str,), "string"), "required": ((bool,), True), "max_length": ((int, NoneType), None),
    "choices": ((list,), []), "pattern": ((str, NoneType), None),
}
_VALIDITY_MEMBERS: dict[str, dict[str, tuple[tuple[type, ...], object]]] = {
    "fixed_term": {"kind": ((str,), _REQUIRED), "years": ((int,), 0), "months": ((int,), 0), "days": ((int,), 0)},
    "until_field": {"kind": ((str,), _REQUIRED), "field": ((str,), _REQUIRED)},
    "long_term": {"kind": ((str,), _REQUIRED)},
}


def _members(obj: object, schema: dict[str, tuple[tuple[type, ...], object]], path: str) -> dict[str, object]:
    """The members of a JSON object, type-checked against ``schema``, defaults filled in."""
    where = path or "license type"
    if not isinstance(obj, Mapping):
        raise _bad_type(f"{where} must be a JSON object, not {type(obj).__name__}", path)
    unknown = sorted(str(key) for key in obj if key not in schema)
    if unknown:
        raise _bad_type(f"{where}: unknown member(s) {', '.join(unknown)}", path)
    values = {}
    for key, (types, default) in schema.items():
        member = f"{path}.{key}" if path else key
        if key not in obj:
            if default is _REQUIRED:
                raise _bad_type(f"{where}: member {key!r} is missing", member)
            values[key] = default
            continue
        value = obj[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            names = " or ".join("null" if t is NoneType else t.__name__ for t in types)
            raise _bad_type(f"{member} must be {names}, not {type(value).__name__}", member)
        values[key] = value
    return values


def _string_list(items: list, path: str) -> list[str]:
    if not all(isinstance(item, str) for item in items):
        raise _bad_type(f"{path} must be a list of strings", path)
    return items


def _validity_to_json(rule: ValidityRule) -> dict[str, object]:
    match rule:
        case FixedTerm(years=years, months=months, days=days):
            return {"kind": "fixed_term", "years": years, "months": months, "days": days}
        case UntilField(field=field):
            return {"kind": "until_field", "field": field}
        case LongTerm():
            return {"kind": "long_term"}


def _validity_from_json(obj: dict) -> ValidityRule:
    kind = obj.get("kind")
    if not isinstance(kind, str) or kind not in _VALIDITY_MEMBERS:
        raise _bad_type(f"validity.kind {kind!r} is not one of {', '.join(_VALIDITY_MEMBERS)}", "validity.kind")
    members = _members(obj, _VALIDITY_MEMBERS[kind], "validity")
    del members["kind"]
    return {"fixed_term": FixedTerm, "until_field": UntilField, "long_term": LongTerm}[kind](**members)


class _Refused(ValueError):
    """One field value refused, with why (collected by validate_fields)."""


def validate_fields(license_type: LicenseType, data: Mapping[str, object]) -> dict[str, str]:
    """The license data normalised to strings, or InvalidLicenseData listing every problem.

    Empty optional fields (None or blank) are left out. The error's ``field`` and message are the
    first problem's; ``errors`` holds all of them as ``{"field", "detail"}``, unknown fields first.
    """
    specs = license_type.field_specs
    problems = [
        {"field": str(name), "detail": f"unknown field {name!r}; the fields are {', '.join(specs)}"}
        for name in data if name not in specs
    ]
    values = {}
    for spec in license_type.fields:
        value = data.get(spec.name)
        if value is None or (isinstance(value, str) and not value.strip()):
            if spec.required:
                problems.append({"field": spec.name, "detail": f"{_label(spec)} is required"})
            continue
        try:
            values[spec.name] = _normalise(spec, value)
        except _Refused as exc:
            problems.append({"field": spec.name, "detail": f"{_label(spec)}: {exc}"})
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise InvalidLicenseData(problems[0]["detail"] + more, field=problems[0]["field"], errors=problems)
    return values


def _label(spec: FieldSpec) -> str:
    return f"{spec.name} ({spec.label_zh})"


def _normalise(spec: FieldSpec, value: object) -> str:
    normalised = _NORMALISERS[spec.type](spec, value)
    if spec.max_length is not None and len(normalised) > spec.max_length:
        raise _Refused(f"{len(normalised)} characters, at most {spec.max_length} allowed")
    if spec.pattern is not None and not re.fullmatch(spec.pattern, normalised):
        raise _Refused(f"{normalised!r} does not match the pattern {spec.pattern!r}")
    return normalised


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise _Refused(f"must be a string, not {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (JSON "\ud800"): no character at all
        raise _Refused("is not valid Unicode text (it holds a lone surrogate)") from None
    return value.strip()


def _string(spec: FieldSpec, value: object) -> str:
    text = _text(value)
    if _CONTROL.search(text):
        raise _Refused("one line without control characters (a text field takes several lines)")
    return text


def _long_text(spec: FieldSpec, value: object) -> str:
    text = _text(value).replace("\r\n", "\n").replace("\r", "\n")
    if _CONTROL_BUT_NEWLINE.search(text):
        raise _Refused("control characters other than newlines are not allowed")
    return text


def _date(spec: FieldSpec, value: object) -> str:
    if isinstance(value, datetime):
        raise _Refused(f"{value!r} is a date and time; a date as YYYY-MM-DD is needed")
    if isinstance(value, date):
        return value.isoformat()
    text = _text(value)
    if _ISO_DATE.fullmatch(text):
        try:
            return date.fromisoformat(text).isoformat()
        except ValueError:
            pass
    raise _Refused(f"{text!r} is not a date as YYYY-MM-DD")


def _integer(spec: FieldSpec, value: object) -> str:
    if isinstance(value, bool):
        raise _Refused(f"{value!r} is not an integer")
    if isinstance(value, int):
        return str(value)
    text = _text(value)
    if not _INTEGER.fullmatch(text):
        raise _Refused(f"{text!r} is not an integer")
    return str(int(text))


def _decimal(spec: FieldSpec, value: object) -> str:
    if isinstance(value, bool):
        raise _Refused(f"{value!r} is not a decimal number")
    if isinstance(value, (int, float, Decimal)):
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    else:
        text = _text(value)
        if not _DECIMAL.fullmatch(text):
            raise _Refused(f"{text!r} is not a decimal number such as 1250.5")
        number = Decimal(text)
    if not number.is_finite():
        raise _Refused(f"{value!r} is not a finite number")
    return format(number, "f")


def _choice(spec: FieldSpec, value: object) -> str:
    text = _string(spec, value)
    if text not in spec.choices:
        raise _Refused(f"{text!r} is not one of {', '.join(spec.choices)}")
    return text


def _citizen_id(spec: FieldSpec, value: object) -> str:
    try:
        return validate_citizen_id(_text(value))
    except InvalidIdentifier as exc:
        raise _Refused(exc.detail) from None


def _credit_code(spec: FieldSpec, value: object) -> str:
    try:
        return validate_credit_code(_text(value))
    except InvalidIdentifier as exc:
        raise _Refused(exc.detail) from None


_NORMALISERS = {
    FieldType.STRING: _string, FieldType.TEXT: _long_text, FieldType.DATE: _date, FieldType.INTEGER: _integer,
    FieldType.DECIMAL: _decimal, FieldType.ENUM: _choice, FieldType.CITIZEN_ID: _citizen_id,
    FieldType.CREDIT_CODE: _credit_code,
}


def expiry(license_type: LicenseType, fields: Mapping[str, str], issued_on: date) -> date | None:
    """The last day a license issued on ``issued_on`` with validated ``fields`` is valid; None for long-term."""
    match license_type.validity:
        case FixedTerm() as term:
            return term.expiry(issued_on)
        case UntilField(field=name):
            if not fields.get(name):
                return None
            until = date.fromisoformat(fields[name])
            if until < issued_on:
                detail = f"{name}: valid until {until.isoformat()}, before the issue date {issued_on.isoformat()}"
                raise InvalidLicenseData(detail, field=name, errors=[{"field": name, "detail": detail}])
            return until
        case LongTerm():
            return None


def license_digest(*, identifier: str, type_code: str, fields: Mapping[str, str]) -> bytes:
    """SHA-256 of the license data as canonical JSON: what the QR token binds the printed copy to.

    Canonical: keys sorted by code point, UTF-8 (no escapes), no whitespace; the members are
    ``fields``, ``identifier`` and ``type_code``.
    """
    canonical = json.dumps(
        {"fields": dict(fields), "identifier": identifier, "type_code": type_code},
        ensure_ascii=False, sort_keys=True, separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).digest()


# Demo types. The type codes are demo codes under a real agency credit code (from
# shared/testdata/identifiers.json), not registered codes; 9xx keeps them apart from the real ones.
BUSINESS_LICENSE_CODE = "11100000000013338W901"
DRIVING_LICENCE_CODE = "11100000000013338W902"
ENTITY_TYPES = ("有限责任公司", "有限责任公司（自然人独资）", "股份有限公司", "个人独资企业", "合伙企业", "农民专业合作社")
VEHICLE_CLASSES = ("A1", "A2", "A3", "B1", "B2", "C1", "C2", "C3", "C4", "C5", "C6", "D", "E", "F", "M", "N", "P")


def demo_types(agency_code: str) -> tuple[LicenseType, ...]:
    """A business license (营业执照) and a driving licence (机动车驾驶证) owned by ``agency_code``."""
    business_license = LicenseType(
        code=BUSINESS_LICENSE_CODE, name_zh="营业执照", name_en="Business License", agency_code=agency_code,
        holder_kind=HolderKind.ENTERPRISE, holder_field="credit_code", holder_name_field="name",
        fields=(
            FieldSpec(name="name", label_zh="名称", label_en="Name", max_length=100),
            FieldSpec(name="credit_code", label_zh="统一社会信用代码", label_en="Unified social credit code",
                      type=FieldType.CREDIT_CODE),
            FieldSpec(name="entity_type", label_zh="类型", label_en="Type", type=FieldType.ENUM, choices=ENTITY_TYPES),
            FieldSpec(name="legal_representative", label_zh="法定代表人", label_en="Legal representative", max_length=50),
            FieldSpec(name="registered_capital", label_zh="注册资本（万元）", label_en="Registered capital (10,000 CNY)",
                      type=FieldType.DECIMAL, required=False, max_length=20),
            FieldSpec(name="established_on", label_zh="成立日期", label_en="Date of establishment", type=FieldType.DATE),
            FieldSpec(name="valid_until", label_zh="营业期限", label_en="Business term until", type=FieldType.DATE,
                      required=False),
            FieldSpec(name="address", label_zh="住所", label_en="Domicile", max_length=200),
            FieldSpec(name="business_scope", label_zh="经营范围", label_en="Business scope", type=FieldType.TEXT,
                      max_length=2000),
        ),
        validity=UntilField("valid_until"),
    )
    driving_licence = LicenseType(
        code=DRIVING_LICENCE_CODE, name_zh="机动车驾驶证", name_en="Motor Vehicle Driving Licence",
        agency_code=agency_code, holder_kind=HolderKind.PERSON, holder_field="citizen_id", holder_name_field="name",
        fields=(
            FieldSpec(name="name", label_zh="姓名", label_en="Name", max_length=50),
            FieldSpec(name="sex", label_zh="性别", label_en="Sex", type=FieldType.ENUM, choices=("男", "女")),
            FieldSpec(name="nationality", label_zh="国籍", label_en="Nationality", max_length=50),
            FieldSpec(name="birth_date", label_zh="出生日期", label_en="Date of birth", type=FieldType.DATE),
            FieldSpec(name="citizen_id", label_zh="公民身份号码", label_en="Citizen ID number", type=FieldType.CITIZEN_ID),
            FieldSpec(name="vehicle_class", label_zh="准驾车型", label_en="Permitted vehicle class", type=FieldType.ENUM,
                      choices=VEHICLE_CLASSES),
            FieldSpec(name="first_issued_on", label_zh="初次领证日期", label_en="Date of first issue",
                      type=FieldType.DATE),
        ),
        validity=FixedTerm(years=6),
    )
    return business_license, driving_licence
