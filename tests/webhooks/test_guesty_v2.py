"""Guesty's v2 reservation webhooks: lean bodies, the subscription's move to v2, Svix headers."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from pms_cli.webhooks.base import Change, Delivery, Rejected
from pms_cli.webhooks.guesty import EVENTS, SPEC, sign_svix, verify_svix
from tests.conftest import SharedClock
from tests.helpers import Harness
from tests.providers.test_guesty_http import connected, harness

RID = "62a08097b8a1ab0037fd3feb"
DELIVERY = Delivery(b"{}", {})


@pytest.mark.parametrize(
    "body",
    [
        {"eventType": "reservation.created.v2", "data": {"reservationId": RID}},
        {"event": "reservation.updated.v2", "data": {"reservation": {"id": RID}}},
        {"eventType": "reservation.updated.v2", "data": {"reservation": {"_id": RID}}},
        {"eventType": "reservation.updated.v2", "reservationId": RID, "data": {"stay": []}},
        {"event": "reservation.new", "reservation": {"_id": RID}},  # legacy, in transition
        {"event": "reservation_update_shortlist", "reservation": {"_id": RID}},
    ],
)
def test_reservation_bodies_name_the_booking_wherever_the_id_sits(body: dict[str, Any]) -> None:
    event = body.get("event") or body.get("eventType")
    assert SPEC.parse(body, DELIVERY).changes == (Change("bookings", RID, str(event)),)


def test_a_v2_body_without_a_reservation_id_is_a_bad_payload() -> None:
    with pytest.raises(ValueError, match="without a reservation id"):
        SPEC.parse({"eventType": "reservation.updated.v2", "data": {"stay": []}}, DELIVERY)


def test_subscribing_asks_for_the_v2_events_never_the_legacy_ones() -> None:
    assert {"reservation.created.v2", "reservation.updated.v2"} <= set(EVENTS)
    assert not {"reservation.new", "reservation.updated"} & set(EVENTS)


def test_standard_webhooks_headers_verify_like_svix_ones() -> None:
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body, now = b'{"eventType":"reservation.created.v2"}', int(time.time())
    signature = Webhook(secret).sign("msg_1", datetime.fromtimestamp(now, UTC), body)
    standard = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(now),
        "webhook-signature": signature,
    }
    svix = {"svix-id": "msg_1", "svix-timestamp": str(now), "svix-signature": signature}
    assert verify_svix(secret, standard, body, now) == verify_svix(secret, svix, body, now)
    Webhook(secret).verify(body, standard)  # the package's own verifier agrees
    assert sign_svix(secret, "msg_1", now, body) == signature
    with pytest.raises(Rejected):
        verify_svix("whsec_!!!", svix, body, now)


# --- subscribe ------------------------------------------------------------------------------


def subscribe(h: Harness, url: str) -> dict[str, str]:
    async def go() -> dict[str, str]:
        async with connected(h) as adapter:
            return await SPEC.subscribe(adapter, url, {})

    return asyncio.run(go())


def test_a_new_subscription_gets_the_v2_events_and_its_secret(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, listings=2, reservations=5)
    url = f"https://hooks.example.com/webhooks/guesty/{h.conn.id}"
    kept = subscribe(h, url)
    [hook] = h.state.webhooks.values()
    assert hook["url"] == url and hook["events"] == list(EVENTS)
    assert kept == {"webhook_secret": hook["secret"]}


def test_an_existing_legacy_subscription_moves_to_v2_with_put_and_keeps_its_secret(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, listings=2, reservations=5)
    url = f"https://hooks.example.com/webhooks/guesty/{h.conn.id}"
    old = h.state.add_webhook(url, ["reservation.new", "reservation.updated", "listing.new"])
    secret = h.state.webhooks[old["_id"]]["secret"]
    kept = subscribe(h, url)
    hook = h.state.webhooks[old["_id"]]
    assert set(hook["events"]) == set(EVENTS)
    assert h.state.webhook_updates == 1 and len(h.state.webhooks) == 1
    assert kept == {"webhook_secret": secret}
    subscribe(h, url)  # already up to date: nothing to change
    assert h.state.webhook_updates == 1


def test_a_new_public_url_deletes_the_old_webhook_and_stores_the_new_secret(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, listings=2, reservations=5)
    old_url = f"https://old.example.com/webhooks/guesty/{h.conn.id}"
    other = h.state.add_webhook("https://elsewhere.example.com/hook", ["listing.new"])
    old = h.state.add_webhook(old_url, ["reservation.new"])
    old_secret = h.state.webhooks[old["_id"]]["secret"]
    new_url = f"https://new.example.com/webhooks/guesty/{h.conn.id}"
    kept = subscribe(h, new_url)
    assert old["_id"] not in h.state.webhooks and other["_id"] in h.state.webhooks
    [new] = [w for w in h.state.webhooks.values() if w["url"] == new_url]
    assert kept == {"webhook_secret": new["secret"]} and new["secret"] != old_secret
