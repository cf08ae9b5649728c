"""3 workers vs 1 on the same Procrastinate queue in Postgres.

    uv run python bench/workers.py [--connections 12] [--bookings 1000] [--concurrency 2]

A throwaway PostgreSQL (bench/pgtemp.py) holds N Lodgify connections, each its own account on
a relaxed sandbox over 127.0.0.1; every account is paced client-side at 10 requests/s (a
`rate_limits` override), so a run is bound by per-account pacing, as real fleets are. The same
queue is drained once by one worker process and once by three (each `--concurrency C`), with
real clocks; the figure is the speed-up, ideally 3.0.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WORKER = r"""
import asyncio, sys
sys.path.insert(0, sys.argv[1])
from pms_cli.config import load_settings
from pms_cli.stores.postgres import PostgresStore
from pms_cli.sync.session import Runtime
from pms_cli.worker import Worker, WorkerOptions, postgres_app
store = PostgresStore(sys.argv[2])
env = {"LODGIFY_API_KEY": sys.argv[4]}
concurrency = int(sys.argv[3])
opts = WorkerOptions(once=True, concurrency=concurrency, every_seconds=None, poll_interval=0.2)
app = postgres_app(sys.argv[2], concurrency)
outcomes = asyncio.run(Worker(store, Runtime(load_settings(), env=env), app, opts).run())
bad = [o for o in outcomes if o.status != "succeeded"]
print(len(outcomes), len(bad), bad[0].error if bad else "")
"""


def drain(url: str, workers: int, concurrency: int, api_key: str) -> tuple[float, list[str]]:
    env = {**os.environ, "PMS_CONFIG_DIR": tempfile.mkdtemp()}
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(ROOT), url, str(concurrency), api_key],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(workers)
    ]
    outs = [p.communicate(timeout=900)[0].strip() for p in procs]
    return time.perf_counter() - start, outs


def run(connections: int, bookings: int, concurrency: int) -> list[tuple[str, float, float, str]]:
    from bench.pgtemp import TempPostgres
    from pms_cli.sandbox.server import SandboxOptions, build, running
    from pms_cli.stores.base import Connection
    from pms_cli.stores.postgres import PostgresStore
    from pms_cli.worker import defer_sync, postgres_app

    app, [mounted] = build(
        SandboxOptions(listings=5, reservations=bookings, relaxed=True), ["lodgify"]
    )
    with TempPostgres() as pg, running(app) as server:
        url = pg.create_database("workers")
        store = PostgresStore(url, check_schema=False)
        store.migrate()
        for i in range(connections):
            store.add_connection(
                Connection(
                    id=f"lodgify-{i:02d}",
                    organization_id="bench",
                    provider="lodgify",
                    display_name=f"acct{i}",
                    status="active",
                    account_ref=f"acct{i}",
                    secret_location="env",
                    settings={
                        "public": {},
                        "base_url": server.base_url(mounted),
                        "rate_limits": ["10/1"],
                    },
                )
            )
        conns = store.list_connections()

        async def queue_all() -> None:
            app = postgres_app(url, 1)
            async with app.open_async():
                for conn in conns:
                    assert await defer_sync(app, conn)

        walls = {}
        split: list[int] = []
        spans: dict[int, float] = {}
        for n in (1, 3):
            # Both drains start from the same empty state: with cursors left from the first,
            # the second was incremental (a few requests each) and looked 6x faster.
            store._db.execute(
                "DELETE FROM procrastinate_jobs; DELETE FROM pms_locks; "
                "DELETE FROM pms_sync_state; DELETE FROM pms_bookings; DELETE FROM pms_guests; "
                "DELETE FROM pms_properties; DELETE FROM pms_sync_log"
            )
            asyncio.run(queue_all())
            walls[n], outs = drain(url, n, concurrency, mounted.credentials["api_key"])
            done = sum(int(o.split()[0]) for o in outs if o)
            assert done == connections, outs
            split = [int(o.split()[0]) for o in outs if o]
            # Without process start-up (imports compete for the CPU on a busy machine): first
            # sync started to last sync finished, from the sync log.
            row = store._db.execute(
                "SELECT extract(epoch FROM max(finished_at) - min(started_at)) FROM pms_sync_log"
            ).fetchone()
            spans[n] = float(row[0]) if row and row[0] is not None else float("nan")
        store.close()
    # The figure only means something on an otherwise idle machine: say how busy it was.
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    note = (
        f"{connections} connections × {bookings} bookings, --concurrency {concurrency}: "
        f"1 worker {walls[1]:.1f} s, 3 workers {walls[3]:.1f} s; syncing alone "
        f"{spans[1]:.1f} s vs {spans[3]:.1f} s = {spans[1] / spans[3]:.2f}× (jobs per worker "
        f"{'/'.join(map(str, split))}; {os.cpu_count()} CPUs, load {load:.1f})"
    )
    return [("3 workers vs 1 (speed-up)", walls[1], walls[3], note)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--connections", type=int, default=12)
    p.add_argument("--bookings", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=2)
    args = p.parse_args()
    for name, one, three, note in run(args.connections, args.bookings, args.concurrency):
        print(f"{name}: {one / three:.2f}×  ({note})")


if __name__ == "__main__":
    main()
