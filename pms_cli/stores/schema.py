"""One schema for every store, rendered per SQL dialect.

Table and column names are the contract with the product that reads them (Supabase/Postgres);
SQLite gets the same names with its own types. ``SCHEMA_VERSION`` increases with each change.
"""

from __future__ import annotations

from dataclasses import dataclass

SCHEMA_VERSION = 5

# logical type → (sqlite, postgres)
TYPES = {
    "text": ("TEXT", "text"),
    "int": ("INTEGER", "bigint"),
    "real": ("REAL", "double precision"),
    "bool": ("INTEGER", "boolean"),
    "date": ("TEXT", "date"),
    "ts": ("TEXT", "timestamptz"),
    "money": ("TEXT", "numeric(14,2)"),
    "json": ("TEXT", "jsonb"),
    "bytes": ("BLOB", "bytea"),
}


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[tuple[str, str, str], ...]  # (name, logical type, constraint)
    primary_key: tuple[str, ...]
    indexes: tuple[tuple[str, ...], ...] = ()

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c[0] for c in self.columns)

    def ddl(self, dialect: str) -> list[str]:
        pick = 0 if dialect == "sqlite" else 1
        cols = [f"{n} {TYPES[t][pick]}{(' ' + c) if c else ''}" for n, t, c in self.columns]
        cols.append(f"PRIMARY KEY ({', '.join(self.primary_key)})")
        out = [f"CREATE TABLE IF NOT EXISTS {self.name} (\n  " + ",\n  ".join(cols) + "\n)"]
        for idx in self.indexes:
            out.append(
                f"CREATE INDEX IF NOT EXISTS {self.name}_{'_'.join(idx)}_idx "
                f"ON {self.name} ({', '.join(idx)})"
            )
        return out


_DATA_COMMON = (
    ("connection_id", "text", "NOT NULL"),
    ("external_id", "text", "NOT NULL"),
    ("organization_id", "text", "NOT NULL"),
)
_DATA_TAIL = (
    ("raw", "json", ""),
    ("synced_at", "ts", "NOT NULL"),
    ("deleted_at", "ts", ""),
)

CONNECTIONS = Table(
    "pms_connections",
    (
        ("id", "text", "NOT NULL"),
        ("organization_id", "text", "NOT NULL"),
        ("provider", "text", "NOT NULL"),
        ("display_name", "text", ""),
        ("status", "text", "NOT NULL"),
        ("account_ref", "text", ""),
        ("secret_location", "text", "NOT NULL"),
        ("settings", "json", ""),
        ("last_sync_at", "ts", ""),
        ("last_error", "text", ""),
        ("created_at", "ts", "NOT NULL"),
        ("updated_at", "ts", "NOT NULL"),
    ),
    ("id",),
    (("organization_id",),),
)

PROPERTY_MAPPINGS = Table(
    "pms_property_mappings",
    (
        ("connection_id", "text", "NOT NULL"),
        ("external_property_id", "text", "NOT NULL"),
        ("organization_id", "text", "NOT NULL"),
        ("property_id", "text", ""),
        ("name", "text", ""),
        ("created_at", "ts", "NOT NULL"),
        ("updated_at", "ts", "NOT NULL"),
    ),
    ("connection_id", "external_property_id"),
)

SYNC_LOG = Table(
    "pms_sync_log",
    (
        ("id", "text", "NOT NULL"),
        ("connection_id", "text", "NOT NULL"),
        ("organization_id", "text", "NOT NULL"),
        ("trigger", "text", "NOT NULL"),
        ("status", "text", "NOT NULL"),
        ("started_at", "ts", "NOT NULL"),
        ("finished_at", "ts", ""),
        ("full_sync", "bool", "NOT NULL"),
        ("counts", "json", ""),
        ("requests", "int", ""),
        ("retries", "int", ""),
        ("rate_limit_waits", "int", ""),
        ("error_code", "text", ""),
        ("error_message", "text", ""),
        ("error_hint", "text", ""),
        ("owner", "text", ""),
    ),
    ("id",),
    (("connection_id", "started_at"),),
)

PROPERTIES = Table(
    "pms_properties",
    (
        *_DATA_COMMON,
        ("name", "text", ""),
        ("address", "text", ""),
        ("city", "text", ""),
        ("country", "text", ""),
        ("latitude", "real", ""),
        ("longitude", "real", ""),
        ("timezone", "text", ""),
        ("max_guests", "int", ""),
        ("bedrooms", "int", ""),
        ("bathrooms", "real", ""),
        ("check_in_time", "text", ""),
        ("check_out_time", "text", ""),
        ("currency", "text", ""),
        ("active", "bool", ""),
        ("updated_at", "ts", ""),
        *_DATA_TAIL,
    ),
    ("connection_id", "external_id"),
)

BOOKINGS_V1 = Table(
    "pms_bookings",
    (
        *_DATA_COMMON,
        ("property_external_id", "text", ""),
        ("guest_external_id", "text", ""),
        ("status", "text", "NOT NULL"),
        ("check_in", "date", ""),
        ("check_out", "date", ""),
        ("adults", "int", ""),
        ("children", "int", ""),
        ("channel", "text", ""),
        ("confirmation_code", "text", ""),
        ("total_price", "money", ""),
        ("currency", "text", ""),
        ("guest_name", "text", ""),
        ("guest_email", "text", ""),
        ("guest_phone", "text", ""),
        ("created_at", "ts", ""),
        ("updated_at", "ts", ""),
        *_DATA_TAIL,
    ),
    ("connection_id", "external_id"),
    (("connection_id", "property_external_id"), ("connection_id", "check_in")),
)

# Columns added after version 1, per version: (table, (column, logical type, constraint)).
ADDED_COLUMNS: dict[int, tuple[tuple[str, tuple[str, str, str]], ...]] = {
    5: (("pms_bookings", ("guests", "int", "")),),
}


def _with_added(table: Table) -> Table:
    added = tuple(
        col for cols in ADDED_COLUMNS.values() for name, col in cols if name == table.name
    )
    if not added:
        return table
    # New columns go before raw/synced_at/deleted_at, where a reader looks for canonical ones;
    # the database itself appends them (column order does not matter to any query here).
    head, tail = table.columns[: -len(_DATA_TAIL)], table.columns[-len(_DATA_TAIL) :]
    return Table(table.name, (*head, *added, *tail), table.primary_key, table.indexes)


BOOKINGS = _with_added(BOOKINGS_V1)

GUESTS = Table(
    "pms_guests",
    (
        *_DATA_COMMON,
        ("name", "text", ""),
        ("first_name", "text", ""),
        ("last_name", "text", ""),
        ("email", "text", ""),
        ("phone", "text", ""),
        ("language", "text", ""),
        ("country", "text", ""),
        *_DATA_TAIL,
    ),
    ("connection_id", "external_id"),
)

SYNC_STATE = Table(
    "pms_sync_state",
    (
        ("connection_id", "text", "NOT NULL"),
        ("resource", "text", "NOT NULL"),
        ("cursor", "text", ""),
        ("updated_at", "ts", "NOT NULL"),
    ),
    ("connection_id", "resource"),
)

WEBHOOK_EVENTS = Table(
    "pms_webhook_events",
    (
        ("id", "text", "NOT NULL"),
        ("provider", "text", "NOT NULL"),
        ("connection_id", "text", "NOT NULL"),
        ("organization_id", "text", "NOT NULL"),
        ("dedupe_key", "text", "NOT NULL"),
        ("payload", "json", ""),
        ("received_at", "ts", "NOT NULL"),
        ("status", "text", "NOT NULL"),
        ("attempts", "int", "NOT NULL DEFAULT 0"),
        ("next_attempt_at", "ts", ""),
        ("error", "text", ""),
    ),
    ("id",),
    (("status", "next_attempt_at"),),
)

TOKEN_CACHE = Table(
    "pms_token_cache",
    (
        ("key", "text", "NOT NULL"),
        ("ciphertext", "bytes", "NOT NULL"),
        ("expires_at", "real", ""),
        ("updated_at", "ts", "NOT NULL"),
    ),
    ("key",),
)

LOCKS = Table(
    "pms_locks",
    (
        ("connection_id", "text", "NOT NULL"),
        ("owner", "text", "NOT NULL"),
        ("host", "text", ""),
        ("pid", "int", ""),
        ("expires_at", "real", "NOT NULL"),
    ),
    ("connection_id",),
)

# Version 2's home-made `pms worker` queue, frozen: the v2 migration step replays it and v3
# drops it (`pms worker` now runs on Procrastinate's tables). Not part of the current schema.
JOBS_V2 = Table(
    "pms_jobs",
    (
        ("id", "text", "NOT NULL"),
        ("connection_id", "text", "NOT NULL"),
        ("organization_id", "text", "NOT NULL"),
        ("kind", "text", "NOT NULL"),  # sync | full
        ("status", "text", "NOT NULL"),  # queued | running | succeeded | partial | failed
        # Scheduling times are epoch seconds (as pms_locks.expires_at): both dialects compare
        # them as numbers, and every worker of a fleet reads them against its own clock.
        ("not_before", "real", "NOT NULL"),
        ("lease_owner", "text", ""),
        ("lease_expires_at", "real", ""),
        ("attempts", "int", "NOT NULL DEFAULT 0"),
        ("max_attempts", "int", "NOT NULL DEFAULT 5"),
        ("last_error", "text", ""),
        ("result", "json", ""),
        ("created_at", "ts", "NOT NULL"),
        ("updated_at", "ts", "NOT NULL"),
        ("finished_at", "ts", ""),
    ),
    ("id",),
    (("status", "not_before"), ("connection_id", "finished_at")),
)

CHECKPOINTS = Table(
    "pms_sync_checkpoints",
    (
        ("connection_id", "text", "NOT NULL"),
        ("resource", "text", "NOT NULL"),
        # Where an unfinished walk of the resource continues (page position, its query and start
        # time); NULL once the walk finished. Written after each committed batch.
        ("state", "json", ""),
        ("updated_at", "ts", "NOT NULL"),
    ),
    ("connection_id", "resource"),
)

# Version 1 of the schema, frozen: the v1 migration step must never change.
TABLES_V1 = (
    CONNECTIONS,
    PROPERTY_MAPPINGS,
    SYNC_LOG,
    PROPERTIES,
    BOOKINGS_V1,
    GUESTS,
    SYNC_STATE,
    WEBHOOK_EVENTS,
    TOKEN_CACHE,
    LOCKS,
)

TABLES = (*(BOOKINGS if t is BOOKINGS_V1 else t for t in TABLES_V1), CHECKPOINTS)

#: What `pms disconnect --purge` deletes for a connection (its row and sync log stay).
PURGED_ON_DISCONNECT = tuple(
    t.name
    for t in (
        PROPERTIES,
        BOOKINGS,
        GUESTS,
        PROPERTY_MAPPINGS,
        SYNC_STATE,
        CHECKPOINTS,
        WEBHOOK_EVENTS,
    )
)

JOBS_V2_ACTIVE_UNIQUE = (
    "CREATE UNIQUE INDEX IF NOT EXISTS pms_jobs_active_uq ON pms_jobs (connection_id) "
    "WHERE status IN ('queued', 'running')"
)

DATA_TABLES = {"property": PROPERTIES, "booking": BOOKINGS, "guest": GUESTS}


def ddl_v1(dialect: str) -> list[str]:
    """The version-1 schema (frozen; the v1 migration step replays exactly this)."""
    statements: list[str] = []
    for table in TABLES_V1:
        statements.extend(table.ddl(dialect))
    statements.append(
        "CREATE UNIQUE INDEX IF NOT EXISTS pms_webhook_events_dedupe_uq "
        "ON pms_webhook_events (connection_id, dedupe_key)"
    )
    return statements


def ddl_jobs_v2(dialect: str) -> list[str]:
    """Version 2 (frozen): the home-made `pms worker` job queue, dropped again by version 4."""
    return [*JOBS_V2.ddl(dialect), JOBS_V2_ACTIVE_UNIQUE]


DROP_JOBS_V2 = "DROP TABLE IF EXISTS pms_jobs"


def ddl_checkpoints(dialect: str) -> list[str]:
    """Version 3: where an interrupted resource walk continues."""
    return CHECKPOINTS.ddl(dialect)


def ddl_added_columns(version: int, dialect: str) -> list[str]:
    """``ALTER TABLE … ADD COLUMN`` for the columns of ``version`` (Postgres: re-runnable;
    SQLite has no ``IF NOT EXISTS`` here, so ``SqliteStore`` adds only the missing ones)."""
    pick = 0 if dialect == "sqlite" else 1
    guard = "" if dialect == "sqlite" else "IF NOT EXISTS "
    return [
        f"ALTER TABLE {table} ADD COLUMN {guard}{name} {TYPES[kind][pick]}"
        f"{(' ' + constraint) if constraint else ''}"
        for table, (name, kind, constraint) in ADDED_COLUMNS.get(version, ())
    ]


def ddl(dialect: str) -> list[str]:
    """The whole current schema but the added columns (SQLite creates it on open and adds
    the missing columns itself; Postgres replays the steps).

    SQLite files created before version 4 may carry the old `pms worker` queue table; dropping
    it on open is their upgrade (nothing in it outlives a worker run).
    """
    return [*ddl_v1(dialect), *ddl_checkpoints(dialect), DROP_JOBS_V2]
