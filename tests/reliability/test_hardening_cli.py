"""Hardening of the CLI surface (issue 15): overlapping runs, hostile names, bad input."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pms_cli.errors import EXIT_LOCKED
from pms_cli.stores.sqlite import SqliteStore
from tests.cli.test_cli import connect
from tests.conftest import LiveSandbox, MemoryKeyring


def _store(tmp_path: Path) -> SqliteStore:
    return SqliteStore(tmp_path / "data" / "pms.sqlite3")


def _hold_lock_elsewhere(tmp_path: Path, connection_id: str) -> None:
    store = _store(tmp_path)
    with store._tx() as cur:
        cur.execute(
            "INSERT INTO pms_locks (connection_id, owner, host, pid, expires_at) "
            "VALUES (?, 'other-run', 'another-host', 1, ?)",
            [connection_id, time.time() + 3600],
        )
    store.close()


def test_sync_all_whose_only_failures_are_locked_connections_exits_5_with_its_summary(
    pms: Any, live_sandbox: LiveSandbox, memory_keyring: MemoryKeyring, tmp_path: Path
) -> None:
    busy = connect(pms, live_sandbox)
    free = connect(pms, live_sandbox)
    _hold_lock_elsewhere(tmp_path, busy)
    result = pms("sync", "--all", "--json")
    assert result.code == EXIT_LOCKED, result.stderr
    summary = result.json()
    assert summary["status"] == "locked"
    statuses = {c["connection_id"]: c["status"] for c in summary["connections"]}
    assert statuses == {busy: "locked", free: "succeeded"}
