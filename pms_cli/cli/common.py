"""Shared CLI plumbing: settings, store, connection lookup."""

from __future__ import annotations

from pms_cli.config import Settings, load_settings
from pms_cli.errors import ConfigError
from pms_cli.stores import Store, open_store
from pms_cli.stores.base import Connection


def settings_and_store() -> tuple[Settings, Store]:
    settings = load_settings()
    return settings, open_store(settings)


def find_connection(store: Store, ref: str, *, allow_disconnected: bool = False) -> Connection:
    """A connection by full ID or unique prefix (as git does with commit ids)."""
    exact = store.get_connection(ref)
    if exact is not None:
        matches = [exact]
    else:
        matches = (
            [c for c in store.list_connections(include_disconnected=True) if c.id.startswith(ref)]
            if len(ref) >= 4
            else []
        )
    if not matches:
        raise ConfigError(
            f"no connection with ID {ref!r}",
            hint="List connections with `pms status`, or create one with `pms connect PROVIDER`.",
            code="unknown_connection",
        )
    if len(matches) > 1:
        raise ConfigError(
            f"connection ID prefix {ref!r} is ambiguous",
            hint="Give more characters of the ID (see `pms status`).",
            code="ambiguous_connection",
        )
    conn = matches[0]
    if conn.status == "disconnected" and not allow_disconnected:
        raise ConfigError(
            f"connection {conn.id} is disconnected",
            hint=f"Run `pms connect {conn.provider}` to connect the account again.",
            code="disconnected",
        )
    return conn
