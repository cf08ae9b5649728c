"""Beds24 booking webhooks: no signature; a per-connection token in a custom header.

Fact sheet: shared/providers/beds24.md §6. Configured per property (Settings → Properties →
Access → Booking Webhook, or ``POST /properties`` with a ``webhooks`` object) with the
*Custom Header* ``X-Pms-Webhook-Token: <token>``; ``?token=`` in the URL works as well. Version 2
sends ``{timeStamp, booking: {...}, retries}`` (``retries`` counts attempts, so it is left out of
the dedupe key); version 1 appends ``bookid`` and ``status`` to the URL and may POST card data
as a form, which is never read or stored.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr

from pms_cli.errors import ProviderError
from pms_cli.providers.base import Provider
from pms_cli.stores.base import Connection
from pms_cli.webhooks.base import (
    TOKEN_HEADER,
    Change,
    Delivery,
    Parsed,
    SetupInfo,
    WebhookSpec,
    content_key,
    text_id,
)
from pms_cli.webhooks.smoobu import check_token


class Beds24Webhooks(WebhookSpec):
    provider = "beds24"
    verification = "per-connection token in the custom header X-Pms-Webhook-Token (or ?token=)"
    secret_names = ("webhook_token",)
    generated = ("webhook_token",)
    subscribe_api = True

    def verify(self, delivery: Delivery, secrets: Mapping[str, SecretStr], now: float) -> None:
        check_token(delivery, secrets)

    def json_body(self, delivery: Delivery) -> Any:
        if "bookid" in delivery.query:  # version 1: the query is the event; ignore the form
            return {"bookid": delivery.query["bookid"], "status": delivery.query.get("status")}
        return super().json_body(delivery)

    def parse(self, body: Any, delivery: Delivery) -> Parsed:
        if not isinstance(body, dict):
            raise ValueError("Beds24 webhook body is not an object")
        booking = body.get("booking")
        booking_id = text_id(booking.get("id")) if isinstance(booking, dict) else None
        booking_id = booking_id or text_id(body.get("bookid"))
        if booking_id is None:
            raise ValueError("Beds24 webhook without booking.id")
        # No event field: status is unreliable (a new booking may come as "modify").
        status = booking.get("status") if isinstance(booking, dict) else body.get("status")
        return Parsed((Change("bookings", booking_id, str(status or "")),))

    def dedupe_key(self, body: Any, delivery: Delivery) -> str:
        if "bookid" in delivery.query:
            # Version 1 says nothing about the state: every delivery is its own event.
            return f"v1:{uuid.uuid4()}"
        return content_key(body, drop=("retries",))

    def custom_header(self, secrets: Mapping[str, SecretStr]) -> str:
        return f"{TOKEN_HEADER}: {secrets['webhook_token'].get_secret_value()}"

    def setup(self, base: str, conn: Connection, secrets: Mapping[str, SecretStr]) -> SetupInfo:
        url = self.url(base, conn, secrets)
        return SetupInfo(
            url=url,
            fields={
                "URL": url,
                "Custom Header": self.custom_header(secrets),
                "Webhook Version": "2 - with personal data",
            },
            steps=(
                "For every property: Beds24 → Settings → Properties → Access → Booking Webhook.",
                "Set Webhook Version to 2 (with personal data), paste the URL and the Custom "
                "Header line below, and save.",
                f"Or `pms webhook subscribe beds24 --connection {conn.id} --public-base {base}` "
                "sets it on every property (needs a refresh-token connection with write "
                "access to properties; the long-life token is read-only).",
            ),
            note="Version 2 webhooks may need enabling by Beds24 support. Changes made through "
            "the API fire webhooks only with allowWebhooks.",
        )

    async def subscribe(
        self, adapter: Provider, url: str, secrets: Mapping[str, SecretStr]
    ) -> dict[str, str]:
        ids: list[Any] = []
        async for page in adapter.pages(adapter.resource("properties"), None):
            ids += [p.get("id") for p in page if p.get("id") is not None]
        if not ids:
            raise ProviderError(
                "this Beds24 account has no property to attach a booking webhook to",
                hint="Create a property first, or configure the webhook in the dashboard.",
                code="no_properties",
                provider="beds24",
            )
        hook = {
            "url": url,
            "version": "twoWithPersonalData",
            "customHeader": self.custom_header(secrets),
            "additionalData": "none",
        }
        await adapter.http.request_json(
            "POST", "properties", json_body=[{"id": pid, "webhooks": hook} for pid in ids]
        )
        return {}


SPEC = Beds24Webhooks()
