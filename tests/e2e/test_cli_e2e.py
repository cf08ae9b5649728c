"""End to end: the real `pms` executable against `pms sandbox serve`, over real sockets."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pms_cli.sandbox.hostaway import SANDBOX_ACCOUNT_ID, SANDBOX_CLIENT_SECRET

pytestmark = pytest.mark.e2e


def pms(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pms_cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PMS_", "HOSTAWAY_"))}
    base.update(
        PMS_CONFIG_DIR=str(tmp_path / "config"),
        PMS_DATA_DIR=str(tmp_path / "data"),
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
        COLUMNS="200",
    )
    return base


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def sandbox(env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pms_cli",
            "sandbox",
            "serve",
            "--port",
            str(port),
            "--provider",
            "hostaway",
            "--listings",
            "5",
            "--reservations",
            "120",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "sandbox did not start"
        time.sleep(0.1)
    yield f"{url}/hostaway/v1"
    # SIGTERM (what systemd and docker send): a shell that started the suite in the background
    # may have masked SIGINT for its children. A server that does not stop is killed, never
    # left running after the suite, and the test fails.
    proc.terminate()
    try:
        proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise


def test_connect_sync_status_against_a_served_sandbox(env: dict[str, str], sandbox: str) -> None:
    connected = pms(
        env,
        "connect",
        "hostaway",
        "--base-url",
        sandbox,
        "--account-id",
        str(SANDBOX_ACCOUNT_ID),
        "--client-secret",
        SANDBOX_CLIENT_SECRET,
        "--insecure-storage",
        "--json",
    )
    assert connected.returncode == 0, connected.stderr
    assert connected.stderr == ""
    conn_id = json.loads(connected.stdout)["connection_id"]
    synced = pms(env, "sync", "--connection", conn_id, "--json")
    assert synced.returncode == 0, synced.stderr
    # No terminal: progress is log lines on stderr, stdout stays one JSON object.
    lines = synced.stderr.splitlines()
    assert lines and all(re.match(r"\d{4}-\d\d-\d\dT[\d:]+Z hostaway ", line) for line in lines)
    assert any(" bookings: succeeded, 120/120 records" in line for line in lines), lines
    summary = json.loads(synced.stdout)["connections"][0]
    assert summary["resources"]["bookings"]["written"]["booking"] == 120
    assert summary["rate_limited"] == 0
    status = json.loads(pms(env, "status", "--json").stdout)["connections"][0]
    assert status["counts"]["booking"] == 120
    assert status["credentials"] == "file (insecure storage)"
    again = pms(env, "sync", "--all", "--json")
    resources = json.loads(again.stdout)["connections"][0]["resources"]
    assert resources["bookings"]["fetched"] == 0  # incremental: nothing changed


def test_demo_runs_end_to_end_into_local_sqlite(env: dict[str, str]) -> None:
    result = pms(env, "demo", "--json", "--reservations", "80")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert Path(payload["database"]).is_file()
    hostaway = next(c for c in payload["connections"] if c["provider"] == "hostaway")
    assert hostaway["status"] == "succeeded"
    assert hostaway["resources"]["bookings"]["written"]["booking"] == 80
    human = pms(env, "demo", "--reservations", "80")
    assert human.returncode == 0, human.stderr
    assert "Database:" in human.stdout
    # Piped: every table is tab-separated rows, nothing cut to fit an unseen screen.
    assert "…" not in human.stdout
    dates = re.compile(r"\t\d{4}-\d{2}-\d{2}\t\d{4}-\d{2}-\d{2}\t")
    assert dates.search(human.stdout), human.stdout


def test_help_lists_every_command_without_a_traceback(env: dict[str, str]) -> None:
    result = pms(env, "--help")
    assert result.returncode == 0
    for command in (
        "providers",
        "connect",
        "disconnect",
        "sync",
        "status",
        "logs",
        "map",
        "demo",
        "sandbox",
    ):
        assert command in result.stdout
