"""An SQLite file written by an older pms gains the columns added since, once, keeping rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from pms_cli.stores.schema import ddl
from pms_cli.stores.sqlite import SqliteStore


def test_an_older_file_gets_the_guests_column_on_open_and_keeps_its_rows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    for statement in ddl("sqlite"):  # the tables as version 4 created them
        db.execute(statement)
    db.execute("PRAGMA user_version = 4")
    db.execute(
        "INSERT INTO pms_bookings (connection_id, external_id, organization_id, status, "
        "adults, synced_at) VALUES ('c1', 'b1', 'o1', 'confirmed', 2, '2026-01-01T00:00:00')"
    )
    db.commit()
    assert "guests" not in {row[1] for row in db.execute("PRAGMA table_info(pms_bookings)")}
    db.close()

    for _ in range(2):  # opening again adds nothing twice
        store = SqliteStore(path)
        [row] = store.fetch_rows("booking", "c1")
        assert (row["adults"], row["guests"]) == (2, None)
        store.close()
