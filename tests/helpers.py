"""Helpers shared by tests: an engine wired to an in-process sandbox over httpx.ASGITransport."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from pms_cli.config import load_settings
from pms_cli.http.ratelimit import LimiterRegistry
from pms_cli.http.tokens import MemoryTokenCache
from pms_cli.sandbox.server import MountedSandbox, SandboxOptions
from pms_cli.stores.base import Connection
from pms_cli.stores.sqlite import SqliteStore
from pms_cli.sync.engine import SyncEngine, SyncOptions, SyncResult
from pms_cli.sync.session import Runtime


class Harness:
    """A provider sandbox + SQLite store + engine sharing one fake clock."""

    def __init__(
        self, provider: str, tmp_path: Path, clock: Any, relaxed: bool = True, **options: Any
    ) -> None:
        import importlib

        module = importlib.import_module(f"pms_cli.sandbox.{provider}")
        self.sandbox: MountedSandbox = module.build_sandbox(
            SandboxOptions(clock=clock, relaxed=relaxed, **options)
        )
        self.clock = clock
        self.store = SqliteStore(tmp_path / f"{provider}.sqlite3")
        self.settings = load_settings()
        self.token_cache = MemoryTokenCache()
        self.limiters = LimiterRegistry()
        self.conn = Connection(
            id=f"conn-{provider}",
            organization_id="org-test",
            provider=provider,
            display_name=f"{provider} test",
            status="active",
            account_ref="",
            secret_location="env",
            settings={
                "public": self.public(),
                "base_url": f"http://sandbox{self.sandbox.api_path}",
            },
        )
        self.store.add_connection(self.conn)

    @property
    def state(self) -> Any:
        return self.sandbox.state

    def _fields(self, secret: bool) -> dict[str, str]:
        from pms_cli.providers import get_provider

        cls = get_provider(self.sandbox.provider)
        names = {f.name for f in cls.credential_fields if f.secret == secret}
        return {k: v for k, v in self.sandbox.credentials.items() if k in names}

    def public(self) -> dict[str, str]:
        return self._fields(secret=False)

    def secrets(self) -> dict[str, SecretStr]:
        return {k: SecretStr(v) for k, v in self._fields(secret=True).items()}

    def env(self) -> dict[str, str]:
        from pms_cli.providers import get_provider

        cls = get_provider(self.sandbox.provider)
        values = self.sandbox.credentials
        return {f.env: values[f.name] for f in cls.credential_fields if f.env and f.name in values}

    def runtime(self) -> Runtime:
        return Runtime(
            self.settings,
            clock=self.clock,
            limiters=self.limiters,
            transport=httpx.ASGITransport(app=self.sandbox.app),
            token_cache=self.token_cache,
            env=self.env(),
        )

    def sync(self, **options: Any) -> SyncResult:
        engine = SyncEngine(self.store, self.runtime())
        return asyncio.run(engine.sync_connection(self.conn, SyncOptions(**options)))
