"""Shared CLI plumbing: settings, store, connection lookup."""

from __future__ import annotations

import contextlib

from pms_cli.config import Settings, load_settings
from pms_cli.errors import ConfigError
from pms_cli.stores import Store, open_store
from pms_cli.stores.base import Connection

_opened: list[Store] = []


def settings_and_store() -> tuple[Settings, Store]:
    """Settings and the configured store; `main()` closes the store when the command ends."""
    settings = load_settings()
    store = open_store(settings)
    _opened.append(store)
    # A role that sees nothing (no grant, or row-level security without an organization) must
    # not read as "no connections yet" / "no connection with ID": say so, with the fix.
    check_access = getattr(store, "check_access", None)
    if callable(check_access):
        check_access()
    return settings, store


def close_stores() -> None:
    while _opened:
        store = _opened.pop()
        with contextlib.suppress(Exception):  # closing twice or a dead server: nothing to save
            store.close()


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
    if not matches and len(ref) < 4:
        raise ConfigError(
            f"connection ID prefix {ref!r} is too short",
            hint="Give at least 4 characters of the ID (see `pms status`).",
            code="unknown_connection",
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
