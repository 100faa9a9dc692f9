"""Certificate issuance: in process and over HTTP, next to cryptography's raw CertificateBuilder.sign."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from api.platform import Platform, initialize_platform
from bench.server import serve
from ca.authority import random_serial
from ca.profiles import SubjectKind, profile
from ca.subjects import SubjectIdentity
from eauth.settings import Settings
from store.agencies import add_agency, add_client
from store.ca_store import SqlCaStore

CITIZEN_ID = "11010519491231002X"  # the GB 11643 example number


def rate(operation: Callable[[], object], seconds: float) -> float:
    """Operations per second of ``operation`` run repeatedly for about ``seconds``."""
    for _ in range(20):
        operation()  # warm caches and code paths
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for _ in range(20):
            operation()
        count += 20
    return count / (time.perf_counter() - start)


def _csr() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench")])
    ).sign(key, hashes.SHA256())
    return csr.public_bytes(Encoding.PEM)


def _raw_issue(issuer_key, issuer_cert: x509.Certificate, subject_key) -> Callable[[], x509.Certificate]:
    """The same certificate content as the citizen profile, built and signed with cryptography alone."""
    issuer_ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    subject = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                         x509.NameAttribute(NameOID.SERIAL_NUMBER, "P" + "A" * 32),
                         x509.NameAttribute(NameOID.COMMON_NAME, "张三")])

    def issue() -> x509.Certificate:
        now = datetime.now(timezone.utc)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer_cert.subject)
            .public_key(subject_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + timedelta(days=730))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(subject_key), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH,
                                                  ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
                [x509.UniformResourceIdentifier("http://127.0.0.1:8000/crl/citizen.crl")], None, None, None)]),
                critical=False)
            .add_extension(x509.AuthorityInformationAccess([
                x509.AccessDescription(AuthorityInformationAccessOID.OCSP,
                                       x509.UniformResourceIdentifier("http://127.0.0.1:8000/ocsp")),
                x509.AccessDescription(AuthorityInformationAccessOID.CA_ISSUERS,
                                       x509.UniformResourceIdentifier("http://127.0.0.1:8000/ca/citizen.cer"))]),
                critical=False)
            .sign(issuer_key, hashes.SHA256())
        )

    return issue


def operations(platform: Platform, agency_id: int, csr: bytes) -> tuple[Callable[[], object], ...]:
    """(one issuance in process, in its own transaction; our signing core alone; the raw baseline),
    all over ``csr``'s key and the citizen issuing CA: what the bench times and bench.profile takes
    apart."""
    subject = SubjectIdentity(SubjectKind.PERSON, "张三", CITIZEN_ID)

    def issue_in_process() -> None:
        with platform.db.transaction() as connection:
            platform.ca.issue(SqlCaStore(connection), profile_name="citizen", subject=subject,
                              requested_by=agency_id, csr=csr)

    with platform.db.session() as session:
        issuer, signer = platform.ca.issuer(SqlCaStore(session), "citizen")
    subject_key = x509.load_pem_x509_csr(csr).public_key()
    identity = subject.validated()

    def sign_only() -> None:
        platform.ca._sign(profile("citizen"), identity, "P" + "A" * 32, subject_key, random_serial(), issuer, signer)

    return issue_in_process, sign_only, _raw_issue(signer.private_key, issuer.certificate, subject_key)


def _wrk(url: str, seconds: float, *, script: Path | None = None, connections: int = 32) -> float:
    """Requests per second that wrk achieves; refuses a run with any non-2xx response."""
    command = ["wrk", "-t2", f"-c{connections}", f"-d{max(int(seconds), 2)}s", url]
    if script:
        command[1:1] = ["-s", str(script)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in output or "Socket errors" in output:
        raise RuntimeError(f"wrk saw failed requests:\n{output}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))


def _http_rates(settings_env: dict[str, str], csr: bytes, seconds: float, workers: int = 2) -> tuple[float, float]:
    """(issuance/s, trivial endpoint/s) against `eauth serve --workers N`, loaded by wrk."""
    with serve(settings_env, workers=workers) as base:
        credentials = json.loads(Path(settings_env["EAUTH_DATA_DIR"], "bench-client.json").read_text())
        token = httpx.post(base + "/api/v1/oauth/token", data={"grant_type": "client_credentials"},
                           auth=(credentials["client_id"], credentials["client_secret"])).json()["access_token"]
        body = json.dumps({"profile": "citizen", "name": "张三", "id_number": CITIZEN_ID, "csr": csr.decode()})
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
            script.write(
                'wrk.method = "POST"\n'
                f"wrk.body = {json.dumps(body)}\n"
                'wrk.headers["Content-Type"] = "application/json"\n'
                f'wrk.headers["Authorization"] = "Bearer {token}"\n'
            )
        issued = _wrk(base + "/api/v1/certificates", seconds, script=Path(script.name))
        trivial = _wrk(base + "/.well-known/jwks.json", seconds)
        os.unlink(script.name)
        return issued, trivial


def run(*, seconds: float) -> list[dict]:
    data_dir = Path(tempfile.mkdtemp(prefix="eauth-bench-"))
    env = {"EAUTH_DATA_DIR": str(data_dir), "EAUTH_KEY_PASSPHRASE": "bench passphrase"}
    if os.environ.get("EAUTH_DATABASE_URL"):
        env["EAUTH_DATABASE_URL"] = os.environ["EAUTH_DATABASE_URL"]
    settings = Settings(_env_file=None, data_dir=data_dir, key_passphrase=env["EAUTH_KEY_PASSPHRASE"],
                        database_url=env.get("EAUTH_DATABASE_URL"))
    initialize_platform(settings)
    platform = Platform.open(settings)
    try:
        with platform.db.session() as session:
            agency = add_agency(session, code="bench", name="bench", credit_code=None)
            client, secret = add_client(session, agency_code="bench", name="bench", scopes={"certificates:issue"})
        (data_dir / "bench-client.json").write_text(json.dumps({"client_id": client.client_id, "client_secret": secret}))
        csr = _csr()
        issue_in_process, sign_only, raw_issue = operations(platform, agency.id, csr)
        raw = rate(raw_issue, seconds)
        ours = rate(issue_in_process, seconds)
        core = rate(sign_only, seconds)
    finally:
        platform.close()
    figures = [
        {"name": "certificates issued in process (CSR, SQLite)", "ours": ours, "unit": "/s", "baseline": raw,
         "baseline_name": "cryptography CertificateBuilder.sign", "target": "≥ 0.50× baseline",
         "met": ours >= 0.5 * raw,
         "note": "includes the CSR signature check (~140 µs, an ECDSA verify) and a committed transaction"},
        {"name": "of which the signing core (profile → signed certificate, no CSR, no DB)", "ours": core, "unit": "/s",
         "baseline": raw, "baseline_name": "cryptography CertificateBuilder.sign", "target": "—", "met": True},
    ]
    if shutil.which("wrk") is None:
        figures.append({"name": "certificates issued over HTTP", "ours": 0.0, "unit": "/s", "baseline": None,
                        "baseline_name": None, "target": "≥ 500/s", "met": False,
                        "note": "wrk not installed (apt-get install wrk)"})
    else:
        issued, trivial = _http_rates(env, csr, seconds)
        figures.append({"name": "certificates issued over HTTP (2 workers, wrk -c32)", "ours": issued, "unit": "/s",
                        "baseline": trivial, "baseline_name": "GET /.well-known/jwks.json, same server",
                        "target": "≥ 500/s", "met": issued >= 500})
    shutil.rmtree(data_dir, ignore_errors=True)
    return figures
