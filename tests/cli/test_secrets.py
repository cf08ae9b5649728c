"""Secrets never leak: not to stdout, stderr, --json, the database or error messages."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from pms_cli.redact import redact_headers, redact_text, redact_url, register_secret
from pms_cli.sandbox.hostaway import SANDBOX_CLIENT_SECRET
from pms_cli.sandbox.server import SandboxServer
from tests.conftest import LiveSandbox, MemoryKeyring

LEAKY_SECRET = "f00dfeedcafe" * 5 + "beef"


@pytest.fixture
def echoing_provider() -> Iterator[str]:
    """A hostile 'Hostaway' that echoes the credentials it receives in its error bodies."""

    async def token(request: Request) -> JSONResponse:
        from urllib.parse import parse_qsl

        form = dict(parse_qsl((await request.body()).decode()))
        return JSONResponse(
            {
                "status": "fail",
                "result": f"bad client_secret {form.get('client_secret')}",
                "echo": form,
            },
            status_code=401,
        )

    async def listings(request: Request) -> JSONResponse:
        return JSONResponse(
            {"status": "fail", "result": f"denied {request.headers.get('authorization')}"},
            status_code=500,
        )

    app = Starlette(
        routes=[Route("/v1/accessTokens", token, methods=["POST"]), Route("/v1/listings", listings)]
    )
    server = SandboxServer(app)
    server.start()
    yield f"{server.url}/v1"
    server.stop()


def assert_clean(*texts: str, secrets: tuple[str, ...]) -> None:
    for text in texts:
        for secret in secrets:
            assert secret not in text


def test_error_bodies_that_echo_credentials_are_redacted(pms: Any, echoing_provider: str) -> None:
    result = pms(
        "connect",
        "hostaway",
        "--base-url",
        echoing_provider,
        "--account-id",
        "1",
        "--client-secret",
        LEAKY_SECRET,
        "--insecure-storage",
        "--json",
    )
    assert result.code == 3
    assert "Error:" in result.stderr
    assert_clean(result.stdout, result.stderr, secrets=(LEAKY_SECRET,))


def test_full_flow_leaves_no_secret_in_outputs_or_database(
    pms: Any, live_sandbox: LiveSandbox, memory_keyring: MemoryKeyring, tmp_path: Path
) -> None:
    outputs: list[str] = []
    connected = pms(*live_sandbox.connect_args("hostaway"), "--json")
    outputs += [connected.stdout, connected.stderr]
    conn = connected.json()["connection_id"]
    for args in (
        ("sync", "-c", conn, "--json"),
        ("sync", "-c", conn),
        ("-vv", "sync", "-c", conn, "--full"),  # every request logged
        ("status", "--json"),
        ("status",),
        ("logs", "--json"),
        ("logs",),
        ("providers", "--json"),
    ):
        result = pms(*args)
        assert result.code == 0, result.stderr
        outputs += [result.stdout, result.stderr]
    tokens = [p for (service, _), p in memory_keyring.passwords.items() if service == "pms-token"]
    assert tokens, "the access token should be cached in the keyring"
    import json

    token = json.loads(tokens[0])["v"]
    assert_clean(*outputs, secrets=(SANDBOX_CLIENT_SECRET, token))
    db = tmp_path / "data" / "pms.sqlite3"
    dump = "\n".join(sqlite3.connect(db).iterdump())
    assert_clean(dump, secrets=(SANDBOX_CLIENT_SECRET, token))


def test_without_keyring_the_token_cache_row_is_encrypted(
    pms: Any, live_sandbox: LiveSandbox, tmp_path: Path
) -> None:
    connected = pms(*live_sandbox.connect_args("hostaway"), "--insecure-storage", "--json")
    assert connected.code == 0, connected.stderr
    db = tmp_path / "data" / "pms.sqlite3"
    rows = sqlite3.connect(db).execute("select key, ciphertext from pms_token_cache").fetchall()
    assert len(rows) == 1
    assert b"eyJ" not in rows[0][1]  # the JWT is not there in plaintext
    dump = "\n".join(sqlite3.connect(db).iterdump())
    assert SANDBOX_CLIENT_SECRET not in dump


def test_redaction_masks_urls_headers_and_bodies() -> None:
    register_secret("s3cr3t-value-xyz")
    assert "s3cr3t" not in redact_url("https://u:s3cr3t-value-xyz@h/p?token=abc&x=1")
    assert "abc" not in redact_url("https://h/p?token=abc&x=1")
    assert redact_headers({"Authorization": "Bearer abc", "X-ApiKey": "k"}) == {
        "Authorization": "***",
        "X-ApiKey": "***",
    }
    assert "abc" not in redact_text('{"access_token": "abc", "n": 1}')
    assert "s3cr3t-value-xyz" not in redact_text("echo s3cr3t-value-xyz")
    assert redact_text('{"code": "invalid_grant"}') == '{"code": "invalid_grant"}'
