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


# --- shapes of real production payloads (issue 14) ---------------------------------------------


def test_a_guest_without_email_or_phone_is_keyed_by_the_channel_account() -> None:
    booking, guest = to_booking(load("reservation_airbnb_contactless"))
    assert isinstance(booking, Booking) and isinstance(guest, Guest)
    assert guest.external_id == booking.guest_external_id == "account:2018:513377820"


def test_a_repeat_guest_known_by_the_channel_account_gets_the_same_key() -> None:
    first = load("reservation_airbnb_contactless")
    second = {**first, "id": 41999001, "arrivalDate": "2025-08-01", "guestName": "Jonas K."}
    assert to_booking(first)[1].external_id == to_booking(second)[1].external_id
    other_channel = {**first, "channelId": 2005, "channelName": "bookingcom"}
    assert to_booking(other_channel)[1].external_id == "account:2005:513377820"


@pytest.mark.parametrize(
    ("phone", "country"),
    [("+49 170 1234567", None), ("0049 170 1234567", None), ("0170 1234567", "DE")],
)
def test_phones_are_keyed_in_e164_whatever_the_format(phone: str, country: str | None) -> None:
    raw = {**load("reservation"), "guestEmail": None, "phone": phone, "guestCountry": country}
    _, guest = to_booking(raw)
    assert guest.external_id == "phone:+491701234567"


def test_guest_locale_null_falls_back_to_the_locale_for_messaging() -> None:
    _, guest = to_booking(load("reservation_airbnb_contactless"))
    assert isinstance(guest, Guest) and guest.language == "de"


def test_adults_null_stays_unknown_and_the_total_is_kept_as_guests() -> None:
    booking, _ = to_booking(load("reservation_airbnb_contactless"))
    assert isinstance(booking, Booking)
    assert booking.adults is None
    assert booking.guests == 3


def test_guests_is_the_sum_of_known_counts_when_number_of_guests_is_null() -> None:
    raw = {**load("reservation"), "numberOfGuests": None, "adults": 2, "children": 1}
    booking = to_booking(raw)[0]
    assert isinstance(booking, Booking) and (booking.adults, booking.guests) == (2, 3)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("US", "US"), ("Germany", "DE"), ("Deutschland", "DE"), ("DEU", "DE"), ("XX", None)],
)
def test_guest_country_names_and_codes_become_alpha_2(value: str, expected: str | None) -> None:
    _, guest = to_booking({**load("reservation"), "guestCountry": value})
    assert isinstance(guest, Guest) and guest.country == expected


def test_a_national_phone_without_guest_country_is_read_in_the_listing_country() -> None:
    raw = {**load("reservation"), "guestEmail": None, "guestCountry": None, "phone": "0170 1234567"}
    assert to_booking(raw)[1].external_id == "phone:01701234567"  # no region: digits only
    _, guest = to_booking(raw, {"40160": "DE"})
    assert guest.external_id == "phone:+491701234567"
