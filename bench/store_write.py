"""Write throughput of the stores: 50k bookings through SqliteStore and PostgresStore vs raw COPY.

    uv run python bench/store_write.py [--rows 50000] [--batch 500] [--no-fsync]

Starts its own throwaway PostgreSQL (bench/pgtemp.py; default durability, fsync on) and a
SQLite file in a temp dir, writes the same bookings in engine-sized batches (one transaction
per batch, as a sync does), and prints rows/s for:

- sqlite            SqliteStore.upsert_records (executemany)
- postgres          PostgresStore.upsert_records (COPY into a temp table + INSERT … ON CONFLICT)
- postgres-execmany the shared SqlStore executemany path on the same connection, for reference
- postgres-update   PostgresStore again over the same keys (every row an ON CONFLICT update)
- (row preparation) model_dump + value adaptation alone, the Python cost every store pays
- raw COPY          one COPY of all rows straight into pms_bookings: the ceiling
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.pgtemp import TempPostgres
from pms_cli.models import Booking, BookingStatus
from pms_cli.stores.base import Connection
from pms_cli.stores.postgres import PostgresStore
from pms_cli.stores.schema import BOOKINGS
from pms_cli.stores.sql import SqlStore, record_row
from pms_cli.stores.sqlite import SqliteStore

T0 = datetime(2026, 5, 1, tzinfo=UTC)


def bookings(n: int) -> list[Booking]:
    out = []
    for i in range(n):
        out.append(
            Booking(
                external_id=str(100_000 + i),
                property_external_id=str(i % 40),
                guest_external_id=f"email:guest{i}@example.com",
                status=BookingStatus.CONFIRMED if i % 9 else BookingStatus.CANCELLED,
                check_in=date(2026, 1, 1) + timedelta(days=i % 365),
                check_out=date(2026, 1, 4) + timedelta(days=i % 365),
                adults=2,
                children=i % 3,
                channel="airbnb",
                confirmation_code=f"HM{i:08d}",
                total_price=Decimal(f"{300 + i % 700}.50"),
                currency="EUR",
                guest_name=f"Guest {i}",
                guest_email=f"guest{i}@example.com",
                guest_phone="+351912345678",
                created_at=T0,
                updated_at=T0 + timedelta(minutes=i),
                raw={
                    "id": 100_000 + i,
                    "listingMapId": i % 40,
                    "guestName": f"Guest {i}",
                    "totalPrice": 300.5 + i % 700,
                    "status": "new",
                    "arrivalDate": "2026-01-01",
                    "customFieldValues": [{"id": 1, "value": "x" * 40}],
                },
            )
        )
    return out


def conn_for(store: SqlStore, cid: str) -> Connection:
    conn = Connection(cid, "org-bench", "hostaway", cid, "active", "", "env")
    store.add_connection(conn)
    return conn


def timed(label: str, rows: int, fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - start
    rate = rows / elapsed
    print(f"{label:<20} {rows:>7} rows  {elapsed:7.2f} s  {rate:>10,.0f} rows/s", flush=True)
    return rate


def batched(store: SqlStore, conn: Connection, records: list[Booking], size: int) -> None:
    for i in range(0, len(records), size):
        store.upsert_records(conn, "booking", records[i : i + size], T0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=500, help="rows per transaction")
    parser.add_argument("--no-fsync", action="store_true", help="run PostgreSQL with fsync off")
    args = parser.parse_args()
    records = bookings(args.rows)
    n = len(records)
    print(f"{n} bookings, {args.batch} per transaction", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        sqlite = SqliteStore(Path(tmp) / "bench.sqlite3")
        sconn = conn_for(sqlite, "sqlite")
        timed("sqlite", n, lambda: batched(sqlite, sconn, records, args.batch))
        sqlite.close()

    with TempPostgres(durable=not args.no_fsync) as server:
        url = server.create_database("bench")
        pg = PostgresStore(url, check_schema=False)
        pg.migrate()
        conn = conn_for(pg, "pg-copy")
        timed("postgres", n, lambda: batched(pg, conn, records, args.batch))
        timed("postgres-update", n, lambda: batched(pg, conn, records, args.batch))

        many = conn_for(pg, "pg-executemany")

        def executemany() -> None:
            for i in range(0, n, args.batch):
                SqlStore.upsert_records(pg, many, "booking", records[i : i + args.batch], T0)

        timed("postgres-execmany", n, executemany)

        raw = conn_for(pg, "pg-raw")
        cols = ", ".join(BOOKINGS.column_names)
        # Rows are prepared (model → adapted values) outside the COPY timing, and that Python
        # cost is printed on its own: the stores pay it too, so COPY alone is the ceiling.
        values: list[list[object]] = []

        def prepare() -> None:
            values.extend(pg._row_values(BOOKINGS, record_row(raw, r, T0)) for r in records)

        timed("(row preparation)", n, prepare)

        def raw_copy() -> None:
            with psycopg.connect(url) as db, db.cursor() as cur:
                with cur.copy(f"COPY pms_bookings ({cols}) FROM STDIN") as copy:
                    for row in values:
                        copy.write_row(row)
                db.commit()

        timed("raw COPY", n, raw_copy)
        with psycopg.connect(url) as db:
            total = db.execute("SELECT count(*) FROM pms_bookings").fetchone()
        assert total == (3 * n,), total
        pg.close()


if __name__ == "__main__":
    main()
