"""The OCSP responder in the domain: what it answers for each status, how it reads requests (and
refuses what is not one), how it signs, and how stored responses are reused and invalidated.

Responses are checked with cryptography (structure and signature, independently of our encoder) and,
in the interop tests, with pkilint's OCSP linter and with a responder key on a PKCS#11 token.
Time is frozen where it matters: the responder runs on a clock the test moves. Uses the session PKI.
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
from datetime import datetime, timedelta, timezone

import pytest
from asn1crypto import algos as asn1_algos
from asn1crypto import core as asn1_core
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from ca.authority import utcnow
from ca.lifecycle import CertificateLifecycle, RevocationReason
from ca.ocsp import (
    MAX_CERT_IDS, CachedResponse, CertificateStatus, MalformedRequest, OcspResponder, ResponseStatus, parse_request,
)
from ca.profiles import SubjectKind
from ca.records import Actor, CertificateRecord
from ca.subjects import SubjectIdentity
from store.ca_store import SqlCaStore
from store.db import DatabaseUnavailable
from store.models import OcspResponse
from store.ocsp_store import SqlOcspStore
from tests.helpers import citizen_id, credit_code, ec_csr

OPERATOR = Actor(None)
VALIDITY = timedelta(hours=1)
MARGIN = timedelta(minutes=10)
MALFORMED = bytes.fromhex("3003 0a01 01")
UNAUTHORIZED = bytes.fromhex("3003 0a01 06")


class FrozenClock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, delta: timedelta) -> None:
        self.at += delta


# --- fixtures and helpers --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def authorities(platform):
    with platform.db.session() as session:
        return {record.name: record for record in SqlCaStore(session).authorities()}


@pytest.fixture(scope="module")
def store(platform):
    opened = SqlOcspStore(platform.db)
    yield opened
    opened.close()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(utcnow().replace(microsecond=0))


@pytest.fixture
def responder(platform, authorities, clock) -> OcspResponder:
    return OcspResponder(authorities.values(), platform.keys, validity=VALIDITY, reuse_margin=MARGIN, clock=clock)


def issue(platform, agency, profile: str = "citizen") -> CertificateRecord:
    kind = SubjectKind.PERSON if profile == "citizen" else SubjectKind.ENTERPRISE
    number = citizen_id() if kind is SubjectKind.PERSON else credit_code()
    with platform.db.session() as session:
        return platform.ca.issue(SqlCaStore(session), profile_name=profile, subject=SubjectIdentity(kind, "张三", number),
                                 requested_by=agency.id, csr=ec_csr()[0]).record


def change(platform, action: str, serial: str, **kwargs) -> None:
    with platform.db.session() as session:
        getattr(CertificateLifecycle(), action)(SqlCaStore(session), serial, actor=OPERATOR, **kwargs)


def request_for(record: CertificateRecord, issuer: x509.Certificate, *, algorithm=hashes.SHA1(),
                nonce: bytes | None = None) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(record.certificate, issuer, algorithm)
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def cert_id(issuer: x509.Certificate, serial: int, *, algorithm: str = "sha1", null_parameters: bool = True) -> dict:
    """An asn1crypto CertID for ``serial`` under ``issuer``, computed independently of the responder."""
    cert = asn1_x509.Certificate.load(issuer.public_bytes(serialization.Encoding.DER))
    key = cert.public_key["public_key"].contents[1:]
    hash_algorithm = {"algorithm": algorithm}
    if null_parameters:
        hash_algorithm["parameters"] = asn1_core.Null()
    return {
        "hash_algorithm": asn1_algos.DigestAlgorithm(hash_algorithm),
        "issuer_name_hash": hashlib.new(algorithm, cert.subject.dump()).digest(),
        "issuer_key_hash": hashlib.new(algorithm, key).digest(),
        "serial_number": serial,
    }


def request_of(*cert_ids: dict, extensions: list | None = None, **tbs) -> bytes:
    """An OCSPRequest built with asn1crypto, for what cryptography's builder can't make."""
    tbs_request = {"request_list": [{"req_cert": c} for c in cert_ids], **tbs}
    if extensions is not None:
        tbs_request["request_extensions"] = extensions
    return asn1_ocsp.OCSPRequest({"tbs_request": tbs_request}).dump()


def verified(der: bytes, ca: x509.Certificate) -> ocsp.OCSPResponse:
    """The parsed response, after checking its signature and its responder as a relying party does
    (RFC 6960 §4.2.2.2): a certificate issued by the CA, with the OCSP signing EKU, named by key hash."""
    response = ocsp.load_der_ocsp_response(der)
    assert response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    (responder,) = response.certificates
    assert responder.issuer == ca.subject
    responder.verify_directly_issued_by(ca)
    eku = responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.OCSP_SIGNING in eku
    assert responder.extensions.get_extension_for_class(x509.OCSPNoCheck)
    assert response.responder_name is None
    assert response.responder_key_hash == x509.SubjectKeyIdentifier.from_public_key(responder.public_key()).digest
    assert response.signature_algorithm_oid == x509.SignatureAlgorithmOID.ECDSA_WITH_SHA256
    responder.public_key().verify(response.signature, response.tbs_response_bytes, ec.ECDSA(hashes.SHA256()))
    return response


def stored(platform, record: CertificateRecord) -> bytes | None:
    with platform.db.session() as session:
        return session.scalar(select(OcspResponse.der).where(OcspResponse.serial == record.serial))


# --- statuses ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", [hashes.SHA1(), hashes.SHA256(), hashes.SHA384(), hashes.SHA512()],
                         ids=lambda a: a.name)
def test_good(platform, agency, authorities, responder, store, clock, algorithm):
    record = issue(platform, agency)
    citizen = authorities["citizen"].certificate
    answer = responder.respond(request_for(record, citizen, algorithm=algorithm), store)
    assert answer.status is ResponseStatus.SUCCESSFUL
    response = verified(answer.der, citizen)
    assert response.certificates[0] == authorities["ocsp-citizen"].certificate
    assert response.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert response.serial_number == int(record.serial, 16)
    assert isinstance(response.hash_algorithm, type(algorithm))
    assert response.produced_at_utc == response.this_update_utc == clock.at
    assert response.next_update_utc == clock.at + VALIDITY
    assert (answer.this_update, answer.next_update) == (clock.at, clock.at + VALIDITY)
    assert list(response.extensions) == [] and list(response.single_extensions) == []


def test_enterprise_ca_answers_through_its_own_responder(platform, agency, authorities, responder, store):
    record = issue(platform, agency, "enterprise")
    enterprise = authorities["enterprise"].certificate
    response = verified(responder.respond(request_for(record, enterprise), store).der, enterprise)
    assert response.certificates[0] == authorities["ocsp-enterprise"].certificate
    assert response.certificate_status is ocsp.OCSPCertStatus.GOOD
    citizen = authorities["citizen"].certificate  # the citizen CA never issued that serial
    response = verified(responder.respond(request_of(cert_id(citizen, int(record.serial, 16))), store).der, citizen)
    assert response.certificate_status is ocsp.OCSPCertStatus.UNKNOWN


def test_revoked_with_reason_and_invalidity_date(platform, agency, authorities, responder, store):
    record = issue(platform, agency)
    compromised = record.not_before + timedelta(minutes=1)
    if compromised > utcnow():
        compromised = record.not_before
    change(platform, "revoke", record.serial, reason=RevocationReason.KEY_COMPROMISE, invalidity_date=compromised)
    with platform.db.session() as session:
        revoked_at = SqlCaStore(session).certificate(record.serial).revoked_at
    citizen = authorities["citizen"].certificate
    response = verified(responder.respond(request_for(record, citizen), store).der, citizen)
    assert response.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert response.revocation_time_utc == revoked_at
    assert response.revocation_reason is x509.ReasonFlags.key_compromise
    (extension,) = response.single_extensions
    assert extension.value == x509.InvalidityDate(compromised.replace(tzinfo=None))


def test_revoked_for_an_unspecified_reason_has_no_reason(platform, agency, authorities, responder, store):
    """As in the CRL entry (RFC 5280 §5.3.1), the reason unspecified is left out."""
    record = issue(platform, agency)
    change(platform, "revoke", record.serial, reason=RevocationReason.UNSPECIFIED)
    citizen = authorities["citizen"].certificate
    response = verified(responder.respond(request_for(record, citizen), store).der, citizen)
    assert response.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert response.revocation_reason is None


def test_suspended_is_revoked_on_hold_until_reinstated(platform, agency, authorities, responder, store):
    record = issue(platform, agency)
    citizen = authorities["citizen"].certificate
    change(platform, "suspend", record.serial)
    response = verified(responder.respond(request_for(record, citizen), store).der, citizen)
    assert response.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert response.revocation_reason is x509.ReasonFlags.certificate_hold
    change(platform, "reinstate", record.serial)
    response = verified(responder.respond(request_for(record, citizen), store).der, citizen)
    assert response.certificate_status is ocsp.OCSPCertStatus.GOOD


@pytest.mark.parametrize("serial", [0x1234, 0, int("ab" * 16, 16), -5, 2**159], ids=str)
def test_a_serial_never_issued_is_unknown(authorities, responder, store, serial):
    citizen = authorities["citizen"].certificate
    answer = responder.respond(request_of(cert_id(citizen, serial)), store)
    response = verified(answer.der, citizen)
    assert response.certificate_status is ocsp.OCSPCertStatus.UNKNOWN
    assert response.serial_number == serial


def test_a_certificate_of_another_ca_is_unauthorized(responder, store):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Foreign CA")])
    now = datetime.now(timezone.utc)
    builder = x509.CertificateBuilder(name, name, key.public_key(), 7, now, now + timedelta(days=1))
    foreign = builder.sign(key, hashes.SHA256())
    answer = responder.respond(request_of(cert_id(foreign, 7)), store)
    assert (answer.status, answer.der) == (ResponseStatus.UNAUTHORIZED, UNAUTHORIZED)
    assert answer.next_update is None


def test_our_ca_with_a_hash_we_do_not_read_is_unauthorized(authorities, responder, store):
    request = request_of(cert_id(authorities["citizen"].certificate, 1, algorithm="md5"))
    assert responder.respond(request, store).der == UNAUTHORIZED


def test_root_answers_for_the_platforms_own_certificates(authorities, responder, store, platform):
    """The issuing CAs (under the root) and the responders and TSA (under theirs) have a status too;
    answered fresh each time, never stored."""
    for name, parent in (("citizen", "root"), ("ocsp-root", "root"), ("ocsp-citizen", "citizen"), ("tsa", "seal")):
        issuer = authorities[parent].certificate
        serial = authorities[name].certificate.serial_number
        response = verified(responder.respond(request_of(cert_id(issuer, serial)), store).der, issuer)
        assert response.certificate_status is ocsp.OCSPCertStatus.GOOD, name
        assert response.certificates[0] == authorities[f"ocsp-{parent}"].certificate
    with platform.db.session() as session:
        assert session.scalar(select(OcspResponse.der).where(OcspResponse.issuer == "root")) is None


# --- what a request may carry -----------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 16, 32, 128])
def test_the_nonce_is_echoed_exactly(platform, agency, authorities, responder, store, size):
    record = issue(platform, agency)
    citizen = authorities["citizen"].certificate
    nonce = os.urandom(size)
    answer = responder.respond(request_for(record, citizen, nonce=nonce), store)
    response = verified(answer.der, citizen)
    assert response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce
    assert answer.next_update is None  # not for HTTP caches either
    assert stored(platform, record) is None


@pytest.mark.parametrize("nonce", [b"", b"n" * 129], ids=["empty", "129 octets"])
def test_a_nonce_out_of_bounds_is_malformed(authorities, responder, store, nonce):
    """RFC 9654: 1 to 128 octets, otherwise malformedRequest."""
    extension = {"extn_id": "nonce", "critical": False, "extn_value": nonce}
    request = request_of(cert_id(authorities["citizen"].certificate, 1), extensions=[extension])
    assert responder.respond(request, store).der == MALFORMED


def raw_extension(oid: str, value: bytes, *, critical: bool = False) -> asn1_ocsp.TBSRequestExtension:
    """A request extension with ``value`` as the extnValue content, whatever the OID's syntax."""
    parts = asn1_core.ObjectIdentifier(oid).dump() + (asn1_core.Boolean(True).dump() if critical else b"")
    parts += asn1_core.OctetString(value).dump()
    return asn1_ocsp.TBSRequestExtension.load(asn1_core.Sequence(contents=parts).dump())


def test_a_nonce_that_is_not_an_octet_string_is_malformed(authorities, responder, store):
    extension = raw_extension("1.3.6.1.5.5.7.48.1.2", asn1_core.Integer(5).dump())
    request = request_of(cert_id(authorities["citizen"].certificate, 1), extensions=[extension])
    assert responder.respond(request, store).der == MALFORMED


def test_unknown_extensions_are_ignored_unless_critical(authorities, responder, store):
    citizen = authorities["citizen"].certificate

    def with_extension(critical: bool) -> bytes:
        return request_of(cert_id(citizen, 1), extensions=[raw_extension("1.2.3.4", b"\x05\x00", critical=critical)])

    assert responder.respond(with_extension(False), store).status is ResponseStatus.SUCCESSFUL
    assert responder.respond(with_extension(True), store).der == MALFORMED


def test_requestor_name_version_and_signature_are_accepted(platform, agency, authorities, responder, store):
    """Optional parts of a request (RFC 6960 §4.1.1); the signature is not checked: answers are public."""
    record = issue(platform, agency)
    citizen = authorities["citizen"].certificate
    tbs = {"version": "v1", "requestor_name": asn1_x509.GeneralName({"dns_name": "relying.example"}),
           "request_list": [{"req_cert": cert_id(citizen, int(record.serial, 16))}]}
    signature = {"signature_algorithm": {"algorithm": "sha256_ecdsa"}, "signature": b"\x00" * 8}
    der = asn1_ocsp.OCSPRequest({"tbs_request": tbs, "optional_signature": signature}).dump()
    response = verified(responder.respond(der, store).der, citizen)
    assert response.certificate_status is ocsp.OCSPCertStatus.GOOD


@pytest.mark.parametrize("null_parameters", [True, False], ids=["NULL parameters", "absent parameters"])
@pytest.mark.parametrize("algorithm", ["sha1", "sha256"])
def test_the_cert_id_is_echoed_as_sent(platform, agency, authorities, responder, store, algorithm, null_parameters):
    record = issue(platform, agency)
    citizen = authorities["citizen"].certificate
    request = request_of(cert_id(citizen, int(record.serial, 16), algorithm=algorithm, null_parameters=null_parameters))
    sent = asn1_ocsp.OCSPRequest.load(request)["tbs_request"]["request_list"][0]["req_cert"].dump()
    response = asn1_ocsp.OCSPResponse.load(responder.respond(request, store).der)
    answered = response.basic_ocsp_response["tbs_response_data"]["responses"][0]["cert_id"]
    assert answered.dump() == sent


def test_several_certificates_in_one_request(platform, agency, authorities, responder, store):
    good, revoked = issue(platform, agency), issue(platform, agency)
    change(platform, "revoke", revoked.serial, reason=RevocationReason.SUPERSEDED)
    citizen = authorities["citizen"].certificate
    serials = [int(good.serial, 16), 0x1234, int(revoked.serial, 16)]
    answer = responder.respond(request_of(*(cert_id(citizen, s) for s in serials)), store)
    response = verified(answer.der, citizen)
    statuses = [(r.serial_number, r.certificate_status, r.revocation_reason) for r in response.responses]
    assert statuses == [
        (serials[0], ocsp.OCSPCertStatus.GOOD, None),
        (serials[1], ocsp.OCSPCertStatus.UNKNOWN, None),
        (serials[2], ocsp.OCSPCertStatus.REVOKED, x509.ReasonFlags.superseded),
    ]
    assert answer.next_update is None and stored(platform, good) is None


def test_certificates_of_two_of_our_cas_in_one_request_are_unauthorized(authorities, responder, store):
    """One responder signs the response, and each CA's responder is authorised for that CA only."""
    request = request_of(cert_id(authorities["citizen"].certificate, 1),
                         cert_id(authorities["enterprise"].certificate, 2))
    assert responder.respond(request, store).der == UNAUTHORIZED


def test_too_many_certificates_in_one_request(authorities, responder, store):
    citizen = authorities["citizen"].certificate
    assert responder.respond(request_of(*(cert_id(citizen, s) for s in range(1, MAX_CERT_IDS + 1))),
                             store).status is ResponseStatus.SUCCESSFUL
    too_many = request_of(*(cert_id(citizen, s) for s in range(MAX_CERT_IDS + 1)))
    assert responder.respond(too_many, store).der == MALFORMED


# --- what is not a request --------------------------------------------------------------------------


def _valid_request(authorities) -> bytes:
    return request_of(cert_id(authorities["citizen"].certificate, 0x1234, algorithm="sha256"),
                      extensions=[{"extn_id": "nonce", "critical": False, "extn_value": b"0123456789abcdef"}])


NOT_REQUESTS = {
    "empty": b"",
    "one byte": b"\x30",
    "empty sequence": b"\x30\x00",
    "text": b"GET / HTTP/1.1\r\n\r\n",
    "base64 text": b"MEMwQTA/MD0wOzAJBgUrDgMCGgUABBQ=",
    "no requestList": bytes.fromhex("3004 3002 3000"),
    "indefinite length (BER)": bytes.fromhex("3080 3080 3080 0000 0000 0000"),
    "length in long form for a short value": bytes.fromhex("3081 03 3001 00"),
    "multi-byte tag": bytes.fromhex("1f81 00 00"),
    "a certificate": None,  # filled in by the test
}


@pytest.mark.parametrize("name", list(NOT_REQUESTS))
def test_what_is_not_a_request_is_malformed(authorities, responder, store, name):
    der = NOT_REQUESTS[name]
    if der is None:
        der = authorities["citizen"].certificate.public_bytes(serialization.Encoding.DER)
    answer = responder.respond(der, store)
    assert (answer.status, answer.der) == (ResponseStatus.MALFORMED_REQUEST, MALFORMED)
    assert ocsp.load_der_ocsp_response(answer.der).response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_every_truncation_and_any_trailing_byte_are_malformed(authorities, responder, store):
    valid = _valid_request(authorities)
    assert responder.respond(valid, store).status is ResponseStatus.SUCCESSFUL
    for length in range(len(valid)):
        assert responder.respond(valid[:length], store).der == MALFORMED, length
    assert responder.respond(valid + b"\x00", store).der == MALFORMED


def test_the_reader_agrees_with_cryptography(authorities):
    """On the requests cryptography reads (one certificate), both see the same CertID and nonce."""
    for algorithm in (hashes.SHA1(), hashes.SHA256()):
        nonce = os.urandom(20)
        builder = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
            b"n" * algorithm.digest_size, b"k" * algorithm.digest_size, 2**127 + 5, algorithm)
        der = builder.add_extension(x509.OCSPNonce(nonce), critical=False).build().public_bytes(
            serialization.Encoding.DER)
        theirs, ours = ocsp.load_der_ocsp_request(der), parse_request(der)
        (cid,) = ours.cert_ids
        assert (cid.name_hash, cid.key_hash, cid.serial) == (theirs.issuer_name_hash, theirs.issuer_key_hash,
                                                            theirs.serial_number)
        assert ours.nonce == b"\x04\x14" + nonce
    assert parse_request(_valid_request(authorities)).cert_ids[0].serial == 0x1234


def test_random_damage_never_fails_the_responder(authorities, responder, store):
    """Flipped, dropped and inserted bytes anywhere: an answer every time, never an internal error."""
    valid = _valid_request(authorities)
    rng = random.Random(6960)
    for _ in range(3000):
        damaged = bytearray(valid)
        for _ in range(rng.randint(1, 3)):
            position = rng.randrange(len(damaged))
            operation = rng.choice(("flip", "drop", "insert"))
            if operation == "flip":
                damaged[position] ^= 1 << rng.randrange(8)
            elif operation == "drop":
                del damaged[position]
            else:
                damaged.insert(position, rng.randrange(256))
        answer = responder.respond(bytes(damaged), store)
        assert answer.status in (ResponseStatus.SUCCESSFUL, ResponseStatus.MALFORMED_REQUEST,
                                 ResponseStatus.UNAUTHORIZED), bytes(damaged).hex()
        try:
            parse_request(bytes(damaged))
        except MalformedRequest:
            pass


# --- stored responses -------------------------------------------------------------------------------


def test_a_response_without_nonce_is_stored_and_reused_by_any_responder(platform, agency, authorities, responder,
                                                                       store, clock):
    record = issue(platform, agency)
    request = request_for(record, authorities["citizen"].certificate)
    first = responder.respond(request, store)
    assert stored(platform, record) == first.der
    clock.advance(timedelta(minutes=5))
    assert responder.respond(request, store) == first  # the same bytes, thisUpdate and nextUpdate
    another_process = OcspResponder(authorities.values(), platform.keys, validity=VALIDITY, reuse_margin=MARGIN,
                                    clock=clock)
    assert another_process.respond(request, SqlOcspStore(platform.db)).der == first.der


def test_a_stored_response_is_replaced_shortly_before_its_next_update(platform, agency, authorities, responder,
                                                                      store, clock):
    record = issue(platform, agency)
    request = request_for(record, authorities["citizen"].certificate)
    first = responder.respond(request, store)
    clock.advance(VALIDITY - MARGIN - timedelta(seconds=1))
    assert responder.respond(request, store).der == first.der
    clock.advance(timedelta(seconds=1))
    second = responder.respond(request, store)
    assert second.der != first.der and second.this_update == clock.at
    assert stored(platform, record) == second.der
    assert responder.respond(request, store).der == second.der


@pytest.mark.parametrize("action", ["revoke", "suspend"])
def test_a_status_change_drops_the_stored_response_at_once(platform, agency, authorities, responder, store, action):
    record = issue(platform, agency)
    citizen = authorities["citizen"].certificate
    request = request_for(record, citizen)
    assert verified(responder.respond(request, store).der, citizen).certificate_status is ocsp.OCSPCertStatus.GOOD
    assert stored(platform, record) is not None
    kwargs = {"reason": RevocationReason.CESSATION_OF_OPERATION} if action == "revoke" else {}
    change(platform, action, record.serial, **kwargs)
    assert stored(platform, record) is None
    response = verified(responder.respond(request, store).der, citizen)
    assert response.certificate_status is ocsp.OCSPCertStatus.REVOKED
    if action == "suspend":  # the stored 'revoked (hold)' goes too when the suspension is lifted
        assert stored(platform, record) is not None
        change(platform, "reinstate", record.serial)
        assert stored(platform, record) is None
        assert verified(responder.respond(request, store).der, citizen).certificate_status is ocsp.OCSPCertStatus.GOOD


def test_a_response_is_not_stored_when_the_status_changed_while_it_was_signed(platform, agency, store):
    """The race: the status is read, a revocation commits, then the (now stale) response would be
    stored. ``keep`` checks the status it was made for, so nothing is stored."""
    record = issue(platform, agency)
    seen = store.lookup("citizen", [record.serial])[record.serial]
    change(platform, "revoke", record.serial, reason=RevocationReason.KEY_COMPROMISE)
    now = utcnow()
    store.keep("citizen", record.serial, seen, CachedResponse(now, now + VALIDITY, b"stale good"))
    assert stored(platform, record) is None
    current = store.lookup("citizen", [record.serial])[record.serial]
    store.keep("citizen", record.serial, current, CachedResponse(now, now + VALIDITY, b"revoked"))
    assert stored(platform, record) == b"revoked"


def test_a_response_kept_during_an_uncommitted_status_change_waits_for_it(platform, agency, store):
    """The same race with the change still open: storing waits for it (PostgreSQL: FOR SHARE on the row
    the change has locked; SQLite: the one writer), then sees the new status and stores nothing."""
    record = issue(platform, agency)
    seen = store.lookup("citizen", [record.serial])[record.serial]
    changing, commit = threading.Event(), threading.Event()

    def revoke() -> None:
        with platform.db.session() as session:
            CertificateLifecycle().revoke(SqlCaStore(session), record.serial, reason=RevocationReason.SUPERSEDED,
                                          actor=OPERATOR)
            changing.set()
            commit.wait(10)

    changer = threading.Thread(target=revoke)
    changer.start()
    assert changing.wait(10)
    now = utcnow()
    keeper = threading.Thread(target=store.keep, args=("citizen", record.serial, seen,
                                                       CachedResponse(now, now + VALIDITY, b"stale good")))
    keeper.start()
    try:
        keeper.join(0.5)
        assert keeper.is_alive(), "storing did not wait for the status change"
    finally:
        commit.set()
        changer.join(10)
        keeper.join(10)
    assert stored(platform, record) is None


def test_a_suspension_lifted_and_renewed_does_not_keep_the_first_suspensions_response(platform, agency, store):
    """Same status, another suspension: the revocation time tells them apart."""
    record = issue(platform, agency)
    change(platform, "suspend", record.serial)
    seen = store.lookup("citizen", [record.serial])[record.serial]
    change(platform, "reinstate", record.serial)
    with platform.db.session() as session:  # a second suspension, a second later
        lifecycle = CertificateLifecycle(clock=lambda: utcnow() + timedelta(seconds=1))
        lifecycle.suspend(SqlCaStore(session), record.serial, actor=OPERATOR)
    now = utcnow()
    store.keep("citizen", record.serial, seen, CachedResponse(now, now + VALIDITY, b"first suspension"))
    assert stored(platform, record) is None


def test_another_cert_id_variant_does_not_replace_the_stored_response(platform, agency, authorities, responder, store):
    record = issue(platform, agency)
    citizen = authorities["citizen"].certificate
    sha1 = responder.respond(request_for(record, citizen), store)
    sha256 = responder.respond(request_for(record, citizen, algorithm=hashes.SHA256()), store)
    assert isinstance(verified(sha256.der, citizen).hash_algorithm, hashes.SHA256)
    assert stored(platform, record) == sha1.der
    assert responder.respond(request_for(record, citizen), store).der == sha1.der


def test_unknown_serials_are_not_stored(platform, authorities, responder, store):
    responder.respond(request_of(cert_id(authorities["citizen"].certificate, 0x5678)), store)
    with platform.db.session() as session:
        assert session.scalar(select(OcspResponse.der).where(OcspResponse.serial == "5678")) is None


# --- failures ---------------------------------------------------------------------------------------


class FailingStore:
    def __init__(self, error: Exception, *, on: str = "lookup", real: SqlOcspStore | None = None) -> None:
        self.error, self.on, self.real = error, on, real

    def lookup(self, issuer, serials):
        if self.on == "lookup":
            raise self.error
        return self.real.lookup(issuer, serials)

    def keep(self, issuer, serial, seen, response):
        raise self.error


def test_storage_unavailable_is_try_later(authorities, responder):
    answer = responder.respond(request_of(cert_id(authorities["citizen"].certificate, 1)),
                               FailingStore(DatabaseUnavailable("down")))
    assert answer.status is ResponseStatus.TRY_LATER
    assert ocsp.load_der_ocsp_response(answer.der).response_status is ocsp.OCSPResponseStatus.TRY_LATER


def test_a_database_that_cannot_be_reached_is_try_later(authorities, responder, tmp_path):
    from store.db import Database

    unreachable = Database(f"sqlite:///{tmp_path / 'no such directory' / 'eauth.db'}")
    answer = responder.respond(request_of(cert_id(authorities["citizen"].certificate, 1)), SqlOcspStore(unreachable))
    assert answer.status is ResponseStatus.TRY_LATER
    unreachable.dispose()


def test_an_unexpected_failure_is_internal_error_and_logged(authorities, responder, caplog):
    answer = responder.respond(request_of(cert_id(authorities["citizen"].certificate, 1)),
                               FailingStore(RuntimeError("bug")))
    assert answer.status is ResponseStatus.INTERNAL_ERROR
    assert "OCSP request failed" in caplog.text


def test_a_response_that_cannot_be_stored_is_still_given(platform, agency, authorities, responder, store):
    record = issue(platform, agency)
    citizen = authorities["citizen"].certificate
    answer = responder.respond(request_for(record, citizen), FailingStore(DatabaseUnavailable("read-only"), on="keep",
                                                                           real=store))
    assert verified(answer.der, citizen).certificate_status is ocsp.OCSPCertStatus.GOOD


def test_the_reuse_margin_must_be_within_the_validity(platform, authorities):
    with pytest.raises(ValueError):
        OcspResponder(authorities.values(), platform.keys, validity=VALIDITY, reuse_margin=VALIDITY)


def test_status_shapes_from_storage(platform, agency, store):
    record = issue(platform, agency)
    found = store.lookup("citizen", [record.serial, "1234"])
    assert found == {record.serial: CertificateStatus("valid", None, None, None, None, True)}
    assert store.lookup("enterprise", [record.serial]) == {}
    assert store.lookup("citizen", []) == {}


# --- interop ----------------------------------------------------------------------------------------


@pytest.mark.interop
@pytest.mark.parametrize("case", ["good", "revoked", "on hold", "unknown", "nonce", "several"])
def test_pkilint_finds_no_error(platform, agency, authorities, responder, store, tmp_path, case):
    from tests.ca.test_interop import BLOCKING, run_pkilint

    citizen = authorities["citizen"].certificate
    record = issue(platform, agency)
    if case == "revoked":
        change(platform, "revoke", record.serial, reason=RevocationReason.KEY_COMPROMISE,
               invalidity_date=record.not_before)
    elif case == "on hold":
        change(platform, "suspend", record.serial)
    if case == "unknown":
        request = request_of(cert_id(citizen, 0x1234))
    elif case == "several":
        request = request_of(cert_id(citizen, int(record.serial, 16)), cert_id(citizen, 0x1234, algorithm="sha256"))
    else:
        request = request_for(record, citizen, nonce=os.urandom(32) if case == "nonce" else None)
    path = tmp_path / "response.der"
    path.write_bytes(responder.respond(request, store).der)
    findings = run_pkilint("lint_ocsp_response", path)
    assert not [str(f) for f in findings if f.severity in BLOCKING]
    assert not [str(f) for f in findings if f.severity in ("WARNING", "NOTICE")]


@pytest.mark.interop
def test_a_responder_key_on_a_pkcs11_token(softhsm_token, tmp_path_factory):
    from api.platform import Platform, initialize_platform
    from eauth.settings import Settings
    from store.agencies import add_agency
    from tests.conftest import fresh_database

    module, label, pin = softhsm_token
    data_dir = tmp_path_factory.mktemp("ocsp-hsm")
    databases = fresh_database(data_dir)
    settings = Settings(_env_file=None, data_dir=data_dir, database_url=next(databases), key_backend="pkcs11",
                        pkcs11_module=module, pkcs11_token=label, pkcs11_pin=pin)
    initialize_platform(settings)
    platform = Platform.open(settings)
    try:
        with platform.db.session() as session:
            hsm_agency = add_agency(session, code="ocsp-hsm", name="HSM RA", credit_code=None)
            authorities = {r.name: r for r in SqlCaStore(session).authorities()}
        record = issue(platform, hsm_agency)
        signer = platform.keys.signer(authorities["ocsp-citizen"].key_label)
        assert not hasattr(signer, "private_key")  # the key is on the token
        store = SqlOcspStore(platform.db)
        responder = OcspResponder(authorities.values(), platform.keys, validity=VALIDITY, reuse_margin=MARGIN)
        citizen = authorities["citizen"].certificate
        for nonce in (None, os.urandom(32)):
            response = verified(responder.respond(request_for(record, citizen, nonce=nonce), store).der, citizen)
            assert response.certificate_status is ocsp.OCSPCertStatus.GOOD
        store.close()
    finally:
        platform.close()
        databases.close()


def test_an_rsa_platform_signs_with_sha256_rsa(tmp_path):
    """On an RSA platform (EAUTH_KEY_ALGORITHM=rsa-2048) the response is sha256WithRSAEncryption."""
    from cryptography.hazmat.primitives.asymmetric import padding

    from ca.authority import CaUrls, initialize
    from ca.records import AuthorityRecord
    from keys.base import KeyAlgorithm
    from keys.filestore import FileKeyStore

    class Authorities:  # just enough CaStore for initialize()
        def __init__(self) -> None:
            self.records: dict[str, AuthorityRecord] = {}

        def authority(self, name: str) -> AuthorityRecord | None:
            return self.records.get(name)

        def add_authority(self, record: AuthorityRecord) -> None:
            self.records[record.name] = record

    class Statuses:
        def lookup(self, issuer, serials):
            return {s: CertificateStatus("revoked", utcnow(), "superseded", None) for s in serials}

        def keep(self, issuer, serial, seen, response):
            pass

    keys = FileKeyStore(tmp_path / "keys", "rsa platform passphrase", create=True)
    hierarchy = Authorities()
    initialize(keys, hierarchy, urls=CaUrls("http://127.0.0.1"), organization="RSA", algorithm=KeyAlgorithm.RSA_2048)
    responder = OcspResponder(hierarchy.records.values(), keys, validity=VALIDITY, reuse_margin=MARGIN)
    ca = hierarchy.records["citizen"].certificate
    der = responder.respond(request_of(cert_id(ca, 99, algorithm="sha256")), Statuses()).der
    response = ocsp.load_der_ocsp_response(der)
    assert response.signature_algorithm_oid == x509.SignatureAlgorithmOID.RSA_WITH_SHA256
    assert response.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert response.revocation_reason is x509.ReasonFlags.superseded
    (signer,) = response.certificates
    signer.verify_directly_issued_by(ca)
    signer.public_key().verify(response.signature, response.tbs_response_bytes, padding.PKCS1v15(), hashes.SHA256())
