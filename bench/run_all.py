"""Every scale figure in one table: each a ratio of two numbers measured in the same run.

    uv run python bench/run_all.py [--quick]

Runs bench/scale.py (requests vs optimum, wall vs rate-limit floor per provider incl. Beds24
credits, `--all` over 200 connections × 2,000 bookings — virtual clock — and one real-socket
run), bench/store_write.py (store write rate vs raw COPY), bench/memory.py (peak RSS 10k vs
100k bookings, fresh processes), `pms --help` start time, and bench/workers.py (3 workers vs 1).
`--quick` shrinks every size (a smoke run, not the published figures).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def help_start(runs: int = 5) -> tuple[float, float]:
    """Best-of wall time of `python -m pms_cli --help` vs a bare `python -c pass`."""

    def best(cmd: list[str]) -> float:
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            subprocess.run(cmd, capture_output=True, check=True, cwd=ROOT)
            times.append(time.perf_counter() - t)
        return min(times)

    return best([sys.executable, "-m", "pms_cli", "--help"]), best([sys.executable, "-c", "pass"])


def store_write(rows: int) -> tuple[float, float, str]:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "store_write.py"), "--rows", str(rows)],
        capture_output=True, text=True, check=True, cwd=ROOT,
    ).stdout  # fmt: skip

    def rate(label: str) -> float:
        m = re.search(
            rf"^{re.escape(label)}\s+\d+ rows\s+[\d.]+ s\s+([\d,]+) rows/s", out, re.MULTILINE
        )
        return float(m.group(1).replace(",", "")) if m else float("nan")

    return rate("postgres"), rate("raw COPY"), f"{rows} bookings, rows/s"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    os.environ.setdefault("PMS_CONFIG_DIR", tempfile.mkdtemp())
    from bench import memory, scale, workers

    q = args.quick
    scale_args = scale.parser().parse_args(
        ["--bookings", "3000", "--connections", "10", "--per-connection", "500"] if q else []
    )
    table: list[tuple[str, float, float, str]] = []
    for r in scale.run(scale_args):
        table.append((r.figure, r.measured, r.reference, r.note))
    pg, copy, note = store_write(5_000 if q else 50_000)
    table.append(("store write rate vs raw COPY (postgres)", pg, copy, note))
    table += memory.run(*((2_000, 20_000) if q else (10_000, 100_000)))
    cli, bare = help_start()
    table.append(("`pms --help` start vs bare python", cli, bare, f"{cli:.3f} s vs {bare:.3f} s"))
    for name, one, three, wnote in workers.run(*((6, 500, 2) if q else (12, 1000, 2))):
        table.append((name + " = 1-worker wall / 3-worker wall", one, three, wnote))
    print(
        "simulated clock rows: bench/virtual_clock.py (virtual event-loop time: concurrent"
        " sleeps overlap; store writes cost no simulated time)"
    )
    width = max(len(t[0]) for t in table) + 2
    print(f"{'figure':<{width}}{'measured':>12}{'reference':>12}{'ratio':>8}  note")
    for name, measured, reference, note in table:
        ratio = measured / reference if reference else float("nan")
        print(f"{name:<{width}}{measured:>12.2f}{reference:>12.2f}{ratio:>8.3f}  {note}")


if __name__ == "__main__":
    main()
