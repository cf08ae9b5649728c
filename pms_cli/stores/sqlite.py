"""SQLite store: the embedded default, one file in the user data dir."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from pms_cli.errors import StoreError
from pms_cli.stores.schema import ADDED_COLUMNS, SCHEMA_VERSION, ddl, ddl_added_columns
from pms_cli.stores.sql import SqlStore, dumps


def create_private(path: Path) -> None:
    """Create the database file 0600 and its folder 0700 (guest PII: names, e-mails, phones)
    when they do not exist yet; SQLite gives its -wal/-shm files the database file's mode.
    Existing files and folders keep the mode their owner chose."""
    if not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o700)  # mkdir's mode is filtered by the umask
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        path.chmod(0o600)


class SqliteStore(SqlStore):
    dialect = "sqlite"
    ph = "?"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = f"sqlite:{path}"
        try:
            create_private(path)
            # One connection shared by the engine's worker threads, serialised by a lock.
            self._db = sqlite3.connect(
                path, check_same_thread=False, isolation_level=None, timeout=30
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=30000")
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(
                f"cannot open the SQLite database at {path}: {exc}",
                hint="Check that the directory is writable, or set PMS_SQLITE_PATH / PMS_DATA_DIR.",
            ) from None
        self._lock = threading.RLock()
        self.migrate()

    def migrate(self) -> None:
        with self._tx() as cur:
            for statement in ddl("sqlite"):
                cur.execute(statement)
            # A file created by an older pms lacks the columns added since: add those only.
            for version, added in ADDED_COLUMNS.items():
                statements = ddl_added_columns(version, "sqlite")
                for (table, (column, _, _)), statement in zip(added, statements, strict=True):
                    cur.execute(f"PRAGMA table_info({table})")
                    if column not in {row[1] for row in cur.fetchall()}:
                        cur.execute(statement)
            cur.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Cursor]:
        with self._lock:
            cur = self._db.cursor()
            try:
                cur.execute("BEGIN IMMEDIATE")
                yield cur
                cur.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                self._rollback(cur)
                raise StoreError(
                    f"SQLite error on {self.path}: {exc}",
                    hint="If the disk is full or the file is locked, free space or stop the "
                    "other process, then rerun; nothing was half-written.",
                ) from None
            except BaseException:
                self._rollback(cur)
                raise
            finally:
                cur.close()

    @staticmethod
    def _rollback(cur: sqlite3.Cursor) -> None:
        with suppress(sqlite3.Error):
            cur.execute("ROLLBACK")

    def adapt(self, logical: str, value: Any) -> Any:
        if value is None:
            return None
        if logical == "json":
            return dumps(value)
        if logical in ("ts", "date") and isinstance(value, datetime | date):
            return value.isoformat()
        if logical == "money":
            return str(value)
        if logical == "bool":
            return 1 if value else 0
        return value

    def restore(self, logical: str, value: Any) -> Any:
        if value is None:
            return None
        if logical == "json":
            return json.loads(value)
        if logical == "ts":
            return datetime.fromisoformat(value)
        if logical == "date":
            return date.fromisoformat(value)
        if logical == "money":
            return Decimal(value)
        if logical == "bool":
            return bool(value)
        return value
