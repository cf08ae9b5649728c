"""Full syncs, including failures whose provider error bodies echo the credentials back, leave
no secret in stdout, stderr, files under the config/data dirs, any table, the cassettes or
`--json` output."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from pms_cli.providers import get_provider
from pms_cli.redact import known_secrets
from pms_cli.sandbox.faults import Fault
from tests.reliability import kill

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
#: Each run meets a different careless provider: an error quoting the request on the first
#: (token) request, on a data request as 401, and as a 500 that outlasts the retries.
ECHOES = (
    [Fault("echo", start=1, times=1)],
    [Fault("echo", start=2, times=1, status=401)],
    [Fault("echo", start=2, times=1, status=422)],
    [Fault("echo", start=1, every=1, status=500)],
    [],
)


def everything_written(home: Path) -> str:
    """Every table of the database as text, plus every other file pms wrote."""
    parts = []
    db = kill.database(home)
    with sqlite3.connect(db) as con:
        parts += list(con.iterdump())
    for path in sorted(home.rglob("*")):
        if path.is_file() and not path.name.startswith("pms.sqlite3"):
            parts.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(parts)


def cassettes() -> str:
    return "\n".join(p.read_text("utf-8", "replace") for p in (ROOT / "cassettes").rglob("*.y*ml"))


@pytest.mark.parametrize("provider", ["hostaway", "lodgify", "guesty"])
def test_no_secret_leaks_anywhere_even_when_the_provider_echoes_credentials(
    provider: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pms: Any
) -> None:
    # Retries after the echoed 5xx would otherwise back off for real seconds.
    monkeypatch.setenv("PMS_HTTP__BACKOFF_BASE_SECONDS", "0.001")
    # The sandbox is relaxed; so is the client's pacing of the documented limits.
    monkeypatch.setenv("PMS_PROVIDERS", f'{{"{provider}": {{"rate_limits": ["1000/1"]}}}}')
    outputs: list[str] = []
    with kill.serve(provider, bookings=30, delay=0) as served:
        kill.connect(tmp_path, served)
        cls = get_provider(provider)
        credentials = [
            served.sandbox.credentials[f.name]
            for f in cls.credential_fields
            if f.secret and f.name in served.sandbox.credentials
        ]
        for f in cls.credential_fields:
            if f.secret and f.env and f.name in served.sandbox.credentials:
                monkeypatch.setenv(f.env, served.sandbox.credentials[f.name])
        injector = served.sandbox.extra["faults"]
        for faults in ECHOES:
            injector.set_faults(faults)
            for args in (("--json",), ("--full",)):
                result = pms("sync", "--connection", kill.CONNECTION_ID, *args)
                outputs += [result.stdout, result.stderr]
        struck = injector.injected["echo"]
    outputs += [pms("logs", "--json").stdout, pms("status", "--json").stdout]
    secrets = {s for s in known_secrets() | set(credentials) if len(s) >= 8}
    assert struck >= 4, "the echo faults never struck"
    assert set(credentials) <= secrets
    haystacks = {
        "output": "\n".join(outputs),
        "files and tables": everything_written(tmp_path),
        "cassettes": cassettes(),
    }
    leaks = [
        (where, secret[:4] + "…")
        for where, text in haystacks.items()
        for secret in secrets
        if secret in text
    ]
    assert leaks == []
