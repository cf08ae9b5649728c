"""Peak RSS of a full sync at 10k vs 100k bookings, each in a fresh process.

    uv run python bench/memory.py [--small 10000] [--large 100000] [--store sqlite|postgres]

The Hostaway sandbox runs in its own process (`pms sandbox serve --relaxed`), so its generated
data does not count; each sync runs in a fresh Python process that prints its own peak RSS
(``ru_maxrss``). Streaming pages and bounded batches should keep the two within 10 %.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SYNC = r"""
import asyncio, json, resource, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from pms_cli.config import load_settings
from pms_cli.stores.base import Connection
from pms_cli.sync.engine import SyncEngine, SyncOptions
from pms_cli.sync.session import Runtime
base, account, secret, db = sys.argv[2:6]
if db.startswith("postgresql://"):
    from pms_cli.stores.postgres import PostgresStore
    store = PostgresStore(db)
else:
    from pms_cli.stores.sqlite import SqliteStore
    store = SqliteStore(Path(db))
conn = Connection(id="mem", organization_id="bench", provider="hostaway", display_name="mem",
                  status="active", account_ref=account, secret_location="env",
                  settings={"public": {"account_id": account}, "base_url": base,
                            "rate_limits": ["100000/1"]})
store.add_connection(conn)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
env = {"HOSTAWAY_CLIENT_SECRET": secret}
result = asyncio.run(SyncEngine(store, Runtime(load_settings(), env=env)).sync_connection(
    conn, SyncOptions(full=True)))
print(json.dumps({"status": result.status, "rows": store.counts("mem")["booking"],
                  "requests": result.requests, "seconds": time.perf_counter() - start,
                  "rss_before_mib": before / 1024,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure(bookings: int, db: str | None) -> dict[str, float]:
    port = free_port()
    env = {**os.environ, "PMS_CONFIG_DIR": tempfile.mkdtemp()}
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "pms_cli", "sandbox", "serve", "--provider", "hostaway",
         "--relaxed", "--listings", "20", "--reservations", str(bookings), "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=ROOT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline or sandbox.poll() is not None:
                    raise RuntimeError("sandbox did not start") from None
                time.sleep(0.2)
        from pms_cli.sandbox.hostaway import SANDBOX_ACCOUNT_ID, SANDBOX_CLIENT_SECRET

        with tempfile.TemporaryDirectory() as tmp:
            target = db or str(Path(tmp) / "mem.sqlite3")
            out = subprocess.run(
                [sys.executable, "-c", SYNC, str(ROOT), f"http://127.0.0.1:{port}/hostaway/v1",
                 str(SANDBOX_ACCOUNT_ID), SANDBOX_CLIENT_SECRET, target],
                capture_output=True, text=True, check=True, env=env, timeout=900,
            )  # fmt: skip
        return dict(json.loads(out.stdout.strip().splitlines()[-1]))
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=30)


def run(small: int, large: int, store: str = "sqlite") -> list[tuple[str, float, float, str]]:
    sys.path.insert(0, str(ROOT))
    figures = {}
    pg = None
    for n in (small, large):
        db = None
        if store == "postgres":
            from bench.pgtemp import TempPostgres

            pg = pg or TempPostgres().start()
            db = pg.create_database(f"mem{n}")
            from pms_cli.stores.postgres import PostgresStore

            PostgresStore(db, check_schema=False).migrate()
        figures[n] = measure(n, db)
    if pg is not None:
        pg.stop()
    a, b = figures[small], figures[large]
    note = (
        f"{store}; {a['rows']:.0f} → {b['rows']:.0f} rows, "
        f"{a['seconds']:.1f} s → {b['seconds']:.1f} s"
    )
    return [(f"peak RSS {small // 1000}k vs {large // 1000}k bookings", b["peak_rss_mib"],
             a["peak_rss_mib"], note)]  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--small", type=int, default=10_000)
    p.add_argument("--large", type=int, default=100_000)
    p.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    args = p.parse_args()
    for name, large, small, note in run(args.small, args.large, args.store):
        print(f"{name}: {large:.1f} MiB vs {small:.1f} MiB = {large / small:.3f}  ({note})")


if __name__ == "__main__":
    main()
