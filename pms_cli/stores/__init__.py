"""Store selection: Supabase when configured, else Postgres, else the local SQLite file."""

from __future__ import annotations

from pms_cli.config import Settings
from pms_cli.errors import ConfigError
from pms_cli.stores.base import Connection, Store, SyncRun

__all__ = ["Connection", "Store", "SyncRun", "open_store"]


def open_store(settings: Settings) -> Store:
    if settings.supabase_url or settings.supabase_service_key or settings.database_url:
        raise ConfigError(
            "Supabase and Postgres stores are not available in this version",
            hint="Unset PMS_SUPABASE_URL / PMS_DATABASE_URL to use the local SQLite store.",
            code="store_unsupported",
        )
    from pms_cli.stores.sqlite import SqliteStore

    return SqliteStore(settings.resolved_sqlite_path)
