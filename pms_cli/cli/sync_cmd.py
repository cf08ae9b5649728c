"""`pms sync`: a live table per connection × resource, then a summary (or one JSON object)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from rich.table import Table

    from pms_cli.sync.engine import SyncEvent, SyncResult


def _parse_since(value: str | None) -> datetime | None:
    if value is None:
        return None
    from pms_cli.errors import ConfigError

    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"--since {value!r} is not a date",
            hint="Use YYYY-MM-DD or an ISO-8601 datetime, e.g. 2026-01-31T00:00:00Z.",
            code="usage",
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


COLLAPSE_ABOVE = 12  # connections; beyond this the live view shows one line per status


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


def results_table(results: list[SyncResult], title: str = "Sync summary") -> Table:
    from rich.table import Table

    if len(results) > COLLAPSE_ABOVE:
        return collapsed_table(results, title)

    table = Table(title=title)
    for col in (
        "connection",
        "provider",
        "resource",
        "status",
        "pages",
        "fetched",
        "written",
        "skipped",
        "requests",
        "waits",
    ):
        table.add_column(
            col,
            justify="right"
            if col in ("pages", "fetched", "requests", "skipped", "waits")
            else "left",
        )
    for res in results:
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
            )
    return table


def _status(status: str) -> str:
    color = {
        "succeeded": "green",
        "partial": "yellow",
        "failed": "red",
        "running": "cyan",
        "locked": "magenta",
        "interrupted": "red",
        "fresh": "dim",
    }.get(status, "white")
    return f"[{color}]{status}[/]"


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
            [], "--connection", "-c", help="Connection ID or unique prefix (repeatable)."
        ),
        all_: bool = typer.Option(False, "--all", help="Sync every active connection."),
        provider: str | None = typer.Option(
            None, "--provider", help="With --all: only this provider."
        ),
        resource: list[str] = typer.Option(
            [], "--resource", "-r", help="properties, bookings or guests (repeatable; default all)."
        ),
        full: bool = typer.Option(
            False, "--full", help="Ignore cursors; mark vanished records deleted."
        ),
        since: str | None = typer.Option(None, "--since", help="Only records changed since DATE."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Fetch and map, write nothing."),
        concurrency: int = typer.Option(
            4, "--concurrency", min=1, help="Connections synced at once."
        ),
        trigger: str = typer.Option(
            "cli", "--trigger", help="Recorded in the sync log: cli, cron, ci."
        ),
        as_json: bool = typer.Option(
            False, "--json", help="Print one JSON summary on stdout, nothing else."
        ),
    ) -> None:
        """Sync connections: fetch pages, upsert rows, advance cursors only after rows are written.

        Incremental by default (each provider's modified-since filter, re-reading a lag window).
        Exit codes: 0 ok, 1 failed, 2 config, 3 auth rejected, 4 partial, 5 already running.

        Examples:

        \b
          pms sync --connection 3f2a
          pms sync --all --json --trigger cron
        """
        import asyncio

        from pms_cli.cli.common import find_connection, settings_and_store
        from pms_cli.cli.output import err, out, print_json
        from pms_cli.errors import ConfigError
        from pms_cli.sync.engine import SyncEngine, SyncOptions
        from pms_cli.sync.session import Runtime

        if bool(connection) == all_:
            raise ConfigError(
                "choose what to sync",
                hint="Pass --connection ID (repeatable) or --all.",
                code="usage",
            )
        settings, store = settings_and_store()
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
        options = SyncOptions(
            full=full,
            since=_parse_since(since),
            resources=resource or None,
            dry_run=dry_run,
            trigger=trigger,
        )
        live_display = not as_json and err.is_terminal
        results: list[SyncResult] = []
        if live_display:
            from rich.live import Live

            seen: dict[str, SyncResult] = {}

            with Live(
                results_table([], "Syncing…"), console=err, refresh_per_second=8, transient=True
            ) as live:

                def on_event(event: SyncEvent) -> None:
                    seen[event.result.run_id] = event.result
                    live.update(results_table(list(seen.values()), "Syncing…"))

                engine = SyncEngine(store, Runtime(settings), on_event=on_event)
                results = asyncio.run(engine.sync_many(conns, options, concurrency))
        else:
            engine = SyncEngine(store, Runtime(settings))
            results = asyncio.run(engine.sync_many(conns, options, concurrency))
        code = exit_code_for(results)
        if as_json:
            print_json(
                {
                    "status": {0: "ok", 4: "partial", 5: "locked"}.get(code, "failed"),
                    "dry_run": dry_run,
                    "connections": [r.to_dict() for r in results],
                }
            )
        else:
            out.print(results_table(results))
            from pms_cli.cli.output import print_error
            from pms_cli.errors import PmsError

            for r in results:
                if r.error:
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
        if code:
            raise typer.Exit(code)
