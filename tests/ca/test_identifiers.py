"""Identity-number check characters against real published vectors and systematic corruptions."""

import json
from datetime import date
from pathlib import Path

import pytest

from ca.identifiers import Scheme, iso7064_mod37_36_check, validate_citizen_id, validate_credit_code
from eauth.errors import InvalidIdentifier

_REPO = Path(__file__).resolve().parents[2]
_VECTORS_PATH = _REPO.parent / "shared" / "testdata" / "identifiers.json"  # shared data sits beside the repo
if not _VECTORS_PATH.is_file():
    pytest.skip(f"real identifier vectors not found at {_VECTORS_PATH}", allow_module_level=True)
VECTORS = json.loads(_VECTORS_PATH.read_text(encoding="utf-8"))

CITIZEN_IDS = VECTORS["citizen_id_gb11643_valid"]
CREDIT_CODES = VECTORS["uscc_gb32100_valid"]
ELICENSE_IDS = VECTORS["elicense_id_gb36904_mod37_36_valid"]
ELICENSE_PREFIX = "1.2.156.3005.2"
TODAY = date(2025, 6, 1)
CREDIT_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def with_citizen_check(body: str) -> str:
    """Append the GB 11643 check character, computed independently of the code under test."""
    total = sum(int(d) * pow(2, 17 - i, 11) for i, d in enumerate(body))
    return body + "10X98765432"[total % 11]


def rejected(validate, value: str, **kwargs) -> InvalidIdentifier:
    with pytest.raises(InvalidIdentifier) as info:
        validate(value, **kwargs)
    error = info.value
    assert error.code == "invalid_identifier"
    assert "\n" not in error.detail
    return error


def substitutions(value: str, position: int, alphabet: str):
    """``value`` with the character at 1-based ``position`` replaced by each other one of ``alphabet``."""
    for ch in alphabet:
        if ch != value[position - 1]:
            yield value[: position - 1] + ch + value[position:]


def elicense_parts(identifier: str) -> tuple[list[str], str]:
    """Split an e-license identifier into its four checked segments and its check character."""
    assert identifier.startswith(ELICENSE_PREFIX + ".")
    *segments, check = identifier[len(ELICENSE_PREFIX) + 1 :].split(".")
    assert len(segments) == 4, identifier
    return segments, check


# Citizen ID (GB 11643)


@pytest.mark.parametrize("number", CITIZEN_IDS)
def test_real_citizen_ids_pass(number):
    assert validate_citizen_id(number, today=TODAY) == number
    assert validate_citizen_id(number) == number


def test_lowercase_check_x_is_normalised():
    assert validate_citizen_id("11010519491231002x", today=TODAY) == "11010519491231002X"


def test_check_mismatch_message_names_position_and_expected_character():
    error = rejected(validate_citizen_id, "11010519491231002Y", today=TODAY)
    assert (error.scheme, error.position) == (Scheme.CITIZEN_ID, 18)
    assert error.detail == "citizen ID 11010519491231002Y: check character (position 18) is 'Y', expected 'X'"


@pytest.mark.parametrize("number", CITIZEN_IDS)
def test_every_single_substitution_in_a_citizen_id_is_rejected(number):
    for position in range(1, 19):
        for corrupted in substitutions(number, position, "0123456789XA"):
            error = rejected(validate_citizen_id, corrupted, today=TODAY)
            assert error.scheme == "gb11643"
            if position == 18 or not corrupted[position - 1].isdigit():
                assert error.position == position, corrupted
            else:  # a wrong digit shows up in the region, the birth date or the check character
                assert error.position in (1, 7, 11, 13, 18), corrupted


@pytest.mark.parametrize("value", ["", "11010519491231002", "11010519491231002X0", "110105194912310"])
def test_citizen_id_of_wrong_length_is_rejected(value):
    assert rejected(validate_citizen_id, value, today=TODAY).position is None


@pytest.mark.parametrize(("value", "position"), [
    ("1101051949123100AX", 17),
    ("X10105194912310029", 1),
    ("11010519491231００2X", 15),  # full-width digits are not digits here
    ("11010519491231 02X", 15),
])
def test_non_digits_in_citizen_id_body_are_rejected(value, position):
    assert rejected(validate_citizen_id, value, today=TODAY).position == position


def test_citizen_region_code_cannot_start_with_zero():
    assert rejected(validate_citizen_id, with_citizen_check("01010519491231002"), today=TODAY).position == 1


@pytest.mark.parametrize(("birth", "position"), [
    ("20250602", 7),  # tomorrow
    ("20260101", 7),  # next year
    ("17991231", 7),  # before the earliest year accepted
    ("19491301", 11),
    ("19490001", 11),
    ("19490230", 13),
    ("19000229", 13),  # 1900 is not a leap year
    ("19491200", 13),
])
def test_impossible_birth_dates_are_rejected(birth, position):
    number = with_citizen_check("110105" + birth + "002")
    assert rejected(validate_citizen_id, number, today=TODAY).position == position


@pytest.mark.parametrize("birth", ["20250601", "20000229", "18000101"])
def test_boundary_birth_dates_are_accepted(birth):
    number = with_citizen_check("110105" + birth + "002")
    assert validate_citizen_id(number, today=TODAY) == number


def test_today_decides_what_is_in_the_future():
    assert rejected(validate_citizen_id, "11010519491231002X", today=date(1949, 12, 30)).position == 7


# Unified social credit code (GB 32100, embedded GB 11714)


@pytest.mark.parametrize("code", CREDIT_CODES)
def test_real_credit_codes_pass(code):
    assert validate_credit_code(code) == code


@pytest.mark.parametrize("identifier", ELICENSE_IDS)
def test_credit_codes_embedded_in_real_license_type_codes_pass(identifier):
    type_code = elicense_parts(identifier)[0][0]
    assert validate_credit_code(type_code[:18]) == type_code[:18]


@pytest.mark.parametrize("code", CREDIT_CODES)
def test_lowercase_credit_code_is_normalised(code):
    assert validate_credit_code(code.lower()) == code


@pytest.mark.parametrize("code", CREDIT_CODES)
def test_every_single_substitution_in_a_credit_code_is_rejected(code):
    for position in range(1, 19):
        for corrupted in substitutions(code, position, CREDIT_CHARSET):
            error = rejected(validate_credit_code, corrupted)
            assert error.scheme == "gb32100"
            if position in (17, 18) or (3 <= position <= 8 and not corrupted[position - 1].isdigit()):
                assert error.position == position, corrupted
            else:  # positions 9-16 feed both checks; GB 11714 misses letters 11 apart (1 and C), MOD 31 does not
                assert error.position in (17, 18), corrupted


def test_the_two_credit_code_checks_are_named_distinctly():
    org = rejected(validate_credit_code, "11220000013544542J")
    assert org.position == 17
    assert org.detail == (
        "credit code 11220000013544542J: GB 11714 organisation code check character (position 17) is '2', expected '1'"
    )
    uscc = rejected(validate_credit_code, "11220000013544541K")
    assert uscc.position == 18
    assert uscc.detail == "credit code 11220000013544541K: GB 32100 check character (position 18) is 'K', expected 'J'"


@pytest.mark.parametrize("letter", "IOZSV")
def test_letters_outside_the_credit_code_charset_are_rejected(letter):
    for position in (1, 2, 10, 18):
        code = CREDIT_CODES[0]
        error = rejected(validate_credit_code, code[: position - 1] + letter + code[position:])
        assert error.position == position
        assert repr(letter) in error.detail


@pytest.mark.parametrize("value", ["", "11220000013544541", "11220000013544541JJ"])
def test_credit_code_of_wrong_length_is_rejected(value):
    assert rejected(validate_credit_code, value).position is None


def test_non_ascii_in_credit_code_is_rejected_at_its_position():
    assert rejected(validate_credit_code, "11220000013544541Ｊ").position == 18


# ISO 7064 MOD 37,36 (e-license identifiers)


@pytest.mark.parametrize("identifier", ELICENSE_IDS)
def test_real_elicense_identifiers_carry_the_mod37_36_check(identifier):
    segments, check = elicense_parts(identifier)
    assert iso7064_mod37_36_check("".join(segments)) == check


@pytest.mark.parametrize("identifier", ELICENSE_IDS)
def test_mod37_36_detects_every_single_substitution(identifier):
    segments, check = elicense_parts(identifier)
    text = "".join(segments)
    for position in range(1, len(text) + 1):
        for corrupted in substitutions(text, position, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"):
            assert iso7064_mod37_36_check(corrupted) != check, corrupted


def test_shandong_variant_differs_from_strict_mod37_36():
    segments, check = elicense_parts(VECTORS["elicense_id_nonstandard_variant"]["id"])
    assert check == "M"
    assert iso7064_mod37_36_check("".join(segments)) == "D"


@pytest.mark.parametrize("text", ["abc", "A.B", "Ａ"])
def test_mod37_36_rejects_characters_outside_its_alphabet(text):
    with pytest.raises(ValueError):
        iso7064_mod37_36_check(text)
