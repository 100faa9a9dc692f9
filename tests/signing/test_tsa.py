"""The RFC 3161 TSA: token content, every rejection, robustness, pyHanko in process, HTTP, and
``openssl ts`` parsing and verifying our responses (ECDSA, RSA, and a key on SoftHSM2)."""

from __future__ import annotations

import asyncio
import hashlib
import random
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from asn1crypto import cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from fastapi.testclient import TestClient

from api.http import create_app
from api.platform import Platform, initialize_platform
from ca.authority import CertificateContent, build_certificate
from ca.profiles import KeyUsageSpec
from eauth.errors import NotInitialized
from eauth.oids import TSA_POLICY_V1
from eauth.settings import Settings
from keys.base import KeyAlgorithm
from signing.timestamper import InProcessTimeStamper
from signing.tsa import MAX_NONCE_BITS, TimeStampAuthority, TimeStampResp, TsaConfig
from store.ca_store import SqlCaStore
from tests.conftest import fresh_database, require_tool
from tests.helpers import PASSPHRASE

QUERY = {"Content-Type": "application/timestamp-query"}
FROZEN = datetime(2026, 3, 14, 15, 9, 26, 535897, tzinfo=timezone.utc)
HASHES = {"sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}


def imprint(digest: bytes, oid: str = "2.16.840.1.101.3.4.2.1", parameters: bytes = b"\x05\x00") -> tsp.MessageImprint:
    """A MessageImprint with any algorithm OID and raw parameters (asn1crypto forces NULL on its own)."""
    def tlv(tag, content):
        return bytes([tag, len(content)]) + content
    algorithm = tlv(0x30, core.ObjectIdentifier(oid).dump() + parameters)
    return tsp.MessageImprint.load(tlv(0x30, algorithm + tlv(0x04, digest)))


def query(digest: bytes | None = None, *, algorithm: str = "sha256", nonce: int | None = 0x1234_5678_9ABC_DEF0,
          cert_req: bool = True, policy: str | None = None, extensions: list | None = None, version: int = 1,
          message_imprint: tsp.MessageImprint | None = None) -> bytes:
    """A DER TimeStampReq; by default for SHA-256 of b"document"."""
    digest = HASHES[algorithm](b"document").digest() if digest is None else digest
    if message_imprint is None:
        message_imprint = {"hash_algorithm": {"algorithm": algorithm}, "hashed_message": digest}
    fields = {"version": version, "message_imprint": message_imprint, "cert_req": cert_req}
    if nonce is not None:
        fields["nonce"] = nonce
    if policy is not None:
        fields["req_policy"] = policy
    if extensions is not None:
        fields["extensions"] = extensions
    return tsp.TimeStampReq(fields).dump()


def parse(der: bytes) -> TimeStampResp:
    """The response, every part of it parsed (asn1crypto parses lazily): raises if any is malformed."""
    response = TimeStampResp.load(der, strict=True)
    response["status"].native
    token = response["time_stamp_token"]
    if not isinstance(token, core.Void):
        signed_data = token["content"]
        for name in ("version", "digest_algorithms", "encap_content_info", "signer_infos"):
            signed_data[name].native
        for certificate in signed_data["certificates"] or ():
            certificate.chosen.serial_number  # .native of whole certificates is slow
    return response


def granted(der: bytes) -> tuple[cms.SignedData, tsp.TSTInfo]:
    response = parse(der)
    assert response["status"]["status"].native == "granted", response["status"].native
    signed_data = response["time_stamp_token"]["content"]
    return signed_data, signed_data["encap_content_info"]["content"].parsed


def refused(der: bytes) -> set[str]:
    status = parse(der)["status"]
    assert status["status"].native == "rejection"
    assert isinstance(parse(der)["time_stamp_token"], core.Void)
    assert status["status_string"].native, "a rejection says why"
    return status["fail_info"].native


def verify_signature(signed_data: cms.SignedData, certificate: x509.Certificate) -> None:
    """The CMS signature over the signed attributes, checked with cryptography."""
    signer_info = signed_data["signer_infos"][0]
    attributes = b"\x31" + signer_info["signed_attrs"].dump()[1:]  # [0] IMPLICIT → SET OF, as signed
    signature = signer_info["signature"].native
    key = certificate.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, attributes, ec.ECDSA(hashes.SHA256()))
    else:
        key.verify(signature, attributes, padding.PKCS1v15(), hashes.SHA256())


def attributes(signed_data: cms.SignedData) -> dict[str, list]:
    return {a["type"].native: a["values"] for a in signed_data["signer_infos"][0]["signed_attrs"]}


def authority_certificates(platform: Platform) -> dict[str, x509.Certificate]:
    with platform.db.session() as session:
        return {r.name: r.certificate for r in SqlCaStore(session).authorities()}


@pytest.fixture(scope="module")
def tsa(platform) -> TimeStampAuthority:
    return platform.timestamp_authority()


@pytest.fixture(scope="module")
def certificates(platform) -> dict[str, x509.Certificate]:
    return authority_certificates(platform)


@pytest.fixture(scope="module")
def frozen_tsa(platform, tsa) -> TimeStampAuthority:
    return TimeStampAuthority(tsa.signer, tsa.certificate, chain=(), config=tsa.config, clock=lambda: FROZEN)


# -- tokens ----------------------------------------------------------------------------------------


def test_token_content(frozen_tsa, certificates):
    signed_data, info = granted(frozen_tsa.respond(query()))
    assert info["version"].native == "v1"
    assert info["policy"].dotted == TSA_POLICY_V1
    assert info["message_imprint"]["hash_algorithm"]["algorithm"].native == "sha256"
    assert info["message_imprint"]["hashed_message"].native == hashlib.sha256(b"document").digest()
    assert info["gen_time"].native == FROZEN.replace(microsecond=0)
    assert info["accuracy"].native == {"seconds": 1, "millis": None, "micros": None}
    assert info["ordering"].native is False
    assert info["nonce"].native == 0x1234_5678_9ABC_DEF0
    assert info["tsa"].chosen == asn1_x509.Name.load(certificates["tsa"].subject.public_bytes())
    assert 0 < info["serial_number"].native < 1 << 128
    assert isinstance(info["extensions"], core.Void)
    # DER throughout: re-encoding what was parsed gives the same bytes.
    tst_der = signed_data["encap_content_info"]["content"].contents
    assert tsp.TSTInfo.load(tst_der).dump(force=True) == tst_der


def test_cms_structure_and_signature(tsa, certificates):
    signed_data, _ = granted(tsa.respond(query()))
    assert signed_data["version"].native == "v3"
    assert signed_data["encap_content_info"]["content_type"].native == "tst_info"
    assert [a["algorithm"].native for a in signed_data["digest_algorithms"]] == ["sha256"]
    signer_info = signed_data["signer_infos"][0]
    assert len(signed_data["signer_infos"]) == 1
    tsa_cert = certificates["tsa"]
    sid = signer_info["sid"].chosen
    assert sid["serial_number"].native == tsa_cert.serial_number
    assert sid["issuer"] == asn1_x509.Name.load(tsa_cert.issuer.public_bytes())
    assert signer_info["signature_algorithm"]["algorithm"].native == "sha256_ecdsa"
    assert signer_info["signature_algorithm"]["parameters"].native is None
    attrs = attributes(signed_data)
    assert set(attrs) == {"content_type", "message_digest", "signing_certificate_v2"}
    assert attrs["content_type"][0].native == "tst_info"
    tst_der = signed_data["encap_content_info"]["content"].contents
    assert attrs["message_digest"][0].native == hashlib.sha256(tst_der).digest()
    ess = attrs["signing_certificate_v2"][0]["certs"][0]
    assert ess["hash_algorithm"]["algorithm"].native == "sha256"
    assert ess["cert_hash"].native == hashlib.sha256(tsa_cert.public_bytes(Encoding.DER)).digest()
    assert ess["issuer_serial"]["serial_number"].native == tsa_cert.serial_number
    verify_signature(signed_data, tsa_cert)


def test_certificates_only_when_requested(tsa, certificates):
    with_certs, _ = granted(tsa.respond(query(cert_req=True)))
    sent = {c.chosen.dump() for c in with_certs["certificates"]}
    assert sent == {certificates[n].public_bytes(Encoding.DER) for n in ("tsa", "seal")}
    without, _ = granted(tsa.respond(query(cert_req=False)))
    assert isinstance(without["certificates"], core.Void)


def test_no_nonce_no_echo(tsa):
    _, info = granted(tsa.respond(query(nonce=None)))
    assert isinstance(info["nonce"], core.Void)


@pytest.mark.parametrize("nonce", [0, 1, 127, 128, 255, 256, -1, -128, -129, (1 << 160) - 1, (1 << MAX_NONCE_BITS) - 1])
def test_nonce_echoed_exactly(tsa, nonce):
    _, info = granted(tsa.respond(query(nonce=nonce)))
    assert info["nonce"].native == nonce


@pytest.mark.parametrize("algorithm", ["sha256", "sha384", "sha512"])
def test_accepted_hashes(tsa, algorithm):
    digest = HASHES[algorithm](b"x").digest()
    _, info = granted(tsa.respond(query(digest, algorithm=algorithm)))
    assert info["message_imprint"]["hash_algorithm"]["algorithm"].native == algorithm
    assert info["message_imprint"]["hashed_message"].native == digest


@pytest.mark.parametrize("parameters", [b"\x05\x00", b""], ids=["NULL", "absent"])
def test_imprint_copied(tsa, parameters):
    sent = imprint(hashlib.sha256(b"x").digest(), parameters=parameters)
    _, info = granted(tsa.respond(query(message_imprint=sent)))
    assert info["message_imprint"].dump() == sent.dump()


def test_our_policy_may_be_asked_for(tsa):
    _, info = granted(tsa.respond(query(policy=TSA_POLICY_V1)))
    assert info["policy"].dotted == TSA_POLICY_V1


def test_configured_policy_and_accuracy(tsa):
    custom = TimeStampAuthority(tsa.signer, tsa.certificate, config=TsaConfig(policy_oid="1.2.3.4.5", accuracy_seconds=3,
                                                                                include_tsa_name=False))
    _, info = granted(custom.respond(query(policy="1.2.3.4.5")))
    assert info["policy"].dotted == "1.2.3.4.5"
    assert info["accuracy"]["seconds"].native == 3
    assert isinstance(info["tsa"], core.Void)
    assert refused(custom.respond(query(policy=TSA_POLICY_V1))) == {"unaccepted_policy"}


def test_serials_unique(tsa):
    serials = {granted(tsa.respond(query()))[1]["serial_number"].native for _ in range(100)}
    assert len(serials) == 100


def test_gen_time_is_now(tsa):
    before = datetime.now(timezone.utc).replace(microsecond=0)
    _, info = granted(tsa.respond(query()))
    assert before <= info["gen_time"].native <= datetime.now(timezone.utc)


# -- rejections ------------------------------------------------------------------------------------

_EXTENSION = [{"extn_id": "1.2.3.4", "critical": False, "extn_value": b"\x05\x00"}]
REJECTIONS = {
    "empty body": (b"", "bad_data_format"),
    "not DER": (b"hello, TSA", "bad_data_format"),
    "truncated": (query()[:-5], "bad_data_format"),
    "trailing bytes": (query() + b"\x00\x00", "bad_data_format"),
    "a certificate, not a request": (None, "bad_data_format"),  # filled in by the test
    "version 2": (query(version=2), "bad_data_format"),
    "SHA-1": (query(hashlib.sha1(b"d").digest(), algorithm="sha1"), "bad_alg"),
    "MD5": (query(hashlib.md5(b"d").digest(), algorithm="md5"), "bad_alg"),
    "SM3 (not offered)": (query(message_imprint=imprint(b"\x00" * 32, "1.2.156.10197.1.401")), "bad_alg"),
    "hash parameters not NULL": (query(message_imprint=imprint(b"\x00" * 32, parameters=b"\x02\x01\x05")),
                                 "bad_data_format"),
    "SHA-256 imprint of 20 bytes": (query(b"\x01" * 20), "bad_data_format"),
    "SHA-384 imprint of 32 bytes": (query(b"\x01" * 32, algorithm="sha384"), "bad_data_format"),
    "SHA-512 imprint of 65 bytes": (query(b"\x01" * 65, algorithm="sha512"), "bad_data_format"),
    "another policy": (query(policy="1.3.6.1.4.1.4146.2.2"), "unaccepted_policy"),
    "an extension": (query(extensions=_EXTENSION), "unaccepted_extensions"),
    "a huge nonce": (query(nonce=1 << (MAX_NONCE_BITS + 1)), "bad_data_format"),
}


@pytest.mark.parametrize("case", list(REJECTIONS))
def test_rejections(tsa, certificates, case):
    request, fail_info = REJECTIONS[case]
    if request is None:
        request = certificates["tsa"].public_bytes(Encoding.DER)
    assert refused(tsa.respond(request)) == {fail_info}


def test_never_raises_on_mangled_requests(tsa):
    """Random byte flips, cuts and insertions in valid requests: always a well-formed response."""
    rng = random.Random(3161)
    seeds = [query(), query(nonce=None, cert_req=False), query(HASHES["sha512"](b"").digest(), algorithm="sha512"),
             query(policy=TSA_POLICY_V1)]
    outcomes = set()
    for _ in range(1500):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 3)):
            position = rng.randrange(len(data))
            match rng.randrange(3):
                case 0:
                    data[position] = rng.randrange(256)
                case 1:
                    del data[position:position + rng.randint(1, 4)]
                case 2:
                    data[position:position] = bytes([rng.randrange(256)])
        response = parse(tsa.respond(bytes(data)))
        status = response["status"]["status"].native
        outcomes.add(status)
        if status == "granted":
            verify_signature(response["time_stamp_token"]["content"], tsa.certificate)
    assert outcomes == {"granted", "rejection"}


class _BrokenSigner:
    def __init__(self, signer):
        self.label, self.algorithm, self.public_key = signer.label, signer.algorithm, signer.public_key

    def sign(self, data: bytes) -> bytes:
        raise RuntimeError("token removed")


def test_signing_failure_is_a_system_failure(tsa, caplog):
    broken = TimeStampAuthority(_BrokenSigner(tsa.signer), tsa.certificate)
    assert refused(broken.respond(query())) == {"system_failure"}
    assert "could not be made" in caplog.text


def test_refuses_a_key_that_is_not_the_certificates(platform, tsa, certificates):
    with pytest.raises(NotInitialized):
        TimeStampAuthority(platform.keys.signer("ca-seal"), tsa.certificate)
    with pytest.raises(NotInitialized):  # right key pair, but the seal CA certificate has no timeStamping EKU
        TimeStampAuthority(platform.keys.signer("ca-seal"), certificates["seal"])


# -- pyHanko, in process ---------------------------------------------------------------------------


def pyhanko_validate(tsa: TimeStampAuthority, root: x509.Certificate, algorithm: str = "sha256"):
    """A token got through pyHanko's TimeStamper API, validated by pyHanko against ``root`` only."""
    from pyhanko.sign.validation.generic_cms import validate_tst_signed_data
    from pyhanko.sign.validation.status import TimestampSignatureStatus
    from pyhanko_certvalidator import ValidationContext

    digest = HASHES[algorithm](b"a PDF's signature value").digest()
    timestamper = InProcessTimeStamper(tsa)
    token = asyncio.run(timestamper.async_timestamp(digest, algorithm))
    context = ValidationContext(trust_roots=[asn1_x509.Certificate.load(root.public_bytes(Encoding.DER))],
                                allow_fetching=False, revocation_mode="soft-fail")
    kwargs = asyncio.run(validate_tst_signed_data(token["content"], context, lambda _: digest))
    return TimestampSignatureStatus(**kwargs)


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
def test_pyhanko_accepts_tokens(tsa, certificates, algorithm):
    status = pyhanko_validate(tsa, certificates["root"], algorithm)
    assert status.intact and status.valid and status.trusted, status
    assert status.signing_cert.sha256 == hashlib.sha256(certificates["tsa"].public_bytes(Encoding.DER)).digest()
    assert abs(status.timestamp - datetime.now(timezone.utc)) < timedelta(minutes=1)


def test_pyhanko_untrusted_without_our_root(tsa, certificates):
    other = authority_certificates_of_a_stranger()
    status = pyhanko_validate(tsa, other)
    assert status.intact and status.valid and not status.trusted


def authority_certificates_of_a_stranger() -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stranger")])
    now = datetime.now(timezone.utc)
    return (x509.CertificateBuilder(name, name, key.public_key(), 7, now - timedelta(days=1), now + timedelta(days=9))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))


def test_pyhanko_document_timestamp(tsa, certificates):
    """A PDF document time stamp (the B-LTA ingredient) made by pyHanko with our TSA, and validated."""
    import io

    from pyhanko.pdf_utils import generic, writer
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.signers import PdfTimeStamper
    from pyhanko.sign.validation import async_validate_pdf_timestamp
    from pyhanko_certvalidator import ValidationContext

    name, number = generic.NameObject, generic.NumberObject
    pdf = writer.PdfFileWriter()
    pdf.insert_page(generic.DictionaryObject({name("/Type"): name("/Page"),
                                              name("/MediaBox"): generic.ArrayObject(map(number, (0, 0, 595, 842)))}))
    blank = io.BytesIO()
    pdf.write(blank)
    blank.seek(0)
    stamped = PdfTimeStamper(InProcessTimeStamper(tsa)).timestamp_pdf(IncrementalPdfFileWriter(blank), "sha256")
    root = asn1_x509.Certificate.load(certificates["root"].public_bytes(Encoding.DER))
    context = ValidationContext(trust_roots=[root], allow_fetching=False, revocation_mode="soft-fail")
    status = asyncio.run(async_validate_pdf_timestamp(PdfFileReader(stamped).embedded_signatures[0],
                                                      validation_context=context))
    assert status.intact and status.valid and status.trusted, status
    assert status.coverage.name == "ENTIRE_FILE"


def test_pyhanko_reports_a_rejection(tsa):
    from pyhanko.sign.timestamps import TimestampRequestError

    with pytest.raises(TimestampRequestError, match="bad_alg"):
        asyncio.run(InProcessTimeStamper(tsa).async_timestamp(hashlib.sha1(b"x").digest(), "sha1"))


# -- HTTP ------------------------------------------------------------------------------------------


def test_http_granted(api, tsa):
    response = api.post("/tsa", content=query(), headers=QUERY)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/timestamp-reply"
    signed_data, _ = granted(response.content)
    verify_signature(signed_data, tsa.certificate)


def test_http_malformed_query_is_a_rejection_not_an_error(api):
    response = api.post("/tsa", content=b"\x30\x03\x02\x01", headers=QUERY)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/timestamp-reply"
    assert refused(response.content) == {"bad_data_format"}


@pytest.mark.parametrize("content_type", [None, "application/json", "application/ocsp-request", "text/plain"])
def test_http_wrong_content_type(api, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    response = api.post("/tsa", content=query(), headers=headers)
    assert response.status_code == 415
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "unsupported_media_type"


def test_http_content_type_parameters_ignored(api):
    response = api.post("/tsa", content=query(), headers={"Content-Type": "Application/Timestamp-Query; x=1"})
    assert response.status_code == 200


def test_http_body_too_large(api, platform):
    response = api.post("/tsa", content=b"\x30" * (platform.settings.max_request_bytes + 1), headers=QUERY)
    assert response.status_code == 413
    assert response.json()["code"] == "request_too_large"


def test_http_get_not_allowed(api):
    assert api.get("/tsa").status_code == 405


def test_openapi_documents_the_media_types(api):
    operation = api.get("/openapi.json").json()["paths"]["/tsa"]["post"]
    assert "application/timestamp-query" in operation["requestBody"]["content"]
    assert "application/timestamp-reply" in operation["responses"]["200"]["content"]


# -- openssl ts ------------------------------------------------------------------------------------


def openssl(*args, cwd: Path) -> str:
    result = subprocess.run([require_tool("openssl"), *map(str, args)], capture_output=True, text=True, cwd=cwd)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def write_pki(directory: Path, certificates: dict[str, x509.Certificate]) -> None:
    for name in ("root", "seal", "tsa"):
        (directory / f"{name}.pem").write_bytes(certificates[name].public_bytes(Encoding.PEM))
    (directory / "untrusted.pem").write_bytes((directory / "seal.pem").read_bytes() + (directory / "tsa.pem").read_bytes())


def openssl_round_trip(tmp_path: Path, post, certificates, *query_options: str) -> str:
    """openssl makes the query, we answer, openssl prints and verifies the reply; returns the print."""
    write_pki(tmp_path, certificates)
    (tmp_path / "data.txt").write_bytes(b"\xe7\x94\xb5\xe5\xad\x90\xe8\xaf\x81\xe7\x85\xa7 electronic license\n")
    openssl("ts", "-query", "-data", "data.txt", *query_options, "-out", "q.tsq", cwd=tmp_path)
    (tmp_path / "r.tsr").write_bytes(post((tmp_path / "q.tsq").read_bytes()))
    text = openssl("ts", "-reply", "-in", "r.tsr", "-text", cwd=tmp_path)
    verified = openssl("ts", "-verify", "-data", "data.txt", "-in", "r.tsr", "-CAfile", "root.pem",
                       "-untrusted", "untrusted.pem", cwd=tmp_path)
    assert "Verification: OK" in verified, verified
    # and against the query itself (imprint, nonce, policy all checked)
    verified = openssl("ts", "-verify", "-queryfile", "q.tsq", "-in", "r.tsr", "-CAfile", "root.pem",
                       "-untrusted", "untrusted.pem", cwd=tmp_path)
    assert "Verification: OK" in verified, verified
    return text


def http_post(api):
    def post(body: bytes) -> bytes:
        response = api.post("/tsa", content=body, headers=QUERY)
        assert response.status_code == 200, response.text
        return response.content

    return post


@pytest.mark.interop
def test_openssl_query_with_cert_and_nonce(api, certificates, tmp_path):
    text = openssl_round_trip(tmp_path, http_post(api), certificates, "-sha256", "-cert")
    assert "Status: Granted." in text
    assert f"Policy OID: {TSA_POLICY_V1}" in text
    assert "Hash Algorithm: sha256" in text
    assert "Accuracy: 0x01 seconds" in text
    assert "Nonce: 0x" in text
    assert "TSA: DirName:" in text and "Time Stamping Authority" in text
    query_nonce = openssl("ts", "-query", "-in", "q.tsq", "-text", cwd=tmp_path).split("Nonce: ")[1].split()[0]
    assert f"Nonce: {query_nonce}" in text


@pytest.mark.interop
def test_openssl_query_without_nonce_or_cert(api, certificates, tmp_path):
    text = openssl_round_trip(tmp_path, http_post(api), certificates, "-sha256", "-no_nonce")
    assert "Status: Granted." in text
    assert "Nonce: unspecified" in text
    token = parse((tmp_path / "r.tsr").read_bytes())["time_stamp_token"]["content"]
    assert isinstance(token["certificates"], core.Void)


@pytest.mark.interop
@pytest.mark.parametrize("algorithm", ["sha384", "sha512"])
def test_openssl_longer_hashes(api, certificates, tmp_path, algorithm):
    text = openssl_round_trip(tmp_path, http_post(api), certificates, f"-{algorithm}", "-cert")
    assert f"Hash Algorithm: {algorithm}" in text


@pytest.mark.interop
def test_openssl_asks_for_our_policy(api, certificates, tmp_path):
    text = openssl_round_trip(tmp_path, http_post(api), certificates, "-sha256", "-cert", "-tspolicy", TSA_POLICY_V1)
    assert "Status: Granted." in text


#: What ``openssl ts -reply -text`` prints for each failInfo.
OPENSSL_FAILURE_TEXT = {
    "bad_alg": "unrecognized or unsupported algorithm identifier",
    "bad_data_format": "the data submitted has the wrong format",
    "unaccepted_policy": "the requested TSA policy is not supported by the TSA",
    "unaccepted_extensions": "the requested extension is not supported by the TSA",
}


@pytest.mark.interop
@pytest.mark.parametrize("options, fail_info", [
    (["-sha1"], "bad_alg"),
    (["-md5"], "bad_alg"),
    (["-sha256", "-tspolicy", "1.3.6.1.4.1.4146.2.2"], "unaccepted_policy"),
], ids=["sha1", "md5", "foreign-policy"])
def test_openssl_rejections_from_openssl_queries(api, tmp_path, options, fail_info):
    (tmp_path / "data.txt").write_bytes(b"data")
    openssl("ts", "-query", "-data", "data.txt", *options, "-out", "q.tsq", cwd=tmp_path)
    (tmp_path / "r.tsr").write_bytes(http_post(api)((tmp_path / "q.tsq").read_bytes()))
    text = openssl("ts", "-reply", "-in", "r.tsr", "-text", cwd=tmp_path)
    assert "Status: Rejected." in text
    assert OPENSSL_FAILURE_TEXT[fail_info] in text, text


@pytest.mark.interop
@pytest.mark.parametrize("case", [c for c in REJECTIONS if c != "a certificate, not a request"])
def test_openssl_prints_every_rejection(api, tmp_path, case):
    request, fail_info = REJECTIONS[case]
    (tmp_path / "r.tsr").write_bytes(http_post(api)(request))
    text = openssl("ts", "-reply", "-in", "r.tsr", "-text", cwd=tmp_path)
    assert "Status: Rejected." in text
    assert OPENSSL_FAILURE_TEXT[fail_info] in text, text


# -- an RSA TSA, and a TSA key on an HSM -----------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_platform(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("rsa-data")
    databases = fresh_database(data_dir)
    settings = Settings(_env_file=None, data_dir=data_dir, database_url=next(databases), key_passphrase=PASSPHRASE,
                        key_algorithm="rsa-2048")
    initialize_platform(settings)
    opened = Platform.open(settings)
    yield opened
    opened.close()
    databases.close()


def test_rsa_tsa_token(rsa_platform):
    tsa = rsa_platform.timestamp_authority()
    assert tsa.signer.algorithm is KeyAlgorithm.RSA_2048
    signed_data, _ = granted(tsa.respond(query()))
    algorithm = signed_data["signer_infos"][0]["signature_algorithm"]
    assert algorithm["algorithm"].native == "sha256_rsa"
    assert algorithm["parameters"].dump() == core.Null().dump()  # RFC 4055: NULL, present
    verify_signature(signed_data, tsa.certificate)
    status = pyhanko_validate(tsa, authority_certificates(rsa_platform)["root"])
    assert status.intact and status.valid and status.trusted, status


@pytest.mark.interop
def test_rsa_tsa_with_openssl(rsa_platform, tmp_path):
    with TestClient(create_app(platform=rsa_platform)) as client:
        text = openssl_round_trip(tmp_path, http_post(client), authority_certificates(rsa_platform), "-sha256", "-cert")
    assert "Status: Granted." in text


@pytest.fixture(scope="module")
def hsm_tsa(platform, softhsm_token) -> TimeStampAuthority:
    """A TSA whose key is made and kept on SoftHSM2, certified by the (file-keyed) platform's seal CA."""
    from keys.pkcs11store import Pkcs11KeyStore

    module, label, pin = softhsm_token
    keys = Pkcs11KeyStore(module, label, pin)
    key_label = "test-tsa-on-hsm"
    signer = keys.signer(key_label) if keys.has_key(key_label) else keys.generate(key_label, KeyAlgorithm.EC_P256)
    with platform.db.session() as session:
        seal = SqlCaStore(session).authority("seal")
    now = datetime.now(timezone.utc).replace(microsecond=0)
    content = CertificateContent(
        subject=x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                           x509.NameAttribute(NameOID.COMMON_NAME, "HSM Time Stamping Authority")]),
        public_key=signer.public_key, not_before=now, not_after=now + timedelta(days=30), is_ca=False,
        key_usage=KeyUsageSpec(digital_signature=True, content_commitment=True),
        extended_key_usage=(ExtendedKeyUsageOID.TIME_STAMPING,),
    )
    certificate = build_certificate(content, issuer=seal, issuer_signer=platform.keys.signer(seal.key_label),
                                    urls=platform.ca.urls)
    assert not hasattr(signer, "private_key")
    return TimeStampAuthority(signer, certificate, chain=(seal.certificate,))


@pytest.mark.interop
def test_hsm_tsa_with_openssl(hsm_tsa, certificates, tmp_path):
    on_hsm = certificates | {"tsa": hsm_tsa.certificate}
    text = openssl_round_trip(tmp_path, hsm_tsa.respond, on_hsm, "-sha256", "-cert")
    assert "Status: Granted." in text and "HSM Time Stamping Authority" in text
    text = openssl_round_trip(tmp_path, hsm_tsa.respond, on_hsm, "-sha512", "-no_nonce")
    assert "Nonce: unspecified" in text


@pytest.mark.interop
def test_hsm_tsa_with_pyhanko(hsm_tsa, certificates):
    status = pyhanko_validate(hsm_tsa, certificates["root"])
    assert status.intact and status.valid and status.trusted, status


def test_signing_does_not_import_the_web_layer():
    code = ("import sys, signing.tsa, signing.timestamper; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('fastapi', 'starlette', 'api')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
