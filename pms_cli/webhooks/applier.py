"""The inbox worker: lease due events, refetch what they name, write it like `pms sync` does.

Why refetch: webhook payloads differ from REST shapes and arrive duplicated and out of order;
the provider's current record is the truth. Events for one record are merged into one refetch,
and every refetch starts after the event that triggered it was stored, so whatever the
delivery order the last write reflects the provider's latest state.

Failures never drop an event: rate limits and transient errors reschedule it (capped
exponential backoff with jitter; ``Retry-After`` is honoured inside the HTTP client first);
only a record the mapper cannot read ends as ``failed``. A 404 on refetch means the record is
gone upstream: its row is marked deleted, as a full sync would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pms_cli.errors import AuthError, PmsError, ProviderError, RateLimitedError
from pms_cli.http.client import jittered_backoff
from pms_cli.http.paginate import Raw
from pms_cli.providers import get_provider
from pms_cli.providers.base import Provider, Resource
from pms_cli.redact import redact_text
from pms_cli.stores.base import Connection, Store, WebhookEventRow
from pms_cli.sync.engine import SyncEngine, map_records
from pms_cli.sync.session import Runtime, open_connection_adapter
from pms_cli.webhooks.base import valid_id

log = logging.getLogger("pms.webhooks")

Target = tuple[str, str, str]  # connection id, resource name, external id


@dataclass
class ApplierOptions:
    batch_size: int = 200
    concurrency: int = 8
    lease_seconds: float = 300.0
    backoff_base_seconds: float = 5.0
    backoff_cap_seconds: float = 3600.0
    rate_limited_delay_seconds: float = 60.0
    idle_poll_seconds: float = 1.0
    client_error_attempts: int = 5
    """Refetches answered with the same kind of 4xx (not 404, 408 or 429) before the event is
    ``failed`` with the provider's answer: a request the provider keeps refusing will not
    succeed by being repeated for ever."""


@dataclass
class ApplierStats:
    applied: int = 0  # inbox rows marked done
    refetches: int = 0  # provider requests for single records
    gone: int = 0  # records found deleted upstream
    retried: int = 0
    failed: int = 0
    rate_limited: int = 0
    errors: dict[str, int] = field(default_factory=dict)


def target_of(row: WebhookEventRow) -> Target | None:
    change = row.payload.get("change") if isinstance(row.payload, dict) else None
    if not isinstance(change, dict):
        return None
    resource, external_id = change.get("resource"), change.get("external_id")
    if not isinstance(resource, str) or not isinstance(external_id, str):
        return None
    return (row.connection_id, resource, external_id)


def refused(exc: PmsError) -> bool:
    """The provider refused the request itself (a 4xx other than 404/408/429): repeating it
    unchanged cannot help, beyond a few tries for a record being created upstream."""
    return (
        isinstance(exc, ProviderError)
        and exc.status is not None
        and 400 <= exc.status < 500
        and exc.status not in (404, 408, 429)
    )


def answered_ids(adapter: Provider, resource: Resource, raw: Raw) -> set[str]:
    """The ids of ``resource``'s kind that a refetched record maps to (empty if unmappable)."""
    mapped, _ = map_records(resource, [raw], adapter.mapper_for(resource))
    return {r.external_id for r in mapped.get(resource.kind, [])}


class Applier:
    """Applies inbox events; ``run_once`` for tests and tools, ``run`` for the server."""

    def __init__(
        self,
        store: Store,
        runtime: Runtime,
        options: ApplierOptions | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.runtime = runtime
        self.options = options or ApplierOptions()
        self.engine = SyncEngine(store, runtime)
        self.stats = ApplierStats()
        self.rng = rng or random.Random()
        self.wake = asyncio.Event()
        self._adapters: dict[str, Provider] = {}
        self._adapter_stacks: dict[str, AsyncExitStack] = {}

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.runtime.clock.time(), UTC)

    async def _db(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)

    def backoff(self, attempts: int) -> float:
        """Seconds before attempt ``attempts + 1``: capped exponential, jittered (50–100 %)."""
        o = self.options
        return jittered_backoff(attempts, o.backoff_base_seconds, o.backoff_cap_seconds, self.rng)

    # --- the loop ------------------------------------------------------------------------

    async def run_once(self) -> int:
        """Apply one leased batch; returns how many inbox rows it handled."""
        now = self._now()
        lease = now + timedelta(seconds=self.options.lease_seconds)
        rows: list[WebhookEventRow] = await self._db(
            self.store.inbox_claim, now, lease, self.options.batch_size
        )
        if not rows:
            return 0
        groups: dict[Target, list[WebhookEventRow]] = {}
        orphans: list[WebhookEventRow] = []
        for row in rows:
            target = target_of(row)
            if target is None:
                orphans.append(row)
            else:
                groups.setdefault(target, []).append(row)
        if orphans:
            await self._mark(orphans, "failed", error="event without a record to refetch")
        gate = asyncio.Semaphore(self.options.concurrency)
        conns: dict[str, Connection | None] = {}
        for conn_id in {t[0] for t in groups}:
            conns[conn_id] = await self._db(self.store.get_connection, conn_id)

        async def one(target: Target, group: list[WebhookEventRow]) -> None:
            async with gate:
                await self._apply(conns[target[0]], target, group)

        await asyncio.gather(*(one(t, g) for t, g in groups.items()))
        return len(rows)

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop`` is set: apply due events, then wait for a wake-up or the poll."""
        while not stop.is_set():
            try:
                handled = await self.run_once()
            except PmsError as exc:  # the store is down: keep the receiver up, retry later
                log.warning("webhook applier: %s", redact_text(exc.message))
                handled = 0
            if handled:
                continue
            self.wake.clear()
            waiters = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self.wake.wait())}
            _, pending = await asyncio.wait(
                waiters,
                timeout=self.options.idle_poll_seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )
            for task in pending:
                task.cancel()
            # Let the cancelled waiters finish before the next loop (no stray tasks at exit).
            await asyncio.gather(*pending, return_exceptions=True)

    async def aclose(self) -> None:
        for conn_id in list(self._adapter_stacks):
            await self._drop_adapter(conn_id)

    # --- one record ----------------------------------------------------------------------

    async def _apply(
        self, conn: Connection | None, target: Target, rows: Sequence[WebhookEventRow]
    ) -> None:
        conn_id, resource_name, external_id = target
        if conn is None or conn.status == "disconnected":
            await self._mark(rows, "failed", error="the connection is gone or disconnected")
            return
        provider = get_provider(conn.provider)
        try:
            resource = provider.resource(resource_name)
        except KeyError:
            await self._mark(rows, "failed", error=f"unknown resource {resource_name!r}")
            return
        if not valid_id(provider, external_id):  # rows stored before the receiver checked
            await self._mark(rows, "failed", error=f"not a {provider.title} id")
            return
        attempts = max(r.attempts for r in rows)
        try:
            adapter = await self._adapter(conn)
            self.stats.refetches += 1
            raw = await adapter.fetch_one(resource, external_id)
            if raw is None:
                self.stats.gone += 1
                await self._db(
                    self.store.mark_deleted, conn_id, resource.kind, [external_id], self._now()
                )
            else:
                answered = answered_ids(adapter, resource, raw)
                if answered and external_id not in answered:
                    # Another record than the one asked for (a redirect, a proxy, a path the
                    # provider resolved differently): never store it under this event.
                    await self._mark(
                        rows,
                        "failed",
                        error=f"the refetch of {resource.kind} {external_id} answered "
                        f"{', '.join(sorted(answered))[:100]}",
                    )
                    return
                _, skipped = await self.engine.write_raw(conn, resource_name, [raw], adapter)
                if skipped:
                    await self._mark(
                        rows, "failed", error=f"bad_record: {resource.kind} could not be mapped"
                    )
                    return
        except RateLimitedError as exc:
            # The provider wants us to slow down: wait longer, never give up on the event.
            self.stats.rate_limited += 1
            delay = max(self.options.rate_limited_delay_seconds, self.backoff(attempts))
            await self._retry(rows, delay, exc)
            return
        except PmsError as exc:
            if isinstance(exc, AuthError):
                await self._drop_adapter(conn_id)  # credentials may be fixed meanwhile
            elif refused(exc) and attempts + 1 >= self.options.client_error_attempts:
                said = f" ({redact_text(exc.body_excerpt)})" if exc.body_excerpt else ""
                error = f"{exc.code}: {redact_text(exc.message)}{said}"[:500]
                await self._mark(rows, "failed", error=f"{error}; gave up after {attempts + 1}")
                return
            await self._retry(rows, self.backoff(attempts), exc)
            return
        except Exception as exc:  # a bug must not kill the worker or lose the event
            log.exception("webhook applier bug on %s %s", conn.provider, resource_name)
            await self._retry(rows, self.backoff(attempts), PmsError(type(exc).__name__))
            return
        await self._mark(rows, "done")

    async def _retry(self, rows: Sequence[WebhookEventRow], delay: float, exc: PmsError) -> None:
        self.stats.retried += len(rows)
        self.stats.errors[exc.code] = self.stats.errors.get(exc.code, 0) + 1
        when = self._now() + timedelta(seconds=delay)
        error = f"{exc.code}: {redact_text(exc.message)}"[:500]
        await self._mark(rows, "retry", error=error, next_attempt_at=when)

    async def _mark(
        self,
        rows: Sequence[WebhookEventRow],
        status: str,
        *,
        error: str | None = None,
        next_attempt_at: datetime | None = None,
    ) -> None:
        if status == "done":
            self.stats.applied += len(rows)
        elif status == "failed":
            self.stats.failed += len(rows)
        await self._db(
            self.store.inbox_mark,
            [r.id for r in rows],
            status,
            next_attempt_at=next_attempt_at,
            error=error,
        )

    # --- adapters: one per connection, kept open across events ---------------------------

    async def _adapter(self, conn: Connection) -> Provider:
        cached = self._adapters.get(conn.id)
        if cached is not None:
            return cached
        stack = AsyncExitStack()
        adapter = await stack.enter_async_context(
            open_connection_adapter(self.runtime, conn, self.store)
        )
        await self.engine.prime(adapter, conn)
        # Two events of one connection may race here (opening and priming both wait): keep
        # the first adapter, close ours. Checked after the last wait, since a stack left out of
        # ``_adapter_stacks`` is closed when collected, under whoever still uses its adapter.
        if conn.id in self._adapters:
            await stack.aclose()
            return self._adapters[conn.id]
        self._adapters[conn.id] = adapter
        self._adapter_stacks[conn.id] = stack
        return adapter

    async def _drop_adapter(self, conn_id: str) -> None:
        self._adapters.pop(conn_id, None)
        stack = self._adapter_stacks.pop(conn_id, None)
        if stack is not None:
            with contextlib.suppress(Exception):
                await stack.aclose()
