"""Every verification by a relying party through the API leaves one record (who, what, result,
when); the public QR page leaves none; the counts for the statistics; migration 0004 up and down."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import func, select

from store.models import Verification
from store.verification_store import record_verification, verification_counts, verifications
from tests.conftest import fresh_database, require_seal_font, token_for
from tests.licenses.test_issuance import driver
from tests.pdf_helpers import one_page_pdf


@pytest.fixture(scope="module")
def relying(api, platform, licensing):
    """A verifying client of its own: its headers and its identity as the API sees it."""
    token = token_for(api, platform, licensing.agency.code, {"verify"})
    return {"Authorization": f"Bearer {token}"}, platform.tokens.verify(token)


@pytest.fixture(scope="module")
def license(api, licensing) -> tuple[dict, bytes]:
    require_seal_font()
    response = api.post("/api/v1/licenses", json={"type_code": licensing.driving.code, "fields": driver()},
                        headers=licensing.headers)
    assert response.status_code == 201, response.text
    issued = response.json()
    return issued, api.get(issued["pdf_url"], headers=licensing.headers).content


def _records(platform, client_id: str) -> list:
    with platform.db.transaction() as connection:
        return connection.execute(select(Verification.__table__).where(Verification.client_id == client_id)
                                  .order_by(Verification.id)).all()


def _one_new(platform, client_id: str, before: int):
    rows = _records(platform, client_id)
    assert len(rows) == before + 1, rows
    return rows[-1]


def test_pdf_verification_is_recorded(api, platform, relying, license, licensing):
    headers, caller = relying
    issued, pdf = license
    before = len(_records(platform, caller.client_id))
    start = datetime.now(timezone.utc) - timedelta(seconds=1)
    response = api.post("/api/v1/verify/pdf", files={"file": ("l.pdf", pdf, "application/pdf")}, headers=headers)
    assert response.status_code == 200
    row = _one_new(platform, caller.client_id, before)
    assert (row.kind, row.subject, row.result) == ("pdf", issued["identifier"], "TOTAL_PASSED")
    assert row.agency_id == licensing.agency.id and row.file_sha256 == response.json()["sha256"]
    assert start <= row.at.replace(tzinfo=row.at.tzinfo or timezone.utc) <= datetime.now(timezone.utc)

    plain = one_page_pdf()
    response = api.post("/api/v1/verify/pdf", files={"file": ("p.pdf", plain, "application/pdf")}, headers=headers)
    row = _one_new(platform, caller.client_id, before + 1)
    assert (row.kind, row.result) == ("pdf", response.json()["indication"])
    assert row.subject == row.file_sha256 == response.json()["sha256"]  # no license: the file's hash


def test_qr_verification_is_recorded_but_not_the_public_page(api, platform, relying, license):
    headers, caller = relying
    issued, _ = license
    token = issued["current"]["qr_url"].rsplit("/", 1)[1]
    before = len(_records(platform, caller.client_id))
    assert api.get(f"/api/v1/verify/qr/{token}", headers=headers).json()["status"] == "valid"
    row = _one_new(platform, caller.client_id, before)
    assert (row.kind, row.subject, row.result) == ("qr", issued["identifier"], "valid")
    api.get("/api/v1/verify/qr/garbage", headers=headers)
    row = _one_new(platform, caller.client_id, before + 1)
    assert (row.kind, row.subject, row.result) == ("qr", None, "invalid")
    with platform.db.transaction() as connection:
        total = connection.scalar(select(func.count()).select_from(Verification.__table__))
    assert api.get(f"/v/{token}").status_code == 200
    with platform.db.transaction() as connection:
        assert connection.scalar(select(func.count()).select_from(Verification.__table__)) == total


def test_certificate_verification_is_recorded(api, platform, relying):
    headers, caller = relying
    with platform.db.session() as session:
        from store.ca_store import SqlCaStore

        tsa = SqlCaStore(session).authority("tsa").certificate
    before = len(_records(platform, caller.client_id))
    response = api.post("/api/v1/verify/certificate", headers=headers,
                        json={"certificate": tsa.public_bytes(Encoding.PEM).decode()})
    assert response.status_code == 200
    row = _one_new(platform, caller.client_id, before)
    assert (row.kind, row.subject, row.result) == ("certificate", f"{tsa.serial_number:x}", "TOTAL_PASSED")


def test_refused_requests_leave_no_record(api, platform, relying):
    headers, caller = relying
    before = len(_records(platform, caller.client_id))
    assert api.post("/api/v1/verify/certificate", headers=headers, json={"certificate": "x"}).status_code == 400
    assert api.post("/api/v1/verify/pdf", headers=headers,
                    files={"file": ("x.pdf", b"not a pdf", "application/pdf")}).status_code == 400
    assert len(_records(platform, caller.client_id)) == before


def test_counts_and_trace(platform, agency):
    now = datetime.now(timezone.utc)
    with platform.db.transaction() as connection:
        for result in ("TOTAL_PASSED", "TOTAL_PASSED", "TOTAL_FAILED"):
            record_verification(connection, client_id="counting", agency_id=agency.id, kind="certificate",
                                subject="abc", result=result, at=now)
        record_verification(connection, client_id="counting", agency_id=agency.id, kind="qr", subject=None,
                            result="valid", at=now - timedelta(days=2))
        with pytest.raises(ValueError):
            record_verification(connection, client_id="x", agency_id=agency.id, kind="telepathy", subject=None,
                                result="?")
    with platform.db.transaction() as connection:
        counts = verification_counts(connection, agency_id=agency.id, since=now - timedelta(days=1))
        assert counts[("certificate", "TOTAL_PASSED")] >= 2 and counts[("certificate", "TOTAL_FAILED")] >= 1
        assert ("qr", "valid") not in counts
        assert verification_counts(connection, agency_id=agency.id)[("qr", "valid")] >= 1
        trace = verifications(connection, agency_id=agency.id, kind="certificate", subject="abc", limit=10)
    assert [r.result for r in trace[:3]] == ["TOTAL_FAILED", "TOTAL_PASSED", "TOTAL_PASSED"]
    assert trace[0].client_id == "counting" and trace[0].at.tzinfo is not None


def test_migration_0004_down_and_up(tmp_path):
    from alembic import command
    from sqlalchemy import inspect

    from store.db import Database

    databases = fresh_database(tmp_path)
    url = next(databases)
    try:
        db = Database(url)
        try:
            db.migrate()
            assert "verifications" in inspect(db.engine).get_table_names()
            config = db._alembic_config()
            command.downgrade(config, "0003")
            assert "verifications" not in inspect(db.engine).get_table_names()
            command.upgrade(config, "0004")
            assert "0004" in db.revisions()
            indexes = {i["name"] for i in inspect(db.engine).get_indexes("verifications")}
            assert {"ix_verifications_agency_at", "ix_verifications_subject"} <= indexes
        finally:
            db.dispose()
    finally:
        databases.close()
