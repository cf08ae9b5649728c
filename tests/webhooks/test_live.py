"""Real sockets on 127.0.0.1: sandboxes POST to a running receiver; load; kill and restart.

Bounded: every server stops by itself at the end of its test, every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from bench.webhooks_load import run_load
from pms_cli import credentials
from pms_cli.config import load_settings
from pms_cli.sandbox.server import SandboxOptions, SandboxServer, build
from pms_cli.stores.base import Connection
from pms_cli.stores.sqlite import SqliteStore
from pms_cli.sync.engine import SyncEngine, SyncOptions
from pms_cli.sync.session import Runtime
from pms_cli.webhooks import get_spec
from pms_cli.webhooks import secrets as webhook_secrets
from pms_cli.webhooks.server import BackgroundServer
from tests.webhooks.conftest import PROVIDERS, Rig, same_state

pytestmark = pytest.mark.e2e

BUSY = {"pending", "processing", "retry"}


def wait_until_applied(store: Any, connection_id: str, timeout: float = 30.0) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts: dict[str, int] = store.inbox_counts(connection_id)
        if counts and not BUSY & set(counts):
            return counts
        time.sleep(0.1)  # each look takes the SQLite write lock: do not starve the receiver
    raise AssertionError(f"inbox not drained in {timeout} s: {store.inbox_counts(connection_id)}")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_sandbox_sends_created_updated_and_cancelled_webhooks_to_a_running_receiver(
    provider: str, tmp_path: Path, clock: Any
) -> None:
    rig = Rig(provider, tmp_path, clock, configure=False, reservations=30)
    server = BackgroundServer(rig.app).start()
    try:
        rig.configure(server.url)
        created = rig.create(3)
        updated = rig.update(3)
        rig.cancel(created[-1])
        with httpx.Client(timeout=10) as client:
            statuses = rig.sender.send_all(client)
            health = client.get(f"{server.url}/healthz").json()
        assert set(statuses) == {200}
        assert health["ok"] is True
        assert health["metrics"]["accepted"] == len(statuses)
        counts = wait_until_applied(rig.store, rig.conn.id)
    finally:
        server.stop()
    assert counts == {"done": len(statuses)}
    truth, mine = rig.truth(tmp_path), rig.bookings()
    assert all(same_state(mine[i], truth[i]) for i in set(created) | set(updated))
    assert mine[created[-1]]["status"] == "cancelled"
    rig.store.close()


def test_a_thousand_shuffled_deliveries_with_duplicates_from_four_clients_lose_nothing(
    tmp_path: Path, clock: Any
) -> None:
    # bench/webhooks_load.py runs the same with 2,000 and prints the figures.
    result = run_load(tmp_path, clock, deliveries=1000, clients=4)
    assert result.deliveries == 1000
    assert result.acked == 1000
    assert result.lost == 0
    assert not BUSY & set(result.inbox)
    assert result.inbox == {"done": result.unique}
    assert result.wrong_final_state == 0


# --- kill -9 the receiver mid-stream, restart, nothing lost ---------------------------------


@pytest.fixture
def smoobu_sandbox() -> Iterator[tuple[SandboxServer, Any]]:
    app, (mounted,) = build(
        SandboxOptions(listings=3, reservations=20, relaxed=True), providers=["smoobu"]
    )
    server = SandboxServer(app)
    server.start()
    yield server, mounted
    server.stop()


def free_port() -> int:
    from pms_cli.webhooks.server import listening_socket

    sock = listening_socket("127.0.0.1", 0)
    port = int(sock.getsockname()[1])
    sock.close()
    return port


def start_receiver(port: int, log: Path) -> subprocess.Popen[bytes]:
    code = (
        "from pms_cli.cli.webhook_cmd import webhook_app; "
        f"webhook_app(['serve', '--port', '{port}'], prog_name='pms')"
    )
    with log.open("ab") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", code], env=os.environ.copy(), stdout=err, stderr=err
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.05)
        if proc.poll() is not None:
            break
    proc.kill()
    proc.wait(timeout=10)
    raise AssertionError(f"receiver did not start: {log.read_text()[-2000:]}")


def test_a_receiver_killed_mid_stream_loses_nothing_after_a_restart(
    smoobu_sandbox: tuple[SandboxServer, Any], tmp_path: Path
) -> None:
    server, mounted = smoobu_sandbox
    sandbox = mounted.state
    settings = load_settings()
    store = SqliteStore(settings.resolved_sqlite_path)  # the file `pms webhook serve` opens
    conn = Connection(
        id="0c0ffee0-0000-4000-8000-00000000beef",
        organization_id="org",
        provider="smoobu",
        display_name="smoobu sandbox",
        status="active",
        account_ref="7",
        secret_location="file",
        settings={"public": {}, "base_url": server.base_url(mounted)},
    )
    store.add_connection(conn)
    credentials.save_secrets(
        conn.id, {k: SecretStr(v) for k, v in mounted.credentials.items()}, insecure_storage=True
    )
    secrets = webhook_secrets.ensure(conn, get_spec("smoobu"))
    port = free_port()
    sandbox.webhook_url = get_spec("smoobu").url(f"http://127.0.0.1:{port}", conn, secrets)
    touched = {str(i) for i in sandbox.add_bookings(15) + sandbox.modify_bookings(25)}
    sandbox.cancel_booking(int(sorted(touched)[0]))
    total = len(sandbox.sender.outbox)

    log = tmp_path / "receiver.log"
    receiver = start_receiver(port, log)
    try:
        with httpx.Client(timeout=10) as client:
            hooks = sandbox.sender.take()
            first, rest = hooks[: total // 2], hooks[total // 2 :]
            for hook in first:
                assert (
                    client.post(hook.url, content=hook.body, headers=hook.headers).status_code
                    == 200
                )
            receiver.send_signal(signal.SIGKILL)  # no graceful anything
            receiver.wait(timeout=10)
            for hook in rest:  # refused while it is down: the provider keeps them to retry
                sandbox.sender.outbox.append(hook)
            assert set(sandbox.sender.send_all(client)) == {None}
            acked_before_kill = store.inbox_counts(conn.id)
            assert sum(acked_before_kill.values()) == len(first)

            receiver = start_receiver(port, log)
            assert set(sandbox.sender.send_all(client)) == {200}
        counts = wait_until_applied(store, conn.id)
    finally:
        receiver.send_signal(signal.SIGTERM)
        # Graceful: uvicorn finishes, runs the shutdown, then re-raises the signal it caught.
        assert receiver.wait(timeout=20) in (0, -signal.SIGTERM)
    assert "Traceback" not in log.read_text()
    assert counts == {"done": total}  # Smoobu payloads differ per change: no duplicates here

    truth_store = SqliteStore(tmp_path / "truth.sqlite3")
    truth_store.add_connection(conn)
    result = asyncio.run(
        SyncEngine(truth_store, Runtime(settings)).sync_connection(
            conn, SyncOptions(full=True, resources=["bookings"])
        )
    )
    assert result.status == "succeeded", result.error
    truth = {r["external_id"]: r for r in truth_store.fetch_rows("booking", conn.id)}
    mine = {r["external_id"]: r for r in store.fetch_rows("booking", conn.id)}
    assert all(same_state(mine[i], truth[i]) for i in touched)
    store.close()
    truth_store.close()
