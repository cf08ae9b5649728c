"""`pms sync` on a real terminal (a pseudo-terminal): the live view, narrow and dumb terminals,
and Ctrl-C leaving the summary on screen."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.ptyrun import Terminal, run_in_pty
from tests.reliability import kill

pytestmark = pytest.mark.e2e

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


def _screen(text: str) -> str:
    return ANSI.sub("", text)


def _command() -> list[str]:
    return kill.sync_command()[:-1]  # without --json


def test_the_live_view_shows_records_elapsed_and_eta_and_the_summary_rate(
    tmp_path: Path,
) -> None:
    with kill.serve("lodgify", bookings=400, delay=0.05) as served:
        kill.connect(tmp_path, served)
        env = {**kill.environment(tmp_path, served.sandbox), "COLUMNS": "160", "TERM": "xterm"}
        code, output = run_in_pty(_command(), env, columns=160)
    screen = _screen(output)
    assert code == 0, screen
    assert "Syncing…" in screen  # the live view was drawn
    assert re.search(r"state\s+┃\s+records\s+┃\s+pages\s+┃\s+elapsed\s+┃\s+ETA", screen)
    assert re.search(r"\d+/400", screen), screen  # records of the total the API reported
    assert "Sync summary" in screen
    assert re.search(r"rows/s", screen)


def test_a_narrow_dumb_terminal_gets_whole_numbers_and_ids_never_cut(tmp_path: Path) -> None:
    with kill.serve("lodgify", bookings=150, delay=0) as served:
        kill.connect(tmp_path, served)
        env = {**kill.environment(tmp_path, served.sandbox), "COLUMNS": "50", "TERM": "dumb"}
        code, output = run_in_pty([*_command(), "--progress", "none"], env, columns=50)
    screen = _screen(output)
    assert code == 0, screen
    assert "…" not in screen
    assert "booking 150" in screen
    assert kill.CONNECTION_ID[:8] in screen


def test_ctrl_c_on_a_terminal_leaves_the_summary_on_screen(tmp_path: Path) -> None:
    signalled: list[bool] = []

    def interrupt_once_running(so_far: bytes, proc: subprocess.Popen[bytes], _: Terminal) -> None:
        if not signalled and b"bookings" in so_far and b"running" in so_far:
            signalled.append(True)
            proc.send_signal(signal.SIGINT)

    with kill.serve("lodgify", bookings=600, delay=0.2) as served:
        kill.connect(tmp_path, served)
        env = {**kill.environment(tmp_path, served.sandbox), "COLUMNS": "160", "TERM": "xterm"}
        code, output = run_in_pty(_command(), env, columns=160, on_output=interrupt_once_running)
    screen = _screen(output)
    assert signalled and code == 130, screen
    assert "Sync summary" in screen
    assert re.search(r"bookings\s+│\s+interrupted", screen), screen
    assert "Error: interrupted by SIGINT" in screen
    assert "Hint: Rerun the same command" in screen
    assert "Traceback" not in screen


class Answers:
    """Types each answer once its prompt has appeared (in order); a hidden one only once the
    program has turned echo off (typing earlier would be flushed, as for a fast typist)."""

    def __init__(self, *pairs: tuple[bytes, bytes, bool]) -> None:
        self.pairs = list(pairs)
        self.at = 0  # where in the output the next prompt is looked for

    def __call__(self, so_far: bytes, proc: subprocess.Popen[bytes], tty: Terminal) -> None:
        while self.pairs:
            prompt, answer, hidden = self.pairs[0]
            found = so_far.find(prompt, self.at)
            if found < 0 or (hidden and tty.echo):
                return
            self.at = found + len(prompt)
            self.pairs.pop(0)
            tty.type(answer + b"\r")


def _connect_env(home: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PMS_", "HOSTAWAY_", "BEDS24_"))
    }
    env.update(
        PMS_CONFIG_DIR=str(home / "config"),
        PMS_DATA_DIR=str(home / "data"),
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
        PYTHONPATH=str(kill.ROOT),
        COLUMNS="120",
        TERM="xterm",
    )
    return env


def test_connect_on_a_terminal_without_keyring_offers_the_file_before_asking_secrets(
    tmp_path: Path,
) -> None:
    from pms_cli.sandbox.hostaway import SANDBOX_ACCOUNT_ID, SANDBOX_CLIENT_SECRET

    with kill.serve("hostaway", bookings=10, delay=0) as served:
        answers = Answers(
            (b"Choose f or e", b"f", False),
            (b"Hostaway Account ID", str(SANDBOX_ACCOUNT_ID).encode(), False),
            (b"Hostaway Client ID (optional", b"", False),
            (b"Hostaway Client secret", SANDBOX_CLIENT_SECRET.encode(), True),
        )
        argv = [sys.executable, "-m", "pms_cli", "connect", "hostaway", "--base-url",
                served.base_url]  # fmt: skip
        code, output = run_in_pty(argv, _connect_env(tmp_path), on_output=answers)
    screen = _screen(output)
    assert code == 0, screen
    assert screen.index("No OS keyring backend") < screen.index("Hostaway Account ID")
    assert "secrets in file" in screen
    assert SANDBOX_CLIENT_SECRET not in screen  # typed hidden
    assert (tmp_path / "config" / "credentials.json").exists()


def test_beds24_connect_asks_once_how_to_connect_then_only_for_that(tmp_path: Path) -> None:
    from pms_cli.sandbox.beds24 import SANDBOX_INVITE_CODE

    with kill.serve("beds24", bookings=10, delay=0) as served:
        answers = Answers(
            (b"Choose f or e", b"f", False),
            (b"How do you connect to Beds24?\r\n  1  Invite code", b"1", False),
            (b"Beds24 Invite code", SANDBOX_INVITE_CODE.encode(), True),
        )
        argv = [sys.executable, "-m", "pms_cli", "connect", "beds24", "--base-url",
                served.base_url]  # fmt: skip
        code, output = run_in_pty(argv, _connect_env(tmp_path), on_output=answers)
    screen = _screen(output)
    assert code == 0, screen
    assert "1  Invite code" in screen and "3  Long-life token" in screen
    assert "(optional" not in screen  # no prompt per alternative
    assert "Refresh token:" not in screen
    assert "Connected" in screen
