"""Stores on real databases: a SQLite file, and a throwaway PostgreSQL started for the session.

The PostgreSQL server comes from ``bench/pgtemp.py`` (shared with the write benchmark). When its
binaries are missing the fixture FAILS: the Postgres store must not go untested silently.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from bench.pgtemp import PostgresUnavailable, TempPostgres
from pms_cli.stores.base import Store
from pms_cli.stores.postgres import PostgresStore
from pms_cli.stores.schema import TABLES
from pms_cli.stores.sqlite import SqliteStore
from tests.stores.postgrest_double import DoubleBackedStore, PostgrestDouble

# Not a real key: the double checks that the store sends exactly this one.
DOUBLE_SERVICE_KEY = "sb_secret_double-0123456789abcdef"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[TempPostgres]:
    try:
        server = TempPostgres().start()
    except PostgresUnavailable as exc:
        pytest.fail(f"cannot start the test PostgreSQL server: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pg_migrated_url(pg_server: TempPostgres) -> str:
    """One database with the migration applied, shared by the store tests (truncated per test)."""
    url = pg_server.create_database("pms_store_tests")
    store = PostgresStore(url, check_schema=False)
    try:
        store.migrate()
    finally:
        store.close()
    return url


@pytest.fixture
def fresh_db(pg_server: TempPostgres) -> str:
    """An empty database of its own (no schema)."""
    return pg_server.create_database(f"t_{uuid.uuid4().hex[:12]}")


def truncate_all(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE " + ", ".join(t.name for t in TABLES))


@pytest.fixture
def pg_store(pg_migrated_url: str) -> Iterator[PostgresStore]:
    truncate_all(pg_migrated_url)
    store = PostgresStore(pg_migrated_url)
    yield store
    store.close()


@pytest.fixture(scope="session")
def postgrest_double(pg_migrated_url: str) -> Iterator[PostgrestDouble]:
    """The PostgREST test double over the migrated test database (in-process transport)."""
    double = PostgrestDouble(pg_migrated_url, DOUBLE_SERVICE_KEY)
    yield double
    double.close()


@pytest.fixture
def supabase_store(
    postgrest_double: PostgrestDouble, pg_migrated_url: str
) -> Iterator[DoubleBackedStore]:
    truncate_all(pg_migrated_url)
    postgrest_double.log.clear()
    postgrest_double.faults.clear()
    store = postgrest_double.store()
    yield store
    store.close()


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("supabase", marks=pytest.mark.postgres),
    ]
)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        sqlite = SqliteStore(tmp_path / "store.sqlite3")
        yield sqlite
        sqlite.close()
    elif request.param == "postgres":
        yield request.getfixturevalue("pg_store")
    else:
        yield request.getfixturevalue("supabase_store")
