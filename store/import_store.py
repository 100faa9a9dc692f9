"""Bulk import jobs (``import_jobs``) and their rejected rows (``import_rejections``) over SQLAlchemy
Core, each function within the caller's transaction (``Database.transaction()``).

The process running an import is the only writer of its job: it sets the counters to absolute values
(so a repeated write changes nothing) and adds the rejected rows as they come.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from store import audit
from store.models import ImportJob, ImportRejection

_JOBS = ImportJob.__table__
_REJECTIONS = ImportRejection.__table__
#: Longest ``source`` (file name) kept.
MAX_SOURCE = 300
#: Job statuses.
STATUSES = ("running", "done", "failed")


@dataclass(frozen=True, slots=True)
class ImportJobRecord:
    id: str
    agency_id: int
    type_code: str
    source: str
    status: str
    rows: int
    issued: int
    skipped: int
    rejected: int
    error: str | None
    created_at: datetime
    finished_at: datetime | None


def add_job(connection: Connection, *, job_id: str, agency_id: int, type_code: str, source: str,
            actor: str) -> ImportJobRecord:
    """A new job, ``running`` with every counter at 0 (audited as started by ``actor``)."""
    record = ImportJobRecord(id=job_id, agency_id=agency_id, type_code=type_code, source=source[-MAX_SOURCE:],
                             status="running", rows=0, issued=0, skipped=0, rejected=0, error=None,
                             created_at=datetime.now(timezone.utc), finished_at=None)
    connection.execute(insert(_JOBS).values(
        id=record.id, agency_id=agency_id, type_code=type_code, source=record.source, status=record.status,
        rows=0, issued=0, skipped=0, rejected=0, error=None, created_at=record.created_at, finished_at=None))
    audit.record(connection, actor=actor, action="import.start", subject=f"import:{job_id}",
                 details={"agency_id": agency_id, "type_code": type_code, "source": record.source})
    return record


def record_progress(connection: Connection, job_id: str, *, rows: int, issued: int, skipped: int, rejected: int,
                    rejections: Iterable[tuple[int, str]] = ()) -> None:
    """Set the job's counters and add rejected rows as (row number, reason)."""
    connection.execute(update(_JOBS).where(_JOBS.c.id == job_id).values(
        rows=rows, issued=issued, skipped=skipped, rejected=rejected))
    values = [{"job_id": job_id, "row_number": row, "reason": reason} for row, reason in rejections]
    if values:
        connection.execute(insert(_REJECTIONS), values)


def finish_job(connection: Connection, job_id: str, *, status: str, actor: str, error: str | None = None) -> None:
    """Mark the job ``done`` or ``failed`` (with why), audited with its counts."""
    if status not in ("done", "failed"):
        raise ValueError(f"a job finishes done or failed, not {status!r}")
    connection.execute(update(_JOBS).where(_JOBS.c.id == job_id).values(
        status=status, error=error, finished_at=datetime.now(timezone.utc)))
    counts = connection.execute(select(_JOBS.c.rows, _JOBS.c.issued, _JOBS.c.skipped, _JOBS.c.rejected)
                                .where(_JOBS.c.id == job_id)).first()
    audit.record(connection, actor=actor, action=f"import.{status}", subject=f"import:{job_id}",
                 details={"error": error, **(counts._asdict() if counts is not None else {})})


def job(connection: Connection, job_id: str) -> ImportJobRecord | None:
    row = connection.execute(select(_JOBS).where(_JOBS.c.id == job_id)).first()
    return ImportJobRecord(**row._mapping) if row is not None else None


def rejections(connection: Connection, job_id: str, *, limit: int | None = None) -> list[tuple[int, str]]:
    """The job's rejected rows (row number, reason) in row order, the first ``limit`` of them."""
    query = (select(_REJECTIONS.c.row_number, _REJECTIONS.c.reason).where(_REJECTIONS.c.job_id == job_id)
             .order_by(_REJECTIONS.c.row_number))
    if limit is not None:
        query = query.limit(limit)
    return [(row.row_number, row.reason) for row in connection.execute(query)]


def iter_rejections(connection: Connection, job_id: str, *, batch: int = 1000) -> Iterator[tuple[int, str]]:
    """Every rejected row of the job in row order, read ``batch`` rows at a time (a report of any size)."""
    after = 0
    while True:
        page = connection.execute(
            select(_REJECTIONS.c.row_number, _REJECTIONS.c.reason)
            .where(_REJECTIONS.c.job_id == job_id, _REJECTIONS.c.row_number > after)
            .order_by(_REJECTIONS.c.row_number).limit(batch)).all()
        yield from ((row.row_number, row.reason) for row in page)
        if len(page) < batch:
            return
        after = page[-1].row_number


def rejection_count(connection: Connection, job_id: str) -> int:
    return connection.scalar(select(func.count()).select_from(_REJECTIONS).where(_REJECTIONS.c.job_id == job_id))
