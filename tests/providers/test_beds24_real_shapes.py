"""Beds24 mapping on the shapes real bookings show (issue 14): price vs invoice, whole names in
firstName, country names and national phone numbers."""

from __future__ import annotations

import asyncio
import json
import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pms_cli.models import Booking, Guest
from pms_cli.providers.beds24 import split_name, to_booking, total_price
from pms_cli.sync.engine import SyncEngine, SyncOptions
from tests.conftest import SharedClock
from tests.helpers import Harness

FIXTURES = Path(__file__).parent.parent / "fixtures" / "beds24"


def load(name: str) -> dict[str, Any]:
    return dict(json.loads((FIXTURES / f"{name}.json").read_text()))


def test_a_direct_booking_with_price_zero_costs_the_sum_of_its_invoice_charges() -> None:
    booking = to_booking(load("booking_direct_invoice_only"))[0]
    assert isinstance(booking, Booking)
    assert booking.raw["price"] == 0
    assert booking.total_price == Decimal("330.5")  # 285 + 45.50; the payment is no charge


def test_an_airbnb_payout_price_gives_way_to_the_gross_the_guest_paid() -> None:
    booking = to_booking(load("booking_airbnb_payout"))[0]
    assert isinstance(booking, Booking)
    assert booking.total_price == Decimal("528.15")


def test_without_invoice_items_total_price_is_the_price() -> None:
    raw = {k: v for k, v in load("booking_airbnb_payout").items() if k != "invoiceItems"}
    assert total_price(raw) == Decimal("512.3")
    assert total_price({**raw, "invoiceItems": []}) == Decimal("512.3")


def test_invoice_lines_without_line_total_or_type_are_read_from_qty_amount_and_sub_type() -> None:
    items = [
        {"subType": 1, "qty": 3, "amount": 80},
        {"subType": 7, "qty": 1, "amount": "40.5"},
        {"subType": 203, "qty": 1, "amount": 280},  # a Stripe payment
    ]
    assert total_price({"price": 0, "invoiceItems": items}) == Decimal("280.5")


def test_a_whole_name_in_first_name_with_an_empty_last_name_is_split() -> None:
    records = to_booking(load("booking_direct_invoice_only"))
    booking, guest = records[0], records[1]
    assert isinstance(booking, Booking) and isinstance(guest, Guest)
    assert (guest.first_name, guest.last_name) == ("Katharina", "Müller-Lüdenscheidt")
    assert guest.name == booking.guest_name == "Katharina Müller-Lüdenscheidt"


@pytest.mark.parametrize(
    ("first", "last", "expected"),
    [
        ("Maria de la Cruz", None, ("Maria", "de la Cruz")),
        ("Sam", None, ("Sam", None)),
        ("Anna", "Schmidt", ("Anna", "Schmidt")),
        (None, "Schmidt", (None, "Schmidt")),
    ],
)
def test_split_name_only_splits_a_whole_name_standing_alone(
    first: str | None, last: str | None, expected: tuple[str | None, str | None]
) -> None:
    assert split_name(first, last) == expected


def test_a_country_name_without_country2_becomes_alpha_2_and_reads_national_phones() -> None:
    guest = to_booking(load("booking_direct_invoice_only"))[1]
    assert isinstance(guest, Guest)
    assert guest.country == "DE"  # "Deutschland"
    assert guest.external_id == "phone:+491712345678"  # "0171 2345678", read as German


def test_guests_counts_adults_and_children() -> None:
    booking = to_booking(load("booking_direct_invoice_only"))[0]
    assert isinstance(booking, Booking) and booking.guests == 3


def test_a_sync_fills_total_price_from_invoice_items_in_the_same_pages(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = Harness("beds24", tmp_path, clock, listings=4, reservations=250)
    result = asyncio.run(SyncEngine(h.store, h.runtime()).sync_connection(h.conn, SyncOptions()))
    assert result.status == "succeeded", result.error
    # token + one properties page + ⌈250 / 100⌉ booking pages: nothing per booking
    assert result.requests == 1 + 1 + math.ceil(250 / 100)
    rows = {r["external_id"]: r for r in h.store.fetch_rows("booking", h.conn.id)}
    checked = 0
    for booking_id, booking in h.state.bookings.items():
        charges = [i["lineTotal"] for i in booking["invoiceItems"] if i["type"] == "charge"]
        if booking["price"] == 0 and charges:  # direct: charges only on the invoice
            assert rows[str(booking_id)]["total_price"] == Decimal(str(round(sum(charges), 2)))
            checked += 1
    assert checked > 0


def test_a_national_phone_is_read_in_the_property_country_when_the_guest_has_none() -> None:
    raw = {**load("booking_direct_invoice_only"), "country": "", "country2": ""}
    assert to_booking(raw)[1].external_id == "phone:01712345678"
    guest = to_booking({**raw, "propertyCountry": "DE"})[1]
    assert guest.external_id == "phone:+491712345678"
