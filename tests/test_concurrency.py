"""Concurrency: 4 OS processes × several threads on one database (PostgreSQL when
EAUTH_TEST_DATABASE_URL is set, else SQLite with fewer threads), all at once issuing certificates (CSR
and server-made key) and licenses (three types of two agencies, so the per-type/issuer serial counters
contend), amending, suspending and revoking them, asking OCSP, publishing CRLs, signing audit
checkpoints and recording QR verifications (group commit). Some certificates and licenses are shared by
every process, which all try to change them, so each of those changes must happen exactly once.

Afterwards the database must hold exactly what the workers reported done: every serial and identifier
once, every count equal to the successful operations, one audit entry per change and a chain that
verifies, each revoked certificate once in its CA's next CRL and revoked in OCSP, and statistics that
add up. A worker may only see clean refusals (a status that no longer allows the change) and, on
SQLite, the single writer's "database is locked" (retried): anything else fails the test.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.synchronize
import os
import random
import secrets
import threading
import traceback
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from sqlalchemy import func, select

from eauth.errors import InvalidStatusTransition, LicenseStatusConflict
from store.db import DatabaseUnavailable

IS_POSTGRES = bool(os.environ.get("EAUTH_TEST_DATABASE_URL"))
PROCESSES = 4
SHARED_CERTIFICATES = 8
SHARED_LICENSES = 3
PASSWORD = "concurrency-p12-password"
#: Clean refusals of a change another worker made first.
REFUSED = (InvalidStatusTransition, LicenseStatusConflict)


@dataclass(frozen=True)
class Job:
    """What one worker process is given (picklable: spawned processes import this module)."""

    worker: int
    threads: int
    rounds: int
    settings: dict
    agency_ids: tuple[int, int]
    license_types: tuple[tuple[str, int], ...]  # (type code, owning agency id)
    shared_certificates: tuple[str, ...]
    shared_licenses: tuple[str, ...]  # license ids, all of agency_ids[0]'s driving type
    qr_tokens: tuple[str, ...]  # of the shared licenses, verified by every worker


@dataclass
class Report:
    """What one worker did successfully (and what went wrong unexpectedly)."""

    certificates: list[tuple[str, str]] = field(default_factory=list)  # (serial, issuer)
    certificate_changes: list[tuple[str, str]] = field(default_factory=list)  # (serial, revoke|suspend)
    licenses: list[tuple[str, str, str]] = field(default_factory=list)  # (license id, identifier, type code)
    amendments: list[tuple[str, str]] = field(default_factory=list)  # (license id, new identifier)
    license_changes: list[tuple[str, str]] = field(default_factory=list)  # (license id, action)
    verified: list[str] = field(default_factory=list)  # identifiers recorded as QR verifications
    ocsp_stale: list[str] = field(default_factory=list)  # revoked by us, yet OCSP said otherwise
    crl_numbers: dict[str, list[int]] = field(default_factory=dict)  # issuer → numbers seen, in order
    retries: int = 0
    refusals: int = 0
    unexpected: list[str] = field(default_factory=list)

    def merge(self, other: Report) -> None:
        for name in ("certificates", "certificate_changes", "licenses", "amendments", "license_changes",
                     "verified", "ocsp_stale", "unexpected"):
            getattr(self, name).extend(getattr(other, name))
        for issuer, numbers in other.crl_numbers.items():
            self.crl_numbers.setdefault(issuer, []).extend(numbers)
        self.retries += other.retries
        self.refusals += other.refusals


def _enterprise(code: str, name: str = "深圳市并发测试有限公司") -> dict:
    return {"name": name, "credit_code": code, "entity_type": "有限责任公司", "legal_representative": "王五",
            "registered_capital": "100", "established_on": "2015-06-01", "address": "广东省深圳市南山区科技园路1号",
            "business_scope": "软件开发；信息技术咨询服务。"}


def _driver(number: str, name: str = "张三") -> dict:
    return {"name": name, "sex": "男", "nationality": "中国", "birth_date": "1990-01-02", "citizen_id": number,
            "vehicle_class": "C1", "first_issued_on": "2012-03-04"}


def _fields(type_code: str, business_codes: set[str], n: int, **name) -> dict:
    from tests.helpers import citizen_id, credit_code

    return _enterprise(credit_code(n), **name) if type_code in business_codes else _driver(citizen_id(n), **name)


class Worker:
    """One process's platform and the operations its threads run, each retried on a transient
    database error (SQLite's lock) and counted when it succeeds."""

    def __init__(self, job: Job) -> None:
        from api.licenses import license_service
        from api.platform import Platform
        from ca.ocsp import OcspResponder
        from eauth.settings import Settings
        from store.ca_store import SqlCaStore
        from store.ocsp_store import SqlOcspStore

        self.job = job
        self.platform = Platform.open(Settings(_env_file=None, **job.settings))
        self.licenses = license_service(self.platform)
        with self.platform.db.session() as session:
            store = SqlCaStore(session)
            authorities = store.authorities()
            self.agencies = [agency_by_id(session, agency_id) for agency_id in job.agency_ids]
        self.issuers = {a.name: a.certificate for a in authorities}
        self.ocsp = OcspResponder(authorities, self.platform.keys, validity=timedelta(minutes=10),
                                  reuse_margin=timedelta(minutes=2))
        self.ocsp_store = SqlOcspStore(self.platform.db)
        self.business_codes = {code for code, _ in job.license_types[:1]}
        self.known_serials: list[tuple[str, str]] = []  # for the OCSP thread: (serial, issuer)
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.start = threading.Barrier(job.threads + 1)

    def close(self) -> None:
        self.ocsp_store.close()
        self.platform.close()

    def attempt(self, report: Report, operation, *args, **kwargs):
        """``operation(*args, **kwargs)``: retried on a transient database error; None when refused
        (the status no longer allows it) or failed unexpectedly (recorded)."""
        for _ in range(50):
            try:
                return operation(*args, **kwargs)
            except DatabaseUnavailable:
                report.retries += 1
            except REFUSED:
                report.refusals += 1
                return None
            except Exception:
                report.unexpected.append(traceback.format_exc())
                return None
        report.unexpected.append(f"{operation.__name__}: still failing after 50 retries")
        return None

    # -- certificates ------------------------------------------------------------------------------

    def issue_certificate(self, report: Report, n: int, *, with_csr: bool) -> str | None:
        from ca.profiles import SubjectKind
        from ca.subjects import SubjectIdentity
        from store.ca_store import SqlCaStore
        from tests.helpers import citizen_id, credit_code, ec_csr

        def issue():
            with self.platform.db.transaction() as connection:
                if with_csr:
                    subject = SubjectIdentity(SubjectKind.PERSON, f"并发{n}", citizen_id(n))
                    return self.platform.ca.issue(SqlCaStore(connection), profile_name="citizen", subject=subject,
                                                  requested_by=self.job.agency_ids[0], csr=ec_csr(f"c{n}")[0])
                subject = SubjectIdentity(SubjectKind.ENTERPRISE, f"并发企业{n}", credit_code(n))
                return self.platform.ca.issue(SqlCaStore(connection), profile_name="enterprise", subject=subject,
                                              requested_by=self.job.agency_ids[0], pkcs12_password=PASSWORD)

        issued = self.attempt(report, issue)
        if issued is None:
            return None
        report.certificates.append((issued.record.serial, issued.record.issuer))
        with self.lock:
            self.known_serials.append((issued.record.serial, issued.record.issuer))
        return issued.record.serial

    def change_certificate(self, report: Report, serial: str, action: str) -> bool:
        from ca.lifecycle import RevocationReason
        from ca.records import Actor
        from store.ca_store import SqlCaStore

        actor = Actor(self.job.agency_ids[0])

        def change():
            with self.platform.db.transaction() as connection:
                store = SqlCaStore(connection)
                if action == "revoke":
                    return self.platform.lifecycle.revoke(store, serial, reason=RevocationReason.KEY_COMPROMISE,
                                                          actor=actor)
                return self.platform.lifecycle.suspend(store, serial, actor=actor)

        if self.attempt(report, change) is None:
            return False
        report.certificate_changes.append((serial, action))
        return True

    def ocsp_status(self, serial: str, issuer: str) -> str:
        """``good``, ``revoked`` or ``unknown``, as the responder answers (its stored response if fresh)."""
        certificate = self._certificate(serial)
        request = ocsp.OCSPRequestBuilder().add_certificate(certificate, self.issuers[issuer], hashes.SHA1()).build()
        answer = self.ocsp.respond(request.public_bytes(Encoding.DER), self.ocsp_store)
        return ocsp.load_der_ocsp_response(answer.der).certificate_status.name.lower()

    def _certificate(self, serial: str) -> x509.Certificate:
        from store.ca_store import SqlCaStore

        with self.platform.db.transaction() as connection:
            return SqlCaStore(connection).certificate(serial).certificate

    # -- licenses ----------------------------------------------------------------------------------

    def issue_license(self, report: Report, n: int, type_code: str, owner: int):
        from api.licenses import issuer_of
        from licenses.issuance import Actor

        agency = next(a for a in self.agencies if a.id == owner)
        issued = self.attempt(report, self.licenses.issue, issuer_of(agency), actor=Actor(owner, "client:conc"),
                              type_code=type_code, fields=_fields(type_code, self.business_codes, n))
        if issued is not None:
            report.licenses.append((issued.license.id, issued.license.identifier, type_code))
        return issued

    def amend_license(self, report: Report, license_id: str, n: int, type_code: str, owner: int) -> None:
        from api.licenses import issuer_of
        from licenses.issuance import Actor

        with self.platform.db.transaction() as connection:
            from store.license_store import SqlLicenseStore

            current = SqlLicenseStore(connection).license(license_id)
        fields = self.licenses.cipher.decrypt(self._version(current))
        fields["name"] = f"{fields['name'][:40]}{n}"
        agency = next(a for a in self.agencies if a.id == owner)
        amended = self.attempt(report, self.licenses.amend, license_id, issuer_of(agency), fields=fields,
                               actor=Actor(owner, "client:conc"))
        if amended is not None:
            report.amendments.append((license_id, amended.license.identifier))

    def _version(self, license):
        from store.license_store import SqlLicenseStore

        with self.platform.db.transaction() as connection:
            return SqlLicenseStore(connection).version(license.id, license.version)

    def change_license(self, report: Report, license_id: str, action: str, owner: int) -> bool:
        from licenses.issuance import Actor

        changed = self.attempt(report, self.licenses.change_status, license_id, action,
                               actor=Actor(owner, "client:conc"), reason="并发测试" if action == "revoke" else None)
        if changed is not None:
            report.license_changes.append((license_id, action))
        return changed is not None

    def verify_qr(self, report: Report, tokens: list[str]) -> None:
        """Verify several tokens at once on one event loop, so the group commit batches their records."""
        from api.recording import record_qr
        from api.routes.verify import check
        from api.tokens import AccessToken

        caller = AccessToken(client_id=f"conc-{self.job.worker}", agency_id=self.job.agency_ids[1],
                             scopes=frozenset({"verify"}), expires_at=0)

        async def one(token: str) -> str | None:
            report_ = check(self.platform, token)
            for _ in range(50):
                try:
                    await record_qr(self.platform, caller, report_)
                    return report_.license.identifier
                except DatabaseUnavailable:
                    report.retries += 1
            report.unexpected.append("verification record still failing after 50 retries")
            return None

        async def all_of() -> list:
            return await asyncio.gather(*(one(t) for t in tokens), return_exceptions=True)

        for outcome in asyncio.run(all_of()):
            if isinstance(outcome, BaseException):
                report.unexpected.append("".join(traceback.format_exception(outcome)))
            elif outcome is not None:
                report.verified.append(outcome)

    # -- the threads -------------------------------------------------------------------------------

    def run_thread(self, index: int, report: Report) -> None:
        job = self.job
        shuffled = random.Random(job.worker * 100 + index)
        base = 10_000 + job.worker * 1_000 + index * 100
        mine: list = []  # licenses this thread issued: (issued, type code, owner)
        self.start.wait()
        # The shared certificates first, all threads of all processes at once: each suspended at most
        # once and revoked at most once (a status read, then changed, by two at the same time twice).
        for serial in shuffled.sample(job.shared_certificates, len(job.shared_certificates)):
            self.change_certificate(report, serial, shuffled.choice(("suspend", "revoke")))
        for round_ in range(job.rounds):
            n = base + round_ * 10
            held = self.issue_certificate(report, n, with_csr=True)
            made = self.issue_certificate(report, n + 1, with_csr=False)
            type_code, owner = job.license_types[(job.worker + index + round_) % len(job.license_types)]
            issued = self.issue_license(report, n + 2, type_code, owner)
            if issued is not None:
                mine.append((issued, type_code, owner))
            self.verify_qr(report, [i.version.qr_token for i, _, _ in mine[-2:]] + [shuffled.choice(job.qr_tokens)])
            if held is not None:
                self.change_certificate(report, held, "suspend")
            if made is not None and self.change_certificate(report, made, "revoke"):
                if self.ocsp_status(made, self._issuer_of(report, made)) != "revoked":
                    report.ocsp_stale.append(made)
            # A shared license: every thread of every process changes them.
            shared = shuffled.choice(job.shared_licenses)
            if round_ == 0:  # an amendment signs a PDF even when it then finds the license changed
                self.amend_license(report, shared, n + 3, job.license_types[1][0], job.agency_ids[0])
            self.change_license(report, shared, shuffled.choice(("suspend", "revoke")), job.agency_ids[0])
            if len(mine) >= 2 and round_ % 2 == 1:
                self.amend_license(report, mine[-2][0].license.id, n + 4, mine[-2][1], mine[-2][2])
                self.change_license(report, mine[-2][0].license.id, "suspend", mine[-2][2])
                self.change_license(report, mine[-1][0].license.id, "revoke", mine[-1][2])

    @staticmethod
    def _issuer_of(report: Report, serial: str) -> str:
        return next((issuer for s, issuer in report.certificates if s == serial), "citizen")  # shared: citizen

    def run_background(self, report: Report) -> None:
        """Until the threads are done: OCSP for certificates others are changing (stored responses),
        CRL publication and audit checkpoints, as every serving process does."""
        from api.audit import checkpoint
        from api.schedule import crl_publisher
        from store.crl_store import crl_transactions

        publisher, transaction = crl_publisher(self.platform), crl_transactions(self.platform.db)
        shuffled = random.Random(self.job.worker)
        self.start.wait()
        while not self.done.is_set():
            with self.lock:
                known = list(self.known_serials)
            for serial, issuer in shuffled.sample(known, min(4, len(known))):
                self.attempt(report, self.ocsp_status, serial, issuer)
            for issuer in ("citizen", "enterprise"):
                crl = self.attempt(report, publisher.publish, transaction, issuer)
                if crl is not None:
                    report.crl_numbers.setdefault(issuer, []).append(crl.number)
            self.attempt(report, checkpoint, self.platform)
            self.done.wait(0.05)


def agency_by_id(session, agency_id: int):
    from store.agencies import agency_by_id as by_id

    return by_id(session, agency_id)


_processes_ready: multiprocessing.synchronize.Barrier | None = None


def _set_barrier(barrier) -> None:
    global _processes_ready
    _processes_ready = barrier


def work(job: Job) -> Report:
    """One worker process: its threads and the background loop, started together with the other
    processes' (once every platform is open); what they did."""
    worker = Worker(job)
    reports = [Report() for _ in range(job.threads + 1)]
    try:
        _processes_ready.wait(timeout=300)
        threads = [threading.Thread(target=worker.run_thread, args=(i, reports[i])) for i in range(job.threads)]
        background = threading.Thread(target=worker.run_background, args=(reports[-1],))
        for thread in (*threads, background):
            thread.start()
        for thread in threads:
            thread.join()
        worker.done.set()
        background.join()
        for report in reports[:-1]:  # OCSP after everything: the stored responses were kept meanwhile
            for serial, _ in report.certificate_changes:
                if worker.ocsp_status(serial, Worker._issuer_of(report, serial)) != "revoked":
                    report.ocsp_stale.append(serial)
    finally:
        worker.close()
    total = Report()
    for report in reports:
        total.merge(report)
    return total


# -- the test --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """What the database holds at a moment, counted the ways the checks compare."""

    certificates: int
    licenses: int
    versions: int
    events: Counter
    verifications: Counter  # by subject
    audit: Counter  # by action
    stats: Counter  # (agency id, type code, issued|revoked|verified) → count


def snapshot(platform) -> Snapshot:
    from store.models import AuditEntry, Certificate, License, LicenseEvent, LicenseVersion, Verification
    from store.stats import license_stats

    def grouped(column) -> Counter:
        return Counter(dict(connection.execute(select(column, func.count()).group_by(column)).all()))

    with platform.db.transaction() as connection:
        count = lambda table: connection.execute(select(func.count()).select_from(table)).scalar_one()  # noqa: E731
        stats = Counter()
        for row in license_stats(connection):
            for name in ("issued", "revoked", "verified"):
                stats[row.agency_id, row.license_type, name] += getattr(row, name)
        return Snapshot(
            certificates=count(Certificate.__table__), licenses=count(License.__table__),
            versions=count(LicenseVersion.__table__), events=grouped(LicenseEvent.__table__.c.action),
            verifications=grouped(Verification.__table__.c.subject), audit=grouped(AuditEntry.__table__.c.action),
            stats=stats)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A platform of its own on a fresh database: two license-issuing agencies with seals and three
    license types."""
    from dataclasses import replace
    from types import SimpleNamespace

    from api.licenses import license_service
    from api.platform import Platform, initialize_platform
    from eauth.settings import Settings
    from licenses.catalog import demo_types
    from store.agencies import add_agency
    from tests.conftest import fresh_database, require_seal_font
    from tests.helpers import PASSPHRASE, credit_code
    from tests.pdf_helpers import issue_seal

    require_seal_font()
    root = tmp_path_factory.mktemp("concurrency")
    databases = fresh_database(root)
    values = {"data_dir": str(root / "data"), "database_url": next(databases), "key_passphrase": PASSPHRASE,
              "public_base_url": "http://127.0.0.1:8000", "signing_processes": 1}
    settings = Settings(_env_file=None, **values)
    initialize_platform(settings)
    platform = Platform.open(settings)
    with platform.db.session() as session:
        agencies = [add_agency(session, code=f"conc-{n}", name=name, credit_code=credit_code(900_000 + n))
                    for n, name in ((1, "某市市场监督管理局"), (2, "某市公安局交通警察支队"))]
    for agency in agencies:
        issue_seal(platform, agency.id, name=agency.name)
    business, driving = (replace(t, code=credit_code(900_010) + f"{n:03d}") for n, t in enumerate(demo_types("conc-1"), 901))
    other_driving = replace(demo_types("conc-2")[1], code=credit_code(900_020) + "903")
    service = license_service(platform)
    types = ((business.code, agencies[0].id), (driving.code, agencies[0].id), (other_driving.code, agencies[1].id))
    for license_type, (_, owner) in zip((business, driving, other_driving), types):
        service.define_type(license_type, agency_id=owner)
    yield SimpleNamespace(settings=values, platform=platform, agencies=agencies, types=types)
    platform.close()
    databases.close()


@dataclass(frozen=True)
class Contended:
    """Certificates and licenses (with their QR tokens) every worker will try to change."""

    certificates: tuple[str, ...]
    licenses: tuple[str, ...]
    qr_tokens: tuple[str, ...]


def contended(prepared, *, certificates: int, licenses: int) -> Contended:
    """New ones, valid: certificates of the first agency, licenses of its driving-licence type."""
    from api.licenses import issuer_of, license_service
    from licenses.issuance import Actor

    agency = prepared.agencies[0]
    worker = Worker(Job(0, 0, 0, prepared.settings, (agency.id, prepared.agencies[1].id), prepared.types, (), (), ()))
    setup = Report()
    try:
        serials = [worker.issue_certificate(setup, 900_100 + n, with_csr=True) for n in range(certificates)]
        issued = [license_service(prepared.platform).issue(
            issuer_of(agency), type_code=prepared.types[1][0], fields=_driver(_citizen(900_200 + n)),
            actor=Actor(agency.id, "setup")) for n in range(licenses)]
    finally:
        worker.close()
    assert not setup.unexpected, setup.unexpected
    return Contended(tuple(serials), tuple(i.license.id for i in issued), tuple(i.version.qr_token for i in issued))


def _citizen(n: int) -> str:
    from tests.helpers import citizen_id

    return citizen_id(n)


@pytest.mark.parametrize(("threads", "rounds"), [
    # SQLite has one writer at a time: fewer threads, so waiting for its lock stays short.
    (3 if IS_POSTGRES else 2, 2),
    pytest.param(8 if IS_POSTGRES else 3, 6, marks=pytest.mark.slow, id="soak"),
])
def test_processes_and_threads_at_once_leave_exactly_what_they_did(prepared, threads, rounds):
    from licenses.identifiers import LicenseIdentifier

    platform = prepared.platform
    shared = contended(prepared, certificates=SHARED_CERTIFICATES, licenses=SHARED_LICENSES)
    before = snapshot(platform)
    jobs = [Job(worker=w, threads=threads, rounds=rounds, settings=prepared.settings,
                agency_ids=(prepared.agencies[0].id, prepared.agencies[1].id), license_types=prepared.types,
                shared_certificates=shared.certificates, shared_licenses=shared.licenses,
                qr_tokens=shared.qr_tokens) for w in range(1, PROCESSES + 1)]
    context = multiprocessing.get_context("spawn")
    with context.Pool(PROCESSES, initializer=_set_barrier, initargs=(context.Barrier(PROCESSES),)) as pool:
        reports = pool.map(work, jobs, chunksize=1)
    done = Report()
    for report in reports:
        for issuer, numbers in report.crl_numbers.items():
            assert numbers == sorted(numbers), f"a publisher saw the {issuer} CRL number go back: {numbers}"
        done.merge(report)
    after = snapshot(platform)

    assert not done.unexpected, "\n".join(done.unexpected)
    assert not done.ocsp_stale, f"OCSP did not say revoked for {done.ocsp_stale}"
    if IS_POSTGRES:
        assert done.retries == 0, "PostgreSQL needs no retry: its row locks queue the writers"

    # Certificates: every serial once, and the table holds exactly those issued.
    serials = [serial for serial, _ in done.certificates]
    assert len(serials) == PROCESSES * threads * rounds * 2
    assert len(set(serials)) == len(serials)
    assert after.certificates - before.certificates == len(serials)

    # Licenses: every identifier once, valid, and the tables hold exactly what was issued and amended.
    identifiers = [identifier for _, identifier, _ in done.licenses] + [i for _, i in done.amendments]
    assert len(done.licenses) == PROCESSES * threads * rounds
    assert len(set(identifiers)) == len(identifiers)
    assert after.licenses - before.licenses == len(done.licenses)
    assert after.versions - before.versions == len(identifiers)
    from store.models import Certificate, License, LicenseVersion

    with platform.db.transaction() as connection:
        stored = connection.execute(select(LicenseVersion.__table__.c.identifier)).scalars().all()
        numbers = connection.execute(select(License.__table__.c.type_code, License.__table__.c.issuer_code,
                                            License.__table__.c.serial)).all()
        statuses = dict(connection.execute(select(License.__table__.c.id, License.__table__.c.status)).all())
        versions = dict(connection.execute(select(License.__table__.c.id, License.__table__.c.version)).all())
    assert len(set(stored)) == len(stored)
    assert len(set(numbers)) == len(numbers), "a serial number was given twice for one type and issuer"
    for identifier in stored:
        assert LicenseIdentifier.parse(identifier).text == identifier  # the check character holds
    by_type = Counter(type_code for _, _, type_code in done.licenses)
    assert len(by_type) == len(prepared.types), "every type was issued (its serial counter contended)"

    # Changes: the events are exactly those reported, and the shared ones happened once each.
    changes = Counter(action for _, action in done.license_changes)
    expected_events = Counter(issue=len(done.licenses), amend=len(done.amendments), **changes)
    assert after.events - before.events == expected_events
    for license_id in shared.licenses:
        actions = Counter(action for changed, action in done.license_changes if changed == license_id)
        assert actions["revoke"] <= 1 and actions["suspend"] <= 1, actions
        status = "revoked" if actions["revoke"] else "suspended" if actions["suspend"] else "valid"
        assert statuses[license_id] == status
        assert versions[license_id] == 1 + sum(1 for amended, _ in done.amendments if amended == license_id)
    with platform.db.transaction() as connection:
        certificate_status = dict(connection.execute(select(Certificate.__table__.c.serial,
                                                            Certificate.__table__.c.status)).all())
    for serial in shared.certificates:
        actions = Counter(action for changed, action in done.certificate_changes if changed == serial)
        assert actions["revoke"] <= 1 and actions["suspend"] <= 1, (serial, actions)
        assert certificate_status[serial] == ("revoked" if actions["revoke"] else "suspended")

    # Verifications: one record per reported one (group commit lost none, added none).
    assert after.verifications - before.verifications == Counter(done.verified)
    assert len(done.verified) == PROCESSES * threads * sum(min(r + 1, 2) + 1 for r in range(rounds))

    # Audit: one entry per change, none else, and the chain verifies.
    from api.audit import verify

    certificate_changes = Counter(f"certificate.{action}" for _, action in done.certificate_changes)
    expected_audit = Counter({"certificate.issue": len(serials), "verify.qr": len(done.verified),
                              **certificate_changes, **{f"license.{a}": n for a, n in expected_events.items()}})
    assert after.audit - before.audit == expected_audit
    report = verify(platform)
    assert report.intact, report.problem
    assert report.entries == sum(after.audit.values())

    # Statistics: per agency and type, what was issued, revoked and verified.
    type_of = {license_id: type_code for license_id, _, type_code in done.licenses}
    type_of |= {license_id: prepared.types[1][0] for license_id in shared.licenses}
    owner = dict(prepared.types)
    identifier_type = {identifier: type_of[license_id] for license_id, identifier, _ in done.licenses}
    identifier_type |= {identifier: type_of[license_id] for license_id, identifier in done.amendments}
    with platform.db.transaction() as connection:
        for license_id, identifier in connection.execute(select(LicenseVersion.__table__.c.license_id,
                                                                LicenseVersion.__table__.c.identifier)):
            if license_id in shared.licenses:
                identifier_type[identifier] = prepared.types[1][0]
    expected_stats = Counter()
    for type_code in by_type:
        expected_stats[owner[type_code], type_code, "issued"] = by_type[type_code]
    for license_id, action in done.license_changes:
        if action == "revoke":
            expected_stats[owner[type_of[license_id]], type_of[license_id], "revoked"] += 1
    for identifier in done.verified:
        expected_stats[owner[identifier_type[identifier]], identifier_type[identifier], "verified"] += 1
    assert after.stats - before.stats == expected_stats

    # CRLs: the next CRL lists each revoked or suspended
    # certificate once; OCSP says revoked for each (also through the responses stored meanwhile).
    checker = Worker(jobs[0])
    try:
        from api.schedule import crl_publisher
        from store.crl_store import crl_transactions

        held = {serial for serial, action in done.certificate_changes}
        for issuer in ("citizen", "enterprise"):
            seen = max(done.crl_numbers.get(issuer, [0]))
            crl = crl_publisher(platform).publish(crl_transactions(platform.db), issuer)
            assert crl.number > seen
            listed = Counter(entry.serial_number for entry in x509.load_der_x509_crl(crl.der))
            assert all(n == 1 for n in listed.values()), "a certificate is listed twice"
            assert set(listed) == {int(serial, 16) for serial in held if Worker._issuer_of(done, serial) == issuer}
        for serial in held:
            assert checker.ocsp_status(serial, Worker._issuer_of(done, serial)) == "revoked", serial
    finally:
        checker.close()


def test_a_higher_crl_number_never_lists_an_older_state(prepared):
    """Two publishers in the same second: the first has read the CA's entries when a certificate is
    revoked and the second publishes (listing it); the first then stores its CRL under the next number.
    That CRL, the one relying parties now get, must list the revocation too."""
    from ca.authority import utcnow
    from ca.lifecycle import RevocationReason
    from ca.records import Actor
    from api.schedule import crl_publisher
    from store.ca_store import SqlCaStore
    from store.crl_store import crl_transactions

    platform = prepared.platform
    serial = contended(prepared, certificates=1, licenses=0).certificates[0]
    now = utcnow()
    publisher = crl_publisher(platform, clock=lambda: now)  # both publishers in the same second
    transactions = crl_transactions(platform.db)
    paused, resume = threading.Event(), threading.Event()
    first = threading.local()

    from contextlib import contextmanager

    @contextmanager
    def pausing():
        """The first publisher's first transaction, then a pause until the revocation and the second
        publication are done."""
        with transactions() as store:
            yield store
        if getattr(first, "pause", False):
            first.pause = False
            paused.set()
            assert resume.wait(60)

    made = {}

    def publish_first() -> None:
        first.pause = True
        made["first"] = publisher.publish(pausing, "citizen")

    thread = threading.Thread(target=publish_first)
    thread.start()
    try:
        assert paused.wait(60)
        with platform.db.transaction() as connection:
            platform.lifecycle.revoke(SqlCaStore(connection), serial, reason=RevocationReason.KEY_COMPROMISE,
                                      actor=Actor(None))
        second = publisher.publish(transactions, "citizen")
        assert int(serial, 16) in {e.serial_number for e in x509.load_der_x509_crl(second.der)}
    finally:
        resume.set()
        thread.join(60)
    with transactions() as store:
        stored = store.crl("citizen")
    assert stored.number >= second.number
    for crl in (stored, made["first"]):
        assert int(serial, 16) in {e.serial_number for e in x509.load_der_x509_crl(crl.der)}, \
            f"CRL {crl.number} no longer lists {serial}, revoked before it was stored"


CONTESTED = 3


@pytest.mark.parametrize(("workers", "threads", "rounds"), [
    (2, 4, 2), pytest.param(4, 8, 4, marks=pytest.mark.slow, id="soak")])
def test_served_by_several_workers_over_http(prepared, workers, threads, rounds):
    """The same over HTTP: ``eauth serve --workers N`` on the database, threads of clients at once
    revoking the same certificates, issuing and revoking their own, sending the same license request
    (one request key) and verifying QR tokens: each contested revocation succeeds once, each request key
    makes one license, the counts and the audit chain hold, OCSP says revoked."""
    import httpx

    from api.audit import verify
    from concurrent.futures import ThreadPoolExecutor
    from store.agencies import add_client
    from tests.helpers import citizen_id, eauth_serve, ec_csr

    platform, settings = prepared.platform, prepared.settings
    env = {**os.environ, "EAUTH_DATA_DIR": settings["data_dir"], "EAUTH_DATABASE_URL": settings["database_url"],
           "EAUTH_KEY_PASSPHRASE": settings["key_passphrase"], "EAUTH_PUBLIC_BASE_URL": settings["public_base_url"],
           "EAUTH_SIGNING_PROCESSES": "1"}
    with platform.db.session() as session:
        client, secret = add_client(session, agency_code=prepared.agencies[0].code, name="http", scopes={
            "certificates:issue", "certificates:revoke", "licenses:issue", "verify"})
    business_code = prepared.types[0][0]
    unexpected: list[str] = []

    def call(http: httpx.Client, method: str, url: str, *, allowed: tuple[int, ...], **kwargs) -> httpx.Response | None:
        """The response if its status is allowed; SQLite's 503 retried; anything else recorded."""
        for _ in range(50):
            response = http.request(method, url, **kwargs)
            if response.status_code == 503 and not IS_POSTGRES:
                continue
            if response.status_code in allowed:
                return response
            unexpected.append(f"{method} {url}: {response.status_code} {response.text[:500]}")
            return None
        unexpected.append(f"{method} {url}: still 503 after 50 tries")
        return None

    def issue_certificate(http: httpx.Client, n: int) -> str | None:
        body = {"profile": "citizen", "name": f"网络{n}", "id_number": citizen_id(n), "csr": ec_csr()[0].decode()}
        issued = call(http, "POST", "/api/v1/certificates", json=body, allowed=(201,))
        return issued.json()["serial"] if issued is not None else None

    qr_tokens = contended(prepared, certificates=0, licenses=1).qr_tokens
    run_id = secrets.token_hex(4)  # request keys of this run only
    before = snapshot(platform)
    with eauth_serve(env, workers=workers) as (_, url), httpx.Client(base_url=url, timeout=120) as http:
        token = http.post("/api/v1/oauth/token", data={"grant_type": "client_credentials"},
                          auth=(client.client_id, secret))
        assert token.status_code == 200, token.text
        http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        contested = [issue_certificate(http, 980_000 + n) for n in range(CONTESTED)]

        def run(index: int) -> dict:
            done = {"revoked": [], "issued": [], "licenses": [], "verified": 0}
            shuffled = random.Random(index)
            with httpx.Client(base_url=url, timeout=120, headers=http.headers) as mine:
                for serial in shuffled.sample(contested, len(contested)):
                    if call(mine, "POST", f"/api/v1/certificates/{serial}/revoke", json={"reason": "keyCompromise"},
                            allowed=(200, 409)).status_code == 200:
                        done["revoked"].append(serial)
                for round_ in range(rounds):
                    serial = issue_certificate(mine, 981_000 + index * 100 + round_)
                    if serial is not None:
                        done["issued"].append(serial)
                        if call(mine, "POST", f"/api/v1/certificates/{serial}/revoke", allowed=(200,)) is not None:
                            done["revoked"].append(serial)
                    issued = call(mine, "POST", "/api/v1/licenses", allowed=(200, 201), json={
                        "type_code": business_code, "request_key": f"http-{run_id}-{round_}",
                        "fields": _enterprise(f"{_credit(982_000 + round_)}")})
                    if issued is not None:
                        done["licenses"].append((round_, issued.status_code, issued.json()["id"]))
                    if call(mine, "GET", f"/api/v1/verify/qr/{shuffled.choice(qr_tokens)}",
                            allowed=(200,)) is not None:
                        done["verified"] += 1
            return done

        with ThreadPoolExecutor(threads) as pool:
            results = list(pool.map(run, range(threads)))
        revoked = [serial for r in results for serial in r["revoked"]]
        issuers = {name: x509.load_der_x509_certificate(http.get(f"/ca/{name}.cer").content) for name in ("citizen",)}
        statuses = {}
        for serial in revoked:
            with platform.db.transaction() as connection:
                from store.ca_store import SqlCaStore

                certificate = SqlCaStore(connection).certificate(serial).certificate
            request = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuers["citizen"], hashes.SHA1()).build()
            answer = http.post("/ocsp", content=request.public_bytes(Encoding.DER),
                               headers={"Content-Type": "application/ocsp-request"})
            statuses[serial] = ocsp.load_der_ocsp_response(answer.content).certificate_status.name.lower()
    after = snapshot(platform)

    assert not unexpected, "\n".join(unexpected)
    assert sorted(s for s in revoked if s in contested) == sorted(contested), "each contested one revoked once"
    assert len(revoked) == len(set(revoked)) == CONTESTED + threads * rounds
    assert set(statuses.values()) == {"revoked"}, statuses
    licenses = [entry for r in results for entry in r["licenses"]]
    for round_ in range(rounds):
        answers = [(status, license_id) for n, status, license_id in licenses if n == round_]
        assert len(answers) == threads
        assert len({license_id for _, license_id in answers}) == 1, "one request key made two licenses"
        assert sorted(status for status, _ in answers) == [200] * (threads - 1) + [201]
    verified = sum(r["verified"] for r in results)
    assert after.certificates - before.certificates == CONTESTED + threads * rounds
    assert after.licenses - before.licenses == rounds
    assert sum((after.verifications - before.verifications).values()) == verified == threads * rounds
    assert after.audit - before.audit == Counter({
        "certificate.issue": CONTESTED + threads * rounds, "certificate.revoke": len(revoked),
        "license.issue": rounds, "verify.qr": verified})
    report = verify(platform)
    assert report.intact, report.problem


def _credit(n: int) -> str:
    from tests.helpers import credit_code

    return credit_code(n)
