"""A DB-API implementation of the Store protocol shared by SQLite and PostgreSQL.

Both dialects understand ``INSERT … ON CONFLICT (…) DO UPDATE SET col = excluded.col``, so the
write path is one piece of SQL; subclasses supply the connection, placeholders and value
adaptation (SQLite stores dates/JSON as text, psycopg adapts native types).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from pms_cli.models import AnyRecord, Kind
from pms_cli.stores.base import Connection, SyncRun, WebhookEventRow
from pms_cli.stores.schema import (
    CHECKPOINTS,
    CONNECTIONS,
    DATA_TABLES,
    PURGED_ON_DISCONNECT,
    SYNC_LOG,
    WEBHOOK_EVENTS,
    Table,
)

HOST = socket.gethostname()


ID_CHUNK = 500  # ids per IN (...) list: well under SQLite's and PostgreSQL's parameter limits


def utcnow() -> datetime:
    return datetime.now(UTC)


def record_row(conn: Connection, record: AnyRecord, synced_at: datetime) -> dict[str, Any]:
    row = record.model_dump(exclude={"kind", "raw"})
    row.update(
        connection_id=conn.id,
        organization_id=conn.organization_id,
        raw=record.raw,
        synced_at=synced_at,
        deleted_at=None,
    )
    if isinstance(row.get("status"), str):
        row["status"] = str(row["status"])
    return row


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SqlStore:
    """Shared SQL; subclasses implement ``_cursor`` (a transaction) and ``adapt``/``restore``."""

    dialect = "sqlite"
    ph = "?"
    description = ""

    # --- dialect hooks ------------------------------------------------------------------

    @contextmanager
    def _tx(self) -> Iterator[Any]:  # pragma: no cover - abstract
        raise NotImplementedError
        yield

    def adapt(self, logical: str, value: Any) -> Any:
        return value

    def restore(self, logical: str, value: Any) -> Any:
        return value

    def close(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # --- helpers ------------------------------------------------------------------------

    def _row_values(self, table: Table, row: dict[str, Any]) -> list[Any]:
        return [self.adapt(t, row.get(name)) for name, t, _ in table.columns]

    def _restore_row(self, table: Table, values: Sequence[Any]) -> dict[str, Any]:
        return {
            name: self.restore(t, v) for (name, t, _), v in zip(table.columns, values, strict=True)
        }

    def _select(
        self, table: Table, where: str = "", params: Sequence[Any] = (), tail: str = ""
    ) -> list[dict[str, Any]]:
        sql = f"SELECT {', '.join(table.column_names)} FROM {table.name}"
        if where:
            sql += f" WHERE {where}"
        with self._tx() as cur:
            cur.execute(sql + (" " + tail if tail else ""), list(params))
            return [self._restore_row(table, r) for r in cur.fetchall()]

    def _insert_sql(self, table: Table, update: bool = True) -> str:
        cols = table.column_names
        sql = (
            f"INSERT INTO {table.name} ({', '.join(cols)}) "
            f"VALUES ({', '.join([self.ph] * len(cols))}) "
            f"ON CONFLICT ({', '.join(table.primary_key)}) "
        )
        rest = [c for c in cols if c not in table.primary_key]
        if not update or not rest:
            return sql + "DO NOTHING"
        return sql + "DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in rest)

    # --- connections --------------------------------------------------------------------

    def add_connection(self, conn: Connection) -> None:
        now = utcnow()
        conn.created_at = conn.created_at or now
        conn.updated_at = now
        with self._tx() as cur:
            cur.execute(self._insert_sql(CONNECTIONS), self._row_values(CONNECTIONS, vars(conn)))

    def get_connection(self, connection_id: str) -> Connection | None:
        rows = self._select(CONNECTIONS, f"id = {self.ph}", [connection_id])
        return Connection(**rows[0]) if rows else None

    def list_connections(self, include_disconnected: bool = False) -> list[Connection]:
        where = "" if include_disconnected else "status <> 'disconnected'"
        return [
            Connection(**r) for r in self._select(CONNECTIONS, where, tail="ORDER BY created_at")
        ]

    def update_connection(self, connection_id: str, **fields: Any) -> None:
        fields["updated_at"] = utcnow()
        types = {n: t for n, t, _ in CONNECTIONS.columns}
        sets = ", ".join(f"{k} = {self.ph}" for k in fields)
        values = [self.adapt(types[k], v) for k, v in fields.items()]
        with self._tx() as cur:
            cur.execute(
                f"UPDATE pms_connections SET {sets} WHERE id = {self.ph}", [*values, connection_id]
            )

    def purge_connection(self, connection_id: str) -> dict[str, int]:
        removed: dict[str, int] = {}
        with self._tx() as cur:
            for table in PURGED_ON_DISCONNECT:
                cur.execute(f"DELETE FROM {table} WHERE connection_id = {self.ph}", [connection_id])
                removed[table] = max(cur.rowcount, 0)
        return removed

    # --- rows ---------------------------------------------------------------------------

    def upsert_records(
        self, conn: Connection, kind: Kind, records: Sequence[AnyRecord], synced_at: datetime
    ) -> int:
        table = DATA_TABLES[kind]
        # Last occurrence wins: a record seen twice in one batch (page drift) is written once.
        unique = {r.external_id: r for r in records}
        rows = [self._row_values(table, record_row(conn, r, synced_at)) for r in unique.values()]
        if not rows:
            return 0
        with self._tx() as cur:
            cur.executemany(self._insert_sql(table), rows)
            if kind == "property":
                self._touch_mappings(cur, conn, unique.values(), synced_at)
        return len(rows)

    def _touch_mappings(self, cur: Any, conn: Connection, records: Any, now: datetime) -> None:
        ph = self.ph
        sql = (
            "INSERT INTO pms_property_mappings (connection_id, external_property_id, "
            "organization_id, property_id, name, created_at, updated_at) "
            f"VALUES ({ph}, {ph}, {ph}, NULL, {ph}, {ph}, {ph}) "
            "ON CONFLICT (connection_id, external_property_id) DO UPDATE SET "
            "name = excluded.name, updated_at = excluded.updated_at"
        )
        ts = self.adapt("ts", now)
        cur.executemany(
            sql,
            [
                [conn.id, r.external_id, conn.organization_id, getattr(r, "name", None), ts, ts]
                for r in records
            ],
        )

    def mark_missing_deleted(
        self, connection_id: str, kind: Kind, seen_before: datetime, now: datetime
    ) -> int:
        table = DATA_TABLES[kind].name
        ph = self.ph
        with self._tx() as cur:
            cur.execute(
                f"UPDATE {table} SET deleted_at = {ph} WHERE connection_id = {ph} "
                f"AND deleted_at IS NULL AND synced_at < {ph}",
                [self.adapt("ts", now), connection_id, self.adapt("ts", seen_before)],
            )
            return max(int(cur.rowcount), 0)

    def _in_lists(self, ids: Sequence[str]) -> Iterator[tuple[list[str], str]]:
        """``ids`` in slices the drivers accept, each with its ``(?, ?, …)`` placeholders."""
        for start in range(0, len(ids), ID_CHUNK):
            chunk = list(ids[start : start + ID_CHUNK])
            yield chunk, f"({', '.join([self.ph] * len(chunk))})"

    def booking_guest_keys(
        self, connection_id: str, booking_ids: Sequence[str]
    ) -> dict[str, str | None]:
        table, ph = DATA_TABLES["booking"].name, self.ph
        found: dict[str, str | None] = {}
        with self._tx() as cur:
            for chunk, in_list in self._in_lists(booking_ids):
                cur.execute(
                    f"SELECT external_id, guest_external_id FROM {table} WHERE connection_id = "
                    f"{ph} AND external_id IN {in_list}",
                    [connection_id, *chunk],
                )
                found.update({str(r[0]): r[1] for r in cur.fetchall()})
        return found

    def delete_unreferenced_guests(
        self, connection_id: str, among: Sequence[str] | None = None
    ) -> int:
        guests, bookings, ph = DATA_TABLES["guest"].name, DATA_TABLES["booking"].name, self.ph
        unused = (
            f"external_id NOT IN (SELECT guest_external_id FROM {bookings} "
            f"WHERE connection_id = {ph} AND guest_external_id IS NOT NULL)"
        )
        deleted = 0
        with self._tx() as cur:
            if among is None:
                # NOT IN over a subquery: both engines hash it once (no index on the column).
                cur.execute(
                    f"DELETE FROM {guests} WHERE connection_id = {ph} AND {unused}",
                    [connection_id, connection_id],
                )
                return max(int(cur.rowcount), 0)
            ids = sorted(set(among))
            for chunk, in_list in self._in_lists(ids):
                cur.execute(
                    f"DELETE FROM {guests} WHERE connection_id = {ph} AND external_id IN "
                    f"{in_list} AND {unused}",
                    [connection_id, *chunk, connection_id],
                )
                deleted += max(int(cur.rowcount), 0)
        return deleted

    def counts(self, connection_id: str) -> dict[str, int]:
        out: dict[str, int] = {}
        with self._tx() as cur:
            for kind, table in DATA_TABLES.items():
                cur.execute(
                    f"SELECT count(*) FROM {table.name} WHERE connection_id = {self.ph} "
                    "AND deleted_at IS NULL",
                    [connection_id],
                )
                out[kind] = int(cur.fetchone()[0])
        return out

    def known_external_ids(
        self, connection_id: str, kind: Kind, external_ids: Sequence[str]
    ) -> set[str]:
        table, ph = DATA_TABLES[kind].name, self.ph
        found: set[str] = set()
        with self._tx() as cur:
            for chunk, in_list in self._in_lists(external_ids):
                cur.execute(
                    f"SELECT external_id FROM {table} WHERE connection_id = {ph} "
                    f"AND deleted_at IS NULL AND external_id IN {in_list}",
                    [connection_id, *chunk],
                )
                found.update(str(row[0]) for row in cur.fetchall())
        return found

    def fetch_rows(self, kind: Kind, connection_id: str | None = None) -> list[dict[str, Any]]:
        table = DATA_TABLES[kind]
        if connection_id is None:
            return self._select(table, tail="ORDER BY connection_id, external_id")
        return self._select(
            table, f"connection_id = {self.ph}", [connection_id], "ORDER BY external_id"
        )

    # --- cursors ------------------------------------------------------------------------

    def get_cursor(self, connection_id: str, resource: str) -> str | None:
        return self.cursors(connection_id).get(resource)

    def set_cursor(self, connection_id: str, resource: str, cursor: str | None) -> None:
        ph = self.ph
        with self._tx() as cur:
            cur.execute(
                "INSERT INTO pms_sync_state (connection_id, resource, cursor, updated_at) "
                f"VALUES ({ph}, {ph}, {ph}, {ph}) ON CONFLICT (connection_id, resource) "
                "DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
                [connection_id, resource, cursor, self.adapt("ts", utcnow())],
            )

    def cursors(self, connection_id: str) -> dict[str, str | None]:
        with self._tx() as cur:
            cur.execute(
                f"SELECT resource, cursor FROM pms_sync_state WHERE connection_id = {self.ph}",
                [connection_id],
            )
            return {r[0]: r[1] for r in cur.fetchall()}

    # --- checkpoints --------------------------------------------------------------------

    def get_checkpoint(self, connection_id: str, resource: str) -> dict[str, Any] | None:
        rows = self._select(
            CHECKPOINTS,
            f"connection_id = {self.ph} AND resource = {self.ph}",
            [connection_id, resource],
        )
        state = rows[0]["state"] if rows else None
        return state if isinstance(state, dict) else None

    def set_checkpoint(
        self, connection_id: str, resource: str, state: dict[str, Any] | None
    ) -> None:
        row = {
            "connection_id": connection_id,
            "resource": resource,
            "state": state,
            "updated_at": utcnow(),
        }
        with self._tx() as cur:
            cur.execute(self._insert_sql(CHECKPOINTS), self._row_values(CHECKPOINTS, row))

    # --- sync log -----------------------------------------------------------------------

    def start_run(self, run: SyncRun) -> None:
        with self._tx() as cur:
            cur.execute(self._insert_sql(SYNC_LOG), self._row_values(SYNC_LOG, vars(run)))

    def finish_run(self, run: SyncRun) -> None:
        with self._tx() as cur:
            cur.execute(self._insert_sql(SYNC_LOG), self._row_values(SYNC_LOG, vars(run)))

    def list_runs(
        self, connection_id: str | None = None, failed_only: bool = False, limit: int = 20
    ) -> list[SyncRun]:
        clauses, params = [], []
        if connection_id:
            clauses.append(f"connection_id = {self.ph}")
            params.append(connection_id)
        if failed_only:
            clauses.append("status IN ('failed', 'partial', 'interrupted')")
        rows = self._select(
            SYNC_LOG, " AND ".join(clauses), params, f"ORDER BY started_at DESC LIMIT {int(limit)}"
        )
        return [SyncRun(**r) for r in rows]

    def mark_interrupted(self, connection_id: str, except_run: str) -> int:
        ph = self.ph
        with self._tx() as cur:
            cur.execute(
                f"UPDATE pms_sync_log SET status = 'interrupted', finished_at = {ph}, "
                "error_code = 'interrupted', error_message = 'the process stopped before the "
                f"run finished' WHERE connection_id = {ph} AND status = 'running' AND id <> {ph}",
                [self.adapt("ts", utcnow()), connection_id, except_run],
            )
            return max(int(cur.rowcount), 0)

    # --- property mappings --------------------------------------------------------------

    def set_mapping(self, connection_id: str, external_property_id: str, property_id: str) -> None:
        ph = self.ph
        with self._tx() as cur:
            cur.execute(
                f"UPDATE pms_property_mappings SET property_id = {ph}, updated_at = {ph} "
                f"WHERE connection_id = {ph} AND external_property_id = {ph}",
                [property_id, self.adapt("ts", utcnow()), connection_id, external_property_id],
            )
            if cur.rowcount == 0:
                raise KeyError(external_property_id)

    def list_mappings(self, connection_id: str | None = None) -> list[dict[str, Any]]:
        from pms_cli.stores.schema import PROPERTY_MAPPINGS

        if connection_id is None:
            return self._select(
                PROPERTY_MAPPINGS, tail="ORDER BY connection_id, external_property_id"
            )
        return self._select(
            PROPERTY_MAPPINGS,
            f"connection_id = {self.ph}",
            [connection_id],
            "ORDER BY external_property_id",
        )

    # --- locks --------------------------------------------------------------------------

    def acquire_lock(self, connection_id: str, owner: str, ttl_seconds: float) -> bool:
        """Take the per-connection lock unless a live holder has it.

        A holder is dead when its lease expired, or when it ran on this host and its process
        no longer exists (a SIGKILLed cron run must not block the next one for an hour).
        """
        ph = self.ph
        now = utcnow().timestamp()
        with self._tx() as cur:
            cur.execute(
                f"SELECT owner, host, pid, expires_at FROM pms_locks WHERE connection_id = {ph}",
                [connection_id],
            )
            row = cur.fetchone()
            if row is not None:
                _, host, pid, expires_at = row
                dead = expires_at < now or (host == HOST and pid and not _pid_alive(int(pid)))
                if not dead:
                    return False
                cur.execute(f"DELETE FROM pms_locks WHERE connection_id = {ph}", [connection_id])
            cur.execute(
                "INSERT INTO pms_locks (connection_id, owner, host, pid, expires_at) "
                f"VALUES ({ph}, {ph}, {ph}, {ph}, {ph}) ON CONFLICT (connection_id) DO NOTHING",
                [connection_id, owner, HOST, os.getpid(), now + ttl_seconds],
            )
            return bool(cur.rowcount == 1)

    def release_lock(self, connection_id: str, owner: str) -> None:
        with self._tx() as cur:
            cur.execute(
                f"DELETE FROM pms_locks WHERE connection_id = {self.ph} AND owner = {self.ph}",
                [connection_id, owner],
            )

    def lock_holder(self, connection_id: str) -> dict[str, Any] | None:
        with self._tx() as cur:
            cur.execute(
                "SELECT owner, host, pid, expires_at FROM pms_locks "
                f"WHERE connection_id = {self.ph}",
                [connection_id],
            )
            row = cur.fetchone()
        if row is None:
            return None
        return {"owner": row[0], "host": row[1], "pid": row[2], "expires_at": row[3]}

    # --- token cache --------------------------------------------------------------------

    def token_cache_get(self, key: str) -> tuple[bytes, float | None] | None:
        with self._tx() as cur:
            cur.execute(
                f"SELECT ciphertext, expires_at FROM pms_token_cache WHERE key = {self.ph}", [key]
            )
            row = cur.fetchone()
        return (bytes(row[0]), row[1]) if row else None

    def token_cache_put(self, key: str, ciphertext: bytes, expires_at: float | None) -> None:
        ph = self.ph
        with self._tx() as cur:
            cur.execute(
                "INSERT INTO pms_token_cache (key, ciphertext, expires_at, updated_at) "
                f"VALUES ({ph}, {ph}, {ph}, {ph}) ON CONFLICT (key) DO UPDATE SET "
                "ciphertext = excluded.ciphertext, expires_at = excluded.expires_at, "
                "updated_at = excluded.updated_at",
                [key, ciphertext, expires_at, self.adapt("ts", utcnow())],
            )

    def token_cache_delete(self, key: str) -> None:
        with self._tx() as cur:
            cur.execute(f"DELETE FROM pms_token_cache WHERE key = {self.ph}", [key])

    # --- webhook inbox --------------------------------------------------------------------

    def inbox_add(self, event: WebhookEventRow) -> bool:
        """Insert-or-ignore on the (connection_id, dedupe_key) unique index."""
        cols = WEBHOOK_EVENTS.column_names
        sql = (
            f"INSERT INTO {WEBHOOK_EVENTS.name} ({', '.join(cols)}) "
            f"VALUES ({', '.join([self.ph] * len(cols))}) "
            "ON CONFLICT (connection_id, dedupe_key) DO NOTHING"
        )
        with self._tx() as cur:
            cur.execute(sql, self._row_values(WEBHOOK_EVENTS, vars(event)))
            return bool(cur.rowcount == 1)

    def inbox_claim(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[WebhookEventRow]:
        ph = self.ph
        ts_now = self.adapt("ts", now)
        # Postgres: concurrent receivers skip each other's rows instead of waiting on them.
        lock = " FOR UPDATE SKIP LOCKED" if self.dialect == "postgres" else ""
        with self._tx() as cur:
            cur.execute(
                f"SELECT {', '.join(WEBHOOK_EVENTS.column_names)} FROM {WEBHOOK_EVENTS.name} "
                "WHERE (status = 'pending' AND (next_attempt_at IS NULL "
                f"OR next_attempt_at <= {ph})) "
                f"OR (status IN ('retry', 'processing') AND next_attempt_at <= {ph}) "
                f"ORDER BY received_at, id LIMIT {int(limit)}{lock}",
                [ts_now, ts_now],
            )
            rows = [WebhookEventRow(**self._restore_row(WEBHOOK_EVENTS, r)) for r in cur.fetchall()]
            if rows:
                cur.executemany(
                    f"UPDATE {WEBHOOK_EVENTS.name} SET status = 'processing', "
                    f"next_attempt_at = {ph} WHERE id = {ph}",
                    [[self.adapt("ts", lease_until), r.id] for r in rows],
                )
        for r in rows:
            r.status, r.next_attempt_at = "processing", lease_until
        return rows

    def inbox_mark(
        self,
        ids: Sequence[str],
        status: str,
        *,
        next_attempt_at: datetime | None = None,
        error: str | None = None,
        attempted: bool = True,
    ) -> None:
        if not ids:
            return
        ph = self.ph
        bump = " + 1" if attempted else ""
        with self._tx() as cur:
            cur.executemany(
                f"UPDATE {WEBHOOK_EVENTS.name} SET status = {ph}, next_attempt_at = {ph}, "
                f"error = {ph}, attempts = attempts{bump} WHERE id = {ph}",
                [[status, self.adapt("ts", next_attempt_at), error, i] for i in ids],
            )

    def inbox_recover(self) -> int:
        with self._tx() as cur:
            cur.execute(
                f"UPDATE {WEBHOOK_EVENTS.name} SET status = 'pending', next_attempt_at = NULL "
                "WHERE status = 'processing'"
            )
            return max(int(cur.rowcount), 0)

    def inbox_list(
        self,
        connection_id: str | None = None,
        statuses: Sequence[str] | None = None,
        limit: int = 20,
    ) -> list[WebhookEventRow]:
        clauses: list[str] = []
        params: list[Any] = []
        if connection_id:
            clauses.append(f"connection_id = {self.ph}")
            params.append(connection_id)
        if statuses:
            clauses.append(f"status IN ({', '.join([self.ph] * len(statuses))})")
            params.extend(statuses)
        rows = self._select(
            WEBHOOK_EVENTS,
            " AND ".join(clauses),
            params,
            f"ORDER BY received_at DESC, id DESC LIMIT {int(limit)}",
        )
        return [WebhookEventRow(**r) for r in rows]

    def inbox_counts(self, connection_id: str | None = None) -> dict[str, int]:
        where, params = "", []
        if connection_id:
            where, params = f" WHERE connection_id = {self.ph}", [connection_id]
        with self._tx() as cur:
            cur.execute(
                f"SELECT status, count(*) FROM {WEBHOOK_EVENTS.name}{where} GROUP BY status",
                params,
            )
            return {str(r[0]): int(r[1]) for r in cur.fetchall()}

    def mark_deleted(
        self, connection_id: str, kind: Kind, external_ids: Sequence[str], now: datetime
    ) -> int:
        if not external_ids:
            return 0
        table = DATA_TABLES[kind].name
        ph = self.ph
        with self._tx() as cur:
            cur.execute(
                f"UPDATE {table} SET deleted_at = {ph}, synced_at = {ph} "
                f"WHERE connection_id = {ph} AND deleted_at IS NULL "
                f"AND external_id IN ({', '.join([ph] * len(external_ids))})",
                [self.adapt("ts", now), self.adapt("ts", now), connection_id, *external_ids],
            )
            return max(int(cur.rowcount), 0)


def json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(type(value).__name__)


def dumps(value: Any) -> str:
    return json.dumps(value, default=json_default, separators=(",", ":"), ensure_ascii=False)
