"""`pms config path` (which files and store pms uses) and `pms config env` (every variable)."""

from __future__ import annotations

from typing import Any

import typer

config_app = typer.Typer(
    help="Where pms reads its configuration, and every environment variable it reads.",
    no_args_is_help=True,
)

GENERAL_ENV = (
    ("PMS_CONFIG_DIR", "directory of config.toml and the --insecure-storage secrets file"),
    ("PMS_DATA_DIR", "directory of the default SQLite database"),
    ("PMS_SQLITE_PATH", "the SQLite database file (default: PMS_DATA_DIR/pms.sqlite3)"),
    ("PMS_DATABASE_URL", "postgresql://… : use PostgreSQL instead of SQLite (secret)"),
    ("PMS_SUPABASE_URL", "https://<project>.supabase.co : use Supabase (with the key below)"),
    ("PMS_SUPABASE_SERVICE_KEY", "Supabase service_role key (secret)"),
    ("PMS_ORGANIZATION_ID", "organization_id written on every row (default: default)"),
    ("PMS_LOG_LEVEL", "debug, info (every HTTP request, as -v) or warning (default)"),
    ("PMS_PROGRESS", "pms sync progress: auto (default), live, log or none"),
    ("PMS_DEBUG", "set to 1 to get a traceback for an unexpected error"),
    ("PMS_<PROVIDER>_BASE_URL", "another API server for a provider (sandbox, proxy)"),
    ("PMS_WEBHOOK_SECRETS_<CONNECTION_ID>", "webhook secrets of a connection as JSON (secret)"),
    ("PYTHON_KEYRING_BACKEND", "the keyring backend class (keyring's own variable)"),
)


def environment_variables() -> list[dict[str, Any]]:
    """Every variable pms reads: general, the PMS_SYNC__*/PMS_HTTP__* settings, credentials."""
    from pms_cli.config import HttpSettings, SyncSettings
    from pms_cli.providers import registry

    rows: list[dict[str, Any]] = [
        {"name": name, "group": "general", "description": what} for name, what in GENERAL_ENV
    ]
    for prefix, model in (("PMS_SYNC__", SyncSettings), ("PMS_HTTP__", HttpSettings)):
        for field_name, info in model.model_fields.items():
            rows.append(
                {
                    "name": f"{prefix}{field_name.upper()}",
                    "group": "settings",
                    "description": f"{info.description or field_name.replace('_', ' ')} "
                    f"(default {info.default})",
                }
            )
    for cls in registry().values():
        for f in cls.credential_fields:
            if f.env:
                kind = "secret" if f.secret else "account"
                rows.append(
                    {
                        "name": f.env,
                        "group": cls.name,
                        "description": f"{cls.title} {f.label} ({kind})",
                    }
                )
    return rows


@config_app.command("path")
def path(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Show the config file pms reads, its data dir and the store it would use.

    Example:

    \b
      pms config path --json
    """
    from pms_cli.cli.output import print_json
    from pms_cli.config import config_dir, config_file, data_dir, load_settings
    from pms_cli.credentials import insecure_file
    from pms_cli.redact import redact_url

    settings = load_settings()
    if settings.supabase_url or settings.supabase_service_key:
        store = f"supabase:{settings.supabase_url}"
    elif settings.database_url is not None:
        store = redact_url(settings.database_url.get_secret_value())
    else:
        store = f"sqlite:{settings.resolved_sqlite_path}"
    rows = {
        "config_file": str(config_file()),
        "config_file_exists": config_file().exists(),
        "config_dir": str(config_dir()),
        "data_dir": str(data_dir()),
        "secrets_file": str(insecure_file()),
        "store": store,
    }
    if as_json:
        print_json(rows)
        return
    from rich.table import Table

    from pms_cli.cli.tabular import print_table

    table = Table(title="pms configuration")
    table.add_column("what")
    table.add_column("where", overflow="fold")
    for key, value in rows.items():
        if key == "config_file_exists":
            continue
        shown = str(value)
        if key == "config_file" and not rows["config_file_exists"]:
            shown += " (absent: defaults and PMS_* variables apply)"
        table.add_row(key.replace("_", " "), shown)
    print_table(table)


@config_app.command("env")
def env(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List every environment variable pms reads, and whether it is set (values not shown).

    Example:

    \b
      pms config env
    """
    import os

    from pms_cli.cli.output import print_json

    rows = environment_variables()
    for row in rows:
        row["set"] = bool(os.environ.get(row["name"]))
    if as_json:
        print_json(rows)
        return
    from rich.table import Table

    from pms_cli.cli.tabular import print_table

    table = Table(title="Environment variables")
    for col in ("variable", "for", "what", "set"):
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(row["name"], row["group"], row["description"], "yes" if row["set"] else "")
    print_table(table)
