"""Check-character validation of Chinese identity numbers.

Citizen ID numbers (GB 11643-1999) and unified social credit codes (GB 32100-2015, with the embedded
GB 11714 organisation code) are validated before they go into a certificate subject, so a mistyped
number is refused with the position to fix instead of being signed into a certificate. The ISO 7064
MOD 37,36 check used by electronic-license identifiers (GB/T 36904) lives here too, next to its kin.
"""

from __future__ import annotations

import calendar
import string
from datetime import date
from enum import StrEnum

from eauth.errors import InvalidIdentifier


class Scheme(StrEnum):
    """Identity-number schemes, as reported in ``InvalidIdentifier.scheme``."""

    CITIZEN_ID = "gb11643"
    CREDIT_CODE = "gb32100"


_DIGITS = frozenset(string.digits)  # ASCII only: str.isdigit() would also accept full-width digits
_ALNUM36 = string.digits + string.ascii_uppercase
_BASE36 = {ch: value for value, ch in enumerate(_ALNUM36)}
_ASCII_UPPER = str.maketrans(string.ascii_lowercase, string.ascii_uppercase)

# GB 11643-1999 (ISO 7064 MOD 11-2): weight of position i is 2^(18-i) mod 11.
_CITIZEN_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CITIZEN_CHECKS = "10X98765432"  # indexed by (weighted sum mod 11)
# The standard's own example 440524188001010014 was born on 1880-01-01, so a 1900 floor would reject
# it; 1800 still catches a mistyped century such as 0949 or 1049.
_EARLIEST_BIRTH_YEAR = 1800

# GB 32100-2015: 31 characters (no I, O, S, V, Z), weight of position i is 3^(i-1) mod 31.
_CREDIT_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT_VALUES = {ch: value for value, ch in enumerate(_CREDIT_CHARSET)}
_CREDIT_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))
# GB 11714 organisation code (positions 9-17 of a credit code), letters valued A=10 .. Z=35.
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


def validate_citizen_id(value: str, *, today: date | None = None) -> str:
    """Validate an 18-character citizen ID number and return it with a lowercase check 'x' made 'X'.

    Checks, in order, so the most precise fault is reported: the 17 body digits, a non-zero first
    region digit, a real birth date from 1800 up to ``today`` (default: the current date), and the
    MOD 11-2 check character.
    """
    def fail(detail: str, position: int | None) -> InvalidIdentifier:
        return InvalidIdentifier(detail, scheme=Scheme.CITIZEN_ID, position=position)

    if len(value) != 18:
        raise fail(f"citizen ID must be 18 characters, got {len(value)}", None)
    for position, ch in enumerate(value[:17], 1):
        if ch not in _DIGITS:
            raise fail(f"citizen ID {value!r}: character {ch!r} at position {position} is not a digit", position)
    number = value[:17] + ("X" if value[17] == "x" else value[17])
    if number[0] == "0":
        raise fail(f"citizen ID {number}: region code (position 1) cannot start with 0", 1)

    today = today or date.today()
    year, month, day = int(number[6:10]), int(number[10:12]), int(number[12:14])
    if year < _EARLIEST_BIRTH_YEAR:
        raise fail(f"citizen ID {number}: birth year {year} (position 7) is before {_EARLIEST_BIRTH_YEAR}", 7)
    if year > today.year:
        raise fail(f"citizen ID {number}: birth year {year} (position 7) is in the future", 7)
    if not 1 <= month <= 12:
        raise fail(f"citizen ID {number}: birth month {number[10:12]} (position 11) is not 01-12", 11)
    if not 1 <= day <= calendar.monthrange(year, month)[1]:
        raise fail(f"citizen ID {number}: birth day {number[12:14]} (position 13) does not exist in {year}-{month:02}", 13)
    if (born := date(year, month, day)) > today:
        raise fail(f"citizen ID {number}: birth date {born.isoformat()} (position 7) is in the future", 7)

    expected = _CITIZEN_CHECKS[sum(int(ch) * w for ch, w in zip(number, _CITIZEN_WEIGHTS)) % 11]
    if number[17] != expected:
        raise fail(f"citizen ID {number}: check character (position 18) is {number[17]!r}, expected {expected!r}", 18)
    return number


def validate_credit_code(value: str) -> str:
    """Validate an 18-character unified social credit code and return it in upper case.

    Position 1 (registration authority) and 2 (organisation type) are only checked against the
    character set: their code tables have grown by later notices, and the check characters already
    catch a mistyped one. Positions 3-8 must be digits (region code), position 17 is the GB 11714
    check of positions 9-16 and position 18 the GB 32100 MOD 31 check of positions 1-17. Position 17
    is checked first so that a wrong position 17 is reported there rather than at position 18.

    Every real code in shared/testdata/identifiers.json satisfies the GB 11714 check, including the
    central agencies' codes beginning 11 and those with letters in the organisation code (e.g.
    11100000MB0341032Y: M=22, B=11), so the embedded check is enforced, not relaxed.
    """
    def fail(detail: str, position: int | None) -> InvalidIdentifier:
        return InvalidIdentifier(detail, scheme=Scheme.CREDIT_CODE, position=position)

    if len(value) != 18:
        raise fail(f"credit code must be 18 characters, got {len(value)}", None)
    code = value.translate(_ASCII_UPPER)
    for position, ch in enumerate(code, 1):
        if ch not in _CREDIT_VALUES:
            raise fail(
                f"credit code {value!r}: character {value[position - 1]!r} at position {position} is not allowed"
                " (0-9 and A-Z except I, O, S, V, Z)",
                position,
            )
    for position, ch in enumerate(code[2:8], 3):
        if ch not in _DIGITS:
            raise fail(f"credit code {code}: region code character {ch!r} at position {position} is not a digit", position)

    org_check = gb11714_check(code[8:16])
    if code[16] != org_check:
        raise fail(
            f"credit code {code}: GB 11714 organisation code check character (position 17) is {code[16]!r},"
            f" expected {org_check!r}",
            17,
        )
    expected = _CREDIT_CHARSET[-sum(_CREDIT_VALUES[ch] * w for ch, w in zip(code, _CREDIT_WEIGHTS)) % 31]
    if code[17] != expected:
        raise fail(f"credit code {code}: GB 32100 check character (position 18) is {code[17]!r}, expected {expected!r}", 18)
    return code


def gb11714_check(body: str) -> str:
    """The GB 11714 check character of an 8-character organisation code body."""
    check = 11 - sum(_BASE36[ch] * w for ch, w in zip(body, _ORG_WEIGHTS)) % 11
    return {10: "X", 11: "0"}.get(check, str(check))


def iso7064_mod37_36_check(text: str) -> str:
    """The ISO 7064 hybrid MOD 37,36 check character of ``text`` (characters 0-9A-Z).

    E-license identifiers compute it over type code, issuer code, serial and version concatenated
    without dots. Strict: licenses issued in Shandong by software using a non-standard variant carry a
    different character (see identifiers.json), and this function does not emulate that variant.
    Raises ValueError for any other character; callers normalise case first.
    """
    product = 36
    for ch in text:
        if ch not in _BASE36:
            raise ValueError(f"{ch!r} is not in the MOD 37,36 alphabet 0-9A-Z")
        product = 2 * ((product + _BASE36[ch]) % 36 or 36) % 37
    return _ALNUM36[(1 - product) % 36]
