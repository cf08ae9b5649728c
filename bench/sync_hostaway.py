"""Hostaway sync figures: requests vs optimum, wall time vs rate-limit floor, 429s, peak RSS.

    uv run python bench/sync_hostaway.py [--reservations 2000] [--simulated 20000]

(a) real socket + real clock: `pms sandbox` with the documented limits (15/10 s per IP,
    20/10 s per account, 1 s token activation) on 127.0.0.1, a full sync into a temp SQLite.
(b) simulated clock: the same engine and sandbox in-process with a shared fake clock, so a large
    account's pacing can be measured without waiting for it in real time.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def real_socket(reservations: int) -> dict[str, float]:
    from pms_cli.config import load_settings
    from pms_cli.providers.hostaway import PAGE_SIZE
    from pms_cli.sandbox.server import SandboxOptions, build, running
    from pms_cli.stores.base import Connection
    from pms_cli.stores.sqlite import SqliteStore
    from pms_cli.sync.engine import SyncEngine, SyncOptions
    from pms_cli.sync.session import Runtime

    listings = 50
    app, [mounted] = build(
        SandboxOptions(listings=listings, reservations=reservations), ["hostaway"]
    )
    with tempfile.TemporaryDirectory() as tmp, running(app) as server:
        store = SqliteStore(Path(tmp) / "bench.sqlite3")
        conn = Connection(
            id="bench",
            organization_id="bench",
            provider="hostaway",
            display_name="bench",
            status="active",
            account_ref=mounted.credentials["account_id"],
            secret_location="env",
            settings={
                "public": {"account_id": mounted.credentials["account_id"]},
                "base_url": server.base_url(mounted),
            },
        )
        store.add_connection(conn)
        env = {"HOSTAWAY_CLIENT_SECRET": mounted.credentials["client_secret"]}
        runtime = Runtime(load_settings(), env=env)
        start = time.perf_counter()
        result = asyncio.run(SyncEngine(store, runtime).sync_connection(conn, SyncOptions()))
        wall = time.perf_counter() - start
        optimum = 1 + math.ceil(listings / PAGE_SIZE) + math.ceil(reservations / PAGE_SIZE)
        floor = (math.ceil(optimum / 15) - 1) * 10.0 + 1.0  # windows + the 1 s token activation
        return {
            "records": reservations,
            "requests": result.requests,
            "optimum": optimum,
            "wall_s": wall,
            "floor_s": floor,
            "429s": mounted.state.stats.rate_limited,
            "rows": store.counts("bench")["booking"],
        }


def simulated(reservations: int) -> dict[str, float]:
    from pms_cli.providers import hostaway
    from tests.conftest import SharedClock
    from tests.helpers import Harness

    hostaway.TOKEN_ACTIVATION_DELAY = 0.0
    clock = SharedClock()
    with tempfile.TemporaryDirectory() as tmp:
        h = Harness(
            "hostaway", Path(tmp), clock, relaxed=False, listings=50, reservations=reservations
        )
        h.state.config.token_activation_delay = 0.0
        start = clock.time()
        result = h.sync()
        elapsed = clock.time() - start
        floor = (math.ceil(result.requests / 15) - 1) * 10.0
        return {
            "records": reservations,
            "requests": result.requests,
            "optimum": 1 + 1 + math.ceil(reservations / hostaway.PAGE_SIZE),
            "wall_s": elapsed,
            "floor_s": floor,
            "429s": h.state.stats.rate_limited,
            "rows": h.store.counts(h.conn.id)["booking"],
        }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reservations", type=int, default=2000)
    parser.add_argument("--simulated", type=int, default=20000)
    args = parser.parse_args()
    os.environ.setdefault("PMS_CONFIG_DIR", tempfile.mkdtemp())
    rows = [("real socket", real_socket(args.reservations))]
    rss_after_real = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows.append(("simulated clock", simulated(args.simulated)))
    columns = ("records", "requests", "optimum", "wall_s", "floor_s", "429s", "rows")
    print(f"{'run':<16}" + "".join(f"{c:>9}" for c in columns))
    for name, r in rows:
        cells = "".join(
            f"{r[c]:>9.2f}" if isinstance(r[c], float) else f"{r[c]:>9}" for c in columns
        )
        print(f"{name:<16}{cells}")
    print(
        f"peak RSS after the real-socket run: {rss_after_real:.0f} MiB "
        f"(process incl. sandbox and its generated data)"
    )


if __name__ == "__main__":
    main()
