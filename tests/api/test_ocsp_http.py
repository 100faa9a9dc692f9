"""The OCSP responder over HTTP, served for real (uvicorn on a free localhost port, the session
platform): `openssl ocsp` as the relying party, GET and POST as RFC 6960 appendix A has them, caching
headers for GET (RFC 5019), and every kind of bad request answered as OCSP, not as an HTTP error.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import urllib.parse
from collections.abc import Iterator
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from ca.lifecycle import CertificateLifecycle, RevocationReason
from ca.profiles import SubjectKind
from ca.records import Actor, CertificateRecord
from ca.subjects import SubjectIdentity
from store.ca_store import SqlCaStore
from tests.conftest import require_tool
from tests.helpers import citizen_id, credit_code, ec_csr, served

MALFORMED = bytes.fromhex("3003 0a01 01")
OCSP_RESPONSE = "application/ocsp-response"


@pytest.fixture(scope="module")
def base_url(platform) -> Iterator[str]:
    """The app served by uvicorn in a thread, on a free port."""
    with served(platform) as url:
        yield url


@pytest.fixture(scope="module")
def http(base_url) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        yield client


def issue(platform, agency, profile: str = "citizen") -> CertificateRecord:
    kind = SubjectKind.PERSON if profile == "citizen" else SubjectKind.ENTERPRISE
    number = citizen_id() if kind is SubjectKind.PERSON else credit_code()
    with platform.db.session() as session:
        return platform.ca.issue(SqlCaStore(session), profile_name=profile, subject=SubjectIdentity(kind, "李四", number),
                                 requested_by=agency.id, csr=ec_csr()[0]).record


def change(platform, action: str, serial: str, **kwargs) -> None:
    with platform.db.session() as session:
        getattr(CertificateLifecycle(), action)(SqlCaStore(session), serial, actor=Actor(None), **kwargs)


def issuer_of(platform, name: str) -> x509.Certificate:
    with platform.db.session() as session:
        return SqlCaStore(session).authority(name).certificate


def request_der(record: CertificateRecord, issuer: x509.Certificate, *, nonce: bytes | None = None) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(record.certificate, issuer, hashes.SHA1())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def post(http: httpx.Client, body: bytes, path: str = "/ocsp") -> httpx.Response:
    response = http.post(path, content=body, headers={"Content-Type": "application/ocsp-request"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == OCSP_RESPONSE
    return response


def get(http: httpx.Client, body: bytes, *, encode=lambda b: urllib.parse.quote(base64.b64encode(b).decode(), safe=""),
        suffix: str = "", headers: dict | None = None) -> httpx.Response:
    return http.get("/ocsp/" + encode(body) + suffix, headers=headers or {})


# --- openssl ocsp as the relying party ---------------------------------------------------------------


class OpenSslOcsp:
    """`openssl ocsp` asking our responder about certificates of one CA, trusting only the root."""

    def __init__(self, base_url: str, pki_dir: Path, tmp_path: Path, issuer: str) -> None:
        self.url, self.pki_dir, self.tmp_path, self.issuer = f"{base_url}/ocsp", pki_dir, tmp_path, issuer

    def ask(self, *records: CertificateRecord, nonce: bool = True, sha256: bool = False,
            serials: tuple[str, ...] = ()) -> str:
        command = [require_tool("openssl"), "ocsp", "-url", self.url, "-CAfile", str(self.pki_dir / "root.pem"),
                   "-resp_text"]
        if sha256:
            command.append("-sha256")  # before the certificates, to which it applies
        command += ["-issuer", str(self.pki_dir / f"{self.issuer}.pem")]
        for record in records:
            path = self.tmp_path / f"{record.serial}.pem"
            path.write_bytes(record.certificate.public_bytes(serialization.Encoding.PEM))
            command += ["-cert", str(path)]
        for serial in serials:
            command += ["-serial", serial]
        if not nonce:
            command.append("-no_nonce")
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        assert "Response verify OK" in output, output
        if nonce:
            assert "OCSP Nonce" in output and "WARNING: no nonce in response" not in output, output
        else:
            assert "OCSP Nonce" not in output, output
        return output

    def status(self, record: CertificateRecord, **options) -> tuple[str, str | None]:
        """(status, reason) that openssl reports for ``record``."""
        output = self.ask(record, **options)
        match = re.search(rf"{re.escape(record.serial)}\.pem: (\w+)", output)
        assert match, output
        reason = re.search(r"^\s*Reason: (\w+)", output, re.MULTILINE)
        return match.group(1), reason.group(1) if reason else None


@pytest.fixture
def openssl(base_url, pki_dir, tmp_path) -> OpenSslOcsp:
    return OpenSslOcsp(base_url, pki_dir, tmp_path, "citizen")


NONCE_AND_HASH = [(True, False), (False, False), (True, True), (False, True)]
IDS = ["nonce-sha1", "no_nonce-sha1", "nonce-sha256", "no_nonce-sha256"]


@pytest.mark.interop
@pytest.mark.parametrize(("nonce", "sha256"), NONCE_AND_HASH, ids=IDS)
def test_openssl_good_then_revoked(platform, agency, openssl, nonce, sha256):
    record = issue(platform, agency)
    assert openssl.status(record, nonce=nonce, sha256=sha256) == ("good", None)
    openssl.status(record, nonce=False, sha256=sha256)  # a stored response exists from here on
    change(platform, "revoke", record.serial, reason=RevocationReason.KEY_COMPROMISE)
    assert openssl.status(record, nonce=nonce, sha256=sha256) == ("revoked", "keyCompromise")
    assert openssl.status(record, nonce=False, sha256=sha256) == ("revoked", "keyCompromise")


@pytest.mark.interop
@pytest.mark.parametrize(("nonce", "sha256"), NONCE_AND_HASH, ids=IDS)
def test_openssl_suspended_then_reinstated(platform, agency, openssl, nonce, sha256):
    record = issue(platform, agency)
    assert openssl.status(record, nonce=False, sha256=sha256) == ("good", None)  # stored
    change(platform, "suspend", record.serial)
    assert openssl.status(record, nonce=nonce, sha256=sha256) == ("revoked", "certificateHold")
    openssl.status(record, nonce=False, sha256=sha256)  # stored again, on hold
    change(platform, "reinstate", record.serial)
    assert openssl.status(record, nonce=nonce, sha256=sha256) == ("good", None)


@pytest.mark.interop
@pytest.mark.parametrize("nonce", [True, False], ids=["nonce", "no_nonce"])
def test_openssl_unknown_for_a_serial_never_issued(openssl, nonce):
    output = openssl.ask(serials=("0x1234",), nonce=nonce)
    assert re.search(r"^0x1234: unknown$", output, re.MULTILINE), output


@pytest.mark.interop
def test_openssl_several_certificates_in_one_request(platform, agency, openssl):
    good, revoked = issue(platform, agency), issue(platform, agency)
    change(platform, "revoke", revoked.serial, reason=RevocationReason.AFFILIATION_CHANGED)
    output = openssl.ask(good, revoked, serials=("0x99",))
    assert f"{good.serial}.pem: good" in output
    assert f"{revoked.serial}.pem: revoked" in output and "Reason: affiliationChanged" in output
    assert "0x99: unknown" in output


@pytest.mark.interop
def test_openssl_enterprise_ca(platform, agency, base_url, pki_dir, tmp_path):
    record = issue(platform, agency, "enterprise")
    assert OpenSslOcsp(base_url, pki_dir, tmp_path, "enterprise").status(record) == ("good", None)


@pytest.mark.interop
def test_openssl_finds_the_responder_in_the_aia_extension(platform, agency, base_url, pki_dir, tmp_path, openssl):
    """The certificates point at {public base}/ocsp; asked there (base rewritten to our test port), it answers."""
    record = issue(platform, agency)
    (aia,) = [d for d in record.certificate.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
              if d.access_method == x509.oid.AuthorityInformationAccessOID.OCSP]
    assert aia.access_location.value == f"{platform.settings.public_base_url}/ocsp"
    assert openssl.status(record) == ("good", None)


# --- GET and POST ------------------------------------------------------------------------------------


def test_get_answers_as_post_with_caching_headers(platform, agency, http):
    record = issue(platform, agency)
    body = request_der(record, issuer_of(platform, "citizen"))
    posted = post(http, body)
    response = get(http, body)
    assert response.status_code == 200 and response.headers["content-type"] == OCSP_RESPONSE
    assert response.content == posted.content  # the stored response
    parsed = ocsp.load_der_ocsp_response(response.content)
    assert parsed.certificate_status is ocsp.OCSPCertStatus.GOOD
    cache_control = response.headers["cache-control"]
    max_age = int(re.search(r"max-age=(\d+)", cache_control).group(1))
    remaining = (parsed.next_update_utc - datetime.now(timezone.utc)).total_seconds()
    assert remaining - 5 <= max_age <= remaining
    assert {"public", "no-transform", "must-revalidate"} <= {p.strip() for p in cache_control.split(",")}
    assert parsedate_to_datetime(response.headers["expires"]) == parsed.next_update_utc
    assert parsedate_to_datetime(response.headers["last-modified"]) == parsed.this_update_utc
    etag = response.headers["etag"]
    assert re.fullmatch(r'"[0-9a-f]{40}"', etag)
    not_modified = get(http, body, headers={"If-None-Match": etag})
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert not_modified.headers["etag"] == etag


@pytest.mark.parametrize("variant", ["trailing slash", "not url-encoded", "url-safe alphabet", "no padding"])
def test_get_tolerates_common_encodings(platform, agency, http, variant):
    record = issue(platform, agency)
    body = request_der(record, issuer_of(platform, "citizen"))
    encode = {
        "trailing slash": lambda b: urllib.parse.quote(base64.b64encode(b).decode(), safe="") + "/",
        "not url-encoded": lambda b: base64.b64encode(b).decode(),
        "url-safe alphabet": lambda b: base64.urlsafe_b64encode(b).decode(),
        "no padding": lambda b: base64.b64encode(b).decode().rstrip("="),
    }[variant]
    response = get(http, body, encode=encode)
    assert response.status_code == 200
    assert ocsp.load_der_ocsp_response(response.content).certificate_status is ocsp.OCSPCertStatus.GOOD


def test_get_with_a_nonce_is_not_cacheable(platform, agency, http):
    record = issue(platform, agency)
    nonce = os.urandom(32)
    response = get(http, request_der(record, issuer_of(platform, "citizen"), nonce=nonce))
    assert response.headers["cache-control"] == "no-store"
    assert "etag" not in response.headers and "expires" not in response.headers
    parsed = ocsp.load_der_ocsp_response(response.content)
    assert parsed.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce


def test_post_to_the_url_with_a_trailing_slash(platform, agency, http):
    record = issue(platform, agency)
    response = post(http, request_der(record, issuer_of(platform, "citizen")), path="/ocsp/")
    assert ocsp.load_der_ocsp_response(response.content).certificate_status is ocsp.OCSPCertStatus.GOOD


def test_a_revocation_is_visible_at_once_over_get_and_post(platform, agency, http):
    record = issue(platform, agency)
    body = request_der(record, issuer_of(platform, "citizen"))
    assert ocsp.load_der_ocsp_response(get(http, body).content).certificate_status is ocsp.OCSPCertStatus.GOOD
    change(platform, "revoke", record.serial, reason=RevocationReason.PRIVILEGE_WITHDRAWN)
    for response in (get(http, body), post(http, body)):
        parsed = ocsp.load_der_ocsp_response(response.content)
        assert parsed.certificate_status is ocsp.OCSPCertStatus.REVOKED
        assert parsed.revocation_reason is x509.ReasonFlags.privilege_withdrawn


# --- what is not a request ----------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"", b"garbage", b"\x30\x82\xff\xff", b"\x30\x03\x02\x01\x01"],
                         ids=["empty", "text", "truncated", "wrong structure"])
def test_a_malformed_post_is_an_ocsp_malformed_request(http, body):
    assert post(http, body).content == MALFORMED


@pytest.mark.parametrize("path", ["/ocsp", "/ocsp/", "/ocsp/%%%", "/ocsp/not*base64", "/ocsp/AAAA"])
def test_a_malformed_get_is_an_ocsp_malformed_request(http, path):
    response = http.get(path)
    assert response.status_code == 200 and response.headers["content-type"] == OCSP_RESPONSE
    assert response.content == MALFORMED
    assert response.headers["cache-control"] == "no-store"


def test_any_content_type_is_read(platform, agency, http):
    """Some clients send none or a generic one; the body is what counts."""
    record = issue(platform, agency)
    response = http.post("/ocsp", content=request_der(record, issuer_of(platform, "citizen")),
                         headers={"Content-Type": "application/octet-stream"})
    assert ocsp.load_der_ocsp_response(response.content).certificate_status is ocsp.OCSPCertStatus.GOOD


def test_a_certificate_of_another_ca_is_unauthorized(http):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Elsewhere CA")])
    now = datetime.now(timezone.utc)
    foreign = x509.CertificateBuilder(name, name, key.public_key(), 1, now, now).sign(key, hashes.SHA256())
    body = ocsp.OCSPRequestBuilder().add_certificate(foreign, foreign, hashes.SHA1()).build()
    response = post(http, body.public_bytes(serialization.Encoding.DER))
    assert ocsp.load_der_ocsp_response(response.content).response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED


def test_an_oversized_body_is_the_platforms_413(platform, http):
    response = http.post("/ocsp", content=b"\x30" * (platform.settings.max_request_bytes + 1),
                         headers={"Content-Type": "application/ocsp-request"})
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "request_too_large"
