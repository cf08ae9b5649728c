"""Beds24 booking webhooks: no signature; a per-connection token in a custom header.

Fact sheet: shared/providers/beds24.md §6. Configured per property (Settings → Properties →
Access → Booking Webhook, or ``POST /properties`` with a ``webhooks`` object) with the
*Custom Header* ``X-Pms-Webhook-Token: <token>``; ``?token=`` in the URL works as well. Version 2
sends ``{timeStamp, booking: {...}, retries}`` (``retries`` counts attempts, so it is left out of
the dedupe key). Some deliveries are a JSON *array* (one integrator reads ``body[0].booking.id``):
each item, a ``{booking: {...}}`` envelope or a bare booking, names one booking to refetch.
Version 1 appends ``bookid`` and ``status`` to the URL and may POST card data
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
        items = body if isinstance(body, list) else [body]
        if not items or not all(isinstance(item, dict) for item in items):
            raise ValueError("Beds24 webhook body is not an object or a list of objects")
        changes: dict[str, Change] = {}  # one refetch per booking, however often it is named
        for item in items:
            change = _change(item, bare_booking=isinstance(body, list))
            changes.setdefault(change.external_id, change)
        return Parsed(tuple(changes.values()))

    def dedupe_key(self, body: Any, delivery: Delivery) -> str:
        if "bookid" in delivery.query:
            # Version 1 says nothing about the state: every delivery is its own event.
            return f"v1:{uuid.uuid4()}"
        if isinstance(body, list):
            return content_key(
                [
                    {k: v for k, v in item.items() if k != "retries"}
                    if isinstance(item, dict)
                    else item
                    for item in body
                ]
            )
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


def _change(item: dict[str, Any], bare_booking: bool) -> Change:
    """The booking one webhook object names: ``{booking: {id}}`` (version 2), ``{bookid}``
    (version 1 query) or, inside an array, a bare booking ``{id, ...}``."""
    booking = item.get("booking")
    if not isinstance(booking, dict):
        booking = item if bare_booking and "bookid" not in item else {}
    booking_id = text_id(booking.get("id")) or text_id(item.get("bookid"))
    if booking_id is None:
        raise ValueError("Beds24 webhook without booking.id")
    # No event field: status is unreliable (a new booking may come as "modify").
    status = booking.get("status") if booking else item.get("status")
    return Change("bookings", booking_id, str(status or ""))


SPEC = Beds24Webhooks()
