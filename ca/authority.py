"""The CA: the platform hierarchy and the one core that builds and signs every certificate."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from datetime import datetime, timedelta, timezone

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes, PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from ca.csr import parse_csr
from ca.profiles import KeyCustody, KeyUsageSpec, Profile, SubjectKind, profile
from ca.records import Actor, AuthorityRecord, CaStore, CertificateRecord
from ca.subjects import ENCRYPTION_SECRET, INDEX_SECRET, PSEUDONYM_SECRET, IdentityProtector, SubjectIdentity
from eauth.errors import Forbidden, InvalidInput, InvalidStatusTransition, NotFound, NotInitialized
from keys.base import KeyAlgorithm, KeyStore, Signer
from keys.x509 import sign_certificate

Clock = Callable[[], datetime]
MIN_PKCS12_PASSWORD = 8


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def random_serial() -> int:
    """A positive random 128-bit serial number (CA/B Forum asks for at least 64 random bits)."""
    return int.from_bytes(secrets.token_bytes(16), "big") or 1


@dataclass(frozen=True, slots=True)
class AuthoritySpec:
    """One certificate of the platform's own hierarchy."""

    name: str
    role: str  # root | issuing | ocsp | tsa
    parent: str | None
    common_name: str
    validity: timedelta

    @property
    def key_label(self) -> str:
        return f"ca-{self.name}"


_YEAR = timedelta(days=365)

#: The hierarchy ``eauth init`` creates, parents before children. Each CA has its own delegated OCSP
#: signer, since RFC 6960 requires the responder certificate to be issued by the CA it answers for.
HIERARCHY: tuple[AuthoritySpec, ...] = (
    AuthoritySpec("root", "root", None, "Root CA", 20 * _YEAR),
    AuthoritySpec("citizen", "issuing", "root", "Citizen CA", 10 * _YEAR),
    AuthoritySpec("enterprise", "issuing", "root", "Enterprise CA", 10 * _YEAR),
    AuthoritySpec("seal", "issuing", "root", "Seal CA", 10 * _YEAR),
    AuthoritySpec("ocsp-root", "ocsp", "root", "Root CA OCSP Responder", 2 * _YEAR),
    AuthoritySpec("ocsp-citizen", "ocsp", "citizen", "Citizen CA OCSP Responder", 2 * _YEAR),
    AuthoritySpec("ocsp-enterprise", "ocsp", "enterprise", "Enterprise CA OCSP Responder", 2 * _YEAR),
    AuthoritySpec("ocsp-seal", "ocsp", "seal", "Seal CA OCSP Responder", 2 * _YEAR),
    AuthoritySpec("tsa", "tsa", "seal", "Time Stamping Authority", 5 * _YEAR),
)


@dataclass(frozen=True, slots=True)
class CaUrls:
    """Where relying parties fetch CRLs, OCSP and issuer certificates; written into every certificate."""

    base: str

    def crl(self, issuer: str) -> str:
        return f"{self.base.rstrip('/')}/crl/{issuer}.crl"

    def ocsp(self) -> str:
        return f"{self.base.rstrip('/')}/ocsp"

    def issuer_certificate(self, issuer: str) -> str:
        return f"{self.base.rstrip('/')}/ca/{issuer}.cer"


def _key_usage(spec: KeyUsageSpec) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=spec.digital_signature,
        content_commitment=spec.content_commitment,
        key_encipherment=spec.key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=spec.key_cert_sign,
        crl_sign=spec.crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


@dataclass(frozen=True, slots=True)
class CertificateContent:
    """Everything that varies between certificates; the core adds what is the same for all."""

    subject: x509.Name
    public_key: CertificatePublicKeyTypes
    not_before: datetime
    not_after: datetime
    is_ca: bool
    key_usage: KeyUsageSpec
    extended_key_usage: tuple[x509.ObjectIdentifier, ...] = ()
    path_length: int | None = None
    ocsp_no_check: bool = False
    serial: int = field(default_factory=random_serial)


def build_certificate(
    content: CertificateContent, *, issuer: AuthorityRecord | None, issuer_signer: Signer, urls: CaUrls
) -> x509.Certificate:
    """Build and sign a certificate; ``issuer=None`` makes it self-signed (the root)."""
    ski = x509.SubjectKeyIdentifier.from_public_key(content.public_key)
    if issuer is None:
        issuer_name, aki = content.subject, x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    else:
        issuer_name, aki = issuer.certificate.subject, _authority_key_identifier(issuer.certificate)
    builder = (
        x509.CertificateBuilder()
        .subject_name(content.subject)
        .issuer_name(issuer_name)
        .public_key(content.public_key)
        .serial_number(content.serial)
        .not_valid_before(content.not_before)
        .not_valid_after(content.not_after)
        .add_extension(x509.BasicConstraints(ca=content.is_ca, path_length=content.path_length), critical=True)
        .add_extension(_key_usage(content.key_usage), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(aki, critical=False)
    )
    if content.extended_key_usage:
        # RFC 3161 requires the TSA's timeStamping EKU to be critical and alone.
        critical = content.extended_key_usage == (ExtendedKeyUsageOID.TIME_STAMPING,)
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(content.extended_key_usage)), critical=critical)
    if content.ocsp_no_check:
        builder = builder.add_extension(x509.OCSPNoCheck(), critical=False)
    if issuer is not None and not content.ocsp_no_check:
        distribution_points, information_access = _status_pointers(issuer.name, urls)
        builder = builder.add_extension(distribution_points, critical=False)
        builder = builder.add_extension(information_access, critical=False)
    return sign_certificate(builder, issuer_signer)


@lru_cache(maxsize=64)
def _authority_key_identifier(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


@lru_cache(maxsize=64)
def _status_pointers(issuer: str, urls: CaUrls) -> tuple[x509.CRLDistributionPoints, x509.AuthorityInformationAccess]:
    """Where to find the status of a certificate ``issuer`` signs: its CRL, OCSP, the issuer's certificate."""
    uri = x509.UniformResourceIdentifier
    return (
        x509.CRLDistributionPoints([x509.DistributionPoint([uri(urls.crl(issuer))], None, None, None)]),
        x509.AuthorityInformationAccess(
            [
                x509.AccessDescription(AuthorityInformationAccessOID.OCSP, uri(urls.ocsp())),
                x509.AccessDescription(AuthorityInformationAccessOID.CA_ISSUERS, uri(urls.issuer_certificate(issuer))),
            ]
        ),
    )


def _authority_content(spec: AuthoritySpec, *, organization: str, public_key, now: datetime, parent_not_after) -> CertificateContent:
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, _common_name(f"{organization} {spec.common_name}")),
        ]
    )
    not_after = now + spec.validity if parent_not_after is None else min(now + spec.validity, parent_not_after)
    common = {"subject": subject, "public_key": public_key, "not_before": now, "not_after": not_after}
    if spec.role in ("root", "issuing"):
        return CertificateContent(
            **common,
            is_ca=True,
            path_length=None if spec.role == "root" else 0,
            key_usage=KeyUsageSpec(key_cert_sign=True, crl_sign=True),
        )
    if spec.role == "ocsp":
        return CertificateContent(
            **common,
            is_ca=False,
            key_usage=KeyUsageSpec(digital_signature=True),
            extended_key_usage=(ExtendedKeyUsageOID.OCSP_SIGNING,),
            ocsp_no_check=True,
        )
    return CertificateContent(
        **common,
        is_ca=False,
        key_usage=KeyUsageSpec(digital_signature=True, content_commitment=True),
        extended_key_usage=(ExtendedKeyUsageOID.TIME_STAMPING,),
    )


@dataclass(frozen=True, slots=True)
class InitResult:
    """What ``initialize`` did: the names it created and those that were already there."""

    created: tuple[str, ...]
    existing: tuple[str, ...]


def initialize(
    keys: KeyStore,
    store: CaStore,
    *,
    urls: CaUrls,
    organization: str,
    algorithm: KeyAlgorithm,
    clock: Clock = utcnow,
) -> InitResult:
    """Create whatever part of the hierarchy is missing; a second run changes nothing.

    A key left by an interrupted run (key made, certificate not stored) is reused, not duplicated.
    """
    created, existing = [], []
    records: dict[str, AuthorityRecord] = {}
    for spec in HIERARCHY:
        found = store.authority(spec.name)
        if found is not None:
            records[spec.name] = found
            existing.append(spec.name)
            continue
        if keys.has_key(spec.key_label):
            signer = keys.signer(spec.key_label)
        else:
            signer = keys.generate(spec.key_label, algorithm)
        parent = records[spec.parent] if spec.parent else None
        content = _authority_content(
            spec,
            organization=organization,
            public_key=signer.public_key,
            now=clock(),
            parent_not_after=parent.certificate.not_valid_after_utc if parent else None,
        )
        parent_signer = keys.signer(parent.key_label) if parent else signer
        certificate = build_certificate(content, issuer=parent, issuer_signer=parent_signer, urls=urls)
        record = AuthorityRecord(spec.name, spec.role, spec.parent, spec.key_label, certificate)
        store.add_authority(record)
        records[spec.name] = record
        created.append(spec.name)
    for label in (PSEUDONYM_SECRET, INDEX_SECRET, ENCRYPTION_SECRET):
        keys.secret(label)
    return InitResult(tuple(created), tuple(existing))


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """The outcome of an issuance: the stored record, the chain up to (excluding) the root, and for a
    key made by the server for its holder, the one and only copy of it as PKCS#12."""

    record: CertificateRecord
    chain: tuple[x509.Certificate, ...]
    pkcs12: bytes | None = None


def _common_name(name: str) -> str:
    """``name`` cut to the 64 UTF-8 bytes cryptography allows in a commonName, at a character boundary
    (a long Chinese organisation name is more than 64 bytes; organizationName keeps it whole)."""
    return name.encode()[:64].decode(errors="ignore")


def _subject_name(identity: SubjectIdentity, pseudonym: str) -> x509.Name:
    if identity.kind is SubjectKind.PERSON:
        attributes = [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, pseudonym),
            x509.NameAttribute(NameOID.COMMON_NAME, _common_name(identity.name)),
        ]
    else:
        # ETSI EN 319 412-1 semantics identifier: NTR (national trade register), country CN.
        attributes = [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, identity.name),
            x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, f"NTRCN-{identity.id_number}"),
            x509.NameAttribute(NameOID.COMMON_NAME, _common_name(identity.name)),
        ]
    return x509.Name(attributes)


class CertificateAuthority:
    """Issues end-entity certificates under the profiles, with keys from ``keys``."""

    def __init__(self, keys: KeyStore, *, urls: CaUrls, key_algorithm: KeyAlgorithm, clock: Clock = utcnow) -> None:
        self.keys = keys
        self.urls = urls
        self.key_algorithm = key_algorithm
        self.clock = clock
        self._protector: IdentityProtector | None = None
        self._issuers: dict[str, tuple[AuthorityRecord, Signer]] = {}

    @property
    def identities(self) -> IdentityProtector:
        if self._protector is None:
            self._protector = IdentityProtector(self.keys)
        return self._protector

    def issuer(self, store: CaStore, name: str) -> tuple[AuthorityRecord, Signer]:
        """An issuing CA and its signer. Cached: a CA certificate never changes once created."""
        cached = self._issuers.get(name)
        if cached is None:
            record = store.authority(name)
            if record is None:
                raise NotInitialized(f"certificate authority {name!r} does not exist (run `eauth init`)")
            cached = self._issuers[name] = (record, self.keys.signer(record.key_label))
        return cached

    def issue(
        self,
        store: CaStore,
        *,
        profile_name: str,
        subject: SubjectIdentity,
        requested_by: int,
        csr: bytes | str | None = None,
        pkcs12_password: str | None = None,
    ) -> IssuedCertificate:
        """Issue a certificate for a subject the requesting agency has verified.

        With ``csr``: the holder's own key, proof of possession checked. Without: the server makes the
        key; for a holder it comes back once in a PKCS#12 under ``pkcs12_password`` and is not kept,
        for a platform-custody profile (agency seal) it is made and kept in the key store.
        """
        prof = profile(profile_name)
        if subject.kind is not prof.subject_kind:
            raise InvalidInput(f"profile {prof.name!r} certifies a {prof.subject_kind.value}, not a {subject.kind.value}")
        identity = subject.validated()
        serial = random_serial()
        holder_key: PrivateKeyTypes | None = None
        key_label = None
        if csr is not None:
            public_key = parse_csr(csr).public_key()
        elif prof.key_custody is KeyCustody.HOLDER:
            if pkcs12_password is None or len(pkcs12_password) < MIN_PKCS12_PASSWORD:
                raise InvalidInput(
                    f"a server-made key needs a PKCS#12 password of at least {MIN_PKCS12_PASSWORD} characters"
                )
            holder_key = self.key_algorithm.generate_software_key()
            public_key = holder_key.public_key()
        subject_record = store.subject_by_index(identity.kind.value, self.identities.index(identity.kind, identity.id_number))
        if subject_record is None or subject_record.name != identity.name:
            subject_record = store.get_or_add_subject(self.identities.new_record(identity, registered_by=requested_by))
        if csr is None and prof.key_custody is KeyCustody.PLATFORM:
            key_label = f"ee-{serial:032x}"
            public_key = self.keys.generate(key_label, self.key_algorithm).public_key
        try:
            record, issuer = self._certify(store, prof, identity, subject_record, public_key, serial=serial,
                                           key_label=key_label, requested_by=requested_by)
        except BaseException:
            if key_label is not None:
                self.keys.delete(key_label)  # a kept key whose certificate was never issued
            raise
        p12 = None
        if holder_key is not None:
            p12 = _pkcs12(identity.name, holder_key, record.certificate, issuer.certificate, pkcs12_password)
        return IssuedCertificate(record, (issuer.certificate,), p12)

    def renew(self, store: CaStore, serial: str, *, actor: Actor, csr: bytes | str | None = None) -> IssuedCertificate:
        """A new certificate for the same subject and profile, linked to the old one (``replaces``):
        with the same key (renewal), or with the key of ``csr`` (re-key). The old one stays as it is;
        revoke it with reason ``superseded`` if it must stop being valid now."""
        old = store.certificate_for_update(serial)
        if old is None:
            raise NotFound(f"no certificate with serial {serial}")
        if not actor.may_change(old):
            raise Forbidden(f"certificate {old.serial} was registered by another agency")
        if old.status != "valid":
            raise InvalidStatusTransition(f"certificate {old.serial} is {old.status}: only a valid one is renewed")
        if old.not_after <= self.clock():
            raise InvalidStatusTransition(f"certificate {old.serial} expired on {old.not_after:%Y-%m-%d}: "
                                          "issue a new one instead")
        subject_record = store.subject(old.subject_id)
        identity = SubjectIdentity(SubjectKind(subject_record.kind), subject_record.name,
                                   self.identities.decrypt(subject_record))
        public_key = parse_csr(csr).public_key() if csr is not None else old.certificate.public_key()
        record, issuer = self._certify(
            store, profile(old.profile), identity, subject_record, public_key, serial=random_serial(),
            key_label=old.key_label if csr is None else None, requested_by=old.requested_by, replaces=old.serial,
        )
        return IssuedCertificate(record, (issuer.certificate,))

    def _certify(self, store: CaStore, prof: Profile, identity: SubjectIdentity, subject_record, public_key, *,
                 serial: int, key_label: str | None, requested_by: int, replaces: str | None = None
                 ) -> tuple[CertificateRecord, AuthorityRecord]:
        """Sign and store the certificate; returns it with its issuer."""
        issuer, issuer_signer = self.issuer(store, prof.issuer)
        certificate = self._sign(prof, identity, subject_record.pseudonym, public_key, serial, issuer, issuer_signer)
        der = certificate.public_bytes(serialization.Encoding.DER)
        record = CertificateRecord(
            serial=f"{serial:x}",
            issuer=issuer.name,
            profile=prof.name,
            subject_id=subject_record.id,
            subject_dn=certificate.subject.rfc4514_string(),
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
            status="valid",
            sha256=hashlib.sha256(der).hexdigest(),
            der=der,
            key_label=key_label,
            requested_by=requested_by,
            created_at=self.clock(),
            replaces=replaces,
        )
        store.add_certificate(record)
        return record, issuer

    def _sign(self, prof: Profile, identity, pseudonym, public_key, serial, issuer, issuer_signer) -> x509.Certificate:
        now = self.clock()
        content = CertificateContent(
            subject=_subject_name(identity, pseudonym),
            public_key=public_key,
            not_before=now,
            not_after=min(now + prof.validity, issuer.certificate.not_valid_after_utc),
            is_ca=False,
            key_usage=prof.key_usage,
            extended_key_usage=prof.extended_key_usage,
            serial=serial,
        )
        return build_certificate(content, issuer=issuer, issuer_signer=issuer_signer, urls=self.urls)


def _pkcs12(name: str, key: PrivateKeyTypes, cert: x509.Certificate, issuer: x509.Certificate, password: str) -> bytes:
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(100_000)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(password.encode())
    )
    return pkcs12.serialize_key_and_certificates(name.encode(), key, cert, [issuer], encryption)
