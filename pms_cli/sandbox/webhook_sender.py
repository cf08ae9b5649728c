"""Outgoing webhooks of the sandbox emulators: queued on each mutation, sent when asked.

Each sandbox builds the provider's documented payload and authentication (signature, Basic
auth, custom header) itself — independently of ``pms_cli.webhooks``, so tests that feed these
deliveries to the receiver check one implementation of each scheme against another. Sending is
explicit (``send_all`` / ``asend_all``) so tests decide when, and can shuffle or duplicate
deliveries the way real providers do.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = ["OutgoingWebhook", "WebhookSender"]


@dataclass(frozen=True)
class OutgoingWebhook:
    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def payload(self) -> Any:
        return json.loads(self.body)


class WebhookSender:
    """A queue of deliveries; failed ones stay queued, as a provider's retry would."""

    def __init__(self) -> None:
        self.outbox: list[OutgoingWebhook] = []
        self.delivered: list[OutgoingWebhook] = []
        self._lock = threading.Lock()

    def queue(
        self, url: str, body: bytes, headers: Mapping[str, str] | None = None
    ) -> OutgoingWebhook:
        hook = OutgoingWebhook(
            url, body, {"Content-Type": "application/json", **dict(headers or {})}
        )
        with self._lock:
            self.outbox.append(hook)
        return hook

    def take(
        self, *, shuffle: random.Random | None = None, duplicates: int = 0
    ) -> list[OutgoingWebhook]:
        """Empty the queue; optionally in shuffled order with ``duplicates`` repeats."""
        with self._lock:
            hooks, self.outbox = self.outbox, []
        if duplicates and hooks:
            rng = shuffle or random.Random(0)
            hooks += [rng.choice(hooks) for _ in range(duplicates)]
        if shuffle is not None:
            shuffle.shuffle(hooks)
        return hooks

    def _done(self, hook: OutgoingWebhook, status: int | None) -> None:
        with self._lock:
            if status is not None and 200 <= status < 300:
                self.delivered.append(hook)
            else:
                self.outbox.append(hook)  # redelivered by the next send

    def send_all(self, client: httpx.Client | None = None, **take: Any) -> list[int | None]:
        """POST every queued delivery; returns the statuses (None: connection failed)."""
        own = client is None
        http = client or httpx.Client(timeout=10.0)
        statuses: list[int | None] = []
        try:
            for hook in self.take(**take):
                try:
                    status: int | None = http.post(
                        hook.url, content=hook.body, headers=hook.headers
                    ).status_code
                except httpx.TransportError:
                    status = None
                self._done(hook, status)
                statuses.append(status)
        finally:
            if own:
                http.close()
        return statuses

    async def asend_all(self, client: httpx.AsyncClient, **take: Any) -> list[int | None]:
        statuses: list[int | None] = []
        for hook in self.take(**take):
            try:
                status: int | None = (
                    await client.post(hook.url, content=hook.body, headers=hook.headers)
                ).status_code
            except httpx.TransportError:
                status = None
            self._done(hook, status)
            statuses.append(status)
        return statuses


def dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
