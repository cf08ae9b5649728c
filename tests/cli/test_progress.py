"""Progress of `pms sync`: what the live view and the log lines say, driven by a fake clock."""

from __future__ import annotations

import asyncio
import io

from pms_cli.cli.progress import LogProgress, Tracker, live_table
from pms_cli.cli.tabular import plain_rows
from pms_cli.http.clock import FakeClock
from pms_cli.http.ratelimit import CreditBudget, RateLimiter
from pms_cli.sync.engine import ResourceResult, SyncEvent, SyncResult


class Now:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _run(status: str = "running", fetched: int = 0, total: int | None = 20000) -> SyncResult:
    result = SyncResult("3f2a1b2c-0000-4000-8000-000000000000", "beds24", "run-1")
    result.resources["bookings"] = ResourceResult(
        "bookings", status=status, fetched=fetched, total=total, pages=fetched // 100
    )
    return result


def test_a_run_held_by_the_credit_limit_says_what_it_waits_for_and_for_how_long() -> None:
    now = Now()
    tracker = Tracker({"beds24": "Beds24"}, now)
    result = _run()
    tracker.on_event(SyncEvent("resource", result, "bookings"))
    tracker.on_event(SyncEvent("waiting", result, None, {"seconds": 220.0, "reason": "credits"}))
    rows = plain_rows(live_table(tracker, now()))
    assert rows[0] == ["connection", "provider", "resource", "state", "records", "pages",
                       "elapsed", "ETA"]  # fmt: skip
    assert rows[1][3] == "waiting 3m40s for Beds24 credits"
    now.t += 100
    assert plain_rows(live_table(tracker, now()))[1][3] == "waiting 2m00s for Beds24 credits"
    now.t += 121
    assert plain_rows(live_table(tracker, now()))[1][3] == "running"


def test_the_live_view_shows_records_of_the_total_elapsed_time_and_an_eta() -> None:
    now = Now()
    tracker = Tracker({"beds24": "Beds24"}, now)
    result = _run()
    tracker.on_event(SyncEvent("resource", result, "bookings"))
    now.t += 60
    result.resources["bookings"].fetched = 5000
    result.resources["bookings"].pages = 50
    tracker.on_event(SyncEvent("page", result, "bookings"))
    row = plain_rows(live_table(tracker, now()))[1]
    # 5,000 of 20,000 in a minute: three minutes to go.
    assert row[4:] == ["5000/20000", "50", "1m00s", "3m00s"]


def test_without_a_tty_a_line_is_logged_on_each_state_change_and_every_30_seconds() -> None:
    now = Now()
    tracker = Tracker({"beds24": "Beds24"}, now)
    stream = io.StringIO()
    log = LogProgress(tracker, stream, interval=30, wall=lambda: 1_796_000_000.0 + now.t)
    result = _run()
    tracker.on_event(SyncEvent("resource", result, "bookings"))
    log.tick()
    assert stream.getvalue().splitlines() == [
        "2026-11-30T01:10:00Z beds24 3f2a1b2c bookings: running, 0/20000 records, 0 pages, 0s"
    ]
    for _ in range(29):  # quiet while nothing changes and 30 s have not passed
        now.t += 1
        log.tick()
    assert len(stream.getvalue().splitlines()) == 1
    now.t += 1
    result.resources["bookings"].fetched = 3000
    result.resources["bookings"].pages = 30
    tracker.on_event(SyncEvent("page", result, "bookings"))
    log.tick()
    assert (
        stream.getvalue()
        .splitlines()[-1]
        .endswith("bookings: running, 3000/20000 records, 30 pages, 30s, ETA 2m50s")
    )
    tracker.on_event(SyncEvent("waiting", result, None, {"seconds": 240.0, "reason": "credits"}))
    log.tick()  # a state change is logged at once
    assert "bookings: waiting 4m00s for Beds24 credits" in stream.getvalue().splitlines()[-1]
    now.t += 30
    log.tick()  # still waiting: the periodic line says so, so a CI runner sees output
    assert "waiting 3m30s for Beds24 credits" in stream.getvalue().splitlines()[-1]
    result.resources["bookings"].status = "succeeded"
    result.status = "succeeded"
    tracker.on_event(SyncEvent("resource", result, "bookings"))
    log.tick()
    assert "bookings: succeeded, 3000/20000 records" in stream.getvalue().splitlines()[-1]
    lines = len(stream.getvalue().splitlines())
    now.t += 300
    log.tick()  # finished rows are not repeated
    assert len(stream.getvalue().splitlines()) == lines


def test_the_limiter_says_before_it_waits_how_long_and_for_which_budget() -> None:
    clock = FakeClock()
    credits = CreditBudget(remaining=0, resets_at=clock.monotonic() + 220)
    limiter = RateLimiter(clock=clock, credits=credits)
    told: list[tuple[float, str]] = []
    asyncio.run(limiter.acquire(on_wait=lambda s, r: told.append((s, r))))
    assert told == [(220.0, "credits")]


def test_a_piped_table_keeps_multi_line_cells_on_one_row() -> None:
    from rich.console import Console
    from rich.table import Table

    from pms_cli.cli.tabular import print_table

    table = Table()
    table.add_column("provider")
    table.add_column("limits")
    table.add_row("[bold]guesty[/]", "15 / 1 s\n120 / 60 s")
    stream = io.StringIO()
    print_table(table, Console(file=stream, width=20))
    assert stream.getvalue() == "provider\tlimits\nguesty\t15 / 1 s; 120 / 60 s\n"


def test_the_live_view_of_many_connections_shows_the_running_ones_and_counts_the_rest() -> None:
    from pms_cli.cli.progress import LIVE_ROWS

    now = Now()
    tracker = Tracker({"beds24": "Beds24"}, now)
    for i in range(LIVE_ROWS + 10):
        result = SyncResult(f"{i:08d}-conn", "beds24", f"run-{i}")
        status = "running" if i % 2 else "succeeded"
        result.resources["bookings"] = ResourceResult("bookings", status=status)
        tracker.on_event(SyncEvent("resource", result, "bookings"))
    table = live_table(tracker, now())
    rows = plain_rows(table)[1:]
    assert len(rows) == (LIVE_ROWS + 10) // 2 and all(r[3] == "running" for r in rows)
    assert table.caption == f"{(LIVE_ROWS + 10) // 2} more: 20 finished, 0 waiting to start"
