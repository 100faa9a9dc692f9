"""The rules of authorized use (licenses.grants): purpose and validity bounds, when a grant is live, who
may access under it; and the service over the real store with the clock handed in."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from api.licenses import issuer_of, license_service
from eauth.errors import GrantNotFound, GrantNotLive, GrantPurposeMismatch, InvalidInput, LicenseStatusConflict, NotFound
from licenses.grants import (
    MAX_PURPOSE,
    MAX_VALIDITY,
    Accessor,
    GrantRecord,
    Grantor,
    GrantService,
    check_access,
    check_validity,
    clean_purpose,
)
from licenses.issuance import Actor
from store.agencies import add_agency
from store.grant_store import SqlGrantStore, grant_transactions
from tests.conftest import require_seal_font
from tests.helpers import citizen_id
from tests.licenses.test_issuance import driver

NOW = datetime(2026, 6, 1, 8, 0, tzinfo=timezone.utc)
GRANT = GrantRecord(id="g" * 32, license_id="l" * 32, holder_kind="person", holder_index="i" * 64, agency_id=7,
                    purpose="入学资格审核", valid_until=NOW + timedelta(days=10), created_at=NOW)
X = Accessor(agency_id=7, client_id="x-1")


def test_purpose_is_trimmed_normalized_and_bounded():
    assert clean_purpose("  入学资格审核\n") == "入学资格审核"
    assert clean_purpose("Cafe\u0301") == "Caf\u00e9"  # NFC: the same purpose typed two ways compares equal
    assert len(clean_purpose("审" * MAX_PURPOSE)) == MAX_PURPOSE
    for bad in ("", "   ", "审" * (MAX_PURPOSE + 1), "a\tb", "a\u0000b", "\ud800"):
        with pytest.raises(InvalidInput) as caught:
            clean_purpose(bad)
        assert caught.value.extra["field"] == "purpose"


def test_validity_is_in_the_future_and_at_most_a_year():
    assert check_validity(NOW + MAX_VALIDITY, NOW) == NOW + MAX_VALIDITY
    for bad in (NOW, NOW - timedelta(seconds=1), NOW + MAX_VALIDITY + timedelta(seconds=1),
                (NOW + timedelta(days=1)).replace(tzinfo=None)):
        with pytest.raises(InvalidInput):
            check_validity(bad, NOW)


def test_state_by_time_and_withdrawal():
    assert GRANT.state(NOW) == "live"
    assert GRANT.state(GRANT.valid_until - timedelta(microseconds=1)) == "live"
    assert GRANT.state(GRANT.valid_until) == "expired"
    assert replace(GRANT, withdrawn_at=NOW).state(NOW) == "withdrawn"


def test_access_needs_the_agencys_live_grant_and_its_purpose():
    assert check_access(GRANT, X, purpose=" 入学资格审核 ", now=NOW) is GRANT
    with pytest.raises(GrantNotFound):
        check_access(None, X, purpose=GRANT.purpose, now=NOW)
    with pytest.raises(GrantNotFound):
        check_access(GRANT, Accessor(agency_id=8, client_id="y-1"), purpose=GRANT.purpose, now=NOW)
    with pytest.raises(GrantNotLive) as caught:
        check_access(GRANT, X, purpose=GRANT.purpose, now=GRANT.valid_until)
    assert caught.value.extra["reason"] == "expired"
    with pytest.raises(GrantNotLive) as caught:
        check_access(replace(GRANT, withdrawn_at=NOW), X, purpose=GRANT.purpose, now=NOW)
    assert caught.value.extra["reason"] == "withdrawn"
    with pytest.raises(GrantPurposeMismatch):
        check_access(GRANT, X, purpose="市场营销", now=NOW)


@pytest.fixture(scope="module")
def granted(platform, licensing):
    """A license, its holder as grantor, a relying agency, and the service."""
    require_seal_font()
    number = citizen_id()
    service = license_service(platform)
    issued = service.issue(issuer_of(licensing.agency), type_code=licensing.driving.code, fields=driver(number),
                           actor=Actor(agency_id=licensing.agency.id, name="test"))
    with platform.db.session() as session:
        agency = add_agency(session, code=f"school-{issued.license.serial}", name="某市第一中学", credit_code=None)
    grantor = Grantor(holder_kind="person", holder_index=service.holder_index("person", number), actor="holder:t")
    return issued, grantor, agency, GrantService(transaction=grant_transactions(platform.db))


def test_service_serves_only_while_live_with_the_clock_handed_in(platform, granted):
    issued, grantor, agency, service = granted
    now = datetime.now(timezone.utc)
    grant, _ = service.create(grantor, license_identifier=issued.license.identifier, agency_code=agency.code,
                              purpose="入学资格审核", valid_until=now + timedelta(days=30), now=now)
    accessor = Accessor(agency_id=agency.id, client_id="school-1")
    license, version, _ = service.access(grant.id, accessor, purpose="入学资格审核", what="pdf",
                                         now=now + timedelta(days=29))
    assert (license.id, version.version) == (issued.license.id, 1)
    with pytest.raises(GrantNotLive):
        service.access(grant.id, accessor, purpose="入学资格审核", what="license", now=now + timedelta(days=30))
    with platform.db.transaction() as connection:
        assert [a.what for a in SqlGrantStore(connection).accesses(grant.id)] == ["pdf"]


def test_service_refuses_others_licenses_and_grants(granted):
    issued, grantor, agency, service = granted
    now = datetime.now(timezone.utc)
    stranger = replace(grantor, holder_index="0" * 64)
    with pytest.raises(NotFound):
        service.create(stranger, license_identifier=issued.license.identifier, agency_code=agency.code,
                       purpose="p", valid_until=now + timedelta(days=1), now=now)
    grant, _ = service.create(grantor, license_identifier=issued.license.identifier, agency_code=agency.code,
                              purpose="p", valid_until=now + timedelta(days=1), now=now)
    with pytest.raises(GrantNotFound):
        service.withdraw(stranger, grant.id, now=now)
    withdrawn = service.withdraw(grantor, grant.id, now=now)
    assert service.withdraw(grantor, grant.id, now=now + timedelta(hours=1)).withdrawn_at == withdrawn.withdrawn_at


def test_concurrent_withdrawals_withdraw_once(granted, platform):
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy import func, select

    from store.models import AuditEntry

    issued, grantor, agency, service = granted
    now = datetime.now(timezone.utc)
    grant, _ = service.create(grantor, license_identifier=issued.license.identifier, agency_code=agency.code,
                              purpose="p", valid_until=now + timedelta(days=1), now=now)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda n: service.withdraw(grantor, grant.id, now=now + timedelta(seconds=n)),
                                range(8)))
    assert len({r.withdrawn_at for r in results}) == 1  # the first withdrawal's time, whoever won
    with platform.db.transaction() as connection:
        entries = connection.execute(select(func.count()).where(
            AuditEntry.subject == grant.id, AuditEntry.action == "grant.withdraw")).scalar_one()
    assert entries == 1


def test_a_license_expired_by_date_cannot_be_granted(granted):
    issued, grantor, agency, service = granted
    assert issued.license.valid_until is not None  # the driving licence expires by its validity rule
    after = datetime.combine(issued.license.valid_until + timedelta(days=1), datetime.min.time(), timezone.utc)
    with pytest.raises(LicenseStatusConflict):
        service.create(grantor, license_identifier=issued.license.identifier, agency_code=agency.code,
                       purpose="p", valid_until=after + timedelta(days=1), now=after)
