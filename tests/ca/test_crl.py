"""CRLs: what they list (revoked and suspended certificates with reasons, revoked CAs on the root's),
how they are made (stored entries spliced into a TBSCertList cryptography built, signed by the CA
through the Signer interface, PKCS#11 included), numbering across concurrent publishers and
processes, refresh when due; and the outside view: ``openssl crl``, ``openssl verify -crl_check``,
pkilint's CRL linter. Uses the session PKI."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from asn1crypto import core
from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import update

from api.schedule import crl_publisher, refresh_crls
from ca.authority import CaUrls, CertificateContent, build_certificate, utcnow
from ca.crl import CrlPolicy, StoredCrl, _with_entries, build_crl
from eauth.der import header as der_header
from ca.lifecycle import CertificateLifecycle, RevocationReason, crl_entry
from ca.profiles import KeyUsageSpec, SubjectKind
from ca.records import Actor, AuthorityRecord, CertificateRecord
from ca.subjects import SubjectIdentity
from eauth.errors import KeyNotFound, NotFound
from keys.base import KeyAlgorithm
from keys.x509 import crl_draft
from store.ca_store import SqlCaStore
from store.crl_store import crl_transactions
from store.models import Authority, Crl
from tests.conftest import require_tool
from tests.helpers import PASSPHRASE, citizen_id, ec_csr

OPERATOR = Actor(None)
REPO = Path(__file__).resolve().parents[2]


def issue(platform, agency, profile_name: str = "citizen") -> CertificateRecord:
    with platform.db.session() as session:
        return platform.ca.issue(SqlCaStore(session), profile_name=profile_name, requested_by=agency.id, csr=ec_csr()[0],
                                 subject=SubjectIdentity(SubjectKind.PERSON, "王五", citizen_id())).record


def change(platform, action: str, serial: str, **options):
    with platform.db.session() as session:
        return getattr(CertificateLifecycle(), action)(SqlCaStore(session), serial, actor=OPERATOR, **options)


def publish(platform, issuer: str = "citizen") -> StoredCrl:
    return crl_publisher(platform).publish(crl_transactions(platform.db), issuer)


def authority(platform, name: str) -> AuthorityRecord:
    with platform.db.session() as session:
        return SqlCaStore(session).authority(name)


def loaded(platform, crl: StoredCrl) -> x509.CertificateRevocationList:
    """The CRL as cryptography reads it, its signature checked against its CA's key."""
    parsed = x509.load_der_x509_crl(crl.der)
    ca = authority(platform, crl.issuer).certificate
    assert parsed.is_signature_valid(ca.public_key())
    assert parsed.issuer == ca.subject
    return parsed


def serials(crl: x509.CertificateRevocationList) -> set[str]:
    return {f"{entry.serial_number:x}" for entry in crl}


# --- encoding ------------------------------------------------------------------------------------


def _reference_entry(serial, revoked_at, reason, invalidity_date) -> bytes:
    """crl_entry as first written: the whole entry built by asn1crypto from nested values."""
    names = {"keyCompromise": "key_compromise", "superseded": "superseded", "certificateHold": "certificate_hold",
             "affiliationChanged": "affiliation_changed", "cessationOfOperation": "cessation_of_operation",
             "privilegeWithdrawn": "privilege_withdrawn"}
    extensions = []
    if reason in names:
        extensions.append({"extn_id": "crl_reason", "critical": False, "extn_value": names[reason]})
    if invalidity_date is not None:
        extensions.append({"extn_id": "invalidity_date", "critical": False,
                           "extn_value": core.GeneralizedTime(invalidity_date.replace(microsecond=0))})
    time_kind = "utc_time" if revoked_at.year < 2050 else "general_time"
    entry = {"user_certificate": serial, "revocation_date": asn1_x509.Time({time_kind: revoked_at.replace(microsecond=0)})}
    if extensions:
        entry["crl_entry_extensions"] = extensions
    return asn1_crl.RevokedCertificate(entry).dump()


NOW = datetime(2026, 3, 4, 5, 6, 7, 890, tzinfo=timezone.utc)


@pytest.mark.parametrize(("serial", "revoked_at", "reason", "invalidity_date"), [
    (1, NOW, "keyCompromise", NOW - timedelta(days=2)),
    ((1 << 127) | 12345, NOW, "certificateHold", None),
    (0x7F, NOW, "unspecified", None),
    (0x80, NOW, "superseded", None),
    (2**128 - 1, datetime(2051, 1, 1, tzinfo=timezone.utc), "cessationOfOperation", NOW),
    (42, NOW, "privilegeWithdrawn", NOW.astimezone(timezone(timedelta(hours=8)))),
])
def test_crl_entry_encodes_as_asn1crypto_does(serial, revoked_at, reason, invalidity_date):
    assert crl_entry(serial, revoked_at, reason, invalidity_date) == _reference_entry(serial, revoked_at, reason,
                                                                                      invalidity_date)


@pytest.mark.parametrize("length", [0, 1, 127, 128, 255, 256, 65_535, 65_536, 16_777_216])
def test_der_header_is_the_one_asn1crypto_writes(length):
    dumped = core.Sequence(contents=b"\x00" * length).dump()
    assert der_header(0x30, length) == dumped[: len(dumped) - length]


def test_entries_spliced_in_any_chunking(platform):
    """Chunks may hold any number of whole entries; no entries leaves the draft's TBS as it was."""
    ca = authority(platform, "citizen")
    signer = platform.keys.signer(ca.key_label)
    entries = [crl_entry(n, NOW, "superseded", None) for n in range(1, 300)]
    draft = crl_draft(x509.CertificateRevocationListBuilder().issuer_name(ca.certificate.subject)
                      .last_update(NOW).next_update(NOW + timedelta(days=1)), signer)
    assert _with_entries(draft.tbs_certlist_bytes, []) == draft.tbs_certlist_bytes
    one_chunk = _with_entries(draft.tbs_certlist_bytes, [b"".join(entries)])
    assert _with_entries(draft.tbs_certlist_bytes, entries) == one_chunk
    assert _with_entries(draft.tbs_certlist_bytes, [b"".join(entries[:7]), b"".join(entries[7:])]) == one_chunk
    parsed = asn1_crl.TbsCertList.load(one_chunk)
    assert [e["user_certificate"].native for e in parsed["revoked_certificates"]] == list(range(1, 300))
    crl = x509.load_der_x509_crl(build_crl(ca, signer, number=9, this_update=NOW, next_update=NOW + timedelta(days=1),
                                           entries=entries))
    assert crl.is_signature_valid(ca.certificate.public_key()) and len(crl) == 299


# --- content -------------------------------------------------------------------------------------


def test_revoked_and_suspended_listed_with_reasons(platform, agency):
    revoked, held, good = issue(platform, agency), issue(platform, agency), issue(platform, agency)
    since = revoked.not_before  # the earliest allowed
    change(platform, "revoke", revoked.serial, reason=RevocationReason.KEY_COMPROMISE, invalidity_date=since)
    change(platform, "suspend", held.serial)
    stored = publish(platform)
    crl = loaded(platform, stored)

    assert {revoked.serial, held.serial} <= serials(crl) and good.serial not in serials(crl)
    assert stored.entries == len(crl)
    entry = crl.get_revoked_certificate_by_serial_number(int(revoked.serial, 16))
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason is x509.ReasonFlags.key_compromise
    assert entry.extensions.get_extension_for_class(x509.InvalidityDate).value.invalidity_date_utc == since
    hold = crl.get_revoked_certificate_by_serial_number(int(held.serial, 16))
    assert hold.extensions.get_extension_for_class(x509.CRLReason).value.reason is x509.ReasonFlags.certificate_hold

    assert crl.next_update_utc - crl.last_update_utc == timedelta(hours=platform.settings.crl_validity_hours)
    assert (crl.last_update_utc, crl.next_update_utc) == (stored.this_update, stored.next_update)
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == stored.number
    ski = authority(platform, "citizen").certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier == ski.value.digest
    tbs = asn1_crl.CertificateList.load(stored.der)["tbs_cert_list"]
    assert tbs["version"].native == "v2"
    assert [e["extn_id"].native for e in tbs["crl_extensions"]] == ["authority_key_identifier", "crl_number"]
    assert not any(e["critical"].native for e in tbs["crl_extensions"])


def test_number_increases_on_each_publish(platform):
    numbers = [publish(platform, "enterprise").number for _ in range(3)]
    assert numbers == sorted(set(numbers)) and numbers[0] >= 1
    with platform.db.session() as session:
        assert session.get(Crl, "enterprise").number == numbers[-1]


def test_reinstated_certificate_leaves_the_crl(platform, agency):
    record = issue(platform, agency)
    change(platform, "suspend", record.serial)
    assert record.serial in serials(loaded(platform, publish(platform)))
    change(platform, "reinstate", record.serial)
    assert record.serial not in serials(loaded(platform, publish(platform)))


def test_status_change_does_not_regenerate_the_crl(platform, agency):
    before = publish(platform)
    change(platform, "revoke", issue(platform, agency).serial, reason=RevocationReason.SUPERSEDED)
    with platform.db.session() as session:
        stored = session.get(Crl, "citizen")
        assert (stored.number, stored.der) == (before.number, before.der)


def test_root_crl_signed_by_root_and_empty_by_default(platform):
    stored = publish(platform, "root")
    crl = loaded(platform, stored)
    assert len(crl) == 0 and stored.entries == 0
    # RFC 5280 §5.1.2.6: with no revoked certificates the field is absent, not an empty SEQUENCE.
    assert isinstance(asn1_crl.CertificateList.load(stored.der)["tbs_cert_list"]["revoked_certificates"], core.Void)


def test_root_crl_lists_a_revoked_ca(platform):
    seal = authority(platform, "seal").certificate
    entry = crl_entry(seal.serial_number, utcnow(), "cessationOfOperation", None)
    _set_authority_entry(platform, "seal", entry)
    try:
        crl = loaded(platform, publish(platform, "root"))
        assert serials(crl) == {f"{seal.serial_number:x}"}
        assert f"{seal.serial_number:x}" not in serials(loaded(platform, publish(platform, "citizen")))
    finally:
        _set_authority_entry(platform, "seal", None)
    assert len(loaded(platform, publish(platform, "root"))) == 0


def _set_authority_entry(platform, name: str, entry: bytes | None) -> None:
    with platform.db.session() as session:
        session.execute(update(Authority).where(Authority.name == name).values(revocation_entry=entry))


@pytest.mark.parametrize("name", ["nope", "ocsp-citizen", "tsa", ""])
def test_only_cas_have_crls(platform, name):
    with pytest.raises(NotFound):
        publish(platform, name)
    with pytest.raises(NotFound):
        crl_publisher(platform).current(crl_transactions(platform.db), name)


# --- when CRLs are made --------------------------------------------------------------------------


def test_policy_due_and_cache_lifetime():
    policy = CrlPolicy(validity=timedelta(hours=24), refresh_margin=timedelta(hours=12))
    crl = StoredCrl("citizen", 1, NOW, NOW + timedelta(hours=24), 0)
    assert policy.due(None, NOW)
    assert not policy.due(crl, NOW + timedelta(hours=11, minutes=59))
    assert policy.due(crl, NOW + timedelta(hours=12))
    assert policy.fresh_for(crl, NOW + timedelta(hours=2)) == 10 * 3600
    assert policy.fresh_for(crl, NOW + timedelta(hours=13)) == 0
    with pytest.raises(ValueError):
        CrlPolicy(validity=timedelta(hours=1), refresh_margin=timedelta(hours=1))


def _make_due(platform, issuer: str) -> None:
    with platform.db.session() as session:
        session.execute(update(Crl).where(Crl.issuer == issuer).values(next_update=utcnow()))


def test_refresh_makes_only_the_crls_that_are_due(platform):
    for name in ("root", "citizen", "enterprise", "seal"):
        publish(platform, name)
    assert refresh_crls(platform) == []
    before = publish(platform, "seal")
    _make_due(platform, "seal")
    made = refresh_crls(platform)
    assert [(c.issuer, c.number) for c in made] == [("seal", before.number + 1)]
    assert refresh_crls(platform) == []


def test_refresh_goes_on_past_a_ca_that_fails(platform):
    """A CA whose key is unavailable is reported; the CAs after it are still refreshed."""

    class RootKeyOffline:
        def signer(self, label):
            if label == "ca-root":
                raise KeyNotFound("root key offline")
            return platform.keys.signer(label)

    for name in ("root", "seal"):
        _make_due(platform, name)
    publisher = crl_publisher(platform)
    publisher.keys = RootKeyOffline()
    failures = []
    made = publisher.refresh(crl_transactions(platform.db), on_error=lambda issuer, exc: failures.append(issuer))
    assert failures == ["root"] and [c.issuer for c in made] == ["seal"]
    with pytest.raises(KeyNotFound):
        publisher.refresh(crl_transactions(platform.db))
    assert [c.issuer for c in refresh_crls(platform)] == ["root"]


def test_current_serves_the_stored_crl_until_due(platform):
    publisher, transaction = crl_publisher(platform), crl_transactions(platform.db)
    stored = publish(platform, "enterprise")
    assert publisher.current(transaction, "enterprise") == stored
    assert publisher.current(transaction, "enterprise", with_der=False).der is None
    _make_due(platform, "enterprise")
    fresh = publisher.current(transaction, "enterprise")
    assert fresh.number == stored.number + 1 and fresh.der


def test_concurrent_publishers_never_share_a_number(platform):
    """Threads each with their own connection: the database serialises the number allocation."""
    publisher, transaction = crl_publisher(platform), crl_transactions(platform.db)

    def work(i: int) -> StoredCrl | None:
        if i % 3 == 0:
            _make_due(platform, "seal")
            return publisher.refresh_one(transaction, "seal")
        return publisher.publish(transaction, "seal")

    with ThreadPoolExecutor(4) as pool:
        results = [r for r in pool.map(work, range(12)) if r is not None]
    _assert_one_crl_per_number(results)
    with platform.db.session() as session:
        assert session.get(Crl, "seal").number == max(r.number for r in results)


def _assert_one_crl_per_number(results) -> None:
    by_number = defaultdict(set)
    for crl in results:
        by_number[crl.number].add(crl.der)
    assert all(len(ders) == 1 for ders in by_number.values()), "two different CRLs with the same number"


_PUBLISHER_PROCESS = """
import json, sys
from api.platform import Platform
from api.schedule import crl_publisher
from eauth.settings import Settings
from store.crl_store import crl_transactions
p = Platform.open(Settings(_env_file=None))
publisher, transaction = crl_publisher(p), crl_transactions(p.db)
made = [publisher.publish(transaction, "seal") for _ in range(int(sys.argv[1]))]
print(json.dumps([[c.number, c.der.hex()] for c in made]))
"""


def test_publishers_in_several_processes_never_share_a_number(platform):
    settings = platform.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("EAUTH_")} | {
        "EAUTH_DATA_DIR": str(settings.data_dir), "EAUTH_DATABASE_URL": settings.resolved_database_url,
        "EAUTH_KEY_PASSPHRASE": PASSPHRASE, "PYTHONPATH": str(REPO),
    }
    processes = [subprocess.Popen([sys.executable, "-c", _PUBLISHER_PROCESS, "8"], env=env, cwd=REPO,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        results += [StoredCrl("seal", number, NOW, NOW, 0, bytes.fromhex(der)) for number, der in json.loads(out)]
    _assert_one_crl_per_number(results)
    with platform.db.session() as session:
        assert session.get(Crl, "seal").number == max(r.number for r in results)


# --- PKCS#11 -------------------------------------------------------------------------------------


@pytest.mark.interop
@pytest.mark.parametrize("algorithm", [KeyAlgorithm.EC_P256, KeyAlgorithm.RSA_2048])
def test_crl_signed_with_a_pkcs11_key(softhsm_token, algorithm):
    from keys.pkcs11store import Pkcs11KeyStore

    signer = Pkcs11KeyStore(*softhsm_token).generate(f"crl-{uuid.uuid4().hex[:8]}", algorithm)
    assert getattr(signer, "private_key", None) is None  # signs on the token, not in cryptography
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "HSM CA")])
    content = CertificateContent(subject=subject, public_key=signer.public_key, not_before=NOW,
                                 not_after=NOW + timedelta(days=365), is_ca=True,
                                 key_usage=KeyUsageSpec(key_cert_sign=True, crl_sign=True))
    certificate = build_certificate(content, issuer=None, issuer_signer=signer, urls=CaUrls("http://x"))
    ca = AuthorityRecord("hsm", "issuing", None, signer.label, certificate)
    entries = [crl_entry(n, NOW, "keyCompromise", None) for n in (3, 5, 7)]
    for listed in (entries, []):
        crl = x509.load_der_x509_crl(build_crl(ca, signer, number=1, this_update=NOW,
                                               next_update=NOW + timedelta(days=1), entries=listed))
        assert crl.is_signature_valid(signer.public_key)
        assert len(crl) == len(listed)


# --- outside tools -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def crl_files(platform, agency, tmp_path_factory) -> dict[str, Path]:
    """A revoked (key compromise, with invalidity date), a suspended and a good citizen certificate, the
    published CRLs of citizen and root as DER and PEM, and the PEMs openssl needs."""
    directory = tmp_path_factory.mktemp("crl")
    files = {}
    for label in ("revoked", "held", "good"):
        record = issue(platform, agency)
        files[label] = directory / f"{label}.pem"
        files[label].write_bytes(record.certificate.public_bytes(Encoding.PEM))
        files[f"{label}-serial"] = record.serial
    with platform.db.session() as session:
        since = SqlCaStore(session).certificate(files["revoked-serial"]).not_before
    change(platform, "revoke", files["revoked-serial"], reason=RevocationReason.KEY_COMPROMISE, invalidity_date=since)
    change(platform, "suspend", files["held-serial"])
    for name in ("root", "citizen"):
        files[name] = directory / f"{name}.pem"
        files[name].write_bytes(authority(platform, name).certificate.public_bytes(Encoding.PEM))
        der = publish(platform, name).der
        files[f"{name}-crl"] = directory / f"{name}.crl"
        files[f"{name}-crl"].write_bytes(der)
        files[f"{name}-crl-pem"] = directory / f"{name}.crl.pem"
        files[f"{name}-crl-pem"].write_bytes(x509.load_der_x509_crl(der).public_bytes(Encoding.PEM))
    files["crls"] = directory / "crls.pem"
    files["crls"].write_bytes(files["citizen-crl-pem"].read_bytes() + files["root-crl-pem"].read_bytes())
    return files


@pytest.mark.interop
def test_openssl_lists_serials_reasons_and_invalidity_date(crl_files):
    result = subprocess.run([require_tool("openssl"), "crl", "-inform", "DER", "-text", "-noout",
                             "-in", str(crl_files["citizen-crl"])], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "Version 2" in text and "X509v3 CRL Number" in text and "Next Update" in text
    # OpenSSL prints whole octets (a leading 0 where the hex has an odd length); our serials have none.
    blocks = {block.split("\n", 1)[0].strip().lower().lstrip("0"): block for block in text.split("Serial Number: ")[1:]}
    revoked = blocks[crl_files["revoked-serial"]]
    assert "Key Compromise" in revoked and "Invalidity Date" in revoked
    assert "Certificate Hold" in blocks[crl_files["held-serial"]]
    assert crl_files["good-serial"] not in blocks


def _verify(crl_files, leaf: str, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [require_tool("openssl"), "verify", *options, "-CRLfile", str(crl_files["crls"]),
         "-CAfile", str(crl_files["root"]), "-untrusted", str(crl_files["citizen"]), str(crl_files[leaf])],
        capture_output=True, text=True, timeout=60,
    )


@pytest.mark.interop
@pytest.mark.parametrize("check", ["-crl_check", "-crl_check_all"])
def test_openssl_verify_refuses_revoked_and_held(crl_files, check):
    good = _verify(crl_files, "good", check)
    assert good.returncode == 0 and good.stdout.strip().endswith(": OK"), good.stdout + good.stderr
    for leaf in ("revoked", "held"):
        result = _verify(crl_files, leaf, check)
        assert result.returncode != 0
        assert "certificate revoked" in result.stdout + result.stderr, result.stdout + result.stderr


@pytest.mark.interop
def test_openssl_crl_check_all_needs_the_root_crl(crl_files):
    """-crl_check_all checks the issuing CA against the root's CRL: without it, no verification."""
    result = subprocess.run(
        [require_tool("openssl"), "verify", "-crl_check_all", "-CRLfile", str(crl_files["citizen-crl-pem"]),
         "-CAfile", str(crl_files["root"]), "-untrusted", str(crl_files["citizen"]), str(crl_files["good"])],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0 and "unable to get certificate CRL" in result.stdout + result.stderr


@pytest.mark.interop
@pytest.mark.parametrize("name", ["citizen", "root"])
def test_pkilint_finds_no_error_in_our_crls(crl_files, name):
    findings = _lint_crl(crl_files[f"{name}-crl"])
    blocking = [str(f) for f in findings if f.severity in ("ERROR", "FATAL")]
    assert not blocking, "\n".join(blocking)
    assert not [f for f in findings if f.severity in ("WARNING", "NOTICE")], findings


def _lint_crl(path: Path) -> list:
    """pkilint's ``lint_crl`` (RFC 5280 profile) in process, every finding as JSON, as test_interop runs
    the certificate linters."""
    from tests.ca.test_interop import _pkilint_cli, parse_report

    main = _pkilint_cli("lint_crl").main
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["lint", "-t", "CRL", "-p", "PKIX", "-f", "JSON", "-s", "INFO", str(path)])
    assert not stderr.getvalue(), stderr.getvalue()
    findings = parse_report(stdout.getvalue())
    assert code == min(len(findings), 255), (code, findings)
    return findings
