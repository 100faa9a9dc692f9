"""How cost grows: issuance and verification rates with 1,000, 100,000 and 1,000,000 certificates
and licenses in one PostgreSQL database, grown in place (rows added between the sizes, ANALYZE after
each load), each rate measured at each size in the same run; a figure compares the largest size with
the smallest. The database is a fresh one made on the server at ``EAUTH_BENCH_DATABASE_URL`` and
dropped afterwards.

The rows are loaded with COPY (FK triggers off for the loading session only: the rows are consistent
by construction), with the same indexed columns as issued ones: random 128-bit serials, one subject
(blind index, pseudonym) per certificate, a few % revoked or suspended with their CRL entry made by
``crl_entry``; licenses of the real driving-licence type and issuing agency with identifiers taken
from the type's serial counter and carrying their MOD 37,36 check character, one version and one
issue event each, a few % revoked, suspended or expired. What nothing measured reads is shared or a
placeholder: the certificate DER is one real issued certificate's, the licenses' encrypted fields one
real ciphertext, their PDF key a random SHA-256 (no blob behind it), their stored QR token a string
of a real one's length. No audit entries are loaded (the chain's head row is what an append reads).

Measured, in process, one thread: certificate issuance (``CertificateAuthority.issue`` with a CSR, a
new subject each time, its own transaction); license issuance (``LicenseService.issue``: validate,
render, certify B-LT, blob + record); OCSP for a random existing serial without nonce through the
responder and its store, twice: answered from the stored response (a sample of 1,000 serials asked
once before), and signed and stored each time (a responder whose stored answers are never reused);
QR verification (``api.routes.verify.check``: signature, registry lookup, status; tokens signed for a
random sample of the licenses, not the verification record); and one real issued PDF verified with
its registry lookup. Each figure is the best of ``ROUNDS`` rounds of ``seconds`` each.

``python -m bench.growth_bench [--sizes 1000,100000] [--seconds 5]`` runs it alone.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp as x509_ocsp
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from api.licenses import issuer_of, license_service
from api.platform import QR_KEY_LABEL, Platform, initialize_platform
from api.routes.verify import check as check_qr
from api.verification import verification
from bench.ca_bench import _csr, rate
from bench.setup import licensing_agency
from ca.lifecycle import crl_entry
from ca.ocsp import OcspResponder
from ca.profiles import SubjectKind
from ca.subjects import SubjectIdentity
from eauth.settings import Settings
from licenses.identifiers import PREFIX, LicenseIdentifier
from licenses.issuance import SERIAL_DIGITS, Actor
from licenses.token import DIGEST_PREFIX_LENGTH, QrClaims, QrTokenSigner, qr_key_id
from store.agencies import add_agency
from store.ca_store import SqlCaStore
from store.license_store import SqlLicenseStore
from store.ocsp_store import SqlOcspStore
from tests.helpers import citizen_id

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SIZES = (1_000, 100_000, 1_000_000)
ROUNDS = 3
SAMPLE = 5_000  # random existing serials / licenses asked for at each size
STORED_SAMPLE = 1_000  # of which asked once first, so that their OCSP answer is stored
TARGET_RATIO = 0.8
PASSPHRASE = "bench passphrase"
AGENCY = ("bench-growth", "某市公安局交通警察支队", "11330105002500287C")
_BATCH = 50_000
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英"
# (status, reason), per 100 rows: 96 valid, 3 revoked, 1 suspended
_CERTIFICATE_STATUSES = [("valid", None)] * 96 + [("revoked", "keyCompromise"), ("revoked", "superseded"),
                                                  ("revoked", "affiliationChanged"), ("suspended", "certificateHold")]
# per 100 licenses: 95 valid, 2 revoked, 1 suspended, 2 expired (valid_until passed)
_LICENSE_STATUSES = [("valid", None)] * 95 + [("revoked", "吊销"), ("revoked", "注销"), ("suspended", "暂扣"),
                                              ("valid", "expired"), ("valid", "expired")]
CPU_REFERENCE = "P-256 signature, no database"
_FIGURES = ("certificate issuance", "license issuance", "OCSP, stored response", "OCSP, signed and stored",
            "QR verification", "PDF verification")


def _progress(message: str) -> None:
    print(f"growth bench: {message}", file=sys.stderr, flush=True)


def _size(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 and n % 1_000_000 == 0 else \
        f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


# -- the database ------------------------------------------------------------------------------------


@contextmanager
def _fresh_database(server_url: str) -> Iterator[str]:
    """A new database on the server of ``server_url``, dropped afterwards; yields its URL."""
    name = f"eauth_growth_{secrets.token_hex(4)}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _driver_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class _Loader:
    """Bulk rows over one psycopg connection with COPY; the values of the real rows they imitate."""

    def __init__(self, url: str, *, type_code: str, issuer_code: str, seal_serial: str, certificate: dict,
                 version: dict) -> None:
        self.connection = psycopg.connect(_driver_url(url))
        with self.connection.cursor() as cursor:
            cursor.execute("SET session_replication_role = replica")  # no FK triggers: consistent by construction
            cursor.execute("SET synchronous_commit = off")
        self.connection.commit()
        self.type_code, self.issuer_code, self.seal_serial = type_code, issuer_code, seal_serial
        self.certificate, self.version = certificate, version
        # The identifier's check character: the MOD 37,36 product over type and issuer code is the same
        # for every row, so it is computed once and only serial + version are run per row.
        self._prefix_product = _mod37_36_product(36, type_code + issuer_code)

    def close(self) -> None:
        self.connection.close()

    def _copy(self, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
        with self.connection.cursor() as cursor, cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def certificates(self, count: int, *, requested_by: int) -> None:
        """``count`` citizen certificates, each of a subject of its own, registered by ``requested_by``."""
        now = datetime.now(timezone.utc).replace(microsecond=0)
        record = self.certificate
        for first in range(0, count, _BATCH):
            subjects, certificates = [], []
            for i in range(first, min(first + _BATCH, count)):
                subject_id = secrets.token_hex(16)
                issued = now - timedelta(minutes=i % 500_000)
                subjects.append((subject_id, "person", _name(i), "P" + secrets.token_hex(16).upper(),
                                 secrets.token_hex(32), record["ciphertext"], requested_by, issued))
                serial = int.from_bytes(secrets.token_bytes(16), "big") | (1 << 127)
                status, reason = _CERTIFICATE_STATUSES[i % 100]
                revoked_at = now - timedelta(seconds=i % 86_400) if reason else None
                entry = crl_entry(serial, revoked_at, reason, None) if reason else None
                certificates.append((f"{serial:x}", "citizen", "citizen", subject_id, record["subject_dn"], issued,
                                     issued + timedelta(days=730), status, revoked_at, reason, entry,
                                     secrets.token_hex(32), record["der"], requested_by, issued))
            self._copy("subjects", ("id", "kind", "name", "pseudonym", "id_number_index", "id_number_ciphertext",
                                    "registered_by", "created_at"), subjects)
            self._copy("certificates", ("serial", "issuer", "profile", "subject_id", "subject_dn", "not_before",
                                        "not_after", "status", "revoked_at", "revocation_reason", "revocation_entry",
                                        "sha256", "der", "requested_by", "created_at"), certificates)
            self.connection.commit()

    def licenses(self, count: int, *, agency_id: int, first_serial: int) -> None:
        """``count`` driving licences of ``agency_id`` with serials ``first_serial``… (taken from the
        type's counter)."""
        now = datetime.now(timezone.utc).replace(microsecond=0)
        today = now.date()
        version = self.version
        for first in range(0, count, _BATCH):
            licenses, versions, events = [], [], []
            for i in range(first, min(first + _BATCH, count)):
                license_id = secrets.token_hex(16)
                serial = f"{first_serial + i:0{SERIAL_DIGITS}d}"
                identifier = self._identifier(serial)
                status, reason = _LICENSE_STATUSES[i % 100]
                # six years of validity; an expired one was issued more than six years ago
                issued_on = today - timedelta(days=i % 1800 if reason != "expired" else 2191 + i % 300)
                valid_until = issued_on + timedelta(days=2190)
                reason = None if reason == "expired" else reason
                created = datetime.combine(issued_on, now.timetz())
                licenses.append((license_id, self.type_code, agency_id, self.issuer_code, serial, "person",
                                 secrets.token_hex(32), _name(i), status, reason, 1, identifier, valid_until,
                                 created, created))
                versions.append((license_id, 1, identifier, version["ciphertext"], secrets.token_hex(32), issued_on,
                                 valid_until, secrets.token_hex(32), version["pdf_size"], self.seal_serial,
                                 version["qr_token"], created))
                events.append((license_id, 1, "issue", "bench", None, created))
            self._copy("licenses", ("id", "type_code", "agency_id", "issuer_code", "serial", "holder_kind",
                                    "holder_index", "holder_name", "status", "status_reason", "version", "identifier",
                                    "valid_until", "created_at", "updated_at"), licenses)
            self._copy("license_versions", ("license_id", "version", "identifier", "fields_ciphertext", "digest",
                                            "issued_on", "valid_until", "pdf_sha256", "pdf_size", "seal_serial",
                                            "qr_token", "created_at"), versions)
            self._copy("license_events", ("license_id", "version", "action", "actor", "reason", "at"), events)
            self.connection.commit()

    def _identifier(self, serial: str) -> str:
        product = _mod37_36_product(self._prefix_product, f"{serial}001")
        check = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[(1 - product) % 36]
        return f"{PREFIX}.{self.type_code}.{self.issuer_code}.{serial}.001.{check}"

    def analyze(self) -> None:
        self.connection.autocommit = True
        try:
            self.connection.execute("ANALYZE")
        finally:
            self.connection.autocommit = False


def _mod37_36_product(product: int, characters: str) -> int:
    """ISO 7064 MOD 37,36 carried over ``characters`` from ``product`` (36 to start), as
    ``ca.identifiers.iso7064_mod37_36_check`` does."""
    for ch in characters:
        product = 2 * ((product + int(ch, 36)) % 36 or 36) % 37
    return product


def _name(i: int) -> str:
    return _SURNAMES[i % len(_SURNAMES)] + _GIVEN[(i // 7) % len(_GIVEN)] + _GIVEN[(i // 131) % len(_GIVEN)]


# -- what is measured --------------------------------------------------------------------------------


class _Workloads:
    """One callable per figure, over the platform; samples of existing rows drawn anew at each size."""

    def __init__(self, platform: Platform, *, agency, ra_id: int, type_code: str, pdf: bytes) -> None:
        self.platform, self.agency, self.ra_id, self.type_code, self.pdf = platform, agency, ra_id, type_code, pdf
        self.csr, self.service, self.issued = _csr(), license_service(platform), 0
        with platform.db.session() as session:
            authorities = SqlCaStore(session).authorities()
        citizen_ca = next(a.certificate for a in authorities if a.name == "citizen")
        self._name_hash = _sha1(citizen_ca.subject.public_bytes())
        self._key_hash = x509_ocsp.OCSPRequestBuilder().add_certificate(
            citizen_ca, citizen_ca, hashes.SHA1()).build().issuer_key_hash
        settings = platform.settings
        validity = timedelta(minutes=settings.ocsp_validity_minutes)
        self.store = SqlOcspStore(platform.db)
        self.responder = OcspResponder(authorities, platform.keys, validity=validity,
                                       reuse_margin=timedelta(minutes=settings.ocsp_reuse_margin_minutes))
        # Its stored answers are never fresh enough to reuse: every request is signed and stored.
        self.signing_responder = OcspResponder(authorities, platform.keys, validity=validity,
                                               reuse_margin=validity - timedelta(microseconds=1))
        qr_key = platform.keys.signer(QR_KEY_LABEL)
        self.qr = QrTokenSigner(qr_key, qr_key_id(qr_key.public_key))
        self.requests: list[bytes] = []
        self.stored: list[bytes] = []
        self.tokens: list[tuple[str, str]] = []

    def sample(self) -> None:
        """Random existing citizen certificates (as OCSP requests) and licenses (as QR tokens)."""
        with self.platform.db.transaction() as connection:
            serials = connection.execute(text(
                "SELECT serial FROM certificates WHERE issuer = 'citizen' ORDER BY random() LIMIT :n"),
                {"n": SAMPLE}).scalars().all()
            versions = connection.execute(text(
                "SELECT v.identifier, v.issued_on, v.valid_until, v.digest, l.status FROM license_versions v "
                "JOIN licenses l ON l.id = v.license_id ORDER BY random() LIMIT :n"), {"n": SAMPLE}).all()
        self.requests = [self._ocsp_request(int(s, 16)) for s in serials]
        self.stored = self.requests[:STORED_SAMPLE]
        for request in self.stored:  # asked once: the answer is stored
            self.responder.respond(request, self.store)
        self.tokens = [(self.qr.sign(QrClaims(identifier=LicenseIdentifier.parse(identifier), issued_on=issued_on,
                                              expires_on=valid_until,
                                              digest_prefix=bytes.fromhex(digest)[:DIGEST_PREFIX_LENGTH])), status)
                       for identifier, issued_on, valid_until, digest, status in versions]

    def _ocsp_request(self, serial: int) -> bytes:
        return x509_ocsp.OCSPRequestBuilder().add_certificate_by_hash(
            self._name_hash, self._key_hash, serial, hashes.SHA1()).build().public_bytes(Encoding.DER)

    def operations(self) -> dict[str, Callable[[], None]]:
        return {"certificate issuance": self.issue_certificate, "license issuance": self.issue_license,
                "OCSP, stored response": self.ocsp_stored, "OCSP, signed and stored": self.ocsp_signed,
                "QR verification": self.verify_qr, "PDF verification": self.verify_pdf}

    def issue_certificate(self) -> None:
        self.issued += 1
        subject = SubjectIdentity(SubjectKind.PERSON, "张三", citizen_id(self.issued))
        with self.platform.db.transaction() as connection:
            self.platform.ca.issue(SqlCaStore(connection), profile_name="citizen", subject=subject,
                                   requested_by=self.ra_id, csr=self.csr)

    def issue_license(self) -> None:
        self.issued += 1
        fields = {"name": "张三", "sex": "男", "nationality": "中国", "birth_date": "1990-01-02",
                  "citizen_id": citizen_id(self.issued), "vehicle_class": "C1", "first_issued_on": "2012-03-04"}
        self.service.issue(issuer_of(self.agency), type_code=self.type_code, fields=fields,
                           actor=Actor(self.agency.id, "bench"))

    def ocsp_stored(self) -> None:
        answer = self.responder.respond(random.choice(self.stored), self.store)
        assert answer.next_update is not None, answer.status

    def ocsp_signed(self) -> None:
        answer = self.signing_responder.respond(random.choice(self.requests), self.store)
        assert answer.next_update is not None, answer.status

    def verify_qr(self) -> None:
        token, status = random.choice(self.tokens)
        report = check_qr(self.platform, token)
        assert report.signature_valid and report.status in ("valid", "expired", status), report.detail

    def verify_pdf(self) -> None:
        report = verification(self.platform).verify(self.pdf)
        assert report.passed and report.registry.byte_identical, report.detail


def _sha1(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SHA1())
    digest.update(data)
    return digest.finalize()


def _measure(workloads: _Workloads, seconds: float) -> dict[str, float]:
    """Each figure's best rate over ``ROUNDS`` rounds, the figures alternating; and ``CPU_REFERENCE``,
    a P-256 signature with no database, which shows how much of the shared machine the run had."""
    key = ec.generate_private_key(ec.SECP256R1())
    operations = {**workloads.operations(), CPU_REFERENCE: lambda: key.sign(b"growth", ec.ECDSA(hashes.SHA256()))}
    best: dict[str, float] = {}
    for _ in range(ROUNDS):
        for name, operation in operations.items():
            best[name] = max(best.get(name, 0.0), rate(operation, seconds))
    return best


def _real_rows(platform: Platform, *, agency, ra_id: int, type_code: str) -> tuple[dict, dict, bytes]:
    """A real citizen certificate's and a real license version's values the loaded rows share, and
    that license's PDF (the one verified)."""
    subject = SubjectIdentity(SubjectKind.PERSON, "张三", citizen_id(0))
    with platform.db.transaction() as connection:
        issued = platform.ca.issue(SqlCaStore(connection), profile_name="citizen", subject=subject,
                                   requested_by=ra_id, csr=_csr())
        ciphertext = connection.execute(text("SELECT id_number_ciphertext FROM subjects WHERE id = :id"),
                                        {"id": issued.record.subject_id}).scalar_one()
    certificate = {"der": issued.record.der, "subject_dn": issued.record.subject_dn, "ciphertext": ciphertext}
    service = license_service(platform)
    fields = {"name": "张三", "sex": "男", "nationality": "中国", "birth_date": "1990-01-02",
              "citizen_id": citizen_id(0), "vehicle_class": "C1", "first_issued_on": "2012-03-04"}
    license = service.issue(issuer_of(agency), type_code=type_code, fields=fields, actor=Actor(agency.id, "bench"))
    version = license.version
    return (certificate, {"ciphertext": version.fields_ciphertext, "pdf_size": version.pdf_size,
                          "qr_token": "x" * len(version.qr_token)}, service.pdf(version))


_GROWN = ("certificates", "subjects", "licenses", "license_versions", "license_events")


def _plans(workloads: _Workloads) -> dict[str, list[str]]:
    """What profiling finds, per figure: each statement its operation (run once) sends through the
    engine that reads a grown table by a sequential scan, with its plan (EXPLAIN ANALYZE for a
    SELECT). The OCSP and QR look-ups go straight to the driver (``store.direct``) and are not seen
    here: they read by primary key and by unique identifier."""
    engine, sent = workloads.platform.db.engine, {}

    def capture(_connection, _cursor, statement, parameters, _context, _many) -> None:
        sent.setdefault(statement, parameters)

    scans: dict[str, list[str]] = {}
    with engine.connect() as connection:
        cursor = connection.connection.driver_connection.cursor()
        for name, operation in workloads.operations().items():
            sent.clear()
            event.listen(engine, "before_cursor_execute", capture)
            try:
                operation()
            finally:
                event.remove(engine, "before_cursor_execute", capture)
            for statement, parameters in sent.items():
                plan = "\n".join(row[0] for row in cursor.execute("EXPLAIN " + statement, parameters))
                if any(f"Seq Scan on {table} " in plan for table in _GROWN):
                    if statement.lstrip().upper().startswith("SELECT"):
                        plan = "\n".join(row[0] for row in cursor.execute("EXPLAIN ANALYZE " + statement, parameters))
                    scans.setdefault(name, []).append(f"{statement}\n{plan}")
        connection.rollback()
    return scans


def measure(server_url: str, sizes: tuple[int, ...], seconds: float) -> tuple[dict[int, dict[str, float]], dict]:
    """The rates at each size, and what the notes report (load times, the agency-seal plan)."""
    data_dir = Path(tempfile.mkdtemp(prefix="eauth-growth-bench-"))
    info: dict = {"load_seconds": {}}
    with _fresh_database(server_url) as url:
        settings = Settings(_env_file=None, data_dir=data_dir, key_passphrase=PASSPHRASE, database_url=url)
        initialize_platform(settings)
        platform = Platform.open(settings)
        loader = None
        try:
            code, name, credit = AGENCY
            agency, seal, driving = licensing_agency(platform, code=code, name=name, credit_code=credit)
            with platform.db.session() as session:
                ra = add_agency(session, code="bench-ra", name="某市政务服务中心", credit_code=None)
            certificate, version, pdf = _real_rows(platform, agency=agency, ra_id=ra.id, type_code=driving.code)
            loader = _Loader(url, type_code=driving.code, issuer_code=credit, seal_serial=seal.serial,
                             certificate=certificate, version=version)
            workloads = _Workloads(platform, agency=agency, ra_id=ra.id, type_code=driving.code, pdf=pdf)
            rates, loaded = {}, 0
            for size in sizes:
                added = size - loaded
                _progress(f"adding {added:,} certificates and {added:,} licenses (to {size:,} each)")
                start = time.perf_counter()
                loader.certificates(added, requested_by=ra.id)
                with platform.db.transaction() as connection:
                    first = SqlLicenseStore(connection).take_serials(driving.code, credit, added)
                loader.licenses(added, agency_id=agency.id, first_serial=first)
                loader.analyze()
                info["load_seconds"][size] = time.perf_counter() - start
                loaded = size
                _progress(f"loaded in {info['load_seconds'][size]:.0f} s; measuring")
                workloads.sample()
                rates[size] = _measure(workloads, seconds)
                _progress(", ".join(f"{k} {v:,.1f}/s" for k, v in rates[size].items()))
            info["scans"] = _plans(workloads)
            for name, plans in info["scans"].items():
                _progress(f"{name} at {sizes[-1]:,} rows, statements reading by a sequential scan:\n" + "\n".join(plans))
        finally:
            if loader is not None:
                loader.close()
            platform.close()
            shutil.rmtree(data_dir, ignore_errors=True)
    return rates, info


def _reachable(url: str) -> str | None:
    """None if PostgreSQL answers at ``url``, else why not."""
    if not url.startswith("postgresql"):
        return f"{url} is not a PostgreSQL URL"
    engine = create_engine(url)
    try:
        with engine.connect():
            return None
    except OperationalError as exc:
        return f"PostgreSQL not reachable at {make_url(url).render_as_string()}: {str(exc.orig).strip().splitlines()[0]}"
    finally:
        engine.dispose()


def _shared_buffers(url: str) -> str:
    """The server's ``shared_buffers``: at 1M rows the figures measure whether the registry fits in it."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.exec_driver_sql("SHOW shared_buffers").scalar_one()
    finally:
        engine.dispose()


def run(*, seconds: float, sizes: tuple[int, ...] = SIZES) -> list[dict]:
    url = os.environ.get("EAUTH_BENCH_DATABASE_URL", DEFAULT_URL)
    unreachable = _reachable(url)
    if unreachable is not None:
        return [{"name": f"cost growth {_size(sizes[0])} → {_size(sizes[-1])} rows: skipped ({unreachable})",
                 "ours": 0.0, "unit": "/s", "baseline": None, "baseline_name": None,
                 "target": f"≥ {TARGET_RATIO}× (flat within 20 %)", "met": False,
                 "note": "set EAUTH_BENCH_DATABASE_URL to a PostgreSQL server (a database is created and dropped)"}]
    rates, info = measure(url, sizes, seconds)
    buffers = _shared_buffers(url)
    small, large = sizes[0], sizes[-1]
    loads = ", ".join(f"to {_size(s)} in {t:.0f} s" for s, t in info["load_seconds"].items())
    reference = ", ".join(f"{_size(s)}: {rates[s][CPU_REFERENCE]:,.0f}/s" for s in sizes)
    figures = []
    for name in _FIGURES:
        ours, base = rates[large][name], rates[small][name]
        at_each = ", ".join(f"{_size(s)}: {rates[s][name]:,.1f}/s" for s in sizes)
        figures.append({
            "name": f"{name}, {_size(large)} rows vs {_size(small)} rows (PostgreSQL, in process)", "ours": ours,
            "unit": "/s", "baseline": base, "baseline_name": f"same, {_size(small)} rows, same run",
            "target": f"≥ {TARGET_RATIO}× (flat within 20 %)", "met": ours >= TARGET_RATIO * base,
            "note": f"{at_each}; best of {ROUNDS} rounds of {seconds:g} s (CPU reference, {CPU_REFERENCE}, in the "
                    f"same rounds: {reference}); rows loaded with COPY ({loads}); server shared_buffers {buffers} "
                    "(docs/benchmarks.md: under ~2GB the 1M column measures its buffer cache); "
                    f"statements reading a grown table by a sequential scan at {_size(large)}: "
                    + ("\n\n".join(info["scans"][name]) if name in info["scans"] else "none")})
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES),
                        help="Row counts to grow through, comma-separated (default 1000,100000,1000000).")
    parser.add_argument("--seconds", type=float, default=5.0, help="Duration of each timed round.")
    args = parser.parse_args()
    sizes = tuple(sorted(int(s) for s in args.sizes.split(",")))
    for figure in run(seconds=args.seconds, sizes=sizes):
        ratio = figure["ours"] / figure["baseline"] if figure["baseline"] else None
        print(f"{figure['name']}: {figure['ours']:,.1f}{figure['unit']} vs {figure['baseline'] or 0:,.1f}"
              f"{figure['unit']} ratio {ratio or 0:.2f} target {figure['target']} "
              f"{'met' if figure['met'] else 'NOT MET'}\n  {figure['note']}")


if __name__ == "__main__":
    main()
