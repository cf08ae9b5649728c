"""Lodgify webhooks: ``ms-signature: sha256=<hex>`` HMAC-SHA256 of the raw body.

Fact sheet: shared/providers/lodgify.md §6. Each subscription (one per event, each with its own
``target_url``) gets its own secret, returned once by ``POST /webhooks/v1/subscribe``: they are
kept as ``webhook_secret.<event>`` and a delivery is accepted when any of them signed it. The
body is one event object or (observed) an array of them; booking events name the booking, which
is then refetched (``GET /v2/reservations/bookings/{id}``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from pydantic import SecretStr

from pms_cli.errors import ProviderError
from pms_cli.providers.base import Provider
from pms_cli.stores.base import Connection
from pms_cli.webhooks.base import (
    Change,
    Delivery,
    Parsed,
    Rejected,
    SetupInfo,
    WebhookSpec,
    constant_time_equal,
    text_id,
)

SECRET_PREFIX = "webhook_secret."
# Every event that can change a booking; rate/availability/message events are not synced data.
EVENTS = (
    "booking_new_any_status",
    "booking_change",
    "booking_status_change_booked",
    "booking_status_change_tentative",
    "booking_status_change_open",
    "booking_status_change_declined",
)


def signature(secret: str, body: bytes) -> str:
    """The documented header value: ``sha256=`` + lower-case hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class LodgifyWebhooks(WebhookSpec):
    provider = "lodgify"
    verification = "ms-signature HMAC-SHA256 of the raw body with the secret from subscribe"
    secret_names = tuple(SECRET_PREFIX + e for e in EVENTS)
    subscribe_api = True

    def verify(self, delivery: Delivery, secrets: Mapping[str, SecretStr], now: float) -> None:
        keys = [v for k, v in secrets.items() if k.startswith(SECRET_PREFIX)]
        if not keys:
            raise Rejected("not_configured")
        given = delivery.headers.get("ms-signature")
        if not given:
            raise Rejected("missing_signature")
        # Hex case is unverified: compare lower-case; every key is tried (no early exit).
        given = given.strip().lower()
        matches = [constant_time_equal(given, signature(k.get_secret_value(), delivery.body))
                   for k in keys]  # fmt: skip
        if not any(matches):
            raise Rejected("bad_signature")

    def parse(self, body: Any, delivery: Delivery) -> Parsed:
        items = body if isinstance(body, list) else [body]
        changes: list[Change] = []
        ignored: list[str] = []
        for item in items:
            if not isinstance(item, dict):
                raise ValueError("Lodgify webhook item is not an object")
            action = str(item.get("action") or "")
            if not action.startswith("booking_"):
                ignored.append(action or "unknown")
                continue
            booking = item.get("booking")
            booking_id = text_id(booking.get("id")) if isinstance(booking, dict) else None
            if booking_id is None:
                raise ValueError("Lodgify booking webhook without booking.id")
            changes.append(Change("bookings", booking_id, action))
        return Parsed(changes, ignored=None if changes else ",".join(ignored) or "empty")

    def event_url(self, url: str, event: str) -> str:
        # target_url must be unique per subscription: the query tells them apart.
        return f"{url}?{urlencode({'event': event})}"

    def setup(self, base: str, conn: Connection, secrets: Mapping[str, SecretStr]) -> SetupInfo:
        url = self.url(base, conn, secrets)
        subscribed = sorted(k[len(SECRET_PREFIX) :] for k in secrets if k.startswith(SECRET_PREFIX))
        return SetupInfo(
            url=url,
            fields={"URL": url, "Subscribed events": ", ".join(subscribed) or "none yet"},
            steps=(
                "Lodgify webhooks are created through its API, and the signing secret is "
                "returned only then.",
                f"Run `pms webhook subscribe lodgify --connection {conn.id} --public-base "
                f"{base}`: it subscribes {', '.join(EVENTS)} (one target URL each) and keeps "
                "the secrets with the connection's credentials.",
            ),
            note="Deliveries are verified with the ms-signature header; without a subscription "
            "made by pms every delivery is rejected.",
        )

    async def subscribe(
        self, adapter: Provider, url: str, secrets: Mapping[str, SecretStr]
    ) -> dict[str, str]:
        existing = await adapter.http.get_json("webhooks/v1/list")
        by_url = {
            str(w.get("url") or w.get("target_url")): w.get("id")
            for w in (existing if isinstance(existing, list) else [])
            if isinstance(w, dict)
        }
        kept: dict[str, str] = {}
        for event in EVENTS:
            target = self.event_url(url, event)
            if target in by_url:
                # The secret is shown only at subscribe time: re-subscribe to learn a new one.
                await adapter.http.request_json(
                    "DELETE", "webhooks/v1/unsubscribe", json_body={"id": by_url[target]}
                )
            body = await adapter.http.request_json(
                "POST", "webhooks/v1/subscribe", json_body={"target_url": target, "event": event}
            )
            secret = body.get("secret") if isinstance(body, dict) else None
            if not isinstance(secret, str) or not secret:
                raise ProviderError(
                    "Lodgify answered the subscription without a secret",
                    hint="Run `pms webhook subscribe lodgify` again; report it if it persists.",
                    code="provider_garbage",
                    provider="lodgify",
                )
            kept[SECRET_PREFIX + event] = secret
        return kept


SPEC = LodgifyWebhooks()
