"""`pms worker`: connection syncs as Procrastinate jobs (https://procrastinate.readthedocs.io).

One task, ``pms.sync_connection``, syncs one connection (incremental, or full). Procrastinate
provides the queue on PostgreSQL (``SKIP LOCKED`` fetches, LISTEN/NOTIFY wake-ups, worker
heartbeats); this module adds what is particular to pms:

- **Scheduling.** A worker defers a job for every connection that has none queued or running,
  due ``every`` after its last successful sync; each job, when it ends, defers the connection's
  next one (``schedule_at``). A job's **queueing lock** (the connection) keeps at most one queued
  per connection however many workers schedule; its **lock** (the connection again) keeps two
  from running at once. The engine's connection lock (``pms_locks``) stays the last guard, so a
  cron `pms sync` and a worker never overlap either: a job that finds the lock taken is deferred
  again ``locked_retry_seconds`` later without spending an attempt.
- **Freshness.** A job skips a connection that synced after the job was queued (a cron
  `pms sync`, another worker): it was synced within its interval already.
- **Retries** (``SyncRetry``): transient failures (provider down, 429 after the client's own
  retries, store hiccup: exit code 1) retry with capped exponential backoff up to
  ``max_attempts``; configuration and credential errors (exit codes 2 and 3) fail at once, since
  only the user can fix them and the error says how.
- **Stalled jobs.** A worker killed mid-job stops heartbeating; any other worker finds its jobs
  (``get_stalled_jobs``) and puts them back in the queue (``retry_job``), or fails them once
  they have used up their attempts (a job that kills every worker must not loop forever). The
  dead worker's engine lock is freed by the pid check on its host, elsewhere by its short TTL,
  which a live worker extends at every heartbeat.

Without PostgreSQL (the local SQLite file, or Supabase over its REST API only) the same app runs
on Procrastinate's in-memory connector: the same schedule, retries and locks in one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pms_cli.errors import EXIT_FAILED
from pms_cli.stores.base import Connection, Store
from pms_cli.sync.engine import SyncEngine, SyncEvent, SyncOptions, SyncResult
from pms_cli.sync.session import Runtime

if TYPE_CHECKING:
    import procrastinate
    from procrastinate.job_context import JobContext
    from procrastinate.jobs import Job

SYNC_TASK = "pms.sync_connection"
QUEUE_PREFIX = "pms."
"""Jobs of provider P go to queue ``pms.P``, so ``--provider P`` workers listen to it alone."""

logger = logging.getLogger(__name__)


@dataclass
class WorkerOptions:
    concurrency: int = 4
    """Jobs (connections) this worker syncs at once."""
    every_seconds: float | None = 3600.0
    """Sync each connection this long after its last sync; None: schedule nothing, only run
    what others queued."""
    provider: str | None = None
    once: bool = False
    """Schedule what is due, run what is runnable now, then exit (cron)."""
    full: bool = False
    """Schedule full refreshes instead of incremental syncs."""
    stalled_seconds: float = 30.0
    """A worker whose heartbeat is older than this is dead; its jobs go back to the queue."""
    poll_interval: float = 5.0
    """Seconds between queue polls when no notification arrives (LISTEN/NOTIFY wakes sooner)."""
    max_attempts: int = 5
    backoff_base_seconds: float = 30.0
    backoff_cap_seconds: float = 1800.0
    locked_retry_seconds: float = 60.0
    grace_seconds: float | None = None
    """On SIGTERM, wait this long for running jobs, then give them back to the queue (None:
    wait for them to finish)."""

    @property
    def heartbeat_seconds(self) -> float:
        return self.stalled_seconds / 3

    def backoff(self, attempt: int) -> float:
        """Seconds before retry number ``attempt`` (1-based): doubling, capped."""
        return float(
            min(self.backoff_cap_seconds, self.backoff_base_seconds * 2.0 ** (attempt - 1))
        )

    def next_run_slack(self) -> float:
        # A cron `pms worker --once --every 15` fires a little before "15 minutes after the
        # last run started"; without slack every other round would find nothing due.
        return 0.0 if self.every_seconds is None else min(60.0, self.every_seconds * 0.1)


@dataclass
class JobOutcome:
    job_id: str
    connection_id: str
    provider: str | None
    status: str  # succeeded | partial | failed | retry | locked | skipped | given back
    attempt: int
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class SyncRetry(Exception):
    """A transient failure with attempts left: Procrastinate retries the job after a backoff."""

    def __init__(self, message: str, retry_in: float) -> None:
        super().__init__(message)
        self.retry_in = retry_in


class SyncFailed(Exception):
    """A failure that retrying cannot fix (or the last attempt): the job ends as failed."""


def _retry_strategy() -> Any:
    from procrastinate import BaseRetryStrategy, RetryDecision

    class BackoffFromTask(BaseRetryStrategy):
        """Retries exactly the ``SyncRetry`` exceptions, after the delay the task chose (the
        task knows the error's class and the attempt count; anything else is not retried)."""

        def get_retry_decision(self, *, exception: BaseException, job: Job) -> Any:
            if isinstance(exception, SyncRetry):
                return RetryDecision(retry_in={"seconds": math.ceil(exception.retry_in)})
            return None

    return BackoffFromTask()


def build_app(connector: Any) -> procrastinate.App:
    """The Procrastinate app with pms's one task, on ``connector`` (Psycopg or in-memory)."""
    import procrastinate

    app = procrastinate.App(connector=connector)

    @app.task(name=SYNC_TASK, pass_context=True, retry=_retry_strategy())
    async def sync_connection(
        context: JobContext,
        connection_id: str,
        full: bool = False,
        every_seconds: float | None = None,
        queued_at: float | None = None,
    ) -> None:
        worker: Worker = context.additional_context["pms_worker"]
        await worker.run_job(context, connection_id, full, every_seconds, queued_at)

    return app


def postgres_app(url: str, concurrency: int) -> procrastinate.App:
    from procrastinate import PsycopgConnector

    # Jobs + scheduler + heartbeat + listener + stalled-job sweeps each borrow a connection.
    return build_app(PsycopgConnector(conninfo=url, min_size=1, max_size=concurrency + 4))


def memory_app() -> procrastinate.App:
    from procrastinate.testing import InMemoryConnector

    return build_app(InMemoryConnector())


_EXTEND_LOCK = (
    "UPDATE pms_locks SET expires_at = ? WHERE connection_id = ? AND host = ? AND pid = ?"
)


def _lock_key(connection_id: str) -> str:
    return f"pms:connection:{connection_id}"


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


async def defer_sync(
    app: procrastinate.App,
    conn: Connection,
    *,
    at: float | None = None,
    full: bool = False,
    every_seconds: float | None = None,
    queued_at: float | None = None,
) -> bool:
    """Queue one sync of ``conn`` (at epoch ``at``, default now) unless one is queued already
    (its queueing lock); returns whether this call queued it. ``app`` must be open."""
    from procrastinate.exceptions import AlreadyEnqueued

    key = _lock_key(conn.id)
    deferrer = app.tasks[SYNC_TASK].configure(
        lock=key,
        queueing_lock=key,
        queue=QUEUE_PREFIX + conn.provider,
        schedule_at=_utc(time.time() if at is None else at),
    )
    try:
        await deferrer.defer_async(
            connection_id=conn.id,
            full=full,
            every_seconds=every_seconds,
            queued_at=time.time() if queued_at is None else queued_at,
        )
    except AlreadyEnqueued:
        return False
    return True


@dataclass
class Worker:
    """Runs ``pms.sync_connection`` jobs from ``app``'s queue; ``run()`` until ``stop()``
    (or, with ``once``, until nothing is runnable)."""

    store: Store
    runtime: Runtime
    app: procrastinate.App
    options: WorkerOptions = field(default_factory=WorkerOptions)
    name: str | None = None
    on_outcome: Callable[[JobOutcome], None] | None = None
    on_event: Callable[[SyncEvent], None] | None = None
    outcomes: list[JobOutcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        from pms_cli.stores.sql import SqlStore

        self._extends_locks = isinstance(self.store, SqlStore)
        sync = self.runtime.settings.sync
        # A dead worker's engine lock must free up about when its job is recovered; live
        # workers extend it at every heartbeat (a store without SQL access keeps the long TTL).
        ttl = max(10, math.ceil(self.options.stalled_seconds * 3))
        if self._extends_locks and sync.lock_ttl_seconds > ttl:
            settings = self.runtime.settings.model_copy(
                update={"sync": sync.model_copy(update={"lock_ttl_seconds": ttl})}
            )
            self.runtime = Runtime(
                settings,
                clock=self.runtime.clock,
                limiters=self.runtime.limiters,
                transport=self.runtime.transport,
                token_cache=self.runtime.token_cache,
                env=self.runtime.env,
            )
        self._lock_ttl = float(self.runtime.settings.sync.lock_ttl_seconds)
        self.engine = SyncEngine(self.store, self.runtime, on_event=self.on_event)
        self._stop = asyncio.Event()
        self._procrastinate: Any = None

    # --- lifecycle --------------------------------------------------------------------------

    def stop(self) -> None:
        """Take no more jobs; finish the running ones (SIGTERM)."""
        self._stop.set()
        if self._procrastinate is not None:
            self._procrastinate.stop()

    async def run(self) -> list[JobOutcome]:
        """Schedule, recover stalled jobs, run jobs; returns this run's outcomes."""
        from procrastinate.worker import Worker as ProcrastinateWorker

        o = self.options
        first = len(self.outcomes)
        async with self.app.open_async():
            await self.recover_stalled()
            if o.every_seconds is not None:
                await self.schedule_due()
            self._procrastinate = ProcrastinateWorker(
                self.app,
                queues=[QUEUE_PREFIX + o.provider] if o.provider else None,
                name=self.name,
                concurrency=o.concurrency,
                wait=not o.once,
                fetch_job_polling_interval=o.poll_interval,
                shutdown_graceful_timeout=o.grace_seconds,
                delete_jobs="successful",
                additional_context={"pms_worker": self},
                install_signal_handlers=False,  # the CLI owns signals (and calls stop())
                update_heartbeat_interval=o.heartbeat_seconds,
                stalled_worker_timeout=o.stalled_seconds,
            )
            if self._stop.is_set():
                return self.outcomes[first:]
            side = [] if o.once else [asyncio.create_task(self._housekeeping())]
            try:
                await self._procrastinate.run()
            finally:
                for task in side:
                    task.cancel()
                await asyncio.gather(*side, return_exceptions=True)
                self._procrastinate = None
        return self.outcomes[first:]

    async def _housekeeping(self) -> None:
        """Recover stalled jobs every heartbeat; schedule newly due connections every minute
        at most (new connections, or ones whose chain of jobs a crash broke)."""
        o = self.options
        last_schedule = time.monotonic()
        while not self._stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), o.heartbeat_seconds)
            if self._stop.is_set():
                return
            try:
                await self.recover_stalled()
                every = o.every_seconds
                if every is not None and time.monotonic() - last_schedule >= min(every, 60.0):
                    last_schedule = time.monotonic()
                    await self.schedule_due()
            except Exception:  # the database went away for a moment: try again next beat
                logger.warning("worker housekeeping failed", exc_info=True)

    # --- scheduling -----------------------------------------------------------------------

    async def defer(
        self, conn: Connection, *, at: float, full: bool, every_seconds: float | None
    ) -> bool:
        """Queue a sync of ``conn`` at epoch ``at``; False when one is queued already."""
        return await defer_sync(
            self.app,
            conn,
            at=at,
            full=full,
            every_seconds=every_seconds,
            queued_at=self.runtime.clock.time(),
        )

    async def schedule_due(self) -> int:
        """Queue each connection that has no job queued or running, due ``every`` after its
        last successful sync (or now). Returns the number queued."""
        o = self.options
        assert o.every_seconds is not None
        manager = self.app.job_manager
        busy: set[str] = set()
        for status in ("todo", "doing"):
            for job in await manager.list_jobs_async(task=SYNC_TASK, status=status):
                busy.add(str(job.task_kwargs.get("connection_id")))
        conns = await asyncio.to_thread(self.store.list_connections)
        now = self.runtime.clock.time()
        queued = 0
        for conn in conns:
            if conn.id in busy or conn.status == "disconnected":
                continue
            if o.provider and conn.provider != o.provider:
                continue
            at = now
            if conn.last_sync_at is not None:
                at = max(now, conn.last_sync_at.timestamp() + o.every_seconds - o.next_run_slack())
            queued += await self.defer(conn, at=at, full=o.full, every_seconds=o.every_seconds)
        return queued

    async def recover_stalled(self) -> list[int]:
        """Give the jobs of dead workers back to the queue; fail those out of attempts."""
        from procrastinate.jobs import Status

        manager = self.app.job_manager
        recovered: list[int] = []
        stalled = await manager.get_stalled_jobs(
            task_name=SYNC_TASK, seconds_since_heartbeat=self.options.stalled_seconds
        )
        for job in stalled:
            assert job.id is not None
            # Another worker may sweep the same job at the same moment: one of us wins.
            with contextlib.suppress(Exception):
                if job.attempts + 1 >= self.options.max_attempts:
                    await manager.finish_job_by_id_async(job.id, Status.FAILED, False)
                else:
                    await manager.retry_job(job)
                    recovered.append(job.id)
        return recovered

    # --- one job --------------------------------------------------------------------------

    async def run_job(
        self,
        context: JobContext,
        connection_id: str,
        full: bool,
        every_seconds: float | None,
        queued_at: float | None,
    ) -> None:
        """The body of ``pms.sync_connection`` (raises ``SyncRetry``/``SyncFailed``)."""
        job = context.job
        outcome = JobOutcome(str(job.id), connection_id, None, "failed", job.attempts + 1)
        started = self.runtime.clock.time()
        chain = every_seconds is not None
        conn: Connection | None = None
        try:
            conn = await asyncio.to_thread(self.store.get_connection, connection_id)
            if conn is None or conn.status == "disconnected":
                reason = "the connection no longer exists" if conn is None else "disconnected"
                outcome.error = {"code": "disconnected", "message": reason}
                chain = False
                return
            outcome.provider = conn.provider
            synced = conn.last_sync_at.timestamp() if conn.last_sync_at else None
            if queued_at is not None and synced is not None and synced > queued_at:
                outcome.status = "skipped"
                if every_seconds is not None:
                    next_at = synced + every_seconds - self.options.next_run_slack()
                    await self.defer(conn, at=next_at, full=full, every_seconds=every_seconds)
                chain = False
                return
            result = await self._sync_with_heartbeat(conn, full)
            await self._settle(conn, result, outcome, full, every_seconds)
            if outcome.status in ("locked", "retry"):
                chain = False
        except asyncio.CancelledError:
            # Shutdown after the grace period: the engine marked its run interrupted and
            # released its lock; a fresh job puts the connection back in the queue.
            outcome.status = "given back"
            chain = False
            if conn is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(
                        self.defer(conn, at=time.time(), full=full, every_seconds=every_seconds)
                    )
            raise
        finally:
            if chain and conn is not None and every_seconds is not None:
                next_at = started + every_seconds - self.options.next_run_slack()
                with contextlib.suppress(Exception):
                    await self.defer(conn, at=next_at, full=full, every_seconds=every_seconds)
            self.outcomes.append(outcome)
            if self.on_outcome is not None:
                self.on_outcome(outcome)
        if outcome.status == "retry":
            raise SyncRetry(self._message(outcome), self.options.backoff(outcome.attempt))
        if outcome.status == "failed":
            raise SyncFailed(self._message(outcome))

    @staticmethod
    def _message(outcome: JobOutcome) -> str:
        return str((outcome.error or {}).get("message") or outcome.status)

    async def _settle(
        self,
        conn: Connection,
        result: SyncResult,
        outcome: JobOutcome,
        full: bool,
        every_seconds: float | None,
    ) -> None:
        outcome.result = result.to_dict()
        outcome.error = result.error
        if result.status in ("succeeded", "partial"):
            outcome.status = result.status
            return
        if result.status == "locked":
            # Another sync holds the connection (a cron `pms sync`, or a dead worker's lock
            # not yet expired): try again later, without spending an attempt.
            outcome.status = "locked"
            at = self.runtime.clock.time() + self.options.locked_retry_seconds
            await self.defer(conn, at=at, full=full, every_seconds=every_seconds)
            return
        error = result.error or {}
        # Exit code 1 = transient or unknown (retry); 2/3 = config or credentials (user acts).
        retryable = int(error.get("exit_code", EXIT_FAILED)) == EXIT_FAILED
        outcome.status = (
            "retry" if retryable and outcome.attempt < self.options.max_attempts else "failed"
        )

    async def _sync_with_heartbeat(self, conn: Connection, full: bool) -> SyncResult:
        sync = asyncio.create_task(
            self.engine.sync_connection(conn, SyncOptions(full=full, trigger="worker"))
        )
        try:
            while True:
                done, _ = await asyncio.wait({sync}, timeout=self.options.heartbeat_seconds)
                if done:
                    return sync.result()
                if self._extends_locks:
                    with contextlib.suppress(Exception):
                        await asyncio.to_thread(self._extend_engine_lock, conn.id)
        except asyncio.CancelledError:
            sync.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sync
            raise

    def _extend_engine_lock(self, connection_id: str) -> None:
        """Keep this process's ``pms_locks`` row alive while its sync runs (see class doc)."""
        from pms_cli.stores.sql import HOST, SqlStore

        store = self.store
        assert isinstance(store, SqlStore)
        with store._tx() as cur:
            cur.execute(
                _EXTEND_LOCK.replace("?", store.ph),
                [time.time() + self._lock_ttl, connection_id, HOST, os.getpid()],
            )
