"""PostgreSQL specifics on a real server: the migration, row-level security, failure modes, and
the sync engine writing the same rows into Postgres as into SQLite."""

from __future__ import annotations

import subprocess
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import errors as pgerrors

from bench.pgtemp import TempPostgres, free_port
from pms_cli.errors import EXIT_CONFIG, StoreError
from pms_cli.models import Booking, BookingStatus, Property
from pms_cli.stores import migrations
from pms_cli.stores.base import Connection, SyncRun
from pms_cli.stores.postgres import PostgresStore
from pms_cli.stores.schema import SCHEMA_VERSION, TABLES
from pms_cli.stores.sqlite import SqliteStore
from tests.conftest import SharedClock
from tests.helpers import Harness

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
ALL_TABLES = [t.name for t in TABLES] + [migrations.VERSION_TABLE]
ALL_VERSIONS = [step.version for step in migrations.STEPS]


def snapshot(url: str) -> dict[str, Any]:
    """Everything the migration defines, in a comparable form."""
    with psycopg.connect(url) as conn:

        def q(sql: str) -> list[tuple[Any, ...]]:
            return conn.execute(sql).fetchall()

        return {
            "columns": q(
                "SELECT table_name, column_name, data_type, is_nullable, column_default "
                "FROM information_schema.columns WHERE table_schema = 'public' "
                "ORDER BY table_name, ordinal_position"
            ),
            "indexes": q(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
                "ORDER BY indexname"
            ),
            "policies": q(
                "SELECT tablename, policyname, cmd, roles::text, qual FROM pg_policies "
                "ORDER BY tablename, policyname"
            ),
            "rls": q(
                "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
                "WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace ORDER BY relname"
            ),
            "functions": q(
                "SELECT proname, prosrc FROM pg_proc "
                "WHERE pronamespace = 'public'::regnamespace ORDER BY proname"
            ),
            "versions": q("SELECT version, description FROM pms_schema_version ORDER BY version"),
        }


# --- the migration -------------------------------------------------------------------------


def test_migration_sql_is_one_transaction_covering_every_table() -> None:
    sql = migrations.migration_sql()
    assert sql.lstrip().startswith("-- pms schema")
    assert "\nBEGIN;\n" in sql and sql.rstrip().endswith("COMMIT;")
    for table in ALL_TABLES:
        assert f"CREATE TABLE IF NOT EXISTS {table}" in sql
        assert f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;" in sql
    assert "request.jwt.claims" in sql and "pms.organization_id" in sql
    assert migrations.latest_version() == SCHEMA_VERSION


def test_migrate_creates_the_schema_and_a_second_run_changes_nothing(fresh_db: str) -> None:
    store = PostgresStore(fresh_db, check_schema=False)
    assert store.schema_version() is None
    assert store.migrate() == ALL_VERSIONS
    first = snapshot(fresh_db)
    assert store.migrate() == []
    assert snapshot(fresh_db) == first
    assert store.schema_version() == SCHEMA_VERSION
    store.close()
    assert [r[0] for r in first["versions"]] == ALL_VERSIONS
    assert all(row[1] and not row[2] for row in first["rls"]), first["rls"]
    tables = set(ALL_TABLES) | set(migrations.PROCRASTINATE_TABLES)  # `pms worker`'s queue
    assert {r[0] for r in first["rls"]} == tables
    PostgresStore(fresh_db).close()  # opens without complaint now


def test_printed_sql_run_twice_with_psql_gives_the_same_schema_as_migrate(
    pg_server: TempPostgres, fresh_db: str
) -> None:
    by_psql = pg_server.create_database(f"p_{uuid.uuid4().hex[:12]}")
    script = migrations.migration_sql()
    for _ in range(2):
        subprocess.run(
            [str(pg_server.bindir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", by_psql],
            input=script,
            text=True,
            check=True,
            capture_output=True,
        )
    store = PostgresStore(fresh_db, check_schema=False)
    store.migrate()
    store.close()
    assert snapshot(by_psql) == snapshot(fresh_db)


def test_an_older_database_gets_only_the_new_steps(
    fresh_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = PostgresStore(fresh_db, check_schema=False)
    assert store.migrate() == ALL_VERSIONS
    store.upsert_records(_conn(store, "c1", "org-a"), "booking", [_booking(1)], T0)
    new = ALL_VERSIONS[-1] + 1
    step = migrations.Step(
        new, "bookings.notes", ("ALTER TABLE pms_bookings ADD COLUMN IF NOT EXISTS notes text",)
    )
    monkeypatch.setattr(migrations, "STEPS", [*migrations.STEPS, step])
    assert store.migrate() == [new]
    assert store.migrate() == []
    assert store.schema_version() == new
    assert store.counts("c1")["booking"] == 1  # data kept across the upgrade
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT notes FROM pms_bookings").fetchall() == [(None,)]
    store.close()


def test_concurrent_migrations_apply_once(fresh_db: str) -> None:
    results: list[list[int]] = []

    def migrate() -> None:
        store = PostgresStore(fresh_db, check_schema=False)
        results.append(store.migrate())
        store.close()

    threads = [threading.Thread(target=migrate) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [[], [], ALL_VERSIONS]


# --- opening: unreachable, missing or outdated schema --------------------------------------


def test_unreachable_server_is_a_store_error_without_the_password() -> None:
    url = f"postgresql://pms:hunter2-secret@127.0.0.1:{free_port()}/pms"
    with pytest.raises(StoreError) as info:
        PostgresStore(url, connect_timeout=3)
    err = info.value
    assert err.exit_code == EXIT_CONFIG
    assert err.code == "store_unreachable"
    assert "127.0.0.1" in err.message
    assert "PMS_DATABASE_URL" in err.hint
    assert "hunter2-secret" not in err.message + err.hint


def test_wrong_password_is_a_store_error(pg_server: TempPostgres) -> None:
    url = pg_server.url(password="wrong-password-123")
    with pytest.raises(StoreError) as info:
        PostgresStore(url)
    assert "password authentication failed" in info.value.message
    assert "wrong-password-123" not in info.value.message


def test_description_redacts_the_password(pg_migrated_url: str, pg_server: TempPostgres) -> None:
    store = PostgresStore(pg_migrated_url)
    assert pg_server.password not in store.description
    assert store.description.startswith("postgresql://postgres:***@127.0.0.1:")
    store.close()


def test_missing_schema_names_pms_db_migrate(fresh_db: str) -> None:
    with pytest.raises(StoreError) as info:
        PostgresStore(fresh_db)
    err = info.value
    assert err.code == "schema_missing"
    assert err.exit_code == EXIT_CONFIG
    assert "pms db migrate" in err.hint and "pms db sql" in err.hint
    with psycopg.connect(fresh_db) as conn:  # opening created nothing
        assert conn.execute("SELECT to_regclass('pms_connections')").fetchone() == (None,)


def test_outdated_schema_names_pms_db_migrate(
    pg_migrated_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(migrations, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(StoreError) as info:
        PostgresStore(pg_migrated_url)
    assert info.value.code == "schema_outdated"
    assert "pms db migrate" in info.value.hint


def test_a_table_dropped_under_a_running_store_is_a_store_error(fresh_db: str) -> None:
    store = PostgresStore(fresh_db, check_schema=False)
    store.migrate()
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("DROP TABLE pms_sync_state")
    with pytest.raises(StoreError) as info:
        store.cursors("c1")
    assert "pms db migrate" in info.value.hint
    store.close()


def test_a_lost_connection_rolls_back_then_reconnects(pg_store: PostgresStore) -> None:
    conn = _conn(pg_store, "c1", "org-a")
    pid = pg_store._db.info.backend_pid
    with psycopg.connect(pg_store.url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    with pytest.raises(StoreError) as info:
        pg_store.upsert_records(conn, "booking", [_booking(1)], T0)
    assert info.value.code == "store_unreachable"
    assert "half-written" in info.value.hint
    assert pg_store.counts("c1")["booking"] == 0  # reconnected; nothing was written
    assert pg_store.upsert_records(conn, "booking", [_booking(1)], T0) == 1


# --- row-level security --------------------------------------------------------------------


def _conn(store: PostgresStore, cid: str, org: str) -> Connection:
    conn = Connection(
        id=cid,
        organization_id=org,
        provider="hostaway",
        display_name=cid,
        status="active",
        account_ref="",
        secret_location="env",
    )
    store.add_connection(conn)
    return conn


def _booking(i: int) -> Booking:
    return Booking(external_id=str(i), status=BookingStatus.CONFIRMED, raw={"id": i})


def _fill(store: PostgresStore, cid: str, org: str) -> None:
    conn = _conn(store, cid, org)
    store.upsert_records(conn, "property", [Property(external_id="p1", name="x")], T0)
    store.upsert_records(conn, "booking", [_booking(1), _booking(2)], T0)
    store.set_cursor(cid, "bookings", "cursor")
    store.start_run(
        SyncRun(
            id=f"run-{cid}",
            connection_id=cid,
            organization_id=org,
            trigger="cli",
            status="running",
            started_at=T0,
            full_sync=True,
        )
    )
    store.acquire_lock(cid, f"run-{cid}", 3600)
    store.set_checkpoint(cid, "bookings", {"position": {"page": 2}})
    store.token_cache_put(f"tok-{cid}", b"ciphertext", None)
    with store._tx() as cur:
        cur.execute(
            "INSERT INTO pms_webhook_events (id, provider, connection_id, organization_id, "
            "dedupe_key, payload, received_at, status) "
            "VALUES (%s, 'hostaway', %s, %s, %s, '{}', now(), 'pending')",
            [f"ev-{cid}", cid, org, f"k-{cid}"],
        )


def test_rls_scopes_a_reader_role_to_its_organization(
    pg_store: PostgresStore, pg_server: TempPostgres, pg_migrated_url: str
) -> None:
    _fill(pg_store, "c-a", "org-a")
    _fill(pg_store, "c-b", "org-b")
    role = f"reader_{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    dbname = pg_migrated_url.rsplit("/", 1)[1]
    with psycopg.connect(pg_migrated_url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        admin.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
        admin.execute(f"GRANT INSERT, UPDATE, DELETE ON pms_bookings TO {role}")
    reader_url = pg_server.url(dbname, user=role, password=password)

    def visible(conn: psycopg.Connection[Any]) -> dict[str, set[str]]:
        out = {}
        for table in ALL_TABLES:
            key = "organization_id" if table not in _CONN_KEYED else "connection_id"
            if table == migrations.VERSION_TABLE:
                key = "version::text"
            elif table == "pms_token_cache":
                key = "key"
            query = f"SELECT {key} FROM {table}"  # noqa: S608 - fixed identifiers
            out[table] = {r[0] for r in conn.execute(query).fetchall()}
        return out

    with psycopg.connect(reader_url, autocommit=True) as reader:
        nothing = visible(reader)  # no organization set: no tenant rows at all
        assert all(not rows for t, rows in nothing.items() if t != migrations.VERSION_TABLE)
        assert nothing[migrations.VERSION_TABLE] == {str(v) for v in ALL_VERSIONS}

        reader.execute("SET pms.organization_id = 'org-a'")
        seen = visible(reader)
        for table in _ORG_KEYED:
            assert seen[table] == {"org-a"}, table
        assert seen["pms_sync_state"] == seen["pms_locks"] == {"c-a"}
        assert seen["pms_sync_checkpoints"] == {"c-a"}
        assert seen["pms_token_cache"] == set()  # encrypted tokens: writers only
        assert reader.execute("SELECT count(*) FROM pms_bookings").fetchone() == (2,)

        # Supabase / PostgREST: the verified JWT's claim wins over the setting.
        reader.execute(
            "SELECT set_config('request.jwt.claims', %s, false)", ['{"organization_id":"org-b"}']
        )
        assert visible(reader)["pms_bookings"] == {"org-b"}

        with pytest.raises(pgerrors.InsufficientPrivilege):  # readers never write
            reader.execute(
                "INSERT INTO pms_bookings (connection_id, external_id, organization_id, status, "
                "synced_at) VALUES ('c-b', 'x', 'org-b', 'confirmed', now())"
            )
        assert reader.execute("DELETE FROM pms_bookings").rowcount == 0

    # A reader role behind PostgresStore gets a clear error, not a traceback.
    reader_store = PostgresStore(reader_url)
    with pytest.raises(StoreError) as info:
        reader_store.upsert_records(
            Connection("c-b", "org-b", "hostaway", "", "active", "", "env"),
            "booking",
            [_booking(9)],
            T0,
        )
    reader_store.close()
    assert info.value.code == "store_permission"
    assert pg_store.counts("c-b")["booking"] == 2  # the owner still sees everything


_CONN_KEYED = ("pms_sync_state", "pms_locks", "pms_sync_checkpoints")
_ORG_KEYED = (
    "pms_connections",
    "pms_property_mappings",
    "pms_sync_log",
    "pms_properties",
    "pms_bookings",
    "pms_webhook_events",
)


# --- the engine writes the same rows into Postgres as into SQLite --------------------------


def _dump(store: Any, cid: str) -> dict[str, Any]:
    return {
        "rows": {k: store.fetch_rows(k, cid) for k in ("property", "booking", "guest")},
        "counts": store.counts(cid),
        "cursors": store.cursors(cid),
        "mappings": store.list_mappings(cid),
    }


def test_hostaway_sync_writes_identical_rows_to_postgres_and_sqlite(
    tmp_path: Path, clock: SharedClock, pg_store: PostgresStore
) -> None:
    h = Harness("hostaway", tmp_path, clock, listings=9, reservations=1200)
    sqlite = h.store
    assert isinstance(sqlite, SqliteStore)
    pg_store.add_connection(h.conn)

    def sync_both(**options: Any) -> None:
        for store in (sqlite, pg_store):
            h.store = store  # type: ignore[assignment]  # Harness types it as SQLite
            before = clock.time()
            result = h.sync(**options)
            assert result.status == "succeeded", result.error
            clock._now = before  # both runs see the same clock → same synced_at and cursors

    sync_both()
    first = _dump(sqlite, h.conn.id)
    assert first["counts"]["booking"] == 1200
    assert _dump(pg_store, h.conn.id) == first

    clock.advance(3600)
    h.state.modify_reservations(25)
    h.state.add_reservations(5)
    h.state.delete_listing(next(iter(h.state.listings)))
    sync_both()
    clock.advance(60)
    sync_both(full=True)
    second = _dump(sqlite, h.conn.id)
    assert second["counts"]["booking"] == 1205
    assert second["counts"]["property"] == 8
    assert _dump(pg_store, h.conn.id) == second
    assert _runs(pg_store, h.conn.id) == _runs(sqlite, h.conn.id)


def _runs(store: Any, cid: str) -> list[Any]:
    # Request counts differ (the first run mints the token the others reuse); outcomes do not.
    keep = ("status", "fetched", "written", "deleted")
    return [
        (r.status, {res: {k: c[k] for k in keep} for res, c in sorted(r.counts.items())})
        for r in store.list_runs(cid)
    ]


def test_migration_sql_without_transaction_for_the_supabase_cli() -> None:
    sql = migrations.migration_sql(transaction=False)
    assert "BEGIN;" not in sql and "COMMIT;" not in sql
    assert sql.replace("\n", "") in migrations.migration_sql().replace("\n", "").replace(
        "BEGIN;", ""
    ).replace("COMMIT;", "")
