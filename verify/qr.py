"""Verifying a license's QR token: the signature offline (published keys), then the license's current
status in the registry (online). What a phone scanning a printed license, or a relying system, learns.

The report says only what the token and the registry say about the license's validity: its type,
issuer, validity dates, status, and the holder's name masked (the QR is printed on paper and anyone
may scan it). The license data itself is not disclosed.

A token signed with the QR key of a platform this one trusts (mutual recognition, ``foreign``) is
genuine, but its license is in that platform's registry, not ours: the report says ``foreign``, names
the platform and where to check the status, and shows what the token itself says.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date

from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from jwt import get_unverified_header

from eauth.errors import InvalidQrToken
from licenses.issuance import effective_status
from licenses.records import LicenseRecord, VersionRecord
from licenses.token import QrClaims, verify_qr_token

#: What a status means, in words, for the public page and the report.
STATUS_TEXT = {
    "valid": ("有效", "Valid"),
    "suspended": ("已暂停", "Suspended"),
    "revoked": ("已撤销", "Revoked"),
    "cancelled": ("已注销", "Cancelled"),
    "expired": ("已过期", "Expired"),
    "superseded": ("已被新版本取代", "Superseded by a newer version"),
    "unknown": ("登记库中无此证照", "Not in the registry"),
    "altered": ("数据与登记不符", "Does not match the registry"),
    "invalid": ("二维码无效", "Invalid QR code"),
    "foreign": ("他平台签发，请到签发平台核验状态", "Issued by a trusted platform: check its status there"),
}


@dataclass(frozen=True, slots=True)
class QrLicense:
    """The license a token names, as far as the public may see it."""

    identifier: str
    type_code: str
    type_name: str | None
    issuer_code: str
    issuer_name: str | None
    holder: str | None  # masked
    issued_on: date
    valid_until: date | None
    version: int
    current_identifier: str | None  # the current version's, when this one is superseded


@dataclass(frozen=True, slots=True)
class ForeignIssuer:
    """A platform whose QR tokens verify here (imported trust): its name and where its registry is."""

    name: str
    base_url: str | None


@dataclass(frozen=True, slots=True)
class QrReport:
    """The outcome: ``status`` is one of ``STATUS_TEXT``; ``valid`` only for a genuine token of a
    license that is valid now and whose data is the registry's. ``issued_by``: the trusted platform
    that signed a ``foreign`` token."""

    status: str
    signature_valid: bool
    detail: str
    license: QrLicense | None = None
    error_code: str | None = None
    issued_by: ForeignIssuer | None = None

    @property
    def valid(self) -> bool:
        return self.status == "valid"


@dataclass(frozen=True, slots=True)
class RegistryEntry:
    """What the registry holds for the token's identifier (the version it names and the license)."""

    license: LicenseRecord
    version: VersionRecord
    type_name: str | None
    issuer_name: str | None


def mask_name(name: str) -> str:
    """A name as the public page shows it: 张三 → 张*, 欧阳娜娜 → 欧**娜, an enterprise keeps its
    first two and last two characters (深圳***公司)."""
    if len(name) <= 2:
        return name[:1] + "*" * (len(name) - 1)
    if len(name) <= 4:
        return name[0] + "*" * (len(name) - 2) + name[-1]
    return name[:2] + "***" + name[-2:]


def verify_qr(token: str, *, keys: Mapping[str, EllipticCurvePublicKey],
              lookup: Callable[[str], RegistryEntry | None], today: date,
              foreign: Mapping[str, tuple[EllipticCurvePublicKey, ForeignIssuer]] | None = None) -> QrReport:
    """Check ``token``'s signature with ``keys`` (ours, by kid) or ``foreign`` (trusted platforms'),
    then what our registry says of the license. Never raises for a bad token: the report says why it
    is not valid."""
    foreign = foreign or {}
    try:
        claims = verify_qr_token(token, {**{kid: key for kid, (key, _) in foreign.items()}, **keys})
    except InvalidQrToken as exc:
        return QrReport(status="invalid", signature_valid=False, detail=exc.detail, error_code=exc.code)
    kid = get_unverified_header(token)["kid"]  # verified just now
    if kid not in keys:
        issuer = foreign[kid][1]
        where = f": check its status at {issuer.base_url}" if issuer.base_url else ""
        return QrReport(status="foreign", signature_valid=True, license=_from_claims(claims), issued_by=issuer,
                        detail=f"genuine, issued by {issuer.name}; its status is not checkable here{where}")
    entry = lookup(str(claims.identifier))
    if entry is None:
        return QrReport(status="unknown", signature_valid=True, license=_from_claims(claims),
                        detail="the token is genuine but the registry has no license with this identifier")
    license = QrLicense(
        identifier=entry.version.identifier, type_code=entry.license.type_code, type_name=entry.type_name,
        issuer_code=entry.license.issuer_code, issuer_name=entry.issuer_name,
        holder=mask_name(entry.license.holder_name), issued_on=entry.version.issued_on,
        valid_until=entry.version.valid_until, version=entry.version.version,
        current_identifier=entry.license.identifier if entry.license.version != entry.version.version else None,
    )
    if not claims.binds(bytes.fromhex(entry.version.digest)) or claims.issued_on != entry.version.issued_on:
        return QrReport(status="altered", signature_valid=True, license=license,
                        detail="the token's data digest or dates are not those the registry holds")
    status = effective_status(entry.license, today, version=entry.version)
    detail = {"valid": "genuine, and valid now", "superseded": f"superseded by {license.current_identifier}"}.get(
        status, f"genuine, but the license is {status}" + (f": {entry.license.status_reason}"
                                                           if entry.license.status_reason else ""))
    return QrReport(status=status, signature_valid=True, license=license, detail=detail)


def _from_claims(claims: QrClaims) -> QrLicense:
    return QrLicense(identifier=str(claims.identifier), type_code=claims.type_code, type_name=None,
                     issuer_code=claims.issuer_code, issuer_name=None, holder=None, issued_on=claims.issued_on,
                     valid_until=claims.expires_on, version=claims.identifier.version, current_identifier=None)
