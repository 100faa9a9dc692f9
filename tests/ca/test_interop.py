"""The platform's certificates as outside tools see them: ``openssl verify`` builds and checks each
chain (strict X.509, purpose where OpenSSL has one), and pkilint's RFC 5280 linter finds no ERROR or
FATAL in any certificate, nor in any issuer/subject pair.

pkilint runs in process through its own CLI entry points (the very validators of ``lint_pkix_cert``,
~1 s of start-up saved per certificate); one test also runs the installed console script and checks
that it agrees.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding

from ca.authority import HIERARCHY
from ca.profiles import PROFILES, SubjectKind
from ca.subjects import SubjectIdentity
from store.ca_store import SqlCaStore
from tests.conftest import REQUIRE_INTEROP, require_tool
from tests.helpers import citizen_id, credit_code, ec_csr

pytestmark = pytest.mark.interop

SPECS = {spec.name: spec for spec in HIERARCHY}
BLOCKING = {"ERROR", "FATAL"}
#: WARNING/NOTICE findings accepted after review (code -> why). Empty: the certificates have none.
ACCEPTED_NOTICES: dict[str, str] = {}


@dataclass(frozen=True)
class Leaf:
    path: Path
    issuer: str  # name of the issuing CA, whose PEM is in the same directory


@pytest.fixture(scope="module")
def leaves(platform, agency, pki_dir) -> dict[str, Leaf]:
    """One end-entity certificate per profile (and an RSA-2048 citizen one) written beside the CA PEMs."""
    subjects = {
        "citizen": ("citizen", SubjectIdentity(SubjectKind.PERSON, "张三", citizen_id()), None),
        "citizen-rsa": ("citizen", SubjectIdentity(SubjectKind.PERSON, "李四", citizen_id()),
                        rsa.generate_private_key(65537, 2048)),
        "enterprise": ("enterprise", SubjectIdentity(SubjectKind.ENTERPRISE, "深圳市某某科技有限公司", credit_code()), None),
        "agency-seal": ("agency-seal", SubjectIdentity(SubjectKind.AGENCY, "深圳市市场监督管理局", credit_code()), None),
    }
    made = {}
    for label, (profile_name, subject, key) in subjects.items():
        pem, _ = ec_csr(key=key)
        with platform.db.session() as session:
            issued = platform.ca.issue(SqlCaStore(session), profile_name=profile_name, subject=subject,
                                       requested_by=agency.id, csr=pem)
        path = pki_dir / f"ee-{label}.pem"
        path.write_bytes(x509.load_der_x509_certificate(issued.record.der).public_bytes(Encoding.PEM))
        assert issued.record.issuer == PROFILES[profile_name].issuer
        made[label] = Leaf(path, issued.record.issuer)
    return made


# --- openssl verify --------------------------------------------------------------------------------


def openssl_verify(pki_dir: Path, leaf: Path, issuer: str, *options: str) -> subprocess.CompletedProcess:
    command = [require_tool("openssl"), "verify", "-x509_strict", *options, "-CAfile", str(pki_dir / "root.pem")]
    if issuer != "root":
        command += ["-untrusted", str(pki_dir / f"{issuer}.pem")]
    return subprocess.run([*command, str(leaf)], capture_output=True, text=True, timeout=60)


def assert_verified(result: subprocess.CompletedProcess, leaf: Path) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert result.stdout.strip().endswith(f"{leaf}: OK"), output
    assert "error" not in output.lower(), output


# OpenSSL 3.0 has no purpose for documentSigning, so the seal is checked without one.
LEAF_PURPOSES = [
    ("citizen", None), ("citizen", "sslclient"), ("citizen", "smimesign"),
    ("citizen-rsa", None), ("citizen-rsa", "sslclient"), ("citizen-rsa", "smimesign"),
    ("enterprise", None), ("enterprise", "sslclient"), ("enterprise", "smimesign"),
    ("agency-seal", None),
]


@pytest.mark.parametrize(("label", "purpose"), LEAF_PURPOSES, ids=[f"{l}-{p or 'strict'}" for l, p in LEAF_PURPOSES])
def test_openssl_verifies_end_entities(pki_dir, leaves, label, purpose):
    leaf = leaves[label]
    options = ("-purpose", purpose) if purpose else ()
    assert_verified(openssl_verify(pki_dir, leaf.path, leaf.issuer, *options), leaf.path)


AUTHORITY_PURPOSES = [(s.name, {"ocsp": "ocsphelper", "tsa": "timestampsign"}.get(s.role)) for s in HIERARCHY]


@pytest.mark.parametrize(("name", "purpose"), AUTHORITY_PURPOSES, ids=[n for n, _ in AUTHORITY_PURPOSES])
def test_openssl_verifies_the_hierarchy(pki_dir, name, purpose):
    path = pki_dir / f"{name}.pem"
    parent = SPECS[name].parent or "root"
    options = ("-purpose", purpose) if purpose else ()
    assert_verified(openssl_verify(pki_dir, path, parent, *options), path)
    if purpose:  # and once more without a purpose
        assert_verified(openssl_verify(pki_dir, path, parent), path)


def test_openssl_purpose_check_is_not_vacuous(pki_dir, leaves):
    """A login certificate is no time-stamping certificate, and the TSA's is no login certificate."""
    leaf = leaves["citizen"]
    assert openssl_verify(pki_dir, leaf.path, leaf.issuer, "-purpose", "timestampsign").returncode != 0
    assert openssl_verify(pki_dir, pki_dir / "tsa.pem", "seal", "-purpose", "sslclient").returncode != 0


def test_openssl_rejects_a_leaf_under_the_wrong_issuer(pki_dir, leaves):
    leaf = leaves["citizen"]
    assert openssl_verify(pki_dir, leaf.path, "enterprise").returncode != 0


# --- pkilint ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    severity: str
    code: str
    validator: str
    node_path: str

    def __str__(self) -> str:
        return f"{self.severity} {self.code} ({self.validator} @ {self.node_path})"


def _pkilint_cli(module: str):
    try:
        return __import__(f"pkilint.bin.{module}", fromlist=["main"])
    except ImportError:
        message = "pkilint not installed"
        if REQUIRE_INTEROP:
            pytest.fail(message + " (EAUTH_REQUIRE_INTEROP=1)")
        pytest.skip(message)


def parse_report(output: str) -> list[Finding]:
    """Findings from pkilint's JSON report (``-f JSON``): results[].finding_descriptions[]."""
    report = json.loads(output)
    return [
        Finding(description["severity"], description["code"], result["validator"], result["node_path"])
        for result in report["results"]
        for description in result["finding_descriptions"]
    ]


def run_pkilint(module: str, *files: Path) -> list[Finding]:
    """Run a pkilint CLI in process with every finding (INFO and up) reported as JSON.

    Its exit code is the number of findings at or above the threshold (clamped to 255), not
    pass/fail: checked against the parsed report so that a load failure (exit 1, message on stderr,
    no report) can't pass for a clean certificate."""
    main = _pkilint_cli(module).main
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["lint", "-f", "JSON", "-s", "INFO", *map(str, files)])
    assert not stderr.getvalue(), stderr.getvalue()
    findings = parse_report(stdout.getvalue())
    assert code == min(len(findings), 255), (code, findings)
    return findings


def assert_lint_clean(findings: list[Finding]) -> None:
    blocking = [str(f) for f in findings if f.severity in BLOCKING]
    assert not blocking, "\n".join(blocking)
    unreviewed = [str(f) for f in findings if f.severity in ("WARNING", "NOTICE") and f.code not in ACCEPTED_NOTICES]
    assert not unreviewed, "\n".join(unreviewed)


@pytest.mark.parametrize("name", list(SPECS))
def test_pkilint_hierarchy(pki_dir, name):
    assert_lint_clean(run_pkilint("lint_pkix_cert", pki_dir / f"{name}.pem"))


@pytest.mark.parametrize("label", ["citizen", "citizen-rsa", "enterprise", "agency-seal"])
def test_pkilint_end_entities(leaves, label):
    assert_lint_clean(run_pkilint("lint_pkix_cert", leaves[label].path))


CHAIN_PAIRS = [(s.parent, s.name) for s in HIERARCHY if s.parent] + [("root", "root")]


@pytest.mark.parametrize(("issuer", "subject"), CHAIN_PAIRS, ids=[f"{i}-{s}" for i, s in CHAIN_PAIRS])
def test_pkilint_issuer_subject_pairs(pki_dir, issuer, subject):
    """Name chaining, AKI = issuer SKI, signature algorithm, validity nesting (RFC 5280 §6)."""
    assert_lint_clean(run_pkilint("lint_pkix_signer_signee_cert_chain", pki_dir / f"{issuer}.pem",
                                  pki_dir / f"{subject}.pem"))


@pytest.mark.parametrize("label", ["citizen", "citizen-rsa", "enterprise", "agency-seal"])
def test_pkilint_end_entity_pairs(pki_dir, leaves, label):
    leaf = leaves[label]
    assert_lint_clean(run_pkilint("lint_pkix_signer_signee_cert_chain", pki_dir / f"{leaf.issuer}.pem", leaf.path))


def test_pkilint_console_script_agrees(leaves):
    """The installed ``lint_pkix_cert`` command reports what the in-process run does."""
    beside = Path(sys.executable).parent / "lint_pkix_cert"
    tool = str(beside) if os.access(beside, os.X_OK) else require_tool("lint_pkix_cert")
    path = leaves["citizen"].path
    result = subprocess.run([tool, "lint", "-f", "JSON", "-s", "INFO", str(path)], capture_output=True, text=True,
                            timeout=120)
    findings = parse_report(result.stdout)
    assert result.returncode == min(len(findings), 255), result.stderr
    assert findings == run_pkilint("lint_pkix_cert", path)
    assert_lint_clean(findings)
