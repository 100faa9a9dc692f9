"""E-license identifiers against the real published vectors, every single-character substitution,
and each kind of malformed input."""

import json
import string
from pathlib import Path

import pytest

from eauth.errors import InvalidLicenseIdentifier
from licenses.identifiers import LicenseIdentifier

_VECTORS_PATH = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "identifiers.json"
if not _VECTORS_PATH.is_file():
    pytest.skip(f"real identifier vectors not found at {_VECTORS_PATH}", allow_module_level=True)
VECTORS = json.loads(_VECTORS_PATH.read_text(encoding="utf-8"))
VALID = VECTORS["elicense_id_gb36904_mod37_36_valid"]
VARIANT = VECTORS["elicense_id_nonstandard_variant"]["id"]
ALPHABET = string.digits + string.ascii_uppercase + "."


def refused(text: str, segment: str | None) -> InvalidLicenseIdentifier:
    with pytest.raises(InvalidLicenseIdentifier) as info:
        LicenseIdentifier.parse(text)
    error = info.value
    assert error.code == "invalid_license_identifier"
    assert error.extra["segment"] == segment, error.detail
    return error


@pytest.mark.parametrize("text", VALID)
def test_real_identifiers_parse_and_round_trip(text):
    identifier = LicenseIdentifier.parse(text)
    type_code, issuer_code, serial, version, check = text.split(".")[5:]
    assert (identifier.type_code, identifier.issuer_code, identifier.serial) == (type_code, issuer_code, serial)
    assert identifier.version == int(version) and identifier.check == check
    assert identifier.text == str(identifier) == text
    assert LicenseIdentifier.parse(identifier.text) == identifier
    rebuilt = LicenseIdentifier(type_code=type_code, issuer_code=issuer_code, serial=serial, version=int(version))
    assert rebuilt == identifier and rebuilt.text == text


@pytest.mark.parametrize("text", VALID)
def test_parse_normalises_case_and_surrounding_space(text):
    assert LicenseIdentifier.parse(f"  {text.lower()}\n").text == text


@pytest.mark.parametrize("text", VALID)
def test_every_single_character_substitution_is_refused(text):
    for position, original in enumerate(text):
        for replacement in ALPHABET:
            if replacement != original:
                corrupted = text[:position] + replacement + text[position + 1:]
                with pytest.raises(InvalidLicenseIdentifier):
                    LicenseIdentifier.parse(corrupted)


def test_nonstandard_check_variant_is_refused_with_the_expected_character():
    error = refused(VARIANT, "check")
    assert "strict ISO 7064 MOD 37,36" in error.detail and "'D'" in error.detail
    assert (error.extra["expected"], error.extra["found"]) == ("D", "M")
    assert LicenseIdentifier.parse(VARIANT[:-1] + "D").serial == "209FA4E88F9E4C878F3E9BED2CE7EA49"


def test_wrong_prefix():
    assert "1.2.156.3005.2." in refused(VALID[0].replace("1.2.156.3005.2", "1.2.156.3005.3"), "prefix").detail
    refused(VALID[0][len("1.2.156.3005.2."):], "prefix")
    refused("", "prefix")


@pytest.mark.parametrize(("index", "segment"), [(0, "type_code"), (1, "issuer_code"), (2, "serial"), (3, "version"),
                                                (4, "check")])
def test_empty_segment(index, segment):
    segments = VALID[0].split(".")[5:]
    segments[index] = ""
    assert "empty" in refused("1.2.156.3005.2." + ".".join(segments), segment).detail


def test_wrong_number_of_segments():
    assert "expected 5" in refused(VALID[0] + ".X", None).detail
    refused(VALID[0].rsplit(".", 1)[0], None)


@pytest.mark.parametrize(("index", "segment"), [(0, "type_code"), (1, "issuer_code"), (2, "serial"), (3, "version"),
                                                (4, "check")])
@pytest.mark.parametrize("character", ["-", "_", "é", "０", " "])
def test_characters_outside_0_9_a_z(index, segment, character):
    segments = VALID[0].split(".")[5:]
    segments[index] = character + segments[index]
    assert repr(character) in refused("1.2.156.3005.2." + ".".join(segments), segment).detail


def test_segment_rules():
    _, _, _, _, _, type_code, issuer, serial, version, check = VALID[0].split(".")
    def text(**change):
        parts = {"type_code": type_code, "issuer_code": issuer, "serial": serial, "version": version, "check": check}
        return "1.2.156.3005.2." + ".".join((parts | change).values())

    assert "3 digits" in refused(text(type_code=type_code[:-1] + "A"), "type_code").detail
    assert "position 18" in refused(text(type_code="11100000000013338X032"), "type_code").detail
    refused(text(type_code=type_code + "1"), "type_code")
    refused(text(issuer_code="12345"), "issuer_code")
    refused(text(issuer_code="040100"), "issuer_code")
    refused(text(issuer_code="34010A"), "issuer_code")
    assert "position 18" in refused(text(issuer_code=issuer[:-1] + "K"), "issuer_code").detail
    refused(text(serial="24305G9"), "serial")
    refused(text(serial="1" * 65), "serial")
    refused(text(version="01"), "version")
    refused(text(version="0001"), "version")
    refused(text(version="000"), "version")
    refused(text(version="00A"), "version")
    assert "1 character" in refused(text(check="FF"), "check").detail


def test_constructor_validates_and_normalises():
    identifier = LicenseIdentifier(type_code="11100000mb03271699022", issuer_code="340100", serial="ab12", version=7)
    assert identifier.text == f"1.2.156.3005.2.11100000MB03271699022.340100.AB12.007.{identifier.check}"
    with pytest.raises(InvalidLicenseIdentifier):
        LicenseIdentifier(type_code="11100000MB03271699022", issuer_code="340100", serial="1", version=1000)
    with pytest.raises(InvalidLicenseIdentifier):
        LicenseIdentifier(type_code="11100000MB03271699022", issuer_code="340100", serial="1", version=True)


def test_next_version():
    identifier = LicenseIdentifier.parse(VALID[2])  # version 002
    amended = identifier.next_version()
    assert amended.version == 3 and amended.text.split(".")[-2] == "003"
    assert (amended.type_code, amended.issuer_code, amended.serial) == (
        identifier.type_code, identifier.issuer_code, identifier.serial)
    assert LicenseIdentifier.parse(amended.text) == amended
    last = LicenseIdentifier(type_code=identifier.type_code, issuer_code="340100", serial="1", version=999)
    assert refused_next(last).extra["segment"] == "version"


def refused_next(identifier: LicenseIdentifier) -> InvalidLicenseIdentifier:
    with pytest.raises(InvalidLicenseIdentifier) as info:
        identifier.next_version()
    return info.value
