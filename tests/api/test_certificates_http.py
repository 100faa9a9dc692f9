"""Certificates over HTTP: issuance from a CSR or with a server-made key, look-ups, and every bad
input refused as problem+json with its own code and nothing stored."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from asn1crypto import csr as asn1_csr
from asn1crypto import pem as asn1_pem
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, pkcs12
from cryptography.x509.oid import NameOID
from sqlalchemy import func, select

from ca.authority import utcnow
from store.models import Certificate, Subject
from tests.helpers import assert_problem, citizen_id, credit_code, ec_csr

CERTIFICATES = "/api/v1/certificates"
PROBLEM = "application/problem+json"
PKCS12_PASSWORD = "a long enough password"



def _state(platform) -> tuple[int, int, int]:
    with platform.db.session() as session:
        certificates = session.scalar(select(func.count()).select_from(Certificate))
        subjects = session.scalar(select(func.count()).select_from(Subject))
    key_files = len(list((Path(platform.settings.data_dir) / "keys").iterdir()))
    return certificates, subjects, key_files


@contextmanager
def nothing_stored(platform) -> Iterator[None]:
    """No certificate row, subject row or key file appears inside the block."""
    before = _state(platform)
    yield
    assert _state(platform) == before, "a refused request left something behind (certificates, subjects, key files)"


@contextmanager
def stored(platform, *, certificates: int, subjects: int, key_files: int) -> Iterator[None]:
    before = _state(platform)
    yield
    after = _state(platform)
    assert tuple(a - b for a, b in zip(after, before)) == (certificates, subjects, key_files)


def citizen_request(**overrides) -> dict:
    body = {"profile": "citizen", "name": "张三", "id_number": citizen_id()}
    if "csr" not in overrides and "pkcs12_password" not in overrides:
        body["csr"] = ec_csr()[0].decode()
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def _subject() -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "holder")])


def _csr_pem(key, algorithm=None) -> str:
    builder = x509.CertificateSigningRequestBuilder().subject_name(_subject())
    if algorithm is None and not isinstance(key, ed25519.Ed25519PrivateKey):
        algorithm = hashes.SHA256()
    return builder.sign(key, algorithm).public_bytes(Encoding.PEM).decode()


def _resigned_sha1_csr() -> str:
    """A well-formed CSR whose only fault is its SHA-1 signature (cryptography refuses to build one)."""
    key = ec.generate_private_key(ec.SECP256R1())
    _, _, der = asn1_pem.unarmor(_csr_pem(key).encode())
    request = asn1_csr.CertificationRequest.load(der)
    request["signature_algorithm"] = {"algorithm": "sha1_ecdsa"}
    request["signature"] = key.sign(request["certification_request_info"].dump(), ec.ECDSA(hashes.SHA1()))
    pem = asn1_pem.armor("CERTIFICATE REQUEST", request.dump()).decode()
    parsed = x509.load_pem_x509_csr(pem.encode())
    assert isinstance(parsed.signature_hash_algorithm, hashes.SHA1)
    # cryptography's is_signature_valid says False for any SHA-1 signature; check this one by hand.
    parsed.public_key().verify(parsed.signature, parsed.tbs_certrequest_bytes, ec.ECDSA(hashes.SHA1()))
    return pem


def _signature_flipped_csr() -> str:
    """A well-formed P-256 SHA-256 CSR with one bit of its signature flipped: no proof of possession."""
    _, _, der = asn1_pem.unarmor(ec_csr()[0])
    request = asn1_csr.CertificationRequest.load(der)
    signature = bytearray(request["signature"].native)
    signature[-1] ^= 0x01  # inside the DER INTEGER s: still well-formed, no longer valid
    request["signature"] = bytes(signature)
    pem = asn1_pem.armor("CERTIFICATE REQUEST", request.dump()).decode()
    parsed = x509.load_pem_x509_csr(pem.encode())
    assert isinstance(parsed.signature_hash_algorithm, hashes.SHA256) and not parsed.is_signature_valid
    return pem


def _csr_signed_by_other_key() -> str:
    """The public key of one key pair, the signature of another."""
    _, _, der = asn1_pem.unarmor(ec_csr()[0])
    request = asn1_csr.CertificationRequest.load(der)
    other = ec.generate_private_key(ec.SECP256R1())
    request["signature"] = other.sign(request["certification_request_info"].dump(), ec.ECDSA(hashes.SHA256()))
    return asn1_pem.armor("CERTIFICATE REQUEST", request.dump()).decode()


def _root_pem(api) -> str:
    der = api.get("/ca/root.cer").content
    return x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM).decode()


def _certificate_in_csr_armor(api) -> str:
    der = api.get("/ca/root.cer").content
    return asn1_pem.armor("CERTIFICATE REQUEST", der).decode()


def _truncated_pem() -> str:
    pem = ec_csr()[0].decode()
    return pem[: len(pem) // 2]


def _private_key_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


def _unarmored_base64_der() -> str:
    _, _, der = asn1_pem.unarmor(ec_csr()[0])
    return base64.b64encode(der).decode()


BAD_CSRS = {
    "garbage": (lambda api: "this is not a certificate request", "invalid_csr"),
    "truncated-pem": (lambda api: _truncated_pem(), "invalid_csr"),
    "certificate-pem": (_root_pem, "invalid_csr"),
    "certificate-der-in-csr-armor": (_certificate_in_csr_armor, "invalid_csr"),
    "private-key-pem": (lambda api: _private_key_pem(), "invalid_csr"),
    "base64-der-without-armor": (lambda api: _unarmored_base64_der(), "invalid_csr"),
    "sha1-signature": (lambda api: _resigned_sha1_csr(), "unsupported_algorithm"),
    "signature-bit-flipped": (lambda api: _signature_flipped_csr(), "csr_signature_invalid"),
    "signed-by-other-key": (lambda api: _csr_signed_by_other_key(), "csr_signature_invalid"),
    "rsa-1024": (lambda api: _csr_pem(rsa.generate_private_key(65537, 1024)), "weak_key"),
    "rsa-exponent-3": (lambda api: _csr_pem(rsa.generate_private_key(3, 2048)), "weak_key"),
    "ed25519": (lambda api: _csr_pem(ed25519.Ed25519PrivateKey.generate()), "weak_key"),
    "p521": (lambda api: _csr_pem(ec.generate_private_key(ec.SECP521R1())), "weak_key"),
}


# --- refused issuance: problem+json with its own code, nothing stored --------------------------------


@pytest.mark.parametrize("case", BAD_CSRS)
def test_bad_csr_refused_and_nothing_stored(api, platform, ra_headers, case):
    make, code = BAD_CSRS[case]
    body = citizen_request(csr=make(api))
    with nothing_stored(platform):
        response = api.post(CERTIFICATES, json=body, headers=ra_headers)
    problem = assert_problem(response, 400, code)
    assert problem["instance"] == CERTIFICATES
    assert "Traceback" not in problem["detail"]


def test_weak_key_detail_says_what_is_wrong(api, platform, ra_headers):
    body = citizen_request(csr=_csr_pem(rsa.generate_private_key(65537, 1024)))
    with nothing_stored(platform):
        problem = assert_problem(api.post(CERTIFICATES, json=body, headers=ra_headers), 400, "weak_key")
    assert "1024" in problem["detail"]


def test_unknown_profile(api, platform, ra_headers):
    with nothing_stored(platform):
        response = api.post(CERTIFICATES, json=citizen_request(profile="server-tls"), headers=ra_headers)
    problem = assert_problem(response, 400, "unknown_profile")
    assert "server-tls" in problem["detail"] and "citizen" in problem["detail"]


def test_citizen_id_with_wrong_check_digit_names_the_position(api, platform, ra_headers):
    good = citizen_id()
    bad = good[:17] + ("0" if good[17] != "0" else "1")
    with nothing_stored(platform):
        response = api.post(CERTIFICATES, json=citizen_request(id_number=bad), headers=ra_headers)
    problem = assert_problem(response, 400, "invalid_identifier")
    assert "position 18" in problem["detail"]
    assert problem["position"] == 18
    assert problem["scheme"] == "gb11643"


def test_citizen_id_with_a_letter_names_its_position(api, platform, ra_headers):
    bad = citizen_id()[:5] + "A" + citizen_id()[6:]
    with nothing_stored(platform):
        response = api.post(CERTIFICATES, json=citizen_request(id_number=bad), headers=ra_headers)
    problem = assert_problem(response, 400, "invalid_identifier")
    assert "position 6" in problem["detail"] and problem["position"] == 6


@pytest.mark.parametrize("profile_name", ["enterprise", "agency-seal"])
def test_credit_code_with_wrong_check_character(api, platform, ra_headers, profile_name):
    good = credit_code()
    bad = good[:17] + ("0" if good[17] != "0" else "1")
    body = {"profile": profile_name, "name": "某某有限公司", "id_number": bad}
    if profile_name == "enterprise":
        body["pkcs12_password"] = PKCS12_PASSWORD
    with nothing_stored(platform):  # agency-seal: no platform key made either
        response = api.post(CERTIFICATES, json=body, headers=ra_headers)
    problem = assert_problem(response, 400, "invalid_identifier")
    assert problem["scheme"] == "gb32100"
    assert f"position {problem['position']}" in problem["detail"]


def test_person_number_under_enterprise_profile_is_an_invalid_credit_code(api, platform, ra_headers):
    body = {"profile": "enterprise", "name": "某某有限公司", "id_number": citizen_id(), "csr": ec_csr()[0].decode()}
    with nothing_stored(platform):
        response = api.post(CERTIFICATES, json=body, headers=ra_headers)
    assert_problem(response, 400, "invalid_identifier")


def test_blank_name_refused(api, platform, ra_headers):
    with nothing_stored(platform):
        response = api.post(CERTIFICATES, json=citizen_request(name="   "), headers=ra_headers)
    assert_problem(response, 400, "invalid_input")


@pytest.mark.parametrize("password", [None, "", "short"])
@pytest.mark.parametrize("profile_name", ["citizen", "enterprise"])
def test_server_made_key_needs_a_pkcs12_password(api, platform, ra_headers, profile_name, password):
    number = citizen_id() if profile_name == "citizen" else credit_code()
    body = {"profile": profile_name, "name": "持有人", "id_number": number}
    if password is not None:
        body["pkcs12_password"] = password
    with nothing_stored(platform):
        response = api.post(CERTIFICATES, json=body, headers=ra_headers)
    problem = assert_problem(response, 400, "invalid_input")
    assert "password" in problem["detail"]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"profile": "citizen", "id_number": "x"}, id="missing-name"),
        pytest.param({"name": "张三", "id_number": "x"}, id="missing-profile"),
        pytest.param({"profile": "citizen", "name": 12345, "id_number": "x"}, id="name-not-a-string"),
        pytest.param({"profile": "citizen", "name": "张三", "id_number": ["x"]}, id="id-number-a-list"),
        pytest.param({"profile": "citizen", "name": "", "id_number": "x"}, id="empty-name"),
        pytest.param({"profile": "citizen", "name": "张三", "id_number": "1" * 33}, id="id-number-too-long"),
        pytest.param({"profile": "citizen", "name": "张三", "id_number": "x", "csr": "A" * 16385}, id="csr-too-long"),
        pytest.param([], id="array-not-object"),
        pytest.param({"profile": "citizen", "name": "张\x00三", "id_number": "x"}, id="nul-in-name"),
        pytest.param({"profile": "citizen", "name": "张三\n", "id_number": "x"}, id="newline-in-name"),
        pytest.param({"profile": "citizen", "name": "张\x07三", "id_number": "x"}, id="bel-in-name"),
        pytest.param({"profile": "citizen", "name": "张\x85三", "id_number": "x"}, id="c1-control-in-name"),
    ],
)
def test_schema_violations_are_422_invalid_request(api, platform, ra_headers, body):
    with nothing_stored(platform):
        response = api.post(CERTIFICATES, json=body, headers=ra_headers)
    problem = assert_problem(response, 422, "invalid_request")
    assert problem["errors"] and all({"location", "message"} <= e.keys() for e in problem["errors"])


def test_control_characters_in_name_refused_with_a_valid_request_otherwise(api, platform, ra_headers):
    """Not just a failing id_number: a name with NUL would otherwise be signed into the certificate
    (and PostgreSQL refuses to store it: a 500)."""
    with nothing_stored(platform):
        response = api.post(CERTIFICATES, json=citizen_request(name="张\x00三"), headers=ra_headers)
    problem = assert_problem(response, 422, "invalid_request")
    assert problem["errors"][0]["location"] == "body.name"


@pytest.mark.parametrize("field", ["name", "id_number", "csr", "pkcs12_password"])
def test_lone_surrogate_is_422_invalid_request(api, platform, ra_headers, field):
    """JSON can carry "\\ud800", which no UTF-8 encoder accepts (SecretStr let it through: a 500)."""
    body = citizen_request(pkcs12_password=PKCS12_PASSWORD) if field == "pkcs12_password" else citizen_request()
    raw = json.dumps({**body, field: "\ud800" + body[field]})  # json.dumps escapes it as \ud800
    with nothing_stored(platform):
        response = api.post(CERTIFICATES, content=raw.encode(), headers={**ra_headers, "Content-Type": "application/json"})
    assert_problem(response, 422, "invalid_request")
    assert "ud800" not in response.text.lower()  # the input is not echoed back


@pytest.mark.parametrize("profile_name", ["citizen", "agency-seal"])
def test_long_chinese_name(api, platform, ra_headers, profile_name):
    from fastapi.testclient import TestClient

    client = TestClient(api.app, raise_server_exceptions=False)
    name = "深圳市前海深港现代服务业合作区管理局综合服务中心"  # 24 characters, 72 bytes in UTF-8
    number = citizen_id() if profile_name == "citizen" else credit_code()
    body = {"profile": profile_name, "name": name, "id_number": number}
    if profile_name == "citizen":
        body["csr"] = ec_csr()[0].decode()
    before = _state(platform)
    response = client.post(CERTIFICATES, json=body, headers=ra_headers)
    if response.status_code == 201:  # issued with the name shortened to fit
        cert = x509.load_pem_x509_certificate(response.json()["certificate_pem"].encode())
        assert name.startswith(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)
    else:  # or refused as bad input, leaving nothing behind
        assert_problem(response, 400, "invalid_input")
        assert _state(platform) == before


def test_malformed_json_is_422_invalid_request(api, platform, ra_headers):
    with nothing_stored(platform):
        response = api.post(
            CERTIFICATES, content=b'{"profile": "citizen",', headers={**ra_headers, "Content-Type": "application/json"}
        )
    assert_problem(response, 422, "invalid_request")


def test_missing_scope_refused_before_anything_is_stored(api, platform, agency):
    from tests.conftest import token_for

    token = token_for(api, platform, agency.code, {"certificates:read"})
    with nothing_stored(platform):
        response = api.post(CERTIFICATES, json=citizen_request(), headers={"Authorization": f"Bearer {token}"})
    problem = assert_problem(response, 403, "insufficient_scope")
    assert problem["required"] == "certificates:issue"


def test_missing_token_refused_before_anything_is_stored(api, platform):
    with nothing_stored(platform):
        response = api.post(CERTIFICATES, json=citizen_request())
    assert_problem(response, 401, "invalid_token")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


# --- request size ---------------------------------------------------------------------------------------


TWO_MIB = 2 << 20


def test_body_over_limit_is_413(api, platform, ra_headers):
    assert platform.settings.max_request_bytes == 1 << 20
    body = json.dumps(citizen_request(name="x" * TWO_MIB)).encode()
    with nothing_stored(platform):
        response = api.post(CERTIFICATES, content=body, headers={**ra_headers, "Content-Type": "application/json"})
    problem = assert_problem(response, 413, "request_too_large")
    assert str(platform.settings.max_request_bytes) in problem["detail"]


def test_chunked_body_without_content_length_over_limit_is_413(api, platform, ra_headers):
    def chunks() -> Iterator[bytes]:
        yield b'{"profile": "citizen", "id_number": "1", "name": "'
        for _ in range(32):
            yield b"x" * (64 << 10)
        yield b'"}'

    with nothing_stored(platform):
        response = api.post(CERTIFICATES, content=chunks(), headers={**ra_headers, "Content-Type": "application/json"})
    assert_problem(response, 413, "request_too_large")


def test_body_streamed_in_many_chunks_is_cut_off_at_the_limit(api, platform, ra_headers):
    """At the ASGI level, as a server delivers a chunked upload: no Content-Length, many messages, and
    the application stops reading soon after the limit instead of consuming the whole stream."""
    chunk = b"x" * (64 << 10)
    total_chunks = 64  # 4 MiB offered
    pulled = 0
    sent: list[dict] = []

    async def receive() -> dict:
        nonlocal pulled
        pulled += 1
        if pulled > total_chunks:
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict) -> None:
        sent.append(message)

    headers = [(b"content-type", b"application/json"), (b"transfer-encoding", b"chunked")]
    headers += [(k.lower().encode(), v.encode()) for k, v in ra_headers.items()]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": CERTIFICATES, "raw_path": CERTIFICATES.encode(), "root_path": "", "query_string": b"",
        "headers": headers, "client": ("127.0.0.1", 1234), "server": ("testserver", 80), "state": {},
    }
    with nothing_stored(platform):
        asyncio.run(api.app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 413
    assert dict(start["headers"])[b"content-type"].startswith(PROBLEM.encode())
    body = json.loads(b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"))
    assert body["code"] == "request_too_large"
    assert pulled * len(chunk) <= platform.settings.max_request_bytes + len(chunk)


def test_token_endpoint_body_over_limit_is_413(api):
    response = api.post(
        "/api/v1/oauth/token", content=b"grant_type=client_credentials&scope=" + b"x" * TWO_MIB,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_problem(response, 413, "request_too_large")


# --- issuance -------------------------------------------------------------------------------------------


def _root(api) -> x509.Certificate:
    response = api.get("/ca/root.cer")
    assert response.status_code == 200
    return x509.load_der_x509_certificate(response.content)


def test_issue_from_csr(api, platform, ra_headers):
    csr_pem, key = ec_csr("ignored: the subject comes from the verified identity")
    number = citizen_id()
    with stored(platform, certificates=1, subjects=1, key_files=0):
        response = api.post(
            CERTIFICATES, json={"profile": "citizen", "name": "李四", "id_number": number, "csr": csr_pem.decode()},
            headers=ra_headers,
        )
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["Location"] == f"{CERTIFICATES}/{body['serial']}"
    cert = x509.load_pem_x509_certificate(body["certificate_pem"].encode())
    assert f"{cert.serial_number:x}" == body["serial"]
    assert cert.public_key() == key.public_key()
    assert body["profile"] == "citizen" and body["issuer"] == "citizen" and body["status"] == "valid"
    assert body["platform_key"] is False and body["pkcs12"] is None
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "李四"
    assert number not in body["subject_dn"] and number not in cert.subject.rfc4514_string()
    assert body["subject_dn"] == cert.subject.rfc4514_string()
    # chain: leaf ← issuing CA (in the response) ← root (published)
    assert len(body["chain_pem"]) == 1
    issuer = x509.load_pem_x509_certificate(body["chain_pem"][0].encode())
    cert.verify_directly_issued_by(issuer)
    issuer.verify_directly_issued_by(_root(api))


def test_same_subject_twice_is_one_subject(api, platform, ra_headers):
    number = citizen_id()
    with stored(platform, certificates=2, subjects=1, key_files=0):
        for _ in range(2):
            response = api.post(CERTIFICATES, json=citizen_request(id_number=number), headers=ra_headers)
            assert response.status_code == 201, response.text


def test_issue_with_server_made_key_returns_pkcs12_and_keeps_no_key(api, platform, ra_headers):
    with stored(platform, certificates=1, subjects=1, key_files=0):
        response = api.post(
            CERTIFICATES, json=citizen_request(pkcs12_password=PKCS12_PASSWORD), headers=ra_headers
        )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["platform_key"] is False
    p12 = base64.b64decode(body["pkcs12"])
    key, cert, extra = pkcs12.load_key_and_certificates(p12, PKCS12_PASSWORD.encode())
    assert cert.public_bytes(Encoding.PEM).decode() == body["certificate_pem"]
    assert key.public_key() == cert.public_key()
    assert [c.public_bytes(Encoding.PEM).decode() for c in extra] == body["chain_pem"]
    with pytest.raises(ValueError):
        pkcs12.load_key_and_certificates(p12, b"wrong password")
    # Fetching it again never returns the key.
    again = api.get(f"{CERTIFICATES}/{body['serial']}", headers=ra_headers).json()
    assert "pkcs12" not in again


def test_issue_agency_seal_keeps_the_key_on_the_platform(api, platform, ra_headers):
    with stored(platform, certificates=1, subjects=1, key_files=1):
        response = api.post(
            CERTIFICATES, json={"profile": "agency-seal", "name": "某市市场监督管理局", "id_number": credit_code()},
            headers=ra_headers,
        )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["platform_key"] is True and body["pkcs12"] is None
    assert body["issuer"] == "seal"
    cert = x509.load_pem_x509_certificate(body["certificate_pem"].encode())
    label = f"ee-{cert.serial_number:032x}"
    assert (Path(platform.settings.data_dir) / "keys" / f"{label}.key.pem").is_file()
    assert platform.keys.signer(label).public_key == cert.public_key()


# --- look-ups -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def issued(api, ra_headers) -> dict:
    response = api.post(CERTIFICATES, json=citizen_request(), headers=ra_headers)
    assert response.status_code == 201, response.text
    return response.json()


def test_get_json(api, ra_headers, issued):
    response = api.get(f"{CERTIFICATES}/{issued['serial']}", headers=ra_headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    for field in ("serial", "profile", "issuer", "status", "subject_id", "subject_dn", "sha256", "certificate_pem"):
        assert body[field] == issued[field]
    assert "chain_pem" not in body


def test_get_serial_is_case_insensitive(api, ra_headers, issued):
    response = api.get(f"{CERTIFICATES}/{issued['serial'].upper()}", headers=ra_headers)
    assert response.status_code == 200 and response.json()["serial"] == issued["serial"]


def test_get_der(api, ra_headers, issued):
    response = api.get(f"{CERTIFICATES}/{issued['serial']}", headers={**ra_headers, "Accept": "application/pkix-cert"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pkix-cert"
    cert = x509.load_der_x509_certificate(response.content)
    assert cert.public_bytes(Encoding.PEM).decode() == issued["certificate_pem"]


def test_get_pem_chain(api, ra_headers, issued):
    response = api.get(
        f"{CERTIFICATES}/{issued['serial']}", headers={**ra_headers, "Accept": "application/pem-certificate-chain"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/pem-certificate-chain")
    leaf, issuer = x509.load_pem_x509_certificates(response.content)
    assert leaf.public_bytes(Encoding.PEM).decode() == issued["certificate_pem"]
    assert issuer.public_bytes(Encoding.PEM).decode() == issued["chain_pem"][0]
    leaf.verify_directly_issued_by(issuer)


def test_get_unknown_serial_is_404(api, ra_headers):
    problem = assert_problem(api.get(f"{CERTIFICATES}/{'ab' * 16}", headers=ra_headers), 404, "not_found")
    assert "ab" * 16 in problem["detail"]


def test_get_malformed_serial_is_422(api, ra_headers):
    assert_problem(api.get(f"{CERTIFICATES}/not-hex", headers=ra_headers), 422, "invalid_request")


def test_list_newest_first(api, platform, ra_headers, monkeypatch):
    """Issued out of order (oldest last), listed by validity start, newest first."""
    number = citizen_id()
    now = utcnow()
    serials = {}
    for label, age in (("middle", timedelta(days=5)), ("newest", timedelta(0)), ("oldest", timedelta(days=10))):
        monkeypatch.setattr(platform.ca, "clock", lambda at=now - age: at)
        response = api.post(CERTIFICATES, json=citizen_request(id_number=number), headers=ra_headers)
        assert response.status_code == 201, response.text
        serials[label] = response.json()["serial"]
    monkeypatch.undo()

    response = api.get(CERTIFICATES, params={"kind": "person", "id_number": number}, headers=ra_headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [item["serial"] for item in body["items"]] == [serials["newest"], serials["middle"], serials["oldest"]]
    assert {item["subject_id"] for item in body["items"]} == {body["subject_id"]}


def test_list_accepts_lowercase_check_x(api, ra_headers):
    number = next(n for n in (citizen_id() for _ in range(100)) if n.endswith("X"))
    response = api.post(CERTIFICATES, json=citizen_request(id_number=number.lower()), headers=ra_headers)
    assert response.status_code == 201, response.text
    listed = api.get(CERTIFICATES, params={"kind": "person", "id_number": number.lower()}, headers=ra_headers)
    assert [i["serial"] for i in listed.json()["items"]] == [response.json()["serial"]]


def test_list_with_bad_number_is_400(api, ra_headers):
    good = citizen_id()
    bad = good[:17] + ("0" if good[17] != "0" else "1")
    response = api.get(CERTIFICATES, params={"kind": "person", "id_number": bad}, headers=ra_headers)
    problem = assert_problem(response, 400, "invalid_identifier")
    assert "position 18" in problem["detail"]
    bad_code = credit_code()[:17] + "I"
    assert_problem(api.get(CERTIFICATES, params={"kind": "enterprise", "id_number": bad_code}, headers=ra_headers),
                   400, "invalid_identifier")


def test_list_unknown_number_is_404(api, ra_headers):
    response = api.get(CERTIFICATES, params={"kind": "person", "id_number": citizen_id()}, headers=ra_headers)
    assert_problem(response, 404, "not_found")


@pytest.mark.parametrize("params", [{"kind": "martian", "id_number": "1"}, {"kind": "person"}, {}])
def test_list_bad_query_is_422(api, ra_headers, params):
    assert_problem(api.get(CERTIFICATES, params=params, headers=ra_headers), 422, "invalid_request")


def test_reading_needs_the_read_scope(api, platform, agency, issued):
    from tests.conftest import token_for

    token = token_for(api, platform, agency.code, {"certificates:issue"})
    response = api.get(f"{CERTIFICATES}/{issued['serial']}", headers={"Authorization": f"Bearer {token}"})
    assert assert_problem(response, 403, "insufficient_scope")["required"] == "certificates:read"


# --- public endpoints, routing -------------------------------------------------------------------------


def test_root_certificate_der(api):
    response = api.get("/ca/root.cer")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pkix-cert"
    root = x509.load_der_x509_certificate(response.content)
    assert root.subject == root.issuer
    root.verify_directly_issued_by(root)


def test_unknown_authority_is_404(api):
    assert_problem(api.get("/ca/nonesuch.cer"), 404, "not_found")


def test_authorities(api):
    response = api.get("/api/v1/ca")
    assert response.status_code == 200
    authorities = response.json()
    assert len(authorities) == 9
    by_name = {a["name"]: a for a in authorities}
    assert by_name["root"]["role"] == "root" and by_name["root"]["parent"] is None
    assert {n for n, a in by_name.items() if a["role"] == "issuing"} == {"citizen", "enterprise", "seal"}
    for authority in authorities:
        cert = x509.load_pem_x509_certificate(authority["certificate_pem"].encode())
        assert f"{cert.serial_number:x}" == authority["serial"]
        if authority["parent"]:
            parent = x509.load_pem_x509_certificate(by_name[authority["parent"]]["certificate_pem"].encode())
            cert.verify_directly_issued_by(parent)


def test_unknown_route_is_404_problem(api):
    problem = assert_problem(api.get("/api/v1/nothing-here"), 404, "not_found")
    assert problem["instance"] == "/api/v1/nothing-here"


def test_wrong_method_is_405_problem(api):
    assert_problem(api.delete("/api/v1/ca"), 405, "method_not_allowed")


def test_openapi_and_docs(api):
    response = api.get("/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    assert spec["info"]["title"] == "eauth"
    assert {"/api/v1/certificates", "/api/v1/certificates/{serial}", "/api/v1/oauth/token"} <= spec["paths"].keys()
    docs = api.get("/docs")
    assert docs.status_code == 200 and "text/html" in docs.headers["content-type"]
    assert "/openapi.json" in docs.text


def test_health(api):
    assert api.get("/healthz").json() == {"status": "ok"}
