"""`pms worker`: processes that pull connection syncs from the ``pms_jobs`` queue.

Each loop: queue a job for every connection that is due (``every_seconds`` since its last job
finished), claim runnable jobs up to ``concurrency`` with a lease, run each through
``SyncEngine.sync_connection`` while a heartbeat keeps the lease (and the engine's connection
lock) alive, then record the outcome:

- succeeded / partial → done;
- locked (another sync of the connection is running, e.g. a cron `pms sync`) → given back
  without spending an attempt, retried after ``locked_retry_seconds``;
- failed with a transient error (provider down, rate-limited, store hiccup) → retried with
  capped exponential backoff until ``max_attempts``; config/auth errors fail at once (a retry
  cannot fix a wrong secret: the user must act, and the error says how);
- lease lost (the heartbeat found another owner) → the run is cancelled; the job is theirs.

Several workers on one or many machines share one queue (see ``pms_cli.stores.jobs``); a worker
that dies leaves a lease that expires after ``lease_seconds``, and its job is reclaimed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pms_cli.errors import EXIT_FAILED
from pms_cli.stores.base import Store
from pms_cli.stores.jobs import Job, JobQueue
from pms_cli.sync.engine import SyncEngine, SyncEvent, SyncOptions, SyncResult
from pms_cli.sync.session import Runtime


@dataclass
class WorkerOptions:
    concurrency: int = 4
    """Jobs (connections) this worker syncs at once."""
    poll_interval: float = 5.0
    """Seconds between queue polls when nothing is claimable."""
    lease_seconds: float = 60.0
    """A job whose worker stops heartbeating for this long is reclaimed by another worker."""
    every_seconds: float | None = 3600.0
    """Queue each connection again this long after its last job finished; None: never queue
    (only run what others queued)."""
    provider: str | None = None
    once: bool = False
    """Drain: stop when nothing is runnable and nothing is running."""
    max_jobs: int | None = None
    kind: str = "sync"
    max_attempts: int = 5
    backoff_base_seconds: float = 30.0
    backoff_cap_seconds: float = 1800.0
    locked_retry_seconds: float = 60.0


@dataclass
class JobOutcome:
    job_id: str
    connection_id: str
    provider: str | None
    status: str  # succeeded | partial | failed | retry | locked | lost
    attempt: int
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "connection_id": self.connection_id,
            "provider": self.provider,
            "status": self.status,
            "attempt": self.attempt,
            "error": self.error,
            "result": self.result,
        }


def worker_id() -> str:
    """host:pid:random — readable in `pms_jobs.lease_owner`, unique per worker instance."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class Worker:
    """Pulls jobs from the store's queue and syncs them; ``run()`` until ``stop()`` (or drained)."""

    store: Store
    runtime: Runtime
    options: WorkerOptions = field(default_factory=WorkerOptions)
    owner: str = field(default_factory=worker_id)
    on_outcome: Callable[[JobOutcome], None] | None = None
    on_event: Callable[[SyncEvent], None] | None = None
    outcomes: list[JobOutcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.queue = JobQueue(self.store)
        sync = self.runtime.settings.sync
        # The engine's connection lock lives as long as our lease unless heartbeats extend it,
        # so a killed worker's lock frees up as soon as its job becomes reclaimable.
        ttl = max(10, int(self.options.lease_seconds * 2))
        if sync.lock_ttl_seconds > ttl:
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
        self.engine = SyncEngine(self.store, self.runtime, on_event=self.on_event)
        self._stopping = asyncio.Event()
        self._claimed = 0

    def stop(self) -> None:
        """Finish the running jobs, claim no more (SIGTERM handler)."""
        self._stopping.set()

    def _now(self) -> float:
        return self.runtime.clock.time()

    async def _db(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)

    def backoff(self, attempt: int) -> float:
        o = self.options
        return float(min(o.backoff_cap_seconds, o.backoff_base_seconds * 2.0 ** (attempt - 1)))

    async def run(self) -> list[JobOutcome]:
        """The loop; returns the outcomes (all of them with ``once``)."""
        o = self.options
        running: set[asyncio.Task[None]] = set()
        try:
            while not self._stopping.is_set():
                if o.every_seconds is not None:
                    await self._db(
                        self.queue.enqueue_due,
                        self._now(),
                        o.every_seconds,
                        provider=o.provider,
                        kind=o.kind,
                        max_attempts=o.max_attempts,
                    )
                while len(running) < o.concurrency and not self._exhausted():
                    job = await self._db(
                        self.queue.claim,
                        self.owner,
                        self._now(),
                        o.lease_seconds,
                        provider=o.provider,
                    )
                    if job is None:
                        break
                    self._claimed += 1
                    running.add(asyncio.create_task(self._run_job(job)))
                if not running and (o.once or self._exhausted()):
                    break
                await self._wait(running)
        finally:
            if running:
                await asyncio.gather(*running, return_exceptions=True)
        return self.outcomes

    def _exhausted(self) -> bool:
        return self.options.max_jobs is not None and self._claimed >= self.options.max_jobs

    async def _wait(self, running: set[asyncio.Task[None]]) -> None:
        """Until a job finishes or a poll interval passes (or ``stop()``)."""
        if running:
            done, _ = await asyncio.wait(
                running, timeout=self.options.poll_interval, return_when=asyncio.FIRST_COMPLETED
            )
            running.difference_update(done)
            # A full worker only polls when a slot frees up.
            if done or len(running) >= self.options.concurrency:
                return
        sleeper = asyncio.create_task(self.runtime.clock.sleep(self.options.poll_interval))
        stopper = asyncio.create_task(self._stopping.wait())
        waits: set[asyncio.Task[Any]] = {sleeper, stopper, *running}
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in (sleeper, stopper):
            task.cancel()
        running.difference_update(done)

    async def _run_job(self, job: Job) -> None:
        outcome = JobOutcome(job.id, job.connection_id, None, "failed", job.attempts)
        try:
            conn = await self._db(self.store.get_connection, job.connection_id)
            if conn is None or conn.status == "disconnected":
                reason = "the connection no longer exists" if conn is None else "disconnected"
                outcome.error = {"code": "disconnected", "message": reason}
                await self._db(self.queue.fail, job, self.owner, self._now(), reason, retry_at=None)
                return
            outcome.provider = conn.provider
            sync = asyncio.create_task(
                self.engine.sync_connection(
                    conn, SyncOptions(full=job.kind == "full", trigger="worker")
                )
            )
            lost = await self._heartbeat_until_done(job, sync)
            if lost:
                sync.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await sync
                outcome.status = "lost"
                outcome.error = {"code": "lease_lost", "message": "another worker took the job"}
                return
            result = sync.result()
            await self._record(job, result, outcome)
        except Exception as exc:  # a bug or the store went away: keep the worker alive
            from pms_cli.redact import redact_text

            message = redact_text(f"{type(exc).__name__}: {exc}")
            outcome.error = {"code": "worker_error", "message": message}
            with contextlib.suppress(Exception):
                now = self._now()
                retry = now + self.backoff(job.attempts)
                await self._db(self.queue.fail, job, self.owner, now, message, retry_at=retry)
                outcome.status = "retry" if job.attempts < job.max_attempts else "failed"
        finally:
            self.outcomes.append(outcome)
            if self.on_outcome is not None:
                self.on_outcome(outcome)

    async def _heartbeat_until_done(self, job: Job, sync: asyncio.Task[SyncResult]) -> bool:
        """Extend the lease every third of it while the sync runs; True if the lease was lost."""
        interval = self.options.lease_seconds / 3
        while True:
            timer = asyncio.create_task(self.runtime.clock.sleep(interval))
            done, _ = await asyncio.wait({sync, timer}, return_when=asyncio.FIRST_COMPLETED)
            if sync in done:
                timer.cancel()
                return False
            ok = await self._db(
                self.queue.heartbeat, job, self.owner, self._now(), self.options.lease_seconds
            )
            if not ok:
                return True

    async def _record(self, job: Job, result: SyncResult, outcome: JobOutcome) -> None:
        now = self._now()
        summary = result.to_dict()
        outcome.result = summary
        outcome.error = result.error
        if result.status in ("succeeded", "partial"):
            outcome.status = result.status
            await self._db(self.queue.complete, job, self.owner, now, result.status, summary)
            return
        error = result.error or {}
        message = str(error.get("message") or result.status)
        if result.status == "locked":
            outcome.status = "locked"
            again = now + self.options.locked_retry_seconds
            await self._db(self.queue.release, job, self.owner, now, again, message)
            return
        # Exit code 1 = transient or unknown (retry); 2/3 = config or credentials (user acts).
        retryable = int(error.get("exit_code", EXIT_FAILED)) == EXIT_FAILED
        retry_at = now + self.backoff(job.attempts) if retryable else None
        outcome.status = "retry" if retry_at and job.attempts < job.max_attempts else "failed"
        await self._db(
            self.queue.fail, job, self.owner, now, message, retry_at=retry_at, result=summary
        )
