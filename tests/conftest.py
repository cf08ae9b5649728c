"""Hermetic test environment: temp config/data dirs, no provider env vars, no real keyring."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail
from keyring.errors import PasswordDeleteError

from pms_cli.cli.app import main
from pms_cli.sandbox.server import MountedSandbox, SandboxOptions, SandboxServer, build

PROVIDER_ENV = (
    "HOSTAWAY_ACCOUNT_ID",
    "HOSTAWAY_CLIENT_ID",
    "HOSTAWAY_CLIENT_SECRET",
    "SMOOBU_API_KEY",
    "SMOOBU_API_SECRET",
    "LODGIFY_API_KEY",
    "GUESTY_CLIENT_ID",
    "GUESTY_CLIENT_SECRET",
    "BEDS24_TOKEN",
    "BEDS24_REFRESH_TOKEN",
)


class MemoryKeyring(KeyringBackend):
    """A real keyring backend that keeps passwords in a dict (tests only)."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.passwords: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.passwords.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.passwords[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.passwords.pop((service, username), None) is None:
            raise PasswordDeleteError(username)


class SharedClock:
    """One fake clock for both the sandbox (``now``) and the client (``time``/``sleep``).

    Sleeping advances time instantly, so rate-limit pacing is exercised without real waits.
    """

    def __init__(self, start: float = 1_780_000_000.0) -> None:  # 2026-05-28, after the data
        self._now = start
        self.slept = 0.0

    def now(self) -> float:
        return self._now

    def time(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds

    async def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._now += seconds
            self.slept += seconds
        await asyncio.sleep(0)


@pytest.fixture(autouse=True)
def hermetic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PMS_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("PMS_DATA_DIR", str(tmp_path / "data"))
    for name in PROVIDER_ENV:
        monkeypatch.delenv(name, raising=False)
    for name in ("PMS_DATABASE_URL", "PMS_SUPABASE_URL", "PMS_SUPABASE_SERVICE_KEY", "PMS_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    from pms_cli.http import ratelimit

    # Rate-limit budgets are process-wide by design; each test starts with fresh ones.
    monkeypatch.setattr(ratelimit, "GLOBAL_LIMITERS", ratelimit.LimiterRegistry())
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())  # like a headless server: no backend
    from pms_cli.providers import hostaway

    # The documented 1 s activation wait is real time in the client; tests use fake clocks
    # where they can and skip it where a real socket is involved.
    monkeypatch.setattr(hostaway, "TOKEN_ACTIVATION_DELAY", 0.0)
    yield
    keyring.set_keyring(previous)


@pytest.fixture
def memory_keyring() -> MemoryKeyring:
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    return backend


@pytest.fixture
def clock() -> SharedClock:
    return SharedClock()


# --- CLI tests: run `pms` in-process against a sandbox on a real 127.0.0.1 socket ---


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@pytest.fixture
def pms(capsys: pytest.CaptureFixture[str]) -> Any:
    def run(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@dataclass
class LiveSandbox:
    server: SandboxServer
    mounted: dict[str, MountedSandbox]

    def base_url(self, provider: str) -> str:
        return self.server.base_url(self.mounted[provider])

    def connect_args(self, provider: str) -> list[str]:
        m = self.mounted[provider]
        args = ["connect", provider, "--base-url", self.base_url(provider)]
        for key, value in m.credentials.items():
            args += [f"--{key.replace('_', '-')}", value]
        return args


@pytest.fixture(scope="session")
def live_sandbox() -> Iterator[LiveSandbox]:
    app, mounted = build(
        SandboxOptions(listings=4, reservations=60, relaxed=True), providers=["hostaway"]
    )
    server = SandboxServer(app)
    server.start()
    yield LiveSandbox(server, {m.provider: m for m in mounted})
    server.stop()
