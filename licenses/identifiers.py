"""Electronic-license identifiers in the GB/T 36904 style.

``1.2.156.3005.2.{type code}.{issuer code}.{serial}.{version}.{check}``, where the type code is the
defining agency's unified social credit code followed by 3 digits, the issuer code the issuing
agency's credit code or a 6-digit region code, the serial digits or upper-case hex, the version 3
digits (001-999), and the check character the strict ISO 7064 MOD 37,36 check of the four segments
concatenated without dots. Every segment is validated, so a mistyped identifier is refused with the
segment to fix rather than looked up and not found.
"""

from __future__ import annotations

import dataclasses
import string
from dataclasses import dataclass

from ca.identifiers import iso7064_mod37_36_check, validate_credit_code
from eauth.errors import InvalidIdentifier, InvalidLicenseIdentifier

#: The GB/T 36904 arc every e-license identifier starts with.
PREFIX = "1.2.156.3005.2"
SEGMENTS = ("type_code", "issuer_code", "serial", "version", "check")
MAX_VERSION = 999
MAX_SERIAL_LENGTH = 64  # the longest in the wild is a 32-character hex UUID

_ALPHABET = frozenset(string.digits + string.ascii_uppercase)
_DIGITS = frozenset(string.digits)
_HEX = frozenset(string.digits + "ABCDEF")
_ASCII_UPPER = str.maketrans(string.ascii_lowercase, string.ascii_uppercase)


def _fail(detail: str, segment: str | None, **extra: str) -> InvalidLicenseIdentifier:
    return InvalidLicenseIdentifier(detail, segment=segment, **extra)


def validate_type_code(code: str) -> str:
    """A license type code (credit code + 3 digits), upper-cased; InvalidLicenseIdentifier if not."""
    code = code.translate(_ASCII_UPPER)
    if len(code) != 21 or not set(code[18:]) <= _DIGITS:
        raise _fail(f"type code {code!r} must be an 18-character credit code followed by 3 digits", "type_code")
    try:
        validate_credit_code(code[:18])
    except InvalidIdentifier as exc:
        raise _fail(f"type code {code}: {exc.detail}", "type_code") from None
    return code


def validate_issuer_code(code: str) -> str:
    """An issuer code (credit code or 6-digit region code), upper-cased; InvalidLicenseIdentifier if not."""
    code = code.translate(_ASCII_UPPER)
    if len(code) == 6:
        if not set(code) <= _DIGITS or code[0] == "0":
            raise _fail(f"issuer code {code!r}: a region code is 6 digits not starting with 0", "issuer_code")
        return code
    if len(code) != 18:
        raise _fail(
            f"issuer code {code!r} must be an 18-character credit code or a 6-digit region code,"
            f" got {len(code)} characters",
            "issuer_code",
        )
    try:
        return validate_credit_code(code)
    except InvalidIdentifier as exc:
        raise _fail(f"issuer code {code}: {exc.detail}", "issuer_code") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class LicenseIdentifier:
    """One version of one license, as printed on it and carried in its QR token.

    The constructor validates and upper-cases every segment; ``check`` is computed, never stored.
    """

    type_code: str
    issuer_code: str
    serial: str
    version: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "type_code", validate_type_code(self.type_code))
        object.__setattr__(self, "issuer_code", validate_issuer_code(self.issuer_code))
        serial = self.serial.translate(_ASCII_UPPER)
        if not 1 <= len(serial) <= MAX_SERIAL_LENGTH or not set(serial) <= _HEX:
            raise _fail(f"serial {serial!r} must be 1-{MAX_SERIAL_LENGTH} characters 0-9, A-F", "serial")
        object.__setattr__(self, "serial", serial)
        if isinstance(self.version, bool) or not isinstance(self.version, int) or not 1 <= self.version <= MAX_VERSION:
            raise _fail(f"version {self.version!r} must be a number from 1 to {MAX_VERSION}", "version")

    @property
    def check(self) -> str:
        """The ISO 7064 MOD 37,36 check character over type code, issuer code, serial and version."""
        return iso7064_mod37_36_check(f"{self.type_code}{self.issuer_code}{self.serial}{self.version:03d}")

    @property
    def text(self) -> str:
        """The full identifier, e.g. ``1.2.156.3005.2.11100000000013338W032.11220000013544541J.2430599.001.F``."""
        return f"{PREFIX}.{self.type_code}.{self.issuer_code}.{self.serial}.{self.version:03d}.{self.check}"

    def __str__(self) -> str:
        return self.text

    def next_version(self) -> LicenseIdentifier:
        """The identifier of the amendment that supersedes this version."""
        if self.version == MAX_VERSION:
            raise _fail(f"{self.text} is version {MAX_VERSION}, the last a 3-digit version allows", "version")
        return dataclasses.replace(self, version=self.version + 1)

    @classmethod
    def parse(cls, text: str) -> LicenseIdentifier:
        """Parse a full identifier, case-insensitively and ignoring surrounding whitespace.

        The check character must be the strict MOD 37,36 one: identifiers made by software using a
        non-standard variant (seen in Shandong) are refused, with the character the standard expects.
        """
        normalised = text.strip().translate(_ASCII_UPPER)
        if not normalised.startswith(PREFIX + "."):
            raise _fail(f"license identifier {text!r} does not start with {PREFIX}.", "prefix")
        segments = normalised[len(PREFIX) + 1:].split(".")
        if len(segments) != len(SEGMENTS):
            raise _fail(
                f"license identifier {normalised!r} has {len(segments)} segments after {PREFIX},"
                f" expected {len(SEGMENTS)}: type code, issuer code, serial, version, check character",
                None,
            )
        for name, segment in zip(SEGMENTS, segments):
            if not segment:
                raise _fail(f"license identifier {normalised!r}: the {name.replace('_', ' ')} is empty", name)
            for ch in segment:
                if ch not in _ALPHABET:
                    raise _fail(
                        f"license identifier {normalised!r}: character {ch!r} in the {name.replace('_', ' ')}"
                        " is not allowed (0-9, A-Z)",
                        name,
                    )
        type_code, issuer_code, serial, version, check = segments
        if len(version) != 3 or not set(version) <= _DIGITS:
            raise _fail(f"license identifier {normalised!r}: version {version!r} must be 3 digits", "version")
        if len(check) != 1:
            raise _fail(f"license identifier {normalised!r}: check {check!r} must be 1 character", "check")
        identifier = cls(type_code=type_code, issuer_code=issuer_code, serial=serial, version=int(version))
        expected = identifier.check
        if check != expected:
            raise _fail(
                f"license identifier {normalised!r}: check character {check!r} does not match strict ISO 7064"
                f" MOD 37,36, which expects {expected!r}",
                "check",
                expected=expected,
                found=check,
            )
        return identifier
