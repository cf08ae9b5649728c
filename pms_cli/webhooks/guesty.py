"""Guesty webhooks, delivered by Svix: signed id + timestamp + body, with a tolerance window.

Fact sheet: shared/providers/guesty.md §3.4, §6 and the "Changes checked 2026-12-06" block.
Headers ``svix-id``, ``svix-timestamp`` (unix seconds) and ``svix-signature`` (space-separated
``v1,<base64>``), or the Standard Webhooks names ``webhook-*`` for the same scheme; the secret is
``whsec_<base64 key>``. The HMAC is the maintained ``standardwebhooks`` package's.

Reservation events are the v2 ones (``reservation.created.v2`` / ``reservation.updated.v2``;
the legacy ``reservation.new`` / ``reservation.updated`` are phased out by the end of 2026).
Their bodies are lean and where the reservation id sits is unconfirmed, so every reported place
is read; the receiver refetches the reservation through ``reservations-v3`` by id either way.
Legacy bodies still parse during the transition. Dedupe key: ``svix-id`` (Svix reuses it for
every retry of one message).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
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
    content_key,
    text_id,
)

TOLERANCE_SECONDS = 300  # Svix's documented window, both directions
V2_RESERVATION_EVENTS = ("reservation.created.v2", "reservation.updated.v2")
LEGACY_RESERVATION_EVENTS = frozenset(
    {"reservation.new", "reservation.updated", "reservation_update_shortlist"}
)
EVENTS = (
    *V2_RESERVATION_EVENTS,
    "listing.new",
    "listing.updated",
    "listing.removed",
    "guest.created",
    "guest.updated",
    "guest.deleted",
)
DOMAINS = {"reservation": "bookings", "listing": "properties", "guest": "guests"}


def _webhook(secret: str) -> Any:
    from standardwebhooks.webhooks import Webhook  # only the receiver needs it

    try:
        return Webhook(secret)
    except Exception:  # bad base64, empty key: the stored secret is not a Svix secret
        raise Rejected("bad_secret_format") from None


def sign_svix(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``svix-signature`` value a sender computes (used by tests)."""
    return str(_webhook(secret).sign(msg_id, datetime.fromtimestamp(timestamp, UTC), body))


def verify_svix(secret: str, headers: Mapping[str, str], body: bytes, now: float) -> str:
    """Verify a Svix / Standard Webhooks delivery; returns the message id or raises Rejected.

    The signature is ``standardwebhooks``' own ``sign``; the timestamp window is checked here
    against ``now`` because ``Webhook.verify`` reads the wall clock, which the receiver's
    injected clock (tests, replays) must govern.
    """
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
    expected = sign_svix(secret, msg_id, timestamp, body).encode()
    if not any(hmac.compare_digest(expected, part.encode()) for part in given.split()):
        raise Rejected("bad_signature")
    return msg_id


def _record_id(body: Mapping[str, Any], domain: str) -> str | None:
    """The record's id wherever a legacy or v2 body puts it."""
    data = body["data"] if isinstance(body.get("data"), dict) else {}
    candidates: list[object] = []
    for holder in (body.get(domain), data.get(domain)):
        if isinstance(holder, dict):
            candidates += [holder.get("_id"), holder.get("id")]
    candidates += [data.get(f"{domain}Id"), body.get(f"{domain}Id"), data.get("_id")]
    return next((i for i in map(text_id, candidates) if i), None)


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
        event = str(body.get("event") or body.get("eventType") or body.get("type") or "")
        domain = event.partition(".")[0]
        if event == "reservation_update_shortlist":
            domain = "reservation"
        resource = DOMAINS.get(domain)
        if resource is None or event.startswith("reservation.message"):
            return Parsed((), ignored=event or "unknown")
        record_id = _record_id(body, domain)
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
                f"{base}` creates the webhook (POST /v1/webhooks), or moves an existing one to "
                "the v2 reservation events (PUT /v1/webhooks/{id}), and stores its signing "
                "secret.",
                "Or in Guesty → Integrations → Webhooks (or the Marketplace app), add the URL "
                "with the events above, copy the endpoint's signing secret (whsec_…) and run "
                f"`pms webhook secret guesty --connection {conn.id}` to store it.",
            ),
            note="Each endpoint URL has its own secret; Guesty cannot change a webhook's URL, "
            "so a new URL means a new webhook and a new secret (subscribe stores it).",
        )

    async def subscribe(
        self, adapter: Provider, url: str, secrets: Mapping[str, SecretStr]
    ) -> dict[str, str]:
        """Create the webhook, or bring this connection's existing one up to date.

        Same URL: ``PUT /webhooks/{id}`` with the v2 reservation events in place of the legacy
        ones (events only; the signing secret stays). Another URL for this connection (a new
        public base): Guesty cannot change a URL since 2025-12-28, so the old webhook is
        deleted and a new one created, whose new secret is returned to be stored.
        """
        existing = await adapter.http.get_json("webhooks")
        items = existing if isinstance(existing, list) else []
        if isinstance(existing, dict) and isinstance(existing.get("results"), list):
            items = existing["results"]
        hooks = [w for w in items if isinstance(w, dict)]
        path = url.split("://", 1)[-1].partition("/")[2]
        same = next((w for w in hooks if w.get("url") == url), None)
        moved = [w for w in hooks if w is not same and str(w.get("url", "")).endswith(path)]
        for hook in moved:  # this connection's webhook at an old address
            await adapter.http.request_json("DELETE", f"webhooks/{_hook_id(hook)}")
        if same is None:
            await adapter.http.request_json(
                "POST", "webhooks", json_body={"url": url, "events": list(EVENTS)}
            )
        else:
            events = [str(e) for e in same.get("events") or []]
            wanted = [e for e in events if e not in LEGACY_RESERVATION_EVENTS]
            wanted += [e for e in EVENTS if e not in wanted]
            if wanted != events:
                await adapter.http.request_json(
                    "PUT", f"webhooks/{_hook_id(same)}", json_body={"events": wanted}
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


def _hook_id(hook: Mapping[str, Any]) -> str:
    hook_id = text_id(hook.get("_id")) or text_id(hook.get("id"))
    if hook_id is None:
        raise ProviderError(
            "Guesty listed a webhook without an id",
            hint="Remove the old webhook in Guesty → Integrations → Webhooks, then subscribe "
            "again.",
            code="provider_garbage",
            provider="guesty",
        )
    return hook_id


SPEC = GuestyWebhooks()
