"""Progress of `pms sync` per connection × resource: a live view on a TTY, log lines without one.

Both are fed the engine's events (``SyncEngine(on_event=...)``) and read one model,
``Tracker``: records of the total (when the provider says it), pages, elapsed time, an ETA,
and what a run is doing now — including "waiting 3m40s for Beds24 credits", since a limiter
holding a run is otherwise indistinguishable from a hang.

Without a TTY (cron, CI), ``LogProgress`` writes one line per connection × resource when its
state changes and every ``interval`` seconds while it runs, so a CI runner with a no-output
timeout sees life during an 11-minute sync. Its clock is a parameter: tests drive ``tick()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from pms_cli.sync.engine import SyncEvent

LIVE_ROWS = 30
"""Rows the live view shows at most: beyond, finished rows give way to running ones."""

LOG_INTERVAL_SECONDS = 30.0
"""Seconds between two log lines of a running connection × resource without a TTY."""

FINISHED = frozenset({"succeeded", "partial", "failed", "fresh", "interrupted", "locked"})


def duration(seconds: float) -> str:
    """``42s``, ``3m40s``, ``1h05m``: short enough for a table cell, exact enough to plan by."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


@dataclass(eq=False)  # rows are compared by identity
class Row:
    """One connection × resource as the user sees it."""

    connection_id: str
    provider: str
    resource: str
    status: str = "pending"
    records: int = 0
    total: int | None = None
    pages: int = 0
    written: int = 0
    started: float | None = None
    finished: float | None = None
    resumed_at_page: int | None = None
    waiting_until: float | None = None
    waiting_for: str = ""

    def elapsed(self, now: float) -> float:
        if self.started is None:
            return 0.0
        return (self.finished if self.finished is not None else now) - self.started

    def eta(self, now: float) -> float | None:
        """Seconds left at the rate so far; None without a total or before the first records."""
        if self.total is None or self.records <= 0 or self.status != "running":
            return None
        left = max(0, self.total - self.records)
        return self.elapsed(now) / self.records * left

    def state(self, now: float) -> str:
        """``running``, ``waiting 3m40s for Hostaway rate limit``, or the final status."""
        waiting = self.waiting_until is not None and self.waiting_until > now
        if self.status == "running" and waiting and self.waiting_until is not None:
            return f"waiting {duration(self.waiting_until - now)} for {self.waiting_for}"
        if self.status == "running" and self.resumed_at_page:
            return f"running (resumed after page {self.resumed_at_page})"
        return self.status

    def progress(self) -> str:
        """``1500/20000`` (records of the total), or ``1500`` when the provider gives none."""
        return f"{self.records}/{self.total}" if self.total is not None else str(self.records)


class Tracker:
    """The rows, kept current from engine events (any thread: the engine's event loop)."""

    def __init__(self, titles: dict[str, str], monotonic: Callable[[], float]) -> None:
        self.rows: dict[tuple[str, str], Row] = {}
        self.titles = titles  # provider name -> title ("Beds24")
        self.monotonic = monotonic
        self.changed: list[Row] = []  # rows whose state changed since the last ``drain``

    def __iter__(self) -> Iterator[Row]:
        return iter(self.rows.values())

    def _row(self, run_id: str, connection_id: str, provider: str, resource: str) -> Row:
        key = (run_id, resource)
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = Row(connection_id, provider, resource)
        return row

    def _running(self, run_id: str) -> Row | None:
        for (rid, _), row in self.rows.items():
            if rid == run_id and row.status == "running":
                return row
        return None

    def on_event(self, event: SyncEvent) -> None:
        now = self.monotonic()
        result = event.result
        run_id = result.run_id
        if event.kind in ("waiting", "retry"):
            row = self._running(run_id)
            if row is None:
                return
            seconds = float(event.data.get("seconds") or 0.0)
            reason = str(event.data.get("reason") or "")
            title = self.titles.get(result.provider, result.provider)
            row.waiting_until = now + seconds
            row.waiting_for = (
                f"{title} {reason}" if event.kind == "waiting" else f"a retry after {reason}"
            )
            if seconds >= 1:
                self.changed.append(row)
            return
        if event.kind == "finished":
            for (rid, _), row in self.rows.items():
                if rid == run_id and row.status not in FINISHED:
                    row.status = result.status
                    row.finished = now
                    self.changed.append(row)
            if not result.resources:  # failed before any resource (credentials, lock)
                row = self._row(run_id, result.connection_id, result.provider, "-")
                row.status = result.status
                row.started = row.started if row.started is not None else now
                row.finished = now
                self.changed.append(row)
            return
        for name, rr in result.resources.items():
            row = self._row(run_id, result.connection_id, result.provider, name)
            before = row.status
            row.status = rr.status
            row.records = rr.fetched
            row.total = rr.total
            row.pages = rr.pages
            row.written = sum(rr.written.values())
            row.resumed_at_page = rr.resumed_at_page
            if event.kind == "page" and event.resource == name:
                row.waiting_until = None  # a page arrived: whatever held it is over
            if rr.status == "running" and row.started is None:
                row.started = now
            if rr.status in FINISHED and row.finished is None and row.started is not None:
                row.finished = now
            if rr.status != before or (event.kind == "resumed" and event.resource == name):
                self.changed.append(row)

    def drain(self) -> list[Row]:
        """Rows whose state changed since the last call, each once, in order."""
        seen: list[Row] = []
        for row in self.changed:
            if row not in seen:
                seen.append(row)
        self.changed.clear()
        return seen


def live_table(tracker: Tracker, now: float, title: str = "Syncing…") -> Table:
    """The TTY view: one line per connection × resource, state first."""
    from rich.table import Table

    table = Table(title=title)
    for col, justify in (
        ("connection", "left"),
        ("provider", "left"),
        ("resource", "left"),
        ("state", "left"),
        ("records", "right"),
        ("pages", "right"),
        ("elapsed", "right"),
        ("ETA", "right"),
    ):
        # "fold": a narrow terminal wraps a cell, never cuts an id or a number short.
        table.add_column(col, justify=justify, overflow="fold")  # type: ignore[arg-type]
    rows = list(tracker)
    if len(rows) > LIVE_ROWS:
        # Many connections: what is running first, the rest as counts in the caption.
        active = [r for r in rows if r.status == "running"]
        shown = active[:LIVE_ROWS]
        done = sum(1 for r in rows if r.status in FINISHED)
        table.caption = (
            f"{len(rows) - len(shown)} more: {done} finished, "
            f"{len(rows) - done - len(active)} waiting to start"
        )
        rows = shown
    for row in rows:
        eta = row.eta(now)
        state = row.state(now)
        colour = "yellow" if state.startswith("waiting") else status_colour(row.status)
        table.add_row(
            row.connection_id[:8],
            row.provider,
            row.resource,
            f"[{colour}]{state}[/]",
            row.progress(),
            str(row.pages),
            duration(row.elapsed(now)),
            duration(eta) if eta is not None else "",
        )
    return table


def status_colour(status: str) -> str:
    """The Rich colour of a run or resource status, in the live view and the summary."""
    return {
        "succeeded": "green",
        "partial": "yellow",
        "failed": "red",
        "running": "cyan",
        "locked": "magenta",
        "interrupted": "red",
        "fresh": "dim",
    }.get(status, "white")


def log_line(row: Row, now: float, wall: float) -> str:
    """One line without a TTY: a timestamp, who, what, how far."""
    stamp = datetime.fromtimestamp(wall, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    parts = [f"{row.progress()} records", f"{row.pages} pages", f"{duration(row.elapsed(now))}"]
    eta = row.eta(now)
    if eta is not None:
        parts.append(f"ETA {duration(eta)}")
    return (
        f"{stamp} {row.provider} {row.connection_id[:8]} {row.resource}: "
        f"{row.state(now)}, {', '.join(parts)}"
    )


class LogProgress:
    """Progress as stderr log lines: on each state change, and every ``interval`` s per row."""

    def __init__(
        self,
        tracker: Tracker,
        stream: TextIO,
        interval: float = LOG_INTERVAL_SECONDS,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.tracker = tracker
        self.stream = stream
        self.interval = interval
        self.wall = wall
        self.last: dict[int, float] = {}  # id(row) -> when its last line was written

    def tick(self) -> None:
        """Write the lines due now: rows that changed, then running rows not seen for a while."""
        now = self.tracker.monotonic()
        lines = [row for row in self.tracker.drain() if row.status != "pending"]
        for row in self.tracker:
            quiet_since = self.last.get(id(row), row.started or now)
            if row.status == "running" and row not in lines and now - quiet_since >= self.interval:
                lines.append(row)
        for row in lines:
            self.last[id(row)] = now
            self.stream.write(log_line(row, now, self.wall()) + "\n")
        if lines:
            self.stream.flush()

    async def run(self, sleep: Callable[[float], Any] = asyncio.sleep, every: float = 1.0) -> None:
        """Tick until cancelled; a change is logged within ``every`` seconds."""
        while True:
            self.tick()
            await sleep(every)


@contextlib.contextmanager
def live_view(tracker: Tracker, console: Console, title: str) -> Iterator[None]:
    """A Rich live table on the terminal, redrawn 4 times a second (countdowns move)."""
    from rich.live import Live

    with Live(
        get_renderable=lambda: live_table(tracker, tracker.monotonic(), title),
        console=console,
        refresh_per_second=4,
        transient=True,
    ):
        yield
