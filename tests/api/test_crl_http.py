"""CRLs over HTTP at the URL in every certificate's CRL distribution point: DER with its media type,
caching headers and conditional requests, made on demand when missing or due; unknown CAs are 404
problem+json; the schedule that refreshes CRLs while the app runs."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from email.utils import format_datetime, parsedate_to_datetime
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
from cryptography import x509
from sqlalchemy import delete, update

from api import schedule
from api.schedule import crl_publisher
from ca.authority import utcnow
from ca.lifecycle import CertificateLifecycle, RevocationReason
from ca.profiles import SubjectKind
from ca.records import Actor
from ca.subjects import SubjectIdentity
from store.ca_store import SqlCaStore
from store.crl_store import crl_transactions
from store.models import Crl
from tests.helpers import assert_problem
from tests.helpers import citizen_id, ec_csr

MEDIA_TYPE = "application/pkix-crl"


def _publish(platform, issuer: str):
    return crl_publisher(platform).publish(crl_transactions(platform.db), issuer)


def _stored(platform, issuer: str) -> Crl | None:
    with platform.db.session() as session:
        return session.get(Crl, issuer)


def test_crl_served_as_der_with_caching_headers(api, platform):
    stored = _publish(platform, "citizen")
    response = api.get("/crl/citizen.crl")
    assert response.status_code == 200
    assert response.headers["content-type"] == MEDIA_TYPE
    assert response.content == stored.der
    crl = x509.load_der_x509_crl(response.content)
    assert response.headers["etag"] == f'"{stored.number}"'
    assert parsedate_to_datetime(response.headers["last-modified"]) == crl.last_update_utc
    directives = dict(d.strip().partition("=")[::2] for d in response.headers["cache-control"].split(","))
    assert "public" in directives
    # Until the CRL is due (nextUpdate − margin), give or take the seconds the test takes.
    expected = (stored.next_update - timedelta(minutes=platform.settings.crl_refresh_margin_minutes) - utcnow())
    assert abs(int(directives["max-age"]) - expected.total_seconds()) <= 5
    assert int(directives["max-age"]) > 0


def test_conditional_requests(api, platform):
    stored = _publish(platform, "enterprise")
    etag = f'"{stored.number}"'
    for header in (etag, f"W/{etag}", f'"0", {etag}', "*"):
        response = api.get("/crl/enterprise.crl", headers={"If-None-Match": header})
        assert response.status_code == 304, header
        assert response.content == b""
        assert response.headers["etag"] == etag and "max-age=" in response.headers["cache-control"]
    assert api.get("/crl/enterprise.crl", headers={"If-None-Match": f'"{stored.number - 1}"'}).status_code == 200
    since = format_datetime(stored.this_update, usegmt=True)
    assert api.get("/crl/enterprise.crl", headers={"If-Modified-Since": since}).status_code == 304
    earlier = format_datetime(stored.this_update - timedelta(seconds=1), usegmt=True)
    assert api.get("/crl/enterprise.crl", headers={"If-Modified-Since": earlier}).status_code == 200
    assert api.get("/crl/enterprise.crl", headers={"If-Modified-Since": "not a date"}).status_code == 200
    # If-None-Match decides when both are sent (RFC 9110 §13.2.2).
    both = {"If-None-Match": '"0"', "If-Modified-Since": since}
    assert api.get("/crl/enterprise.crl", headers=both).status_code == 200
    newer = _publish(platform, "enterprise")
    response = api.get("/crl/enterprise.crl", headers={"If-None-Match": etag})
    assert response.status_code == 200 and response.headers["etag"] == f'"{newer.number}"'


@pytest.mark.parametrize("name", ["nope", "ocsp-citizen", "tsa", "x" * 100])
def test_unknown_ca_is_404(api, name):
    assert_problem(api.get(f"/crl/{name}.crl"), 404, "not_found")


def test_crl_distribution_point_of_a_certificate_serves_its_crl(api, platform, agency):
    with platform.db.session() as session:
        record = platform.ca.issue(SqlCaStore(session), profile_name="citizen", requested_by=agency.id,
                                   csr=ec_csr()[0], subject=SubjectIdentity(SubjectKind.PERSON, "赵六", citizen_id())).record
        CertificateLifecycle().revoke(SqlCaStore(session), record.serial, reason=RevocationReason.AFFILIATION_CHANGED,
                                      actor=Actor(None))
    points = record.certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    url = points[0].full_name[0].value
    assert url == "http://127.0.0.1:8000/crl/citizen.crl"
    _publish(platform, "citizen")  # a status change shows in the next CRL, not at once
    crl = x509.load_der_x509_crl(api.get(urlsplit(url).path).content)
    with platform.db.session() as session:
        citizen_ca = SqlCaStore(session).authority("citizen").certificate
    assert crl.is_signature_valid(citizen_ca.public_key())
    entry = crl.get_revoked_certificate_by_serial_number(int(record.serial, 16))
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason is x509.ReasonFlags.affiliation_changed
    # The issuing CAs' own CRL DP names the root's CRL, served the same way.
    ca_points = citizen_ca.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    root_path = urlsplit(ca_points[0].full_name[0].value).path
    assert root_path == "/crl/root.crl"
    assert api.get(root_path).headers["content-type"] == MEDIA_TYPE


def test_made_on_demand_when_missing_or_due(api, platform):
    with platform.db.session() as session:
        session.execute(delete(Crl).where(Crl.issuer == "seal"))
    response = api.get("/crl/seal.crl")
    assert response.status_code == 200
    made = _stored(platform, "seal")
    assert response.headers["etag"] == f'"{made.number}"' and response.content == made.der
    # Due: within the refresh margin of nextUpdate (here: at it).
    with platform.db.session() as session:
        session.execute(update(Crl).where(Crl.issuer == "seal").values(next_update=utcnow()))
    response = api.get("/crl/seal.crl", headers={"If-None-Match": f'"{made.number}"'})
    assert response.status_code == 200 and response.headers["etag"] == f'"{made.number + 1}"'
    assert api.get("/crl/seal.crl").headers["etag"] == f'"{made.number + 1}"'  # fresh now: served as stored


def test_schedule_refreshes_due_crls_in_the_background(platform):
    """The lifespan task: checks at once, then every interval; stops cleanly."""
    for name in ("root", "citizen", "enterprise", "seal"):
        _publish(platform, name)
    before, root = _publish(platform, "citizen"), _stored(platform, "root").number
    with platform.db.session() as session:
        session.execute(update(Crl).where(Crl.issuer == "citizen").values(next_update=utcnow()))
    settings = platform.settings.model_copy(update={"crl_refresh_interval_seconds": 3600})
    stub = SimpleNamespace(settings=settings, keys=platform.keys, db=platform.db)

    async def serve_briefly() -> None:
        async with schedule.background(stub):
            for _ in range(200):
                await asyncio.sleep(0.05)
                if _stored(platform, "citizen").number > before.number:
                    return

    asyncio.run(serve_briefly())
    assert _stored(platform, "citizen").number == before.number + 1
    assert _stored(platform, "root").number == root  # not due: left alone


def test_schedule_off_with_interval_zero(platform):
    settings = platform.settings.model_copy(update={"crl_refresh_interval_seconds": 0})
    stub = SimpleNamespace(settings=settings, keys=platform.keys, db=platform.db)
    before = _publish(platform, "seal")
    with platform.db.session() as session:
        session.execute(update(Crl).where(Crl.issuer == "seal").values(next_update=utcnow()))

    async def serve_briefly() -> None:
        async with schedule.background(stub):
            await asyncio.sleep(0.3)

    asyncio.run(serve_briefly())
    assert _stored(platform, "seal").number == before.number
    _publish(platform, "seal")  # leave it fresh for the others
