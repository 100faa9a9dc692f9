"""Bulk import: licenses per second of ``api.bulk.BulkImport`` on a process pool of one worker per core
(a CSV of N driving licences, each row validated, rendered, signed B-LT and stored), next to the same
number of pool processes calling ``LicenseService.issue`` in a loop with no import machinery around it
(what this machine's cores do in parallel), and one process alone, all measured in the same run; and
the peak memory of the whole process tree (the parent reading the file + the workers) against 1 GB.

    python -m bench.import_bench            # N = $EAUTH_BENCH_IMPORT_ROWS or 600 (~20-30 s on 2 cores)
    python -m bench.import_bench 100000     # the 100,000-row run (~25 min on 2 idle cores at ~65/s)

Memory: the sum of the resident sets of the parent and its live workers, sampled from /proc every
0.2 s (Linux), and as a bound the parent's peak (RUSAGE_SELF) + workers × the largest worker's peak
(RUSAGE_CHILDREN, after the pool has exited).
"""

from __future__ import annotations

import csv
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

from api.bulk import BulkImport
from api.licenses import issuer_of, license_service
from api.platform import Platform, initialize_platform
from api.pool import executor, worker_platform
from bench.setup import licensing_agency
from ca.identifiers import validate_citizen_id
from eauth.errors import InvalidIdentifier
from eauth.settings import Settings
from licenses.issuance import Actor

CREDIT_CODE = "114403000000019001"  # the demo agency's code (shared/testdata)
DEFAULT_ROWS = 600
TARGET_BYTES = 1 << 30
FIELDS = ("name", "sex", "nationality", "birth_date", "citizen_id", "vehicle_class", "first_issued_on")


def _citizen_id(n: int) -> str:
    """A valid GB 11643 number, distinct for each n below ~10 million."""
    birth = date(1950, 1, 1) + timedelta(days=n // 500)
    body = f"110101{birth:%Y%m%d}{n % 500 * 2:03d}"
    for check in "0123456789X":
        try:
            return validate_citizen_id(body + check)
        except InvalidIdentifier:
            continue
    raise ValueError(body)


def _driver(n: int) -> dict[str, str]:
    return {"name": f"驾驶员{n}", "sex": "男" if n % 2 else "女", "nationality": "中国",
            "birth_date": (date(1950, 1, 1) + timedelta(days=n // 500)).isoformat(), "citizen_id": _citizen_id(n),
            "vehicle_class": "C1", "first_issued_on": "2012-03-04"}


def _write_csv(path: Path, rows: int, offset: int) -> None:
    with open(path, "w", encoding="utf-8", newline="") as out:  # streamed: no list of rows in memory
        writer = csv.DictWriter(out, FIELDS)
        writer.writeheader()
        for n in range(offset, offset + rows):
            writer.writerow(_driver(n))


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as file:
            found = [int(child) for child in file.read().split()]
    except OSError:
        return []
    return found + [grandchild for child in found for grandchild in _children(child)]


class TreeSampler:
    """The peak of the summed resident sets of this process and its descendants, sampled."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.peak = 0
        self.workers = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.is_set():
            children = _children(me)
            self.workers = max(self.workers, len(children))
            self.peak = max(self.peak, _rss_bytes(me) + sum(_rss_bytes(child) for child in children))
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()


def _one_process_rate(platform: Platform, agency, type_code: str, seconds: float) -> float:
    """Licenses per second of LicenseService.issue called one at a time (the baseline)."""
    service, issuer = license_service(platform), issuer_of(agency)
    actor = Actor(agency_id=agency.id, name="bench")
    for n in range(3):  # warm up (fonts, seal, revocation data)
        service.issue(issuer, type_code=type_code, fields=_driver(9_000_000 + n), actor=actor)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        service.issue(issuer, type_code=type_code, fields=_driver(9_000_100 + count), actor=actor)
        count += 1
    return count / (time.perf_counter() - start)


def _issue_for(seconds: float, agency, type_code: str, offset: int) -> int:
    """Pool job: issue licenses one after another for ``seconds`` in this worker's platform."""
    service, issuer = license_service(worker_platform()), issuer_of(agency)
    actor, done = Actor(agency_id=agency.id, name="bench"), 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        service.issue(issuer, type_code=type_code, fields=_driver(offset + done), actor=actor)
        done += 1
    return done


def _pool_rate(settings: Settings, agency, type_code: str, seconds: float, workers: int) -> float:
    """Licenses per second of ``workers`` pool processes each calling LicenseService.issue in a loop: what
    the machine does in parallel with no import machinery (reading, chunks, job records) around it."""
    with executor(settings, workers) as pool:
        offsets = [8_000_000 + 100_000 * i for i in range(workers)]
        list(pool.map(_issue_for, [1.0] * workers, [agency] * workers, [type_code] * workers, offsets))
        start = time.perf_counter()
        counts = list(pool.map(_issue_for, [seconds] * workers, [agency] * workers, [type_code] * workers,
                               [o + 50_000 for o in offsets]))
        return sum(counts) / (time.perf_counter() - start)


def run(*, seconds: float, rows: int | None = None) -> list[dict]:
    rows = rows or int(os.environ.get("EAUTH_BENCH_IMPORT_ROWS", DEFAULT_ROWS))
    workers = os.cpu_count() or 1
    data_dir = Path(tempfile.mkdtemp(prefix="eauth-import-bench-"))
    settings = Settings(_env_file=None, data_dir=data_dir, key_passphrase="bench passphrase")
    initialize_platform(settings)
    platform = Platform.open(settings)
    try:
        agency, _, driving = licensing_agency(platform, code="bench", name="某市公安局交通警察支队",
                                              credit_code=CREDIT_CODE)
        baseline_type = replace(driving, code=CREDIT_CODE + "951")
        license_service(platform).define_type(baseline_type, agency_id=agency.id)
        one = _one_process_rate(platform, agency, baseline_type.code, min(seconds, 10.0))
        parallel = _pool_rate(settings, agency, baseline_type.code, min(seconds, 10.0), workers)
        path = data_dir / "stock.csv"
        _write_csv(path, rows, offset=0)
        first: list[tuple[float, int]] = []  # when the first chunk was done, and its rows
        with TreeSampler() as sampler, BulkImport(platform, agency=agency, type_code=driving.code, path=path,
                                                  actor=Actor(agency_id=agency.id, name="bench")) as bulk:
            start = time.perf_counter()
            summary = bulk.run(workers=workers,
                               on_progress=lambda s: first or first.append((time.perf_counter() - start, s.rows)))
            elapsed = time.perf_counter() - start
        parent_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
        worker_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    finally:
        platform.close()
        shutil.rmtree(data_dir, ignore_errors=True)
    if summary.issued != rows:
        raise RuntimeError(f"bench import issued {summary.issued} of {rows} rows: {summary}")
    wall = rows / elapsed
    started, early = first[0] if first else (0.0, 0)
    steady = (rows - early) / (elapsed - started) if elapsed > started and rows > early else wall
    bound = parent_peak + workers * worker_peak
    peak = sampler.peak or bound
    return [
        {"name": f"bulk import, {rows:,} rows (CSV → signed B-LT licenses), pool of {workers} (one per core)",
         "ours": steady, "unit": "licenses/s", "baseline": parallel,
         "baseline_name": f"LicenseService.issue in a loop in {workers} pool processes (no import machinery)",
         "target": "≥ 0.9× baseline", "met": steady >= 0.9 * parallel,
         "note": f"after the pool's start and first chunk ({started:.1f} s; {wall:,.1f}/s wall clock "
                 f"including it); {steady / one:.2f}× one process ({one:,.1f}/s): the machine's {workers} "
                 f"vCPUs give {parallel / one:.2f}× one for this work"},
        {"name": f"bulk import peak memory, parent + {workers} workers, {rows:,} rows", "ours": peak / 2**20,
         "unit": "MiB", "baseline": None, "baseline_name": None, "target": "< 1024 MiB", "met": peak < TARGET_BYTES,
         "note": f"sampled from /proc (the parent also ran the one-process baseline); bound from getrusage: parent {parent_peak / 2**20:,.0f} MiB + "
                 f"{workers} × {worker_peak / 2**20:,.0f} MiB = {bound / 2**20:,.0f} MiB"},
    ]


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else None
    for figure in run(seconds=5.0, rows=count):
        base = (f" vs {figure['baseline']:,.1f} {figure['unit']} ({figure['baseline_name']}), ratio "
                f"{figure['ours'] / figure['baseline']:.2f}") if figure["baseline"] else ""
        print(f"{figure['name']}: {figure['ours']:,.1f} {figure['unit']}{base}; target {figure['target']}: "
              f"{'met' if figure['met'] else 'NOT MET'} ({figure['note']})")
