"""Checkpoints inside a resource: what they cost per batch, and what they save after a kill.

    uv run python bench/checkpoints.py [--bookings 5000] [--calls 500]

1. Cost: ``set_checkpoint`` (one small upsert in its own transaction, what the engine adds
   after each committed batch) timed on SQLite and on a throwaway durable PostgreSQL
   (bench/pgtemp.py), next to the batch write it follows (``upsert_records`` of 500 bookings).
2. Saving: a Lodgify sandbox sync in-process (httpx.ASGITransport, fake clock) is stopped at
   70 % of its bookings walk by a failing page, then rerun: pages the rerun reads, with and
   without the checkpoint (cleared before the rerun for "without").
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.pgtemp import TempPostgres
from bench.store_write import T0, bookings
from pms_cli.sandbox.faults import Fault, with_faults
from pms_cli.stores.base import Connection, Store
from pms_cli.stores.postgres import PostgresStore
from pms_cli.stores.sqlite import SqliteStore
from tests.conftest import SharedClock
from tests.helpers import Harness

STATE = {
    "since": None,
    "full": False,
    "position": {"page": 12, "fetched": 550},
    "started_at": "2026-05-28T00:00:00+00:00",
    "run_id": "run",
    "pages": 11,
}


def per_call_ms(fn: object, calls: int) -> float:
    times = []
    for i in range(calls):
        start = time.perf_counter()
        fn(i)  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def cost(store: Store, name: str, calls: int) -> None:
    conn = Connection("c1", "org", "lodgify", "bench", "active", "", "env", {})
    store.add_connection(conn)
    batch = bookings(500)
    checkpoint = per_call_ms(lambda i: store.set_checkpoint("c1", "bookings", STATE), calls)
    write = per_call_ms(lambda i: store.upsert_records(conn, "booking", batch, T0), 20)
    print(
        f"{name:9} set_checkpoint {checkpoint:6.2f} ms (median of {calls}); "
        f"a 500-booking batch {write:7.2f} ms; overhead {checkpoint / write:5.1%} per batch"
    )


class PathCounter:
    def __init__(self, app: object) -> None:
        self.app = app
        self.paths: Counter[str] = Counter()

    async def __call__(self, scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
        if scope["type"] == "http":
            self.paths[scope["path"].rsplit("/", 1)[-1]] += 1
        await self.app(scope, receive, send)  # type: ignore[operator]


def rerun_pages(workdir: Path, bookings_n: int, keep_checkpoint: bool) -> tuple[int, int]:
    clock = SharedClock()
    h = Harness("lodgify", workdir, clock, listings=3, reservations=bookings_n)
    h.settings.sync.batch_size = 50
    pages = -(-bookings_n // 50)
    stop_at = int(pages * 0.7) + 1
    plain = h.sandbox
    h.sandbox = with_faults(plain, [Fault("5xx", start=stop_at, burst=10_000, path="bookings")],
                            sleep=clock.sleep)  # fmt: skip
    h.sync()
    if not keep_checkpoint:
        h.store.set_checkpoint(h.conn.id, "bookings", None)
    counter = PathCounter(plain.app)
    h.sandbox = replace(plain, app=counter)
    assert h.sync().status == "succeeded"
    return counter.paths["bookings"], pages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bookings", type=int, default=5000)
    parser.add_argument("--calls", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = SqliteStore(Path(tmp) / "bench.sqlite3")
        cost(sqlite, "sqlite", args.calls)
        sqlite.close()
        with TempPostgres(durable=True) as server:
            pg = PostgresStore(server.create_database("bench"), check_schema=False)
            pg.migrate()
            cost(pg, "postgres", args.calls)
            pg.close()
        for keep in (True, False):
            read, pages = rerun_pages(Path(tmp) / f"rerun-{keep}", args.bookings, keep)
            label = "with checkpoint" if keep else "without (before)"
            print(
                f"rerun after a stop at 70 % of {pages} pages, {label:16}: "
                f"{read} pages read ({read / pages:.0%})"
            )


if __name__ == "__main__":
    main()
