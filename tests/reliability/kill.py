"""SIGKILL a real `pms sync` process at a random point, rerun it, compare with one clean run.

Shared by tests/reliability/test_kill_and_overlap.py (a few trials) and bench/faults.py (20).
The sandbox runs in this process on 127.0.0.1 behind a ``slow`` fault, so a sync spans a
second or so and a random kill lands anywhere: before the lock, between pages, inside a batch
write, while finishing the log. Small write batches make partial progress likely.

Every kill point is one the run is certain to reach: a ``Gate`` in front of the sandbox holds
the chosen request unanswered until the process is dead, so the run cannot finish first however
slow or fast this machine is (a kill timed after "the N-th request" alone could land after the
run's last request on a busy machine, and then nothing was tested).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pms_cli.providers import get_provider
from pms_cli.sandbox.faults import Fault, quiet_injected_errors, with_faults
from pms_cli.sandbox.server import MountedSandbox, SandboxOptions, SandboxServer, build, running
from pms_cli.stores.base import Connection
from pms_cli.stores.sqlite import SqliteStore
from tests.reliability.scenario import Rows, table

CONNECTION_ID = "11111111-2222-4333-8444-555555555555"
ROOT = Path(__file__).resolve().parents[2]


class Gate:
    """ASGI wrapper that counts requests and can hold one of them unanswered.

    ``arm(n)`` makes the n-th request (counted from the start) wait until ``release()``;
    ``holding`` is set once it arrived. The held client is killed meanwhile, so the request
    is simply abandoned. A safety timeout keeps a forgotten gate from hanging the server.
    """

    def __init__(self, app: Any, timeout: float = 30.0) -> None:
        self.app = app
        self.timeout = timeout
        self.requests = 0
        self.hold_at = 0
        self.holding = threading.Event()
        self.released = threading.Event()
        self._lock = threading.Lock()

    def arm(self, request_number: int) -> None:
        self.holding.clear()
        self.released.clear()
        self.hold_at = request_number

    def release(self) -> None:
        self.hold_at = 0
        self.released.set()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            with self._lock:
                self.requests += 1
                held = self.requests == self.hold_at
            if held:
                self.holding.set()
                await asyncio.to_thread(self.released.wait, self.timeout)
        await self.app(scope, receive, send)


@dataclass
class Served:
    server: SandboxServer
    sandbox: MountedSandbox
    gate: Gate

    @property
    def base_url(self) -> str:
        return self.server.base_url(self.sandbox)


@contextmanager
def serve(
    provider: str, *, bookings: int = 120, delay: float = 0.05, faults: list[Fault] | None = None
) -> Iterator[Served]:
    """One provider's sandbox on 127.0.0.1, every request slowed by ``delay`` seconds."""
    from starlette.applications import Starlette
    from starlette.routing import Mount

    _, mounted = build(SandboxOptions(listings=4, reservations=bookings, relaxed=True), [provider])
    extra = list(faults or [])
    if delay:
        extra.append(Fault("slow", delay=delay, every=1))
    sandbox = with_faults(mounted[0], extra)
    quiet_injected_errors()
    gate = Gate(Starlette(routes=[Mount(f"/{provider}", app=sandbox.app)]))
    try:
        with running(gate) as server:
            yield Served(server, sandbox, gate)
    finally:
        gate.release()


def environment(home: Path, sandbox: MountedSandbox, **extra: str) -> dict[str, str]:
    """A hermetic environment for a `pms` subprocess: its own dirs, env credentials, no keyring."""
    drop = _provider_env_names()
    drop.add("PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMS_") and k not in drop}
    cls = get_provider(sandbox.provider)
    for f in cls.credential_fields:
        if f.secret and f.env and f.name in sandbox.credentials:
            env[f.env] = sandbox.credentials[f.name]
    env.update(
        PMS_CONFIG_DIR=str(home / "config"),
        PMS_DATA_DIR=str(home / "data"),
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
        PYTHONPATH=str(ROOT),
        # Each trial starts two processes: compiled bytecode (kept outside the repo) saves
        # seconds each where the environment disables writing it.
        PYTHONPYCACHEPREFIX=str(Path(tempfile.gettempdir()) / "pms-reliability-pycache"),
        COLUMNS="200",
        # Small batches: a kill can land between two committed batches of one resource.
        PMS_SYNC__BATCH_SIZE="20",
        **extra,
    )
    return env


def _provider_env_names() -> set[str]:
    from pms_cli.providers import registry

    return {f.env for cls in registry().values() for f in cls.credential_fields if f.env}


def database(home: Path) -> Path:
    return home / "data" / "pms.sqlite3"


def connect(home: Path, served: Served) -> None:
    """Record the connection row directly (what `pms connect` leaves behind, secrets in env)."""
    cls = get_provider(served.sandbox.provider)
    public = {
        f.name: served.sandbox.credentials[f.name]
        for f in cls.credential_fields
        if not f.secret and f.name in served.sandbox.credentials
    }
    store = SqliteStore(database(home))
    try:
        store.add_connection(
            Connection(
                id=CONNECTION_ID,
                organization_id="default",
                provider=served.sandbox.provider,
                display_name=f"{served.sandbox.provider} sandbox",
                status="active",
                account_ref=cls.account_ref_from(public),
                secret_location="env",
                settings={"public": public, "base_url": served.base_url},
            )
        )
    finally:
        store.close()


def sync_command() -> list[str]:
    return [sys.executable, "-m", "pms_cli", "sync", "--connection", CONNECTION_ID, "--json"]


def sync(env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        sync_command(), env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def rows(home: Path) -> Rows:
    store = SqliteStore(database(home))
    try:
        return table(store, CONNECTION_ID)
    finally:
        store.close()


def run_log(home: Path) -> list[str]:
    """Statuses of the sync log, oldest first."""
    store = SqliteStore(database(home))
    try:
        return [r.status for r in reversed(store.list_runs(CONNECTION_ID, limit=100))]
    finally:
        store.close()


@dataclass
class Trial:
    after_requests: int
    extra_delay: float
    killed: bool  # False when the run finished before the kill
    rerun_code: int
    equal: bool
    log: list[str] = field(default_factory=list)
    rerun_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        log_ok = "running" not in self.log and (not self.log or self.log[-1] == "succeeded")
        return self.rerun_code == 0 and self.equal and log_ok


def requests_seen(served: Served) -> int:
    return served.gate.requests


def reference(home: Path, served: Served) -> tuple[Rows, int]:
    """One clean run: its rows and how many requests it made."""
    connect(home, served)
    before = requests_seen(served)
    done = sync(environment(home, served.sandbox))
    if done.returncode != 0:
        raise RuntimeError(f"the clean reference sync failed: {done.stderr}")
    return rows(home), requests_seen(served) - before


def trial(home: Path, served: Served, want: Rows, at_request: int, extra_delay: float) -> Trial:
    """Start a sync, SIGKILL it while the sandbox holds its ``at_request``-th request (0: during
    start-up, ``extra_delay`` s after the start unless its first request comes sooner; then that
    request is held), ``extra_delay`` s after the request arrived (other requests and writes go
    on meanwhile), rerun it, compare with ``want``."""
    connect(home, served)
    env = environment(home, served.sandbox)
    served.gate.arm(requests_seen(served) + max(at_request, 1))
    proc = subprocess.Popen(
        sync_command(), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        if at_request == 0:
            served.gate.holding.wait(timeout=extra_delay)
        else:
            deadline = time.monotonic() + 60
            while not served.gate.holding.wait(timeout=0.01):
                if proc.poll() is not None or time.monotonic() > deadline:
                    break
            time.sleep(extra_delay)
        # The run cannot have finished while its request is held; poll() proves it.
        killed = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        served.gate.release()
    started = time.monotonic()
    again = sync(env)
    return Trial(
        after_requests=at_request,
        extra_delay=extra_delay,
        killed=killed,
        rerun_code=again.returncode,
        equal=rows(home) == want,
        log=run_log(home),
        rerun_seconds=time.monotonic() - started,
    )


def trials(
    workdir: Path,
    provider: str,
    count: int,
    seed: int = 7,
    bookings: int = 300,
    delay: float = 0.1,
) -> list[Trial]:
    """``count`` kill trials, each while one of the requests the clean run made is held (never
    its last, whose number depends on timing where pages are read ahead), or at a random moment
    of start-up."""
    rng = random.Random(seed)
    with serve(provider, bookings=bookings, delay=delay) as served:
        want, requests = reference(workdir / "reference", served)
        out = []
        for i in range(count):
            at = rng.randint(0, max(requests - 1, 1))
            extra = rng.uniform(0, 1.0) if at == 0 else rng.uniform(0, delay * 1.5)
            out.append(trial(workdir / f"trial-{i}", served, want, at, extra))
        return out
