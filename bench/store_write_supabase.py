"""Write throughput of SupabaseStore through the PostgREST test double, next to PostgresStore.

    uv run python bench/store_write_supabase.py [--rows 50000] [--batch 500] [--no-fsync]

Starts a throwaway PostgreSQL (bench/pgtemp.py, default durability), applies the migration,
and writes the same 50k bookings as bench/store_write.py in engine-sized batches:

- postgres          PostgresStore.upsert_records (COPY + INSERT … ON CONFLICT), the reference
- supabase-http     SupabaseStore → HTTP on 127.0.0.1 → the double (uvicorn) → PostgreSQL
- supabase-inproc   SupabaseStore → httpx.MockTransport → the double → PostgreSQL (no socket)
- supabase-update   supabase-http again over the same keys (every row an ON CONFLICT update)
- (encode only)     the JSON encoding SupabaseStore does per batch (twice: byte budget + body)

The double runs PostgREST's own SQL (json_populate_recordset + ON CONFLICT) but is Python, not
Haskell, and there is no network latency or TLS: a real Supabase project adds one round trip
per batch (~20-100 ms from most places), which is what the batch size amortises.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.pgtemp import TempPostgres
from bench.store_write import T0, bookings
from pms_cli.sandbox.server import SandboxServer
from pms_cli.stores.base import Connection
from pms_cli.stores.postgres import PostgresStore
from pms_cli.stores.schema import BOOKINGS
from pms_cli.stores.sql import record_row
from pms_cli.stores.supabase import SupabaseStore, encode_json
from tests.stores.postgrest_double import PostgrestDouble

KEY = "sb_secret_bench-0123456789"


def timed(label: str, rows: int, fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - start
    rate = rows / elapsed
    print(f"{label:<20} {rows:>7} rows  {elapsed:7.2f} s  {rate:>10,.0f} rows/s", flush=True)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=500, help="rows per upsert_records call")
    parser.add_argument("--no-fsync", action="store_true", help="run PostgreSQL with fsync off")
    args = parser.parse_args()
    records = bookings(args.rows)
    n = len(records)
    print(f"{n} bookings, {args.batch} per batch", flush=True)

    def conn(store: PostgresStore | SupabaseStore, cid: str) -> Connection:
        c = Connection(cid, "org-bench", "hostaway", cid, "active", "", "env")
        store.add_connection(c)
        return c

    def batched(store: PostgresStore | SupabaseStore, c: Connection) -> None:
        for i in range(0, n, args.batch):
            store.upsert_records(c, "booking", records[i : i + args.batch], T0)

    with TempPostgres(durable=not args.no_fsync) as server:
        url = server.create_database("bench")
        pg = PostgresStore(url, check_schema=False)
        pg.migrate()
        pg_conn = conn(pg, "pg")
        timed("postgres", n, lambda: batched(pg, pg_conn))
        pg.close()

        double = PostgrestDouble(url, KEY, max_rows=None)
        http = SandboxServer(double.asgi())
        http.start()
        try:
            store = SupabaseStore(http.url, KEY, batch_rows=args.batch)
            sb_conn = conn(store, "supabase-http")
            timed("supabase-http", n, lambda: batched(store, sb_conn))
            timed("supabase-update", n, lambda: batched(store, sb_conn))
            print(f"{'':<20} {store.stats.requests} requests, {store.stats.splits} splits")
            store.close()
        finally:
            http.stop()

        inproc = SupabaseStore(
            "http://double.invalid", KEY, transport=double.transport(), batch_rows=args.batch
        )
        in_conn = conn(inproc, "supabase-inproc")
        timed("supabase-inproc", n, lambda: batched(inproc, in_conn))
        inproc.close()

        wire = [inproc._wire(BOOKINGS, record_row(in_conn, r, T0)) for r in records]

        def encode() -> None:
            for i in range(0, n, args.batch):
                chunk = wire[i : i + args.batch]
                for row in chunk:
                    encode_json(row)
                encode_json(chunk)

        timed("(encode only)", n, encode)
        assert inproc.stats.splits == 0
        double.close()


if __name__ == "__main__":
    main()
