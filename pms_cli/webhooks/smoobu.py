"""Smoobu webhooks: no signature exists, so the URL carries an unguessable per-connection token.

Fact sheet: shared/providers/smoobu.md §6. One URL per account, set in Settings → Developer
(API); body ``{action, user, data}`` with the full booking in ``data`` (some handlers see it
under ``booking`` or at the top level). Unknown actions are acknowledged and ignored.

Actions about something *attached* to a booking name it differently: ``onlineCheckInUpdate``
sends ``data.bookingId`` (seen by two receivers), and for ``priceElementCreated/Updated/Deleted``
``data.id`` may be the price element's own id. For those the booking id is taken from a field
that names a booking, and ``data.id`` only when ``data`` is itself a booking; refetching the
element's id as a booking would mark an unrelated booking deleted on a 404.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from pydantic import SecretStr

from pms_cli.stores.base import Connection
from pms_cli.webhooks.base import (
    TOKEN_HEADER,
    Change,
    Delivery,
    Parsed,
    Rejected,
    SetupInfo,
    WebhookSpec,
    constant_time_equal,
    text_id,
)

BOOKING_ACTIONS = frozenset(
    {"newReservation", "updateReservation", "cancelReservation", "deleteReservation"}
)
# --- unverified facts: which key names the booking in these actions' `data` -----------------
ATTACHED_ACTIONS = frozenset(
    {"priceElementCreated", "priceElementUpdated", "priceElementDeleted", "onlineCheckInUpdate"}
)
BOOKING_ID_KEYS = ("bookingId", "reservationId", "booking_id", "reservation_id")
BOOKING_OBJECT_KEYS = ("booking", "reservation")
# Keys only a booking object has (a price element has id/type/name/amount/...).
BOOKING_MARKERS = ("arrival", "departure", "apartment", "guest-name", "reference-id")
# ---------------------------------------------------------------------------------------------


def attached_booking_id(data: dict[str, Any]) -> str | None:
    """The booking a price element / online check-in payload is about, or None."""
    for key in BOOKING_ID_KEYS:
        if (found := text_id(data.get(key))) is not None:
            return found
    for key in BOOKING_OBJECT_KEYS:
        nested = data.get(key)
        if isinstance(nested, dict) and (found := text_id(nested.get("id"))) is not None:
            return found
    if any(marker in data for marker in BOOKING_MARKERS):
        return text_id(data.get("id"))  # `data` is the booking itself
    return None


def check_token(delivery: Delivery, secrets: Mapping[str, SecretStr]) -> None:
    """The per-connection token, from ``?token=`` or the ``X-Pms-Webhook-Token`` header."""
    token = secrets.get("webhook_token")
    if token is None:
        raise Rejected("not_configured")
    given = delivery.query.get("token") or delivery.headers.get(TOKEN_HEADER.lower())
    if given is None:
        raise Rejected("missing_credentials")
    if not constant_time_equal(given, token.get_secret_value()):
        raise Rejected("wrong_secret")


class SmoobuWebhooks(WebhookSpec):
    provider = "smoobu"
    verification = "unguessable per-connection token in the URL (?token=); no signature exists"
    secret_names = ("webhook_token",)
    generated = ("webhook_token",)

    def verify(self, delivery: Delivery, secrets: Mapping[str, SecretStr], now: float) -> None:
        check_token(delivery, secrets)

    def parse(self, body: Any, delivery: Delivery) -> Parsed:
        if not isinstance(body, dict):
            raise ValueError("Smoobu webhook body is not an object")
        action = str(body.get("action") or "")
        if action in ATTACHED_ACTIONS:
            inner = body.get("data")
            attached_to = attached_booking_id(inner if isinstance(inner, dict) else body)
            if attached_to is None:
                # Nothing names the booking: acknowledged; the next `pms sync` reads the
                # change through the booking's moved modification time.
                return Parsed((), ignored=f"{action} without a booking id")
            return Parsed((Change("bookings", attached_to, action),))
        if action not in BOOKING_ACTIONS:
            return Parsed((), ignored=action or "unknown")
        data = next(
            (d for d in (body.get("data"), body.get("booking")) if isinstance(d, dict)), body
        )
        booking_id = text_id(data.get("id"))
        if booking_id is None:
            raise ValueError("Smoobu booking webhook without an id")
        return Parsed((Change("bookings", booking_id, action),))

    def url(self, base: str, conn: Connection, secrets: Mapping[str, SecretStr]) -> str:
        query = urlencode({"token": secrets["webhook_token"].get_secret_value()})
        return f"{base.rstrip('/')}/webhooks/{self.provider}/{conn.id}?{query}"

    def setup(self, base: str, conn: Connection, secrets: Mapping[str, SecretStr]) -> SetupInfo:
        url = self.url(base, conn, secrets)
        return SetupInfo(
            url=url,
            fields={"Webhook URL": url},
            steps=(
                "Open Smoobu → Settings → Developer (API; German UI: Einstellungen → "
                "API / Entwickler).",
                'Paste the URL into the field "Webhook URL" and save. One URL per account: '
                "every event goes to it.",
                "The token in the URL is the only proof a delivery is from Smoobu: treat the "
                "URL as a secret (`pms webhook url --rotate` issues a new one).",
            ),
            note="Smoobu has no webhook API and no signature; keep the periodic `pms sync` as "
            "a safety net, redelivery is not guaranteed.",
        )


SPEC = SmoobuWebhooks()
