"""Worker tests run on the real temporary PostgreSQL of tests/stores (bench/pgtemp.py).

The fixtures are re-exported from tests/stores/conftest.py; this directory gets its own
session server (a few seconds), and every test starts from truncated tables, Procrastinate's
included. Clocks are real: Procrastinate compares ``scheduled_at`` with the database's
``now()``; the relaxed sandbox never makes a client wait, so nothing sleeps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest

from pms_cli.config import load_settings
from pms_cli.http.ratelimit import LimiterRegistry
from pms_cli.http.tokens import MemoryTokenCache
from pms_cli.sandbox.server import MountedSandbox, SandboxOptions
from pms_cli.stores.base import Connection
from pms_cli.stores.migrations import PROCRASTINATE_TABLES
from pms_cli.stores.postgres import PostgresStore
from pms_cli.sync.session import Runtime
from tests.stores.conftest import fresh_db, pg_migrated_url, pg_server, truncate_all

__all__ = ["fresh_db", "pg_migrated_url", "pg_server"]


@pytest.fixture
def pg_url(pg_migrated_url: str) -> str:
    truncate_all(pg_migrated_url)
    with psycopg.connect(pg_migrated_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {', '.join(PROCRASTINATE_TABLES)} CASCADE")
    return pg_migrated_url


@pytest.fixture
def open_store(pg_url: str) -> Iterator[Callable[[], PostgresStore]]:
    """Opens PostgresStores (one database session each, like separate worker processes)."""
    opened: list[PostgresStore] = []

    def make() -> PostgresStore:
        opened.append(PostgresStore(pg_url))
        return opened[-1]

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def hostaway() -> MountedSandbox:
    from pms_cli.sandbox.hostaway import build_sandbox

    return build_sandbox(SandboxOptions(relaxed=True, listings=3, reservations=40))


def add_connection(store: Any, sandbox: MountedSandbox, conn_id: str, **fields: Any) -> Connection:
    conn = Connection(
        id=conn_id,
        organization_id="org-test",
        provider=sandbox.provider,
        display_name=conn_id,
        status=fields.pop("status", "active"),
        account_ref=sandbox.credentials.get("account_id", ""),
        secret_location="env",
        settings={
            "public": {"account_id": sandbox.credentials["account_id"]},
            "base_url": fields.pop("base_url", f"http://sandbox{sandbox.api_path}"),
        },
        **fields,
    )
    store.add_connection(conn)
    return conn


def runtime_for(sandbox: MountedSandbox, **settings: Any) -> Runtime:
    return Runtime(
        load_settings(**settings),
        limiters=LimiterRegistry(),
        transport=httpx.ASGITransport(app=sandbox.app),
        token_cache=MemoryTokenCache(),
        env={"HOSTAWAY_CLIENT_SECRET": sandbox.credentials["client_secret"]},
    )
