"""The audit trail and the statistics for the operator (and each agency's own statistics):
``GET /api/v1/audit``, ``GET /api/v1/audit/verify``, ``GET /api/v1/stats``."""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from api.audit import report_json, verify
from api.deps import authenticated, platform, scoped
from api.platform import Platform
from api.tokens import AccessToken
from eauth.errors import Forbidden, InsufficientScope, InvalidInput
from store import audit
from store.agencies import agency_by_code, agency_by_id
from store.stats import license_stats

router = APIRouter(prefix="/api/v1", tags=["audit"])
MAX_LIMIT = 1000


def _instant(value: str | None, name: str) -> datetime | None:
    """An RFC 3339 date-time (with a zone) or a date (its UTC midnight)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value) if "T" in value or " " in value else \
            datetime.combine(date.fromisoformat(value), time(), timezone.utc)
    except ValueError:
        raise InvalidInput(f"{name} {value!r} is not a date (2026-11-01) or an RFC 3339 date-time",
                           field=name) from None
    if parsed.utcoffset() is None:
        raise InvalidInput(f"{name} needs a time zone (e.g. 2026-11-01T00:00:00Z)", field=name)
    return parsed


@router.get("/audit", summary="Audit trail entries, filtered (operator)")
def list_entries(
    p: Annotated[Platform, Depends(platform)],
    _: Annotated[AccessToken, Depends(scoped("audit:read"))],
    since: Annotated[str | None, Query(description="From this date or RFC 3339 time (inclusive).")] = None,
    until: Annotated[str | None, Query(description="Before this date or RFC 3339 time.")] = None,
    actor: Annotated[str | None, Query(max_length=200, description="e.g. client:lic-1-ab12cd34, operator")] = None,
    action: Annotated[str | None, Query(max_length=64, description="e.g. license.revoke; ending in '.' "
                                        "(license.) every action so prefixed.")] = None,
    subject: Annotated[str | None, Query(max_length=300, description="e.g. a license identifier, a serial.")] = None,
    after: Annotated[int, Query(ge=0, description="Only entries after this seq (paging: next_after).")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> dict:
    """Entries in seq order; ``next_after`` is the seq to page on from, null after the last page."""
    with p.db.transaction() as connection:
        found = audit.entries(connection, since=_instant(since, "since"), until=_instant(until, "until"),
                              actor=actor, action=action, subject=subject, after=after, limit=limit)
    return {"entries": [{"seq": e.seq, "at": e.at.isoformat().replace("+00:00", "Z"), "actor": e.actor,
                         "action": e.action, "subject": e.subject, "details": e.details, "prev_hash": e.prev_hash,
                         "hash": e.hash} for e in found],
            "next_after": found[-1].seq if len(found) == limit else None}


@router.get("/audit/verify", summary="Verify the whole audit chain (operator)")
def verify_entries(
    p: Annotated[Platform, Depends(platform)],
    _: Annotated[AccessToken, Depends(scoped("audit:read"))],
) -> dict:
    """The walk of ``eauth audit verify``: every hash, link and checkpoint signature; ``intact`` false
    names the first problem (its seq, kind and what is wrong). Takes time on a long chain."""
    return report_json(verify(p))


@router.get("/stats", summary="Licenses issued, verified and revoked per agency, license type and day")
def stats(
    p: Annotated[Platform, Depends(platform)],
    caller: Annotated[AccessToken, Depends(authenticated)],
    since: Annotated[str | None, Query(description="From this date or RFC 3339 time (inclusive).")] = None,
    until: Annotated[str | None, Query(description="Before this date or RFC 3339 time.")] = None,
    agency: Annotated[str | None, Query(max_length=64, description="Issuing agency code.")] = None,
    license_type: Annotated[str | None, Query(max_length=32, description="License type code.")] = None,
) -> dict:
    """Counts per UTC day, issuing agency and license type (verified: by relying parties through the
    API, of a PDF, QR or presentation naming the license). With ``stats:read`` (the operator) any
    agency; with ``licenses:read`` only the caller's own agency, which is then the default."""
    if "stats:read" not in caller.scopes and "licenses:read" not in caller.scopes:
        raise InsufficientScope("statistics need the scope 'stats:read' (or 'licenses:read' for one's own agency)",
                                required="stats:read")
    with p.db.session() as session:
        agency_id = agency_by_code(session, agency).id if agency is not None else None
        if "stats:read" not in caller.scopes:
            if agency_id not in (None, caller.agency_id):
                raise Forbidden("an agency client sees its own agency's statistics only (stats:read sees all)")
            agency_id = caller.agency_id
        rows = license_stats(session, since=_instant(since, "since"), until=_instant(until, "until"),
                             agency_id=agency_id, license_type=license_type)
        shown = agency_by_id(session, agency_id).code if agency_id is not None else None
    totals = {name: sum(getattr(r, name) for r in rows) for name in ("issued", "verified", "revoked")}
    return {"agency": shown, "license_type": license_type, "since": since, "until": until, "totals": totals,
            "rows": [{"day": r.day.isoformat(), "agency": r.agency_code, "license_type": r.license_type,
                      "issued": r.issued, "verified": r.verified, "revoked": r.revoked} for r in rows]}
