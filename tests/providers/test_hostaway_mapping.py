"""Hostaway mappers on the fact sheet's documented objects, and on arbitrary junk."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pms_cli.models import Booking, BookingStatus, Guest, Property
from pms_cli.providers.hostaway import booking_status, to_booking, to_property

FIXTURES = Path(__file__).parent.parent / "fixtures" / "hostaway"


def load(name: str) -> dict[str, Any]:
    return dict(json.loads((FIXTURES / f"{name}.json").read_text()))


def test_maps_the_documented_listing() -> None:
    [prop] = to_property(load("listing"))
    assert isinstance(prop, Property)
    assert prop.external_id == "40160"
    assert prop.name == "Cozy apartment near city center"
    assert prop.country == "DE"
    assert prop.city == "Bremerhaven"
    assert prop.timezone == "Europe/Berlin"
    assert (prop.latitude, prop.longitude) == (53.5403, 8.58936)
    assert prop.max_guests == 6
    assert prop.check_in_time == "12:00"
    assert prop.check_out_time == "11:00"
    assert prop.currency == "USD"
    assert prop.active is True
    assert prop.updated_at == datetime(2024, 5, 2, 10, 11, 12, tzinfo=UTC)
    assert prop.raw["contactEmail"] == "owner@example.com"


def test_archived_listing_is_inactive() -> None:
    [prop] = to_property({**load("listing"), "specialStatus": "archived"})
    assert isinstance(prop, Property) and prop.active is False


def test_maps_the_documented_reservation_and_derives_its_guest() -> None:
    booking, guest = to_booking(load("reservation"))
    assert isinstance(booking, Booking) and isinstance(guest, Guest)
    assert booking.external_id == "13"
    assert booking.property_external_id == "40160"
    assert booking.status is BookingStatus.CONFIRMED
    assert (booking.check_in, booking.check_out) == (date(2017, 7, 15), date(2017, 7, 16))
    assert booking.total_price == Decimal("267")
    assert booking.currency == "USD"
    assert booking.channel == "airbnbOfficial"
    assert booking.confirmation_code == "HMP2KQ4B44"
    assert booking.updated_at == datetime(2017, 6, 12, 8, 0, tzinfo=UTC)
    assert booking.guest_external_id == guest.external_id == "email:guest@example.com"
    assert guest.country == "US"
    assert (guest.first_name, guest.last_name) == ("Andrew", "Peterson")


def test_float_prices_keep_their_cents_exactly() -> None:
    [booking, _] = to_booking({**load("reservation"), "totalPrice": 696.67})
    assert isinstance(booking, Booking) and booking.total_price == Decimal("696.67")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("new", BookingStatus.CONFIRMED),
        ("modified", BookingStatus.CONFIRMED),
        ("ownerStay", BookingStatus.BLOCKED),
        ("awaitingPayment", BookingStatus.PENDING),
        ("cancelled", BookingStatus.CANCELLED),
        ("declined", BookingStatus.CANCELLED),
        ("inquiryPreapproved", BookingStatus.INQUIRY),
        ("somethingNew", BookingStatus.INQUIRY),
    ],
)
def test_normalises_every_documented_status(raw: str, expected: BookingStatus) -> None:
    assert booking_status(raw) is expected


def test_owner_stay_is_a_blocked_booking_without_a_guest() -> None:
    records = to_booking({**load("reservation"), "status": "ownerStay"})
    assert [type(r) for r in records] == [Booking]


def test_guest_without_email_or_phone_is_keyed_by_reservation() -> None:
    raw = {**load("reservation"), "guestEmail": None, "phone": None}
    _, guest = to_booking(raw)
    assert guest.external_id == "reservation:13"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)
KEYS = list(load("reservation")) + list(load("listing"))


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYS), json_values), st.integers(1, 10**9))
def test_mappers_never_crash_on_junk_fields_when_an_id_is_present(
    fields: dict[str, Any], rid: int
) -> None:
    raw = {**fields, "id": rid}
    assert to_booking(raw)[0].external_id == str(rid)
    assert to_property(raw)[0].external_id == str(rid)
