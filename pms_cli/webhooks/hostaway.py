"""Hostaway unified webhooks: HTTP Basic auth per connection (no signature is documented).

Fact sheet: shared/providers/hostaway.md §6. Payload ``{object, event, accountId, data}``
(some senders nest it as ``payload.data``); ``data`` is the full reservation, but the receiver
refetches ``GET reservations/{id}`` anyway. No delivery id is documented, so the body content
is the event identity.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr

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

OBJECTS = {"reservation": "bookings", "listing": "properties"}


class HostawayWebhooks(WebhookSpec):
    provider = "hostaway"
    verification = "HTTP Basic auth (per-connection login + generated password)"
    secret_names = ("webhook_login", "webhook_password")
    generated = ("webhook_login", "webhook_password")
    subscribe_api = True

    def verify(self, delivery: Delivery, secrets: Mapping[str, SecretStr], now: float) -> None:
        login, password = secrets.get("webhook_login"), secrets.get("webhook_password")
        if login is None or password is None:
            raise Rejected("not_configured")
        scheme, _, value = delivery.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic" or not value:
            raise Rejected("missing_credentials")
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
            user, sep, given = decoded.partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise Rejected("bad_credentials") from None
        # Both compared, always: timing does not tell which half was wrong.
        ok_user = constant_time_equal(user, login.get_secret_value())
        ok_pass = constant_time_equal(given, password.get_secret_value())
        if not (sep and ok_user and ok_pass):
            raise Rejected("wrong_secret")

    def parse(self, body: Any, delivery: Delivery) -> Parsed:
        if not isinstance(body, dict):
            raise ValueError("Hostaway webhook body is not an object")
        data = body.get("data")
        if not isinstance(data, dict) and isinstance(body.get("payload"), dict):
            data = body["payload"].get("data")
        event = str(body.get("event") or "")
        obj = str(body.get("object") or event.partition(".")[0])
        resource = OBJECTS.get(obj)
        if resource is None:
            return Parsed((), ignored=event or obj or "unknown")
        rid = text_id(data.get("id")) if isinstance(data, dict) else None
        if rid is None:
            raise ValueError("Hostaway webhook without data.id")
        return Parsed((Change(resource, rid, event),))

    def setup(self, base: str, conn: Connection, secrets: Mapping[str, SecretStr]) -> SetupInfo:
        url = self.url(base, conn, secrets)
        return SetupInfo(
            url=url,
            fields={
                "URL": url,
                "Login": secrets["webhook_login"].get_secret_value(),
                "Password": secrets["webhook_password"].get_secret_value(),
            },
            steps=(
                "Open Hostaway → Settings → Integrations → Webhooks "
                "(dashboard.hostaway.com/settings/integrations), add a unified webhook.",
                "Paste the URL, and the Login and Password below into its HTTP Basic auth "
                "fields; enable it and save.",
                f"Or let pms do it through the API: `pms webhook subscribe hostaway "
                f"--connection {conn.id} --public-base {base}`.",
            ),
            note="Hostaway retries only 5xx/429 (3 times within about an hour); keep the "
            "receiver reachable over HTTPS.",
        )

    async def subscribe(
        self, adapter: Provider, url: str, secrets: Mapping[str, SecretStr]
    ) -> dict[str, str]:
        await adapter.http.request_json(
            "POST",
            "webhooks/unifiedWebhooks",
            json_body={
                "isEnabled": 1,
                "url": url,
                "login": secrets["webhook_login"].get_secret_value(),
                "password": secrets["webhook_password"].get_secret_value(),
                "alertingEmailAddress": None,
            },
        )
        return {}


SPEC = HostawayWebhooks()
