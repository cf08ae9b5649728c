"""Request economy and pacing at scale, per provider, against the sandboxes.

    uv run python bench/scale.py [--bookings 20000] [--connections 200] [--per-connection 2000]
                                 [--providers hostaway,guesty,...] [--skip-real]
                                 [--clock virtual|shared] [--matrix-providers guesty,...]

Three measurements, each a ratio taken in the same run:

1. requests vs optimum: a full sync of one account issues ⌈records / max page size⌉ requests
   per resource plus auth; an incremental sync with nothing changed, at most one per resource.
2. wall time vs the rate-limit floor, per provider, at the documented limits (Beds24: its
   100-credit / 5-minute budget read from the response headers), and the sandbox's 429 count.
3. `--all` over N connections × M bookings each (default 200 × 2,000) vs the floor implied by
   every limit that applies: per account, and per IP where the provider has one (Hostaway:
   15 requests / 10 s shared by every connection behind the machine's address).

(1)–(3) run on a **simulated clock**, so hours of pacing take seconds: by default virtual
event-loop time (bench/virtual_clock.py: a sleep ends when virtual time reaches its deadline,
and time jumps to the earliest deadline only when no task, callback or worker thread can make
progress, so concurrent sleeps overlap as in real life); the sandboxes read the same clock.
``--clock shared`` uses tests/conftest.SharedClock instead, where every sleep advances the one
shared time by its full length, so concurrent sleeps of many connections add up (the figures
before bench/virtual_clock.py). One **real-socket** run checks the simulation: Guesty's
15 requests/s over 127.0.0.1 with real sleeps.

The sandboxes of (3) are separate accounts (one emulator instance each) that share one
generated data set to keep memory small; Hostaway's instances share the server-side per-IP
counter, as the real API counts one address for all of them.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import math
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROVIDERS = ("hostaway", "smoobu", "lodgify", "guesty", "beds24")
# Token requests that a cold full sync needs (the rest of a run is pages).
AUTH_REQUESTS = {"hostaway": 1, "smoobu": 0, "lodgify": 0, "guesty": 1, "beds24": 1}
# Generated data each emulator instance of a connection matrix shares with the first one.
DATA_ATTRS = {
    "hostaway": ("listings", "reservations"),
    "smoobu": ("apartments", "guests", "reservations"),
    "lodgify": ("properties", "rooms", "_cities", "bookings", "external"),
    "guesty": ("listings", "guests", "_guest_ids", "reservations"),
    "beds24": ("properties", "bookings"),
}
BEDS24_SERVER_PAGE = 100  # the sandbox's (and Beds24's) fixed page size
BEDS24_COST = {"token": 1.0, "properties": 1.0, "bookings": 1.5}
T = TypeVar("T")


@dataclass
class Row:
    figure: str
    measured: float
    reference: float
    unit: str
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.measured / self.reference if self.reference else float("nan")


# --- optimum and floors ------------------------------------------------------------------------


def page_size(provider: str, resource: Any) -> float:
    p = resource.paginator
    size = getattr(p, "limit", None) or getattr(p, "size", None)
    if size:
        return float(size)
    if provider == "beds24":
        return float(BEDS24_SERVER_PAGE)
    return math.inf  # a single-page endpoint


# Requests a page needs beyond itself where the API no longer embeds related data: Guesty v3
# reservation rows are joined with the guests list and the guest-folio overview (one each).
JOINS_PER_PAGE = {("guesty", "bookings"): 2}


def optimum(provider: str, result: Any) -> int:
    """Auth + ⌈records / max page size⌉ (at least one) per resource synced, times the joins
    each page needs."""
    from pms_cli.providers import get_provider

    cls = get_provider(provider)
    total = AUTH_REQUESTS[provider]
    for name, rr in result.resources.items():
        size = page_size(provider, cls.resource(name))
        pages = max(1, math.ceil(rr.fetched / size)) if size != math.inf else 1
        total += pages * (1 + JOINS_PER_PAGE.get((provider, name), 0))
        total += cls.resource(name).lists_deletions  # e.g. Lodgify /v2/deletedProperties
    return total


def window_floor(requests: int, limit: int, seconds: float) -> float:
    """Sliding window: the first ``limit`` go at once, each further batch a window later."""
    return max(0, math.ceil(requests / limit) - 1) * seconds


def floor_for(provider: str, result: Any, connections: int = 1) -> float:
    """The least wall time the documented limits allow for ``connections`` such runs."""
    from pms_cli.providers import get_provider

    cls = get_provider(provider)
    per_conn = optimum(provider, result)
    if provider == "beds24":
        credits = BEDS24_COST["token"]
        for name, rr in result.resources.items():
            pages = max(1, math.ceil(rr.fetched / BEDS24_SERVER_PAGE))
            credits += pages * BEDS24_COST.get(name, 1.0)
        return max(0, math.ceil(credits / 100.0) - 1) * 300.0  # fixed 5-minute windows
    api = per_conn - (AUTH_REQUESTS[provider] if provider == "guesty" else 0)  # token: no quota
    floor = max((window_floor(api, w.limit, w.seconds) for w in cls.rate_limits), default=0.0)
    for w in cls.ip_rate_limits:  # one address for every connection
        floor = max(floor, window_floor(per_conn * connections, w.limit, w.seconds))
    return floor


# --- simulated single-account runs ------------------------------------------------------------


class Sim:
    """A simulated clock and the way to run a coroutine on it (see ``--clock``)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        if kind == "virtual":
            from bench.virtual_clock import new_clock

            self.clock: Any = new_clock()
        else:
            self.clock = _recording_shared_clock()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self.kind == "virtual":
            from bench.virtual_clock import run

            return run(coro, self.clock)
        return asyncio.run(coro)

    def close(self) -> None:
        if self.kind == "virtual":
            from bench.virtual_clock import close

            close(self.clock)

    def sleep_note(self, wall: float) -> str:
        """Σ of every task's sleeps vs the longest one task slept: additive sleeps show here."""
        busiest = max(self.clock.by_task.values(), default=0.0)
        return (
            f"{self.clock.sleeps} sleeps: Σ {self.clock.slept:.1f} s, "
            f"longest one task {busiest:.1f} s"
        )


def _recording_shared_clock() -> Any:
    from tests.conftest import SharedClock

    class RecordingSharedClock(SharedClock):
        """``SharedClock`` that also counts sleeps per task (its time is unchanged)."""

        def __init__(self) -> None:
            super().__init__()
            self.sleeps = 0
            self.by_task: dict[int, float] = {}

        async def sleep(self, seconds: float) -> None:
            if seconds > 0:
                self.sleeps += 1
                key = id(asyncio.current_task())
                self.by_task[key] = self.by_task.get(key, 0.0) + seconds
            await super().sleep(seconds)

    return RecordingSharedClock()


def simulated_account(provider: str, records: int, tmp: Path, clock_kind: str) -> list[Row]:
    from pms_cli.providers import hostaway
    from pms_cli.sync.engine import SyncEngine, SyncOptions
    from tests.helpers import Harness

    hostaway.TOKEN_ACTIVATION_DELAY = 0.0
    sim = Sim(clock_kind)
    clock = sim.clock
    h = Harness(provider, tmp, clock, relaxed=False, listings=20, reservations=records)
    if provider == "hostaway":
        h.state.config.token_activation_delay = 0.0

    def sync(**options: Any) -> Any:
        engine = SyncEngine(h.store, h.runtime())
        return sim.run(engine.sync_connection(h.conn, SyncOptions(**options)))

    start = clock.time()
    full = sync(full=True)
    wall = clock.time() - start
    assert full.status == "succeeded", full.error
    rows = [
        Row(f"{provider}: full sync requests", full.requests, optimum(provider, full), "req",
            f"{sum(r.fetched for r in full.resources.values())} records"),
        Row(f"{provider}: full sync wall (simulated)", wall, floor_for(provider, full), "s",
            f"{h.state.stats.rate_limited} × 429"),
    ]  # fmt: skip
    clock.advance(3600)
    again = sync()
    rows.append(
        Row(f"{provider}: incremental, nothing changed", again.requests,
            len(again.resources), "req", "reference: one per resource")
    )  # fmt: skip
    h.store.close()
    sim.close()
    return rows


# --- the connection matrix --------------------------------------------------------------------


def _host_router(apps: dict[str, Any]) -> Any:
    async def app(scope: dict[str, Any], receive: Callable[..., Any], send: Any) -> None:
        host = dict(scope.get("headers") or []).get(b"host", b"").decode().split(":")[0]
        await apps[host](scope, receive, send)

    return app


def matrix(provider: str, connections: int, per_connection: int, tmp: Path, clock_kind: str) -> Row:
    import httpx

    from pms_cli.config import load_settings
    from pms_cli.http.ratelimit import LimiterRegistry
    from pms_cli.http.tokens import MemoryTokenCache
    from pms_cli.providers import hostaway
    from pms_cli.sandbox.server import SandboxOptions
    from pms_cli.stores.base import Connection
    from pms_cli.stores.sqlite import SqliteStore
    from pms_cli.sync.engine import SyncEngine, SyncOptions

    hostaway.TOKEN_ACTIVATION_DELAY = 0.0
    sim = Sim(clock_kind)
    clock = sim.clock
    module = importlib.import_module(f"pms_cli.sandbox.{provider}")
    template = module.build_sandbox(
        SandboxOptions(clock=clock, listings=10, reservations=per_connection)
    )
    apps: dict[str, Any] = {}
    states: list[Any] = []
    store = SqliteStore(tmp / f"matrix-{provider}.sqlite3")
    env: dict[str, str] = {}
    for i in range(connections):
        if i == 0:
            mounted = template
        else:
            mounted = module.build_sandbox(SandboxOptions(clock=clock, listings=0, reservations=0))
            for attr in DATA_ATTRS[provider]:
                setattr(mounted.state, attr, getattr(template.state, attr))
        state = mounted.state
        if provider == "hostaway":
            state.config.token_activation_delay = 0.0
            state._ip_limiter = template.state._ip_limiter  # one address, one server-side count
        states.append(state)
        host = f"acct{i}"
        apps[host] = mounted.app
        public = {k: v for k, v in mounted.credentials.items() if k in ("account_id", "client_id")}
        if provider == "hostaway":
            # Each connection its own account: its own token (the sandboxes keep separate token
            # stores, so a token cached under a shared account id was rejected by the others,
            # costing a 403 + a token request on some connections) and its own 20/10 s budget.
            state.config.account_id += i
            public["account_id"] = str(state.config.account_id)
        if provider == "guesty":
            # Its own OAuth client per account, for the same reason as Hostaway above.
            state.config.client_id = f"{state.config.client_id}-{i}"
            public = {"client_id": state.config.client_id}
        store.add_connection(
            Connection(
                id=f"{provider}-{i:03d}",
                organization_id="bench",
                provider=provider,
                display_name=host,
                status="active",
                # Each connection is its own account: its own client-side budget.
                account_ref=f"{host}" if provider != "hostaway" else public["account_id"],
                secret_location="env",
                settings={"public": public, "base_url": f"http://{host}{mounted.api_path}"},
            )
        )
        from pms_cli.providers import get_provider

        cls = get_provider(provider)
        for f in cls.credential_fields:
            if f.env and f.name in mounted.credentials:
                env[f.env] = mounted.credentials[f.name]
    env.pop("HOSTAWAY_ACCOUNT_ID", None)  # every connection names its own account
    env.pop("GUESTY_CLIENT_ID", None)
    from pms_cli.sync.session import Runtime

    runtime = Runtime(
        load_settings(),
        clock=clock,
        limiters=LimiterRegistry(),
        transport=httpx.ASGITransport(app=_host_router(apps)),
        token_cache=MemoryTokenCache(),
        env=env,
    )
    conns = store.list_connections()
    engine = SyncEngine(store, runtime)
    start = clock.time()
    results = sim.run(engine.sync_many(conns, SyncOptions(full=True), concurrency=connections))
    wall = clock.time() - start
    sim.close()
    bad = [r for r in results if r.status != "succeeded"]
    rate_limited = sum(s.stats.rate_limited for s in states)
    floor = max(floor_for(provider, r, connections) for r in results)
    requests = sum(r.requests for r in results)
    best = sum(optimum(provider, r) for r in results)
    store.close()
    note = f"{requests}/{best} req, {rate_limited} × 429; {sim.sleep_note(wall)}"
    if bad:
        note += f", {len(bad)} not succeeded: {bad[0].error}"
    return Row(
        f"{provider}: --all {connections}×{per_connection} wall (simulated)", wall, floor, "s", note
    )


# --- real socket ------------------------------------------------------------------------------


def _serve_guesty(records: int, conn: Any) -> None:
    """Child process: the Guesty sandbox on 127.0.0.1; sends (base URL, credentials), then
    serves until told to stop."""
    from pms_cli.sandbox.server import SandboxOptions, build, running

    app, [mounted] = build(SandboxOptions(listings=20, reservations=records), ["guesty"])
    with running(app) as server:
        conn.send((server.base_url(mounted), dict(mounted.credentials)))
        conn.recv()
        conn.send(mounted.state.stats.rate_limited)


def real_socket_guesty(records: int, separate_process: bool) -> Row:
    """Guesty at its documented 15 requests/s, over 127.0.0.1 with real sleeps.

    With ``separate_process`` the sandbox runs in its own process, as a provider's server
    would; otherwise in a thread of this one, where generating its JSON competes with the
    sync for the same interpreter lock.
    """
    import contextlib
    import multiprocessing

    from pms_cli.config import load_settings
    from pms_cli.sandbox.server import SandboxOptions, build, running
    from pms_cli.stores.base import Connection
    from pms_cli.stores.sqlite import SqliteStore
    from pms_cli.sync.engine import SyncEngine, SyncOptions
    from pms_cli.sync.session import Runtime

    with contextlib.ExitStack() as stack:
        if separate_process:
            ours, theirs = multiprocessing.Pipe()
            child = multiprocessing.get_context("spawn").Process(
                target=_serve_guesty, args=(records, theirs), daemon=True
            )
            child.start()
            stack.callback(child.join, 10)
            base_url, credentials = ours.recv()
        else:
            app, [mounted] = build(SandboxOptions(listings=20, reservations=records), ["guesty"])
            server = stack.enter_context(running(app))
            base_url, credentials = server.base_url(mounted), dict(mounted.credentials)
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        store = SqliteStore(Path(tmp) / "real.sqlite3")
        conn = Connection(
            id="real",
            organization_id="bench",
            provider="guesty",
            display_name="real",
            status="active",
            account_ref=credentials["client_id"],
            secret_location="env",
            settings={"public": {"client_id": credentials["client_id"]}, "base_url": base_url},
        )
        store.add_connection(conn)
        env = {"GUESTY_CLIENT_SECRET": credentials["client_secret"]}
        runtime = Runtime(load_settings(), env=env)
        start = time.perf_counter()
        result = asyncio.run(
            SyncEngine(store, runtime).sync_connection(conn, SyncOptions(full=True))
        )
        wall = time.perf_counter() - start
        store.close()
        if separate_process:
            ours.send("stop")
            rate_limited = ours.recv()
        else:
            rate_limited = mounted.state.stats.rate_limited
    assert result.status == "succeeded", result.error
    where = "sandbox in its own process" if separate_process else "sandbox in a thread"
    return Row(
        f"guesty: full sync wall (real socket, {where})",
        wall,
        floor_for("guesty", result),
        "s",
        f"{result.requests}/{optimum('guesty', result)} req, {rate_limited} × 429",
    )


def print_table(rows: list[Row]) -> None:
    width = max(len(r.figure) for r in rows) + 2
    print(f"{'figure':<{width}}{'measured':>12}{'reference':>12}{'ratio':>8}  note")
    for r in rows:
        ratio = "n/a" if math.isnan(r.ratio) else f"{r.ratio:.3f}"
        print(
            f"{r.figure:<{width}}{r.measured:>11.1f}{r.unit[0]}{r.reference:>11.1f}{r.unit[0]}"
            f"{ratio:>8}  {r.note}"
        )


def run(args: argparse.Namespace) -> list[Row]:
    rows: list[Row] = []
    providers = [p for p in args.providers.split(",") if p]
    with tempfile.TemporaryDirectory() as tmp:
        for provider in providers:
            rows += simulated_account(provider, args.bookings, Path(tmp) / provider, args.clock)
        if args.connections:
            for provider in matrix_providers(args, providers):
                rows.append(
                    matrix(provider, args.connections, args.per_connection, Path(tmp), args.clock)
                )
    if not args.skip_real:
        rows.append(real_socket_guesty(args.real_bookings, separate_process=True))
        rows.append(real_socket_guesty(args.real_bookings, separate_process=False))
    return rows


def matrix_providers(args: argparse.Namespace, providers: list[str]) -> list[str]:
    if args.matrix_providers is None:
        return providers
    return [p for p in args.matrix_providers.split(",") if p]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bookings", type=int, default=20_000, help="single-account runs")
    p.add_argument("--connections", type=int, default=200)
    p.add_argument("--per-connection", type=int, default=2_000)
    p.add_argument("--providers", default=",".join(PROVIDERS))
    p.add_argument("--real-bookings", type=int, default=3_000)
    p.add_argument("--skip-real", action="store_true")
    p.add_argument(
        "--clock",
        choices=("virtual", "shared"),
        default="virtual",
        help="virtual: event-loop virtual time, concurrent sleeps overlap (bench/virtual_clock.py);"
        " shared: tests/conftest.SharedClock, every sleep advances the one time (the old figures)",
    )
    p.add_argument(
        "--matrix-providers",
        default=None,
        help="providers of the --all matrix (default: --providers); '' skips the matrix",
    )
    return p


def main() -> None:
    import os

    os.environ.setdefault("PMS_CONFIG_DIR", tempfile.mkdtemp())
    args = parser().parse_args()
    rows = run(args)
    if args.clock == "virtual":
        print("simulated clock: bench/virtual_clock.py (virtual loop time, sleeps overlap)")
    else:
        print("simulated clock: tests/conftest.SharedClock (each sleep advances the one time)")
    print_table(rows)


if __name__ == "__main__":
    main()
