"""`pms db sql` and `pms db migrate`: the schema for Postgres/Supabase."""

from __future__ import annotations

import typer

db_app = typer.Typer(
    help="Print or apply the database schema (Postgres / Supabase).", no_args_is_help=True
)


@db_app.command("sql")
def sql(
    no_transaction: bool = typer.Option(
        False, "--no-transaction", help="Omit BEGIN/COMMIT (the Supabase CLI wraps files itself)."
    ),
) -> None:
    """Print the full migration SQL (tables, indexes, row-level security, policies, and the
    Procrastinate schema that `pms worker` queues its jobs in).

    Paste it into the Supabase SQL editor or save it as a file in `supabase/migrations/`.
    Example:

    \b
      pms db sql > supabase/migrations/20260101000000_pms.sql
    """
    import sys

    from pms_cli.stores.migrations import migration_sql

    sys.stdout.write(migration_sql(transaction=not no_transaction))


@db_app.command("migrate")
def migrate(
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Apply the migration to PMS_DATABASE_URL (pms's tables and the `pms worker` queue's
    Procrastinate schema); idempotent and versioned (safe to rerun).

    Without PMS_DATABASE_URL the local SQLite file is used, whose schema is created on open.
    Example:

    \b
      PMS_DATABASE_URL=postgresql://pms@localhost/pms pms db migrate
    """
    from pms_cli.cli.output import out, print_json
    from pms_cli.config import load_settings

    settings = load_settings()
    if settings.database_url is None and settings.supabase_url:
        from pms_cli.errors import ConfigError

        raise ConfigError(
            "`pms db migrate` needs a Postgres connection; PostgREST cannot create tables",
            hint="Set PMS_DATABASE_URL to the Supabase project's connection string (Settings → "
            "Database) and rerun, or paste `pms db sql` into the Supabase SQL editor.",
            code="config_invalid",
        )
    if settings.database_url is None:
        from pms_cli.stores.schema import SCHEMA_VERSION
        from pms_cli.stores.sqlite import SqliteStore

        store = SqliteStore(settings.resolved_sqlite_path)  # creates/upgrades on open
        applied: list[int] = []
        version: int | None = SCHEMA_VERSION
        description = store.description
        store.close()
    else:
        from pms_cli.stores.postgres import PostgresStore

        pg = PostgresStore(settings.database_url.get_secret_value(), check_schema=False)
        try:
            applied = pg.migrate()
            version = pg.schema_version()
            description = pg.description
        finally:
            pg.close()
    if as_json:
        print_json({"store": description, "applied": applied, "version": version})
    elif applied:
        out.print(
            f"Applied schema version(s) {', '.join(map(str, applied))} to {description}; "
            f"now at version {version}."
        )
    else:
        out.print(f"{description} is already at version {version}; nothing to do.")
