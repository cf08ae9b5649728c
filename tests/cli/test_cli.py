"""CLI behaviour: exit codes, exact --json, empty stderr on success, Error:/Hint: on failure."""

from __future__ import annotations

from typing import Any

from pms_cli.sandbox.hostaway import SANDBOX_CLIENT_SECRET
from tests.conftest import LiveSandbox, MemoryKeyring


def connect(pms: Any, live: LiveSandbox, *extra: str) -> str:
    result = pms(*live.connect_args("hostaway"), "--json", *extra)
    assert result.code == 0, result.stderr
    assert result.stderr == ""
    return str(result.json()["connection_id"])


def test_providers_lists_hostaway_with_auth_fields_and_limits(pms: Any) -> None:
    result = pms("providers", "--json")
    assert result.code == 0 and result.stderr == ""
    hostaway = next(p for p in result.json() if p["name"] == "hostaway")
    assert [c["env"] for c in hostaway["credentials"]] == [
        "HOSTAWAY_ACCOUNT_ID",
        "HOSTAWAY_CLIENT_ID",
        "HOSTAWAY_CLIENT_SECRET",
    ]
    assert hostaway["rate_limits"] == ["20 requests / 10 s"]
    assert hostaway["ip_rate_limits"] == ["15 requests / 10 s"]
    assert "settings/hostaway-api" in hostaway["keys_help"]


def test_connect_stores_the_secret_in_the_keyring_and_prints_json(
    pms: Any, live_sandbox: LiveSandbox, memory_keyring: MemoryKeyring
) -> None:
    result = pms(*live_sandbox.connect_args("hostaway"), "--json")
    assert result.code == 0 and result.stderr == ""
    payload = result.json()
    assert set(payload) == {
        "connection_id",
        "provider",
        "display_name",
        "account_ref",
        "organization_id",
        "secret_location",
        "updated",
    }
    assert payload["updated"] is False
    assert payload["secret_location"] == "keyring"
    assert payload["account_ref"] == "10450"
    assert SANDBOX_CLIENT_SECRET in memory_keyring.passwords[("pms", payload["connection_id"])]
    assert SANDBOX_CLIENT_SECRET not in result.stdout


def test_connect_without_a_keyring_backend_explains_the_alternatives(
    pms: Any, live_sandbox: LiveSandbox
) -> None:
    result = pms(*live_sandbox.connect_args("hostaway"))
    assert result.code == 2
    assert "Error: no OS keyring backend" in result.stderr
    assert "Hint:" in result.stderr and "--insecure-storage" in result.stderr
    assert "Traceback" not in result.stderr
    assert pms("status", "--json").json()["connections"] == []


def test_connect_with_a_wrong_secret_exits_3_and_writes_nothing(
    pms: Any, live_sandbox: LiveSandbox, memory_keyring: MemoryKeyring
) -> None:
    args = live_sandbox.connect_args("hostaway")
    args[args.index("--client-secret") + 1] = "0" * 64
    result = pms(*args)
    assert result.code == 3
    assert "Error: hostaway rejected the credentials" in result.stderr
    assert "Hint: Check the account ID and client secret" in result.stderr
    assert memory_keyring.passwords == {}
    assert pms("status", "--json").json()["connections"] == []


def test_connect_without_credentials_and_without_a_tty_fails_instead_of_prompting(
    pms: Any,
) -> None:
    result = pms("connect", "hostaway")
    assert result.code == 2
    assert "HOSTAWAY_CLIENT_SECRET" in result.stderr
    assert "Hint:" in result.stderr


def test_connect_from_env_reads_credentials_at_run_time(
    pms: Any, live_sandbox: LiveSandbox, monkeypatch: Any
) -> None:
    monkeypatch.setenv("HOSTAWAY_ACCOUNT_ID", "10450")
    monkeypatch.setenv("HOSTAWAY_CLIENT_SECRET", SANDBOX_CLIENT_SECRET)
    result = pms(
        "connect",
        "hostaway",
        "--from-env",
        "--base-url",
        live_sandbox.base_url("hostaway"),
        "--json",
        "--org",
        "acme",
    )
    assert result.code == 0, result.stderr
    assert result.json()["secret_location"] == "env"
    assert result.json()["organization_id"] == "acme"
    status = pms("status", "--json").json()["connections"][0]
    assert status["credentials"] == "env"
    monkeypatch.delenv("HOSTAWAY_CLIENT_SECRET")
    sync = pms("sync", "--connection", result.json()["connection_id"], "--json")
    assert sync.code == 2
    assert sync.json()["connections"][0]["error"]["code"] == "credentials_missing"


def test_sync_json_prints_one_summary_and_nothing_on_stderr(
    pms: Any, live_sandbox: LiveSandbox, memory_keyring: MemoryKeyring
) -> None:
    conn = connect(pms, live_sandbox)
    result = pms("sync", "--connection", conn, "--json", "--progress", "none")
    assert result.code == 0, result.stderr
    assert result.stderr == ""
    summary = result.json()
    assert summary["status"] == "ok"
    [one] = summary["connections"]
    assert one["resources"]["properties"]["written"] == {"property": 4}
    assert one["resources"]["bookings"]["written"]["booking"] == 60
    assert one["requests"] == 2  # the token minted by `connect` is reused


def test_sync_accepts_a_unique_id_prefix_and_filters_resources(
    pms: Any, live_sandbox: LiveSandbox, memory_keyring: MemoryKeyring
) -> None:
    conn = connect(pms, live_sandbox)
    result = pms("sync", "-c", conn[:8], "--resource", "properties", "--json")
    assert result.code == 0, result.stderr
    assert list(result.json()["connections"][0]["resources"]) == ["properties"]


def test_sync_of_an_unknown_connection_exits_2_with_a_hint(pms: Any) -> None:
    result = pms("sync", "--connection", "does-not-exist")
    assert result.code == 2
    assert "Error: no connection with ID 'does-not-exist'" in result.stderr
    assert "Hint:" in result.stderr and "pms status" in result.stderr


def test_sync_without_a_target_is_a_usage_error(pms: Any) -> None:
    result = pms("sync")
    assert result.code == 2 and "--all" in result.stderr


def test_sync_rejects_an_unparseable_since(
    pms: Any, live_sandbox: LiveSandbox, memory_keyring: MemoryKeyring
) -> None:
    conn = connect(pms, live_sandbox)
    result = pms("sync", "-c", conn, "--since", "yesterday")
    assert result.code == 2 and "YYYY-MM-DD" in result.stderr


def test_status_and_logs_report_the_last_run(
    pms: Any, live_sandbox: LiveSandbox, memory_keyring: MemoryKeyring
) -> None:
    conn = connect(pms, live_sandbox)
    assert pms("sync", "--all", "--json", "--trigger", "cron").code == 0
    status = pms("status", "--json").json()
    assert status["store"].startswith("sqlite:")
    [row] = status["connections"]
    assert row["credentials"] == "keyring"
    assert row["counts"] == {"property": 4, "booking": 60, "guest": row["counts"]["guest"]}
    assert row["last_run"]["status"] == "succeeded"
    assert set(row["cursors"]) == {"properties", "bookings"}
    logs = pms("logs", "--json", "--limit", "5").json()
    assert logs[0]["connection_id"] == conn and logs[0]["trigger"] == "cron"
    assert pms("logs", "--failed", "--json").json() == []


def test_disconnect_purge_removes_rows_and_secrets(
    pms: Any, live_sandbox: LiveSandbox, memory_keyring: MemoryKeyring
) -> None:
    conn = connect(pms, live_sandbox)
    pms("sync", "-c", conn, "--json")
    refused = pms("disconnect", conn, "--purge", "--json")  # no TTY, no --yes
    assert refused.code == 2
    assert "60 bookings" in refused.stderr and "Hint: Add --yes" in refused.stderr
    assert pms("status", "--json").json()["connections"][0]["counts"]["booking"] == 60
    result = pms("disconnect", conn, "--purge", "--yes", "--json")
    assert result.code == 0 and result.stderr == ""
    assert result.json()["purged"]["pms_bookings"] == 60
    assert memory_keyring.passwords == {}
    again = pms("sync", "-c", conn)
    assert again.code == 2 and "disconnected" in again.stderr


def test_map_links_a_synced_property(
    pms: Any, live_sandbox: LiveSandbox, memory_keyring: MemoryKeyring
) -> None:
    conn = connect(pms, live_sandbox)
    pms("sync", "-c", conn, "--json")
    external = pms("map", "--list", "--json").json()[0]["external_property_id"]
    assert pms("map", "-c", conn, external, "prop_1", "--json").code == 0
    mapped = {
        m["external_property_id"]: m["property_id"] for m in pms("map", "--list", "--json").json()
    }
    assert mapped[external] == "prop_1"
    assert pms("map", "-c", conn, "nope", "prop_2").code == 2


def test_malformed_config_file_is_a_clear_error(pms: Any, tmp_path: Any) -> None:
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    (config / "config.toml").write_text("organization_id = [unclosed\n")
    result = pms("status")
    assert result.code == 2
    assert "is not valid TOML" in result.stderr and "Hint:" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_config_key_is_rejected(pms: Any, tmp_path: Any) -> None:
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    (config / "config.toml").write_text('organisation = "typo"\n')
    result = pms("status")
    assert result.code == 2 and "organisation" in result.stderr


def test_unknown_provider_lists_the_known_ones(pms: Any) -> None:
    result = pms("connect", "airbnb")
    assert result.code == 2 and "hostaway" in result.stderr


def test_many_connections_collapse_into_one_line_per_status() -> None:
    from rich.console import Console

    from pms_cli.cli.sync_cmd import COLLAPSE_ABOVE, results_table
    from pms_cli.sync.engine import ResourceResult, SyncResult

    results = []
    for i in range(COLLAPSE_ABOVE + 30):
        r = SyncResult(f"conn-{i:04d}", "hostaway", f"run-{i}", status="succeeded", requests=3)
        r.resources["bookings"] = ResourceResult("bookings", fetched=10)
        results.append(r)
    results[5].status = "failed"
    results[5].error = {"message": "hostaway rejected the credentials"}
    console = Console(width=120, record=True)
    console.print(results_table(results))
    text = console.export_text()
    assert "42 connections" in text
    assert text.count("conn-") == 1  # only the failing connection is listed by name
    assert "hostaway conn-000" in text
    assert "rejected the credentials" in text
    assert "410" in text  # 41 succeeded × 10 records


def test_help_is_plain_and_shows_examples(pms: Any) -> None:
    result = pms("sync", "--help")
    assert result.code == 0
    assert "pms sync --all --json --trigger cron" in result.stdout
