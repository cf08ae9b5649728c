"""PostgreSQL store (psycopg 3): the same tables and SQL as SQLite, in any Postgres or Supabase.

The schema is not created on open: ``pms db migrate`` (``migrate()`` here) applies it, and
opening a database without it is a clear error naming that command. Connect as the table owner
or Supabase's service role: readers are scoped by row-level security (see ``migrations.py``).

Writes: each ``upsert_records`` call is one transaction that COPYs the batch into a temporary
staging table (binary format) and merges it with one ``INSERT … SELECT … ON CONFLICT DO
UPDATE``: a fixed handful of round trips per batch whatever its size, so network latency does
not multiply by the row count (``bench/store_write.py`` measures it). The engine advances a
cursor only after that transaction has committed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import errors as pgerrors
from psycopg.types.json import Jsonb

from pms_cli.errors import StoreError
from pms_cli.models import AnyRecord, Kind
from pms_cli.redact import redact_text, redact_url, register_secret
from pms_cli.stores import migrations, pgtext
from pms_cli.stores.base import Connection
from pms_cli.stores.schema import DATA_TABLES, TYPES
from pms_cli.stores.sql import SqlStore, dumps, record_row

MIGRATE_HINT = (
    "Run `pms db migrate` to create or upgrade the schema in PMS_DATABASE_URL, or `pms db sql` "
    "to print the SQL and apply it yourself (Supabase: SQL editor or supabase/migrations/)."
)
CONNECT_HINT = (
    "Check PMS_DATABASE_URL (postgresql://USER:PASSWORD@HOST:PORT/DATABASE) and that the server "
    "is running and reachable; unset it to use the local SQLite store."
)


# logical type → the PostgreSQL type name binary COPY needs (schema.TYPES without modifiers)
PG_TYPES = {logical: pg.split("(")[0] for logical, (_, pg) in TYPES.items()}


def _dumps_for_pg(value: Any) -> str:
    return pgtext.clean_json(dumps(value))


def _jsonb(value: Any) -> Jsonb:
    return Jsonb(value, dumps=_dumps_for_pg)


class PostgresStore(SqlStore):
    dialect = "postgres"
    ph = "%s"

    def __init__(self, url: str, *, check_schema: bool = True, connect_timeout: int = 10) -> None:
        self.url = url
        self.description = redact_url(url)
        self.connect_timeout = connect_timeout
        self._lock = threading.RLock()
        self._register_password(url)
        self._db = self._connect()
        if check_schema:
            try:
                self.check_schema()
            except BaseException:
                self.close()
                raise

    # --- connection -----------------------------------------------------------------------

    @staticmethod
    def _register_password(url: str) -> None:
        with suppress(Exception):
            info = psycopg.conninfo.conninfo_to_dict(url)
            password = info.get("password")
            if isinstance(password, str) and password:
                register_secret(password)

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            conn = psycopg.connect(
                self.url,
                autocommit=True,  # transactions are explicit: conn.transaction() in _tx
                connect_timeout=self.connect_timeout,
                application_name="pms",
                # Transaction-mode poolers (Supabase's port 6543, pgbouncer) cannot keep
                # server-side prepared statements between transactions.
                prepare_threshold=None,
            )
        except (psycopg.Error, ValueError) as exc:
            raise StoreError(
                f"cannot connect to PostgreSQL at {self.description}: {self._msg(exc)}",
                hint=CONNECT_HINT,
                code="store_unreachable",
            ) from None
        pgtext.install(conn)  # U+0000 in any str this connection sends: see pgtext
        return conn

    def _role(self) -> str:
        with suppress(Exception):
            return str(self._db.info.user)
        return "<role>"

    @staticmethod
    def _msg(exc: BaseException) -> str:
        return redact_text(" ".join(str(exc).split()))

    def close(self) -> None:
        with self._lock, suppress(psycopg.Error):
            self._db.close()

    # --- schema ---------------------------------------------------------------------------

    def schema_version(self) -> int | None:
        """The applied migration version, or None when the database has no pms schema."""
        with self._lock, self._errors():
            return migrations.current_version(self._db)

    def check_schema(self) -> None:
        migrations.require_current(
            self.schema_version(), "PostgreSQL database", self.description, MIGRATE_HINT
        )

    def check_access(self) -> None:
        """StoreError when this role cannot see the pms rows: no SELECT privilege, or row-level
        security applies to it (not the owner, not BYPASSRLS) with no organization set, so every
        query answers "nothing" — which `pms status` would show as "No connections yet".

        PostgreSQL does not say how many rows RLS hid; what it does say is whether RLS applies
        to this role and what ``pms_current_org()`` (the readers' policy) evaluates to.
        """
        with self._lock, self._errors(), self._db.cursor() as cur:
            cur.execute(
                "SELECT current_user, has_table_privilege('pms_connections', 'SELECT'), "
                "c.relrowsecurity AND NOT r.rolbypassrls AND NOT r.rolsuper "
                "AND (c.relforcerowsecurity OR NOT pg_has_role(c.relowner, 'USAGE')), "
                "pg_get_userbyid(c.relowner) "
                "FROM pg_class c JOIN pg_roles r ON r.rolname = current_user "
                "WHERE c.oid = 'pms_connections'::regclass"
            )
            row = cur.fetchone()
            if row is None:
                return
            role, can_select, limited, owner = row
            org = None
            if can_select and limited:
                cur.execute("SELECT pms_current_org()")
                org = (cur.fetchone() or (None,))[0]
        if not can_select:
            raise StoreError(
                f"the PostgreSQL role {role!r} may not read the pms tables at {self.description}",
                hint=f"Connect as the owner of the pms tables ({owner}) or Supabase's service "
                f"role, or grant reading: GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role};",
                code="store_permission",
            )
        if limited and not org:
            raise StoreError(
                f"the PostgreSQL role {role!r} is limited by row-level security at "
                f"{self.description} and no organization is set for it, so it sees no rows "
                "(connections, bookings, logs may well exist)",
                hint=f"pms needs the owner of the pms tables ({owner}) or a BYPASSRLS role such "
                "as Supabase's service_role in PMS_DATABASE_URL. For a read-only view of one "
                f"organization: ALTER ROLE {role} SET pms.organization_id = '<org>';",
                code="store_permission",
            )

    def migrate(self) -> list[int]:
        """Apply the missing migration steps; returns the versions applied (empty: up to date)."""
        with self._lock, self._errors(migrating=True):
            return migrations.apply(self._db)

    # --- transactions ---------------------------------------------------------------------

    @contextmanager
    def _errors(self, migrating: bool = False) -> Iterator[None]:
        if self._db.closed or self._db.broken:
            with suppress(psycopg.Error):
                self._db.close()
            self._db = self._connect()
        try:
            yield
        except (pgerrors.UndefinedTable, pgerrors.UndefinedColumn, pgerrors.UndefinedFunction) as e:
            raise StoreError(
                f"the pms schema at {self.description} is missing or outdated: {self._msg(e)}",
                hint=MIGRATE_HINT,
                code="schema_missing",
            ) from None
        except pgerrors.InsufficientPrivilege as exc:
            raise StoreError(
                f"PostgreSQL refused the operation at {self.description}: {self._msg(exc)}",
                hint="Connect as the owner of the pms tables or as Supabase's service role "
                "(pms writes; reader roles are limited by row-level security); to let this role "
                f"read: GRANT SELECT ON ALL TABLES IN SCHEMA public TO {self._role()};"
                if not migrating
                else "`pms db migrate` needs a role that may create tables in the schema.",
                code="store_permission",
            ) from None
        except psycopg.OperationalError as exc:
            raise StoreError(
                f"lost the connection to PostgreSQL at {self.description}: {self._msg(exc)}",
                hint="Nothing was half-written (the transaction rolled back); rerun when the "
                "database is reachable. " + CONNECT_HINT,
                code="store_unreachable",
            ) from None
        except psycopg.Error as exc:
            # Anything else the server refused (a value that does not fit its column, a
            # constraint): the transaction rolled back; the caller fails this batch's resource.
            raise StoreError(
                f"PostgreSQL at {self.description} refused a statement: {self._msg(exc)}",
                hint="Nothing of this batch was written and the cursor was kept. Compare the "
                "schema with `pms db sql` (run `pms db migrate` if it is older than this pms); "
                "if it persists, report it with `pms logs --failed --json`.",
                code="store_bad_value",
            ) from None

    @contextmanager
    def _tx(self) -> Iterator[psycopg.Cursor[Any]]:
        with self._lock, self._errors(), self._db.transaction(), self._db.cursor() as cur:
            yield cur

    # --- values ---------------------------------------------------------------------------

    def adapt(self, logical: str, value: Any) -> Any:
        if value is None:
            return None
        if logical == "json":
            return _jsonb(value)
        return value  # psycopg adapts datetime, date, Decimal, bool, int, float, bytes

    def restore(self, logical: str, value: Any) -> Any:
        if value is None:
            return None
        if logical == "ts" and isinstance(value, datetime):
            return value.astimezone(UTC)
        if logical == "bytes":
            return bytes(value)
        return value

    # --- batched writes -------------------------------------------------------------------

    def upsert_records(
        self, conn: Connection, kind: Kind, records: Sequence[AnyRecord], synced_at: datetime
    ) -> int:
        """COPY the batch into a temp table, then merge it with one INSERT … ON CONFLICT."""
        table = DATA_TABLES[kind]
        unique = {r.external_id: r for r in records}  # last occurrence wins, as in SqlStore
        if not unique:
            return 0
        cols = ", ".join(table.column_names)
        rest = [c for c in table.column_names if c not in table.primary_key]
        stage = f"pms_stage_{table.name}"
        with self._tx() as cur:
            # ON COMMIT DROP: nothing outlives the transaction (safe behind poolers too).
            cur.execute(
                f"CREATE TEMP TABLE {stage} (LIKE {table.name} INCLUDING DEFAULTS) ON COMMIT DROP"
            )
            with cur.copy(f"COPY {stage} ({cols}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types([PG_TYPES[t] for _, t, _ in table.columns])
                for record in unique.values():
                    copy.write_row(self._row_values(table, record_row(conn, record, synced_at)))
            cur.execute(
                f"INSERT INTO {table.name} ({cols}) SELECT {cols} FROM {stage} "
                f"ON CONFLICT ({', '.join(table.primary_key)}) DO UPDATE SET "
                + ", ".join(f"{c} = excluded.{c}" for c in rest)
            )
            if kind == "property":
                self._touch_mappings(cur, conn, unique.values(), synced_at)
        return len(unique)
