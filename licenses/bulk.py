"""Bulk conversion of paper licenses: rows of a CSV or JSONL file, each issued once, in parallel.

    rows = read_rows(stream, format="csv", license_type=license_type)  # header checked here
    summary = run_import(rows, submit=lambda chunk: pool.submit(job, chunk), max_in_flight=4,
                         on_progress=record)

*Reading* streams the file (a binary stream) a record at a time and never holds more than one record
(at most ``MAX_RECORD_BYTES``) plus a little lookahead. The columns are checked before the first row
is returned: a column that is not a field of the type, or a required field without a column, is an
``InvalidImportFile`` naming them, as is a header that cannot be read. A row that cannot be read
(invalid UTF-8, a malformed CSV record or JSON line, a wrong number of values) comes out as a
``BadRow`` with the reason, and the rows after it are read normally: one bad row never loses the file.

CSV: UTF-8 with or without a BOM, RFC 4180 quoting (a quoted value may span lines), a header row of
field names and optionally a ``request_key`` column. Row 1 is the first record after the header;
blank lines are not rows. JSONL (also ``.ndjson``): one JSON object per line, member names are field
names, optionally ``request_key``; the row number is the line number. The first line is the file's
header: if it is not a JSON object whose members are all fields, the file is refused.

*Idempotency*: every row has a request key, its ``request_key`` value or else ``import:`` + SHA-256 of
the type code and the canonical JSON of the row's fields. The license service returns the license
issued earlier under a key instead of issuing a second one, so re-running a file (after a crash,
say) skips the rows already issued and each row is issued exactly once, however often the file runs.

*Running* (``run_import``) cuts the rows into chunks of ``CHUNK_ROWS``, hands each chunk to
``submit`` (whatever runs ``issue_rows`` somewhere: a process pool in ``api/bulk.py``, a thread, or
in place) and keeps at most ``max_in_flight`` chunks outstanding, so memory stays flat however long
the file is. Each row ends ``issued``, ``skipped`` (issued by an earlier run) or ``rejected`` with a
reason.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from enum import StrEnum
from typing import BinaryIO

from eauth.errors import EauthError, ErrorKind, InvalidImportFile, InvalidLicenseData
from licenses.catalog import LicenseType
from licenses.issuance import MAX_REQUEST_KEY, Actor, Issuer, LicenseService

#: The optional column (CSV) or member (JSONL) with the row's own idempotency key.
REQUEST_KEY_COLUMN = "request_key"
#: Prefix of the request keys derived from a row's content.
DERIVED_KEY_PREFIX = "import:"
#: Longest record (a CSV record over all its lines, a JSONL line); a longer one is a rejected row.
MAX_RECORD_BYTES = 256 * 1024
#: Rows handed to a worker at a time (~0.5 s of rendering and signing on one core).
CHUNK_ROWS = 8
#: File formats by name, and the file name endings that select them.
FORMATS = ("csv", "jsonl")
EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}

_BOM = b"\xef\xbb\xbf"


class Outcome(StrEnum):
    """What became of a row."""

    ISSUED = "issued"
    SKIPPED = "skipped"  # issued earlier under the same request key (an earlier run of the file)
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Row:
    """One readable row: its number (see the module doc), field values by name, its request key."""

    row_number: int
    fields: dict[str, object]
    request_key: str


@dataclass(frozen=True, slots=True)
class BadRow:
    """A row that could not be read, and why (it is rejected without being issued)."""

    row_number: int
    reason: str


@dataclass(frozen=True, slots=True)
class RowOutcome:
    """The outcome of one row; ``license_id`` for issued and skipped rows, ``reason`` for rejected ones."""

    row_number: int
    outcome: Outcome
    reason: str | None = None
    license_id: str | None = None


@dataclass(frozen=True, slots=True)
class ImportSummary:
    """Counts so far (or in the end) of an import; ``complete`` False if it was stopped early."""

    rows: int = 0
    issued: int = 0
    skipped: int = 0
    rejected: int = 0
    complete: bool = True


def format_of(name: str) -> str:
    """The format a file name's extension selects (``.csv``, ``.jsonl``, ``.ndjson``); InvalidImportFile
    for any other."""
    lowered = name.lower()
    for extension, format in EXTENSIONS.items():
        if lowered.endswith(extension):
            return format
    raise InvalidImportFile(f"{name}: cannot tell the format from the file name; name it *.csv, *.jsonl or "
                            "*.ndjson (one JSON object per line)")


def derived_request_key(type_code: str, fields: dict[str, object]) -> str:
    """``import:`` + SHA-256 of the type code and the fields as canonical JSON (keys sorted, UTF-8,
    no whitespace): the same row of the same type always gets the same key."""
    canonical = json.dumps(fields, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return DERIVED_KEY_PREFIX + hashlib.sha256(type_code.encode() + b"\n" + canonical.encode()).hexdigest()


def read_rows(stream: BinaryIO, *, format: str, license_type: LicenseType) -> Iterator[Row | BadRow]:
    """The rows of an import file of ``license_type``, read from a binary ``stream`` as they are
    iterated. The header is read and checked now (InvalidImportFile); see the module doc."""
    if format == "csv":
        return _csv_rows(stream, license_type)
    if format == "jsonl":
        return _jsonl_rows(stream, license_type)
    raise InvalidImportFile(f"unknown import format {format!r}; use one of {', '.join(FORMATS)}")


def count_records(stream: BinaryIO) -> int:
    """The lines of a file, counted a MiB at a time: a quick estimate of its rows for a progress bar
    (a CSV header, blank lines and values spanning lines make it a little high)."""
    count, last = 0, b"\n"
    while chunk := stream.read(1 << 20):
        count += chunk.count(b"\n")
        last = chunk[-1:]
    return count + (last != b"\n")


# -- physical lines and CSV records ----------------------------------------------------------------


def _lines(stream: BinaryIO) -> Iterator[tuple[int, bytes | None]]:
    """(line number, line with its ending) for each line; ``None`` for a line longer than
    ``MAX_RECORD_BYTES``, which is read past without being kept."""
    number = 0
    while True:
        line = stream.readline(MAX_RECORD_BYTES + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_RECORD_BYTES and not line.endswith(b"\n"):
            while (rest := stream.readline(1 << 16)) and not rest.endswith(b"\n"):
                pass
            yield number, None
            continue
        yield number, line


@dataclass(frozen=True, slots=True)
class _Record:
    first_line: int
    last_line: int
    data: bytes | None  # None: unreadable, see problem
    problem: str | None = None

    @property
    def lines(self) -> str:
        if self.first_line == self.last_line:
            return f"line {self.first_line}"
        return f"lines {self.first_line}-{self.last_line}"


def _csv_records(stream: BinaryIO, spans: Callable[[bytes], bool] = lambda data: True) -> Iterator[_Record]:
    """The file cut into CSV records (a quoted value may hold line breaks), blank lines left out.

    A record ends at a line break outside quotes; quotes inside a quoted value are doubled, so that is
    where the count of quote characters so far is even. A quote that never closes (within
    ``MAX_RECORD_BYTES`` or the file), or a record over several lines that ``spans`` finds is no record
    (two stray quotes on different lines, say), makes only its first line a bad record: reading goes
    on at the line after it, so one stray quote costs one row, not the rest of the file."""
    source = _lines(stream)
    pushed_back: deque[tuple[int, bytes | None]] = deque()

    def pull() -> tuple[int, bytes | None] | None:
        return pushed_back.popleft() if pushed_back else next(source, None)

    while (item := pull()) is not None:
        number, line = item
        if line is None:
            yield _Record(number, number, None, f"longer than {MAX_RECORD_BYTES // 1024} KiB")
            continue
        if not line.strip():
            continue
        quotes = line.count(b'"')
        if quotes % 2 == 0:
            yield _Record(number, number, line)
            continue
        taken, size = [item], len(line)
        while True:
            following = pull()
            if following is None or following[1] is None or size + len(following[1]) > MAX_RECORD_BYTES:
                if following is not None:
                    pushed_back.appendleft(following)
                pushed_back.extendleft(reversed(taken[1:]))
                yield _Record(number, number, None, "a quoted value is never closed (unbalanced '\"')")
                break
            taken.append(following)
            size += len(following[1])
            quotes += following[1].count(b'"')
            if quotes % 2 == 0:
                data = b"".join(part for _, part in taken)
                if spans(data):
                    yield _Record(number, following[0], data)
                else:
                    pushed_back.extendleft(reversed(taken[1:]))
                    yield _Record(number, number, None, "a quoted value is never closed (unbalanced '\"')")
                break


def _decode(data: bytes, *, first: bool) -> str:
    """UTF-8 text of a record (a leading BOM dropped on the first one); UnicodeDecodeError if not UTF-8."""
    if first and data.startswith(_BOM):
        data = data[len(_BOM):]
    return data.decode("utf-8")


def _not_utf8(exc: UnicodeDecodeError) -> str:
    bad = exc.object[exc.start:exc.end]
    return f"not UTF-8 text: invalid byte {bad[:1].hex(' ')} at byte {exc.start + 1} of the row"


def _parse_csv(text: str) -> list[str]:
    """The values of one CSV record (strict RFC 4180 quoting); csv.Error if malformed."""
    reader = csv.reader([text], strict=True)
    values = next(reader, [])
    if next(reader, None) is not None:  # pragma: no cover - a record is cut at line breaks outside quotes
        raise csv.Error("more than one record")
    return values


def _check_columns(names: Sequence[str], license_type: LicenseType, where: str, *, noun: str = "column",
                   required: bool = True) -> None:
    """InvalidImportFile unless every column is a field of the type (or request_key) and, if
    ``required``, every required field has a column."""
    specs = license_type.field_specs
    unknown = [name for name in names if name not in specs and name != REQUEST_KEY_COLUMN]
    missing = [spec.name for spec in license_type.fields if spec.required and spec.name not in names] if required else []
    problems = []
    if unknown:
        problems.append(f"{noun if len(unknown) == 1 else noun + 's'} {', '.join(map(repr, unknown))} "
                        f"{'is not a field' if len(unknown) == 1 else 'are not fields'} of license type "
                        f"{license_type.code} ({license_type.name_zh})")
    if missing:
        problems.append(f"required {'field' if len(missing) == 1 else 'fields'} {', '.join(missing)} "
                        f"{'has' if len(missing) == 1 else 'have'} no column")
    if problems:
        raise InvalidImportFile(f"{where}: {'; '.join(problems)}; the fields are {', '.join(specs)}",
                                unknown_columns=unknown, missing_columns=missing)


def _csv_rows(stream: BinaryIO, license_type: LicenseType) -> Iterator[Row | BadRow]:
    columns: list[str] = []

    def spans(data: bytes) -> bool:  # a record over several lines must at least be a readable row
        if not columns:
            return True  # the header
        try:
            return len(_parse_csv(_decode(data, first=False))) == len(columns)
        except (UnicodeDecodeError, csv.Error):
            return False

    records = _csv_records(stream, spans)
    header = next(records, None)
    if header is None:
        raise InvalidImportFile("the CSV file is empty: its first line must name the columns")
    try:
        if header.data is None:
            raise ValueError(header.problem)
        names = [name.strip() for name in _parse_csv(_decode(header.data, first=True))]
    except UnicodeDecodeError as exc:
        raise InvalidImportFile(f"the CSV header ({header.lines}) is {_not_utf8(exc).replace(' of the row', '')}") from None
    except (csv.Error, ValueError) as exc:
        raise InvalidImportFile(f"the CSV header ({header.lines}) cannot be read: {exc}") from None
    if any(not name for name in names):
        raise InvalidImportFile(f"the CSV header has an empty column name (column {names.index('') + 1})")
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise InvalidImportFile(f"the CSV header names {'column' if len(twice) == 1 else 'columns'} "
                                f"{', '.join(map(repr, twice))} twice")
    _check_columns(names, license_type, "CSV header")
    columns.extend(names)
    return _csv_body(records, columns, license_type)


def _csv_body(records: Iterator[_Record], columns: list[str], license_type: LicenseType) -> Iterator[Row | BadRow]:
    number = 0
    for record in records:
        number += 1
        if record.data is None:
            yield BadRow(number, f"{record.lines}: {record.problem}")
            continue
        try:
            values = _parse_csv(_decode(record.data, first=False))
        except UnicodeDecodeError as exc:
            yield BadRow(number, f"{record.lines}: {_not_utf8(exc)}")
            continue
        except csv.Error as exc:
            yield BadRow(number, f"{record.lines}: malformed CSV: {exc}")
            continue
        if not any(value.strip() for value in values):
            number -= 1  # only separators (a spreadsheet's empty row): not a row
            continue
        if len(values) != len(columns):
            yield BadRow(number, f"{record.lines}: {len(values)} values, but the header has {len(columns)} columns")
            continue
        cells = dict(zip(columns, values))
        key = cells.pop(REQUEST_KEY_COLUMN, "").strip()
        fields: dict[str, object] = {name: value for name, value in cells.items() if value.strip()}
        yield _row(number, fields, key or None, license_type, record.lines)


def _row(number: int, fields: dict[str, object], key: str | None, license_type: LicenseType,
         where: str) -> Row | BadRow:
    if key is not None and len(key) > MAX_REQUEST_KEY:
        return BadRow(number, f"{where}: request_key is longer than {MAX_REQUEST_KEY} characters")
    return Row(number, fields, key or derived_request_key(license_type.code, fields))


# -- JSONL -----------------------------------------------------------------------------------------


def _json_object(line: bytes, number: int, *, first: bool) -> tuple[dict | None, str | None]:
    """The object on a JSONL line, or why there is none."""
    where = f"line {number}"
    try:
        obj = json.loads(_decode(line, first=first))
    except UnicodeDecodeError as exc:
        return None, f"{where}: {_not_utf8(exc)}"
    except json.JSONDecodeError as exc:
        return None, f"{where}: not JSON: {exc.msg} at column {exc.colno}"
    except (ValueError, RecursionError) as exc:  # an integer too long, nesting too deep
        return None, f"{where}: not usable JSON: {exc}"
    if not isinstance(obj, dict):
        return None, f"{where}: a JSON object {{...}} is expected, not {type(obj).__name__}"
    try:  # a lone surrogate (\udc80) in a string cannot be stored or hashed as UTF-8
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return None, f"{where}: a string holds an unpaired surrogate escape (\\ud800-\\udfff)"
    return obj, None


def _jsonl_rows(stream: BinaryIO, license_type: LicenseType) -> Iterator[Row | BadRow]:
    lines = ((number, line) for number, line in _lines(stream) if line is None or line.strip())
    first = next(lines, None)
    if first is None:
        raise InvalidImportFile("the JSONL file is empty")
    number, line = first
    if line is None:
        raise InvalidImportFile(f"line {number} of the JSONL file is longer than {MAX_RECORD_BYTES // 1024} KiB")
    obj, problem = _json_object(line, number, first=True)
    if obj is None:
        raise InvalidImportFile(f"not a JSONL file (one JSON object per line): {problem}")
    _check_columns(list(obj), license_type, f"line {number}", noun="member", required=False)
    return _jsonl_body(first, lines, license_type)


def _jsonl_body(first: tuple[int, bytes], lines: Iterator[tuple[int, bytes | None]],
                license_type: LicenseType) -> Iterator[Row | BadRow]:
    for index, (number, line) in enumerate(_chain(first, lines)):
        if line is None:
            yield BadRow(number, f"line {number}: longer than {MAX_RECORD_BYTES // 1024} KiB")
            continue
        obj, problem = _json_object(line, number, first=index == 0)
        if obj is None:
            yield BadRow(number, problem)
            continue
        key = obj.pop(REQUEST_KEY_COLUMN, None)
        if key is not None and not isinstance(key, str):
            yield BadRow(number, f"line {number}: request_key must be a string, not {type(key).__name__}")
            continue
        key = key.strip() if key else None
        fields = {name: value for name, value in obj.items()
                  if value is not None and not (isinstance(value, str) and not value.strip())}
        yield _row(number, fields, key, license_type, f"line {number}")


def _chain(first, rest):
    yield first
    yield from rest


# -- issuing ---------------------------------------------------------------------------------------

#: Error kinds that stop the import (the platform cannot issue anything now) instead of rejecting a row.
ABORTING_KINDS = frozenset({ErrorKind.UNAVAILABLE, ErrorKind.CONFIGURATION, ErrorKind.UNAUTHENTICATED})


def rejection_reason(exc: EauthError) -> str:
    """The reason a row is rejected for: every problem of invalid license data, else the error's detail."""
    if isinstance(exc, InvalidLicenseData) and exc.extra.get("errors"):
        return "; ".join(problem["detail"] for problem in exc.extra["errors"])
    return exc.detail if exc.code == "invalid_input" else f"{exc.detail} ({exc.code})"


def issue_rows(service: LicenseService, issuer: Issuer, *, type_code: str, actor: Actor,
               rows: Iterable[Row]) -> list[RowOutcome]:
    """Issue each row (or find it issued under its request key): one outcome per row. A row the data or
    state refuses is rejected with the reason; an error that would refuse every row (database or key
    store unavailable, misconfiguration) is raised and stops the import."""
    outcomes = []
    for row in rows:
        try:
            issued = service.issue(issuer, type_code=type_code, fields=row.fields, actor=actor,
                                   request_key=row.request_key)
        except EauthError as exc:
            if exc.kind in ABORTING_KINDS:
                raise
            outcomes.append(RowOutcome(row.row_number, Outcome.REJECTED, rejection_reason(exc)))
            continue
        except (ValueError, TypeError, UnicodeError) as exc:  # a value the renderer cannot take, say
            outcomes.append(RowOutcome(row.row_number, Outcome.REJECTED,
                                       f"cannot be issued: {type(exc).__name__}: {exc}"))
            continue
        outcome = Outcome.ISSUED if issued.created else Outcome.SKIPPED
        outcomes.append(RowOutcome(row.row_number, outcome, license_id=issued.license.id))
    return outcomes


def chunks(rows: Iterable[Row | BadRow], size: int = CHUNK_ROWS) -> Iterator[tuple[list[Row], list[BadRow]]]:
    """The rows in chunks of up to ``size`` readable rows (with the unreadable ones met on the way)."""
    good: list[Row] = []
    bad: list[BadRow] = []
    for row in rows:
        if isinstance(row, BadRow):
            bad.append(row)
            if len(bad) >= size:
                yield good, bad
                good, bad = [], []
            continue
        good.append(row)
        if len(good) >= size:
            yield good, bad
            good, bad = [], []
    if good or bad:
        yield good, bad


class _Counter:
    def __init__(self) -> None:
        self.rows = self.issued = self.skipped = self.rejected = 0

    def add(self, outcomes: Sequence[RowOutcome]) -> None:
        for outcome in outcomes:
            self.rows += 1
            if outcome.outcome is Outcome.ISSUED:
                self.issued += 1
            elif outcome.outcome is Outcome.SKIPPED:
                self.skipped += 1
            else:
                self.rejected += 1

    def summary(self, *, complete: bool = True) -> ImportSummary:
        return ImportSummary(self.rows, self.issued, self.skipped, self.rejected, complete)


def run_import(
    rows: Iterable[Row | BadRow],
    *,
    submit: Callable[[list[Row]], Future[list[RowOutcome]]],
    max_in_flight: int,
    on_progress: Callable[[Sequence[RowOutcome], ImportSummary], None] | None = None,
    chunk_size: int = CHUNK_ROWS,
    should_stop: Callable[[], bool] = lambda: False,
) -> ImportSummary:
    """Issue ``rows`` through ``submit`` (which runs ``issue_rows`` on a chunk and returns a future of its
    outcomes), at most ``max_in_flight`` chunks at a time; ``on_progress(outcomes, summary so far)``
    after each chunk (in the caller's thread), unreadable rows reported as rejected without being
    submitted. When ``should_stop()`` turns true no more chunks are submitted, those in flight are
    waited for, and the summary says ``complete=False``. A failed chunk (its future's exception)
    cancels what is pending and is raised."""
    counter = _Counter()
    pending: set[Future[list[RowOutcome]]] = set()

    def report(outcomes: Sequence[RowOutcome]) -> None:
        counter.add(outcomes)
        if on_progress is not None:
            on_progress(outcomes, counter.summary())

    def settle(block_until: int) -> None:
        while len(pending) > block_until:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                pending.discard(future)
                report(future.result())

    stopped = False
    try:
        for good, bad in chunks(rows, chunk_size):
            if bad:
                report([RowOutcome(row.row_number, Outcome.REJECTED, row.reason) for row in bad])
            if should_stop():
                stopped = True
                break
            if good:
                settle(max_in_flight - 1)
                pending.add(submit(good))
        settle(0)
    except BaseException:
        for future in pending:
            future.cancel()
        raise
    return counter.summary(complete=not stopped)
