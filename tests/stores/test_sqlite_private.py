"""The SQLite file holds guest PII: created 0600 in a 0700 folder, its WAL files likewise."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from pms_cli.stores.sqlite import SqliteStore
from tests.stores.test_store_contract import T0, booking, make_conn


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_database_and_its_folder_are_private_even_with_a_permissive_umask(
    tmp_path: Path,
) -> None:
    old = os.umask(0o022)
    try:
        path = tmp_path / "new" / "pms.sqlite3"
        store = SqliteStore(path)
        conn = make_conn()
        store.add_connection(conn)
        store.upsert_records(conn, "booking", [booking(1)], T0)
        assert mode(path.parent) == 0o700
        assert mode(path) == 0o600
        for extra in path.parent.glob("pms.sqlite3-*"):  # -wal, -shm
            assert mode(extra) == 0o600, extra
        store.close()
    finally:
        os.umask(old)


def test_an_existing_folder_keeps_the_mode_its_owner_chose(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o750)
    SqliteStore(shared / "pms.sqlite3").close()
    assert mode(shared) == 0o750
    assert mode(shared / "pms.sqlite3") == 0o600
