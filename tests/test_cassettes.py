"""vcrpy cassettes in cassettes/<provider>/ replayed with record_mode=none; none holds a secret."""

from __future__ import annotations

import asyncio
import importlib
import re
from pathlib import Path

import pytest
from pydantic import SecretStr

from pms_cli.config import load_settings
from pms_cli.http.tokens import MemoryTokenCache
from pms_cli.providers import get_provider, registry
from pms_cli.sandbox.server import SandboxOptions
from pms_cli.sync.session import Runtime, open_adapter
from scripts.record_cassettes import recorder

CASSETTES = Path(__file__).resolve().parent.parent / "cassettes"
RECORDED = sorted(p.name for p in CASSETTES.iterdir() if p.is_dir() and any(p.glob("*.yaml")))


def test_every_provider_has_cassettes() -> None:
    assert sorted(registry()) == RECORDED


@pytest.mark.parametrize("provider", RECORDED)
def test_cassettes_replay_without_network(provider: str) -> None:
    cls = get_provider(provider)
    replay = recorder(CASSETTES / provider, "none")
    # Any credential value works on replay (bodies and auth headers are not matched), but the
    # same fields as at recording time must be given: they decide the auth flow.
    used = (
        importlib.import_module(f"pms_cli.sandbox.{provider}")
        .build_sandbox(SandboxOptions(listings=1, reservations=1))
        .credentials
    )
    public = {f.name: used[f.name] for f in cls.public_fields() if f.name in used}
    secrets = {f.name: SecretStr(f"replay-{f.name}") for f in cls.secret_fields() if f.name in used}

    async def go() -> dict[str, int]:
        runtime = Runtime(load_settings(), token_cache=MemoryTokenCache())
        seen: dict[str, int] = {}
        for resource in cls.resources:
            runtime.token_cache = MemoryTokenCache()
            with replay.use_cassette(f"{resource.name}.yaml") as cassette:
                async with open_adapter(
                    runtime,
                    provider,
                    connection_id="replay",
                    public=public,
                    secrets=secrets,
                    conn_settings={},
                    token_store=None,
                ) as adapter:
                    records = 0
                    async for page in adapter.pages(resource, None):
                        for raw in page:
                            assert resource.mapper(raw)
                            records += 1
                    seen[resource.name] = records
                assert cassette.all_played
        return seen

    counts = asyncio.run(go())
    assert all(n > 0 for n in counts.values()), counts


SECRET_SHAPES = [
    re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),  # a JWT
    re.compile(r"(?i)bearer\s+(?!REDACTED)[A-Za-z0-9._-]{8,}"),
    re.compile(r"(?i)client_secret=(?!REDACTED)[^&\s'\"]+"),
]


@pytest.mark.parametrize("provider", RECORDED)
def test_no_cassette_holds_a_secret(provider: str) -> None:
    module = importlib.import_module(f"pms_cli.sandbox.{provider}")
    sandbox_secrets = [
        v
        for k, v in module.build_sandbox(SandboxOptions()).credentials.items()
        if any(f.name == k and f.secret for f in get_provider(provider).credential_fields)
    ]
    for path in (CASSETTES / provider).glob("*.yaml"):
        text = path.read_text()
        for secret in sandbox_secrets:
            assert secret not in text, f"{path.name} holds a sandbox secret"
        for shape in SECRET_SHAPES:
            assert not shape.search(text), f"{path.name} holds something secret-shaped"
