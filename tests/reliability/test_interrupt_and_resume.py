"""SIGTERM / SIGINT to a real `pms sync`, and the rerun that continues where it stopped.

The sandbox holds the N-th bookings request (N < the walk's 20 pages) until the test has sent
its signal, so the signal lands mid-walk every time, with earlier batches committed.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from pms_cli.sandbox.server import SandboxOptions, build, running
from pms_cli.stores.sqlite import SqliteStore
from tests.reliability import kill

pytestmark = pytest.mark.e2e

BOOKINGS = 2000  # Beds24 pages hold 100: a 20-page walk
PAGES = 20
HOLD_AT = 15  # ~70 % of the walk


class Hold:
    """Counts requests whose path contains ``path``; holds the ``at``-th until released."""

    def __init__(self, app: ASGIApp, path: str) -> None:
        self.app = app
        self.path = path
        self.seen = 0
        self.at: int | None = None
        self.held = threading.Event()
        self.release = threading.Event()

    def arm(self, at: int | None) -> None:
        self.seen, self.at = 0, at
        self.held.clear()
        self.release.clear()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.path in scope["path"]:
            self.seen += 1
            if self.seen == self.at:
                self.held.set()
                await asyncio.to_thread(self.release.wait, 120)
                return  # the client is gone: nothing to answer
        await self.app(scope, receive, send)


@contextmanager
def served() -> Iterator[tuple[kill.Served, Hold]]:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    _, mounted = build(SandboxOptions(listings=4, reservations=BOOKINGS, relaxed=True), ["beds24"])
    hold = Hold(mounted[0].app, "/bookings")
    app = Starlette(routes=[Mount("/beds24", app=hold)])
    with running(app) as server:
        try:
            # kill.Gate counts every request; these tests hold the N-th *bookings* page.
            yield kill.Served(server, mounted[0], kill.Gate(app)), hold
        finally:
            hold.release.set()


def _sync(home: Path, served: kill.Served, *args: str) -> subprocess.Popen[str]:
    env = {**kill.environment(home, served.sandbox), "PMS_SYNC__BATCH_SIZE": "100"}
    return subprocess.Popen(
        [*kill.sync_command()[:-1], *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _interrupted(
    home: Path, served: kill.Served, hold: Hold, sig: int, *args: str
) -> tuple[int, str, str]:
    kill.connect(home, served)
    hold.arm(HOLD_AT)
    proc = _sync(home, served, *args)
    try:
        assert hold.held.wait(timeout=120), proc.communicate(timeout=5)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        hold.release.set()
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out, err


def _locks(home: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(kill.database(home)) as con:
        return con.execute("SELECT * FROM pms_locks").fetchall()


def _rerun(home: Path, served: kill.Served, hold: Hold) -> tuple[int, int]:
    hold.arm(None)
    proc = _sync(home, served, "--json")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return hold.seen, json.loads(out)["connections"][0]["resources"]["bookings"]["fetched"]


def test_sigterm_stops_cleanly_and_the_rerun_reads_only_the_pages_left(tmp_path: Path) -> None:
    with served() as (srv, hold):
        kill.connect(tmp_path / "clean", srv)
        hold.arm(None)
        clean = _sync(tmp_path / "clean", srv, "--json")
        _, err = clean.communicate(timeout=120)
        assert clean.returncode == 0, err
        assert hold.seen == PAGES
        want = kill.rows(tmp_path / "clean")

        home = tmp_path / "killed"
        code, out, err = _interrupted(home, srv, hold, signal.SIGTERM, "--json")
        assert code == 143, err
        summary = json.loads(out)  # still one JSON object
        assert summary["status"] == "interrupted" and summary["signal"] == "SIGTERM"
        assert summary["connections"][0]["status"] == "interrupted"
        assert kill.run_log(home) == ["interrupted"]  # not left 'running'
        assert _locks(home) == []  # released, not left to expire
        store = SqliteStore(kill.database(home))
        try:
            checkpoint = store.get_checkpoint(kill.CONNECTION_ID, "bookings")
        finally:
            store.close()
        assert checkpoint is not None and checkpoint["position"]["page"] >= HOLD_AT - 2

        pages, fetched = _rerun(home, srv, hold)
        print(f"\npages re-read after a SIGTERM at page {HOLD_AT} of {PAGES}: {pages}")
        assert pages <= PAGES - HOLD_AT + 3  # about 30 %, not all 20 again
        assert fetched < BOOKINGS // 2
        assert kill.rows(home) == want
        assert kill.run_log(home) == ["interrupted", "succeeded"]


def test_ctrl_c_prints_the_summary_and_how_to_continue(tmp_path: Path) -> None:
    with served() as (srv, hold):
        code, out, err = _interrupted(tmp_path, srv, hold, signal.SIGINT)
    assert code == 130, err
    assert "Traceback" not in err
    assert "Error: interrupted by SIGINT" in err
    assert "stopped in beds24 11111111 bookings" in err
    assert "Hint: Rerun the same command" in err
    # stdout is not a terminal: the summary table is tab-separated rows, the header first.
    header, *rows = out.splitlines()
    assert header.split("\t")[:4] == ["connection", "provider", "resource", "status"]
    assert any(r.split("\t")[2:4] == ["bookings", "interrupted"] for r in rows), out
    assert kill.run_log(tmp_path) == ["interrupted"]
    assert _locks(tmp_path) == []
