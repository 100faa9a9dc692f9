"""Bulk import (paper → electronic licenses) on the API's process pool, recorded as an import job.

    with BulkImport(platform, agency=agency, type_code=code, path=Path("stock.csv"), actor=actor) as bulk:
        summary = bulk.run(workers=2, on_progress=print)

Making a ``BulkImport`` checks everything that would refuse every row before any row is issued: the
type exists and belongs to the agency, the agency has a credit code and a seal, the file's format
(from its name) and header (``licenses.bulk.read_rows``); then it records a ``running`` job.
``run`` reads the file as a stream and issues its rows in chunks on a spawned process pool
(``api.pool.executor``: every worker opens its own platform and issues with
``license_service(worker_platform())``), a few chunks in flight at a time, so memory stays flat for
any file size. The job's counters are written as it goes (at most every ``PROGRESS_INTERVAL``) with
the rejected rows (row number, reason), and it ends ``done`` or ``failed`` (with the error).

A process killed outright (SIGKILL, power cut) leaves its job ``running``; every license it issued is
complete (record and PDF), and running the same file again, as a new job, skips those rows: each
row's request key (``licenses.bulk``) makes its issuance idempotent.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import BinaryIO

from api.licenses import issuer_of, license_service
from api.platform import Platform
from api.pool import executor, worker_platform
from eauth.errors import EauthError, InvalidInput, SigningUnavailable
from licenses.bulk import (
    ImportSummary,
    Outcome,
    Row,
    RowOutcome,
    count_records,
    format_of,
    issue_rows,
    read_rows,
    run_import,
)
from licenses.issuance import Actor
from store import import_store
from store.agencies import AgencyRecord
from store.license_store import SqlLicenseStore

#: Seconds between writes of a running job's counters (and its rejected rows so far).
PROGRESS_INTERVAL = 0.5
#: Rejected rows kept before they are written, whatever the interval.
MAX_BUFFERED_REJECTIONS = 500
#: Chunks in flight per worker: one being issued, one waiting, so no worker idles between chunks.
CHUNKS_PER_WORKER = 2


def import_chunk_job(agency: AgencyRecord, type_code: str, actor: Actor, rows: list[Row]) -> list[RowOutcome]:
    """Process-pool job: issue a chunk of rows in this worker's platform (plain, picklable values)."""
    return issue_rows(license_service(worker_platform()), issuer_of(agency), type_code=type_code, actor=actor,
                      rows=rows)


def default_workers() -> int:
    """One worker per CPU."""
    return os.cpu_count() or 1


class _JobRecorder:
    """Writes a job's progress: counters at most every PROGRESS_INTERVAL, rejections batched."""

    def __init__(self, platform: Platform, job_id: str, actor: Actor) -> None:
        self.platform = platform
        self.job_id = job_id
        self.actor = actor
        self.summary = ImportSummary()
        self.rejections: list[tuple[int, str]] = []
        self.written_at = time.monotonic()

    def __call__(self, outcomes: Sequence[RowOutcome], summary: ImportSummary) -> None:
        self.summary = summary
        self.rejections.extend((o.row_number, o.reason or "") for o in outcomes if o.outcome is Outcome.REJECTED)
        if (time.monotonic() - self.written_at >= PROGRESS_INTERVAL
                or len(self.rejections) >= MAX_BUFFERED_REJECTIONS):
            self.flush()

    def flush(self) -> None:
        s = self.summary
        with self.platform.db.transaction() as connection:
            import_store.record_progress(connection, self.job_id, rows=s.rows, issued=s.issued, skipped=s.skipped,
                                         rejected=s.rejected, rejections=self.rejections)
        self.rejections = []
        self.written_at = time.monotonic()

    def finish(self, status: str, error: str | None = None) -> None:
        with self.platform.db.transaction() as connection:
            import_store.finish_job(connection, self.job_id, status=status, actor=self.actor.name, error=error)


def error_text(exc: BaseException) -> str:
    """How a job's failure is recorded."""
    if isinstance(exc, EauthError):
        return f"{exc.code}: {exc.detail}"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted; run the import again to go on (rows already issued are skipped)"
    return f"{type(exc).__name__}: {exc}"


class BulkImport:
    """One import of one file by one agency (see the module doc). Use as a context manager, or
    ``close()`` it: it holds the file open."""

    def __init__(self, platform: Platform, *, agency: AgencyRecord, type_code: str, path: Path, actor: Actor,
                 source: str | None = None, format: str | None = None) -> None:
        self.platform = platform
        self.agency = agency
        self.actor = actor
        self.path = Path(path)
        self.source = source or str(path)
        self.format = format or format_of(self.source)
        service = license_service(platform)
        with platform.db.transaction() as connection:
            self.license_type = service.license_type(SqlLicenseStore(connection), type_code, agency_id=agency.id)
        if agency.credit_code is None:
            raise InvalidInput(f"agency {agency.code} has no unified social credit code: licenses name their "
                               "issuer by it")
        service.seal_for(agency.id)  # NoSealKey now, not once per row
        self.stream: BinaryIO = open(self.path, "rb")
        try:
            self.rows = read_rows(self.stream, format=self.format, license_type=self.license_type)
            self.job_id = uuid.uuid4().hex
            with platform.db.transaction() as connection:
                import_store.add_job(connection, job_id=self.job_id, agency_id=agency.id,
                                     type_code=self.license_type.code, source=self.source, actor=actor.name)
        except BaseException:
            self.stream.close()
            raise

    def __enter__(self) -> BulkImport:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self.stream.close()

    def estimated_rows(self) -> int:
        """The file's line count less its header: the progress bar's total (a quick streaming count)."""
        with open(self.path, "rb") as stream:
            lines = count_records(stream)
        return max(lines - (self.format == "csv"), 0)

    def run(self, *, workers: int | None = None,
            on_progress: Callable[[ImportSummary], None] | None = None,
            should_stop: Callable[[], bool] = lambda: False) -> ImportSummary:
        """Issue every row on a pool of ``workers`` processes (default one per CPU); the job ends
        ``done``, or ``failed`` if stopped early (``should_stop``) or on an error (raised)."""
        workers = workers or default_workers()
        recorder = _JobRecorder(self.platform, self.job_id, self.actor)

        def progress(outcomes: Sequence[RowOutcome], summary: ImportSummary) -> None:
            recorder(outcomes, summary)
            if on_progress is not None:
                on_progress(summary)

        type_code = self.license_type.code
        try:
            with executor(self.platform.settings, workers) as pool:
                try:
                    summary = run_import(
                        self.rows, max_in_flight=CHUNKS_PER_WORKER * workers, on_progress=progress,
                        should_stop=should_stop,
                        submit=lambda chunk: pool.submit(import_chunk_job, self.agency, type_code, self.actor, chunk),
                    )
                except BaseException:
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
        except BrokenProcessPool:
            error = SigningUnavailable("an import worker process stopped; run the import again "
                                       "(rows already issued are skipped)")
            self._fail(recorder, error)
            raise error from None
        except BaseException as exc:
            self._fail(recorder, exc)
            raise
        recorder.flush()
        if summary.complete:
            recorder.finish("done")
        else:
            recorder.finish("failed", f"stopped after {summary.rows} rows; run the import again to go on "
                                      "(rows already issued are skipped)")
        return summary

    @staticmethod
    def _fail(recorder: _JobRecorder, exc: BaseException) -> None:
        try:
            recorder.flush()
            recorder.finish("failed", error_text(exc))
        except EauthError:  # the database itself is gone: the job stays running, like a crash
            pass

    def summary(self) -> import_store.ImportJobRecord:
        with self.platform.db.transaction() as connection:
            return import_store.job(connection, self.job_id)
