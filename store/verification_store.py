"""Records of verifications by relying parties (``store.models.Verification``): one row per API call,
for the statistics per agency and the trace of who checked what."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from store import audit
from store.models import Verification

_VERIFICATIONS = Verification.__table__
_INSERT = insert(_VERIFICATIONS)
KINDS = ("pdf", "qr", "certificate", "login", "presentation")


@dataclass(frozen=True, slots=True)
class VerificationRecord:
    id: int
    at: datetime
    client_id: str
    agency_id: int
    kind: str
    subject: str | None
    file_sha256: str | None
    result: str


def record_verification(connection: Connection | Session, *, client_id: str, agency_id: int, kind: str,
                        subject: str | None, result: str, file_sha256: str | None = None,
                        at: datetime | None = None) -> None:
    """Add the record of one verification and its audit entry (in the caller's transaction)."""
    record_verifications(connection, [Verified(client_id=client_id, agency_id=agency_id, kind=kind,
                                               subject=subject, result=result, file_sha256=file_sha256, at=at)])


@dataclass(frozen=True, slots=True)
class Verified:
    """One verification to record: who (client, agency), what (kind, subject, file) and the outcome."""

    client_id: str
    agency_id: int
    kind: str
    subject: str | None
    result: str
    file_sha256: str | None = None
    at: datetime | None = None


def record_verifications(connection: Connection | Session, verified: Sequence[Verified]) -> None:
    """Add the records of several verifications and their audit entries, in the caller's transaction:
    one multi-row insert and one audit append for all (``store.group_commit`` hands in a batch)."""
    for one in verified:
        if one.kind not in KINDS:
            raise ValueError(f"kind {one.kind!r} is not one of {', '.join(KINDS)}")
    now = datetime.now(timezone.utc)
    connection.execute(_INSERT, [{
        "at": one.at or now, "client_id": one.client_id, "agency_id": one.agency_id, "kind": one.kind,
        "subject": one.subject[:200] if one.subject else one.subject, "file_sha256": one.file_sha256,
        "result": one.result[:64]} for one in verified])
    audit.record_many(connection, [
        audit.AuditEvent(f"client:{one.client_id}", f"verify.{one.kind}", one.subject,
                         {"agency_id": one.agency_id, "result": one.result[:64], "file_sha256": one.file_sha256})
        for one in verified])


def verification_counts(connection: Connection | Session, *, agency_id: int | None = None,
                        since: datetime | None = None, until: datetime | None = None) -> dict[tuple[str, str], int]:
    """How many verifications, by (kind, result): of one agency's clients or all, in [since, until)."""
    query = select(_VERIFICATIONS.c.kind, _VERIFICATIONS.c.result, func.count()).group_by(
        _VERIFICATIONS.c.kind, _VERIFICATIONS.c.result)
    if agency_id is not None:
        query = query.where(_VERIFICATIONS.c.agency_id == agency_id)
    if since is not None:
        query = query.where(_VERIFICATIONS.c.at >= since)
    if until is not None:
        query = query.where(_VERIFICATIONS.c.at < until)
    return {(kind, result): count for kind, result, count in connection.execute(query)}


def verifications(connection: Connection | Session, *, agency_id: int | None = None, kind: str | None = None,
                  subject: str | None = None, limit: int = 100) -> list[VerificationRecord]:
    """The latest verifications (newest first), filtered: the trace of who checked what."""
    query = select(_VERIFICATIONS).order_by(_VERIFICATIONS.c.id.desc()).limit(limit)
    if agency_id is not None:
        query = query.where(_VERIFICATIONS.c.agency_id == agency_id)
    if kind is not None:
        query = query.where(_VERIFICATIONS.c.kind == kind)
    if subject is not None:
        query = query.where(_VERIFICATIONS.c.subject == subject)
    return [VerificationRecord(**{f: getattr(row, f) for f in VerificationRecord.__slots__})
            for row in connection.execute(query)]
