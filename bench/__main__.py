"""``make bench``: every benchmark with its baseline measured in the same run, one table.

Writes ``bench/results/results.md`` and ``results.json``. Figures are rates (higher is better); the
ratio is ours / baseline; a target is either a ratio or an absolute rate.
"""

from __future__ import annotations

import argparse
import json
import os
import platform as host
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench import (ca_bench, crl_bench, growth_bench, import_bench, license_bench, ocsp_bench, pades_bench, render_bench,
                   tsa_bench, verify_bench, verify_qr_bench)

RESULTS = Path(__file__).with_name("results")


@dataclass(frozen=True)
class Figure:
    name: str
    ours: float
    unit: str
    baseline: float | None
    baseline_name: str | None
    target: str
    met: bool
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return self.ours / self.baseline if self.baseline else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="Duration of each timed run.")
    args = parser.parse_args()

    modules = (ca_bench, tsa_bench, crl_bench, ocsp_bench, pades_bench, render_bench, license_bench, import_bench,
               verify_bench, verify_qr_bench, growth_bench)
    figures = [Figure(**f) for module in modules for f in module.run(seconds=args.seconds)]
    table = Table(title=f"eauth benchmarks ({os.cpu_count()} cores, {host.python_implementation()} {host.python_version()})")
    for column in ("figure", "ours", "baseline", "ratio", "target", "met"):
        table.add_column(column)
    lines = ["| figure | ours | baseline | ratio | target | met |", "|---|---|---|---|---|---|"]
    for f in figures:
        base = f"{f.baseline:,.0f} {f.unit} ({f.baseline_name})" if f.baseline else "—"
        ratio = f"{f.ratio:.2f}" if f.ratio else "—"
        row = (f.name, f"{f.ours:,.0f} {f.unit}", base, ratio, f.target, "met" if f.met else "NOT MET")
        table.add_row(*row, style=None if f.met else "red")
        lines.append("| " + " | ".join(row) + " |")
    Console().print(table)
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    (RESULTS / "results.md").write_text(f"# eauth benchmarks, {stamp}\n\n" + "\n".join(lines) + "\n")
    (RESULTS / "results.json").write_text(
        json.dumps({"measured_at": stamp, "cores": os.cpu_count(),
                    "figures": [asdict(f) | {"ratio": f.ratio} for f in figures]}, indent=1)
    )
    print(f"written: {RESULTS / 'results.md'}, {RESULTS / 'results.json'}")


if __name__ == "__main__":
    main()
