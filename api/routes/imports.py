"""Bulk license imports over HTTP: an agency uploads a CSV or JSONL file of paper licenses, gets a job
(202 + Location) and follows it. The import runs in the background of this API process (a thread
driving a process pool, ``api/bulk.py``); its state is in the database, so any API process answers
for it. Rows already issued are skipped, so uploading the file again resumes an interrupted job."""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path as FilePath
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, FastAPI, File, Path, Query, Request, Response, UploadFile
from pydantic import BaseModel, Field

from api.bulk import BulkImport, error_text
from api.deps import platform, scoped
from api.platform import Platform
from api.pool import processes
from api.tokens import AccessToken
from eauth.errors import InvalidImportFile, NotFound
from licenses.issuance import Actor
from store import import_store
from store.agencies import agency_by_id

log = logging.getLogger("eauth.api.imports")

#: The upload path (its body limit is ``max_document_bytes``, set in ``api/http.py``).
PATH = "/api/v1/license-imports"
#: Rejected rows a job view lists (the first, by row number).
MAX_LISTED_REJECTIONS = 1000
_COPY_CHUNK = 1 << 20


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    runner = app.state.license_imports = ImportRunner()
    try:
        yield
    finally:
        await asyncio.to_thread(runner.stop)


router = APIRouter(prefix="/api/v1", tags=["license imports"], lifespan=_lifespan)
JobId = Annotated[str, Path(pattern="^[0-9a-f]{32}$", description="The import job's id.")]


class ImportRunner:
    """The imports running in this process, each in a thread of its own; on shutdown they stop
    submitting rows, finish the chunks in flight and end ``failed`` ("stopped ... run again")."""

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()

    def start(self, bulk: BulkImport, *, workers: int, upload: FilePath) -> None:
        thread = threading.Thread(target=self._run, args=(bulk, workers, upload), daemon=True,
                                  name=f"license-import-{bulk.job_id[:8]}")
        with self._lock:
            self._threads.add(thread)
        thread.start()

    def _run(self, bulk: BulkImport, workers: int, upload: FilePath) -> None:
        try:
            summary = bulk.run(workers=workers, should_stop=self.stopping.is_set)
            log.info("license import %s: %s", bulk.job_id, summary)
        except Exception as exc:  # recorded on the job by BulkImport.run; nobody to raise it to here
            log.warning("license import %s failed: %s", bulk.job_id, error_text(exc))
        finally:
            bulk.close()
            upload.unlink(missing_ok=True)
            with self._lock:
                self._threads.discard(threading.current_thread())

    def stop(self) -> None:
        self.stopping.set()
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join()


def _runner(request: Request) -> ImportRunner:
    runner = getattr(request.app.state, "license_imports", None)
    if runner is None:  # an app run without its lifespan
        runner = request.app.state.license_imports = ImportRunner()
    return runner


class RejectedRow(BaseModel):
    row: int = Field(description="CSV: the data row (1 = the first after the header); JSONL: the line.")
    reason: str


class ImportJobView(BaseModel):
    id: str
    type_code: str
    source: str = Field(description="The uploaded file's name.")
    status: str = Field(description="running, done or failed (a job whose process was killed stays running: "
                                    "upload the file again, rows already issued are skipped).")
    rows: int = Field(description="Rows handled so far.")
    issued: int
    skipped: int = Field(description="Rows issued earlier (by an earlier upload of the same rows).")
    rejected: int
    error: str | None = Field(description="Why a failed job stopped.")
    created_at: datetime
    finished_at: datetime | None
    rejected_rows: list[RejectedRow] = Field(
        description=f"The first {MAX_LISTED_REJECTIONS} rejected rows by row number, with the reason.")
    url: str


def _view(record: import_store.ImportJobRecord, rejected: list[tuple[int, str]]) -> ImportJobView:
    return ImportJobView(
        id=record.id, type_code=record.type_code, source=record.source, status=record.status, rows=record.rows,
        issued=record.issued, skipped=record.skipped, rejected=record.rejected, error=record.error,
        created_at=record.created_at, finished_at=record.finished_at,
        rejected_rows=[RejectedRow(row=row, reason=reason) for row, reason in rejected], url=f"{PATH}/{record.id}",
    )


async def _save(upload: UploadFile, directory: FilePath) -> FilePath:
    """The upload copied a MiB at a time to a new file under ``directory`` (never whole in memory)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"upload-{secrets.token_hex(8)}"
    try:
        with open(path, "wb") as out:
            while chunk := await upload.read(_COPY_CHUNK):
                await asyncio.to_thread(out.write, chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


@router.post("/license-imports", status_code=202, response_model=ImportJobView,
             summary="Import licenses in bulk (CSV or JSONL)")
async def start_import(
    request: Request,
    response: Response,
    file: Annotated[UploadFile, File(description="CSV with a header row of field names, or JSONL (one JSON "
                                                 "object per line); an optional request_key column.")],
    type_code: Annotated[str, Query(max_length=32, description="The license type, one of the agency's own.")],
    p: Annotated[Platform, Depends(platform)],
    token: Annotated[AccessToken, Depends(scoped("licenses:issue"))],
    format: Annotated[Literal["csv", "jsonl"] | None, Query(
        description="The file's format; default from its name (.csv, .jsonl, .ndjson).")] = None,
) -> ImportJobView:
    """Check the file's header against the type (400 ``invalid_import_file`` naming wrong or missing
    columns), record a job and issue one license per row in the background on the process pool:
    follow it at the Location. Each row is issued once: uploading the same rows again skips those
    already issued (idempotency key: the row's ``request_key``, else a hash of its content)."""
    with p.db.session() as session:
        agency = agency_by_id(session, token.agency_id)
    name = FilePath(file.filename or "").name
    if format is None and not name:
        raise InvalidImportFile("the upload has no file name: name it *.csv or *.jsonl, or give ?format=")
    upload = await _save(file, FilePath(p.settings.data_dir) / "imports")
    try:
        bulk = await asyncio.to_thread(
            BulkImport, p, agency=agency, type_code=type_code, path=upload, source=name or f"upload.{format}",
            format=format, actor=Actor(agency_id=agency.id, name=f"client:{token.client_id}"))
    except BaseException:
        upload.unlink(missing_ok=True)
        raise
    _runner(request).start(bulk, workers=processes(p.settings), upload=upload)
    response.headers["Location"] = f"{PATH}/{bulk.job_id}"
    with p.db.transaction() as connection:
        record = import_store.job(connection, bulk.job_id)
    return _view(record, [])


@router.get("/license-imports/{job_id}", response_model=ImportJobView, summary="An import job's progress")
async def get_import(
    job_id: JobId,
    p: Annotated[Platform, Depends(platform)],
    token: Annotated[AccessToken, Depends(scoped("licenses:issue"))],
) -> ImportJobView:
    """Status, counters (updated as the import goes) and the rejected rows with their reasons."""
    with p.db.transaction() as connection:
        record = import_store.job(connection, job_id)
        if record is None or record.agency_id != token.agency_id:
            raise NotFound(f"no import job {job_id} of this agency")
        rejected = import_store.rejections(connection, job_id, limit=MAX_LISTED_REJECTIONS)
    return _view(record, rejected)
