"""`pms demo`: sandboxes on 127.0.0.1 → connect → sync → show what landed in local SQLite."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        listings: int = typer.Option(
            8, "--listings", min=1, metavar="N", help="Sandbox properties per provider."
        ),
        reservations: int = typer.Option(
            300, "--reservations", min=0, metavar="N", help="Sandbox bookings per provider."
        ),
        reset: bool = typer.Option(False, "--reset", help="Start from an empty demo database."),
        as_json: bool = typer.Option(False, "--json", help="Print the sync summary as JSON."),
    ) -> None:
        """Try pms with no account: start the built-in sandboxes, connect, sync, show the rows.

        Uses its own SQLite file and config dir under the user data dir (path printed), so it never
        touches your real connections. Sandbox credentials are fake and kept in the demo's
        insecure-storage file. Run it twice: the second sync is incremental.
        """
        import asyncio
        import os

        from pydantic import SecretStr
        from rich.table import Table

        from pms_cli import connections
        from pms_cli.cli.output import err, out, print_json, safe
        from pms_cli.cli.sync_cmd import exit_code_for, results_table
        from pms_cli.cli.tabular import print_table
        from pms_cli.config import data_dir, load_settings
        from pms_cli.providers import get_provider
        from pms_cli.sandbox.server import SandboxOptions, build, running
        from pms_cli.stores.sqlite import SqliteStore
        from pms_cli.sync.engine import SyncEngine, SyncOptions
        from pms_cli.sync.session import Runtime

        home = data_dir() / "demo"
        db_path = home / "demo.sqlite3"
        if reset and db_path.exists():
            for suffix in ("", "-wal", "-shm"):
                (home / f"demo.sqlite3{suffix}").unlink(missing_ok=True)
        # The demo keeps its fake credentials in its own config dir, never in the user's.
        os.environ["PMS_CONFIG_DIR"] = str(home / "config")
        settings = load_settings(sqlite_path=db_path)
        store = SqliteStore(db_path)
        app_, mounted = build(SandboxOptions(listings=listings, reservations=reservations))
        with running(app_) as server:
            if not as_json:
                err.print(
                    f"Sandboxes running on {server.url} ({', '.join(m.provider for m in mounted)})"
                )
            runtime = Runtime(settings)
            conns = []
            existing = {c.provider: c for c in store.list_connections()}
            for m in mounted:
                cls = get_provider(m.provider)
                base_url = server.base_url(m)
                conn = existing.get(m.provider)
                if conn is None:
                    public = {
                        f.name: m.credentials[f.name]
                        for f in cls.public_fields()
                        if f.name in m.credentials
                    }
                    secrets = {
                        f.name: SecretStr(m.credentials[f.name])
                        for f in cls.secret_fields()
                        if f.name in m.credentials
                    }
                    conn, _ = connections.connect(
                        store,
                        runtime,
                        m.provider,
                        public,
                        secrets,
                        organization_id=settings.organization_id,
                        display_name=f"{cls.title} sandbox",
                        base_url=base_url,
                        secret_mode="file",
                    )
                else:
                    # The sandbox port changes every run: point the connection at this one.
                    conn.settings["base_url"] = base_url
                    store.update_connection(conn.id, settings=conn.settings)
                conns.append(conn)
            results = asyncio.run(
                SyncEngine(store, runtime).sync_many(conns, SyncOptions(trigger="demo"))
            )
        if as_json:
            print_json({"database": str(db_path), "connections": [r.to_dict() for r in results]})
        else:
            print_table(results_table(results, "Demo sync"))
            for conn in conns:
                table = Table(title=f"{conn.display_name}: first bookings")
                for col in (
                    "booking",
                    "property",
                    "status",
                    "check-in",
                    "check-out",
                    "guest",
                    "total",
                ):
                    table.add_column(col)
                for row in store.fetch_rows("booking", conn.id)[:8]:
                    total = (
                        f"{row['total_price']} {row['currency'] or ''}"
                        if row["total_price"] is not None
                        else ""
                    )
                    table.add_row(
                        row["external_id"],
                        row["property_external_id"] or "",
                        row["status"],
                        str(row["check_in"] or ""),
                        str(row["check_out"] or ""),
                        safe(row["guest_name"] or ""),
                        total,
                    )
                print_table(table)
                counts = store.counts(conn.id)
                out.print(
                    f"{conn.display_name}: {counts['property']} properties, "
                    f"{counts['booking']} bookings, {counts['guest']} guests"
                )
            out.print(f"\nDatabase: {db_path}")
            out.print(
                "Look inside: sqlite3 "  # noqa: S608
                + str(db_path)
                + " 'select status, count(*) from pms_bookings group by 1'"
            )
            out.print("Next: `pms providers`, then `pms connect hostaway` with your real keys.")
        store.close()
        code = exit_code_for(results)
        if code:
            raise typer.Exit(code)
