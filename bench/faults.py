"""The fault matrix: every fault × every provider, plus SIGKILL trials, as one table.

    uv run python bench/faults.py [--provider P ...] [--kill-trials 20] [--kill-provider lodgify]

(a) In-process, one fake clock (no real waits): each scenario of tests/reliability/scenario.py
    with three pages of bookings per provider. A run that stops with an error is rerun as cron
    would (up to 3 runs; mid-read mutations get one more incremental run); the rows are then
    compared with a clean full sync of the same upstream data.
(b) Real processes: `pms sync` against a sandbox on 127.0.0.1, SIGKILLed after a random number
    of requests (or during start-up), rerun, compared with one clean run.

Columns: converged (rows equal a clean sync's), lost / changed / duplicated rows, extra rows,
runs needed, retries (HTTP retries summed over runs), faults injected, wall time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    from rich.console import Console
    from rich.table import Table

    from pms_cli.providers import hostaway
    from tests.reliability import kill, scenario

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--provider", action="append", choices=scenario.PROVIDERS)
    parser.add_argument("--kill-trials", type=int, default=20)
    parser.add_argument("--kill-provider", default="lodgify", choices=scenario.PROVIDERS)
    args = parser.parse_args()
    # The documented 1 s token activation is real time in the client; the clock here is fake.
    hostaway.TOKEN_ACTIVATION_DELAY = 0.0

    console = Console(width=max(Console().width, 160))
    table = Table(title="Fault matrix (in-process, fake clock)")
    for col in ("fault", "provider", "converged", "lost", "changed", "duplicated", "extra",
                "runs", "statuses", "retries", "injected", "wall s"):  # fmt: skip
        table.add_column(
            col, justify="left" if col in ("fault", "provider", "statuses") else "right"
        )
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        names = list(scenario.matrix("hostaway"))
        for name in names:
            for provider in args.provider or scenario.PROVIDERS:
                faults = scenario.matrix(provider)[name]
                o = scenario.run(provider, name, faults, Path(tmp) / provider / name)
                ok = o.converged and not o.problems
                failures += not ok
                table.add_row(
                    name,
                    provider,
                    "[green]yes[/]" if ok else "[red]NO[/]",
                    str(o.lost),
                    str(o.changed),
                    str(o.duplicated),
                    str(o.extra),
                    str(o.runs),
                    " → ".join(o.statuses),
                    str(o.retries),
                    str(o.injected),
                    f"{o.wall:.2f}",
                )
                for problem in o.problems:
                    console.print(f"[red]{provider} / {name}: {problem}[/]")
        console.print(table)

        if args.kill_trials:
            started = time.monotonic()
            trials = kill.trials(Path(tmp) / "kill", args.kill_provider, args.kill_trials)
            kt = Table(title=f"SIGKILL trials ({args.kill_provider}, real processes)")
            for col in ("#", "killed after requests", "+ s", "killed", "rerun exit", "equal",
                        "sync log", "ok"):  # fmt: skip
                kt.add_column(col)
            for i, t in enumerate(trials):
                failures += not t.ok
                kt.add_row(
                    str(i + 1),
                    str(t.after_requests) if t.after_requests else "start-up",
                    f"{t.extra_delay:.2f}",
                    "yes" if t.killed else "no (finished)",
                    str(t.rerun_code),
                    "yes" if t.equal else "[red]NO[/]",
                    " → ".join(t.log),
                    "[green]yes[/]" if t.ok else "[red]NO[/]",
                )
            console.print(kt)
            killed = sum(t.killed for t in trials)
            console.print(
                f"{sum(t.ok for t in trials)}/{len(trials)} trials converged "
                f"({killed} killed mid-run) in {time.monotonic() - started:.1f} s"
            )
    console.print("all converged" if not failures else f"[red]{failures} did not converge[/]")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
