"""Certificate profiles: what each class of certificate contains.

A profile is policy only (like smallstep's provisioner options): it hands key usage, EKU, validity
and subject rules to the one signing core in ``ca.authority``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import Enum

from cryptography.x509 import ExtendedKeyUsageOID, ObjectIdentifier

from eauth.errors import UnknownProfile

DOCUMENT_SIGNING = ObjectIdentifier("1.3.6.1.5.5.7.3.36")  # id-kp-documentSigning, RFC 9336


class SubjectKind(Enum):
    PERSON = "person"
    ENTERPRISE = "enterprise"
    AGENCY = "agency"


class KeyCustody(Enum):
    """Who keeps a server-generated private key."""

    HOLDER = "holder"  # handed over once as PKCS#12, not kept
    PLATFORM = "platform"  # made and kept in the platform key store (agency seals); never exported


@dataclass(frozen=True, slots=True)
class KeyUsageSpec:
    """The RFC 5280 key usage bits a profile sets (all others clear)."""

    digital_signature: bool = False
    content_commitment: bool = False
    key_encipherment: bool = False
    key_cert_sign: bool = False
    crl_sign: bool = False


@dataclass(frozen=True, slots=True)
class Profile:
    """An end-entity certificate class."""

    name: str
    #: Which issuing CA signs it.
    issuer: str
    #: The kind of subject it certifies; the identity number scheme follows from it.
    subject_kind: SubjectKind
    validity: timedelta
    key_usage: KeyUsageSpec
    extended_key_usage: tuple[ObjectIdentifier, ...]
    #: Where a key made by the server goes.
    key_custody: KeyCustody
    description: str


_SIGNING = KeyUsageSpec(digital_signature=True, content_commitment=True)

PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            name="citizen",
            issuer="citizen",
            subject_kind=SubjectKind.PERSON,
            validity=timedelta(days=730),
            key_usage=_SIGNING,
            extended_key_usage=(ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION),
            key_custody=KeyCustody.HOLDER,
            description="A person: login to government services and personal signatures.",
        ),
        Profile(
            name="enterprise",
            issuer="enterprise",
            subject_kind=SubjectKind.ENTERPRISE,
            validity=timedelta(days=730),
            key_usage=_SIGNING,
            extended_key_usage=(ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION),
            key_custody=KeyCustody.HOLDER,
            description="An enterprise by its unified social credit code: login and company signatures.",
        ),
        Profile(
            name="agency-seal",
            issuer="seal",
            subject_kind=SubjectKind.AGENCY,
            validity=timedelta(days=1095),
            key_usage=_SIGNING,
            # documentSigning says what the key is for; emailProtection as well because NSS (poppler's
            # pdfsig, Firefox, LibreOffice) checks PDF signers as S/MIME signers and refuses a
            # certificate whose EKU lacks it ("Certificate type not approved for application").
            extended_key_usage=(DOCUMENT_SIGNING, ExtendedKeyUsageOID.EMAIL_PROTECTION),
            key_custody=KeyCustody.PLATFORM,
            description="An agency's electronic seal (电子印章) for licenses and official documents.",
        ),
    )
}


def profile(name: str) -> Profile:
    """The profile called ``name`` or UnknownProfile."""
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(PROFILES)
        raise UnknownProfile(f"unknown profile {name!r}; known profiles: {known}") from None
