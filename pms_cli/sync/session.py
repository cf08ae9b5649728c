"""Builds a live provider adapter (HTTP client, auth, limiter) for a connection or a candidate."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from pms_cli import credentials
from pms_cli.config import Settings
from pms_cli.errors import ConfigError
from pms_cli.http import ratelimit
from pms_cli.http.client import HttpClient
from pms_cli.http.clock import Clock, SystemClock
from pms_cli.http.ratelimit import Budget, LimiterRegistry, RateLimiter, Window
from pms_cli.http.tokens import (
    EncryptedRowStore,
    EncryptedStoreTokenCache,
    KeyringTokenCache,
    TokenCache,
)
from pms_cli.providers import get_provider
from pms_cli.providers.base import Provider, ProviderContext
from pms_cli.redact import register_secret
from pms_cli.stores.base import Connection


@dataclass
class Runtime:
    """Process-wide things every session shares: clock, limiters, transport, request cap."""

    settings: Settings
    clock: Clock = field(default_factory=SystemClock)
    # Looked up at construction so tests can swap the process-wide registry.
    limiters: LimiterRegistry = field(default_factory=lambda: ratelimit.GLOBAL_LIMITERS)
    transport: httpx.AsyncBaseTransport | None = None
    token_cache: TokenCache | None = None
    env: Mapping[str, str] = field(default_factory=lambda: os.environ)
    _in_flight: asyncio.Semaphore | None = None

    def in_flight(self) -> asyncio.Semaphore:
        if self._in_flight is None:
            self._in_flight = asyncio.Semaphore(self.settings.http.max_in_flight)
        return self._in_flight


def connection_credentials(
    provider: type[Provider], conn: Connection, env: Mapping[str, str]
) -> tuple[dict[str, SecretStr], str]:
    """Resolve a connection's secrets (env → keyring → file) or raise a ConfigError naming both."""
    public = conn.settings.get("public", {})
    # Env secrets belong to the account named by the env's account variable, when there is one.
    env_applies = all(
        env.get(f.env) in (None, "", public.get(f.name))
        for f in provider.public_fields()
        if f.env and f.required
    )
    fields = {f.name: (f.env if env_applies else None) for f in provider.secret_fields()}
    required = frozenset(f.name for f in provider.secret_fields() if f.required)
    secrets, source = credentials.resolve(conn.id, conn.secret_location, fields, env, required)
    problem = provider.credential_problem({*secrets, *public})
    if problem is not None:
        raise problem
    missing = [f for f in provider.secret_fields() if f.required and f.name not in secrets]
    if missing:
        names = ", ".join(f.env or f.name for f in missing)
        raise ConfigError(
            f"no credentials found for connection {conn.id} ({provider.title})",
            hint=f"Set {names}, or run `pms connect {provider.name}` again to store them "
            "in the keyring.",
            code="credentials_missing",
        )
    return secrets, source


def rate_limits(
    provider: type[Provider], settings: Settings, conn_settings: Mapping[str, Any]
) -> tuple[tuple[Window, ...], tuple[Window, ...]]:
    """Per-account and per-IP windows: the documented ones unless config overrides them."""
    override = conn_settings.get("rate_limits") or settings.provider(provider.name).rate_limits
    if override:
        return tuple(Window.parse(s) for s in override), ()
    return provider.rate_limits, provider.ip_rate_limits


@asynccontextmanager
async def open_adapter(
    runtime: Runtime,
    provider_name: str,
    *,
    connection_id: str,
    public: Mapping[str, str],
    secrets: Mapping[str, SecretStr],
    conn_settings: Mapping[str, Any],
    token_store: EncryptedRowStore | None,
    on_event: Callable[[str, dict[str, Any]], None] | None = None,
    on_secret_rotated: Callable[[str, str], None] | None = None,
    account_ref: str | None = None,
) -> AsyncIterator[Provider]:
    """An authenticated adapter whose HTTP client closes on exit."""
    provider = get_provider(provider_name)
    for secret in secrets.values():
        # From here on, any text that echoes the secret (a provider error body) is masked.
        register_secret(secret.get_secret_value())
    # A connected account's ref (from check()) keys its rate-limit budget and token cache.
    account_ref = account_ref or provider.account_ref_from(public)
    token_cache = runtime.token_cache
    if token_cache is None:
        if credentials.keyring_available():
            token_cache = KeyringTokenCache()
        elif token_store is not None:
            key_material = "\x00".join(s.get_secret_value() for s in secrets.values())
            token_cache = EncryptedStoreTokenCache(token_store, key_material)
        else:
            from pms_cli.http.tokens import MemoryTokenCache

            token_cache = MemoryTokenCache()
    ctx = ProviderContext(
        connection_id=connection_id,
        account_ref=account_ref,
        credentials=secrets,
        public=public,
        token_cache=token_cache,
        on_secret_rotated=on_secret_rotated,
        provider=provider.name,
    )
    account, ip = rate_limits(provider, runtime.settings, conn_settings)
    windows: list[Budget] = [
        runtime.limiters.window(f"{provider.name}:{account_ref}", w) for w in account
    ]
    windows += [runtime.limiters.ip_window(f"{provider.name}:ip", w) for w in ip]
    limiter = RateLimiter(
        clock=runtime.clock,
        windows=windows,
        credits=runtime.limiters.credits(f"{provider.name}:{account_ref}")
        if provider.credit_headers
        else None,
        read_credits=provider.credit_headers,
    )
    base_url = provider.resolve_base_url(
        conn_settings.get("base_url"), runtime.settings.provider(provider.name).base_url
    )
    http = HttpClient(
        provider=provider.name,
        base_url=base_url,
        auth=provider.build_auth(ctx),
        limiter=limiter,
        settings=runtime.settings.http,
        clock=runtime.clock,
        transport=runtime.transport,
        auth_hint=provider.auth_hint,
        retry_after=provider.retry_after,
        in_flight=runtime.in_flight(),
        on_event=on_event,
    )
    try:
        yield provider(ctx, http)
    finally:
        await http.aclose()


def open_connection_adapter(
    runtime: Runtime,
    conn: Connection,
    token_store: EncryptedRowStore | None,
    on_event: Callable[[str, dict[str, Any]], None] | None = None,
) -> AbstractAsyncContextManager[Provider]:
    """``open_adapter`` for a stored connection: its credentials (env → keyring → file), its
    settings, its account ref, and rotated secrets (Beds24) written back where it keeps them."""
    provider = get_provider(conn.provider)
    secrets, _ = connection_credentials(provider, conn, runtime.env)

    def rotated(name: str, value: str) -> None:
        credentials.update_secret(conn.id, conn.secret_location, name, value)

    return open_adapter(
        runtime,
        conn.provider,
        connection_id=conn.id,
        public=conn.settings.get("public", {}),
        secrets=secrets,
        conn_settings=conn.settings,
        token_store=token_store,
        on_event=on_event,
        on_secret_rotated=rotated,
        account_ref=conn.account_ref,
    )
