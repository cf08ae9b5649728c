"""Connecting and disconnecting accounts (library API behind `pms connect` / `pms disconnect`)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import SecretStr

from pms_cli import credentials
from pms_cli.errors import ConfigError
from pms_cli.providers import get_provider
from pms_cli.providers.base import AccountInfo
from pms_cli.stores.base import Connection, Store
from pms_cli.sync.session import Runtime, open_adapter


async def verify(
    runtime: Runtime,
    provider_name: str,
    public: Mapping[str, str],
    secrets: Mapping[str, SecretStr],
    conn_settings: Mapping[str, Any],
    store: Store | None,
    connection_id: str = "candidate",
) -> tuple[AccountInfo, dict[str, SecretStr]]:
    """Run the provider's setup step and one cheap live call; returns the secrets to keep."""
    async with open_adapter(
        runtime,
        provider_name,
        connection_id=connection_id,
        public=public,
        secrets=secrets,
        conn_settings=conn_settings,
        token_store=store,
    ) as adapter:
        kept = await adapter.setup()
        return await adapter.check(), kept


def same_account(
    store: Store, provider: str, account_ref: str, organization_id: str
) -> Connection | None:
    """An active connection of this provider account in this organization, if any."""
    if not account_ref:
        return None  # nothing identifies the account: never guess
    for conn in store.list_connections():
        if (conn.provider, conn.account_ref, conn.organization_id) == (
            provider,
            account_ref,
            organization_id,
        ):
            return conn
    return None


def connect(
    store: Store,
    runtime: Runtime,
    provider_name: str,
    public: Mapping[str, str],
    secrets: Mapping[str, SecretStr],
    *,
    organization_id: str,
    display_name: str | None = None,
    base_url: str | None = None,
    secret_mode: str = "keyring",
    existing: Connection | None = None,
    reuse: Callable[[Connection], bool] | None = None,
) -> tuple[Connection, bool]:
    """Verify, store secrets (``keyring``/``file``; ``env`` = read at run time), add a row.

    Returns the connection and whether it existed. ``existing`` re-keys that connection (the
    credentials must be for its account). Otherwise, when the verified account is already
    connected in the organization, ``reuse(that connection)`` decides between updating its
    credentials (True) and a second connection (False; also when ``reuse`` is None): two
    connections of one account write every booking twice.

    Nothing is written unless verification passed; secrets are removed again if the row fails.
    """
    provider = get_provider(provider_name)
    credentials.check_values({**public, **secrets})  # before any request is built from them
    connection_id = existing.id if existing else str(uuid.uuid4())
    conn_settings: dict[str, Any] = {"public": dict(public)}
    if base_url:
        conn_settings["base_url"] = base_url
    elif existing is not None and existing.settings.get("base_url"):
        conn_settings["base_url"] = existing.settings["base_url"]
    info, secrets = asyncio.run(
        verify(runtime, provider.name, public, secrets, conn_settings, store, connection_id)
    )
    if existing is None and reuse is not None:
        same = same_account(store, provider.name, info.account_ref, organization_id)
        if same is not None and reuse(same):
            existing = same
    if existing is not None:
        updated = _rekey(store, existing, info, secrets, secret_mode, conn_settings, display_name)
        return updated, True
    if secret_mode != "env" and secrets:
        credentials.save_secrets(connection_id, secrets, insecure_storage=secret_mode == "file")
    conn = Connection(
        id=connection_id,
        organization_id=organization_id,
        provider=provider.name,
        display_name=display_name or info.display_name,
        status="active",
        account_ref=info.account_ref,
        secret_location=secret_mode,
        settings=conn_settings,
    )
    try:
        store.add_connection(conn)
    except BaseException:
        credentials.delete_secrets(connection_id, secret_mode)
        raise
    return conn, False


def _rekey(
    store: Store,
    conn: Connection,
    info: AccountInfo,
    secrets: Mapping[str, SecretStr],
    secret_mode: str,
    conn_settings: Mapping[str, Any],
    display_name: str | None,
) -> Connection:
    """New credentials for an existing connection: same id, rows, cursors and mappings."""
    if conn.account_ref and info.account_ref and conn.account_ref != info.account_ref:
        raise ConfigError(
            f"these credentials are for {conn.provider} account {info.account_ref}, but "
            f"connection {conn.id} is account {conn.account_ref}",
            hint=f"Connect that account as a new connection: `pms connect {conn.provider} --new`.",
            code="account_mismatch",
        )
    if secret_mode != "env" and secrets:
        credentials.save_secrets(conn.id, secrets, insecure_storage=secret_mode == "file")
    if conn.secret_location != secret_mode:
        credentials.delete_secrets(conn.id, conn.secret_location)  # no stale copy elsewhere
    fields: dict[str, Any] = {
        "status": "active",
        "account_ref": info.account_ref or conn.account_ref,
        "secret_location": secret_mode,
        "settings": {**conn.settings, **conn_settings},
        "last_error": None,
    }
    if display_name:
        fields["display_name"] = display_name
    store.update_connection(conn.id, **fields)
    updated = store.get_connection(conn.id)
    assert updated is not None
    return updated


def disconnect(store: Store, conn: Connection, *, purge: bool = False) -> dict[str, int]:
    """Mark disconnected and forget its secrets; ``purge`` also deletes its synced rows."""
    credentials.delete_secrets(conn.id, conn.secret_location)
    # Cached access tokens are keyed "<provider>:<account_ref>" (see ProviderContext.token_key).
    token_key = f"{conn.provider}:{conn.account_ref}"
    store.token_cache_delete(token_key)
    if credentials.keyring_available():
        from pms_cli.http.tokens import KeyringTokenCache

        KeyringTokenCache().delete(token_key)
    removed = store.purge_connection(conn.id) if purge else {}
    store.update_connection(conn.id, status="disconnected")
    return removed
