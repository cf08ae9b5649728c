"""`pms worker` on Procrastinate, on a real PostgreSQL: schema, queueing, locks, retries,
stalled-job recovery across processes, and the command."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psycopg
import pytest
import typer
from typer.testing import CliRunner

from pms_cli.sandbox.server import MountedSandbox, SandboxOptions, build, running
from pms_cli.stores import migrations
from pms_cli.stores.postgres import PostgresStore
from pms_cli.sync.engine import SyncEngine
from pms_cli.worker import Worker, WorkerOptions, defer_sync, memory_app, postgres_app
from tests.worker.conftest import add_connection, runtime_for

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]


def jobs(url: str) -> list[tuple[str, str, int, float]]:
    """(connection, status, attempts, seconds until scheduled) for every job in the queue."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT args->>'connection_id', status::text, attempts, "
            "coalesce(extract(epoch FROM scheduled_at - now()), 0)::float "
            "FROM procrastinate_jobs ORDER BY id"
        ).fetchall()
    return [(str(r[0]), str(r[1]), int(r[2]), float(r[3])) for r in rows]


def worker(store: PostgresStore, url: str, runtime: Any, **options: Any) -> Worker:
    opts = WorkerOptions(**{"once": True, "concurrency": 2, "every_seconds": 3600, **options})
    return Worker(store, runtime, postgres_app(url, opts.concurrency), opts)


# --- schema ----------------------------------------------------------------------------------


def test_a_version_2_database_gets_procrastinate_loses_pms_jobs_and_keeps_its_rows(
    fresh_db: str, monkeypatch: pytest.MonkeyPatch, hostaway: MountedSandbox
) -> None:
    with monkeypatch.context() as m:
        m.setattr(migrations, "STEPS", migrations.STEPS[:2])
        old = PostgresStore(fresh_db, check_schema=False)
        assert old.migrate() == [1, 2]
        add_connection(old, hostaway, "c1")
        old.close()
    store = PostgresStore(fresh_db, check_schema=False)
    latest = migrations.latest_version()
    assert store.migrate() == list(range(3, latest + 1))
    assert store.migrate() == []  # twice: nothing left to do
    assert store.schema_version() == latest
    assert store.get_connection("c1") is not None
    store.close()
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT to_regclass('pms_jobs')").fetchone() == (None,)
        rls = conn.execute(
            "SELECT relname, relrowsecurity FROM pg_class WHERE relname = ANY(%s) ORDER BY 1",
            [list(migrations.PROCRASTINATE_TABLES)],
        ).fetchall()
    assert rls == sorted((t, True) for t in migrations.PROCRASTINATE_TABLES)


def test_the_printed_script_installs_procrastinate_and_rerunning_it_changes_nothing(
    fresh_db: str,
) -> None:
    sql = migrations.migration_sql()
    assert "Procrastinate 3.10.0" in sql and "CREATE TABLE procrastinate_jobs" in sql

    def catalog(conn: psycopg.Connection[Any]) -> tuple[Any, ...]:
        objects = conn.execute(
            "SELECT count(*) FROM pg_class WHERE relname LIKE 'procrastinate%' OR "
            "relname LIKE 'pms%'"
        ).fetchone()
        functions = conn.execute(
            "SELECT count(*) FROM pg_proc WHERE proname LIKE 'procrastinate%'"
        ).fetchone()
        versions = conn.execute("SELECT version FROM pms_schema_version ORDER BY 1").fetchall()
        return objects, functions, versions

    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute(sql.encode())
        first = catalog(conn)
        conn.execute(sql.encode())
        assert catalog(conn) == first
    assert first[2] == [(step.version,) for step in migrations.STEPS]
    store = PostgresStore(fresh_db)  # the schema check passes: `pms db migrate` not needed
    assert store.migrate() == []
    store.close()


def test_supabase_api_roles_cannot_touch_the_queue_while_reading_pms_rows_by_policy(
    fresh_db: str,
) -> None:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        for role in ("anon", "authenticated"):
            conn.execute(
                f"DO $$ BEGIN CREATE ROLE {role} NOLOGIN; "
                "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
            )
            # What Supabase does for every new table and function in `public`.
            conn.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO {role}")
            conn.execute(
                f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON FUNCTIONS TO {role}"
            )
    store = PostgresStore(fresh_db, check_schema=False)
    store.migrate()
    store.close()
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        for role in ("anon", "authenticated"):
            for table in migrations.PROCRASTINATE_TABLES:
                row = conn.execute(
                    "SELECT has_table_privilege(%s, %s, 'SELECT'), "
                    "has_table_privilege(%s, %s, 'INSERT')",
                    [role, table, role, table],
                ).fetchone()
                assert row == (False, False), (role, table)
            granted = conn.execute(
                "SELECT count(*) FROM pg_proc p, aclexplode(p.proacl) a "
                "WHERE p.proname LIKE 'procrastinate%%' AND a.grantee = %s::regrole",
                [role],
            ).fetchone()
            assert granted == (0,)
            assert conn.execute(
                "SELECT has_table_privilege(%s, 'pms_bookings', 'SELECT')", [role]
            ).fetchone() == (True,)  # pms's own tables stay readable, filtered by RLS
        conn.execute("SET ROLE anon")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "SELECT procrastinate_defer_jobs_v1(ARRAY[]::procrastinate_job_to_defer_v1[])"
            )


def test_the_installed_procrastinate_is_the_one_whose_schema_the_migration_ships() -> None:
    # Upgrading Procrastinate needs a migration step with its schema changes first.
    assert version("procrastinate") == migrations.PROCRASTINATE_SCHEMA


# --- scheduling and locks --------------------------------------------------------------------


def test_workers_scheduling_at_once_queue_one_job_per_due_connection(
    open_store: Callable[[], PostgresStore], pg_url: str, hostaway: MountedSandbox
) -> None:
    from datetime import UTC, datetime

    setup = open_store()
    for conn_id in ("c1", "c2", "c3"):
        add_connection(setup, hostaway, conn_id)
    add_connection(setup, hostaway, "gone", status="disconnected")
    add_connection(setup, hostaway, "fresh", last_sync_at=datetime.now(UTC))

    async def schedule_from_three_workers() -> list[int]:
        workers = [worker(open_store(), pg_url, runtime_for(hostaway)) for _ in range(3)]
        for w in workers:
            await w.app.open_async()
        try:
            return list(await asyncio.gather(*(w.schedule_due() for w in workers)))
        finally:
            for w in workers:
                await w.app.close_async()

    assert sum(asyncio.run(schedule_from_three_workers())) == 4
    queued = {conn: (status, due) for conn, status, _, due in jobs(pg_url)}
    assert set(queued) == {"c1", "c2", "c3", "fresh"}
    assert all(status == "todo" for status, _ in queued.values())
    # Synced a moment ago (e.g. by a cron `pms sync`): due an interval later, not now.
    assert queued["fresh"][1] == pytest.approx(3600 - 60, abs=30)
    assert queued["c1"][1] <= 0


def test_two_workers_never_sync_a_connection_twice_at_once_and_skip_what_was_just_synced(
    open_store: Callable[[], PostgresStore],
    pg_url: str,
    hostaway: MountedSandbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    setup = open_store()
    ids = [f"c{i}" for i in range(6)]
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
            await asyncio.sleep(0.01)  # widen the window in which a double run would show
            result = await original(self, conn, options)
            synced.append(conn.id)
            return result
        finally:
            active[conn.id] -= 1

    monkeypatch.setattr(SyncEngine, "sync_connection", watched)

    async def run() -> list[list[Any]]:
        workers = [
            worker(open_store(), pg_url, runtime_for(hostaway), concurrency=3, poll_interval=0.1)
            for _ in range(2)
        ]
        # A second job for c0 with the same lock but no queueing lock: it may not run while
        # the first does, and finds c0 synced after it was queued.
        app = workers[0].app
        async with app.open_async():
            conn = setup.get_connection("c0")
            assert conn is not None
            assert await defer_sync(app, conn, every_seconds=3600)
            await (
                app.tasks["pms.sync_connection"]
                .configure(lock="pms:connection:c0", queue="pms.hostaway")
                .defer_async(connection_id="c0", every_seconds=3600, queued_at=time.time())
            )
        return list(await asyncio.gather(*(w.run() for w in workers)))

    outcomes = [o for runs in asyncio.run(run()) for o in runs]
    assert overlaps == []
    assert sorted(synced) == ids  # every connection once, none twice
    statuses = sorted((o.connection_id, o.status) for o in outcomes)
    assert statuses == sorted([(c, "succeeded") for c in ids] + [("c0", "skipped")])
    assert all(r.trigger == "worker" for r in setup.list_runs())
    # Each connection's next sync is queued an interval on, once.
    assert sorted((c, s) for c, s, _, due in jobs(pg_url) if due > 3000) == [
        (c, "todo") for c in ids
    ]


def test_transient_failures_retry_with_backoff_and_a_credential_error_fails_at_once(
    open_store: Callable[[], PostgresStore], pg_url: str, hostaway: MountedSandbox
) -> None:
    import httpx

    store = open_store()
    add_connection(store, hostaway, "flaky")
    add_connection(store, hostaway, "no-secret")
    no_secret = runtime_for(hostaway, http={"max_attempts": 1})
    no_secret.env = {}
    [outcome] = asyncio.run(_run_one(store, pg_url, no_secret, "no-secret"))
    assert (outcome.status, outcome.attempt) == ("failed", 1)
    assert outcome.error is not None and outcome.error["code"] == "credentials_missing"

    broken = runtime_for(hostaway, http={"max_attempts": 1})
    broken.transport = httpx.MockTransport(lambda r: httpx.Response(503, json={"status": "fail"}))
    [first] = asyncio.run(_run_one(store, pg_url, broken, "flaky"))
    assert (first.status, first.attempt) == ("retry", 1)
    by_conn = {c: (s, a, due) for c, s, a, due in jobs(pg_url)}
    assert by_conn["no-secret"][:2] == ("failed", 1)  # one attempt: for the user to fix
    status, attempts, due = by_conn["flaky"]
    assert (status, attempts) == ("todo", 1)
    assert due == pytest.approx(30, abs=5)  # backoff base 30 s, then 60, 120… capped
    assert WorkerOptions().backoff(7) == 1800


async def _run_one(store: PostgresStore, url: str, runtime: Any, conn_id: str) -> list[Any]:
    w = worker(store, url, runtime, every_seconds=None)
    async with w.app.open_async():
        conn = store.get_connection(conn_id)
        assert conn is not None
        await defer_sync(w.app, conn)
    return await w.run()


def test_a_connection_locked_by_a_running_pms_sync_is_queued_again_without_an_attempt(
    open_store: Callable[[], PostgresStore], pg_url: str, hostaway: MountedSandbox
) -> None:
    store = open_store()
    add_connection(store, hostaway, "c1")
    other = open_store()
    assert other.acquire_lock("c1", "cron-run", 3600)  # a `pms sync` in this process, running
    [outcome] = asyncio.run(_run_one(store, pg_url, runtime_for(hostaway), "c1"))
    assert outcome.status == "locked"
    [(conn, _status, attempts, due)] = [j for j in jobs(pg_url) if j[1] == "todo"]
    assert (conn, attempts) == ("c1", 0)
    assert due == pytest.approx(60, abs=5)
    assert store.counts("c1")["booking"] == 0


# --- three processes, one SIGKILLed ----------------------------------------------------------

_HANGING_WORKER = """
import asyncio, sys
from pms_cli.sync.engine import SyncEngine

async def hang(self, conn, options):
    # Take the engine lock as a real run does, say so, then never finish.
    assert self.store.acquire_lock(conn.id, "doomed-run", 3600)
    print("HANG", conn.id, flush=True)
    await asyncio.Event().wait()

SyncEngine.sync_connection = hang
from pms_cli.cli.app import main
main(sys.argv[1:])
"""


class Proc:
    """A subprocess whose stdout lines are collected by a thread (no blocking reads)."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.p = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert self.p.stdout is not None
        out = self.p.stdout
        threading.Thread(target=lambda: [self.lines.put(x) for x in out], daemon=True).start()

    def close(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
        self.p.communicate(timeout=30)

    def wait_for(self, text: str, deadline: float) -> bool:
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                if self.p.poll() is not None and self.lines.empty():
                    return False
                continue
            self.seen.append(line)
            if text in line:
                return True
        return False


def test_a_sigkilled_workers_job_is_recovered_and_synced_by_one_of_the_other_two(
    pg_url: str, tmp_path: Path
) -> None:
    app, [mounted] = build(SandboxOptions(relaxed=True, listings=3, reservations=40), ["hostaway"])
    with running(app) as server:
        store = PostgresStore(pg_url)
        conn = add_connection(store, mounted, "victim", base_url=server.base_url(mounted))
        env = {
            **os.environ,
            "PMS_DATABASE_URL": pg_url,
            "HOSTAWAY_CLIENT_SECRET": mounted.credentials["client_secret"],
            "PMS_CONFIG_DIR": str(tmp_path / "config"),
            "PMS_DATA_DIR": str(tmp_path / "data"),
        }
        # Heartbeats every second; a worker silent for 3 s is dead (short, yet well above the
        # scheduling hiccups of a loaded CI machine: a live worker must not be declared dead).
        args = ["worker", "--every", "0", "--stalled-after", "3", "--poll-interval", "0.2"]
        deadline = time.monotonic() + 90
        doomed = Proc([sys.executable, "-c", _HANGING_WORKER, *args], env)
        helpers: list[Proc] = []
        try:
            asyncio.run(_defer(pg_url, conn))
            assert doomed.wait_for("HANG victim", deadline), doomed.seen
            helpers = [Proc([sys.executable, "-m", "pms_cli", *args], env) for _ in range(2)]
            for h in helpers:
                assert h.wait_for("pms worker:", deadline), h.seen
            doomed.p.send_signal(signal.SIGKILL)
            assert doomed.p.wait(timeout=30) == -signal.SIGKILL
            # One of the two takes the job over once the dead worker's heartbeat is stale.
            results: queue.Queue[int] = queue.Queue()
            for i, h in enumerate(helpers):
                threading.Thread(
                    target=lambda i=i, h=h: (
                        h.wait_for("victim  succeeded", deadline) and results.put(i)
                    ),
                    daemon=True,
                ).start()
            winner = results.get(timeout=max(1.0, deadline - time.monotonic()))
            assert "hostaway victim  succeeded (attempt 2)" in helpers[winner].seen[-1], helpers[
                winner
            ].seen
            for h in helpers:  # SIGTERM: a clean stop, exit 0
                h.p.send_signal(signal.SIGTERM)
            for h in helpers:
                assert h.p.wait(timeout=30) == 0
        finally:
            for p in (doomed, *helpers):
                p.close()
        assert store.counts("victim")["booking"] == 40
        assert store.lock_holder("victim") is None
        [run] = [r for r in store.list_runs() if r.status == "succeeded"]
        assert run.trigger == "worker"
        store.close()
    assert jobs(pg_url) == []  # done and deleted; nothing queued (--every 0)


async def _defer(url: str, conn: Any) -> None:
    app = postgres_app(url, 1)
    async with app.open_async():
        assert await defer_sync(app, conn)


# --- the command -----------------------------------------------------------------------------


def _cli() -> typer.Typer:
    from pms_cli.cli import worker_cmd

    app = typer.Typer()
    worker_cmd.register(app)

    @app.callback()
    def _root() -> None:  # keep `worker` a subcommand, as in the real app
        pass

    return app


def _add_live(store: Any, live_sandbox: Any, ids: tuple[str, ...]) -> MountedSandbox:
    mounted: MountedSandbox = live_sandbox.mounted["hostaway"]
    for conn_id in ids:
        add_connection(store, mounted, conn_id, base_url=live_sandbox.base_url("hostaway"))
    return mounted


def test_pms_worker_once_json_syncs_every_due_connection_and_prints_one_summary(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, live_sandbox: Any
) -> None:
    store = PostgresStore(pg_url)
    mounted = _add_live(store, live_sandbox, ("cli-1", "cli-2"))
    store.close()
    monkeypatch.setenv("PMS_DATABASE_URL", pg_url)
    monkeypatch.setenv("HOSTAWAY_CLIENT_SECRET", mounted.credentials["client_secret"])
    result = CliRunner().invoke(_cli(), ["worker", "--once", "--json", "--every", "30"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["status"] == "ok"
    assert sorted((j["connection_id"], j["status"]) for j in body["jobs"]) == [
        ("cli-1", "succeeded"),
        ("cli-2", "succeeded"),
    ]
    assert mounted.credentials["client_secret"] not in result.stdout
    again = CliRunner().invoke(_cli(), ["worker", "--once", "--every", "30"])
    assert again.exit_code == 0
    assert "Procrastinate queue (fleet), concurrency 4, every 30 min, once" in again.stdout
    assert "Nothing to do" in again.stdout


def test_pms_worker_on_sqlite_says_a_fleet_needs_postgres_and_runs_the_schedule_itself(
    monkeypatch: pytest.MonkeyPatch, live_sandbox: Any
) -> None:
    from pms_cli.config import load_settings
    from pms_cli.stores.sqlite import SqliteStore

    store = SqliteStore(load_settings().resolved_sqlite_path)
    mounted = _add_live(store, live_sandbox, ("lite-1", "lite-2"))
    store.close()
    monkeypatch.setenv("HOSTAWAY_CLIENT_SECRET", mounted.credentials["client_secret"])
    result = CliRunner().invoke(_cli(), ["worker", "--once", "--every", "30"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "in-process queue" in lines[0]
    assert "a fleet of workers needs PostgreSQL" in result.stdout
    assert sum("succeeded (attempt 1)" in line for line in lines) == 2
    assert "2 job(s): 2 succeeded" in lines[-1]
    again = CliRunner().invoke(_cli(), ["worker", "--once", "--every", "30"])
    assert "Nothing to do" in again.stdout  # both synced within the interval


def test_the_in_memory_app_runs_the_same_task(hostaway: MountedSandbox, tmp_path: Path) -> None:
    from pms_cli.stores.sqlite import SqliteStore

    store = SqliteStore(tmp_path / "pms.sqlite3")
    add_connection(store, hostaway, "m1")
    w = Worker(store, runtime_for(hostaway), memory_app(), WorkerOptions(once=True))
    [outcome] = asyncio.run(w.run())
    assert (outcome.connection_id, outcome.status) == ("m1", "succeeded")
    assert store.counts("m1")["booking"] == 40
    store.close()


# --- stopping --------------------------------------------------------------------------------


def _gated_sync(monkeypatch: pytest.MonkeyPatch) -> tuple[asyncio.Event, list[asyncio.Event]]:
    """Syncs that announce themselves and wait for the test's go-ahead."""
    started = asyncio.Event()
    gates: list[asyncio.Event] = []
    original = SyncEngine.sync_connection

    async def gated(self: SyncEngine, conn: Any, options: Any) -> Any:
        gate = asyncio.Event()
        gates.append(gate)
        started.set()
        await gate.wait()
        return await original(self, conn, options)

    monkeypatch.setattr(SyncEngine, "sync_connection", gated)
    return started, gates


def test_stopping_a_worker_lets_its_running_job_finish(
    open_store: Callable[[], PostgresStore],
    pg_url: str,
    hostaway: MountedSandbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = open_store()
    add_connection(store, hostaway, "c1")
    started, gates = _gated_sync(monkeypatch)

    async def scenario() -> list[Any]:
        w = worker(store, pg_url, runtime_for(hostaway), once=False, every_seconds=None)
        async with w.app.open_async():
            conn = store.get_connection("c1")
            assert conn is not None
            await defer_sync(w.app, conn)
        running = asyncio.create_task(w.run())
        await asyncio.wait_for(started.wait(), 30)
        w.stop()  # SIGTERM
        for _ in range(20):  # let the worker act on the stop: it must not drop the job
            await asyncio.sleep(0)
        assert not running.done()  # still finishing its job
        gates[0].set()
        return await asyncio.wait_for(running, 30)

    [outcome] = asyncio.run(scenario())
    assert outcome.status == "succeeded"
    assert store.counts("c1")["booking"] == 40
    assert jobs(pg_url) == []


def test_a_grace_period_gives_a_running_job_back_to_the_queue(
    open_store: Callable[[], PostgresStore],
    pg_url: str,
    hostaway: MountedSandbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = open_store()
    add_connection(store, hostaway, "c1")
    started, _ = _gated_sync(monkeypatch)

    async def scenario() -> list[Any]:
        w = worker(
            store, pg_url, runtime_for(hostaway), once=False, every_seconds=None, grace_seconds=0
        )
        async with w.app.open_async():
            conn = store.get_connection("c1")
            assert conn is not None
            await defer_sync(w.app, conn)
        running = asyncio.create_task(w.run())
        await asyncio.wait_for(started.wait(), 30)
        w.stop()
        return await asyncio.wait_for(running, 30)

    [outcome] = asyncio.run(scenario())
    assert outcome.status == "given back"
    queued = jobs(pg_url)
    assert ("c1", "todo", 0) in [(c, s, a) for c, s, a, _ in queued]  # another worker's now
    assert store.lock_holder("c1") is None


def test_a_live_worker_keeps_its_short_engine_lock_alive_and_a_dead_ones_expires_soon(
    open_store: Callable[[], PostgresStore], pg_url: str, hostaway: MountedSandbox
) -> None:
    store = open_store()
    add_connection(store, hostaway, "c1")
    w = worker(store, pg_url, runtime_for(hostaway), stalled_seconds=30)
    # Not the hour of a cron run: a worker on another machine that dies frees it in minutes.
    assert w.runtime.settings.sync.lock_ttl_seconds == 90
    assert store.acquire_lock("c1", "run-1", 5)  # as the engine does, in this process
    before = store.lock_holder("c1")
    assert before is not None
    w._extend_engine_lock("c1")  # a heartbeat
    after = store.lock_holder("c1")
    assert after is not None and after["expires_at"] >= before["expires_at"] + 80


def test_a_sqlite_file_from_the_old_queue_loses_its_pms_jobs_table_on_open(tmp_path: Path) -> None:
    import sqlite3
    from contextlib import closing

    from pms_cli.stores.sqlite import SqliteStore

    path = tmp_path / "pms.sqlite3"
    with closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE pms_jobs (id TEXT PRIMARY KEY)")
        db.commit()
    SqliteStore(path).close()
    with closing(sqlite3.connect(path)) as db:
        found = db.execute("SELECT name FROM sqlite_master WHERE name = 'pms_jobs'").fetchall()
    assert found == []


_LIMITED_PMS = """
import sys
from pms_cli.http.ratelimit import Window
from pms_cli.providers import hostaway
# The sandbox enforces 4 requests / 0.5 s per IP so that the test takes seconds, not minutes;
# the client is told the same limit (production: the documented 15 / 10 s).
hostaway.Hostaway.ip_rate_limits = (Window(4, 0.5),)
hostaway.TOKEN_ACTIVATION_DELAY = 0.0
from pms_cli.cli.app import main
main(sys.argv[1:])
"""


def test_two_worker_processes_on_one_machine_draw_no_429_from_a_per_ip_limit(
    pg_url: str, tmp_path: Path
) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from pms_cli.sandbox.hostaway import HostawaySandbox, HostawaySandboxConfig

    sandbox = HostawaySandbox(
        HostawaySandboxConfig(
            listings=3,
            reservations=150,
            rate_limit_ip=(4, 0.5),
            rate_limit_account=None,
            token_activation_delay=0.0,
            max_limit=50,  # 3 reservation pages per sync
            default_limit=50,
        )
    )
    app = Starlette(routes=[Mount("/hostaway", app=sandbox.app)])
    env = {
        **os.environ,
        "PMS_DATABASE_URL": pg_url,
        "PMS_CONFIG_DIR": str(tmp_path / "config"),
        "PMS_DATA_DIR": str(tmp_path / "data"),  # the host's shared per-IP windows live here
        "HOSTAWAY_CLIENT_SECRET": sandbox.config.client_secret,
    }
    ids = [f"ip-{i}" for i in range(4)]
    with running(app) as server:
        store = PostgresStore(pg_url)
        for conn_id in ids:
            add_connection(
                store,
                MountedSandbox(
                    "hostaway", sandbox.app, {"account_id": str(sandbox.config.account_id)}, "/v1"
                ),
                conn_id,
                base_url=f"{server.url}/hostaway/v1",
            )
        store.close()
        args = ["worker", "--once", "--json", "--every", "30", "--concurrency", "2"]
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _LIMITED_PMS, *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
                cwd=ROOT,
            )
            for _ in range(2)
        ]
        results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    done = [j for out, _ in results for j in json.loads(out)["jobs"]]
    assert sorted((j["connection_id"], j["status"]) for j in done) == [
        (c, "succeeded") for c in ids
    ]
    assert sandbox.stats.requests >= 16  # enough to overrun 4 / 0.5 s without coordination
    assert sandbox.stats.rate_limited == 0


def test_a_provider_worker_runs_only_its_providers_queue(
    open_store: Callable[[], PostgresStore], pg_url: str, hostaway: MountedSandbox
) -> None:
    from dataclasses import replace

    store = open_store()
    ha = add_connection(store, hostaway, "ha")
    smoobu = replace(ha, id="sm", provider="smoobu", settings={})
    store.add_connection(smoobu)
    w = worker(store, pg_url, runtime_for(hostaway), provider="hostaway")
    outcomes = asyncio.run(w.run())
    assert [(o.connection_id, o.status) for o in outcomes] == [("ha", "succeeded")]
    assert ("sm", "todo") not in [(c, s) for c, s, _, _ in jobs(pg_url)]  # not even scheduled
    everyone = worker(store, pg_url, runtime_for(hostaway), every_seconds=None)

    async def queue_smoobu() -> None:
        async with everyone.app.open_async():
            await defer_sync(everyone.app, smoobu)

    asyncio.run(queue_smoobu())
    hostaway_only = worker(
        store, pg_url, runtime_for(hostaway), provider="hostaway", every_seconds=None
    )
    assert asyncio.run(hostaway_only.run()) == []
    assert ("sm", "todo") in [(c, s) for c, s, _, _ in jobs(pg_url)]  # waits for its workers
