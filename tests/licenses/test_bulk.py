"""Reading bulk import files (CSV, JSONL) as a stream, row by row, and the runner that issues them a
few chunks at a time; issuance itself is faked here (end to end: tests/api/test_import.py)."""

from __future__ import annotations

import io
import json
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from types import SimpleNamespace

import pytest

from eauth.errors import InvalidImportFile, InvalidLicenseData, KeyStoreError, RequestKeyReused
from licenses.bulk import (
    MAX_RECORD_BYTES,
    BadRow,
    Outcome,
    Row,
    RowOutcome,
    count_records,
    derived_request_key,
    format_of,
    issue_rows,
    read_rows,
    run_import,
)
from licenses.catalog import demo_types
from licenses.issuance import Actor, Issuer
from tests.helpers import citizen_id

BUSINESS, DRIVING = demo_types("test-ra")
COLUMNS = "name,sex,nationality,birth_date,citizen_id,vehicle_class,first_issued_on"


def driver_line(n: int, **changes: str) -> str:
    values = {"name": f"驾驶员{n}", "sex": "男", "nationality": "中国", "birth_date": "1990-01-02",
              "citizen_id": citizen_id(n), "vehicle_class": "C1", "first_issued_on": "2012-03-04"} | changes
    return ",".join(values.values())


def csv_rows(data: bytes, license_type=DRIVING) -> list[Row | BadRow]:
    return list(read_rows(io.BytesIO(data), format="csv", license_type=license_type))


def jsonl_rows(data: bytes, license_type=DRIVING) -> list[Row | BadRow]:
    return list(read_rows(io.BytesIO(data), format="jsonl", license_type=license_type))


# -- CSV -------------------------------------------------------------------------------------------


def test_csv_rows_with_bom_crlf_and_blank_lines():
    data = ("\ufeff" + COLUMNS + "\r\n" + driver_line(1) + "\r\n\r\n" + driver_line(2) + "\r\n").encode()
    rows = csv_rows(data)
    assert [r.row_number for r in rows] == [1, 2]
    assert all(isinstance(r, Row) for r in rows)
    assert rows[0].fields == {"name": "驾驶员1", "sex": "男", "nationality": "中国", "birth_date": "1990-01-02",
                              "citizen_id": citizen_id(1), "vehicle_class": "C1", "first_issued_on": "2012-03-04"}
    # Without the BOM and with LF endings: the same rows and keys.
    plain = csv_rows((COLUMNS + "\n" + driver_line(1) + "\n" + driver_line(2) + "\n").encode())
    assert plain == rows


def test_csv_quoted_values_span_lines_and_empty_cells_are_left_out():
    header = "name,credit_code,entity_type,legal_representative,registered_capital,established_on,valid_until," \
             "address,business_scope"
    line = '"深圳市""示例""有限公司",91440300MA5ABCDE1X,有限责任公司,王五,,2015-06-01,,"广东省深圳市,南山区","软件开发\n信息技术咨询"'
    (row,) = csv_rows(f"{header}\n{line}\n".encode(), BUSINESS)
    assert row.fields["name"] == '深圳市"示例"有限公司'
    assert row.fields["address"] == "广东省深圳市,南山区"
    assert row.fields["business_scope"] == "软件开发\n信息技术咨询"
    assert "registered_capital" not in row.fields and "valid_until" not in row.fields


def test_optional_columns_may_be_missing():
    header = "name,credit_code,entity_type,legal_representative,established_on,address,business_scope"
    (row,) = csv_rows(f"{header}\nA,91440300MA5ABCDE1X,有限责任公司,王五,2015-06-01,深圳,软件\n".encode(), BUSINESS)
    assert isinstance(row, Row)


def test_request_keys_derived_from_type_and_content_or_given():
    data = (COLUMNS + "\n" + driver_line(1) + "\n" + driver_line(2) + "\n" + driver_line(1) + "\n").encode()
    first, second, again = csv_rows(data)
    assert first.request_key == derived_request_key(DRIVING.code, first.fields)
    assert first.request_key.startswith("import:") and len(first.request_key) == len("import:") + 64
    assert first.request_key != second.request_key
    assert again.request_key == first.request_key  # the same paper record twice is one license
    assert derived_request_key(BUSINESS.code, first.fields) != first.request_key
    # Key order in the file does not matter, the values do.
    assert derived_request_key(DRIVING.code, dict(reversed(list(first.fields.items())))) == first.request_key
    given = csv_rows((COLUMNS + ",request_key\n" + driver_line(1) + ", crm-4711 \n" + driver_line(2) + ",\n").encode())
    assert given[0].request_key == "crm-4711"
    assert "request_key" not in given[0].fields
    assert given[1].request_key == second.request_key  # empty: derived


def test_broken_utf8_rejects_only_its_row():
    data = (COLUMNS + "\n").encode() + driver_line(1).encode() + b"\n" \
        + "驾驶员".encode()[:-1] + b"\xff," + driver_line(2).split(",", 1)[1].encode() + b"\n" \
        + driver_line(3).encode() + b"\n"
    rows = csv_rows(data)
    assert [type(r) for r in rows] == [Row, BadRow, Row]
    assert rows[1].row_number == 2
    assert "line 3" in rows[1].reason and "not UTF-8" in rows[1].reason
    assert rows[2].fields["name"] == "驾驶员3"


def test_malformed_records_reject_only_their_row():
    data = "\n".join([
        COLUMNS,
        driver_line(1),
        '"驾驶员2"x,' + driver_line(2).split(",", 1)[1],  # text after a closing quote
        driver_line(3, name='"驾驶员3'),  # a quote never closed: only this line is lost
        driver_line(4),
        "驾驶员5,男",  # too few values
        driver_line(6) + ",extra",  # too many
        ",,,,,,",  # a spreadsheet's empty row: not a row
        driver_line(7),
    ]).encode() + b"\n"
    rows = csv_rows(data)
    assert [(r.row_number, type(r).__name__) for r in rows] == [
        (1, "Row"), (2, "BadRow"), (3, "BadRow"), (4, "Row"), (5, "BadRow"), (6, "BadRow"), (7, "Row")]
    assert "malformed CSV" in rows[1].reason and "line 3" in rows[1].reason
    assert "never closed" in rows[2].reason and "line 4" in rows[2].reason
    assert "2 values, but the header has 7 columns" in rows[4].reason
    assert "8 values" in rows[5].reason
    assert rows[6].fields["name"] == "驾驶员7"


def test_two_stray_quotes_lose_only_their_rows():
    data = "\n".join([COLUMNS, driver_line(1, name='张"三'), driver_line(2), driver_line(3, name='李"四'),
                      driver_line(4)]).encode() + b"\n"
    rows = csv_rows(data)
    assert [type(r).__name__ for r in rows] == ["BadRow", "Row", "BadRow", "Row"]


def test_overlong_line_is_a_rejected_row():
    data = (COLUMNS + "\n" + "x" * (MAX_RECORD_BYTES + 10) + "\n" + driver_line(2) + "\n").encode()
    rows = csv_rows(data)
    assert isinstance(rows[0], BadRow) and "longer than" in rows[0].reason
    assert isinstance(rows[1], Row) and rows[1].row_number == 2


@pytest.mark.parametrize(("header", "needles", "unknown", "missing"), [
    (COLUMNS + ",licence_no", ["'licence_no'", "not a field"], ["licence_no"], []),
    ("name,sex,nationality,birth_date,vehicle_class,first_issued_on", ["citizen_id", "no column"], [], ["citizen_id"]),
    ("姓名,性别", ["'姓名', '性别'", "name, sex"], ["姓名", "性别"], ["name", "sex", "nationality", "birth_date",
                                                                   "citizen_id", "vehicle_class", "first_issued_on"]),
])
def test_wrong_columns_refuse_the_file_before_any_row(header, needles, unknown, missing):
    with pytest.raises(InvalidImportFile) as caught:
        read_rows(io.BytesIO(f"{header}\n{driver_line(1)}\n".encode()), format="csv", license_type=DRIVING)
    for needle in needles:
        assert needle in caught.value.detail
    assert caught.value.extra == {"unknown_columns": unknown, "missing_columns": missing}


@pytest.mark.parametrize(("data", "needle"), [
    (b"", "empty"),
    (b"\n\n", "empty"),
    (b"name,na\xffme\n", "not UTF-8"),
    (b'name,"sex\n', "never closed"),
    (b"name,,sex\n", "empty column name"),
    (b"name,sex,name\n", "'name' twice"),
])
def test_unreadable_header(data, needle):
    with pytest.raises(InvalidImportFile, match=needle):
        read_rows(io.BytesIO(data), format="csv", license_type=DRIVING)


class CountingStream(io.RawIOBase):
    """A generated file of ``rows`` rows that counts the bytes handed out."""

    def __init__(self, rows: int) -> None:
        self.lines = (f"{COLUMNS}\n" if i < 0 else f"{driver_line(i % 5000)}\n" for i in range(-1, rows))
        self.pending = b""
        self.handed_out = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while len(self.pending) < len(buffer):
            line = next(self.lines, None)
            if line is None:
                break
            self.pending += line.encode()
        n = min(len(buffer), len(self.pending))
        buffer[:n], self.pending = self.pending[:n], self.pending[n:]
        self.handed_out += n
        return n


def test_reading_streams_the_file():
    raw = CountingStream(100_000)  # ~9 MB
    rows = read_rows(io.BufferedReader(raw), format="csv", license_type=DRIVING)
    first = [next(rows) for _ in range(10)]
    assert [r.row_number for r in first] == list(range(1, 11))
    assert raw.handed_out < 64 * 1024  # a buffer's worth, not the file


def test_format_from_the_file_name():
    assert format_of("stock.csv") == "csv"
    assert format_of("/data/STOCK.JSONL") == "jsonl"
    assert format_of("stock.ndjson") == "jsonl"
    with pytest.raises(InvalidImportFile, match=r"\*\.csv"):
        format_of("stock.xlsx")
    with pytest.raises(InvalidImportFile):
        read_rows(io.BytesIO(b"{}"), format="xml", license_type=DRIVING)


def test_count_records():
    assert count_records(io.BytesIO(b"")) == 0
    assert count_records(io.BytesIO(b"a\nb\n")) == 2
    assert count_records(io.BytesIO(b"a\nb")) == 2


# -- JSONL -----------------------------------------------------------------------------------------


def driver_object(n: int, **changes) -> dict:
    return dict(zip(COLUMNS.split(","), driver_line(n).split(","))) | changes


def test_jsonl_rows_numbered_by_line():
    lines = [json.dumps(driver_object(1), ensure_ascii=False), "",
             json.dumps(driver_object(2, request_key="crm-2", vehicle_class=None), ensure_ascii=False),
             json.dumps(driver_object(3, unknown="x"), ensure_ascii=False)]
    data = b"\xef\xbb\xbf" + "\n".join(lines).encode()  # a BOM, no newline at the end
    first, second, third = jsonl_rows(data)
    assert (first.row_number, second.row_number, third.row_number) == (1, 3, 4)
    assert first.fields == driver_object(1)
    assert first.request_key == derived_request_key(DRIVING.code, first.fields)
    assert second.request_key == "crm-2" and "vehicle_class" not in second.fields  # null: no value
    assert third.fields["unknown"] == "x"  # after line 1, the license data check rejects it (with the reason)


def test_jsonl_bad_lines_rejected_with_reasons():
    good = json.dumps(driver_object(1), ensure_ascii=False).encode()
    data = b"\n".join([
        good,
        b'{"name": "\xff"}',
        b'{"name": ',
        b"[1, 2]",
        b'{"name": "\\udc80"}',
        b'{"name": "x", "request_key": 5}',
        good.replace(b"1990", b"1991"),
    ])
    rows = jsonl_rows(data)
    assert [(r.row_number, type(r).__name__) for r in rows] == [
        (1, "Row"), (2, "BadRow"), (3, "BadRow"), (4, "BadRow"), (5, "BadRow"), (6, "BadRow"), (7, "Row")]
    reasons = [r.reason for r in rows if isinstance(r, BadRow)]
    assert "line 2: not UTF-8" in reasons[0]
    assert "line 3: not JSON" in reasons[1]
    assert "JSON object" in reasons[2] and "list" in reasons[2]
    assert "surrogate" in reasons[3]
    assert "request_key must be a string" in reasons[4]


@pytest.mark.parametrize(("data", "needle"), [
    (b"", "empty"),
    (b"name,sex\n", "not a JSONL file"),
    (b'"just a string"\n', "not a JSONL file"),
    (b'{"licence_no": "1"}\n', "member 'licence_no' is not a field"),
])
def test_jsonl_first_line_is_the_header(data, needle):
    with pytest.raises(InvalidImportFile, match=needle):
        read_rows(io.BytesIO(data), format="jsonl", license_type=DRIVING)


# -- issuing and running ---------------------------------------------------------------------------


class FakeService:
    """Issues a license per new request key; the same key again finds it (created False)."""

    def __init__(self, refuse: dict[str, Exception] | None = None) -> None:
        self.keys: dict[str, str] = {}
        self.refuse = refuse or {}
        self.lock = threading.Lock()

    def issue(self, issuer, *, type_code, fields, actor, request_key):
        if fields.get("name") in self.refuse:
            raise self.refuse[fields["name"]]
        with self.lock:
            created = request_key not in self.keys
            license_id = self.keys.setdefault(request_key, f"id-{len(self.keys)}")
        return SimpleNamespace(created=created, license=SimpleNamespace(id=license_id))


ISSUER = Issuer(agency_id=1, name="测试", credit_code="114403000000019001")
ACTOR = Actor(agency_id=1, name="test")


def rows(n: int) -> list[Row]:
    return [Row(i, {"name": f"n{i}"}, f"k{i}") for i in range(1, n + 1)]


def test_issue_rows_outcomes():
    invalid = InvalidLicenseData("x", field="citizen_id", errors=[
        {"field": "citizen_id", "detail": "citizen_id (公民身份号码): check character should be 5"},
        {"field": "sex", "detail": "sex (性别) is required"}])
    service = FakeService({"n2": invalid, "n3": RequestKeyReused("request key 'k3' was used for a different "
                                                                 "license request", field="request_key")})
    service.keys["k4"] = "earlier"
    outcomes = issue_rows(service, ISSUER, type_code=DRIVING.code, actor=ACTOR, rows=rows(4))
    assert [o.outcome for o in outcomes] == [Outcome.ISSUED, Outcome.REJECTED, Outcome.REJECTED, Outcome.SKIPPED]
    assert outcomes[1].reason == "citizen_id (公民身份号码): check character should be 5; sex (性别) is required"
    assert "request_key_reused" in outcomes[2].reason
    assert outcomes[3].license_id == "earlier"


def test_issue_rows_stops_on_an_error_that_would_refuse_every_row():
    service = FakeService({"n2": KeyStoreError("the key store is unreachable")})
    with pytest.raises(KeyStoreError):
        issue_rows(service, ISSUER, type_code=DRIVING.code, actor=ACTOR, rows=rows(3))


def test_run_import_bounded_in_flight_and_counted():
    service = FakeService()
    service.keys["k5"] = "earlier"
    in_flight, most = 0, 0
    lock = threading.Lock()

    def job(chunk):
        nonlocal in_flight, most
        with lock:
            in_flight += 1
            most = max(most, in_flight)
        try:
            return issue_rows(service, ISSUER, type_code=DRIVING.code, actor=ACTOR, rows=chunk)
        finally:
            with lock:
                in_flight -= 1

    submitted: list[int] = []
    progress: list[tuple[int, int]] = []
    source = rows(100) + [BadRow(101, "line 102: not UTF-8")]
    with ThreadPoolExecutor(4) as pool:
        def submit(chunk):
            submitted.append(len(chunk))
            return pool.submit(job, chunk)

        summary = run_import(iter(source), submit=submit, max_in_flight=3, chunk_size=8,
                             on_progress=lambda outcomes, s: progress.append((len(outcomes), s.rows)))
    assert (summary.rows, summary.issued, summary.skipped, summary.rejected, summary.complete) == (101, 99, 1, 1, True)
    assert max(submitted) == 8 and sum(submitted) == 100  # the bad row is never submitted
    assert most <= 3
    assert progress[-1][1] == 101 and sum(n for n, _ in progress) == 101


def test_run_import_stops_when_asked_and_raises_a_failed_chunk():
    done = []

    def submit(chunk):
        future: Future = Future()
        done.extend(chunk)
        future.set_result([RowOutcome(r.row_number, Outcome.ISSUED) for r in chunk])
        return future

    summary = run_import(iter(rows(40)), submit=submit, max_in_flight=2, chunk_size=8,
                         should_stop=lambda: len(done) >= 16)
    assert not summary.complete and summary.rows == 16

    def failing(chunk):
        future: Future = Future()
        future.set_exception(KeyStoreError("gone"))
        return future

    with pytest.raises(KeyStoreError):
        run_import(iter(rows(10)), submit=failing, max_in_flight=2, chunk_size=4)
