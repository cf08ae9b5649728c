"""Day-to-day CLI behaviour: dry runs that say so, --verbose request logs without secrets,
--version, providers without `None`."""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from pms_cli.sandbox.hostaway import SANDBOX_CLIENT_SECRET
from tests.cli.test_cli import connect
from tests.conftest import LiveSandbox, MemoryKeyring


def test_a_dry_run_says_would_write_in_the_table_and_its_title(
    pms: Any, live_sandbox: LiveSandbox, memory_keyring: MemoryKeyring
) -> None:
    from pms_cli.cli.sync_cmd import results_table
    from pms_cli.sync.engine import SyncResult

    conn = connect(pms, live_sandbox)
    result = pms("sync", "-c", conn, "--dry-run", "--progress", "none")
    assert result.code == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert "would write" in header.split("\t") and "written" not in header.split("\t")
    assert any("booking 60" in row for row in rows)
    assert "Dry run: nothing was written" in result.stderr
    assert pms("status", "--json").json()["connections"][0]["counts"].get("booking", 0) == 0
    title = results_table([SyncResult("c", "hostaway", "r")], dry_run=True).title
    assert str(title).startswith("Dry run: nothing written")


def test_verbose_logs_every_request_with_status_and_duration_and_no_secret(
    pms: Any, live_sandbox: LiveSandbox, memory_keyring: MemoryKeyring
) -> None:
    conn = connect(pms, live_sandbox)
    result = pms("-v", "sync", "-c", conn, "--json", "--progress", "none")
    assert result.code == 0, result.stderr
    json.loads(result.stdout)  # stdout is still one JSON object
    lines = result.stderr.splitlines()
    listing = r"pms\.http hostaway GET http://127\.0\.0\.1:\d+/hostaway/v1/listings\?\S* -> 200 in"
    assert any(re.search(listing, line) for line in lines), lines
    assert any("/reservations?" in line and "-> 200 in" in line for line in lines), lines
    tokens = [p for (service, _), p in memory_keyring.passwords.items() if service == "pms-token"]
    token = json.loads(tokens[0])["v"]
    assert SANDBOX_CLIENT_SECRET not in result.stderr and token not in result.stderr
    quiet = pms("sync", "-c", conn, "--json", "--progress", "none")
    assert quiet.stderr == ""  # without -v: nothing


def test_pms_log_level_turns_on_the_same_logs_and_rejects_unknown_levels(
    pms: Any, live_sandbox: LiveSandbox, memory_keyring: MemoryKeyring, monkeypatch: Any
) -> None:
    conn = connect(pms, live_sandbox)
    monkeypatch.setenv("PMS_LOG_LEVEL", "info")
    result = pms("sync", "-c", conn, "--json", "--progress", "none")
    assert result.code == 0 and "GET http://127.0.0.1" in result.stderr
    monkeypatch.setenv("PMS_LOG_LEVEL", "chatty")
    bad = pms("status")
    assert bad.code == 2
    assert "Error: PMS_LOG_LEVEL='chatty' is not a log level" in bad.stderr
    assert "Hint: Use one of: debug, info, warning." in bad.stderr


def test_version_names_python_and_the_platform(pms: Any) -> None:
    result = pms("--version")
    assert result.code == 0
    assert re.fullmatch(r"pms \S+ \(Python 3\.\d+\.\d+, .+\)\n", result.stdout)
    assert f"Python {sys.version_info.major}.{sys.version_info.minor}" in result.stdout


def test_providers_never_prints_none(pms: Any) -> None:
    result = pms("providers")
    assert result.code == 0
    assert "None" not in result.stdout
    assert "--invite-code" in result.stdout  # a credential without an env var: its flag only


def test_sync_option_mistakes_are_usage_errors_before_any_run_is_logged(
    pms: Any, live_sandbox: LiveSandbox, memory_keyring: MemoryKeyring
) -> None:
    conn = connect(pms, live_sandbox)
    both = pms("sync", "--all", "-c", conn)
    assert both.code == 2 and "Error: --all and --connection exclude each other" in both.stderr
    unknown = pms("sync", "--all", "--provider", "airbnb")
    assert unknown.code == 2 and "Error: unknown provider 'airbnb'" in unknown.stderr
    assert "hostaway" in unknown.stderr  # the hint lists the real ones
    resource = pms("sync", "-c", conn, "--resource", "reviews")
    assert resource.code == 2 and "has no resource 'reviews'" in resource.stderr
    since = pms("sync", "-c", conn, "--since", "yesterday")
    assert since.code == 2 and "12h, 3d or 2w" in since.stderr
    assert pms("logs", "--json").json() == []  # nothing was started


def test_since_takes_an_age_and_until_leaves_out_later_changes_without_moving_the_cursor(
    pms: Any, live_sandbox: LiveSandbox, memory_keyring: MemoryKeyring
) -> None:
    from datetime import UTC, datetime, timedelta

    from pms_cli.cli.sync_cmd import parse_when

    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    assert parse_when("3d", "--since", now) == now - timedelta(days=3)
    assert parse_when("12h", "--since", now) == now - timedelta(hours=12)
    assert parse_when("2026-01-31", "--since", now) == datetime(2026, 1, 31, tzinfo=UTC)

    conn = connect(pms, live_sandbox)
    whole = pms("sync", "-c", conn, "--json", "--dry-run", "--progress", "none").json()
    every = whole["connections"][0]["resources"]["bookings"]["written"]["booking"]
    window = pms("sync", "-c", conn, "--json", "--progress", "none", "--until", "2025-06-01").json()
    early = window["connections"][0]["resources"]["bookings"]["written"]["booking"]
    assert 0 < early < every
    status = pms("status", "--json").json()["connections"][0]
    assert not status["cursors"].get("bookings")  # a window moves no cursor


def test_help_answers_to_h_and_shows_readable_metavars(pms: Any) -> None:
    result = pms("sync", "-h")
    assert result.code == 0
    assert "--connection ID" in result.stdout and "--concurrency N" in result.stdout
    assert "--since DATE|AGE" in result.stdout and "--until DATE|AGE" in result.stdout
    assert "<list[str]>" not in result.stdout and "<int>" not in result.stdout
    root = pms("-h")
    assert "--install-completion" in root.stdout and "--show-completion" in root.stdout


def test_connect_provider_help_lists_that_providers_own_flags(pms: Any) -> None:
    result = pms("connect", "beds24", "--help")
    assert result.code == 0
    assert "Beds24 credentials:" in result.stdout
    assert "--invite-code TEXT" in result.stdout
    assert re.search(r"env\s+BEDS24_REFRESH_TOKEN", result.stdout)
    assert "Hostaway credentials" not in result.stdout


def test_config_path_names_the_file_read_and_the_store(pms: Any, tmp_path: Any) -> None:
    result = pms("config", "path", "--json")
    assert result.code == 0, result.stderr
    paths = result.json()
    assert paths["config_file"] == str(tmp_path / "config" / "config.toml")
    assert paths["config_file_exists"] is False
    assert paths["store"] == f"sqlite:{tmp_path / 'data' / 'pms.sqlite3'}"


def test_config_env_lists_every_variable_pms_reads_without_values(
    pms: Any, monkeypatch: Any
) -> None:
    monkeypatch.setenv("HOSTAWAY_CLIENT_SECRET", "not-to-be-shown-123")
    result = pms("config", "env", "--json")
    assert result.code == 0, result.stderr
    rows = {r["name"]: r for r in result.json()}
    expected = (
        "PMS_DATABASE_URL",
        "PMS_LOG_LEVEL",
        "PMS_PROGRESS",
        "PMS_SYNC__BATCH_SIZE",
        "PMS_HTTP__MAX_ATTEMPTS",
        "BEDS24_REFRESH_TOKEN",
        "GUESTY_CLIENT_SECRET",
    )
    assert set(expected) <= set(rows)
    assert rows["HOSTAWAY_CLIENT_SECRET"]["set"] is True
    assert "not-to-be-shown-123" not in result.stdout


def test_connecting_the_same_account_again_updates_it_and_new_adds_a_second(
    pms: Any, live_sandbox: LiveSandbox, memory_keyring: MemoryKeyring
) -> None:
    first = connect(pms, live_sandbox)
    again = pms(*live_sandbox.connect_args("hostaway"), "--json")
    assert again.code == 0, again.stderr
    assert again.json()["connection_id"] == first and again.json()["updated"] is True
    assert len(pms("status", "--json").json()["connections"]) == 1
    second = pms(*live_sandbox.connect_args("hostaway"), "--new", "--json")
    assert second.code == 0 and second.json()["connection_id"] != first
    assert second.json()["updated"] is False
    assert len(pms("status", "--json").json()["connections"]) == 2


def test_connect_connection_rekeys_that_connection_and_keeps_its_rows(
    pms: Any, live_sandbox: LiveSandbox, memory_keyring: MemoryKeyring
) -> None:
    conn = connect(pms, live_sandbox)
    pms("sync", "-c", conn, "--json", "--progress", "none")
    memory_keyring.passwords.pop(("pms", conn))  # the old secret is gone
    rekeyed = pms(*live_sandbox.connect_args("hostaway"), "--connection", conn[:8], "--json")
    assert rekeyed.code == 0, rekeyed.stderr
    assert rekeyed.json()["connection_id"] == conn and rekeyed.json()["updated"] is True
    assert ("pms", conn) in memory_keyring.passwords
    status = pms("status", "--json").json()["connections"][0]
    assert status["counts"]["booking"] == 60
    wrong = pms("connect", "lodgify", "--api-key", "k" * 20, "--connection", conn, "--json")
    assert wrong.code == 2 and "is a hostaway connection" in wrong.stderr


def test_a_base_url_without_a_scheme_is_rejected_before_anything_else(pms: Any) -> None:
    result = pms("connect", "hostaway", "--base-url", "127.0.0.1:8900/hostaway/v1")
    assert result.code == 2
    assert "Error: --base-url '127.0.0.1:8900/hostaway/v1' is not an http(s) URL" in result.stderr


def test_a_failed_connect_names_the_host_and_says_nothing_about_resuming_syncs(
    pms: Any, memory_keyring: MemoryKeyring, monkeypatch: Any
) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("PMS_HTTP__MAX_ATTEMPTS", "1")
    result = pms(
        "connect", "hostaway", "--base-url", f"http://127.0.0.1:{port}/v1",
        "--account-id", "1", "--client-secret", "s" * 40,
    )  # fmt: skip
    assert result.code == 1, result.stderr
    assert f"(while connecting to 127.0.0.1:{port})" in result.stderr
    assert "resume" not in result.stderr
    assert "nothing was stored" in result.stderr


def test_status_exits_1_and_names_the_variables_when_credentials_are_missing(
    pms: Any, live_sandbox: LiveSandbox, memory_keyring: MemoryKeyring
) -> None:
    conn = connect(pms, live_sandbox)
    assert pms("status").code == 0
    memory_keyring.passwords.pop(("pms", conn))
    result = pms("status", "--json")
    assert result.code == 1
    row = result.json()["connections"][0]
    assert row["healthy"] is False
    assert "HOSTAWAY_CLIENT_SECRET" in row["credentials_problem"]["hint"]
    table = pms("status")
    assert table.code == 1 and "HOSTAWAY_CLIENT_SECRET" in table.stdout


def test_disconnected_connections_leave_status_unless_all(
    pms: Any, live_sandbox: LiveSandbox, memory_keyring: MemoryKeyring
) -> None:
    conn = connect(pms, live_sandbox)
    assert pms("disconnect", conn, "--json").code == 0
    assert pms("status", "--json").json()["connections"] == []
    shown = pms("status", "--json", "--all").json()["connections"]
    assert [c["status"] for c in shown] == ["disconnected"]


def test_logs_failed_with_none_says_so_and_a_short_prefix_is_named(
    pms: Any, live_sandbox: LiveSandbox, memory_keyring: MemoryKeyring
) -> None:
    connect(pms, live_sandbox)
    assert "No failed runs." in pms("logs", "--failed").stdout
    short = pms("sync", "-c", "ab")
    assert short.code == 2 and "prefix 'ab' is too short" in short.stderr


def test_map_asks_before_replacing_a_mapping_and_needs_yes_without_a_tty(
    pms: Any, live_sandbox: LiveSandbox, memory_keyring: MemoryKeyring
) -> None:
    conn = connect(pms, live_sandbox)
    pms("sync", "-c", conn, "--json", "--progress", "none")
    external = pms("map", "--list", "--json").json()[0]["external_property_id"]
    assert pms("map", "-c", conn, external, "prop_1").code == 0
    assert pms("map", "-c", conn, external, "prop_1").code == 0  # the same: nothing to confirm
    refused = pms("map", "-c", conn, external, "prop_2")
    assert refused.code == 2 and "is mapped to prop_1" in refused.stderr
    assert "Hint: Add --yes" in refused.stderr
    assert pms("map", "-c", conn, external, "prop_2", "--yes").code == 0
    mapped = {
        m["external_property_id"]: m["property_id"] for m in pms("map", "--list", "--json").json()
    }
    assert mapped[external] == "prop_2"


def test_a_database_url_that_is_not_postgres_names_the_schemes_that_work(
    pms: Any, monkeypatch: Any
) -> None:
    monkeypatch.setenv("PMS_DATABASE_URL", "mysql://u:pw@db/pms")
    result = pms("status")
    assert result.code == 2
    assert "Error: PMS_DATABASE_URL has the scheme 'mysql'" in result.stderr
    assert "postgresql://" in result.stderr and "pw" not in result.stderr


def test_a_sqlite_path_in_a_missing_folder_is_an_error_not_a_new_database(
    pms: Any, monkeypatch: Any, tmp_path: Any
) -> None:
    monkeypatch.setenv("PMS_SQLITE_PATH", str(tmp_path / "typo" / "pms.sqlite3"))
    result = pms("status")
    assert result.code == 2 and "in a folder that does not exist" in result.stderr
    assert not (tmp_path / "typo").exists()


def test_webhook_options_say_what_is_wrong_before_anything_happens(pms: Any) -> None:
    import socket

    bad = pms("webhook", "url", "smoobu", "-c", "abcd", "--public-base", "hooks.example.com")
    assert bad.code == 2
    assert "Error: --public-base 'hooks.example.com' is not an http(s) URL" in bad.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = pms("webhook", "serve", "--port", str(port))
    assert busy.code == 2 and f"port {port} on 127.0.0.1 is in use" in busy.stderr
    assert "bug" not in busy.stderr


def test_piped_status_prints_the_table_first_and_the_store_line_on_stderr(
    pms: Any, live_sandbox: LiveSandbox, memory_keyring: MemoryKeyring
) -> None:
    connect(pms, live_sandbox)
    result = pms("status")
    assert result.code == 0, result.stderr
    assert "Store:" not in result.stdout and "Store:" in result.stderr
    header = result.stdout.splitlines()[0]
    assert "\t" in header  # `pms status | cut -f1` reads the table, not a preamble


def test_piped_logs_and_mappings_are_tab_separated_rows(
    pms: Any, live_sandbox: LiveSandbox, memory_keyring: MemoryKeyring
) -> None:
    conn = connect(pms, live_sandbox)
    assert pms("sync", "-c", conn, "--progress", "none").code == 0
    for args in (("logs",), ("map", "--list")):
        result = pms(*args)
        assert result.code == 0, result.stderr
        header, first, *_ = result.stdout.splitlines()
        assert "\t" in header and "\t" in first, result.stdout
        assert "─" not in result.stdout  # no box drawn for an unseen screen
