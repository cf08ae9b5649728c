"""`pms webhook url | subscribe | secret` and `pms logs --webhooks` / `pms status`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr

from pms_cli import credentials
from pms_cli.config import load_settings
from pms_cli.sandbox.server import SandboxOptions, SandboxServer, build
from pms_cli.stores.base import Connection, WebhookEventRow
from pms_cli.stores.sqlite import SqliteStore

PUBLIC = "https://hooks.example.com"


def add_connection(
    provider: str, location: str = "file", base_url: str | None = None, **creds: str
) -> Connection:
    from pms_cli.providers import get_provider

    fields = {f.name: f.secret for f in get_provider(provider).credential_fields}
    public = {k: v for k, v in creds.items() if not fields.get(k, True)}
    creds = {k: v for k, v in creds.items() if fields.get(k, True)}
    store = SqliteStore(load_settings().resolved_sqlite_path)
    conn = Connection(
        id=f"{provider[:4]}0000-1111-4222-8333-444455556666",
        organization_id="default",
        provider=provider,
        display_name=f"{provider} test",
        status="active",
        account_ref="acct",
        secret_location=location,
        settings={"public": public, **({"base_url": base_url} if base_url else {})},
    )
    store.add_connection(conn)
    store.close()
    if location == "file":
        secrets = {k: SecretStr(v) for k, v in (creds or {"api_key": "k" * 16}).items()}
        credentials.save_secrets(conn.id, secrets, insecure_storage=True)
    return conn


def test_url_prints_the_tokenised_smoobu_url_and_keeps_the_token_stable(pms: Any) -> None:
    conn = add_connection("smoobu")
    first = pms(
        "webhook", "url", "smoobu", "--connection", conn.id, "--public-base", PUBLIC, "--json"
    )
    assert first.code == 0, first.stderr
    url = first.json()["url"]
    assert url.startswith(f"{PUBLIC}/webhooks/smoobu/{conn.id}?token=")
    token = url.split("token=")[1]
    assert len(token) >= 40
    again = pms("webhook", "url", "smoobu", "-c", conn.id[:8], "--public-base", PUBLIC, "--json")
    assert again.json()["url"] == url
    stored = credentials.load_stored_secrets(conn.id, "file")
    assert stored["webhook_token"] == token
    # The secret lives with the connection's credentials, never in the database.
    assert token.encode() not in load_settings().resolved_sqlite_path.read_bytes()


def test_url_rotate_issues_a_new_token(pms: Any) -> None:
    conn = add_connection("smoobu")
    old = pms("webhook", "url", "smoobu", "-c", conn.id, "--json").json()["url"]
    refused = pms("webhook", "url", "smoobu", "-c", conn.id, "--rotate", "--json")
    assert refused.code == 2 and "Hint: Add --yes to rotate it." in refused.stderr
    rotated = pms("webhook", "url", "smoobu", "-c", conn.id, "--rotate", "--yes", "--json")
    new = rotated.json()["url"]
    assert old != new


def test_url_for_hostaway_shows_basic_auth_values_and_dashboard_steps(pms: Any) -> None:
    conn = add_connection("hostaway", client_secret="s" * 20)
    result = pms("webhook", "url", "hostaway", "-c", conn.id, "--public-base", PUBLIC)
    assert result.code == 0, result.stderr
    stored = credentials.load_stored_secrets(conn.id, "file")
    assert stored["webhook_password"] in result.stdout
    assert "Settings → Integrations → Webhooks" in result.stdout
    assert "HTTP Basic auth" in result.stdout


def test_url_for_beds24_gives_the_custom_header_line(pms: Any) -> None:
    conn = add_connection("beds24", refresh_token="r" * 20)
    out = pms("webhook", "url", "beds24", "-c", conn.id, "--public-base", PUBLIC, "--json").json()
    token = credentials.load_stored_secrets(conn.id, "file")["webhook_token"]
    assert out["fields"]["Custom Header"] == f"X-Pms-Webhook-Token: {token}"
    assert "token=" not in out["url"]


def test_url_for_a_connection_of_another_provider_is_a_usage_error(pms: Any) -> None:
    conn = add_connection("smoobu")
    result = pms("webhook", "url", "hostaway", "-c", conn.id)
    assert result.code == 2
    assert "Error: connection" in result.stderr
    assert "pms webhook url smoobu" in result.stderr


def test_an_env_credential_connection_says_where_its_webhook_secret_must_go(pms: Any) -> None:
    conn = add_connection("smoobu", location="env")
    result = pms("webhook", "url", "smoobu", "-c", conn.id)
    assert result.code == 2
    assert "PMS_WEBHOOK_SECRETS_" in result.stderr
    assert "Hint:" in result.stderr


def test_an_env_credential_connection_reads_its_token_from_the_environment(
    pms: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pms_cli.webhooks.secrets import env_var

    conn = add_connection("smoobu", location="env")
    monkeypatch.setenv(env_var(conn), json.dumps({"webhook_token": "t" * 43}))
    out = pms("webhook", "url", "smoobu", "-c", conn.id, "--json").json()
    assert out["url"].endswith("?token=" + "t" * 43)


def test_subscribe_is_refused_for_smoobu_which_has_no_api(pms: Any) -> None:
    conn = add_connection("smoobu")
    result = pms("webhook", "subscribe", "smoobu", "-c", conn.id, "--public-base", PUBLIC)
    assert result.code == 2
    assert "no API to subscribe" in result.stderr
    assert "pms webhook url smoobu" in result.stderr


@pytest.fixture
def sandboxes() -> Iterator[tuple[SandboxServer, dict[str, Any]]]:
    app, mounted = build(
        SandboxOptions(listings=2, reservations=5, relaxed=True),
        providers=["lodgify", "guesty", "hostaway", "beds24"],
    )
    server = SandboxServer(app)
    server.start()
    yield server, {m.provider: m for m in mounted}
    server.stop()


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("provider", "stored"),
    [
        ("lodgify", 6),  # one subscription (and secret) per booking event
        ("guesty", 1),  # the endpoint's Svix signing secret
        ("hostaway", 0),  # Basic auth values were generated by pms
        ("beds24", 0),  # the custom-header token was generated by pms
    ],
)
def test_subscribe_registers_the_webhook_through_the_providers_api(
    pms: Any, sandboxes: tuple[SandboxServer, dict[str, Any]], provider: str, stored: int
) -> None:
    server, mounted = sandboxes
    m = mounted[provider]
    conn = add_connection(provider, base_url=server.base_url(m), **m.credentials)
    result = pms("webhook", "subscribe", provider, "-c", conn.id, "--public-base", PUBLIC, "--json")
    assert result.code == 0, result.stderr
    out = result.json()
    assert len(out["secrets_stored"]) == stored
    kept = credentials.load_stored_secrets(conn.id, "file")
    for name in out["secrets_stored"]:
        assert kept[name] not in result.stdout  # names are printed, never values
    url = f"{PUBLIC}/webhooks/{provider}/{conn.id}"
    sandbox = m.state
    if provider == "lodgify":
        assert sorted(s["url"].split("?")[0] for s in sandbox.subscriptions.values()) == [url] * 6
        # Subscribing again replaces the subscriptions (their secrets are shown only once).
        assert (
            pms("webhook", "subscribe", provider, "-c", conn.id, "--public-base", PUBLIC).code == 0
        )
        assert len(sandbox.subscriptions) == 6
    elif provider == "guesty":
        assert kept["webhook_secret"] == sandbox.webhook_secret(url)
    elif provider == "hostaway":
        (hook,) = sandbox.unified_webhooks.values()
        assert (hook["url"], hook["login"]) == (url, kept["webhook_login"])
        assert hook["password"] == kept["webhook_password"]
    else:
        hooks = [p.get("webhooks") for p in sandbox.properties.values()]
        assert all(h and h["url"] == url for h in hooks)
        assert all(h["customHeader"].endswith(kept["webhook_token"]) for h in hooks)


def test_secret_stores_a_guesty_signing_secret_from_the_environment(
    pms: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = add_connection("guesty", client_secret="c" * 20)
    monkeypatch.setenv("GUESTY_WEBHOOK_SECRET", "whsec_c2VjcmV0LXNpZ25pbmcta2V5LTMyLWJ5dGVzIQ==")
    result = pms(
        "webhook", "secret", "guesty", "-c", conn.id, "--from-env", "GUESTY_WEBHOOK_SECRET"
    )
    assert result.code == 0, result.stderr
    assert "whsec_" not in result.stdout
    stored = credentials.load_stored_secrets(conn.id, "file")["webhook_secret"]
    assert stored.startswith("whsec_c2Vj")


def test_secret_refuses_a_value_that_is_not_a_signing_secret(
    pms: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = add_connection("guesty", client_secret="c" * 20)
    monkeypatch.setenv("V", "just-a-password")
    result = pms("webhook", "secret", "guesty", "-c", conn.id, "--from-env", "V")
    assert result.code == 2
    assert "whsec_" in result.stderr


def seed_inbox(conn: Connection) -> None:
    store = SqliteStore(load_settings().resolved_sqlite_path)
    now = datetime(2026, 5, 1, tzinfo=UTC)
    for status, error in (("done", None), ("retry", "rate_limited: Lodgify is slow")):
        store.inbox_add(
            WebhookEventRow(
                id=f"e-{status}",
                provider=conn.provider,
                connection_id=conn.id,
                organization_id="default",
                dedupe_key=f"k-{status}",
                payload={"change": {"resource": "bookings", "external_id": "42", "action": "x"}},
                received_at=now,
                status=status,
                next_attempt_at=now if status == "retry" else None,
                error=error,
            )
        )
    store.close()


def test_logs_webhooks_lists_the_inbox_newest_first(
    pms: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    conn = add_connection("lodgify")
    seed_inbox(conn)
    rows = pms("logs", "--webhooks", "--json").json()
    assert {r["status"] for r in rows} == {"done", "retry"}
    failed = pms("logs", "--webhooks", "--failed", "--json").json()
    assert [r["status"] for r in failed] == ["retry"]
    table = pms("logs", "--webhooks", "--failed")
    assert table.code == 0
    assert "rate_limited" in table.stdout
    assert "bookings 42" in table.stdout


def test_status_counts_webhook_events_and_flags_stuck_ones(
    pms: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    conn = add_connection("lodgify")
    seed_inbox(conn)
    (row,) = pms("status", "--json").json()["connections"]
    assert row["webhooks"] == {"done": 1, "retry": 1}
    assert "webhooks: 1 retry" in pms("status").stdout
