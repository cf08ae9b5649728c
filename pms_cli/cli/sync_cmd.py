"""`pms sync`: a live table per connection × resource, then a summary (or one JSON object)."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from rich.table import Table

    from pms_cli.cli.signals import StopRequest
    from pms_cli.config import Settings
    from pms_cli.errors import PmsError
    from pms_cli.stores.base import Connection, Store
    from pms_cli.sync.engine import SyncOptions, SyncResult


RELATIVE = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_when(value: str | None, option: str, now: datetime | None = None) -> datetime | None:
    """``--since``/``--until``: an ISO date or datetime (UTC unless it says), or an age such
    as ``90m``, ``12h``, ``3d``, ``2w`` counted back from ``now``."""
    if value is None:
        return None
    from datetime import timedelta

    from pms_cli.errors import ConfigError

    text = value.strip()
    if text[:-1].isdigit() and text[-1:].lower() in RELATIVE:
        seconds = int(text[:-1]) * RELATIVE[text[-1].lower()]
        return (now or datetime.now(UTC)) - timedelta(seconds=seconds)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"{option} {value!r} is not a date or an age",
            hint="Use YYYY-MM-DD, an ISO-8601 datetime (2026-01-31T00:00:00Z) or an age such as "
            "12h, 3d or 2w.",
            code="usage",
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def check_selection(
    store: Store,
    connection: list[str],
    all_: bool,
    provider: str | None,
    resources: list[str],
) -> list[Connection]:
    """The connections to sync, or a usage error before any run starts (and is logged)."""
    from pms_cli.cli.common import find_connection
    from pms_cli.errors import ConfigError
    from pms_cli.providers import get_provider, registry
    from pms_cli.sync.engine import select_resources

    if connection and all_:
        raise ConfigError(
            "--all and --connection exclude each other",
            hint="Pass --connection ID (repeatable) for some connections, or --all for every one.",
            code="usage",
        )
    if not connection and not all_:
        raise ConfigError(
            "choose what to sync",
            hint="Pass --connection ID (repeatable) or --all.",
            code="usage",
        )
    if provider is not None and provider not in registry():
        raise ConfigError(
            f"unknown provider {provider!r}",
            hint=f"Use one of: {', '.join(sorted(registry()))} (see `pms providers`).",
            code="usage",
        )
    if provider is not None and not all_:
        raise ConfigError(
            "--provider only applies with --all",
            hint="Drop --provider, or use --all --provider NAME.",
            code="usage",
        )
    if all_:
        conns = [c for c in store.list_connections() if not provider or c.provider == provider]
        if not conns:
            raise ConfigError(
                "no active connections to sync",
                hint="Create one with `pms connect PROVIDER` (or try `pms demo`).",
                code="no_connections",
            )
    else:
        conns = [find_connection(store, ref) for ref in connection]
    for name in sorted({c.provider for c in conns}):
        select_resources(get_provider(name), resources or None)  # raises unknown_resource
    return conns


COLLAPSE_ABOVE = 12  # connections; beyond this the summary shows one line per status


def duration(seconds: float) -> str:
    from pms_cli.cli.progress import duration as fmt

    return fmt(seconds)


def collapsed_table(results: list[SyncResult], title: str) -> Table:
    """Many connections: totals per status, then only the connections that need attention."""
    from rich.table import Table

    from pms_cli.cli.output import safe

    table = Table(title=f"{title} ({len(results)} connections)")
    for col in ("status", "connections", "records", "requests", "429s", "waits"):
        table.add_column(col, justify="left" if col == "status" else "right")
    by_status: dict[str, list[SyncResult]] = {}
    for r in results:
        by_status.setdefault(r.status, []).append(r)
    for status, group in sorted(by_status.items()):
        records = sum(rr.fetched for r in group for rr in r.resources.values())
        table.add_row(
            _status(status),
            str(len(group)),
            str(records),
            str(sum(r.requests for r in group)),
            str(sum(r.rate_limited for r in group)),
            str(sum(r.rate_limit_waits for r in group)),
        )
    for r in results:
        if r.status in ("failed", "partial", "locked", "interrupted"):
            message = (r.error or {}).get("message", "")
            table.add_row(
                f"  {r.provider} {r.connection_id[:8]}",
                _status(r.status),
                "",
                "",
                "",
                safe(str(message)[:60]),
            )
    return table


def results_table(
    results: list[SyncResult], title: str = "Sync summary", *, dry_run: bool = False
) -> Table:
    from rich.table import Table

    if dry_run:
        title = f"Dry run: nothing written — {title.lower()}"
    if len(results) > COLLAPSE_ABOVE:
        return collapsed_table(results, title)

    table = Table(title=title)
    written_col = "would write" if dry_run else "written"
    numeric = ("pages", "fetched", "skipped", "requests", "waits", "time", "rows/s")
    for col in (
        "connection",
        "provider",
        "resource",
        "status",
        "pages",
        "fetched",
        written_col,
        "skipped",
        "requests",
        "waits",
        "time",
        "rows/s",
    ):
        # "fold": a narrow terminal wraps a cell instead of cutting an id or number short.
        table.add_column(col, justify="right" if col in numeric else "left", overflow="fold")
    for res in results:
        seconds = res.duration_seconds
        fetched = sum(r.fetched for r in res.resources.values())
        took = duration(seconds) if seconds is not None else ""
        rate = f"{fetched / seconds:.0f}" if seconds else ""
        if not res.resources:
            table.add_row(
                res.connection_id[:8],
                res.provider,
                "-",
                _status(res.status),
                "",
                "",
                "",
                "",
                str(res.requests),
                "",
                took,
                "",
            )
        for i, (name, r) in enumerate(res.resources.items()):
            written = ", ".join(f"{k} {v}" for k, v in r.written.items()) or "0"
            table.add_row(
                res.connection_id[:8] if i == 0 else "",
                res.provider if i == 0 else "",
                name,
                _status(r.status),
                str(r.pages),
                str(r.fetched),
                written,
                str(r.skipped),
                str(r.requests),
                str(res.rate_limit_waits) if i == 0 else "",
                took if i == 0 else "",
                rate if i == 0 else "",
            )
    return table


def _status(status: str) -> str:
    from pms_cli.cli.progress import status_colour

    return f"[{status_colour(status)}]{status}[/]"


def exit_code_for(results: list[SyncResult]) -> int:
    from pms_cli import errors

    codes = {r.status for r in results}
    if "failed" in codes or "locked" in codes:
        failed = [r for r in results if r.status in ("failed", "locked")]
        if all(r.status == "locked" for r in failed):
            # Only skipped because another run holds them (cron overlap): not a failure of
            # this run, and distinguishable from one; every other connection was synced.
            return errors.EXIT_LOCKED
        if len(results) == 1:
            return int((failed[0].error or {}).get("exit_code", errors.EXIT_FAILED))
        return errors.EXIT_FAILED
    if "partial" in codes:
        return errors.EXIT_PARTIAL
    return errors.EXIT_OK


def register(app: typer.Typer) -> None:
    @app.command("sync")
    def sync(
        connection: list[str] = typer.Option(
            [],
            "--connection",
            "-c",
            metavar="ID",
            help="Connection ID or unique prefix (repeatable).",
        ),
        all_: bool = typer.Option(False, "--all", help="Sync every active connection."),
        provider: str | None = typer.Option(
            None, "--provider", metavar="PROVIDER", help="With --all: only this provider."
        ),
        resource: list[str] = typer.Option(
            [],
            "--resource",
            "-r",
            metavar="RESOURCE",
            help="properties, bookings or guests (repeatable; default all).",
        ),
        full: bool = typer.Option(
            False, "--full", help="Ignore cursors; mark vanished records deleted."
        ),
        since: str | None = typer.Option(
            None,
            "--since",
            metavar="DATE|AGE",
            help="Only records changed since DATE (2026-01-31, ISO datetime) or AGE ago "
            "(12h, 3d, 2w).",
        ),
        until: str | None = typer.Option(
            None,
            "--until",
            metavar="DATE|AGE",
            help="Leave out records changed after this (same forms as --since); the cursor "
            "stays where it was.",
        ),
        dry_run: bool = typer.Option(False, "--dry-run", help="Fetch and map, write nothing."),
        concurrency: int = typer.Option(
            4, "--concurrency", min=1, metavar="N", help="Connections synced at once."
        ),
        trigger: str = typer.Option(
            "cli", "--trigger", metavar="TRIGGER", help="Recorded in the sync log: cli, cron, ci."
        ),
        as_json: bool = typer.Option(
            False, "--json", help="Print one JSON summary on stdout, nothing else."
        ),
        progress: str = typer.Option(
            "auto",
            "--progress",
            envvar="PMS_PROGRESS",
            metavar="MODE",
            help="auto (live view on a terminal, else log lines), live, log or none. "
            "Progress goes to stderr.",
        ),
    ) -> None:
        """Sync connections: fetch pages, upsert rows, advance cursors only after rows are written.

        Incremental by default (each provider's modified-since filter, re-reading a lag window).
        Exit codes: 0 ok, 1 failed, 2 config, 3 auth rejected, 4 partial, 5 already running,
        130 interrupted by Ctrl-C, 143 stopped by SIGTERM (rerun to continue).

        Examples:

        \b
          pms sync --connection 3f2a
          pms sync --all --json --trigger cron
          pms sync -c 3f2a --since 3d --until 1d --dry-run
        """
        from pms_cli.cli.common import settings_and_store
        from pms_cli.cli.output import err
        from pms_cli.errors import ConfigError
        from pms_cli.sync.engine import SyncOptions

        if progress not in PROGRESS_MODES:
            raise ConfigError(
                f"--progress {progress!r} is not a progress mode",
                hint=f"Use one of: {', '.join(PROGRESS_MODES)}.",
                code="usage",
            )
        since_at = parse_when(since, "--since")
        until_at = parse_when(until, "--until")
        if since_at and until_at and until_at <= since_at:
            raise ConfigError(
                "--until is not after --since",
                hint="Give an --until later than --since.",
                code="usage",
            )
        settings, store = settings_and_store()
        conns = check_selection(store, connection, all_, provider, resource)
        options = SyncOptions(
            full=full,
            since=since_at,
            until=until_at,
            resources=resource or None,
            dry_run=dry_run,
            trigger=trigger,
        )
        if progress == "auto":
            progress = "live" if err.is_terminal and not as_json else "log"
        results, stop = run_sync(store, settings, conns, options, concurrency, progress)
        report(results, stop, dry_run=dry_run, as_json=as_json)


PROGRESS_MODES = ("auto", "live", "log", "none")


def run_sync(
    store: Store,
    settings: Settings,
    conns: list[Connection],
    options: SyncOptions,
    concurrency: int,
    progress: str,
) -> tuple[list[SyncResult], StopRequest]:
    """Run the engine with progress (``live``, ``log`` or ``none``) until done or signalled."""
    import asyncio
    import sys

    from pms_cli.cli.output import err
    from pms_cli.cli.progress import LogProgress, Tracker, live_view
    from pms_cli.cli.signals import run_stoppable
    from pms_cli.providers import get_provider
    from pms_cli.sync.engine import SyncEngine
    from pms_cli.sync.session import Runtime

    runtime = Runtime(settings)
    titles = {c.provider: get_provider(c.provider).title for c in conns}
    tracker = Tracker(titles, runtime.clock.monotonic)
    title = "Dry run: fetching, nothing is written…" if options.dry_run else "Syncing…"

    async def work(stop: StopRequest) -> list[SyncResult]:
        engine = SyncEngine(
            store, runtime, on_event=tracker.on_event if progress != "none" else None
        )
        job = engine.sync_many(conns, options, concurrency, stop=stop.event)
        if progress == "live":
            with live_view(tracker, err, title):
                return await job
        if progress == "log":
            logger = LogProgress(tracker, sys.stderr)
            ticking = asyncio.ensure_future(logger.run())
            try:
                return await job
            finally:
                ticking.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticking
                logger.tick()  # the final state changes
        return await job

    return run_stoppable(work)


def report(results: list[SyncResult], stop: StopRequest, *, dry_run: bool, as_json: bool) -> None:
    """The summary (table or one JSON object), problems on stderr, and the exit code."""
    from pms_cli.cli.output import print_error, print_json
    from pms_cli.errors import PmsError

    code = stop.exit_code if stop.signum is not None else exit_code_for(results)
    if as_json:
        status = {0: "ok", 4: "partial", 5: "locked"}.get(code, "failed")
        payload: dict[str, Any] = {
            "status": "interrupted" if stop.signum is not None else status,
            "dry_run": dry_run,
        }
        if stop.signum is not None:
            payload["signal"] = stop.name
        payload["connections"] = [r.to_dict() for r in results]
        print_json(payload)
    else:
        from pms_cli.cli.tabular import print_table

        print_table(results_table(results, dry_run=dry_run))
        for r in results:
            if r.error and r.status != "interrupted":
                print_error(
                    PmsError(
                        f"{r.provider} {r.connection_id[:8]}: {r.error['message']}",
                        hint=str(r.error.get("hint", "")),
                    )
                )
                continue
            skipped = {n: rr for n, rr in r.resources.items() if rr.skipped}
            if skipped:
                detail = "; ".join(
                    f"{n}: {rr.skipped} (ids {', '.join(rr.skipped_ids[:5])})"
                    for n, rr in skipped.items()
                )
                print_error(
                    PmsError(
                        f"{r.provider} {r.connection_id[:8]}: skipped records that could not "
                        f"be read — {detail}",
                        hint="They are listed in `pms logs --failed` and fetched again next "
                        "run (the cursor was not advanced); if this persists the provider "
                        "changed its format: report it.",
                    )
                )
        if dry_run:
            from pms_cli.cli.output import err

            err.print("Dry run: nothing was written; `would write` counts the rows a sync writes.")
        if stop.signum is not None:
            print_error(interrupted_error(results, stop))
    if code:
        raise typer.Exit(code)


def interrupted_error(results: list[SyncResult], stop: StopRequest) -> PmsError:
    """What an interrupted run did, and how to continue."""
    from pms_cli.errors import PmsError
    from pms_cli.sync.engine import INTERRUPTED_HINT

    done = sum(1 for r in results if r.status not in ("interrupted", "running"))
    written = sum(sum(rr.written.values()) for r in results for rr in r.resources.values())
    where = [
        f"{r.provider} {r.connection_id[:8]} {name} after page "
        f"{rr.pages + (rr.resumed_at_page or 0)}"
        for r in results
        for name, rr in r.resources.items()
        if rr.status == "interrupted"
    ]
    stopped = f"; stopped in {', '.join(where)}" if where else ""
    return PmsError(
        f"interrupted by {stop.name}: {done} of {len(results)} connections finished, "
        f"{written} rows written{stopped}. The batch in flight was committed or rolled back, "
        "the lock released and the run logged as interrupted",
        hint=INTERRUPTED_HINT,
    )
