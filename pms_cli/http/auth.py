"""Auth flows shared by providers: static headers and cached bearer-style tokens.

Tokens are cached across runs (``TokenCache``) because providers limit or discourage minting:
Guesty issues 5 tokens a day, Hostaway asks clients to reuse its 24-month token, Beds24 charges
credits per token. A token is renewed once when the provider says it is invalid.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from pms_cli.http.client import HttpClient
from pms_cli.http.tokens import CachedToken, TokenCache
from pms_cli.redact import register_secret


@dataclass
class HeaderAuth:
    """Static credentials sent as headers on every request (API keys)."""

    headers: Mapping[str, str]
    failure_statuses: frozenset[int] = frozenset({401})

    def __post_init__(self) -> None:
        for value in self.headers.values():
            register_secret(value)

    async def apply(self, request: httpx.Request, http: HttpClient) -> None:
        request.headers.update(self.headers)

    def is_auth_failure(self, response: httpx.Response) -> bool:
        return response.status_code in self.failure_statuses

    async def renew(self, http: HttpClient, rejected: httpx.Request | None = None) -> bool:
        return False


TokenFetcher = Callable[[HttpClient], Awaitable[CachedToken]]


@dataclass
class TokenAuth:
    """A token fetched by ``fetch``, cached in ``cache`` under ``cache_key``, sent by ``header``.

    ``activation_delay`` covers providers whose new tokens are not valid at once (Hostaway: 1 s).
    ``expiry_margin`` renews a little before the advertised expiry.
    """

    fetch: TokenFetcher
    cache: TokenCache
    cache_key: str
    header: str = "Authorization"
    scheme: str = "Bearer"
    failure_statuses: frozenset[int] = frozenset({401})
    activation_delay: float = 0.0
    expiry_margin: float = 300.0
    failure_check: Callable[[httpx.Response], bool] | None = None
    """Overrides ``failure_statuses`` for providers whose rejections need a closer look."""
    _token: CachedToken | None = field(default=None, init=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    async def apply(self, request: httpx.Request, http: HttpClient) -> None:
        token = await self._current(http)
        request.headers[self.header] = self._header_value(token)

    def _header_value(self, token: CachedToken) -> str:
        return f"{self.scheme} {token.value}" if self.scheme else token.value

    async def _current(self, http: HttpClient) -> CachedToken:
        async with self._lock:
            now = http.clock.time()
            if self._token is None:
                self._token = await asyncio.to_thread(self.cache.get, self.cache_key)
            if self._token is not None and self._token.valid_at(now + self.expiry_margin):
                register_secret(self._token.value)
                return self._token
            return await self._mint(http)

    async def _mint(self, http: HttpClient) -> CachedToken:
        token = await self.fetch(http)
        register_secret(token.value)
        self._token = token
        await asyncio.to_thread(self.cache.put, self.cache_key, token)
        if self.activation_delay:
            await http.clock.sleep(self.activation_delay)
        return token

    def is_auth_failure(self, response: httpx.Response) -> bool:
        if self.failure_check is not None:
            return self.failure_check(response)
        return response.status_code in self.failure_statuses

    async def renew(self, http: HttpClient, rejected: httpx.Request | None = None) -> bool:
        async with self._lock:
            # Concurrent requests rejected with the same token renew it once: one sent with an
            # older token than the current one just retries with the current one.
            current = self._token
            sent = None if rejected is None else rejected.headers.get(self.header)
            if current is not None and sent is not None and sent != self._header_value(current):
                return True
            await asyncio.to_thread(self.cache.delete, self.cache_key)
            self._token = None
            await self._mint(http)
            return True
