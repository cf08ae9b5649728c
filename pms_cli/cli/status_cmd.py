"""`pms status` and `pms logs`."""

from __future__ import annotations

from typing import Any

import typer


def register(app: typer.Typer) -> None:
    @app.command("status")
    def status(
        connection: str | None = typer.Option(
            None, "--connection", "-c", metavar="ID", help="Only this connection."
        ),
        all_: bool = typer.Option(False, "--all", help="Also disconnected connections."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """Each connection: provider, credential source, last sync, row counts, cursors, health.

        Exits 1 when a connection needs attention (credentials missing, last run failed, or
        marked error), so monitoring can run it.

        Example: `pms status --json`
        """
        import os

        from pms_cli.cli.common import find_connection, settings_and_store
        from pms_cli.cli.output import print_json
        from pms_cli.errors import EXIT_FAILED, ConfigError
        from pms_cli.providers import get_provider

        # Only what this command needs: get_provider imports the one module of each provider
        # in use, and neither rich nor the keyring is loaded unless output or a lookup needs it.

        _, store = settings_and_store()
        if connection:
            conns = [find_connection(store, connection, allow_disconnected=True)]
        else:
            conns = store.list_connections(include_disconnected=all_)
        rows: list[dict[str, Any]] = []
        for c in conns:
            source = "n/a"
            problem: dict[str, str] | None = None
            if c.status != "disconnected":
                try:
                    provider = get_provider(c.provider)
                    from pms_cli.sync.session import connection_credentials

                    _, source = connection_credentials(provider, c, os.environ)
                except ConfigError as exc:
                    source = "missing"
                    problem = {"message": exc.message, "hint": exc.hint}
            last = store.list_runs(c.id, limit=1)
            unmapped = [m for m in store.list_mappings(c.id) if not m["property_id"]]
            rows.append(
                {
                    "connection_id": c.id,
                    "provider": c.provider,
                    "display_name": c.display_name,
                    "organization_id": c.organization_id,
                    "status": c.status,
                    "account_ref": c.account_ref,
                    "credentials": source if source != "file" else "file (insecure storage)",
                    "credentials_problem": problem,
                    "last_sync_at": c.last_sync_at,
                    "last_run": {
                        "status": last[0].status,
                        "started_at": last[0].started_at,
                        "error_code": last[0].error_code,
                        "error_message": last[0].error_message,
                        "error_hint": last[0].error_hint,
                    }
                    if last
                    else None,
                    "counts": store.counts(c.id),
                    "cursors": store.cursors(c.id),
                    "unmapped_properties": len(unmapped),
                    "locked": store.lock_holder(c.id) is not None,
                    "webhooks": store.inbox_counts(c.id),
                }
            )
            rows[-1]["healthy"] = _healthy(rows[-1])
        code = 0 if all(r["healthy"] for r in rows) else EXIT_FAILED
        if as_json:
            print_json({"store": store.description, "connections": rows})
            raise typer.Exit(code)
        from rich.table import Table

        from pms_cli.cli.output import err, out, safe, when

        # Piped, stdout carries only the tab-separated rows: the store line goes to stderr.
        (out if out.is_terminal else err).print(f"Store: {safe(store.description)}")
        if not rows:
            out.print("No connections yet. Try `pms demo`, then `pms connect hostaway`.")
            return
        table = Table(show_lines=True)
        for col in (
            "connection",
            "provider",
            "status",
            "credentials",
            "last sync",
            "rows",
            "health",
        ):
            table.add_column(col, overflow="fold")
        for r in rows:
            counts = r["counts"]
            health = "ok"
            if r["last_run"] and r["last_run"]["status"] not in ("succeeded", "running"):
                last = r["last_run"]
                health = f"{safe(last['status'])}: {safe(last['error_message'])}"
                if last["error_hint"]:
                    health += f"\nHint: {safe(last['error_hint'])}"
            hooks = r["webhooks"]
            stuck = {k: hooks[k] for k in ("retry", "failed", "invalid") if hooks.get(k)}
            if stuck:
                health += "\nwebhooks: " + ", ".join(f"{n} {k}" for k, n in stuck.items())
                health += "\nHint: see `pms logs --webhooks`"
            if r["credentials"] == "missing":
                health = "credentials missing: run `pms connect` again or set the env vars"
                if r["credentials_problem"]:
                    # The provider's own diagnosis (e.g. Smoobu: key without its secret).
                    health = f"Error: {r['credentials_problem']['message']}"
                    health += f"\nHint: {r['credentials_problem']['hint']}"
            table.add_row(
                f"{safe(r['connection_id'])}\n{safe(r['display_name'])}",
                safe(r["provider"]),
                safe(r["status"]) + (" (sync running)" if r["locked"] else ""),
                safe(r["credentials"]),
                when(r["last_sync_at"]),
                f"properties {counts['property']}\nbookings {counts['booking']}\n"
                f"guests {counts['guest']}"
                + (
                    f"\nunmapped properties {r['unmapped_properties']}"
                    if r["unmapped_properties"]
                    else ""
                ),
                health,
            )
        from pms_cli.cli.tabular import print_table

        print_table(table)
        raise typer.Exit(code)

    @app.command("logs")
    def logs(
        connection: str | None = typer.Option(
            None, "--connection", "-c", help="Only this connection."
        ),
        failed: bool = typer.Option(
            False, "--failed", help="Only failed, partial or interrupted runs."
        ),
        limit: int = typer.Option(
            20, "--limit", "-n", min=1, max=1_000_000, help="How many runs (newest first)."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
        webhooks: bool = typer.Option(
            False,
            "--webhooks",
            help="The webhook inbox instead: received events, status, attempts, errors "
            "(--failed: only retrying, failed and invalid ones).",
        ),
    ) -> None:
        """The sync log, newest first, with error codes and hints.

        Example: `pms logs --failed --limit 5`, `pms logs --webhooks --failed`
        """
        if webhooks:
            _webhook_logs(connection, failed, limit, as_json)
            return
        from rich.table import Table

        from pms_cli.cli.common import find_connection, settings_and_store
        from pms_cli.cli.output import out, print_json, safe, when
        from pms_cli.cli.tabular import print_table

        _, store = settings_and_store()
        conn_id = (
            find_connection(store, connection, allow_disconnected=True).id if connection else None
        )
        runs = store.list_runs(conn_id, failed_only=failed, limit=limit)
        if as_json:
            print_json([vars(r) for r in runs])
            return
        if not runs:
            out.print("No failed runs." if failed else "No sync runs yet.")
            return
        table = Table()
        for col in ("started", "connection", "trigger", "status", "requests", "rows", "error"):
            table.add_column(col, overflow="fold")
        for r in runs:
            rows = sum(sum(v.get("written", {}).values()) for v in (r.counts or {}).values())
            error = ""
            if r.error_code:
                error = f"{safe(r.error_code)}: {safe(r.error_message)}"
                if r.error_hint:
                    error += f"\nHint: {safe(r.error_hint)}"
            table.add_row(
                when(r.started_at),
                safe(r.connection_id[:8]),
                safe(r.trigger),
                safe(r.status),
                str(r.requests or 0),
                str(rows),
                error,
            )
        print_table(table)


def _healthy(row: dict[str, Any]) -> bool:
    """False when the user must act: credentials missing, last run failed, status error."""
    if row["status"] == "disconnected":
        return True  # shown with --all; nothing to fix
    last = row["last_run"] or {}
    return (
        row["credentials"] != "missing"
        and row["status"] != "error"
        and last.get("status") not in ("failed", "locked")
    )


def _webhook_logs(connection: str | None, failed: bool, limit: int, as_json: bool) -> None:
    """`pms logs --webhooks`: the inbox, newest first (payloads only with --json)."""
    from rich.table import Table

    from pms_cli.cli.common import find_connection, settings_and_store
    from pms_cli.cli.output import out, print_json, safe, when
    from pms_cli.cli.tabular import print_table

    _, store = settings_and_store()
    conn_id = find_connection(store, connection, allow_disconnected=True).id if connection else None
    statuses = ("retry", "failed", "invalid") if failed else None
    rows = store.inbox_list(conn_id, statuses, limit)
    if as_json:
        print_json([vars(r) for r in rows])
        return
    if not rows:
        out.print("No webhook events yet." if not failed else "No failed webhook events.")
        return
    table = Table()
    for col in ("received", "connection", "provider", "event", "status", "attempts", "error"):
        table.add_column(col, overflow="fold")
    for r in rows:
        payload = r.payload if isinstance(r.payload, dict) else {}
        change = payload.get("change") or {}
        event = (
            f"{change.get('action') or 'changed'} {change.get('resource', '')} "
            f"{change.get('external_id', '')}".strip()
            if change
            else str(payload.get("ignored") or "")
        )
        error = safe(r.error)
        if r.status == "retry" and r.next_attempt_at:
            error += f"\nnext attempt {when(r.next_attempt_at)}"
        table.add_row(
            when(r.received_at),
            safe(r.connection_id[:8]),
            safe(r.provider),
            safe(event),
            safe(r.status),
            str(r.attempts),
            error,
        )
    print_table(table)
