"""The `pms worker` job queue (``pms_jobs``) over a store's own database connection.

A job asks for one sync of one connection. Workers — processes on one or many machines —
``claim`` a job by taking a **lease** (owner + expiry) and keep it alive with ``heartbeat``;
a worker that dies stops heartbeating, its lease expires, and any worker may reclaim the job.

Guarantees (PostgreSQL):

- a partial unique index allows at most one queued-or-running job per connection, so
  ``enqueue``/``enqueue_due`` are idempotent however many workers schedule at once;
- ``claim`` picks a row with ``FOR UPDATE SKIP LOCKED``: two workers never take the same job,
  and neither waits on the other's row lock;
- ``complete``/``fail``/``release`` only act while the caller still owns the lease, so a
  worker whose job was reclaimed cannot overwrite the new owner's state.

The engine's own per-connection lock (``pms_locks``) still guards every sync, so even a worker
that lost its lease without noticing cannot sync a connection another worker is syncing.

SQLite runs the same SQL without ``SKIP LOCKED``: its writers are serialised (``BEGIN
IMMEDIATE``) and each claim is a single ``UPDATE … RETURNING``, which is safe for workers on one
machine sharing the file. A fleet on several machines needs PostgreSQL.

Times (``not_before``, ``lease_expires_at``) are epoch seconds read from the caller's clock, so
tests drive leases with a fake clock; keep a fleet's clocks NTP-synced (skew far below the lease).
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pms_cli.errors import ConfigError
from pms_cli.stores.schema import JOBS
from pms_cli.stores.sql import HOST, SqlStore

ACTIVE = ("queued", "running")
FINISHED = ("succeeded", "partial", "failed")


@dataclass
class Job:
    id: str
    connection_id: str
    organization_id: str
    kind: str  # sync | full
    status: str  # queued | running | succeeded | partial | failed
    not_before: float
    lease_owner: str | None
    lease_expires_at: float | None
    attempts: int
    max_attempts: int
    last_error: str | None
    result: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


def _ts(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


class JobQueue:
    """Queue operations on a SQL store's connection (each method is one transaction)."""

    def __init__(self, store: object) -> None:
        if not isinstance(store, SqlStore):
            raise ConfigError(
                "`pms worker` needs a PostgreSQL (or local SQLite) store, not "
                f"{type(store).__name__}",
                hint="Point PMS_DATABASE_URL at the Postgres database (for Supabase: its Postgres "
                "connection string) and run `pms db migrate`.",
                code="store_unsupported",
            )
        self.store = store
        self.ph = store.ph
        # SQLite has no row locks to skip; its writers are serialised instead (see module doc).
        self._skip_locked = " FOR UPDATE SKIP LOCKED" if store.dialect == "postgres" else ""
        self._cols = ", ".join(JOBS.column_names)

    # --- reading ------------------------------------------------------------------------

    def _job(self, row: Any) -> Job:
        values = self.store._restore_row(JOBS, row)
        values["attempts"] = int(values["attempts"])
        values["max_attempts"] = int(values["max_attempts"])
        return Job(**values)

    def get(self, job_id: str) -> Job | None:
        with self.store._tx() as cur:
            cur.execute(f"SELECT {self._cols} FROM pms_jobs WHERE id = {self.ph}", [job_id])
            row = cur.fetchone()
        return self._job(row) if row else None

    def list(self, status: str | None = None, limit: int = 1000) -> list[Job]:
        where, params = ("WHERE status = " + self.ph, [status]) if status else ("", [])
        with self.store._tx() as cur:
            cur.execute(
                f"SELECT {self._cols} FROM pms_jobs {where} "
                f"ORDER BY created_at, id LIMIT {int(limit)}",
                params,
            )
            return [self._job(r) for r in cur.fetchall()]

    def counts(self) -> dict[str, int]:
        with self.store._tx() as cur:
            cur.execute("SELECT status, count(*) FROM pms_jobs GROUP BY status")
            return {str(r[0]): int(r[1]) for r in cur.fetchall()}

    # --- scheduling ---------------------------------------------------------------------

    def enqueue(
        self,
        connection_id: str,
        now: float,
        *,
        kind: str = "sync",
        not_before: float | None = None,
        max_attempts: int = 5,
    ) -> Job | None:
        """Queue a job for one connection; None when it already has a queued or running job."""
        ph = self.ph
        job_id = str(uuid.uuid4())
        stamp = self.store.adapt("ts", _ts(now))
        with self.store._tx() as cur:
            cur.execute(
                "INSERT INTO pms_jobs (id, connection_id, organization_id, kind, status, "
                "not_before, attempts, max_attempts, created_at, updated_at) "
                f"SELECT {ph}, c.id, c.organization_id, {ph}, 'queued', {ph}, 0, {ph}, {ph}, {ph} "
                f"FROM pms_connections c WHERE c.id = {ph} ON CONFLICT DO NOTHING",
                [
                    job_id,
                    kind,
                    now if not_before is None else not_before,
                    max_attempts,
                    stamp,
                    stamp,
                    connection_id,
                ],
            )
            inserted = cur.rowcount == 1
        return self.get(job_id) if inserted else None

    def enqueue_due(
        self,
        now: float,
        every_seconds: float,
        *,
        provider: str | None = None,
        kind: str = "sync",
        max_attempts: int = 5,
    ) -> int:
        """Queue a job for every connection not disconnected whose last job finished longer
        than ``every_seconds`` ago (or never ran) and that has none queued or running.

        Also retires jobs whose lease expired after their last allowed attempt (a job that
        kills every worker it runs on must not be retried forever). Returns jobs queued.
        """
        ph = self.ph
        stamp = self.store.adapt("ts", _ts(now))
        since = self.store.adapt("ts", _ts(now - every_seconds))
        new_id = (
            "gen_random_uuid()::text"
            if self.store.dialect == "postgres"
            else "lower(hex(randomblob(16)))"
        )
        filters, params = "", []
        if provider:
            filters, params = f" AND c.provider = {ph}", [provider]
        with self.store._tx() as cur:
            cur.execute(
                "UPDATE pms_jobs SET status = 'failed', lease_owner = NULL, "
                "last_error = 'the worker running it stopped (lease expired) on every attempt', "
                f"finished_at = {ph}, updated_at = {ph} WHERE status = 'running' "
                f"AND lease_expires_at < {ph} AND attempts >= max_attempts",
                [stamp, stamp, now],
            )
            cur.execute(
                "INSERT INTO pms_jobs (id, connection_id, organization_id, kind, status, "
                "not_before, attempts, max_attempts, created_at, updated_at) "
                f"SELECT {new_id}, c.id, c.organization_id, {ph}, 'queued', {ph}, 0, {ph}, "
                f"{ph}, {ph} FROM pms_connections c WHERE c.status <> 'disconnected'{filters} "
                "AND NOT EXISTS (SELECT 1 FROM pms_jobs j WHERE j.connection_id = c.id AND "
                f"(j.status IN ('queued', 'running') OR j.finished_at >= {ph})) "
                "ON CONFLICT DO NOTHING",
                [kind, now, max_attempts, stamp, stamp, *params, since],
            )
            return max(int(cur.rowcount), 0)

    # --- leases -------------------------------------------------------------------------

    def claim(
        self, owner: str, now: float, lease_seconds: float, *, provider: str | None = None
    ) -> Job | None:
        """Take the next runnable job: queued and due, or running with an expired lease."""
        ph = self.ph
        filters, params = "", []
        if provider:
            filters = (
                f" AND connection_id IN (SELECT id FROM pms_connections WHERE provider = {ph})"
            )
            params = [provider]
        with self.store._tx() as cur:
            cur.execute(
                f"UPDATE pms_jobs SET status = 'running', lease_owner = {ph}, "
                f"lease_expires_at = {ph}, attempts = attempts + 1, updated_at = {ph} "
                "WHERE id = (SELECT id FROM pms_jobs WHERE "
                f"((status = 'queued' AND not_before <= {ph}) OR (status = 'running' AND "
                f"lease_expires_at < {ph} AND attempts < max_attempts)){filters} "
                f"ORDER BY not_before, created_at, id LIMIT 1{self._skip_locked}) "
                f"RETURNING {self._cols}",
                [
                    owner,
                    now + lease_seconds,
                    self.store.adapt("ts", _ts(now)),
                    now,
                    now,
                    *params,
                ],
            )
            row = cur.fetchone()
        return self._job(row) if row else None

    def heartbeat(self, job: Job, owner: str, now: float, lease_seconds: float) -> bool:
        """Extend the lease; False when it is no longer ours (expired and reclaimed).

        Also extends this process's engine lock on the connection (``pms_locks``), which the
        worker takes with a short TTL so that a dead worker's lock expires as its lease does.
        That lock is timed on the wall clock by the store, hence ``time.time()`` here.
        """
        ph = self.ph
        with self.store._tx() as cur:
            cur.execute(
                f"UPDATE pms_jobs SET lease_expires_at = {ph}, updated_at = {ph} "
                f"WHERE id = {ph} AND lease_owner = {ph} AND status = 'running'",
                [now + lease_seconds, self.store.adapt("ts", _ts(now)), job.id, owner],
            )
            ours = bool(cur.rowcount == 1)
            if ours:
                cur.execute(
                    f"UPDATE pms_locks SET expires_at = {ph} WHERE connection_id = {ph} "
                    f"AND host = {ph} AND pid = {ph}",
                    [time.time() + lease_seconds, job.connection_id, HOST, os.getpid()],
                )
        if ours:
            job.lease_expires_at = now + lease_seconds
        return ours

    def complete(
        self, job: Job, owner: str, now: float, status: str, result: dict[str, Any] | None
    ) -> bool:
        """Record a finished run (``succeeded`` or ``partial``); False if the lease was lost."""
        return self._finish(job, owner, now, status, result, None)

    def fail(
        self,
        job: Job,
        owner: str,
        now: float,
        error: str,
        *,
        retry_at: float | None,
        result: dict[str, Any] | None = None,
    ) -> bool:
        """Requeue the job for ``retry_at`` (attempts left), or mark it failed for good."""
        if retry_at is not None and job.attempts < job.max_attempts:
            return self._requeue(job, owner, now, retry_at, error, refund=False)
        return self._finish(job, owner, now, "failed", result, error)

    def release(self, job: Job, owner: str, now: float, retry_at: float, reason: str) -> bool:
        """Give the job back without spending an attempt (e.g. the connection was locked)."""
        return self._requeue(job, owner, now, retry_at, reason, refund=True)

    def _requeue(
        self, job: Job, owner: str, now: float, retry_at: float, error: str, *, refund: bool
    ) -> bool:
        ph = self.ph
        with self.store._tx() as cur:
            cur.execute(
                "UPDATE pms_jobs SET status = 'queued', lease_owner = NULL, "
                f"lease_expires_at = NULL, not_before = {ph}, last_error = {ph}, "
                f"attempts = attempts - {1 if refund else 0}, updated_at = {ph} "
                f"WHERE id = {ph} AND lease_owner = {ph} AND status = 'running'",
                [retry_at, error, self.store.adapt("ts", _ts(now)), job.id, owner],
            )
            return bool(cur.rowcount == 1)

    def _finish(
        self,
        job: Job,
        owner: str,
        now: float,
        status: str,
        result: dict[str, Any] | None,
        error: str | None,
    ) -> bool:
        ph = self.ph
        stamp = self.store.adapt("ts", _ts(now))
        with self.store._tx() as cur:
            cur.execute(
                f"UPDATE pms_jobs SET status = {ph}, lease_owner = NULL, lease_expires_at = NULL, "
                f"result = {ph}, last_error = {ph}, finished_at = {ph}, updated_at = {ph} "
                f"WHERE id = {ph} AND lease_owner = {ph} AND status = 'running'",
                [
                    status,
                    self.store.adapt("json", result),
                    error,
                    stamp,
                    stamp,
                    job.id,
                    owner,
                ],
            )
            return bool(cur.rowcount == 1)
