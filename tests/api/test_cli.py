"""The ``eauth`` command line, run as the installed entry point in its own process with its own data
directory: setup, agencies, clients, certificates, and errors as one line on stderr, never a traceback."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, pkcs12
from cryptography.x509.oid import NameOID
from sqlalchemy import create_engine, func, select

from store.models import Certificate
from tests.conftest import fresh_postgres_database
from tests.helpers import PASSPHRASE, citizen_id, credit_code, ec_csr

PEM_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n", re.S)
ISSUED = re.compile(r"issued serial ([0-9a-f]+) to ")


def _entry_point() -> list[str]:
    """The console script pip installed next to this interpreter (what an operator runs)."""
    script = shutil.which("eauth", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.fail(f"the eauth entry point is not installed beside {sys.executable} (pip install -e .)")
    return [script]


@dataclass
class Cli:
    """Runs ``eauth`` with a clean environment: only the EAUTH_* variables given here."""

    workdir: Path
    data_dir: Path
    database_url: str | None  # None: the default SQLite file in the data dir
    base_env: dict[str, str] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EAUTH_")}
        env |= {"EAUTH_DATA_DIR": str(self.data_dir), "EAUTH_KEY_PASSPHRASE": PASSPHRASE}
        if self.database_url:
            env["EAUTH_DATABASE_URL"] = self.database_url
        return env | self.base_env

    def run(self, *args: str, env: dict[str, str | None] | None = None) -> subprocess.CompletedProcess[str]:
        environment = self.env
        for key, value in (env or {}).items():
            if value is None:
                environment.pop(key, None)
            else:
                environment[key] = value
        # cwd: a directory of our own, so no stray .env file is read
        return subprocess.run(
            [*_entry_point(), *args], cwd=self.workdir, env=environment, capture_output=True, text=True, timeout=120
        )

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = self.run(*args)
        assert result.returncode == 0, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
        assert "Traceback" not in result.stderr
        return result

    def certificate_count(self) -> int:
        engine = create_engine(self.database_url or f"sqlite:///{self.data_dir / 'eauth.db'}")
        try:
            with engine.connect() as connection:
                return connection.scalar(select(func.count()).select_from(Certificate))
        finally:
            engine.dispose()


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    """A non-zero exit with exactly one line on stderr, mentioning each of ``needles``."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _database() -> Iterator[str | None]:
    """A fresh PostgreSQL database when EAUTH_TEST_DATABASE_URL names a server, else None: the CLI's
    default SQLite file in its data dir, with EAUTH_DATABASE_URL unset."""
    server = os.environ.get("EAUTH_TEST_DATABASE_URL")
    if server:
        yield from fresh_postgres_database(server)
    else:
        yield None


@pytest.fixture(scope="module")
def cli(tmp_path_factory) -> Iterator[Cli]:
    """One initialized platform for the module (each process costs a second or two)."""
    workdir = tmp_path_factory.mktemp("cli")
    databases = _database()
    database_url = next(databases)
    try:
        runner = Cli(workdir=workdir, data_dir=workdir / "var", database_url=database_url)
        result = runner.ok("init")
        assert "created root" in result.stdout and "created api-token" in result.stdout
        assert result.stderr == ""
        assert (runner.data_dir / "keys" / "keystore.json").is_file()
        yield runner
    finally:
        databases.close()  # drops the PostgreSQL database


@pytest.fixture(scope="module")
def registrar(cli) -> str:
    result = cli.ok("agency", "add", "cli-ra", "命令行登记机关", "--credit-code", credit_code())
    assert "cli-ra" in result.stdout
    return "cli-ra"


# --- setup ---------------------------------------------------------------------------------------------


def test_init_again_changes_nothing(cli):
    keys_before = sorted(p.name for p in (cli.data_dir / "keys").iterdir())
    result = cli.ok("init")
    assert "nothing changed" in result.stdout
    assert "created" not in result.stdout
    assert result.stderr == ""
    assert sorted(p.name for p in (cli.data_dir / "keys").iterdir()) == keys_before


def test_seed_demo_twice(cli):
    first = cli.ok("seed-demo")
    assert "created" in first.stdout
    credentials_file = cli.data_dir / "demo-client.json"
    assert stat.S_IMODE(credentials_file.stat().st_mode) == 0o600  # it holds a client secret
    credentials = json.loads(credentials_file.read_text())
    assert credentials["client_id"].startswith("demo-amr-") and len(credentials["client_secret"]) >= 32
    second = cli.ok("seed-demo")
    assert "already present" in second.stdout
    assert json.loads(credentials_file.read_text()) == credentials


# --- agencies and clients ------------------------------------------------------------------------------


def test_agency_add(registrar):
    assert registrar == "cli-ra"


def test_client_add_json_gives_working_credentials(cli, registrar):
    result = cli.ok("client", "add", registrar, "--scope", "certificates:read", "--scope", "certificates:issue",
                    "--name", "cli test", "--json")
    credentials = json.loads(result.stdout)
    assert credentials["client_id"].startswith(f"{registrar}-")
    assert credentials["scopes"] == ["certificates:issue", "certificates:read"]
    # The same data dir served over HTTP accepts them.
    from fastapi.testclient import TestClient

    from api.http import create_app
    from api.platform import Platform
    from eauth.settings import Settings

    settings = Settings(_env_file=None, data_dir=cli.data_dir, key_passphrase=PASSPHRASE,
                        database_url=cli.database_url)
    platform = Platform.open(settings)
    try:
        response = TestClient(create_app(platform=platform)).post(
            "/api/v1/oauth/token", data={"grant_type": "client_credentials"},
            auth=(credentials["client_id"], credentials["client_secret"]),
        )
    finally:
        platform.close()
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "certificates:issue certificates:read"


# --- certificates --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def issued_from_csr(cli, registrar, tmp_path_factory) -> tuple[subprocess.CompletedProcess[str], object]:
    csr_pem, key = ec_csr()
    csr_file = tmp_path_factory.mktemp("csr") / "request.pem"
    csr_file.write_bytes(csr_pem)
    result = cli.run("cert", "issue", "--profile", "citizen", "--name", "王五", "--id-number", citizen_id(),
                     "--agency", registrar, "--csr", str(csr_file))
    return result, key


def _serial(result: subprocess.CompletedProcess[str]) -> str:
    match = ISSUED.search(result.stdout)
    assert match, result.stdout
    return match.group(1)


def test_cert_issue_with_csr(issued_from_csr):
    result, key = issued_from_csr
    assert result.returncode == 0, result.stderr
    (pem,) = PEM_CERTIFICATE.findall(result.stdout)
    certificate = x509.load_pem_x509_certificate(pem.encode())
    assert f"{certificate.serial_number:x}" == _serial(result)
    assert certificate.public_key() == key.public_key()
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "王五"


def test_cert_issue_with_p12(cli, registrar, tmp_path):
    password_file = tmp_path / "password"
    password_file.write_text("p12 password for the holder\n")
    p12_file = tmp_path / "holder.p12"
    result = cli.ok("cert", "issue", "--profile", "citizen", "--name", "赵六", "--id-number", citizen_id(),
                    "--agency", registrar, "--p12", str(p12_file), "--p12-password-file", str(password_file))
    assert str(p12_file) in result.stdout
    assert "PRIVATE KEY" not in result.stdout and not PEM_CERTIFICATE.search(result.stdout)
    assert stat.S_IMODE(p12_file.stat().st_mode) == 0o600
    key, certificate, chain = pkcs12.load_key_and_certificates(p12_file.read_bytes(), b"p12 password for the holder")
    assert key.public_key() == certificate.public_key()
    assert f"{certificate.serial_number:x}" == _serial(result)
    certificate.verify_directly_issued_by(chain[0])


def test_cert_issue_refuses_to_overwrite_a_p12_and_issues_nothing(cli, registrar, tmp_path):
    password_file = tmp_path / "password"
    password_file.write_text("p12 password for the holder")
    p12_file = tmp_path / "existing.p12"
    p12_file.write_bytes(b"somebody's key")
    before = cli.certificate_count()
    result = cli.run("cert", "issue", "--profile", "citizen", "--name", "赵六", "--id-number", citizen_id(),
                     "--agency", registrar, "--p12", str(p12_file), "--p12-password-file", str(password_file))
    assert_one_line_error(result, "already exists")
    assert p12_file.read_bytes() == b"somebody's key"
    assert cli.certificate_count() == before  # no certificate whose only key was thrown away


def test_cert_show(cli, issued_from_csr):
    serial = _serial(issued_from_csr[0])
    result = cli.ok("cert", "show", serial)
    assert serial in result.stdout and "valid" in result.stdout and "citizen" in result.stdout


def test_cert_show_pem(cli, issued_from_csr):
    serial = _serial(issued_from_csr[0])
    result = cli.ok("cert", "show", serial, "--pem")
    certificate = x509.load_pem_x509_certificate(result.stdout.encode())
    assert f"{certificate.serial_number:x}" == serial
    assert result.stdout == PEM_CERTIFICATE.search(issued_from_csr[0].stdout).group(0)


@pytest.mark.parametrize("serial", ["ab" * 16, "[/x]"])
def test_cert_show_unknown_serial(cli, serial):
    """One line quoting the serial as typed: user input in a message is text, not rich markup."""
    assert_one_line_error(cli.run("cert", "show", serial), "not_found", f"serial {serial}")


def test_cert_issue_prints_the_subject_as_text(cli, registrar, tmp_path):
    csr_file = tmp_path / "request.pem"
    csr_file.write_bytes(ec_csr()[0])
    name = "[bold]王[/x]"
    result = cli.ok("cert", "issue", "--profile", "citizen", "--name", name, "--id-number", citizen_id(),
                    "--agency", registrar, "--csr", str(csr_file))
    assert f"CN={name}" in result.stdout
    serial = _serial(result)
    shown = cli.run("cert", "show", serial, env={"COLUMNS": "200"})  # wide enough that the table doesn't wrap
    assert shown.returncode == 0, shown.stderr
    assert name in shown.stdout


def test_cert_issue_with_bad_id_number_names_the_position(cli, registrar, tmp_path):
    good = citizen_id()
    bad = good[:17] + ("0" if good[17] != "0" else "1")
    csr_file = tmp_path / "request.pem"
    csr_file.write_bytes(ec_csr()[0])
    before = cli.certificate_count()
    result = cli.run("cert", "issue", "--profile", "citizen", "--name", "王五", "--id-number", bad,
                     "--agency", registrar, "--csr", str(csr_file))
    assert_one_line_error(result, "invalid_identifier", "position 18")
    assert cli.certificate_count() == before


def test_cert_issue_with_a_der_certificate_instead_of_a_csr(cli, registrar, tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not a request")])
    now = datetime.now(timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + timedelta(days=1)).sign(key, hashes.SHA256())
    )
    der_file = tmp_path / "certificate.der"
    der_file.write_bytes(certificate.public_bytes(Encoding.DER))
    result = cli.run("cert", "issue", "--profile", "citizen", "--name", "王五", "--id-number", citizen_id(),
                     "--agency", registrar, "--csr", str(der_file))
    assert_one_line_error(result, "invalid_csr")


# --- lifecycle (the operator acts on any certificate) ---------------------------------------------------
# Set-up and checks run in this process on the CLI's data dir: only the commands under test pay for one.


@pytest.fixture(scope="module")
def in_process(cli) -> Iterator[object]:
    from api.platform import Platform
    from eauth.settings import Settings

    platform = Platform.open(Settings(_env_file=None, data_dir=cli.data_dir, key_passphrase=PASSPHRASE,
                                      database_url=cli.database_url))
    yield platform
    platform.close()


def _issue_in_process(platform, registrar: str):
    from ca.profiles import SubjectKind
    from ca.subjects import SubjectIdentity
    from store.agencies import agency_by_code
    from store.ca_store import SqlCaStore

    with platform.db.session() as session:
        return platform.ca.issue(SqlCaStore(session), profile_name="citizen", csr=ec_csr()[0],
                                 subject=SubjectIdentity(SubjectKind.PERSON, "孙七", citizen_id()),
                                 requested_by=agency_by_code(session, registrar).id).record


def _stored(platform, serial: str):
    from store.ca_store import SqlCaStore

    with platform.db.session() as session:
        return SqlCaStore(session).certificate(serial)


def test_cert_revoke_and_show(cli, registrar, in_process):
    record = _issue_in_process(in_process, registrar)
    since = record.not_before.isoformat().replace("+00:00", "Z")
    result = cli.ok("cert", "revoke", record.serial, "--reason", "keyCompromise", "--invalidity-date", since)
    (line,) = result.stdout.strip().splitlines()
    assert line.startswith(f"revoked serial {record.serial} (keyCompromise) at ")
    stored = _stored(in_process, record.serial)
    assert (stored.status, stored.revocation_reason, stored.invalidity_date) == (
        "revoked", "keyCompromise", record.not_before)
    shown = cli.run("cert", "show", record.serial, env={"COLUMNS": "200"}).stdout
    for expected in ("revoked at", "keyCompromise", "invalidity date", record.not_before.isoformat(),
                     stored.revoked_at.isoformat()):
        assert expected in shown, expected


def test_cert_suspend_and_reinstate(cli, registrar, in_process):
    serial = _issue_in_process(in_process, registrar).serial
    suspended = cli.ok("cert", "suspend", serial)
    assert len(suspended.stdout.strip().splitlines()) == 1 and f"suspended serial {serial}" in suspended.stdout
    assert (_stored(in_process, serial).status, _stored(in_process, serial).revocation_reason) == (
        "suspended", "certificateHold")
    reinstated = cli.ok("cert", "reinstate", serial)
    assert reinstated.stdout.strip() == f"reinstated serial {serial}: valid again"
    assert (_stored(in_process, serial).status, _stored(in_process, serial).revoked_at) == ("valid", None)


def test_cert_renew_to_a_file(cli, registrar, in_process, tmp_path):
    old = _issue_in_process(in_process, registrar)
    result = cli.ok("cert", "renew", old.serial, "--out", str(tmp_path / "new.pem"))
    match = re.fullmatch(rf"renewed serial {old.serial} as ([0-9a-f]+), written to .*new\.pem\n", result.stdout)
    assert match, result.stdout
    new = x509.load_pem_x509_certificate((tmp_path / "new.pem").read_bytes())
    assert f"{new.serial_number:x}" == match.group(1)
    assert new.public_key() == old.certificate.public_key() and new.subject == old.certificate.subject
    assert _stored(in_process, match.group(1)).replaces == old.serial


def test_cert_lifecycle_error_is_one_line(cli, registrar, in_process):
    serial = _issue_in_process(in_process, registrar).serial
    assert_one_line_error(cli.run("cert", "reinstate", serial), "invalid_status_transition", serial, "not suspended")
    assert _stored(in_process, serial).status == "valid"


# --- refusals before anything happens ------------------------------------------------------------------


def test_wrong_passphrase(cli):
    result = cli.run("agency", "list", env={"EAUTH_KEY_PASSPHRASE": "not the passphrase"})
    assert_one_line_error(result, "key_store_locked", "passphrase")


def test_missing_passphrase(cli):
    result = cli.run("agency", "list", env={"EAUTH_KEY_PASSPHRASE": None})
    assert_one_line_error(result, "EAUTH_KEY_PASSPHRASE")


def test_bad_setting(cli):
    result = cli.run("agency", "list", env={"EAUTH_ACCESS_TOKEN_TTL_SECONDS": "5"})
    assert_one_line_error(result, "configuration", "EAUTH_ACCESS_TOKEN_TTL_SECONDS")
    assert result.returncode == 2


def test_not_initialized(cli, tmp_path):
    result = cli.run("agency", "list", env={"EAUTH_DATA_DIR": str(tmp_path / "empty"), "EAUTH_DATABASE_URL": None})
    assert_one_line_error(result, "not_initialized", "eauth init")
