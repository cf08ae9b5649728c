"""One client wrapper every provider uses: auth, rate limit, retries, JSON decoding, redaction.

Provider code never sleeps, never catches a 429 and never logs a header: it calls
``get_json`` and gets parsed JSON or a ``PmsError`` whose message is already redacted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

import asyncio
import email.utils
import json
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pms_cli.config import HttpSettings
from pms_cli.errors import AuthError, ProviderError, RateLimitedError
from pms_cli.http.clock import Clock, SystemClock
from pms_cli.http.ratelimit import RateLimiter
from pms_cli.redact import excerpt, redact_url

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})

log = logging.getLogger("pms.http")
"""Every request, retry, wait and renewal at INFO (``pms -v``); URLs redacted, never a header."""


class Auth(Protocol):
    """How a provider authenticates requests (see ``pms_cli.http.auth`` for implementations)."""

    async def apply(self, request: httpx.Request, http: HttpClient) -> None:
        """Add credentials to ``request`` (fetching or loading a token first if needed)."""

    def is_auth_failure(self, response: httpx.Response) -> bool:
        """True when the response means the credentials/token were rejected."""

    async def renew(self, http: HttpClient, rejected: httpx.Request | None = None) -> bool:
        """Drop the token ``rejected`` was sent with and get a new one (unless a concurrent
        request already did; None: renew regardless); False when renewing cannot help."""


class NoAuth:
    async def apply(self, request: httpx.Request, http: HttpClient) -> None:
        return None

    def is_auth_failure(self, response: httpx.Response) -> bool:
        return response.status_code == 401

    async def renew(self, http: HttpClient, rejected: httpx.Request | None = None) -> bool:
        return False


@dataclass
class HttpStats:
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    auth_renewals: int = 0
    rate_limit_waits: int = 0
    rate_limit_wait_seconds: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in vars(self).items()}


def jittered_backoff(exponent: int, base: float, cap: float, rng: random.Random) -> float:
    """``min(cap, base * 2**exponent)``, jittered to 50-100 % of that ceiling by ``rng``.

    The one backoff formula of pms (HTTP retries, webhook re-application), so tests can make
    every wait deterministic by seeding or patching ``rng``.
    """
    ceiling = min(cap, base * 2.0 ** max(0, exponent))
    return float(ceiling / 2 + rng.uniform(0, ceiling / 2))


def api_path(prefix: str, *segments: object) -> str:
    """``prefix/seg1/seg2…`` where each segment comes from data (an id from a webhook, a list,
    a booking) and is percent-quoted as one path segment: ``../me`` or ``1?x=y`` can never
    leave its place in the path. ``prefix`` is a path the adapter declares, kept as written.

    Every path built from data goes through here (adapters' ``fetch_one`` and detail calls);
    an empty, ``.`` or ``..`` segment is refused, as quoting cannot neutralise it.
    """
    from urllib.parse import quote

    parts = [prefix.rstrip("/")]
    for segment in segments:
        text = str(segment)
        if text in ("", ".", ".."):
            raise ProviderError(
                f"refusing to request {prefix}/{text!r}: not a record id",
                hint="The id came from provider or webhook data; report it if it persists.",
                code="invalid_id",
            )
        parts.append(quote(text, safe=""))
    return "/".join(parts)


def token_quota_error(provider: str) -> RateLimitedError:
    """429s that persist on a token endpoint: a token quota, not a busy API (Guesty issues 5
    tokens per client per 24 h), so waiting minutes or lowering concurrency will not help."""
    return RateLimitedError(
        f"{provider}'s token endpoint keeps refusing to issue an access token (HTTP 429): the "
        "account's token quota is used up (Guesty: 5 tokens per client ID per 24 hours)",
        hint="pms reuses its cached token across runs; the quota was spent by new tokens "
        "(other tools or machines using the same client ID, or a lost token cache). Wait for "
        "the 24-hour window to free a token, or create a separate API client for pms.",
        provider=provider,
        status=429,
    )


def parse_retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """``Retry-After`` as seconds (delta or HTTP date); None when absent or unparseable."""
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


@dataclass
class HttpClient:
    """Async JSON client bound to one provider connection."""

    provider: str
    base_url: str
    auth: Auth
    limiter: RateLimiter
    settings: HttpSettings = field(default_factory=HttpSettings)
    clock: Clock = field(default_factory=SystemClock)
    transport: httpx.AsyncBaseTransport | None = None
    auth_hint: str = "Check the credentials with `pms connect`."
    headers: Mapping[str, str] = field(default_factory=dict)
    retry_after: Callable[[Mapping[str, str], float], float | None] = parse_retry_after
    rng: random.Random = field(default_factory=random.Random)
    in_flight: asyncio.Semaphore | None = None
    on_event: Callable[[str, dict[str, Any]], None] | None = None
    stats: HttpStats = field(default_factory=HttpStats)

    def __post_init__(self) -> None:
        # httpx is imported here, not at module level: it costs ~0.3 s, and commands such as
        # `pms status` import provider modules without making a request.
        import httpx

        self._client = httpx.AsyncClient(
            base_url=self.base_url.rstrip("/") + "/",
            timeout=self.settings.timeout_seconds,
            transport=self.transport,
            headers={"Accept": "application/json", "User-Agent": "pms-cli", **self.headers},
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def backoff(self, attempt: int) -> float:
        """Wait before retrying after failed ``attempt`` (1-based)."""
        s = self.settings
        return jittered_backoff(
            attempt - 1, s.backoff_base_seconds, s.backoff_cap_seconds, self.rng
        )

    def _emit(self, kind: str, **data: Any) -> None:
        if self.on_event is not None:
            self.on_event(kind, data)

    def _waiting(self, seconds: float, reason: str) -> None:
        log.info("%s: waiting %.1fs for the %s", self.provider, seconds, reason)
        self._emit("waiting", seconds=seconds, reason=reason)

    async def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return await self.request_json("GET", path, params=params)

    async def request_json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        authenticate: bool = True,
    ) -> Any:
        """Send with retries and return decoded JSON; raises ``PmsError`` subclasses."""
        import httpx

        renewed = False
        attempt = 0
        last_problem = ""
        while True:
            attempt += 1
            if attempt > self.settings.max_attempts:
                raise ProviderError(
                    f"{self.provider} kept failing after {self.settings.max_attempts} attempts"
                    f" ({last_problem})",
                    hint="The provider looks unavailable; retry later (the sync resumes where"
                    " it stopped).",
                    code="provider_unavailable",
                    provider=self.provider,
                )
            if attempt > 1:
                self.stats.retries += 1
            request = self._client.build_request(
                method, path.lstrip("/"), params=params, data=data, json=json_body, headers=headers
            )
            if authenticate:
                # May fetch a token, itself a rate-limited request: take our slot only after it,
                # or the slot is recorded at a time long before this request is really sent.
                await self.auth.apply(request, self)
            permit = await self.limiter.acquire(on_wait=self._waiting)
            waited = permit.waited
            if waited:
                self.stats.rate_limit_waits += 1
                self.stats.rate_limit_wait_seconds += waited
                self._emit("rate_limit_wait", seconds=waited)
                if authenticate:
                    await self.auth.apply(request, self)  # re-sign: signatures carry a timestamp
            sent = self.clock.monotonic()
            try:
                try:
                    response = await self._send(request)
                finally:  # answered, failed or cancelled: the slot starts to expire now
                    permit.settle(self.clock.monotonic())
            except httpx.TimeoutException:
                last_problem = "timeout"
                self._log(request, last_problem, sent, attempt)
                await self._sleep_backoff(attempt, last_problem)
                continue
            except httpx.TransportError as exc:
                last_problem = f"connection error: {type(exc).__name__}"
                self._log(request, last_problem, sent, attempt)
                await self._sleep_backoff(attempt, last_problem)
                continue
            self.limiter.observe(response.headers)
            status = response.status_code
            self._log(request, str(status), sent, attempt)
            # Unauthenticated calls are token endpoints: a 401/403 there means bad credentials.
            rejected = (
                status in (401, 403) if not authenticate else self.auth.is_auth_failure(response)
            )
            if rejected:
                if authenticate and not renewed and await self.auth.renew(self, request):
                    renewed = True
                    self.stats.auth_renewals += 1
                    log.info("%s: token renewed after HTTP %s", self.provider, status)
                    attempt -= 1  # a renewal is not a failed attempt
                    continue
                raise AuthError(
                    f"{self.provider} rejected the credentials (HTTP {status})",
                    hint=self.auth_hint,
                    provider=self.provider,
                    status=status,
                    body_excerpt=excerpt(response.text),
                )
            if status == 429:
                self.stats.rate_limited += 1
                last_problem = "HTTP 429"
                delay = self.retry_after(response.headers, self.clock.time())
                if attempt >= self.settings.max_attempts and not authenticate:
                    raise token_quota_error(self.provider)
                if attempt >= self.settings.max_attempts:
                    raise RateLimitedError(
                        f"{self.provider} is still rate-limiting after "
                        f"{self.settings.max_attempts} attempts",
                        hint="Another client may share this account's quota; retry later or "
                        "lower --concurrency.",
                        provider=self.provider,
                        status=status,
                    )
                await self._sleep(delay if delay is not None else self.backoff(attempt), "429")
                continue
            if status in RETRYABLE_STATUS:
                last_problem = f"HTTP {status}"
                await self._sleep_backoff(attempt, last_problem)
                continue
            if status >= 400:
                raise ProviderError(
                    f"{self.provider} answered HTTP {status} for {method} "
                    f"{redact_url(str(request.url))}",
                    hint="This request cannot succeed as sent; see the body excerpt.",
                    code="not_found" if status == 404 else "provider_rejected",
                    provider=self.provider,
                    status=status,
                    body_excerpt=excerpt(response.text),
                )
            try:
                return json.loads(response.content) if response.content else None
            except ValueError:
                # A truncated body is usually a dropped connection: retry, then give up clearly.
                last_problem = "malformed JSON"
                await self._sleep_backoff(attempt, last_problem)

    async def _send(self, request: httpx.Request) -> httpx.Response:
        self.stats.requests += 1
        if self.in_flight is None:
            return await self._client.send(request)
        async with self.in_flight:
            return await self._client.send(request)

    async def _sleep_backoff(self, attempt: int, reason: str) -> None:
        if attempt < self.settings.max_attempts:
            await self._sleep(self.backoff(attempt), reason)

    def _log(self, request: httpx.Request, outcome: str, sent: float, attempt: int) -> None:
        if not log.isEnabledFor(logging.INFO):
            return  # skip redacting the URL of every request of a quiet run
        took = (self.clock.monotonic() - sent) * 1000
        retry = f" (attempt {attempt})" if attempt > 1 else ""
        url = redact_url(str(request.url))
        method = request.method
        log.info("%s %s %s -> %s in %.0f ms%s", self.provider, method, url, outcome, took, retry)

    async def _sleep(self, seconds: float, reason: str) -> None:
        log.info("%s: retrying in %.1fs after %s", self.provider, seconds, reason)
        self._emit("retry", seconds=seconds, reason=reason)
        await self.clock.sleep(seconds)
