"""Connecting and disconnecting accounts (library API behind `pms connect` / `pms disconnect`)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr

from pms_cli import credentials
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
) -> Connection:
    """Verify, store secrets (``keyring``/``file``; ``env`` = read at run time), add a row.

    Nothing is written unless verification passed; secrets are removed again if the row fails.
    """
    provider = get_provider(provider_name)
    credentials.check_values({**public, **secrets})  # before any request is built from them
    connection_id = str(uuid.uuid4())
    conn_settings: dict[str, Any] = {"public": dict(public)}
    if base_url:
        conn_settings["base_url"] = base_url
    info, secrets = asyncio.run(
        verify(runtime, provider.name, public, secrets, conn_settings, store, connection_id)
    )
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
    return conn


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
