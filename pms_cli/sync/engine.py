"""The sync engine: one write path for `pms sync`, the webhook receiver and library callers.

Per connection × resource: read the cursor, fetch pages, map records (bad ones are reported
and skipped), upsert in bounded batches (one transaction each), and only after every batch is
committed advance the cursor — to the run's start time, never past rows that were not written.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pms_cli.errors import (
    EXIT_FAILED,
    EXIT_PARTIAL,
    AuthError,
    ConfigError,
    LockedError,
    PmsError,
    ProviderError,
)
from pms_cli.http.paginate import Position, Raw, read_ahead, resuming
from pms_cli.models import AnyRecord, Booking, Kind
from pms_cli.providers import get_provider
from pms_cli.providers.base import Provider, Resource
from pms_cli.redact import redact_text
from pms_cli.stores.base import Connection, Store, SyncRun
from pms_cli.sync.session import Runtime, open_connection_adapter

DRIFT_MIN_RECORDS = 10
"""Records a run must read before an expected field absent from all of them counts as drift."""

CATCH_UP_PAGE_GUESS = 100
"""Records per page assumed when a paginator does not say (to price a whole re-read)."""

CHECKPOINT_MAX_AGE = timedelta(hours=24)
"""An interrupted walk older than this starts over: offsets drift as records come and go."""

INTERRUPTED_HINT = (
    "Rerun the same command: it continues each unfinished resource from its last committed "
    "page, and the run's rows end up as one uninterrupted run would leave them."
)


@dataclass
class SyncOptions:
    full: bool = False
    since: datetime | None = None
    until: datetime | None = None
    """Leave out records updated after this (those without an update time are kept); a run
    with ``until`` reads a window, so it moves no cursor and marks nothing deleted."""
    resources: Sequence[str] | None = None
    dry_run: bool = False
    trigger: str = "cli"


@dataclass
class ResourceResult:
    resource: str
    # pending | running | succeeded | fresh (not due) | partial | failed | interrupted
    status: str = "pending"
    pages: int = 0
    fetched: int = 0
    written: dict[str, int] = field(default_factory=dict)
    skipped: int = 0
    deleted: int = 0
    requests: int = 0
    incremental_since: str | None = None
    skipped_ids: list[str] = field(default_factory=list)
    missing_fields: list[str] = field(default_factory=list)
    total: int | None = None
    """Records the provider says the walk holds, when it says (for progress and ETAs)."""
    resumed_at_page: int | None = None
    """Pages an interrupted run had committed, when this run continued its walk."""
    started_at: datetime | None = None


@dataclass
class SyncResult:
    connection_id: str
    provider: str
    run_id: str
    status: str = "running"
    resources: dict[str, ResourceResult] = field(default_factory=dict)
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    rate_limit_waits: int = 0
    rate_limit_wait_seconds: float = 0.0
    error: dict[str, Any] | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "connection_id": self.connection_id,
            "provider": self.provider,
            "run_id": self.run_id,
            "status": self.status,
            "requests": self.requests,
            "retries": self.retries,
            "rate_limited": self.rate_limited,
            "rate_limit_waits": self.rate_limit_waits,
            "rate_limit_wait_seconds": round(self.rate_limit_wait_seconds, 3),
            "resources": {
                name: {
                    "status": r.status,
                    "pages": r.pages,
                    "fetched": r.fetched,
                    "written": r.written,
                    "skipped": r.skipped,
                    "skipped_ids": r.skipped_ids[:20],
                    "missing_fields": r.missing_fields,
                    "deleted": r.deleted,
                    "requests": r.requests,
                    "since": r.incremental_since,
                    "total": r.total,
                    "resumed_at_page": r.resumed_at_page,
                }
                for name, r in self.resources.items()
            },
            "error": self.error,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "duration_seconds": self.duration_seconds,
        }

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return round((self.finished_at - self.started_at).total_seconds(), 3)


@dataclass(frozen=True)
class SyncEvent:
    # started | resource | resumed | page | batch | waiting | wait | retry | finished
    kind: str
    result: SyncResult
    resource: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


def select_resources(provider: type[Provider], wanted: Sequence[str] | None) -> list[Resource]:
    """Resources to run; asking for a derived kind (e.g. guests) runs the resource yielding it."""
    if not wanted:
        return list(provider.resources)
    chosen: list[Resource] = []
    for name in wanted:
        match = [
            r
            for r in provider.resources
            if r.name == name or any(f"{k}s" == name for k in (r.kind, *r.derived_kinds))
        ]
        if not match:
            names = sorted(
                {r.name for r in provider.resources}
                | {f"{k}s" for r in provider.resources for k in r.derived_kinds}
            )
            raise ConfigError(
                f"{provider.title} has no resource {name!r}",
                hint=f"Use one of: {', '.join(names)}.",
                code="unknown_resource",
            )
        chosen.extend(r for r in match if r not in chosen)
    return chosen


def map_records(
    resource: Resource,
    raws: Iterable[Raw],
    mapper: Callable[[Raw], Sequence[AnyRecord]] | None = None,
) -> tuple[dict[Kind, list[AnyRecord]], list[str]]:
    """Map raw provider records by kind; a record whose mapper raises is skipped, id reported.

    ``mapper`` defaults to the resource's own (an adapter's ``mapper_for`` may bind context)."""
    mapper = mapper or resource.mapper
    mapped: dict[Kind, list[AnyRecord]] = {}
    skipped: list[str] = []
    for raw in raws:
        try:
            records = mapper(raw)
        except Exception:
            skipped.append(str(raw.get("id") or raw.get("_id") or "?"))
            continue
        for record in records:
            mapped.setdefault(record.kind, []).append(record)
    return mapped, skipped


def until_filter(
    mapped: dict[Kind, list[AnyRecord]], until: datetime
) -> dict[Kind, list[AnyRecord]]:
    """Records not updated after ``until`` (``--until``); records without an update time stay."""
    return {
        kind: [r for r in records if (getattr(r, "updated_at", None) or until) <= until]
        for kind, records in mapped.items()
    }


def references(records: Iterable[AnyRecord]) -> Iterator[tuple[Kind, str]]:
    """The (kind, external id) pairs a record points at: a booking's property and guest."""
    for record in records:
        if isinstance(record, Booking):
            if record.property_external_id:
                yield "property", record.property_external_id
            if record.guest_external_id:
                yield "guest", record.guest_external_id


def derives_guests(provider: type[Provider], resource: Resource) -> bool:
    """``resource`` derives guest rows from its records and the provider has no guest
    resource of its own: those rows exist only while a booking points at them."""
    return "guest" in resource.derived_kinds and all(r.kind != "guest" for r in provider.resources)


def drift_error(
    adapter: Provider, resource: Resource, missing: Sequence[str], records: int
) -> ProviderError:
    """``schema_drift`` for expected fields absent from all ``records`` of this run."""
    return ProviderError(
        f"{adapter.title} {resource.name}: {', '.join(missing)} absent from all {records} "
        "records read; the API has probably renamed it, so its column was written as NULL",
        hint="The records were written with their raw JSON and the cursor was kept: after a pms "
        "update the next sync reads and maps them again. Report it with `pms sync --dry-run "
        "--json` output.",
        code="schema_drift",
        provider=adapter.name,
    )


def check_shape(adapter: Provider, resource: Resource, page: Sequence[Raw]) -> None:
    """Raise ``schema_drift`` when a required key is missing from every record of a page."""
    gone = [
        key
        for key in resource.required
        if page and all(resource.value(r, key) is None for r in page)
    ]
    if gone:
        raise ProviderError(
            f"{adapter.title} {resource.name}: {', '.join(gone)} missing from every record of a "
            "page; the API has changed shape",
            hint="Nothing from this page was written and the cursor was kept. Check for a pms "
            "update, or report it with `pms sync --dry-run --json` output.",
            code="schema_drift",
            provider=adapter.name,
        )


def whole_cursor(resource: Resource) -> str:
    """The sync-state key holding when a windowed resource was last read whole."""
    return f"{resource.name}:whole"


def unexpected_error(exc: BaseException) -> dict[str, Any]:
    """``result.error`` for an exception pms did not expect (a bug): named, redacted."""
    return {
        "code": "internal_error",
        "message": f"unexpected {type(exc).__name__}: {redact_text(str(exc))[:300]}",
        "hint": "This is a bug in pms (the other connections were synced): report it with "
        "the output of `pms logs --failed --json`.",
        "exit_code": EXIT_FAILED,
    }


class SyncEngine:
    """Runs syncs against a store; ``on_event`` receives progress for live displays."""

    def __init__(
        self,
        store: Store,
        runtime: Runtime,
        on_event: Callable[[SyncEvent], None] | None = None,
    ) -> None:
        self.store = store
        self.runtime = runtime
        self.on_event = on_event

    def _emit(
        self, event: str, result: SyncResult, resource: str | None = None, /, **data: Any
    ) -> None:
        if self.on_event is not None:
            self.on_event(SyncEvent(event, result, resource, data))

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.runtime.clock.time(), UTC)

    async def _store(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    async def write_raw(
        self,
        conn: Connection,
        resource_name: str,
        raws: Sequence[Raw],
        adapter: Provider | None = None,
        dry_run: bool = False,
    ) -> tuple[dict[str, int], list[str]]:
        """Map and upsert records fetched outside a sync run (e.g. a webhook's refetch).

        The same mapper (``adapter.mapper_for`` when given) and store write as ``pms sync``;
        cursors are not touched. Returns rows written (``dry_run``: that would be written) per
        kind and the ids of records that could not be mapped.
        """
        resource = get_provider(conn.provider).resource(resource_name)
        mapper = adapter.mapper_for(resource) if adapter is not None else None
        mapped, skipped = map_records(resource, raws, mapper)
        written: dict[str, int] = {}
        stale: set[str] | None = (
            set() if derives_guests(get_provider(conn.provider), resource) else None
        )
        for kind, records in mapped.items():
            if dry_run:
                written[kind] = len({r.external_id for r in records})
            else:
                written[kind] = await self._upsert(conn, kind, records, self._now(), stale)
        if stale:
            await self._store(self.store.delete_unreferenced_guests, conn.id, sorted(stale))
        return written, skipped

    async def _upsert(
        self,
        conn: Connection,
        kind: Kind,
        records: Sequence[AnyRecord],
        synced_at: datetime,
        stale: set[str] | None = None,
    ) -> int:
        """Upsert ``records``; with ``stale``, bookings whose guest key changes add their old
        key to it (that guest row may now be nobody's: see ``delete_unreferenced_guests``)."""
        if stale is None or kind != "booking":
            return int(await self._store(self.store.upsert_records, conn, kind, records, synced_at))
        keys = {r.external_id: r.guest_external_id for r in records if isinstance(r, Booking)}
        before = await self._store(self.store.booking_guest_keys, conn.id, sorted(keys))
        n = int(await self._store(self.store.upsert_records, conn, kind, records, synced_at))
        stale.update(old for bid, old in before.items() if old and old != keys.get(bid))
        return n

    async def prime(self, adapter: Provider, conn: Connection) -> None:
        """Hand the adapter what mapping needs from the store: property time zones for
        providers whose timestamps are local wall time, currencies where bookings lack one
        (Smoobu)."""
        if not (adapter.local_timestamps or adapter.needs_stored_properties):
            return
        rows = await self._store(self.store.fetch_rows, "property", conn.id)
        adapter.remember_properties(rows)

    async def sync_many(
        self,
        connections: Sequence[Connection],
        options: SyncOptions,
        concurrency: int = 4,
        stop: asyncio.Event | None = None,
    ) -> list[SyncResult]:
        """Sync ``connections``, ``concurrency`` at a time.

        Setting ``stop`` (a signal handler does) cancels the runs in flight: each records itself
        ``interrupted`` (batch in flight committed or rolled back, lock released, checkpoint
        kept) and the results are returned; connections not yet started come back
        ``interrupted`` without resources.
        """
        gate = asyncio.Semaphore(max(1, concurrency))
        results = [self.new_result(c) for c in connections]

        async def one(conn: Connection, result: SyncResult) -> SyncResult:
            async with gate:
                return await self.sync_connection(conn, options, result)

        pairs = zip(connections, results, strict=True)
        tasks = [asyncio.ensure_future(one(c, r)) for c, r in pairs]
        if stop is None:
            return list(await asyncio.gather(*tasks))
        stopping = asyncio.ensure_future(stop.wait())
        try:
            pending: set[asyncio.Future[Any]] = set(tasks)
            while pending and not stop.is_set():
                _, pending = await asyncio.wait(
                    pending | {stopping}, return_when=asyncio.FIRST_COMPLETED
                )
                pending.discard(stopping)
        finally:
            stopping.cancel()
            if any(not t.done() for t in tasks):
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        for task, result in zip(tasks, results, strict=True):
            if task.cancelled():
                if result.status == "running":  # cancelled while waiting for a slot
                    result.status = "interrupted"
                    result.error = {
                        "code": "interrupted",
                        "message": "not started: the sync was interrupted first",
                        "hint": INTERRUPTED_HINT,
                    }
                continue
            task.result()  # a bug in one run surfaces as it would without ``stop``
        return results

    def new_result(self, conn: Connection) -> SyncResult:
        return SyncResult(conn.id, conn.provider, str(uuid.uuid4()))

    async def sync_connection(
        self, conn: Connection, options: SyncOptions, result: SyncResult | None = None
    ) -> SyncResult:
        """Sync one connection; never raises for provider/store problems (see ``result.error``).

        Cancelling it records the run ``interrupted`` and re-raises the cancellation."""
        result = result or self.new_result(conn)
        result.started_at = self._now()
        run_id = result.run_id
        run = SyncRun(
            id=run_id,
            connection_id=conn.id,
            organization_id=conn.organization_id,
            trigger=options.trigger,
            status="running",
            started_at=result.started_at,
            full_sync=options.full,
            owner=run_id,
        )
        locked = False
        try:
            if conn.status == "disconnected":
                raise ConfigError(
                    f"connection {conn.id} is disconnected",
                    hint=f"Run `pms connect {conn.provider}` to connect the account again.",
                    code="disconnected",
                )
            if not options.dry_run:
                locked = await self._store(
                    self.store.acquire_lock,
                    conn.id,
                    run_id,
                    float(self.runtime.settings.sync.lock_ttl_seconds),
                )
                if not locked:
                    holder = await self._store(self.store.lock_holder, conn.id) or {}
                    raise LockedError(
                        f"another sync of connection {conn.id} is running "
                        f"(pid {holder.get('pid')} on {holder.get('host')})",
                        hint="Wait for it to finish; a crashed run's lock expires by itself.",
                    )
                await self._store(self.store.mark_interrupted, conn.id, run_id)
                await self._store(self.store.start_run, run)
            self._emit("started", result)
            await self._run(conn, options, result)
            statuses = {r.status for r in result.resources.values()}
            result.status = "partial" if statuses & {"partial", "failed"} else "succeeded"
        except PmsError as exc:
            result.error = {**exc.to_dict(), "exit_code": exc.exit_code}
            done = any(r.status == "succeeded" for r in result.resources.values())
            # Rejected credentials or bad config fail the run outright (exit 3 / 2): the user
            # must act, even if an earlier resource got through.
            user_must_act = isinstance(exc, LockedError | ConfigError | AuthError)
            result.status = "partial" if done and not user_must_act else "failed"
            if isinstance(exc, LockedError):
                result.status = "locked"
        except (asyncio.CancelledError, KeyboardInterrupt):
            result.status = "interrupted"
            for rr in result.resources.values():
                if rr.status in ("running", "pending"):
                    rr.status = "interrupted"
            result.error = {
                "code": "interrupted",
                "message": "the sync was interrupted",
                "hint": INTERRUPTED_HINT,
            }
            # Shielded: a second signal must not cut the log and lock release short.
            await asyncio.shield(self._finish(conn, run, result, locked, options))
            raise
        except Exception as exc:
            # A bug or an unmapped driver error must fail this connection only: the other
            # connections of `sync --all` go on, the run row is finished, `--json` is printed.
            result.status = "failed"
            result.error = unexpected_error(exc)
        await self._finish(conn, run, result, locked, options)
        return result

    async def _finish(
        self, conn: Connection, run: SyncRun, result: SyncResult, locked: bool, options: SyncOptions
    ) -> None:
        result.finished_at = self._now()
        self._emit("finished", result)
        if options.dry_run or not locked:
            return
        error = result.error or {}
        run.status = result.status
        run.finished_at = result.finished_at
        run.counts = result.to_dict()["resources"]
        run.requests = result.requests
        run.retries = result.retries
        run.rate_limit_waits = result.rate_limit_waits
        run.error_code = error.get("code")
        run.error_message = redact_text(str(error["message"])) if error.get("message") else None
        run.error_hint = error.get("hint")
        try:
            await self._store(self.store.finish_run, run)
            fields: dict[str, Any] = {"last_error": run.error_message}
            if result.status in ("succeeded", "partial"):
                fields["last_sync_at"] = result.finished_at
                fields["status"] = "active"
            elif error.get("code") in ("auth_rejected", "credentials_missing"):
                fields["status"] = "error"
            await self._store(lambda: self.store.update_connection(conn.id, **fields))
        except PmsError as exc:
            if result.error is None:
                result.error = exc.to_dict()
                result.status = "failed"
        finally:
            with contextlib.suppress(PmsError):  # the lease expires by itself
                await self._store(self.store.release_lock, conn.id, run.id)

    async def _run(self, conn: Connection, options: SyncOptions, result: SyncResult) -> None:
        provider_cls = get_provider(conn.provider)
        resources = select_resources(provider_cls, options.resources)

        def http_event(kind: str, data: dict[str, Any]) -> None:
            # waiting: the limiter is about to hold a request (seconds, reason); wait: it did;
            # retry: a back-off before retrying (seconds, reason such as "HTTP 429").
            if kind in ("rate_limit_wait", "waiting", "retry"):
                event = "wait" if kind == "rate_limit_wait" else kind
                self._emit(event, result, None, **data)

        async with open_connection_adapter(
            self.runtime, conn, self.store, on_event=http_event
        ) as adapter:
            try:
                await self.prime(adapter, conn)
                for resource in resources:
                    result.resources[resource.name] = ResourceResult(resource.name)
                cursors: dict[str, str | None] = {}
                if options.since is None and not options.full:
                    cursors = await self._store(self.store.cursors, conn.id)
                fresh = [r for r in resources if self._is_fresh(r, cursors.get(r.name))]
                # Ids that this run's bookings point at, per kind whose resource is skipped.
                watch: dict[Kind, set[str]] = {r.kind: set() for r in fresh}
                for resource in resources:
                    if resource in fresh:
                        result.resources[resource.name].status = "fresh"
                        self._emit("resource", result, resource.name)
                    else:
                        cursor = cursors.get(resource.name)
                        if resource.windowed and self._whole_read_due(resource, cursors):
                            cursor = None
                        await self._sync_resource(
                            conn, adapter, resource, options, result, cursor, watch
                        )
                for resource in fresh:
                    refs, cursor = watch[resource.kind], cursors.get(resource.name)
                    await self._catch_up(conn, adapter, resource, refs, options, result, cursor)
            finally:
                stats = adapter.http.stats
                result.requests = stats.requests
                result.retries = stats.retries
                result.rate_limited = stats.rate_limited
                result.rate_limit_waits = stats.rate_limit_waits
                result.rate_limit_wait_seconds = stats.rate_limit_wait_seconds

    async def _sync_resource(
        self,
        conn: Connection,
        adapter: Provider,
        resource: Resource,
        options: SyncOptions,
        result: SyncResult,
        cursor: str | None,
        watch: dict[Kind, set[str]] | None = None,
    ) -> None:
        """Read ``resource`` from ``cursor`` (None: whole) and write it; advance the cursor."""
        rr = result.resources[resource.name]
        rr.status = "running"
        rr.started_at = self._now()
        self._emit("resource", result, resource.name)
        requests_before = adapter.http.stats.requests
        run_start = self._now()
        since = options.since
        if cursor and resource.incremental:
            lag = timedelta(minutes=self.runtime.settings.sync.lag_minutes)
            since = datetime.fromisoformat(cursor) - lag
        rr.incremental_since = since.isoformat() if since else None
        until = options.until.isoformat() if options.until else None
        walk = {"since": rr.incremental_since, "full": options.full, "until": until}
        position: Position | None = None
        if not options.dry_run:
            saved = await self._store(self.store.get_checkpoint, conn.id, resource.name)
            if saved is not None and self._resumable(saved, walk):
                # The walk goes on under its first start time: the cursor it sets and the
                # --full deletion cut-off cover what the interrupted run already wrote.
                run_start = datetime.fromisoformat(saved["started_at"])
                position = saved["position"]
                rr.resumed_at_page = int(saved.get("pages") or 0)
                self._emit("resumed", result, resource.name, page=rr.resumed_at_page)
        batch_size = self.runtime.settings.sync.batch_size
        buffers: dict[Kind, list[AnyRecord]] = {}

        async def checkpoint(after: Position | None) -> None:
            # Every buffer is empty here: each record of the pages before ``after`` is written.
            if after is None or options.dry_run:
                return
            state = {
                **walk,
                "position": after,
                "started_at": run_start.isoformat(),
                "run_id": result.run_id,
                "pages": rr.pages + (rr.resumed_at_page or 0),
            }
            await self._store(self.store.set_checkpoint, conn.id, resource.name, state)

        # Derived guests: a whole read drops every unreferenced guest row at the end; an
        # incremental one only the old keys of bookings whose guest key changed.
        tidy = not options.dry_run and derives_guests(type(adapter), resource)
        stale: set[str] | None = set() if tidy and since is not None else None

        async def flush(kind: Kind) -> None:
            rows = buffers.pop(kind, [])
            if rows and not options.dry_run:
                n = await self._upsert(conn, kind, rows, run_start, stale)
            else:
                n = len({r.external_id for r in rows})
            rr.written[kind] = rr.written.get(kind, 0) + n
            self._emit("batch", result, resource.name, kind=kind, rows=n)

        seen_keys: set[str] = set()
        mapper = adapter.mapper_for(resource)
        try:
            # Closed explicitly: an error while writing page n cancels the fetch of n+1 now.
            # The page walk (and its read-ahead task) starts inside the block, at ``position``.
            with resuming(resource.path, position):
                walker = read_ahead(adapter.pages(resource, since))
                async with contextlib.aclosing(walker) as pages:
                    async for page in pages:
                        check_shape(adapter, resource, page)
                        seen_keys.update(
                            k
                            for k in resource.expected
                            if any(resource.carries(r, k) for r in page)
                        )
                        rr.pages += 1
                        rr.fetched += len(page)
                        mapped, skipped_ids = map_records(resource, page, mapper)
                        if options.until is not None:
                            mapped = until_filter(mapped, options.until)
                        rr.skipped += len(skipped_ids)
                        rr.skipped_ids.extend(skipped_ids)
                        for kind, records in mapped.items():
                            buffers.setdefault(kind, []).extend(records)
                        if watch:
                            for kind, ref in references(mapped.get("booking", ())):
                                if kind in watch:
                                    watch[kind].add(ref)
                        if any(len(rows) >= batch_size for rows in buffers.values()):
                            # All kinds at once, so the checkpoint after them covers whole pages.
                            for kind in list(buffers):
                                await flush(kind)
                            await checkpoint(getattr(page, "after", None))
                        rr.requests = adapter.http.stats.requests - requests_before
                        total = getattr(page, "total", None)
                        if isinstance(total, int):
                            rr.total = total
                        self._emit("page", result, resource.name)
            for kind in list(buffers):
                await flush(kind)
            if tidy and (stale is None or stale):
                # A booking whose guest key changed (phone added later) left its old guest
                # row behind; the rows written above carry the bookings' current keys.
                among = None if stale is None else sorted(stale)
                await self._store(self.store.delete_unreferenced_guests, conn.id, among)
            if resource.lists_deletions:
                await self._mark_listed_deletions(
                    conn, adapter, resource, since, rr, run_start, options
                )
        except Exception:
            rr.status = "failed"
            rr.requests = adapter.http.stats.requests - requests_before
            self._emit("resource", result, resource.name)
            raise
        rr.requests = adapter.http.stats.requests - requests_before
        if not options.dry_run:
            # The walk is complete: the next run starts a new one.
            await self._store(self.store.set_checkpoint, conn.id, resource.name, None)
        if rr.fetched >= DRIFT_MIN_RECORDS:
            rr.missing_fields = [k for k in resource.expected if k not in seen_keys]
        if rr.missing_fields:
            # Written, but with NULLs where the renamed field's values belong: keep the cursor
            # so the same records are read (and mapped right) again once pms is updated.
            rr.status = "partial"
            if result.error is None:
                error = drift_error(adapter, resource, rr.missing_fields, rr.fetched)
                result.error = {**error.to_dict(), "exit_code": EXIT_PARTIAL}
        elif rr.skipped:
            # Bad records were not written: keep the cursor so they are fetched again.
            rr.status = "partial"
        else:
            rr.status = "succeeded"
            if not options.dry_run and options.until is None:
                # Incremental resources: the modified-since cursor. Others: when last read whole.
                await self._store(
                    self.store.set_cursor, conn.id, resource.name, run_start.isoformat()
                )
                whole = since is None
                if whole and resource.windowed:
                    await self._store(
                        self.store.set_cursor,
                        conn.id,
                        whole_cursor(resource),
                        run_start.isoformat(),
                    )
                if whole and (options.full or resource.windowed):
                    rr.deleted += await self._store(
                        self.store.mark_missing_deleted,
                        conn.id,
                        resource.kind,
                        run_start,
                        run_start,
                    )
        self._emit("resource", result, resource.name)

    async def _mark_listed_deletions(
        self,
        conn: Connection,
        adapter: Provider,
        resource: Resource,
        since: datetime | None,
        rr: ResourceResult,
        run_start: datetime,
        options: SyncOptions,
    ) -> None:
        """Set ``deleted_at`` on the records the provider lists as deleted (dry run: count)."""
        async for gone in adapter.deleted(resource, since):
            if options.dry_run:
                rr.deleted += len(gone)
            else:
                rr.deleted += await self._store(
                    self.store.mark_deleted, conn.id, resource.kind, gone, run_start
                )

    def _whole_read_due(self, resource: Resource, cursors: Mapping[str, str | None]) -> bool:
        """A windowed resource is read whole when it never was, or when that is older than
        ``sync.refresh_hours`` (0: on every run, as unfiltered resources are)."""
        if not cursors:  # --full and --since runs read no cursors (a new connection: whole)
            return False
        last = cursors.get(whole_cursor(resource))
        hours = self.runtime.settings.sync.refresh_hours
        if last is None or hours <= 0:
            return True
        return self._now() - datetime.fromisoformat(last) >= timedelta(hours=hours)

    def _resumable(self, saved: dict[str, Any], walk: dict[str, Any]) -> bool:
        """A checkpoint continues this walk when it had the same query and is recent."""
        if any(saved.get(k) != v for k, v in walk.items()):
            return False
        if not isinstance(saved.get("position"), dict):
            return False
        try:
            started = datetime.fromisoformat(str(saved["started_at"]))
        except (KeyError, ValueError):
            return False
        return started.tzinfo is not None and self._now() - started < CHECKPOINT_MAX_AGE

    def _is_fresh(self, resource: Resource, cursor: str | None) -> bool:
        """A resource without a modified-since filter whose last whole read (``cursor``; None
        for ``--full`` and ``--since`` runs) is recent enough.

        Re-reading such a resource every run costs a full walk (Smoobu apartments: one detail
        call each), so it is re-read when its last whole read is older than
        ``sync.refresh_hours``, and by every ``--full`` or ``--since`` run. Records this run's
        bookings point at but the store lacks are fetched anyway (``_catch_up``).
        """
        hours = self.runtime.settings.sync.refresh_hours
        if resource.incremental or hours <= 0 or not cursor:
            return False
        return self._now() - datetime.fromisoformat(cursor) < timedelta(hours=hours)

    async def _catch_up(
        self,
        conn: Connection,
        adapter: Provider,
        resource: Resource,
        referenced: set[str],
        options: SyncOptions,
        result: SyncResult,
        cursor: str | None,
    ) -> None:
        """Fetch the records of a skipped resource that new bookings point at (a new apartment
        or guest), one request each via ``fetch_one``; re-read the resource whole when that is
        cheaper or the provider cannot fetch one record."""
        if not referenced:
            return
        known = await self._store(
            self.store.known_external_ids, conn.id, resource.kind, sorted(referenced)
        )
        missing = sorted(referenced - known)
        if not missing:
            return
        rr = result.resources[resource.name]
        records = (await self._store(self.store.counts, conn.id)).get(resource.kind, 0)
        records += len(missing)
        page = resource.paginator.page_size or CATCH_UP_PAGE_GUESS
        whole_read = math.ceil(records / page) + (records if resource.detail_per_record else 0)
        if len(missing) > whole_read:
            await self._sync_resource(conn, adapter, resource, options, result, cursor)
            return
        rr.status = "running"
        self._emit("resource", result, resource.name)
        requests_before = adapter.http.stats.requests
        raws: list[Raw] = []
        try:
            for external_id in missing:
                raw = await adapter.fetch_one(resource, external_id)
                if raw is not None:  # gone since the booking was read: nothing to add
                    raws.append(raw)
        except NotImplementedError:
            await self._sync_resource(conn, adapter, resource, options, result, cursor)
            return
        except PmsError:
            rr.status = "failed"
            rr.requests += adapter.http.stats.requests - requests_before
            self._emit("resource", result, resource.name)
            raise
        rr.requests += adapter.http.stats.requests - requests_before
        rr.fetched += len(raws)
        written, skipped = await self.write_raw(
            conn, resource.name, raws, adapter, dry_run=options.dry_run
        )
        for kind, n in written.items():
            rr.written[kind] = rr.written.get(kind, 0) + n
        rr.skipped += len(skipped)
        rr.skipped_ids.extend(skipped)
        # The cursor (time of the last whole read) is left alone: this was not one.
        rr.status = "partial" if skipped else "fresh"
        self._emit("resource", result, resource.name)
