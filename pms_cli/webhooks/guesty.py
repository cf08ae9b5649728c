"""Guesty webhooks, delivered by Svix: signed id + timestamp + body, with a tolerance window.

Fact sheet: shared/providers/guesty.md §3.4 and §6. Headers ``svix-id``, ``svix-timestamp``
(unix seconds) and ``svix-signature`` (space-separated ``v1,<base64>``); the secret is
``whsec_<base64 key>``; signed content ``"{id}.{timestamp}.{raw body}"`` with HMAC-SHA256.
The Standard Webhooks names (``webhook-id`` …) are the same scheme and accepted too.

This is the documented algorithm, implemented here (25 lines) rather than with the ``svix`` /
``standardwebhooks`` packages, which are not dependencies of pms; ``verify_svix`` is the one
function to swap for ``standardwebhooks.Webhook(secret).verify`` if the dependency is added.
Dedupe key: ``svix-id`` (Svix reuses it for every retry of one message).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

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
    b64,
    constant_time_equal,
    content_key,
    hmac_sha256,
    text_id,
)

TOLERANCE_SECONDS = 300  # Svix's documented window, both directions
EVENTS = (
    "reservation.new",
    "reservation.updated",
    "listing.new",
    "listing.updated",
    "listing.removed",
    "guest.created",
    "guest.updated",
    "guest.deleted",
)
DOMAINS = {"reservation": "bookings", "listing": "properties", "guest": "guests"}


def _key(secret: str) -> bytes:
    raw = secret.removeprefix("whsec_")
    try:
        return base64.b64decode(raw, validate=True)
    except binascii.Error:
        raise Rejected("bad_secret_format") from None


def sign_svix(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``svix-signature`` value a sender computes (used by the sandbox and tests)."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + b64(hmac_sha256(_key(secret), content))


def verify_svix(secret: str, headers: Mapping[str, str], body: bytes, now: float) -> str:
    """Verify a Svix / Standard Webhooks delivery; returns the message id or raises Rejected."""
    msg_id = headers.get("svix-id") or headers.get("webhook-id")
    stamp = headers.get("svix-timestamp") or headers.get("webhook-timestamp")
    given = headers.get("svix-signature") or headers.get("webhook-signature")
    if not (msg_id and stamp and given):
        raise Rejected("missing_signature")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise Rejected("bad_timestamp") from None
    if abs(now - timestamp) > TOLERANCE_SECONDS:
        raise Rejected("stale_timestamp")
    expected = sign_svix(secret, msg_id, timestamp, body).partition(",")[2]
    candidates = [part.partition(",") for part in given.split()]
    results = [
        version == "v1" and constant_time_equal(value, expected) for version, _, value in candidates
    ]
    if not any(results):
        raise Rejected("bad_signature")
    return msg_id


class GuestyWebhooks(WebhookSpec):
    provider = "guesty"
    verification = (
        "Svix signature (HMAC-SHA256 of id.timestamp.body, whsec_ secret, 5-minute window)"
    )
    secret_names = ("webhook_secret",)
    subscribe_api = True

    def verify(self, delivery: Delivery, secrets: Mapping[str, SecretStr], now: float) -> None:
        secret = secrets.get("webhook_secret")
        if secret is None:
            raise Rejected("not_configured")
        verify_svix(secret.get_secret_value(), delivery.headers, delivery.body, now)

    def parse(self, body: Any, delivery: Delivery) -> Parsed:
        if not isinstance(body, dict):
            raise ValueError("Guesty webhook body is not an object")
        event = str(body.get("event") or "")
        domain = event.partition(".")[0]
        resource = DOMAINS.get(domain)
        if resource is None or event.startswith("reservation.message"):
            return Parsed((), ignored=event or "unknown")
        obj = body.get(domain)
        candidates: list[object] = []
        if isinstance(obj, dict):
            candidates += [obj.get("_id"), obj.get("id")]
        # v2 lean payloads: the id's location is unverified, so look where it plausibly is.
        data = body["data"] if isinstance(body.get("data"), dict) else {}
        candidates += [body.get(f"{domain}Id"), data.get(f"{domain}Id"), data.get("_id")]
        record_id = next((i for i in map(text_id, candidates) if i), None)
        if record_id is None:
            raise ValueError(f"Guesty {event} webhook without a {domain} id")
        return Parsed((Change(resource, record_id, event),))

    def dedupe_key(self, body: Any, delivery: Delivery) -> str:
        msg_id = delivery.headers.get("svix-id") or delivery.headers.get("webhook-id")
        if msg_id:
            return f"svix:{msg_id}"
        meta = body.get("meta") if isinstance(body, dict) else None
        if isinstance(meta, dict) and text_id(meta.get("messageId")):
            return f"message:{meta['messageId']}"
        return content_key(body)

    def setup(self, base: str, conn: Connection, secrets: Mapping[str, SecretStr]) -> SetupInfo:
        url = self.url(base, conn, secrets)
        return SetupInfo(
            url=url,
            fields={
                "URL": url,
                "Events": ", ".join(EVENTS),
                "Signing secret": "stored" if "webhook_secret" in secrets else "not stored yet",
            },
            steps=(
                f"Easiest: `pms webhook subscribe guesty --connection {conn.id} --public-base "
                f"{base}` creates the webhook (POST /v1/webhooks) and stores its signing secret.",
                "Or in Guesty → Integrations → Webhooks (or the Marketplace app), add the URL "
                "with the events above, copy the endpoint's signing secret (whsec_…) and run "
                f"`pms webhook secret guesty --connection {conn.id}` to store it.",
            ),
            note="Each endpoint URL has its own secret; deleting and recreating the webhook "
            "issues a new one (store it again).",
        )

    async def subscribe(
        self, adapter: Provider, url: str, secrets: Mapping[str, SecretStr]
    ) -> dict[str, str]:
        existing = await adapter.http.get_json("webhooks")
        items = existing if isinstance(existing, list) else []
        if isinstance(existing, dict) and isinstance(existing.get("results"), list):
            items = existing["results"]
        if not any(isinstance(w, dict) and w.get("url") == url for w in items):
            await adapter.http.request_json(
                "POST", "webhooks", json_body={"url": url, "events": list(EVENTS)}
            )
        body = await adapter.http.get_json("webhooks-v2/secret", {"url": url})
        secret = None
        if isinstance(body, dict):
            secret = body.get("key") or body.get("secret")
        if not isinstance(secret, str) or not secret.startswith("whsec_"):
            raise ProviderError(
                "Guesty did not return the webhook signing secret",
                hint="Copy it from Guesty → Integrations → Webhooks and run "
                "`pms webhook secret guesty --connection ID`.",
                code="provider_garbage",
                provider="guesty",
            )
        return {"webhook_secret": secret}


SPEC = GuestyWebhooks()
