"""Kill safety and cron overlap, with real `pms sync` processes against a sandbox on 127.0.0.1."""

from __future__ import annotations

import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from pms_cli.errors import EXIT_LOCKED
from tests.conftest import SharedClock
from tests.helpers import Harness
from tests.reliability import kill

pytestmark = pytest.mark.e2e


def test_a_sync_killed_at_random_points_and_rerun_equals_one_clean_run(tmp_path: Path) -> None:
    trials = kill.trials(tmp_path, "lodgify", count=4, bookings=150, delay=0.05)
    assert all(t.killed for t in trials), "a run finished before its kill: nothing was tested"
    for t in trials:
        assert t.ok, t
        # The killed run is in the log as interrupted, never left 'running' forever.
        assert t.log.count("interrupted") <= 1
    assert any(t.log[0] == "interrupted" for t in trials)


def _lock_row(db: Path) -> tuple[object, ...] | None:
    if not db.exists():
        return None
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
        try:
            return con.execute("SELECT owner, pid FROM pms_locks").fetchone()  # type: ignore[no-any-return]
        except sqlite3.OperationalError:  # schema not created yet
            return None


def test_a_second_sync_of_the_same_connection_exits_with_the_locked_code(tmp_path: Path) -> None:
    with kill.serve("lodgify", bookings=150, delay=0.3) as served:
        kill.connect(tmp_path, served)
        env = kill.environment(tmp_path, served.sandbox)
        first = subprocess.Popen(
            kill.sync_command(), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 30
        while _lock_row(kill.database(tmp_path)) is None:
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the first sync never took the lock"
            time.sleep(0.02)
        second = subprocess.run(
            [*kill.sync_command()[:-1]], env=env, capture_output=True, text=True, timeout=60
        )
        _, err = first.communicate(timeout=60)
    assert second.returncode == EXIT_LOCKED
    assert "Error:" in second.stderr and "another sync" in second.stderr
    assert "Hint:" in second.stderr
    assert "Traceback" not in second.stderr
    assert first.returncode == 0, err
    assert kill.run_log(tmp_path) == ["succeeded"]


def _hold_lock(h: Harness, host: str, expires_in: float) -> None:
    with h.store._tx() as cur:
        cur.execute(
            "INSERT INTO pms_locks (connection_id, owner, host, pid, expires_at) "
            "VALUES (?, 'elsewhere-run', ?, 1, ?)",
            [h.conn.id, host, time.time() + expires_in],
        )


def test_a_lock_held_on_another_host_blocks_until_its_lease_expires(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = Harness("lodgify", tmp_path, clock, listings=2, reservations=10)
    _hold_lock(h, "another-host", expires_in=3600)
    blocked = h.sync()
    assert blocked.status == "locked"
    assert blocked.error is not None and blocked.error["exit_code"] == EXIT_LOCKED
    assert blocked.error["hint"]
    assert h.store.fetch_rows("booking", h.conn.id) == []


def test_a_stale_lock_from_another_host_is_taken_over(tmp_path: Path, clock: SharedClock) -> None:
    h = Harness("lodgify", tmp_path, clock, listings=2, reservations=10)
    _hold_lock(h, "another-host", expires_in=-1)
    assert h.sync().status == "succeeded"
    assert h.store.lock_holder(h.conn.id) is None  # released after the run
