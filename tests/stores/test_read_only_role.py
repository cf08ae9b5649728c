"""A database role that cannot see the pms rows is named as the problem, with the grant or key
it needs, instead of "No connections yet" (issue 15, on the real PostgreSQL server)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from bench.pgtemp import TempPostgres
from pms_cli.errors import EXIT_CONFIG, EXIT_FAILED
from pms_cli.stores.postgres import PostgresStore
from tests.stores.test_store_contract import make_conn

pytestmark = pytest.mark.postgres


@pytest.fixture
def db(pg_server: TempPostgres) -> Iterator[str]:
    """A migrated database of its own with one connection written by its owner."""
    url = pg_server.create_database(f"ro_{uuid.uuid4().hex[:10]}")
    store = PostgresStore(url, check_schema=False)
    store.migrate()
    store.add_connection(make_conn("c-ro", org="org-a"))
    store.close()
    yield url


def reader(pg_server: TempPostgres, db: str, *, grant: bool, org: str | None = None) -> str:
    """A login role on ``db``: SELECT granted or not, pinned to ``org`` or not."""
    name = f"reader_{uuid.uuid4().hex[:8]}"
    password = "reader-pw-0123"
    dbname = db.rsplit("/", 1)[1].split("?")[0]
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(name), sql.Literal(password)
            )
        )
        if grant:
            conn.execute(
                sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(
                    sql.Identifier(name)
                )
            )
        if org:
            conn.execute(
                sql.SQL("ALTER ROLE {} SET pms.organization_id = {}").format(
                    sql.Identifier(name), sql.Literal(org)
                )
            )
    return pg_server.url(dbname, user=name, password=password)


@pytest.fixture
def as_role(pms: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    def run(url: str, *args: str) -> Any:
        monkeypatch.setenv("PMS_DATABASE_URL", url)
        return pms(*args)

    return run


def test_a_role_under_row_level_security_without_an_organization_is_told_what_it_needs(
    pg_server: TempPostgres, db: str, as_role: Any
) -> None:
    url = reader(pg_server, db, grant=True)
    for args in (("status",), ("sync", "--connection", "c-ro"), ("logs",)):
        result = as_role(url, *args)
        assert result.code == EXIT_CONFIG, (args, result.stdout, result.stderr)
        assert "row-level security" in result.stderr
        assert "service_role" in result.stderr and "ALTER ROLE" in result.stderr
        assert "No connections yet" not in result.stdout


def test_a_role_without_select_is_told_the_grant(
    pg_server: TempPostgres, db: str, as_role: Any
) -> None:
    url = reader(pg_server, db, grant=False)
    result = as_role(url, "status")
    assert result.code == EXIT_CONFIG, result.stderr
    assert "permission denied" in result.stderr
    assert "GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader_" in result.stderr


def test_a_reader_pinned_to_its_organization_sees_its_connections(
    pg_server: TempPostgres, db: str, as_role: Any
) -> None:
    url = reader(pg_server, db, grant=True, org="org-a")
    result = as_role(url, "status", "--json")
    # Exit 1: c-ro's credentials are not set here, so it needs attention; no permission error.
    assert result.code == EXIT_FAILED, result.stderr
    assert [c["connection_id"] for c in result.json()["connections"]] == ["c-ro"]


def test_the_owner_passes_the_check(db: str, as_role: Any) -> None:
    result = as_role(db, "status", "--json")
    assert result.code == EXIT_FAILED, result.stderr  # c-ro needs credentials, nothing else
    assert [c["credentials"] for c in result.json()["connections"]] == ["missing"]
