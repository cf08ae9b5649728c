"""`pms db sql` / `pms db migrate` and every command against a real PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from pms_cli.stores import migrations
from tests.conftest import LiveSandbox, MemoryKeyring

pytestmark = pytest.mark.postgres


def test_db_sql_prints_the_migration_with_rls(pms: Any) -> None:
    result = pms("db", "sql")
    assert result.code == 0 and result.stderr == ""
    assert "CREATE TABLE IF NOT EXISTS pms_bookings" in result.stdout
    assert "ENABLE ROW LEVEL SECURITY" in result.stdout.upper()
    assert "BEGIN" in result.stdout
    assert "BEGIN;" not in pms("db", "sql", "--no-transaction").stdout


def test_commands_against_postgres_after_migrate(
    pms: Any,
    live_sandbox: LiveSandbox,
    memory_keyring: MemoryKeyring,
    fresh_db: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PMS_DATABASE_URL", fresh_db)
    before = pms("status")
    assert before.code == 2 and "pms db migrate" in before.stderr
    migrated = pms("db", "migrate", "--json")
    assert migrated.code == 0, migrated.stderr
    assert migrated.json()["applied"] == [step.version for step in migrations.STEPS]
    assert pms("db", "migrate", "--json").json()["applied"] == []
    conn = pms(*live_sandbox.connect_args("hostaway"), "--json").json()["connection_id"]
    synced = pms("sync", "-c", conn, "--json")
    assert synced.code == 0, synced.stderr
    status = pms("status", "--json").json()
    assert status["store"].startswith("postgresql://") and "***" in status["store"]
    assert status["connections"][0]["counts"]["booking"] == 60


def test_unreachable_postgres_is_exit_2_with_a_hint(
    pms: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PMS_DATABASE_URL", "postgresql://pms:pw@127.0.0.1:1/none")
    result = pms("status")
    assert result.code == 2
    assert "Error:" in result.stderr and "Hint:" in result.stderr
    assert "pw@" not in result.stderr
