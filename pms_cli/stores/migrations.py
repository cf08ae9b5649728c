"""The versioned PostgreSQL/Supabase migration.

``migration_sql()`` is the whole script (``pms db sql``: paste it into the Supabase SQL editor or
save it under ``supabase/migrations/``); ``apply(conn)`` runs the steps a database has not had yet
(``pms db migrate``), in one transaction, under an advisory lock, and records each version in
``pms_schema_version``. Running either twice changes nothing.

Rules for new steps: append a ``Step`` with the next version, never edit a released one, and
write every statement so that re-running it is harmless (``IF NOT EXISTS``, ``OR REPLACE``,
``DROP POLICY IF EXISTS`` before ``CREATE POLICY``): the printed script replays all steps.
Bump ``schema.SCHEMA_VERSION`` to the new version in the same change.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pms_cli.stores.schema import (
    DROP_JOBS_V2,
    SCHEMA_VERSION,
    TABLES_V1,
    ddl_added_columns,
    ddl_checkpoints,
    ddl_jobs_v2,
    ddl_v1,
)

VERSION_TABLE = "pms_schema_version"

# Serialises concurrent `pms db migrate` runs (arbitrary constant: "pms" in ASCII).
ADVISORY_LOCK_ID = 0x706D73

# Tables whose rows carry organization_id directly.
_ORG_TABLES = (
    "pms_connections",
    "pms_property_mappings",
    "pms_sync_log",
    "pms_properties",
    "pms_bookings",
    "pms_guests",
    "pms_webhook_events",
)
# Tables keyed by connection only: scoped through the connection's organization.
_CONNECTION_TABLES = ("pms_sync_state", "pms_locks")
# Never readable by readers (encrypted token blobs; RLS on, no policy).
_PRIVATE_TABLES = ("pms_token_cache",)

_RLS_HEADER = """\
-- Row-level security
-- ------------------
-- Every pms table has RLS enabled. Writers are the table owner (the role that ran this
-- migration, e.g. `postgres`) and Supabase's `service_role` (BYPASSRLS): RLS does not apply
-- to them, so `pms sync` connects as one of those. Everyone else only gets SELECT policies,
-- which show a row when its organization_id equals pms_current_org():
--
--   1. the `organization_id` claim of the request JWT (Supabase / PostgREST put the verified
--      claims in the `request.jwt.claims` setting), else
--   2. the `pms.organization_id` setting, for application backends that connect as a reader
--      role and scope each transaction with `SET LOCAL pms.organization_id = '<org>'`
--      (or pin one role to one org: `ALTER ROLE reader_x SET pms.organization_id = '<org>'`).
--
-- With neither set, readers see nothing. Any session may SET a custom setting, so (2) scopes a
-- trusted backend's queries; it is not a boundary against a client that can run arbitrary
-- SQL. Clients you do not trust reach the data through PostgREST/Supabase with signed JWTs.
-- No INSERT/UPDATE/DELETE policies exist: readers cannot write even when granted privileges.
-- Privileges are left to you (Supabase grants them to anon/authenticated by default), e.g.
--   GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader_role;
-- pms_token_cache has no policy at all: only writers see the (encrypted) token blobs."""

_CURRENT_ORG = """\
CREATE OR REPLACE FUNCTION pms_current_org() RETURNS text
LANGUAGE sql STABLE
AS $$
  SELECT coalesce(
    nullif(nullif(current_setting('request.jwt.claims', true), '')::jsonb
           ->> 'organization_id', ''),
    nullif(current_setting('pms.organization_id', true), '')
  )
$$"""


def _policy(table: str, using: str) -> list[str]:
    name = f"{table}_org_read"
    return [
        f"DROP POLICY IF EXISTS {name} ON {table}",
        f"CREATE POLICY {name} ON {table} FOR SELECT USING ({using})",
    ]


def _rls_statements() -> list[str]:
    out = [_CURRENT_ORG]
    for table in (*(t.name for t in TABLES_V1), VERSION_TABLE):
        out.append(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    for table in _ORG_TABLES:
        out += _policy(table, "organization_id = pms_current_org()")
    for table in _CONNECTION_TABLES:
        out += _policy(
            table,
            f"EXISTS (SELECT 1 FROM pms_connections c WHERE c.id = {table}.connection_id "
            "AND c.organization_id = pms_current_org())",
        )
    # The schema version is not tenant data: anyone may read it.
    out += [
        f"DROP POLICY IF EXISTS {VERSION_TABLE}_read ON {VERSION_TABLE}",
        f"CREATE POLICY {VERSION_TABLE}_read ON {VERSION_TABLE} FOR SELECT USING (true)",
    ]
    return out


@dataclass(frozen=True)
class Step:
    version: int
    description: str
    statements: tuple[str, ...]


def _v1() -> Step:
    return Step(
        1,
        "pms tables, indexes, row-level security and organization policies",
        (*ddl_v1("postgres"), *_rls_statements()),
    )


def _v2() -> Step:
    # Job rows name a connection and carry its organization: readers see their own org's queue.
    return Step(
        2,
        "pms_jobs: the queue `pms worker` processes pull connection syncs from",
        (
            *ddl_jobs_v2("postgres"),
            "ALTER TABLE pms_jobs ENABLE ROW LEVEL SECURITY",
            *_policy("pms_jobs", "organization_id = pms_current_org()"),
        ),
    )


def _v3() -> Step:
    table = "pms_sync_checkpoints"
    return Step(
        3,
        "pms_sync_checkpoints: where an interrupted sync continues inside a resource",
        (
            *ddl_checkpoints("postgres"),
            f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
            *_policy(
                table,
                f"EXISTS (SELECT 1 FROM pms_connections c WHERE c.id = {table}.connection_id "
                "AND c.organization_id = pms_current_org())",
            ),
        ),
    )


#: The Procrastinate release whose schema step 4 installs. Upgrading the dependency past a
#: schema change means a new step that applies Procrastinate's own migration files
#: (``procrastinate/sql/migrations/*.sql``) from this version on; a test fails until then.
PROCRASTINATE_SCHEMA = "3.10.0"
PROCRASTINATE_TABLES = (
    "procrastinate_jobs",
    "procrastinate_events",
    "procrastinate_periodic_defers",
    "procrastinate_workers",
)


@cache
def procrastinate_schema_sql() -> str:
    """Procrastinate's ``schema.sql``, read from the installed package without importing it
    (importing procrastinate costs tens of milliseconds that `pms status` should not pay)."""
    spec = importlib.util.find_spec("procrastinate")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the procrastinate package is not installed")
    root = Path(next(iter(spec.submodule_search_locations)))
    return (root / "sql" / "schema.sql").read_text(encoding="utf-8")


def _procrastinate_install() -> str:
    # Procrastinate's schema is plain CREATE statements; the guard makes the printed script
    # re-runnable (and leaves alone a database that already runs Procrastinate for other work).
    return (
        "DO $pms_procrastinate$\nBEGIN\n"
        "  IF to_regclass('procrastinate_jobs') IS NULL THEN\n"
        f"    EXECUTE $procrastinate_schema$\n{procrastinate_schema_sql().strip()}\n"
        "$procrastinate_schema$;\n  END IF;\nEND\n$pms_procrastinate$"
    )


def _engine_tables_private() -> list[str]:
    """The queue is not tenant data: no reader policy, and Supabase's API roles lose the
    privileges its default grants give them (tables and the ``procrastinate_*`` functions,
    which PostgREST would otherwise expose as RPCs). Plain Postgres has no such roles."""
    tables = ", ".join(PROCRASTINATE_TABLES)
    out = [f"ALTER TABLE {t} ENABLE ROW LEVEL SECURITY" for t in PROCRASTINATE_TABLES]
    out.append(
        "DO $pms_revoke$\nDECLARE\n  api_role text;\n  obj text;\nBEGIN\n"
        "  FOREACH api_role IN ARRAY ARRAY['anon', 'authenticated'] LOOP\n"
        "    CONTINUE WHEN NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = api_role);\n"
        f"    EXECUTE format('REVOKE ALL ON {tables} FROM %I', api_role);\n"
        "    FOR obj IN SELECT c.oid::regclass::text FROM pg_class c\n"
        "        WHERE c.relkind = 'S' AND c.relname LIKE 'procrastinate%'\n"
        "        AND c.relnamespace = current_schema()::regnamespace LOOP\n"
        "      EXECUTE format('REVOKE ALL ON SEQUENCE %s FROM %I', obj, api_role);\n"
        "    END LOOP;\n"
        "    FOR obj IN SELECT p.oid::regprocedure::text FROM pg_proc p\n"
        "        WHERE p.proname LIKE 'procrastinate%'\n"
        "        AND p.pronamespace = current_schema()::regnamespace LOOP\n"
        "      EXECUTE format('REVOKE ALL ON FUNCTION %s FROM %I', obj, api_role);\n"
        "    END LOOP;\n  END LOOP;\nEND\n$pms_revoke$"
    )
    return out


def _v4() -> Step:
    return Step(
        4,
        f"`pms worker` on Procrastinate {PROCRASTINATE_SCHEMA}: its schema, private to writers; "
        "pms_jobs dropped",
        (DROP_JOBS_V2, _procrastinate_install(), *_engine_tables_private()),
    )


def _v5() -> Step:
    return Step(
        5,
        "pms_bookings.guests: the total guest count, apart from adults",
        tuple(ddl_added_columns(5, "postgres")),
    )


STEPS: list[Step] = [_v1(), _v2(), _v3(), _v4(), _v5()]

_VERSION_DDL = (
    f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (\n"
    "  version integer PRIMARY KEY,\n"
    "  description text NOT NULL,\n"
    "  applied_at timestamptz NOT NULL DEFAULT now()\n"
    ")"
)


def latest_version() -> int:
    return STEPS[-1].version


def _record(step: Step) -> str:
    description = step.description.replace("'", "''")
    return (
        f"INSERT INTO {VERSION_TABLE} (version, description) "
        f"VALUES ({step.version}, '{description}') ON CONFLICT (version) DO NOTHING"
    )


def migration_sql(transaction: bool = True) -> str:
    """The complete, re-runnable migration script for Postgres/Supabase.

    ``transaction=False`` leaves out ``BEGIN``/``COMMIT`` for tools that wrap each migration
    file in their own transaction (the Supabase CLI does).
    """
    parts = [
        f"-- pms schema, version {latest_version()} (generated by `pms db sql`).",
        "-- Apply with `pms db migrate` (uses PMS_DATABASE_URL), with psql, in the Supabase SQL",
        "-- editor, or as a file under supabase/migrations/. Re-running it changes nothing.",
        *(["BEGIN;"] if transaction else []),
        "",
        f"{_VERSION_DDL};",
    ]
    for step in STEPS:
        parts += ["", f"-- version {step.version}: {step.description}"]
        for statement in step.statements:
            if statement == _CURRENT_ORG:
                parts += ["", _RLS_HEADER]
            parts.append(f"{statement};")
        parts.append(f"{_record(step)};")
    parts += ["", "COMMIT;", ""] if transaction else [""]
    return "\n".join(parts)


def current_version(conn: Any) -> int | None:
    """The highest applied version, or None when the version table does not exist."""
    row = conn.execute("SELECT to_regclass(%s)", [VERSION_TABLE]).fetchone()
    if row is None or row[0] is None:
        return None
    row = conn.execute(f"SELECT max(version) FROM {VERSION_TABLE}").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def apply(conn: Any) -> list[int]:
    """Apply the missing steps to a psycopg connection; returns the versions applied.

    One transaction: either every missing step lands, or none does. Concurrent callers wait on
    an advisory lock, then find nothing left to do.
    """
    applied: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [ADVISORY_LOCK_ID])
        conn.execute(_VERSION_DDL)
        have = current_version(conn) or 0
        for step in STEPS:
            if step.version <= have:
                continue
            for statement in step.statements:
                conn.execute(statement)
            conn.execute(_record(step))
            applied.append(step.version)
    return applied


assert latest_version() == SCHEMA_VERSION, "append a migration step when SCHEMA_VERSION changes"


def require_current(version: int | None, where: str, description: str, hint: str) -> None:
    """Raise ``schema_missing`` / ``schema_outdated`` unless the schema is at this pms's version.

    Shared by every store that does not create its schema on open (Postgres, Supabase).
    """
    from pms_cli.errors import StoreError

    if not version:
        raise StoreError(
            f"the {where} at {description} has no pms schema", hint=hint, code="schema_missing"
        )
    if version < SCHEMA_VERSION:
        raise StoreError(
            f"the pms schema at {description} is at version {version}; "
            f"this pms needs version {SCHEMA_VERSION}",
            hint=hint,
            code="schema_outdated",
        )
