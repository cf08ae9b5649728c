"""Per-IP budgets are shared by every pms process of a host (``SharedWindow``)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from starlette.applications import Starlette
from starlette.routing import Mount

from pms_cli.http.clock import FakeClock
from pms_cli.http.ratelimit import LimiterRegistry, RateLimiter, SharedWindow, Window
from pms_cli.sandbox.hostaway import HostawaySandbox, HostawaySandboxConfig
from pms_cli.sandbox.server import running
from pms_cli.stores.base import Connection
from pms_cli.stores.sqlite import SqliteStore

ROOT = Path(__file__).resolve().parents[2]


def test_two_registries_on_one_directory_draw_from_one_ip_budget(tmp_path: Path) -> None:
    clock = FakeClock()
    window = Window(3, 10.0)
    # Two registries stand for two processes: each has its own memory, they share the file.
    limiters = [
        RateLimiter(
            clock=clock, windows=[LimiterRegistry(tmp_path).ip_window("hostaway:ip", window)]
        )
        for _ in range(2)
    ]

    async def send(limiter: RateLimiter) -> float:
        permit = await limiter.acquire()
        permit.settle(clock.monotonic())  # answered at once
        return permit.waited

    async def alternate() -> list[float]:
        return [await send(limiters[i % 2]) for i in range(6)]

    waits = asyncio.run(alternate())
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3] >= 10.0  # the 4th request in the window waits, whichever process sends it
    assert sum(w > 0 for w in waits) == 1
    assert clock.monotonic() - FakeClock().monotonic() >= 10.0


def test_a_request_that_never_left_gives_its_shared_slot_back(tmp_path: Path) -> None:
    shared = SharedWindow(Window(1, 10.0), tmp_path / "w.json")
    slot = shared.record(100.0)
    assert slot is not None and shared.record(100.0) is None
    slot.cancel()
    assert shared.wait_needed(100.0) == 0.0
    (tmp_path / "w.json").write_text("{torn")  # a half-written file never fails a sync
    assert shared.wait_needed(100.0) == 0.0


def test_a_process_registry_without_a_directory_keeps_ip_budgets_in_memory() -> None:
    budget = LimiterRegistry().ip_window("hostaway:ip", Window(15, 10.0))
    assert not isinstance(budget, SharedWindow)


_SYNC = """
import sys
from pms_cli.http.ratelimit import Window
from pms_cli.providers import hostaway
# The sandbox enforces 4 requests / 0.5 s per IP so that the test takes a second, not minutes;
# the client is told the same limit (production: the documented 15 / 10 s).
hostaway.Hostaway.ip_rate_limits = (Window(4, 0.5),)
hostaway.TOKEN_ACTIVATION_DELAY = 0.0
from pms_cli.cli.app import main
main(sys.argv[1:])
"""


def test_two_pms_processes_on_one_machine_draw_no_429_from_a_per_ip_limit(
    tmp_path: Path,
) -> None:
    sandbox = HostawaySandbox(
        HostawaySandboxConfig(
            listings=3,
            reservations=250,
            rate_limit_ip=(4, 0.5),
            rate_limit_account=None,
            token_activation_delay=0.0,
            max_limit=50,  # 250 reservations: 5 pages per sync
            default_limit=50,
        )
    )
    app = Starlette(routes=[Mount("/hostaway", app=sandbox.app)])
    env = {
        **os.environ,
        "PMS_CONFIG_DIR": str(tmp_path / "config"),
        "PMS_DATA_DIR": str(tmp_path / "data"),
        "HOSTAWAY_CLIENT_SECRET": sandbox.config.client_secret,
    }
    with running(app) as server:
        store = SqliteStore(tmp_path / "data" / "pms.sqlite3")
        for conn_id in ("ha-1", "ha-2"):
            store.add_connection(
                Connection(
                    id=conn_id,
                    organization_id="org",
                    provider="hostaway",
                    display_name=conn_id,
                    status="active",
                    account_ref=str(sandbox.config.account_id),
                    secret_location="env",
                    settings={
                        "public": {"account_id": str(sandbox.config.account_id)},
                        "base_url": f"{server.url}/hostaway/v1",
                    },
                )
            )
        store.close()
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _SYNC, "sync", "--connection", conn_id, "--json"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
                cwd=ROOT,
            )
            for conn_id in ("ha-1", "ha-2")
        ]
        results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    assert sandbox.stats.requests >= 10  # enough to overrun 4 / 0.5 s without coordination
    assert sandbox.stats.rate_limited == 0
