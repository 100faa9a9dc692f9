"""The one domain exception hierarchy.

Every error carries a stable machine-readable ``code`` (part of the public API: clients switch on it,
so never rename one) and a ``kind`` that says which class of failure it is; the HTTP layer maps the
kind to a status code in one place, the CLI prints the message and exits non-zero.
"""

from __future__ import annotations

from enum import Enum
from typing import Any


class ErrorKind(Enum):
    """The class of a failure, independent of the transport that reports it."""

    INVALID = "invalid"  # the input is wrong: fix it and retry
    UNAUTHENTICATED = "unauthenticated"  # who you are is not established
    FORBIDDEN = "forbidden"  # you are known but may not do this
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"  # the request clashes with the current state
    UNAVAILABLE = "unavailable"  # a dependency (key store, database) is not usable now
    CONFIGURATION = "configuration"  # the platform is set up wrongly; an operator must act


class EauthError(Exception):
    """Base of every error the domain raises on purpose."""

    code: str = "internal"
    kind: ErrorKind = ErrorKind.INVALID
    title: str = "Request failed"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def __reduce__(self):
        # Pickled whole (a process-pool worker raises it to the API process): by default pickle would
        # call ``cls(*args)``, which subclasses with keyword-only arguments (InvalidIdentifier) refuse.
        return _restore, (type(self), self.args, self.__dict__)


def _restore(cls: type[EauthError], args: tuple, state: dict) -> EauthError:
    error = cls.__new__(cls, *args)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


def _error(name: str, code: str, kind: ErrorKind, title: str, base: type[EauthError] = EauthError):
    return type(name, (base,), {"code": code, "kind": kind, "title": title, "__doc__": title + "."})


# Input validation
class InvalidInput(EauthError):
    """The request is malformed or a value is out of range."""

    code = "invalid_input"
    kind = ErrorKind.INVALID
    title = "Invalid input"


class InvalidIdentifier(InvalidInput):
    """An identity number (citizen ID, credit code) fails its format or check character."""

    code = "invalid_identifier"
    title = "Invalid identity number"

    def __init__(self, detail: str, *, scheme: str, position: int | None = None) -> None:
        super().__init__(detail, scheme=scheme, position=position)
        self.scheme = scheme
        self.position = position


InvalidCsr = _error("InvalidCsr", "invalid_csr", ErrorKind.INVALID, "Malformed certificate request", InvalidInput)
CsrSignatureInvalid = _error(
    "CsrSignatureInvalid", "csr_signature_invalid", ErrorKind.INVALID,
    "Certificate request signature does not verify (no proof of possession)", InvalidInput,
)
WeakKey = _error("WeakKey", "weak_key", ErrorKind.INVALID, "Key too weak or of an unsupported type", InvalidInput)
UnknownProfile = _error("UnknownProfile", "unknown_profile", ErrorKind.INVALID, "Unknown certificate profile", InvalidInput)
UnsupportedAlgorithm = _error(
    "UnsupportedAlgorithm", "unsupported_algorithm", ErrorKind.INVALID, "Unsupported algorithm", InvalidInput
)

# Authentication and authorization
InvalidClient = _error("InvalidClient", "invalid_client", ErrorKind.UNAUTHENTICATED, "Client authentication failed")
InvalidToken = _error("InvalidToken", "invalid_token", ErrorKind.UNAUTHENTICATED, "Access token invalid or expired")
InvalidScope = _error(
    "InvalidScope", "invalid_scope", ErrorKind.INVALID,
    "Requested scope not granted to this client",  # RFC 6749 §5.2; a resource answers insufficient_scope
    InvalidInput,
)
InsufficientScope = _error("InsufficientScope", "insufficient_scope", ErrorKind.FORBIDDEN, "Client lacks the required scope")
Forbidden = _error("Forbidden", "forbidden", ErrorKind.FORBIDDEN, "Not allowed")

# State
NotFound = _error("NotFound", "not_found", ErrorKind.NOT_FOUND, "Not found")
AlreadyExists = _error("AlreadyExists", "already_exists", ErrorKind.CONFLICT, "Already exists")
InvalidStatusTransition = _error(
    "InvalidStatusTransition", "invalid_status_transition", ErrorKind.CONFLICT,
    "Not possible in the certificate's current status",
)
NotInitialized = _error(
    "NotInitialized", "not_initialized", ErrorKind.CONFIGURATION, "Platform not initialized (run `eauth init`)"
)

# Key store
KeyStoreError = _error("KeyStoreError", "key_store_error", ErrorKind.UNAVAILABLE, "Key store unavailable")
KeyStoreLocked = _error(
    "KeyStoreLocked", "key_store_locked", ErrorKind.CONFIGURATION,
    "Key store passphrase or PIN missing or wrong", KeyStoreError,
)
KeyNotFound = _error("KeyNotFound", "key_not_found", ErrorKind.CONFIGURATION, "Key not found in key store", KeyStoreError)

# Documents (PDF signing)
NotAPdf = _error("NotAPdf", "not_a_pdf", ErrorKind.INVALID, "Not a PDF document", InvalidInput)
EncryptedPdf = _error("EncryptedPdf", "encrypted_pdf", ErrorKind.INVALID, "Encrypted PDFs are not signed", InvalidInput)
DocumentLocked = _error(
    "DocumentLocked", "document_locked", ErrorKind.INVALID,
    "The PDF is certified with no changes allowed (DocMDP P=1): another signature would break it", InvalidInput,
)
PageOutOfRange = _error("PageOutOfRange", "page_out_of_range", ErrorKind.INVALID, "No such page in the PDF", InvalidInput)
SealBoxOffPage = _error(
    "SealBoxOffPage", "seal_box_off_page", ErrorKind.INVALID, "The seal box is not within the page", InvalidInput
)
InvalidSealImage = _error(
    "InvalidSealImage", "invalid_seal_image", ErrorKind.INVALID, "Seal image is not a usable PNG", InvalidInput
)
SealFontMissing = _error(
    "SealFontMissing", "seal_font_missing", ErrorKind.CONFIGURATION, "The seal font is not installed"
)
NoSealKey = _error(
    "NoSealKey", "no_seal_key", ErrorKind.INVALID,
    "No agency seal certificate with a platform-kept key for this agency", InvalidInput,
)
PdfTooComplex = _error(
    "PdfTooComplex", "pdf_too_complex", ErrorKind.INVALID,
    "The PDF has more pages or objects than the platform accepts", InvalidInput,
)  # extra: limit ("pages" or "objects"), found, allowed (EAUTH_MAX_PDF_PAGES, EAUTH_MAX_PDF_OBJECTS)
SigningUnavailable = _error(
    "SigningUnavailable", "signing_unavailable", ErrorKind.UNAVAILABLE, "Signing worker unavailable"
)

# Storage and license registry
StorageFull = _error("StorageFull", "storage_full", ErrorKind.UNAVAILABLE, "No space left in the document store")
RequestKeyReused = _error(
    "RequestKeyReused", "request_key_reused", ErrorKind.CONFLICT,
    "This request key was used for a different request",
)
LicenseStatusConflict = _error(
    "LicenseStatusConflict", "license_status_conflict", ErrorKind.CONFLICT,
    "Not possible in the license's current status",
)
InvalidImportFile = _error(
    "InvalidImportFile", "invalid_import_file", ErrorKind.INVALID, "The import file cannot be read", InvalidInput
)

# License rendering
UnrenderableCharacter = _error(
    "UnrenderableCharacter", "unrenderable_character", ErrorKind.INVALID,
    "A character has no glyph in the license font", InvalidInput,
)  # extra: field (e.g. "holder_name", "field '经营范围'"), character, position
LicenseContentTooLong = _error(
    "LicenseContentTooLong", "license_content_too_long", ErrorKind.INVALID,
    "The license content does not fit on one page", InvalidInput,
)  # extra: needed, available (points of table height)
QrCodeTooLarge = _error(
    "QrCodeTooLarge", "qr_code_too_large", ErrorKind.INVALID,
    "The QR code URL is too long to print readably", InvalidInput,
)  # extra: version (the QR version the URL needs)

# Licenses
InvalidLicenseIdentifier = _error(
    "InvalidLicenseIdentifier", "invalid_license_identifier", ErrorKind.INVALID,
    "Invalid electronic license identifier", InvalidInput,
)  # extra: segment (prefix, type_code, issuer_code, serial, version, check or None); for check: expected, found
InvalidLicenseType = _error(
    "InvalidLicenseType", "invalid_license_type", ErrorKind.INVALID, "Invalid license type definition", InvalidInput
)  # extra: path (member of the JSON form, e.g. "holder_field", "fields[2].choices"), field when about one field
InvalidLicenseData = _error(
    "InvalidLicenseData", "invalid_license_data", ErrorKind.INVALID,
    "License data does not match its type's schema", InvalidInput,
)  # extra: field (the first problem's), errors (every problem as {"field", "detail"})
InvalidQrToken = _error("InvalidQrToken", "invalid_qr_token", ErrorKind.INVALID, "License QR token not valid", InvalidInput)
QrTokenMalformed = _error(
    "QrTokenMalformed", "qr_token_malformed", ErrorKind.INVALID,
    "Not a license QR token (bad encoding, structure or algorithm)", InvalidQrToken,
)
QrTokenUnknownKey = _error(
    "QrTokenUnknownKey", "qr_token_unknown_key", ErrorKind.INVALID,
    "License QR token signed with a key this platform does not know", InvalidQrToken,
)  # extra: kid
QrTokenBadSignature = _error(
    "QrTokenBadSignature", "qr_token_bad_signature", ErrorKind.INVALID,
    "License QR token signature does not verify (altered or forged)", InvalidQrToken,
)  # extra: kid

# Verification: trust bundles and certificates
InvalidTrustBundle = _error(
    "InvalidTrustBundle", "invalid_trust_bundle", ErrorKind.INVALID, "Not a valid trust bundle", InvalidInput,
)  # extra: path (the member of the JSON document at fault, e.g. "certificates[2].pem")
TrustImportRefused = _error(
    "TrustImportRefused", "trust_import_refused", ErrorKind.INVALID, "This trust bundle cannot be imported",
    InvalidInput,
)  # extra: reason (own_platform, fingerprint_mismatch, root_expired)
PlatformAlreadyTrusted = _error(
    "PlatformAlreadyTrusted", "platform_already_trusted", ErrorKind.CONFLICT,
    "A platform of this name or root is already trusted", AlreadyExists,
)
TrustedPlatformNotFound = _error(
    "TrustedPlatformNotFound", "trusted_platform_not_found", ErrorKind.NOT_FOUND, "No such trusted platform",
    NotFound,
)
InvalidCertificate = _error(
    "InvalidCertificate", "invalid_certificate", ErrorKind.INVALID,
    "Not an X.509 certificate (PEM or base64 DER)", InvalidInput,
)  # extra: field ("certificate" or "chain[1]")

# Certificate login (single sign-on) and presentations
ChallengeInvalid = _error(
    "ChallengeInvalid", "challenge_invalid", ErrorKind.UNAUTHENTICATED,
    "Login challenge unknown, already used, expired or for another audience",
)
LoginSignatureInvalid = _error(
    "LoginSignatureInvalid", "login_signature_invalid", ErrorKind.UNAUTHENTICATED,
    "The challenge signature does not verify with the certificate's key",
)
LoginCertificateRefused = _error(
    "LoginCertificateRefused", "login_certificate_refused", ErrorKind.UNAUTHENTICATED,
    "The certificate may not be used to log in",
)  # extra: reason (untrusted, revoked, suspended, expired, not_holder, usage, unknown)
InvalidLoginToken = _error(
    "InvalidLoginToken", "invalid_login_token", ErrorKind.UNAUTHENTICATED, "Login token invalid", InvalidToken,
)  # extra: reason (malformed, unknown_key, bad_signature, wrong_audience, wrong_issuer, expired)
LoginTokenExpired = _error(
    "LoginTokenExpired", "login_token_expired", ErrorKind.UNAUTHENTICATED, "Login token expired", InvalidLoginToken,
)
InvalidPresentation = _error(
    "InvalidPresentation", "invalid_presentation", ErrorKind.INVALID, "License presentation token not valid",
    InvalidInput,
)  # extra: reason (malformed, unknown_key, bad_signature, expired)
PresentationExpired = _error(
    "PresentationExpired", "presentation_expired", ErrorKind.INVALID, "License presentation expired",
    InvalidPresentation,
)
LoginFailed = _error(
    "LoginFailed", "login_failed", ErrorKind.UNAUTHENTICATED, "The platform refused the login",
)  # extra: server_code (the platform's problem code, e.g. login_certificate_refused), status
ServiceUnreachable = _error(
    "ServiceUnreachable", "service_unreachable", ErrorKind.UNAVAILABLE, "The platform could not be reached",
)

# Authorized use (授权用证): grants of a license to an agency
GrantNotFound = _error(
    "GrantNotFound", "grant_not_found", ErrorKind.NOT_FOUND, "No such grant for you", NotFound,
)  # also for another agency's or another holder's grant: its existence is not disclosed
GrantNotLive = _error(
    "GrantNotLive", "grant_not_live", ErrorKind.FORBIDDEN, "The grant is no longer live",
)  # extra: reason (withdrawn, expired)
GrantPurposeMismatch = _error(
    "GrantPurposeMismatch", "grant_purpose_mismatch", ErrorKind.FORBIDDEN,
    "The stated purpose is not the purpose the holder granted",
)

# Backup and restore (容灾备份)
BackupFailed = _error(
    "BackupFailed", "backup_failed", ErrorKind.UNAVAILABLE, "The backup could not be made",
)  # the target is not writable, or a document the database refers to is missing or corrupt
BackupInvalid = _error(
    "BackupInvalid", "backup_invalid", ErrorKind.INVALID, "Not a complete, intact eauth backup", InvalidInput,
)  # truncated, altered (a member's SHA-256 differs from the manifest), or of an unknown format or schema
RestoreTargetNotEmpty = _error(
    "RestoreTargetNotEmpty", "restore_target_not_empty", ErrorKind.CONFLICT,
    "A restore needs an empty data dir and an empty database",
)

# Infrastructure faults (docs/resilience.md)
DatabaseUnavailable = _error(
    "DatabaseUnavailable", "database_unavailable", ErrorKind.UNAVAILABLE, "Database unavailable",
)  # unreachable, restarting, connection lost, busy or locked: retry after Retry-After (with the same request key)
