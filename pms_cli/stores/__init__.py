"""Store selection: Supabase when configured, else Postgres, else the local SQLite file."""

from __future__ import annotations

from pms_cli.config import Settings
from pms_cli.stores.base import Connection, Store, SyncRun

__all__ = ["Connection", "Store", "SyncRun", "open_store"]


def open_store(settings: Settings) -> Store:
    """Supabase when configured, else Postgres, else SQLite."""
    if settings.supabase_url or settings.supabase_service_key:
        from pms_cli.stores.supabase import SupabaseStore

        return SupabaseStore.from_settings(settings)
    if settings.database_url is not None:
        from pms_cli.stores.postgres import PostgresStore

        return PostgresStore(settings.database_url.get_secret_value())
    from pms_cli.stores.sqlite import SqliteStore

    return SqliteStore(settings.resolved_sqlite_path)
