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
    from pms_cli.errors import ConfigError

    if settings.database_url is not None:
        from urllib.parse import urlsplit

        url = settings.database_url.get_secret_value()
        scheme = urlsplit(url).scheme
        if scheme not in ("postgres", "postgresql"):
            raise ConfigError(
                f"PMS_DATABASE_URL has the scheme {scheme or '(none)'!r}; pms stores in PostgreSQL",
                hint="Use postgresql://user:password@host:5432/db (or postgres://); for SQLite "
                "unset it and set PMS_SQLITE_PATH; for Supabase set PMS_SUPABASE_URL and "
                "PMS_SUPABASE_SERVICE_KEY.",
                code="config_invalid",
            )
        from pms_cli.stores.postgres import PostgresStore

        return PostgresStore(url)
    from pms_cli.stores.sqlite import SqliteStore

    path = settings.resolved_sqlite_path
    if settings.sqlite_path is not None and not path.parent.is_dir():
        # A typo in the path must not silently start a new, empty database elsewhere.
        raise ConfigError(
            f"PMS_SQLITE_PATH {path} is in a folder that does not exist",
            hint=f"Create {path.parent} first, or fix the path.",
            code="config_invalid",
        )
    return SqliteStore(path)
