"""SIGKILL a real `pms sync` process at a random point, rerun it, compare with one clean run.

Shared by tests/reliability/test_kill_and_overlap.py (a few trials) and bench/faults.py (20).
The sandbox runs in this process on 127.0.0.1 behind a ``slow`` fault, so a sync spans a
second or so and a random kill lands anywhere: before the lock, between pages, inside a batch
write, while finishing the log. Small write batches make partial progress likely.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pms_cli.providers import get_provider
from pms_cli.sandbox.faults import Fault, quiet_injected_errors, with_faults
from pms_cli.sandbox.server import MountedSandbox, SandboxOptions, SandboxServer, build, running
from pms_cli.stores.base import Connection
from pms_cli.stores.sqlite import SqliteStore
from tests.reliability.scenario import Rows, table

CONNECTION_ID = "11111111-2222-4333-8444-555555555555"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Served:
    server: SandboxServer
    sandbox: MountedSandbox

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
    app = Starlette(routes=[Mount(f"/{provider}", app=sandbox.app)])
    with running(app) as server:
        yield Served(server, sandbox)


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
    return int(served.sandbox.extra["faults"].requests)


def reference(home: Path, served: Served) -> tuple[Rows, int]:
    """One clean run: its rows and how many requests it made."""
    connect(home, served)
    before = requests_seen(served)
    done = sync(environment(home, served.sandbox))
    if done.returncode != 0:
        raise RuntimeError(f"the clean reference sync failed: {done.stderr}")
    return rows(home), requests_seen(served) - before


def trial(home: Path, served: Served, want: Rows, after_requests: int, extra_delay: float) -> Trial:
    """Start a sync, SIGKILL it ``extra_delay`` s after its ``after_requests``-th request (0:
    during start-up), rerun it, compare with ``want``."""
    connect(home, served)
    env = environment(home, served.sandbox)
    base = requests_seen(served)
    proc = subprocess.Popen(
        sync_command(), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while requests_seen(served) - base < after_requests and proc.poll() is None:
        if time.monotonic() > deadline:
            break
        time.sleep(0.005)
    try:
        proc.wait(timeout=extra_delay)
        killed = False
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        killed = True
    started = time.monotonic()
    again = sync(env)
    return Trial(
        after_requests=after_requests,
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
    """``count`` kill trials, each after a random number of the clean run's requests plus a
    random fraction of one slowed request (or at a random moment of start-up)."""
    rng = random.Random(seed)
    with serve(provider, bookings=bookings, delay=delay) as served:
        want, requests = reference(workdir / "reference", served)
        out = []
        for i in range(count):
            after = rng.randint(0, requests)
            extra = rng.uniform(0, 1.0) if after == 0 else rng.uniform(0, delay * 1.5)
            out.append(trial(workdir / f"trial-{i}", served, want, after, extra))
        return out
