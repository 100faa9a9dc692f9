"""Certificate verification: POST /api/v1/verify/certificate (scope verify) and verify.certificate:
good, revoked, suspended, expired, foreign, wrong chain, constraints, garbage."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from api.routes import verify_certificate as route
from api.verification import certificate_status, trust_anchors
from ca.lifecycle import RevocationReason
from ca.profiles import SubjectKind
from ca.records import Actor
from ca.subjects import SubjectIdentity
from store.ca_store import SqlCaStore
from tests.conftest import token_for
from tests.helpers import assert_problem, citizen_id, credit_code, ec_csr
from verify.certificate import parse_certificate, verify_certificate

URL = "/api/v1/verify/certificate"
OPERATOR = Actor(None)


@pytest.fixture(scope="module")
def verifier(api, platform, agency):
    return {"Authorization": f"Bearer {token_for(api, platform, agency.code, {'verify'})}"}


def issue(platform, agency, profile: str = "citizen") -> x509.Certificate:
    kind, number = {"citizen": (SubjectKind.PERSON, citizen_id()),
                    "enterprise": (SubjectKind.ENTERPRISE, credit_code())}[profile]
    with platform.db.session() as session:
        issued = platform.ca.issue(SqlCaStore(session), profile_name=profile, requested_by=agency.id,
                                   csr=ec_csr()[0], subject=SubjectIdentity(kind, "张三" if kind is SubjectKind.PERSON
                                                                            else "深圳市示例科技有限公司", number))
    return issued.record.certificate


def pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(Encoding.PEM).decode()


def post(api, headers, certificate, chain=()):
    body = {"certificate": certificate if isinstance(certificate, str) else pem(certificate),
            "chain": [c if isinstance(c, str) else pem(c) for c in chain]}
    return api.post(URL, json=body, headers=headers)


def test_good_citizen_certificate(api, verifier, platform, agency):
    cert = issue(platform, agency)
    response = post(api, verifier, cert)
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["indication"], report["sub_indication"]) == ("TOTAL_PASSED", None)
    assert report["profile"] == "citizen" and report["status"]["status"] == "good"
    assert report["trust_anchor"] == platform.settings.platform_name
    assert [c["subject"] for c in report["chain"]][1].endswith("Citizen CA,O=eauth demo platform,C=CN")
    assert len(report["chain"]) == 3 and report["certificate"]["serial"] == f"{cert.serial_number:x}"
    assert "clientAuth" in report["extended_key_usage"] and "digital_signature" in report["key_usage"]
    # base64 DER is accepted as well as PEM
    der = base64.b64encode(cert.public_bytes(Encoding.DER)).decode()
    assert post(api, verifier, der).json()["indication"] == "TOTAL_PASSED"


def test_profiles(api, verifier, platform, agency):
    from tests.pdf_helpers import issue_seal

    assert post(api, verifier, issue(platform, agency, "enterprise")).json()["profile"] == "enterprise"
    seal = issue_seal(platform, agency.id).certificate
    report = post(api, verifier, seal).json()
    assert report["profile"] == "agency-seal" and report["indication"] == "TOTAL_PASSED"
    with platform.db.session() as session:
        store = SqlCaStore(session)
        tsa, root = store.authority("tsa").certificate, store.authority("root").certificate
    report = post(api, verifier, tsa).json()
    assert report["profile"] == "tsa" and report["indication"] == "TOTAL_PASSED"
    report = post(api, verifier, root).json()
    assert report["profile"] == "ca" and report["indication"] == "TOTAL_PASSED" and len(report["chain"]) == 1


def test_revoked(api, verifier, platform, agency):
    cert = issue(platform, agency)
    with platform.db.session() as session:
        platform.lifecycle.revoke(SqlCaStore(session), f"{cert.serial_number:x}",
                                  reason=RevocationReason.KEY_COMPROMISE, actor=OPERATOR)
    report = post(api, verifier, cert).json()
    assert (report["indication"], report["sub_indication"]) == ("TOTAL_FAILED", "REVOKED")
    assert report["status"]["status"] == "revoked" and report["status"]["reason"] == "keyCompromise"
    assert report["status"]["since"] and "revoked" in report["detail"]


def test_suspended_then_reinstated(api, verifier, platform, agency):
    cert = issue(platform, agency)
    serial = f"{cert.serial_number:x}"
    with platform.db.session() as session:
        platform.lifecycle.suspend(SqlCaStore(session), serial, actor=OPERATOR)
    report = post(api, verifier, cert).json()
    assert (report["indication"], report["sub_indication"]) == ("INDETERMINATE", "TRY_LATER")
    assert report["status"]["status"] == "suspended"
    with platform.db.session() as session:
        platform.lifecycle.reinstate(SqlCaStore(session), serial, actor=OPERATOR)
    assert post(api, verifier, cert).json()["indication"] == "TOTAL_PASSED"


def test_expired(api, verifier, platform, agency, monkeypatch):
    cert = issue(platform, agency)
    monkeypatch.setattr(route, "now", lambda: cert.not_valid_after_utc + timedelta(days=1))
    report = post(api, verifier, cert).json()
    assert (report["indication"], report["sub_indication"]) == ("INDETERMINATE", "OUT_OF_BOUNDS_NOT_REVOKED")
    assert "expired" in report["detail"]
    monkeypatch.setattr(route, "now", lambda: cert.not_valid_before_utc - timedelta(days=1))
    assert post(api, verifier, cert).json()["sub_indication"] == "OUT_OF_BOUNDS_NOT_REVOKED"


def _ca(name: x509.Name, key, issuer_name=None, issuer_key=None, *, ca=True, path_length=None, key_cert_sign=True):
    now = datetime.now(timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name or name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=30))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=not ca, content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False,
                                            key_cert_sign=key_cert_sign, crl_sign=ca, encipher_only=False,
                                            decipher_only=False), critical=True))
    return builder.sign(issuer_key or key, hashes.SHA256())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def test_foreign_certificate(api, verifier):
    root_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root = _ca(_name("Stranger Root"), root_key)
    leaf = _ca(_name("someone"), leaf_key, root.subject, root_key, ca=False, key_cert_sign=False)
    report = post(api, verifier, leaf, chain=[root]).json()  # a root in the chain is never an anchor
    assert (report["indication"], report["sub_indication"]) == ("INDETERMINATE", "NO_CERTIFICATE_CHAIN_FOUND")
    assert report["trust_anchor"] is None and report["chain"] == [] and report["status"]["status"] == "unknown"
    assert "not to the root of a trusted platform" in report["detail"]
    alone = post(api, verifier, leaf).json()
    assert alone["sub_indication"] == "NO_CERTIFICATE_CHAIN_FOUND"
    assert "not a CA of any trusted platform" in alone["detail"]


def test_wrong_chain(api, verifier, platform):
    """A CA with our citizen CA's very name, under a root with our root's name: names match, keys don't."""
    with platform.db.session() as session:
        store = SqlCaStore(session)
        ours_root, ours_citizen = store.authority("root").certificate, store.authority("citizen").certificate
    root_key, ca_key, leaf_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    fake_root = _ca(ours_root.subject, root_key)
    fake_ca = _ca(ours_citizen.subject, ca_key, fake_root.subject, root_key, path_length=0)
    leaf = _ca(_name("impostor"), leaf_key, fake_ca.subject, ca_key, ca=False, key_cert_sign=False)
    report = post(api, verifier, leaf, chain=[fake_ca, fake_root]).json()
    assert (report["indication"], report["sub_indication"]) == ("INDETERMINATE", "NO_CERTIFICATE_CHAIN_FOUND")
    assert "not to the root of a trusted platform" in report["detail"]
    alone = post(api, verifier, leaf, chain=[fake_ca]).json()  # the fake CA's own signer is ours by name only
    assert alone["sub_indication"] == "NO_CERTIFICATE_CHAIN_FOUND"
    forged = _ca(_name("impostor"), leaf_key, ours_citizen.subject, ca_key, ca=False, key_cert_sign=False)
    assert "did not sign" in post(api, verifier, forged).json()["detail"]


def test_chain_constraints(platform, agency):
    """A CA of ours that may not sign certificates, in the domain function (no such CA exists over HTTP)."""
    from verify.pdf import TrustAnchor, TrustAnchors

    root_key, ca_key, leaf_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root = _ca(_name("Test Root"), root_key)
    trust = TrustAnchors(roots=(TrustAnchor("test", root),))
    now = datetime.now(timezone.utc)
    for ca, sub in ((_ca(_name("No Sign CA"), ca_key, root.subject, root_key, key_cert_sign=False),
                     "CHAIN_CONSTRAINTS_FAILURE"),
                    (_ca(_name("Not a CA"), ca_key, root.subject, root_key, ca=False), "CHAIN_CONSTRAINTS_FAILURE")):
        leaf = _ca(_name("leaf"), leaf_key, ca.subject, ca_key, ca=False, key_cert_sign=False)
        report = verify_certificate(leaf, chain=[ca], trust=trust, status=None, now=now)
        assert (report.indication, report.sub_indication) == ("INDETERMINATE", sub), report.findings
        assert report.trust_anchor == "test"
    # path length: root → CA(pathlen 0) → CA → leaf
    mid_key = ec.generate_private_key(ec.SECP256R1())
    top = _ca(_name("Top CA"), ca_key, root.subject, root_key, path_length=0)
    mid = _ca(_name("Mid CA"), mid_key, top.subject, ca_key)
    leaf = _ca(_name("leaf"), leaf_key, mid.subject, mid_key, ca=False, key_cert_sign=False)
    report = verify_certificate(leaf, chain=[mid, top], trust=trust, status=None, now=now)
    assert report.sub_indication == "CHAIN_CONSTRAINTS_FAILURE" and "allows 0" in report.detail
    # unknown status of a certificate that chains (no record at the issuer)
    ok = _ca(_name("Good CA"), ca_key, root.subject, root_key)
    leaf = _ca(_name("leaf"), leaf_key, ok.subject, ca_key, ca=False, key_cert_sign=False)
    report = verify_certificate(leaf, chain=[ok], trust=trust, status=None, now=now)
    assert (report.indication, report.sub_indication) == ("INDETERMINATE", "REVOCATION_UNKNOWN")


def test_unknown_to_our_records(platform):
    """Signed by our citizen CA's key but never recorded (as a leaked-key forgery would be): unknown."""
    with platform.db.session() as session:
        citizen = SqlCaStore(session).authority("citizen")
    signer = platform.keys.signer(citizen.key_label)
    from keys.x509 import sign_certificate

    now = datetime.now(timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (x509.CertificateBuilder().subject_name(_name("ghost")).issuer_name(citizen.certificate.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True))
    ghost = sign_certificate(builder, signer)
    report = verify_certificate(ghost, trust=trust_anchors(platform), status=certificate_status(platform), now=now)
    assert (report.indication, report.sub_indication) == ("INDETERMINATE", "REVOCATION_UNKNOWN")


@pytest.mark.parametrize("body", [
    {"certificate": "hello"},
    {"certificate": base64.b64encode(b"\x30\x03\x02\x01\x01").decode()},
    {"certificate": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"},
    {"certificate": "证书"},
    {"certificate": ""},
])
def test_garbage_is_a_problem(api, verifier, body):
    body = assert_problem(api.post(URL, json=body, headers=verifier), 400, "invalid_certificate")
    assert body["field"] == "certificate"


def test_garbage_in_chain(api, verifier, platform, agency):
    body = assert_problem(post(api, verifier, issue(platform, agency), chain=["nope"]), 400, "invalid_certificate")
    assert body["field"] == "chain[0]"


@pytest.mark.parametrize("body", [{}, {"certificate": 5}, {"certificate": "x", "chain": ["x"] * 9},
                                  {"certificate": "x" * 100_001}])
def test_malformed_request(api, verifier, body):
    assert_problem(api.post(URL, json=body, headers=verifier), 422, "invalid_request")


def test_scope(api, platform, agency):
    assert_problem(api.post(URL, json={"certificate": "x"}), 401, "invalid_token")
    other = {"Authorization": f"Bearer {token_for(api, platform, agency.code, {'certificates:read'})}"}
    assert_problem(api.post(URL, json={"certificate": "x"}, headers=other), 403, "insufficient_scope")


def test_parse_certificate_forms(platform):
    with platform.db.session() as session:
        root = SqlCaStore(session).authority("root").certificate
    der = root.public_bytes(Encoding.DER)
    for form in (pem(root), der, base64.b64encode(der).decode(), base64.encodebytes(der).decode()):
        assert parse_certificate(form) == root
