"""`pms sandbox serve` output a user copies from: whole when piped, JSON on request, and a busy
port reported as such."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pms_cli.sandbox.beds24 import SANDBOX_INVITE_CODE
from pms_cli.sandbox.hostaway import SANDBOX_CLIENT_SECRET

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def _serve(*args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMS_")}
    env.update(PYTHONPATH=str(ROOT), COLUMNS="80")
    return subprocess.Popen(
        [sys.executable, "-m", "pms_cli", "sandbox", "serve", "--port", "0", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    return err


def test_serve_piped_to_a_file_prints_whole_urls_and_secrets_as_tab_separated_rows() -> None:
    proc = _serve()
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(6)]  # the header, five providers
    finally:
        _stop(proc)
    rows = [line.rstrip("\n").split("\t") for line in lines]
    assert rows[0] == ["provider", "base URL", "connect with", "also accepted"]
    by_provider = {r[0]: r for r in rows[1:]}
    assert set(by_provider) == {"beds24", "guesty", "hostaway", "lodgify", "smoobu"}
    hostaway = by_provider["hostaway"]
    assert hostaway[1].startswith("http://127.0.0.1:") and hostaway[1].endswith("/hostaway/v1")
    assert f"--client-secret {SANDBOX_CLIENT_SECRET}" in hostaway[2]
    assert hostaway[1] in hostaway[2]
    # The invite code Beds24's sandbox accepts, whole (it is 159 characters long).
    assert f"invite code: {SANDBOX_INVITE_CODE}" in by_provider["beds24"][3]
    assert "…" not in "".join(lines)


def test_serve_json_prints_one_object_with_every_base_url_and_credential() -> None:
    proc = _serve("--json", "--provider", "beds24", "--provider", "hostaway")
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        while not lines or lines[-1] != "}\n":  # the top-level object ends at column 0
            lines.append(proc.stdout.readline())
        text = "".join(lines)
    finally:
        _stop(proc)
    payload = json.loads(text)
    assert payload["url"].startswith("http://127.0.0.1:")
    beds24, hostaway = payload["sandboxes"]
    assert beds24["provider"] == "beds24" and beds24["invite_code"] == SANDBOX_INVITE_CODE
    assert beds24["base_url"] == payload["url"] + "/beds24/v2"
    assert hostaway["credentials"]["client_secret"] == SANDBOX_CLIENT_SECRET


def test_a_busy_port_says_so_and_names_the_option_to_change() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PMS_")}
        env.update(PYTHONPATH=str(ROOT))
        done = subprocess.run(
            [sys.executable, "-m", "pms_cli", "sandbox", "serve", "--port", str(port)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 2, done.stderr
    assert f"Error: port {port} on 127.0.0.1 is in use" in done.stderr
    assert "Hint: Pass another --port" in done.stderr
    assert "bug" not in done.stderr
