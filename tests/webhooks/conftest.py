"""Webhook test rig: a provider sandbox, a SQLite store, the receiver app and its applier.

Everything runs in-process on one fake clock (``SharedClock``) unless a test starts real
127.0.0.1 servers; the sandboxes generate the deliveries with each provider's documented
payload and authentication, independently of the receiver's verification code.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from pms_cli.sandbox.webhook_sender import WebhookSender
from pms_cli.stores.base import Connection
from pms_cli.stores.sqlite import SqliteStore
from pms_cli.sync.engine import SyncEngine, SyncOptions
from pms_cli.sync.session import Runtime, open_adapter
from pms_cli.webhooks import get_spec
from pms_cli.webhooks import secrets as webhook_secrets
from pms_cli.webhooks.applier import ApplierOptions
from pms_cli.webhooks.receiver import Receiver, ReceiverOptions, create_app
from tests.helpers import Harness

PROVIDERS = ("hostaway", "smoobu", "lodgify", "guesty", "beds24")
RECEIVER = "http://receiver.test"


class Rig:
    """One provider: sandbox + store + receiver app; deliveries go through ASGITransport."""

    def __init__(
        self,
        provider: str,
        tmp_path: Path,
        clock: Any,
        *,
        configure: bool = True,
        secret_ttl: float = 0.0,
        **kw: Any,
    ) -> None:
        self.provider = provider
        self.h = Harness(provider, tmp_path, clock, **kw)
        self.clock = clock
        self.spec = get_spec(provider)
        self.store = self.h.store
        self.conn: Connection = self.h.conn
        # The harness connection reads its API credentials from env, so its webhook secrets
        # come from PMS_WEBHOOK_SECRETS_<ID> too (the env path of webhooks.secrets).
        self.env: dict[str, str] = dict(self.h.env())
        self.runtime = Runtime(
            self.h.settings,
            clock=clock,
            limiters=self.h.limiters,
            transport=httpx.ASGITransport(app=self.h.sandbox.app),
            token_cache=self.h.token_cache,
            env=self.env,
        )
        self.options = ReceiverOptions(
            applier=ApplierOptions(batch_size=500, idle_poll_seconds=0.05),
            secret_ttl_seconds=secret_ttl,
        )
        self.app = create_app(self.store, self.runtime, self.options)
        self.receiver: Receiver = self.app.state.receiver
        self.url = f"{RECEIVER}/webhooks/{provider}/{self.conn.id}"
        if configure:
            self.configure()

    @property
    def sandbox(self) -> Any:
        return self.h.state

    @property
    def sender(self) -> WebhookSender:
        sender: WebhookSender = self.sandbox.sender
        return sender

    def set_secrets(self, values: dict[str, str]) -> None:
        current = {
            k: v.get_secret_value() for k, v in webhook_secrets.load(self.conn, self.env).items()
        }
        current.update(values)
        self.env[webhook_secrets.env_var(self.conn)] = json.dumps(current)

    def secrets(self) -> dict[str, SecretStr]:
        return webhook_secrets.load(self.conn, self.env)

    def configure(self, base: str = RECEIVER) -> None:
        """Point the sandbox's webhooks at the receiver, the way `pms webhook …` would."""
        generated = {n: f"pms-{n}-0123456789abcdef" for n in self.spec.generated}
        self.set_secrets(generated)
        secrets = self.secrets()
        url = self.spec.url(base, self.conn, secrets)
        if self.spec.subscribe_api:
            kept = asyncio.run(self._subscribe(url, secrets))
            self.set_secrets(kept)
        else:  # Smoobu: pasted into Settings → Developer by hand
            self.sandbox.webhook_url = url

    async def _subscribe(self, url: str, secrets: dict[str, SecretStr]) -> dict[str, str]:
        async with open_adapter(
            self.runtime,
            self.provider,
            connection_id=self.conn.id,
            public=self.conn.settings["public"],
            secrets=self.h.secrets(),
            conn_settings=self.conn.settings,
            token_store=None,
        ) as adapter:
            return await self.spec.subscribe(adapter, url, secrets)

    # --- driving -------------------------------------------------------------------------

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=RECEIVER)

    def deliver(self, **take: Any) -> list[int | None]:
        async def go() -> list[int | None]:
            async with self.client() as client:
                return await self.sender.asend_all(client, **take)

        return asyncio.run(go())

    def post(self, content: bytes, headers: dict[str, str] | None = None, url: str = "") -> Any:
        async def go() -> httpx.Response:
            async with self.client() as client:
                return await client.post(url or self.url, content=content, headers=headers)

        return asyncio.run(go())

    def apply(self) -> int:
        async def go() -> int:
            total = 0
            try:
                while handled := await self.receiver.applier.run_once():
                    total += handled
            finally:
                await self.receiver.applier.aclose()
            return total

        return asyncio.run(go())

    # --- mutations: created / updated / cancelled ----------------------------------------

    def create(self, n: int) -> list[str]:
        s = self.sandbox
        fn = {
            "hostaway": lambda: s.add_reservations(n),
            "smoobu": lambda: s.add_bookings(n),
            "lodgify": lambda: s.add_bookings(n),
            "guesty": lambda: s.add_reservations(n),
            "beds24": lambda: s.add_bookings(n),
        }[self.provider]
        return [str(i) for i in fn()]

    def update(self, n: int) -> list[str]:
        s = self.sandbox
        fn = {
            "hostaway": lambda: s.modify_reservations(n),
            "smoobu": lambda: s.modify_bookings(n),
            "lodgify": lambda: s.modify_bookings(n),
            "guesty": lambda: s.modify_reservations(n),
            "beds24": lambda: s.modify_bookings(n),
        }[self.provider]
        return [str(i) for i in fn()]

    def cancel(self, external_id: str) -> None:
        s = self.sandbox
        key: Any = external_id if self.provider == "guesty" else int(external_id)
        if self.provider in ("hostaway", "guesty"):
            s.cancel_reservation(key)
        else:
            s.cancel_booking(key)

    # --- ground truth --------------------------------------------------------------------

    def truth(self, tmp_path: Path) -> dict[str, dict[str, Any]]:
        """Bookings as a fresh full `pms sync` of the same sandbox sees them."""
        ref = SqliteStore(tmp_path / f"truth-{self.provider}.sqlite3")
        ref.add_connection(self.conn)
        result = asyncio.run(
            SyncEngine(ref, self.runtime).sync_connection(
                self.conn, SyncOptions(full=True, resources=["bookings"])
            )
        )
        assert result.status == "succeeded", result.error
        rows = {r["external_id"]: r for r in ref.fetch_rows("booking", self.conn.id)}
        ref.close()
        return rows

    def bookings(self) -> dict[str, dict[str, Any]]:
        return {r["external_id"]: r for r in self.store.fetch_rows("booking", self.conn.id)}


COMPARED = ("status", "total_price", "check_in", "check_out", "guest_name", "deleted_at")


def same_state(row: dict[str, Any], truth: dict[str, Any]) -> bool:
    return all(row[k] == truth[k] for k in COMPARED)


@pytest.fixture
def rig_factory(tmp_path: Path, clock: Any) -> Iterator[Any]:
    rigs: list[Rig] = []

    def make(provider: str, **kw: Any) -> Rig:
        rig = Rig(provider, tmp_path, clock, reservations=kw.pop("reservations", 30), **kw)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.store.close()
