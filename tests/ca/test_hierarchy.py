"""Content of the platform hierarchy and of issued certificates: identifiers, key usage per role, EKU
per profile, revocation pointers, serial numbers, subject names (no citizen ID number in clear), and
an idempotent ``initialize_platform``.

Uses the session PKI (``platform`` fixture); nothing here re-initializes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from api.platform import initialize_platform
from ca.authority import HIERARCHY
from ca.profiles import DOCUMENT_SIGNING, PROFILES, SubjectKind
from ca.subjects import SubjectIdentity
from store.ca_store import SqlCaStore
from tests.helpers import citizen_id, credit_code, ec_csr

BASE = "http://127.0.0.1:8000"  # the session settings' public_base_url
SPECS = {spec.name: spec for spec in HIERARCHY}
KU_BITS = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
           "key_cert_sign", "crl_sign")
CA_KU = {"key_cert_sign", "crl_sign"}
SIGNING_KU = {"digital_signature", "content_commitment"}
LOGIN_AND_MAIL = [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION]


@dataclass(frozen=True)
class Issued:
    profile: str
    certificate: x509.Certificate
    issuer: str
    subject: SubjectIdentity
    record_serial: str


def issue(platform, agency, profile_name: str, subject: SubjectIdentity, key=None) -> Issued:
    pem, _ = ec_csr(key=key)
    with platform.db.session() as session:
        issued = platform.ca.issue(SqlCaStore(session), profile_name=profile_name, subject=subject,
                                   requested_by=agency.id, csr=pem)
    cert = x509.load_der_x509_certificate(issued.record.der)
    return Issued(profile_name, cert, issued.record.issuer, subject, issued.record.serial)


def person(name: str = "张三", number: str | None = None) -> SubjectIdentity:
    return SubjectIdentity(SubjectKind.PERSON, name, number or citizen_id())


def enterprise(name: str = "深圳市某某科技有限公司", code: str | None = None) -> SubjectIdentity:
    return SubjectIdentity(SubjectKind.ENTERPRISE, name, code or credit_code())


def agency_subject() -> SubjectIdentity:
    return SubjectIdentity(SubjectKind.AGENCY, "深圳市市场监督管理局", credit_code())


@pytest.fixture(scope="module")
def authorities(platform) -> dict[str, x509.Certificate]:
    with platform.db.session() as session:
        return {record.name: record.certificate for record in SqlCaStore(session).authorities()}


@pytest.fixture(scope="module")
def end_entities(platform, agency) -> dict[str, Issued]:
    """One certificate per profile (EC P-256 CSRs), plus a citizen one from an RSA-2048 CSR."""
    return {
        "citizen": issue(platform, agency, "citizen", person()),
        "citizen-rsa": issue(platform, agency, "citizen", person("李四"), key=rsa.generate_private_key(65537, 2048)),
        "enterprise": issue(platform, agency, "enterprise", enterprise()),
        "agency-seal": issue(platform, agency, "agency-seal", agency_subject()),
    }


def ext(cert: x509.Certificate, cls):
    return cert.extensions.get_extension_for_class(cls)


def key_usage_bits(cert: x509.Certificate) -> set[str]:
    usage = ext(cert, x509.KeyUsage).value
    return {bit for bit in KU_BITS if getattr(usage, bit)}


def has(cert: x509.Certificate, cls) -> bool:
    try:
        cert.extensions.get_extension_for_class(cls)
    except x509.ExtensionNotFound:
        return False
    return True


# --- the hierarchy ---------------------------------------------------------------------------------


def test_hierarchy_is_complete(authorities):
    assert set(authorities) == set(SPECS)


@pytest.mark.parametrize("name", list(SPECS))
def test_identifiers_chain_to_the_issuer(authorities, name):
    cert = authorities[name]
    spec = SPECS[name]
    issuer = authorities[spec.parent] if spec.parent else cert
    assert cert.version is x509.Version.v3
    ski = ext(cert, x509.SubjectKeyIdentifier)
    assert not ski.critical
    assert ski.value == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
    aki = ext(cert, x509.AuthorityKeyIdentifier)
    assert not aki.critical
    assert aki.value.key_identifier == ext(issuer, x509.SubjectKeyIdentifier).value.digest
    assert cert.issuer == issuer.subject
    cert.verify_directly_issued_by(issuer)
    assert issuer.not_valid_before_utc <= cert.not_valid_before_utc
    assert cert.not_valid_after_utc <= issuer.not_valid_after_utc


@pytest.mark.parametrize("name", list(SPECS))
def test_role_constraints_and_key_usage(authorities, name):
    cert = authorities[name]
    role = SPECS[name].role
    constraints = ext(cert, x509.BasicConstraints)
    usage = ext(cert, x509.KeyUsage)
    assert constraints.critical and usage.critical
    if role == "root":
        assert (constraints.value.ca, constraints.value.path_length) == (True, None)
        assert cert.issuer == cert.subject
    elif role == "issuing":
        assert (constraints.value.ca, constraints.value.path_length) == (True, 0)
    else:
        assert constraints.value.ca is False
    expected = {"root": CA_KU, "issuing": CA_KU, "ocsp": {"digital_signature"}, "tsa": SIGNING_KU}[role]
    assert key_usage_bits(cert) == expected
    if role in ("root", "issuing"):
        assert not has(cert, x509.ExtendedKeyUsage)


@pytest.mark.parametrize("name", [s.name for s in HIERARCHY if s.role == "ocsp"])
def test_ocsp_signers(authorities, name):
    cert = authorities[name]
    eku = ext(cert, x509.ExtendedKeyUsage)
    assert list(eku.value) == [ExtendedKeyUsageOID.OCSP_SIGNING]
    assert has(cert, x509.OCSPNoCheck)  # id-pkix-ocsp-nocheck: relying parties don't check its status
    # RFC 6960 §4.2.2.2: the delegated responder is issued directly by the CA it answers for.
    assert cert.issuer == authorities[SPECS[name].parent].subject


def test_tsa_eku_is_critical_and_alone(authorities):
    eku = ext(authorities["tsa"], x509.ExtendedKeyUsage)
    assert eku.critical  # RFC 3161 §2.3
    assert list(eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]


def check_revocation_pointers(cert: x509.Certificate, issuer: str) -> None:
    crl_dp = ext(cert, x509.CRLDistributionPoints)
    assert not crl_dp.critical
    assert [[n.value for n in dp.full_name] for dp in crl_dp.value] == [[f"{BASE}/crl/{issuer}.crl"]]
    aia = ext(cert, x509.AuthorityInformationAccess)
    assert not aia.critical
    assert [(d.access_method, d.access_location.value) for d in aia.value] == [
        (AuthorityInformationAccessOID.OCSP, f"{BASE}/ocsp"),
        (AuthorityInformationAccessOID.CA_ISSUERS, f"{BASE}/ca/{issuer}.cer"),
    ]


@pytest.mark.parametrize("name", [s.name for s in HIERARCHY if s.role in ("issuing", "tsa")])
def test_subordinate_authorities_point_to_their_issuer(authorities, name):
    check_revocation_pointers(authorities[name], SPECS[name].parent)


# --- end-entity certificates -----------------------------------------------------------------------

EXPECTED_EKU = {"citizen": LOGIN_AND_MAIL, "enterprise": LOGIN_AND_MAIL, "agency-seal": [DOCUMENT_SIGNING, ExtendedKeyUsageOID.EMAIL_PROTECTION]}


@pytest.mark.parametrize("which", ["citizen", "citizen-rsa", "enterprise", "agency-seal"])
def test_end_entity_content(authorities, end_entities, which):
    issued = end_entities[which]
    cert = issued.certificate
    issuer = authorities[PROFILES[issued.profile].issuer]
    assert issued.issuer == PROFILES[issued.profile].issuer
    cert.verify_directly_issued_by(issuer)
    assert cert.version is x509.Version.v3
    assert ext(cert, x509.SubjectKeyIdentifier).value == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
    assert ext(cert, x509.AuthorityKeyIdentifier).value.key_identifier == \
        ext(issuer, x509.SubjectKeyIdentifier).value.digest
    constraints = ext(cert, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca is False
    assert ext(cert, x509.KeyUsage).critical
    assert key_usage_bits(cert) == SIGNING_KU
    eku = ext(cert, x509.ExtendedKeyUsage)
    assert not eku.critical
    assert list(eku.value) == EXPECTED_EKU[issued.profile]
    check_revocation_pointers(cert, issued.issuer)
    assert cert.not_valid_after_utc <= issuer.not_valid_after_utc
    assert cert.not_valid_after_utc - cert.not_valid_before_utc <= PROFILES[issued.profile].validity
    assert issued.record_serial == f"{cert.serial_number:x}"


def test_rsa_csr_keeps_its_rsa_key(end_entities):
    key = end_entities["citizen-rsa"].certificate.public_key()
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048


def test_serial_numbers_are_128_random_bits(platform, agency, authorities, end_entities):
    subject = enterprise("批量有限公司")
    certs = [issue(platform, agency, "enterprise", subject).certificate for _ in range(50)]
    serials = [c.serial_number for c in certs]
    assert len(set(serials)) == 50
    for serial in serials:
        assert serial > 0
        assert (serial.bit_length() + 8) // 8 <= 20  # DER INTEGER content octets, sign bit included
        assert serial < 2**128
    # 128 random bits: the top bit is set in about half of them, every bit position is used, and none is
    # small (each check fails by chance with probability below 2**-40).
    assert max(s.bit_length() for s in serials) == 128
    union = 0
    for serial in serials:
        union |= serial
    assert union == 2**128 - 1
    assert min(serials) >= 2**64
    assert len({s >> 64 for s in serials}) == 50  # not a counter under a fixed prefix
    others = [c.serial_number for c in authorities.values()]
    others += [i.certificate.serial_number for i in end_entities.values()]
    assert all(0 < s < 2**128 for s in others)


# --- subject names ---------------------------------------------------------------------------------


def test_person_subject_holds_a_pseudonym_not_the_id_number(platform, agency):
    number = citizen_id()
    issued = issue(platform, agency, "citizen", person("王五", number))
    der = issued.certificate.public_bytes(Encoding.DER)
    for encoding in ("ascii", "utf-16-be"):  # PrintableString/UTF8String, BMPString
        assert number.encode(encoding) not in der
        assert number[:17].encode(encoding) not in der  # not even without its check character
        assert number[6:14].encode(encoding) not in der  # nor the date of birth inside it
    pseudonym = platform.ca.identities.pseudonym(SubjectKind.PERSON, number)
    subject = issued.certificate.subject
    assert [(a.oid, a.value) for a in subject] == [
        (NameOID.COUNTRY_NAME, "CN"),
        (NameOID.SERIAL_NUMBER, pseudonym),
        (NameOID.COMMON_NAME, "王五"),
    ]
    assert number not in pseudonym and number not in subject.rfc4514_string()
    assert len(pseudonym) <= 64  # ub-serial-number


def test_pseudonym_is_stable_per_person_and_differs_between_people(platform, agency):
    number = citizen_id()
    first = issue(platform, agency, "citizen", person("赵六", number)).certificate
    again = issue(platform, agency, "citizen", person("赵六", number)).certificate
    other = issue(platform, agency, "citizen", person("赵六")).certificate

    def pseudonym(cert: x509.Certificate) -> str:
        (attribute,) = cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
        return attribute.value

    assert first.serial_number != again.serial_number
    assert first.public_key() != again.public_key()
    assert pseudonym(first) == pseudonym(again)
    assert pseudonym(first) != pseudonym(other)


def test_enterprise_subject_carries_the_credit_code_as_organization_identifier(platform, agency):
    code = credit_code()
    cert = issue(platform, agency, "enterprise", enterprise("广州某某贸易有限公司", code)).certificate
    subject = cert.subject
    assert [a.value for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_IDENTIFIER)] == [f"NTRCN-{code}"]
    assert [a.value for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == ["广州某某贸易有限公司"]
    assert [a.value for a in subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)] == ["CN"]
    assert not subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)


# --- idempotent initialization ---------------------------------------------------------------------


def test_second_initialization_creates_nothing(settings, platform, authorities):
    result, migrated = initialize_platform(settings)
    assert result.created == ()
    assert migrated is False
    assert set(SPECS) <= set(result.existing)
    with platform.db.session() as session:
        after = {record.name: record.certificate for record in SqlCaStore(session).authorities()}
    assert after == authorities  # same certificates, not re-made
