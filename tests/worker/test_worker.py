"""`pms worker` and the pms_jobs queue on a real PostgreSQL: leases, SKIP LOCKED, reclaiming."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
import typer
from typer.testing import CliRunner

from pms_cli.sandbox.server import MountedSandbox
from pms_cli.stores import migrations
from pms_cli.stores.jobs import JobQueue
from pms_cli.stores.postgres import PostgresStore
from pms_cli.stores.sqlite import SqliteStore
from pms_cli.sync.engine import SyncEngine
from pms_cli.worker import Worker, WorkerOptions
from tests.conftest import SharedClock
from tests.worker.conftest import add_connection, runtime_for

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
LEASE = 60.0


# --- schema ----------------------------------------------------------------------------------


def test_a_version_1_database_is_upgraded_to_the_job_queue_and_keeps_its_rows(
    fresh_db: str, monkeypatch: pytest.MonkeyPatch, hostaway: MountedSandbox
) -> None:
    with monkeypatch.context() as m:
        m.setattr(migrations, "STEPS", migrations.STEPS[:1])
        old = PostgresStore(fresh_db, check_schema=False)
        assert old.migrate() == [1]
        add_connection(old, hostaway, "c1")
        old.close()
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT to_regclass('pms_jobs')").fetchone() == (None,)
    store = PostgresStore(fresh_db, check_schema=False)
    assert store.migrate() == list(range(2, migrations.latest_version() + 1))
    assert store.migrate() == []
    assert store.schema_version() == migrations.latest_version()
    assert store.get_connection("c1") is not None
    assert JobQueue(store).enqueue("c1", 1000.0) is not None
    store.close()
    with psycopg.connect(fresh_db) as conn:
        rls = conn.execute("SELECT relrowsecurity FROM pg_class WHERE relname = 'pms_jobs'")
        assert rls.fetchone() == (True,)


def test_the_printed_migration_creates_the_job_queue_with_its_one_active_job_index() -> None:
    sql = migrations.migration_sql()
    assert "-- version 2:" in sql
    assert "CREATE TABLE IF NOT EXISTS pms_jobs" in sql
    assert "pms_jobs_active_uq ON pms_jobs (connection_id) WHERE status IN" in sql
    assert "ALTER TABLE pms_jobs ENABLE ROW LEVEL SECURITY;" in sql


# --- the queue -------------------------------------------------------------------------------


def test_a_connection_has_at_most_one_queued_or_running_job(
    open_store: Callable[[], PostgresStore], hostaway: MountedSandbox
) -> None:
    store = open_store()
    add_connection(store, hostaway, "c1")
    queue = JobQueue(store)
    first = queue.enqueue("c1", 1000.0)
    assert first is not None and first.status == "queued"
    assert queue.enqueue("c1", 1001.0) is None
    job = queue.claim("w1", 1002.0, LEASE)
    assert job is not None and job.id == first.id and job.attempts == 1
    assert queue.enqueue("c1", 1003.0) is None  # running counts as active too
    assert queue.complete(job, "w1", 1004.0, "succeeded", {"requests": 3})
    assert queue.enqueue("c1", 1005.0) is not None
    assert queue.enqueue("missing", 1005.0) is None


def test_due_connections_are_queued_once_per_interval_and_disconnected_ones_never(
    open_store: Callable[[], PostgresStore], hostaway: MountedSandbox
) -> None:
    store = open_store()
    add_connection(store, hostaway, "c1")
    add_connection(store, hostaway, "c2")
    add_connection(store, hostaway, "gone", status="disconnected")
    queue = JobQueue(store)
    assert queue.enqueue_due(1000.0, 600) == 2
    assert queue.enqueue_due(1000.0, 600) == 0  # already queued
    for _ in range(2):
        job = queue.claim("w1", 1001.0, LEASE)
        assert job is not None
        queue.complete(job, "w1", 1010.0, "succeeded", None)
    assert queue.enqueue_due(1500.0, 600) == 0  # finished 490 s ago
    assert queue.enqueue_due(1611.0, 600) == 2
    assert {j.connection_id for j in queue.list("queued")} == {"c1", "c2"}


def test_concurrent_claims_from_separate_sessions_never_hand_out_a_job_twice(
    open_store: Callable[[], PostgresStore], hostaway: MountedSandbox
) -> None:
    setup = open_store()
    for i in range(30):
        add_connection(setup, hostaway, f"c{i:02d}")
    assert JobQueue(setup).enqueue_due(1000.0, 600) == 30
    queues = [JobQueue(open_store()) for _ in range(3)]
    claimed: list[list[str]] = [[] for _ in queues]
    start = threading.Barrier(len(queues))

    def drain(i: int) -> None:
        start.wait()
        while (job := queues[i].claim(f"w{i}", 1001.0, LEASE)) is not None:
            claimed[i].append(job.connection_id)

    threads = [threading.Thread(target=drain, args=(i,)) for i in range(len(queues))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    everything = [c for ids in claimed for c in ids]
    assert sorted(everything) == [f"c{i:02d}" for i in range(30)]  # each exactly once


def test_a_heartbeat_keeps_the_lease_and_fails_once_another_worker_took_the_job(
    open_store: Callable[[], PostgresStore], hostaway: MountedSandbox
) -> None:
    store = open_store()
    add_connection(store, hostaway, "c1")
    queue = JobQueue(store)
    queue.enqueue("c1", 1000.0)
    job = queue.claim("w1", 1000.0, LEASE)
    assert job is not None
    assert queue.heartbeat(job, "w1", 1050.0, LEASE)  # lease now ends at 1110
    assert queue.claim("w2", 1100.0, LEASE) is None
    taken = queue.claim("w2", 1111.0, LEASE)
    assert taken is not None and taken.id == job.id and taken.attempts == 2
    assert not queue.heartbeat(job, "w1", 1112.0, LEASE)
    assert not queue.complete(job, "w1", 1113.0, "succeeded", None)  # no longer w1's to close
    assert queue.complete(taken, "w2", 1114.0, "succeeded", None)


def test_a_job_whose_lease_expired_on_its_last_attempt_is_failed_not_retried(
    open_store: Callable[[], PostgresStore], hostaway: MountedSandbox
) -> None:
    store = open_store()
    add_connection(store, hostaway, "c1")
    queue = JobQueue(store)
    queue.enqueue("c1", 1000.0, max_attempts=1)
    assert queue.claim("w1", 1000.0, LEASE) is not None
    assert queue.claim("w2", 2000.0, LEASE) is None
    queue.enqueue_due(2000.0, 10**9)
    [job] = queue.list()
    assert job.status == "failed" and "lease expired" in (job.last_error or "")


def test_the_local_sqlite_store_runs_the_same_queue_for_workers_on_one_machine(
    tmp_path: Path, hostaway: MountedSandbox
) -> None:
    store = SqliteStore(tmp_path / "pms.sqlite3")
    add_connection(store, hostaway, "c1")
    add_connection(store, hostaway, "c2")
    queue = JobQueue(store)
    assert queue.enqueue_due(1000.0, 600) == 2
    long = 3600.0
    a, b = queue.claim("w1", 1000.0, long), queue.claim("w2", 1000.0, long)
    assert a is not None and b is not None and a.connection_id != b.connection_id
    assert queue.claim("w3", 1000.0, long) is None
    assert queue.fail(a, "w1", 1001.0, "HTTP 503", retry_at=1100.0)
    assert queue.claim("w3", 1099.0, long) is None
    again = queue.claim("w3", 1100.0, long)
    assert again is not None and again.id == a.id and again.attempts == 2
    assert queue.counts() == {"running": 2}
    store.close()


# --- workers ---------------------------------------------------------------------------------


def test_a_worker_drains_the_queue_and_records_each_sync(
    open_store: Callable[[], PostgresStore], hostaway: MountedSandbox, clock: SharedClock
) -> None:
    store = open_store()
    for i in range(3):
        add_connection(store, hostaway, f"c{i}")
    worker = Worker(
        store,
        runtime_for(hostaway, clock),
        WorkerOptions(once=True, concurrency=2, every_seconds=3600),
        owner="w1",
    )
    outcomes = asyncio.run(worker.run())
    assert sorted((o.connection_id, o.status) for o in outcomes) == [
        (f"c{i}", "succeeded") for i in range(3)
    ]
    assert JobQueue(store).counts() == {"succeeded": 3}
    assert store.counts("c1")["booking"] == 40
    assert all(r.trigger == "worker" for r in store.list_runs())
    # Nothing is due again within the interval: a second drain has nothing to do.
    assert asyncio.run(worker.run()) == outcomes


def test_two_workers_on_one_queue_never_sync_the_same_connection_at_once(
    open_store: Callable[[], PostgresStore],
    hostaway: MountedSandbox,
    clock: SharedClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    setup = open_store()
    ids = [f"c{i}" for i in range(8)]
    for conn_id in ids:
        add_connection(setup, hostaway, conn_id)
    active: dict[str, int] = {}
    overlaps: list[str] = []
    synced: list[str] = []
    original = SyncEngine.sync_connection

    async def watched(self: SyncEngine, conn: Any, options: Any) -> Any:
        active[conn.id] = active.get(conn.id, 0) + 1
        if active[conn.id] > 1:
            overlaps.append(conn.id)
        try:
            await asyncio.sleep(0.01)  # widen the window in which a double claim would show
            result = await original(self, conn, options)
            synced.append(conn.id)
            return result
        finally:
            active[conn.id] -= 1

    monkeypatch.setattr(SyncEngine, "sync_connection", watched)
    # SharedClock jumps forward on every sleep, so concurrent heartbeat timers would add up
    # and expire leases that a real clock keeps; here time stands still instead (leases never
    # expire: reclaiming is the next test's subject) and the client limiter is lifted.
    frozen = FrozenClock(clock.time())
    unlimited = {"hostaway": {"rate_limits": ["100000/1"]}}

    async def both() -> list[list[Any]]:
        workers = [
            Worker(
                open_store(),
                runtime_for(hostaway, frozen, providers=unlimited),
                WorkerOptions(once=True, concurrency=3, every_seconds=3600, poll_interval=0.1),
                owner=f"w{n}",
            )
            for n in range(2)
        ]
        return list(await asyncio.gather(*(w.run() for w in workers)))

    per_worker = asyncio.run(both())
    assert overlaps == []
    assert sorted(synced) == ids  # every connection once, none twice
    assert all(o.status == "succeeded" for runs in per_worker for o in runs)
    assert JobQueue(setup).counts() == {"succeeded": len(ids)}


class FrozenClock(SharedClock):
    """Time moves only when a test says so; sleeping just lets other tasks run."""

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)


_DIE_HOLDING_THE_JOB = """
import os, signal, sys
sys.path.insert(0, sys.argv[4])
from pms_cli.stores.jobs import JobQueue
from pms_cli.stores.postgres import PostgresStore
store = PostgresStore(sys.argv[1])
job = JobQueue(store).claim("doomed", float(sys.argv[3]), 60.0)
assert job is not None and job.connection_id == sys.argv[2]
assert store.acquire_lock(job.connection_id, "doomed-run", 3600)  # mid-sync, like a real run
print("claimed", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_workers_job_is_reclaimed_once_its_lease_expires_and_then_synced(
    open_store: Callable[[], PostgresStore],
    pg_url: str,
    hostaway: MountedSandbox,
    clock: SharedClock,
) -> None:
    store = open_store()
    add_connection(store, hostaway, "c1")
    queue = JobQueue(store)
    queue.enqueue("c1", clock.time())
    dying = subprocess.run(
        [sys.executable, "-c", _DIE_HOLDING_THE_JOB, pg_url, "c1", str(clock.time()), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert dying.returncode == -signal.SIGKILL, dying.stderr
    assert dying.stdout.strip() == "claimed"
    [held] = queue.list("running")
    assert held.lease_owner == "doomed"

    def worker() -> Worker:
        opts = WorkerOptions(once=True, every_seconds=None, lease_seconds=LEASE)
        return Worker(store, runtime_for(hostaway, clock), opts, owner="rescuer")

    clock.advance(LEASE / 2)
    assert asyncio.run(worker().run()) == []  # the lease still runs: hands off
    clock.advance(LEASE / 2 + 1)
    [outcome] = asyncio.run(worker().run())
    assert (outcome.connection_id, outcome.status, outcome.attempt) == ("c1", "succeeded", 2)
    assert store.counts("c1")["booking"] == 40
    assert store.lock_holder("c1") is None


def test_transient_failures_are_retried_with_backoff_and_a_credential_error_is_not(
    open_store: Callable[[], PostgresStore], hostaway: MountedSandbox, clock: SharedClock
) -> None:
    store = open_store()
    add_connection(store, hostaway, "flaky")
    add_connection(store, hostaway, "no-secret")
    runtime = runtime_for(hostaway, clock, http={"max_attempts": 1})
    real_env = runtime.env
    runtime.env = {}
    queue = JobQueue(store)
    queue.enqueue("no-secret", clock.time())
    opts = WorkerOptions(once=True, every_seconds=None, backoff_base_seconds=30)
    [outcome] = asyncio.run(Worker(store, runtime, opts, owner="w").run())
    assert outcome.status == "failed" and outcome.error is not None
    assert outcome.error["code"] == "credentials_missing"
    [job] = queue.list("failed")
    assert job.attempts == 1  # a missing secret is for the user to fix, not to retry

    runtime.env = real_env
    broken = runtime_for(hostaway, clock, http={"max_attempts": 1})
    broken.transport = _always(503)
    queue.enqueue("flaky", clock.time())
    [first] = asyncio.run(Worker(store, broken, opts, owner="w").run())
    assert first.status == "retry"
    [queued] = queue.list("queued")
    assert queued.attempts == 1 and queued.not_before == pytest.approx(clock.time() + 30, abs=5)
    assert asyncio.run(Worker(store, runtime, opts, owner="w").run()) == []  # not yet due
    clock.advance(31)
    [second] = asyncio.run(Worker(store, runtime, opts, owner="w").run())
    assert (second.status, second.attempt) == ("succeeded", 2)


def _always(status: int) -> Any:
    import httpx

    return httpx.MockTransport(lambda request: httpx.Response(status, json={"status": "fail"}))


# --- the command -----------------------------------------------------------------------------


def test_pms_worker_once_json_syncs_every_due_connection_and_prints_one_summary(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, live_sandbox: Any
) -> None:
    from pms_cli.cli import worker_cmd
    from pms_cli.stores.base import Connection

    mounted = live_sandbox.mounted["hostaway"]
    store = PostgresStore(pg_url)
    for conn_id in ("cli-1", "cli-2"):
        store.add_connection(
            Connection(
                id=conn_id,
                organization_id="org",
                provider="hostaway",
                display_name=conn_id,
                status="active",
                account_ref=mounted.credentials["account_id"],
                secret_location="env",
                settings={
                    "public": {"account_id": mounted.credentials["account_id"]},
                    "base_url": live_sandbox.base_url("hostaway"),
                },
            )
        )
    store.close()
    monkeypatch.setenv("PMS_DATABASE_URL", pg_url)
    monkeypatch.setenv("HOSTAWAY_CLIENT_SECRET", mounted.credentials["client_secret"])
    app = typer.Typer()
    worker_cmd.register(app)

    @app.callback()
    def _root() -> None:  # keep `worker` a subcommand, as in the real app
        pass

    result = CliRunner().invoke(app, ["worker", "--once", "--json", "--every", "30"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["status"] == "ok"
    assert sorted((j["connection_id"], j["status"]) for j in body["jobs"]) == [
        ("cli-1", "succeeded"),
        ("cli-2", "succeeded"),
    ]
    assert mounted.credentials["client_secret"] not in result.stdout
    again = CliRunner().invoke(app, ["worker", "--once", "--every", "30"])
    assert again.exit_code == 0 and "Nothing to do" in again.stdout
