"""Smoobu as real accounts show it (issue 14, points 4-8), not as one tidy fact sheet had it.

HMAC signing is mandatory since 2026-09-25, the reservation list spells ``modified-at`` where
everything else says ``modifiedAt``, bookings carry no currency (their apartment does),
``/api/guests`` pages in camelCase, and price-element / online check-in webhooks name the
booking in fields of their own. The sandbox produces each of these shapes by default.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pms_cli.errors import EXIT_CONFIG
from pms_cli.providers.smoobu import PAGE_SIZE, Smoobu, paged, to_booking
from pms_cli.sandbox.server import SandboxOptions, SandboxServer, build
from pms_cli.sandbox.smoobu import SANDBOX_API_KEY, SANDBOX_API_SECRET, SmoobuSandbox
from pms_cli.webhooks.base import Delivery
from pms_cli.webhooks.smoobu import SPEC
from tests.conftest import SharedClock
from tests.providers.test_smoobu_http import make, rows

# --------------------------------------------------------------------------- 4: HMAC mandatory


@pytest.fixture
def smoobu_server() -> Iterator[tuple[str, SmoobuSandbox]]:
    app, (mounted,) = build(SandboxOptions(listings=2, reservations=8, relaxed=True), ["smoobu"])
    server = SandboxServer(app)
    server.start()
    try:
        yield server.base_url(mounted), mounted.state
    finally:
        server.stop()


def test_connect_with_a_key_but_no_secret_fails_at_once_naming_the_secret_and_where_to_get_it(
    pms: Any, smoobu_server: tuple[str, SmoobuSandbox]
) -> None:
    base_url, sandbox = smoobu_server
    result = pms("connect", "smoobu", "--api-key", SANDBOX_API_KEY, "--base-url", base_url)
    assert result.code == EXIT_CONFIG
    assert "Error: " in result.stderr and "SMOOBU_API_SECRET" in result.stderr
    assert "Hint: " in result.stderr and "Settings → Advanced → API Keys" in result.stderr
    assert "Traceback" not in result.stderr
    assert sandbox.stats.requests == 0  # refused before any request
    assert pms("status", "--json").json()["connections"] == []


def test_a_key_only_connection_says_so_in_status_and_its_sync_fails_without_a_request(
    pms: Any, smoobu_server: tuple[str, SmoobuSandbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    base_url, sandbox = smoobu_server
    monkeypatch.setenv("SMOOBU_API_KEY", SANDBOX_API_KEY)
    monkeypatch.setenv("SMOOBU_API_SECRET", SANDBOX_API_SECRET)
    connected = pms("connect", "smoobu", "--from-env", "--base-url", base_url, "--json")
    assert connected.code == 0, connected.stderr
    conn = connected.json()["connection_id"]
    monkeypatch.delenv("SMOOBU_API_SECRET")  # as a connection made before the secret existed
    requests = sandbox.stats.requests

    [row] = pms("status", "--json").json()["connections"]
    assert row["credentials"] == "missing"
    assert "SMOOBU_API_SECRET" in row["credentials_problem"]["message"]
    assert "Advanced → API Keys" in row["credentials_problem"]["hint"]
    monkeypatch.setenv("COLUMNS", "400")  # one line per cell, so the text can be searched
    table = pms("status")
    assert table.code == 1  # a connection needs attention
    assert "SMOOBU_API_SECRET" in table.stdout and "Hint:" in table.stdout

    sync = pms("sync", "--connection", conn, "--json")
    assert sync.code == EXIT_CONFIG  # a clear config error, not a provider 401 retried
    error = sync.json()["connections"][0]["error"]
    assert error["code"] == "credentials_missing"
    assert "SMOOBU_API_SECRET" in error["message"]
    assert sandbox.stats.requests == requests


def test_the_secret_is_a_required_credential_so_a_tty_prompt_does_not_call_it_optional() -> None:
    secret = next(f for f in Smoobu.credential_fields if f.name == "api_secret")
    assert secret.required and secret.secret and secret.env == "SMOOBU_API_SECRET"


# --------------------------------------------------------------------------- 5: modified-at


def booking(**fields: Any) -> dict[str, Any]:
    return {
        "id": 291,
        "type": "reservation",
        "arrival": "2026-01-10",
        "departure": "2026-01-12",
        "apartment": {"id": 123456, "name": "Sea View Loft"},
        "price": 240.0,
        **fields,
    }


def test_both_spellings_of_the_modification_time_are_read() -> None:
    for key in ("modifiedAt", "modified-at"):
        (mapped, *_) = to_booking(booking(**{key: "2025-12-02 09:01:44"}))
        assert mapped.updated_at is not None, key
        assert mapped.updated_at.isoformat() == "2025-12-02T09:01:44+00:00"


def test_a_list_spelling_modified_at_neither_raises_drift_nor_holds_the_cursor(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = make(tmp_path, clock, listings=3, reservations=60)
    assert h.state.config.list_modified_key == "modified-at"  # the official list example
    result = h.sync()
    assert result.status == "succeeded", result.error
    assert result.resources["bookings"].missing_fields == []
    assert "bookings" in h.store.cursors(h.conn.id)
    assert all(r["updated_at"] is not None for r in rows(h, "booking").values())


def test_records_mixing_both_spellings_map_every_modification_time(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = make(tmp_path, clock, listings=3, reservations=40)
    for n, res in enumerate(h.state.reservations.values()):
        if n % 2:  # stored under the other spelling: the list shows both kinds side by side
            res["modified-at"] = res.pop("modifiedAt")
    h.state.config.list_modified_key = "modifiedAt"
    result = h.sync()
    assert result.status == "succeeded", result.error
    assert all(r["updated_at"] is not None for r in rows(h, "booking").values())


# --------------------------------------------------------------------------- 6: currency


def test_bookings_get_their_apartments_currency(tmp_path: Path, clock: SharedClock) -> None:
    h = make(tmp_path, clock, listings=4, reservations=60)
    assert all("currency" not in r for r in h.state.reservations.values())
    assert h.sync().status == "succeeded"
    for booking_id, raw in h.state.reservations.items():
        apartment = h.state.apartments[raw["apartment"]["id"]]
        assert rows(h, "booking")[str(booking_id)]["currency"] == apartment["currency"]


def test_an_incremental_run_takes_currencies_from_stored_apartments_without_reading_them(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = make(tmp_path, clock, listings=4, reservations=60)
    h.sync()
    clock.advance(600)  # well inside sync.refresh_hours: apartments are not re-read
    (changed,) = h.state.modify_bookings(1)
    result = h.sync()
    assert result.resources["properties"].status == "fresh"
    assert result.resources["properties"].requests == 0
    assert result.resources["bookings"].requests == 1
    apartment = h.state.apartments[h.state.reservations[changed]["apartment"]["id"]]
    assert rows(h, "booking")[str(changed)]["currency"] == apartment["currency"]


def test_a_booking_on_an_apartment_created_since_the_last_read_costs_one_detail_request(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = make(tmp_path, clock, listings=2, reservations=20)
    h.sync()
    clock.advance(600)
    template = next(iter(h.state.apartments.values()))
    new_id = max(h.state.apartments) + 7
    h.state.apartments[new_id] = {**template, "id": new_id, "name": "New", "currency": "CHF"}
    (added,) = h.state.add_bookings(1)
    h.state.reservations[added]["apartment"] = {"id": new_id, "name": "New"}
    h.recorder.requests.clear()
    result = h.sync()
    assert result.status == "succeeded", result.error
    assert rows(h, "booking")[str(added)]["currency"] == "CHF"
    details = [r for r in h.recorder.requests if r.url.path == f"/api/apartments/{new_id}"]
    # Read once while mapping bookings; the engine's catch-up stores that same detail.
    assert len(details) == 1
    assert rows(h, "property")[str(new_id)]["currency"] == "CHF"


# --------------------------------------------------------------------------- 7: guests paging


def test_camel_case_paging_keys_end_the_walk_and_give_the_total() -> None:
    page = paged("guests")(
        {"pageCount": 2, "pageSize": 100, "totalItems": 150, "page": 2, "guests": [{"id": 1}]}
    )
    assert (page.has_more, page.total) == (False, 150)
    first = paged("guests")({"pageCount": 2, "totalItems": 150, "page": 1, "guests": []})
    assert (first.has_more, first.total) == (True, 150)
    snake = paged("bookings")({"page_count": 1, "total_items": 3, "page": 1, "bookings": []})
    assert (snake.has_more, snake.total) == (False, 3)


def test_a_full_last_guest_page_is_not_followed_by_an_empty_request(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = make(tmp_path, clock, listings=3, reservations=200)
    kept = sorted(h.state.guests)[:PAGE_SIZE]  # exactly one full page
    assert len(kept) == PAGE_SIZE
    h.state.guests = {i: h.state.guests[i] for i in kept}
    result = h.sync(resources=["guests"])
    assert result.status == "succeeded", result.error
    assert result.resources["guests"].requests == math.ceil(len(kept) / PAGE_SIZE) == 1
    assert h.store.counts(h.conn.id)["guest"] == len(kept)


# --------------------------------------------------------------------------- 8: webhooks


def parse(body: dict[str, Any]) -> list[tuple[str, str]]:
    parsed = SPEC.parse(body, Delivery(b"", {}))
    return [(c.resource, c.external_id) for c in parsed.changes]


@pytest.mark.parametrize(
    "data",
    [
        {"id": 5_000_001, "bookingId": 291, "type": "cleaningFee", "amount": 40},
        {"id": 5_000_001, "reservationId": 291, "name": "Cleaning fee"},
        {"id": 5_000_001, "booking": {"id": 291}, "amount": 40},
        # Some receivers treat `data` as the booking itself, with its price elements.
        {"id": 291, "arrival": "2026-01-10", "apartment": {"id": 1}, "priceElements": []},
    ],
)
@pytest.mark.parametrize(
    "action", ["priceElementCreated", "priceElementUpdated", "priceElementDeleted"]
)
def test_price_element_actions_refetch_the_booking_not_the_element(
    action: str, data: dict[str, Any]
) -> None:
    assert parse({"action": action, "user": 7, "data": data}) == [("bookings", "291")]


def test_online_check_in_refetches_the_booking_named_by_booking_id() -> None:
    body = {"action": "onlineCheckInUpdate", "user": 7, "data": {"bookingId": 291}}
    assert parse(body) == [("bookings", "291")]


def test_a_price_element_payload_naming_no_booking_is_acknowledged_not_guessed() -> None:
    body = {"action": "priceElementUpdated", "data": {"id": 5_000_001, "amount": 40}}
    parsed = SPEC.parse(body, Delivery(b"", {}))
    assert parsed.changes == ()
    assert parsed.ignored == "priceElementUpdated without a booking id"


def test_price_element_and_check_in_webhooks_update_the_stored_booking(
    tmp_path: Path, clock: SharedClock
) -> None:
    from tests.webhooks.conftest import Rig

    rig = Rig("smoobu", tmp_path, clock, reservations=30)
    assert asyncio.run(_full_sync(rig)) == "succeeded"
    booking_id = next(i for i, r in rig.sandbox.reservations.items() if r["type"] == "reservation")
    rig.clock.advance(60)
    rig.sandbox.add_price_element(booking_id, 55.0)
    rig.sandbox.complete_online_check_in(booking_id, "19:00")
    rig.deliver()
    assert rig.apply() == 2
    row = rig.bookings()[str(booking_id)]
    assert float(row["total_price"]) == pytest.approx(rig.sandbox.reservations[booking_id]["price"])
    assert row["deleted_at"] is None  # the element's id was never fetched as a booking
    assert rig.receiver.applier.stats.gone == 0
    rig.store.close()


async def _full_sync(rig: Any) -> str:
    from pms_cli.sync.engine import SyncEngine, SyncOptions

    result = await SyncEngine(rig.store, rig.runtime).sync_connection(rig.conn, SyncOptions())
    return result.status
