"""Hardening of the CLI surface (issue 15): overlapping runs, hostile names, bad input."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from pms_cli.cli import output
from pms_cli.errors import EXIT_CONFIG, EXIT_LOCKED
from pms_cli.stores.sqlite import SqliteStore
from tests.cli.test_cli import connect
from tests.conftest import LiveSandbox, MemoryKeyring


def _store(tmp_path: Path) -> SqliteStore:
    return SqliteStore(tmp_path / "data" / "pms.sqlite3")


def _hold_lock_elsewhere(tmp_path: Path, connection_id: str) -> None:
    store = _store(tmp_path)
    with store._tx() as cur:
        cur.execute(
            "INSERT INTO pms_locks (connection_id, owner, host, pid, expires_at) "
            "VALUES (?, 'other-run', 'another-host', 1, ?)",
            [connection_id, time.time() + 3600],
        )
    store.close()


def test_sync_all_whose_only_failures_are_locked_connections_exits_5_with_its_summary(
    pms: Any, live_sandbox: LiveSandbox, memory_keyring: MemoryKeyring, tmp_path: Path
) -> None:
    busy = connect(pms, live_sandbox)
    free = connect(pms, live_sandbox, "--new")  # the same account again: a second connection
    _hold_lock_elsewhere(tmp_path, busy)
    result = pms("sync", "--all", "--json")
    assert result.code == EXIT_LOCKED, result.stderr
    summary = result.json()
    assert summary["status"] == "locked"
    statuses = {c["connection_id"]: c["status"] for c in summary["connections"]}
    assert statuses == {busy: "locked", free: "succeeded"}


HOSTILE = "\x1b]0;pwned\x07\x1b[2J[bold red]Villa[/] \x9b31m"


def _plant_hostile_names(tmp_path: Path, connection_id: str) -> None:
    store = _store(tmp_path)
    store.update_connection(connection_id, display_name=HOSTILE, last_error=HOSTILE)
    with store._tx() as cur:
        cur.execute("UPDATE pms_property_mappings SET name = ?", [HOSTILE])
        cur.execute(
            "INSERT INTO pms_sync_log (id, connection_id, organization_id, trigger, status, "
            "started_at, full_sync, requests, retries, rate_limit_waits, error_code, "
            "error_message, error_hint) VALUES ('r-hostile', ?, 'org', 'cli', 'failed', "
            "'2030-01-01T00:00:00+00:00', 0, 0, 0, 0, 'x', ?, ?)",
            [connection_id, HOSTILE, HOSTILE],
        )
    store.close()


def test_names_from_providers_and_users_are_shown_escaped_everywhere(
    pms: Any,
    live_sandbox: LiveSandbox,
    memory_keyring: MemoryKeyring,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Wide consoles, so no table cell folds the name across lines.
    monkeypatch.setenv("COLUMNS", "400")
    monkeypatch.setattr(output, "_consoles", {})
    for name in ("out", "err"):
        monkeypatch.delitem(vars(output), name, raising=False)
    conn = connect(pms, live_sandbox)
    assert pms("sync", "--connection", conn).code == 0
    _plant_hostile_names(tmp_path, conn)
    for args in (("status",), ("map", "--list"), ("logs",)):
        result = pms(*args)
        # The planted run failed: status says the connection needs attention (exit 1).
        assert result.code == (1 if args == ("status",) else 0), result.stderr
        shown = result.stdout + result.stderr
        assert "\x1b" not in shown and "\x07" not in shown and "\x9b" not in shown, args
        assert "\\x1b" in shown, args  # shown, not interpreted
        assert "[bold red]Villa[/]" in shown, args  # markup shown as text


# --- bad input is a usage or config error (exit 2) with a hint, never "a bug" --------------


def assert_usage_error(result: Any, *words: str) -> None:
    assert result.code == EXIT_CONFIG, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert "bug" not in result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("logs", "--limit", "99999999999999999999999"),
        ("logs", "--webhooks", "--limit", "99999999999999999999999"),
        ("sandbox", "serve", "--port", "-1"),
        ("sandbox", "serve", "--port", "70000"),
    ],
)
def test_out_of_range_numbers_are_usage_errors(pms: Any, args: tuple[str, ...]) -> None:
    assert_usage_error(pms(*args), "Invalid value")


def test_a_non_utf8_argument_is_a_usage_error_that_does_not_echo_it(pms: Any) -> None:
    arg = os.fsdecode(b"s3cret-caf\xe9")  # as Python receives a Latin-1 argv byte
    result = pms("sync", "--connection", arg)
    assert_usage_error(result, "Error:", "Hint:", "not valid UTF-8", "after --connection")
    assert "s3cret" not in result.stderr


def test_a_non_utf8_pms_environment_variable_is_a_config_error(
    pms: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PMS_ORGANIZATION_ID", os.fsdecode(b"org-\xff"))
    assert_usage_error(pms("status"), "PMS_ORGANIZATION_ID", "Hint:")


def test_a_non_utf8_config_file_is_a_config_error_naming_it(pms: Any, tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.toml").write_bytes(b'organization_id = "caf\xe9"\n')
    assert_usage_error(pms("status"), "config.toml", "UTF-8", "Hint:")


@pytest.mark.parametrize("value", ["sk-abc\ndef", "sk-abc\tdef", "sk-\x00abc"])
def test_a_credential_with_a_control_character_is_rejected_at_connect_without_a_request(
    pms: Any, live_sandbox: LiveSandbox, memory_keyring: MemoryKeyring, value: str
) -> None:
    args = live_sandbox.connect_args("hostaway")
    secret = args.index("--client-secret") + 1
    args[secret] = value
    result = pms(*args)
    assert_usage_error(result, "client_secret", "Hint:")
    assert value not in result.stderr
    assert pms("status", "--json").json()["connections"] == []


def test_an_api_key_with_a_line_break_in_the_environment_fails_the_sync_as_config(
    pms: Any,
    live_sandbox: LiveSandbox,
    memory_keyring: MemoryKeyring,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    conn = connect(pms, live_sandbox)
    monkeypatch.setenv("HOSTAWAY_CLIENT_SECRET", "abc\ndef")
    monkeypatch.setenv(
        "HOSTAWAY_ACCOUNT_ID", live_sandbox.mounted["hostaway"].credentials["account_id"]
    )
    result = pms("sync", "--connection", conn, "--json")
    assert result.code == EXIT_CONFIG, result.stderr
    error = result.json()["connections"][0]["error"]
    assert "line break" in error["message"] and "HOSTAWAY_CLIENT_SECRET" in error["message"]
    assert result.json()["connections"][0]["requests"] == 0
