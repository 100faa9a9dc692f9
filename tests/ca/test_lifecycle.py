"""Certificate lifecycle in the domain: suspend, reinstate, revoke (with the CRL entry each encodes
once), renew and re-key, who may do each, and what is refused.

Time is frozen: the CA and the lifecycle run on a clock the test moves. Uses the session PKI.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest
from asn1crypto import crl as asn1_crl
from cryptography import x509
from sqlalchemy import delete, func, insert, select

from ca.authority import CertificateAuthority, IssuedCertificate, utcnow
from ca.lifecycle import CertificateLifecycle, RevocationReason
from ca.profiles import SubjectKind
from ca.records import Actor, CertificateRecord
from ca.subjects import SubjectIdentity
from eauth.errors import Forbidden, InvalidCsr, InvalidInput, InvalidStatusTransition, NotFound
from store.agencies import add_agency
from store.ca_store import SqlCaStore
from store.models import Certificate, OcspResponse
from tests.helpers import citizen_id, credit_code, ec_csr

OPERATOR = Actor(None)
UNKNOWN_SERIAL = "ab" * 16
#: asn1crypto's names for the CRLReason values we encode (RFC 5280 §5.3.1), written out independently.
ASN1_NAMES = {
    "keyCompromise": "key_compromise",
    "affiliationChanged": "affiliation_changed",
    "superseded": "superseded",
    "cessationOfOperation": "cessation_of_operation",
    "privilegeWithdrawn": "privilege_withdrawn",
}


class FrozenClock:
    """A clock that stands still until the test moves it."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, delta: timedelta) -> datetime:
        self.at += delta
        return self.at


@pytest.fixture
def clock() -> FrozenClock:
    """Starts in the past, so that the changes the tests make (moving it on by days at most) are not
    dated in the future in the session database, which other tests' CRLs and OCSP responses read."""
    return FrozenClock(utcnow() - timedelta(days=60))


@pytest.fixture
def ca(platform, clock) -> CertificateAuthority:
    return CertificateAuthority(platform.keys, urls=platform.ca.urls, key_algorithm=platform.ca.key_algorithm,
                                clock=clock)


@pytest.fixture
def lifecycle(clock) -> CertificateLifecycle:
    return CertificateLifecycle(clock=clock)


@pytest.fixture(scope="module")
def other_agency(platform):
    with platform.db.session() as session:
        return add_agency(session, code="lifecycle-other-ra", name="另一登记机关", credit_code=None)


@pytest.fixture
def owner(agency) -> Actor:
    return Actor(agency.id)


def issue(platform, ca, agency, *, profile_name: str = "citizen") -> IssuedCertificate:
    if profile_name == "citizen":
        subject, csr = SubjectIdentity(SubjectKind.PERSON, "张三", citizen_id()), ec_csr()[0]
    else:  # agency-seal: the platform makes and keeps the key
        subject, csr = SubjectIdentity(SubjectKind.AGENCY, "某市市场监督管理局", credit_code()), None
    with platform.db.session() as session:
        return ca.issue(SqlCaStore(session), profile_name=profile_name, subject=subject, requested_by=agency.id,
                        csr=csr)


@pytest.fixture
def issued(platform, ca, agency) -> CertificateRecord:
    return issue(platform, ca, agency).record


def run(platform, operation: Callable, *args, **kwargs):
    """``operation(store, *args, **kwargs)`` in its own transaction, as a request or a command does."""
    with platform.db.session() as session:
        return operation(SqlCaStore(session), *args, **kwargs)


def stored(platform, serial: str) -> CertificateRecord:
    with platform.db.session() as session:
        return SqlCaStore(session).certificate(serial)


def stored_entry(platform, serial: str) -> bytes | None:
    with platform.db.session() as session:
        return session.scalar(select(Certificate.revocation_entry).where(Certificate.serial == serial))


def parse_entry(der: bytes) -> asn1_crl.RevokedCertificate:
    entry = asn1_crl.RevokedCertificate.load(der)
    assert entry.dump(force=True) == der  # DER as encoded: re-encoding changes nothing
    return entry


# --- suspend, reinstate, revoke -------------------------------------------------------------------------


def test_suspend_puts_the_certificate_on_hold(platform, lifecycle, clock, owner, issued):
    at = clock.advance(timedelta(hours=3))
    change = run(platform, lifecycle.suspend, issued.serial, actor=owner)
    assert (change.status, change.reason, change.revoked_at, change.invalidity_date) == (
        "suspended", "certificateHold", at, None)
    record = stored(platform, issued.serial)
    assert (record.status, record.revoked_at, record.revocation_reason) == ("suspended", at, "certificateHold")
    assert stored_entry(platform, issued.serial) == change.crl_entry
    entry = parse_entry(change.crl_entry)
    assert entry["user_certificate"].native == int(issued.serial, 16)
    assert entry["revocation_date"].native == at
    assert entry.crl_reason_value.native == "certificate_hold"
    assert entry.invalidity_date_value is None


def test_reinstate_makes_it_valid_and_clears_the_crl_entry(platform, lifecycle, clock, owner, issued):
    run(platform, lifecycle.suspend, issued.serial, actor=owner)
    clock.advance(timedelta(days=1))
    change = run(platform, lifecycle.reinstate, issued.serial, actor=owner)
    assert (change.status, change.revoked_at, change.reason, change.crl_entry) == ("valid", None, None, None)
    record = stored(platform, issued.serial)
    assert (record.status, record.revoked_at, record.revocation_reason, record.invalidity_date) == (
        "valid", None, None, None)
    assert stored_entry(platform, issued.serial) is None


def test_revoke_with_reason_and_invalidity_date(platform, lifecycle, clock, owner, issued):
    compromised = issued.not_before + timedelta(hours=1)
    at = clock.advance(timedelta(days=2))
    change = run(platform, lifecycle.revoke, issued.serial, reason=RevocationReason.KEY_COMPROMISE, actor=owner,
                 invalidity_date=compromised)
    record = stored(platform, issued.serial)
    assert (record.status, record.revoked_at, record.revocation_reason, record.invalidity_date) == (
        "revoked", at, "keyCompromise", compromised)
    assert stored_entry(platform, issued.serial) == change.crl_entry
    entry = parse_entry(change.crl_entry)
    assert entry["user_certificate"].native == int(issued.serial, 16)
    assert entry["revocation_date"].native == at
    assert entry.crl_reason_value.native == "key_compromise"
    assert entry.invalidity_date_value.native == compromised
    assert all(not e["critical"].native for e in entry["crl_entry_extensions"])


def test_revoke_unspecified_leaves_the_reason_out_of_the_entry(platform, lifecycle, owner, issued):
    """RFC 5280 §5.3.1: the reasonCode extension is absent rather than ``unspecified``."""
    change = run(platform, lifecycle.revoke, issued.serial, reason=RevocationReason.UNSPECIFIED, actor=owner)
    assert stored(platform, issued.serial).revocation_reason == "unspecified"
    entry = parse_entry(change.crl_entry)
    assert entry.crl_reason_value is None and entry.invalidity_date_value is None
    assert not entry["crl_entry_extensions"]  # no extensions at all, not an empty list


@pytest.mark.parametrize("reason", [r for r in RevocationReason if r is not RevocationReason.UNSPECIFIED],
                         ids=lambda r: r.value)
def test_each_reason_is_encoded(platform, ca, lifecycle, agency, owner, reason):
    serial = issue(platform, ca, agency).record.serial
    change = run(platform, lifecycle.revoke, serial, reason=reason, actor=owner)
    assert parse_entry(change.crl_entry).crl_reason_value.native == ASN1_NAMES[reason.value]


def test_revoke_a_suspended_certificate(platform, lifecycle, clock, owner, issued):
    run(platform, lifecycle.suspend, issued.serial, actor=owner)
    at = clock.advance(timedelta(days=1))
    change = run(platform, lifecycle.revoke, issued.serial, reason=RevocationReason.SUPERSEDED, actor=owner)
    record = stored(platform, issued.serial)
    assert (record.status, record.revoked_at, record.revocation_reason) == ("revoked", at, "superseded")
    assert parse_entry(change.crl_entry).crl_reason_value.native == "superseded"


def test_invalidity_date_with_an_offset_is_kept_in_utc_whole_seconds(platform, lifecycle, clock, owner, issued):
    clock.advance(timedelta(days=1))
    local = (issued.not_before + timedelta(hours=2, microseconds=250)).astimezone(timezone(timedelta(hours=8)))
    change = run(platform, lifecycle.revoke, issued.serial, reason=RevocationReason.KEY_COMPROMISE, actor=owner,
                 invalidity_date=local)
    kept = stored(platform, issued.serial).invalidity_date
    assert kept == local.replace(microsecond=0) and kept.utcoffset() == timedelta(0)  # the same instant, in UTC
    assert change.invalidity_date == kept  # stored as encoded: whole seconds
    entry = parse_entry(change.crl_entry)
    assert entry.invalidity_date_value.native == kept
    assert entry.invalidity_date_value.contents.endswith(b"Z")  # GeneralizedTime in Zulu (RFC 5280 §4.1.2.5.2)


# --- refused transitions and inputs: an error, nothing changed -------------------------------------------

ILLEGAL = {
    "reinstate-valid": ([], "reinstate"),
    "suspend-suspended": (["suspend"], "suspend"),
    "revoke-revoked": (["revoke"], "revoke"),
    "suspend-revoked": (["revoke"], "suspend"),
    "reinstate-revoked": (["revoke"], "reinstate"),
}


def _operation(lifecycle: CertificateLifecycle, name: str, actor: Actor):
    if name == "revoke":
        return lambda store, serial: lifecycle.revoke(store, serial, reason=RevocationReason.KEY_COMPROMISE,
                                                      actor=actor)
    return lambda store, serial: getattr(lifecycle, name)(store, serial, actor=actor)


@pytest.mark.parametrize("case", ILLEGAL)
def test_illegal_transitions_refused(platform, lifecycle, owner, issued, case):
    before, attempt = ILLEGAL[case]
    for step in before:
        run(platform, _operation(lifecycle, step, owner), issued.serial)
    state = stored(platform, issued.serial)
    with pytest.raises(InvalidStatusTransition) as refused:
        run(platform, _operation(lifecycle, attempt, owner), issued.serial)
    assert refused.value.code == "invalid_status_transition"
    assert issued.serial in refused.value.detail
    assert stored(platform, issued.serial) == state


@pytest.mark.parametrize("name", ["suspend", "reinstate", "revoke"])
def test_unknown_serial(platform, lifecycle, name):
    with pytest.raises(NotFound):
        run(platform, _operation(lifecycle, name, OPERATOR), UNKNOWN_SERIAL)


@pytest.mark.parametrize("name", ["suspend", "revoke"])
def test_another_agency_may_not(platform, lifecycle, other_agency, issued, name):
    with pytest.raises(Forbidden):
        run(platform, _operation(lifecycle, name, Actor(other_agency.id)), issued.serial)
    assert stored(platform, issued.serial).status == "valid"


def test_another_agency_may_not_reinstate(platform, lifecycle, owner, other_agency, issued):
    run(platform, lifecycle.suspend, issued.serial, actor=owner)
    with pytest.raises(Forbidden):
        run(platform, lifecycle.reinstate, issued.serial, actor=Actor(other_agency.id))
    assert stored(platform, issued.serial).status == "suspended"


def test_the_operator_may_change_any_certificate(platform, lifecycle, issued):
    run(platform, lifecycle.suspend, issued.serial, actor=OPERATOR)
    run(platform, lifecycle.reinstate, issued.serial, actor=OPERATOR)
    run(platform, lifecycle.revoke, issued.serial, reason=RevocationReason.CESSATION_OF_OPERATION, actor=OPERATOR)
    assert stored(platform, issued.serial).status == "revoked"


@pytest.mark.parametrize("name", ["suspend", "revoke"])
def test_expired_certificate_refused(platform, lifecycle, clock, owner, issued, name):
    clock.at = issued.not_after
    with pytest.raises(InvalidStatusTransition, match="expired"):
        run(platform, _operation(lifecycle, name, owner), issued.serial)
    assert stored(platform, issued.serial).status == "valid"


def test_expired_suspended_certificate_cannot_be_reinstated(platform, lifecycle, clock, owner, issued):
    run(platform, lifecycle.suspend, issued.serial, actor=owner)
    clock.at = issued.not_after + timedelta(seconds=1)
    with pytest.raises(InvalidStatusTransition, match="expired"):
        run(platform, lifecycle.reinstate, issued.serial, actor=owner)


@pytest.mark.parametrize(
    "when",
    [
        pytest.param(lambda record, now: now + timedelta(seconds=1), id="in-the-future"),
        pytest.param(lambda record, now: record.not_before - timedelta(seconds=1), id="before-not-before"),
        pytest.param(lambda record, now: (record.not_before + timedelta(hours=1)).replace(tzinfo=None), id="naive"),
    ],
)
def test_bad_invalidity_date_refused(platform, lifecycle, clock, owner, issued, when):
    now = clock.advance(timedelta(days=1))
    with pytest.raises(InvalidInput) as refused:
        run(platform, lifecycle.revoke, issued.serial, reason=RevocationReason.KEY_COMPROMISE, actor=owner,
            invalidity_date=when(issued, now))
    assert refused.value.code == "invalid_input" and "invalidity date" in refused.value.detail
    assert stored(platform, issued.serial).status == "valid"


@pytest.mark.parametrize("value", ["bogus", "", "KeyCompromise", "certificateHold", "removeFromCRL", "cACompromise"])
def test_unknown_or_non_end_entity_reasons_refused(value):
    """Hold is ``suspend``, not a revocation reason; CA-only reasons do not apply to end entities."""
    with pytest.raises(InvalidInput) as refused:
        RevocationReason.parse(value)
    assert "keyCompromise" in refused.value.detail


def test_every_status_change_drops_the_cached_ocsp_responses(platform, lifecycle, owner, issued, ca, agency):
    """The cache is rows in the database (every API process sees the deletion), and only this
    certificate's rows go."""
    bystander = issue(platform, ca, agency).record

    def cache(record: CertificateRecord) -> None:
        now = utcnow()
        with platform.db.session() as session:
            session.execute(insert(OcspResponse).values(issuer=record.issuer, serial=record.serial, this_update=now,
                                                        next_update=now + timedelta(hours=1), der=b"\x30\x00"))

    def cached(record: CertificateRecord) -> int:
        with platform.db.session() as session:
            return session.scalar(select(func.count()).select_from(OcspResponse).where(
                OcspResponse.issuer == record.issuer, OcspResponse.serial == record.serial))

    cache(bystander)
    for step in ("suspend", "reinstate", "revoke"):
        cache(issued)
        assert cached(issued) == 1
        run(platform, _operation(lifecycle, step, owner), issued.serial)
        assert cached(issued) == 0, step
    assert cached(bystander) == 1
    with platform.db.session() as session:  # leave no fake response for the OCSP tests to find
        session.execute(delete(OcspResponse).where(OcspResponse.serial == bystander.serial))


# --- renew and re-key ----------------------------------------------------------------------------------


def _renewals(platform, serial: str) -> int:
    with platform.db.session() as session:
        return session.scalar(select(func.count()).select_from(Certificate).where(Certificate.replaces == serial))


def _issuer(platform, record: CertificateRecord) -> x509.Certificate:
    with platform.db.session() as session:
        return SqlCaStore(session).authority(record.issuer).certificate


def test_renew_keeps_the_key_and_subject_and_links_the_old_one(platform, ca, clock, owner, issued):
    at = clock.advance(timedelta(days=30))
    renewed = run(platform, ca.renew, issued.serial, actor=owner)
    new, old = renewed.record, issued
    assert new.replaces == old.serial and new.serial != old.serial
    assert new.certificate.public_key() == old.certificate.public_key()
    assert new.certificate.subject == old.certificate.subject and new.subject_dn == old.subject_dn
    assert (new.profile, new.issuer, new.subject_id, new.requested_by) == (
        old.profile, old.issuer, old.subject_id, old.requested_by)
    assert new.not_before == at and new.not_after > old.not_after
    assert new.status == "valid" and new.key_label is None and renewed.pkcs12 is None
    new.certificate.verify_directly_issued_by(_issuer(platform, new))
    assert stored(platform, new.serial) == new
    assert stored(platform, old.serial).status == "valid"  # the old one stays until revoked as superseded


def test_rekey_with_a_csr_certifies_the_new_key(platform, ca, owner, issued):
    csr, key = ec_csr("ignored")
    renewed = run(platform, ca.renew, issued.serial, actor=owner, csr=csr)
    assert renewed.record.replaces == issued.serial
    assert renewed.record.certificate.public_key() == key.public_key()
    assert renewed.record.certificate.public_key() != issued.certificate.public_key()
    assert renewed.record.certificate.subject == issued.certificate.subject  # from the record, not the CSR


def test_rekey_with_a_bad_csr_refused(platform, ca, owner, issued):
    with pytest.raises(InvalidCsr):
        run(platform, ca.renew, issued.serial, actor=owner, csr="not a request")
    assert _renewals(platform, issued.serial) == 0


def test_renewed_agency_seal_keeps_the_platform_key(platform, ca, agency, owner):
    old = issue(platform, ca, agency, profile_name="agency-seal").record
    new = run(platform, ca.renew, old.serial, actor=owner).record
    assert new.key_label == old.key_label is not None
    assert platform.keys.signer(new.key_label).public_key == new.certificate.public_key()


@pytest.mark.parametrize("status", ["suspended", "revoked"])
def test_renewing_a_suspended_or_revoked_certificate_refused(platform, ca, lifecycle, owner, issued, status):
    if status == "suspended":
        run(platform, lifecycle.suspend, issued.serial, actor=owner)
    else:
        run(platform, lifecycle.revoke, issued.serial, reason=RevocationReason.SUPERSEDED, actor=owner)
    with pytest.raises(InvalidStatusTransition, match=status):
        run(platform, ca.renew, issued.serial, actor=owner)
    assert _renewals(platform, issued.serial) == 0


def test_renewing_an_expired_certificate_refused(platform, ca, clock, owner, issued):
    clock.at = issued.not_after + timedelta(seconds=1)
    with pytest.raises(InvalidStatusTransition, match="expired"):
        run(platform, ca.renew, issued.serial, actor=owner)
    assert _renewals(platform, issued.serial) == 0


def test_renew_by_another_agency_refused_by_the_operator_allowed(platform, ca, other_agency, issued):
    with pytest.raises(Forbidden):
        run(platform, ca.renew, issued.serial, actor=Actor(other_agency.id))
    assert _renewals(platform, issued.serial) == 0
    renewed = run(platform, ca.renew, issued.serial, actor=OPERATOR)
    assert renewed.record.requested_by == issued.requested_by  # still the registering agency's


def test_renew_unknown_serial(platform, ca):
    with pytest.raises(NotFound):
        run(platform, ca.renew, UNKNOWN_SERIAL, actor=OPERATOR)
