"""Beds24 mappers and header readers, from fixtures shaped after providers/beds24.md."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pms_cli.errors import ProviderError
from pms_cli.models import Booking, BookingStatus, Guest, Property
from pms_cli.providers.beds24 import (
    CURRENCY_KEY,
    GUEST_FIELDS,
    credit_retry_after,
    extract,
    read_credits,
    since_params,
    to_booking,
    to_property,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "beds24"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def booking_of(raw: dict[str, Any]) -> tuple[Booking, list[Guest]]:
    records = to_booking(raw)
    booking = records[0]
    assert isinstance(booking, Booking)
    guests = [r for r in records[1:] if isinstance(r, Guest)]
    assert len(guests) == len(records) - 1
    return booking, guests


def test_property_maps_address_times_currency_and_largest_room_capacity() -> None:
    raw = load("properties_page.json")["data"][0]
    (prop,) = to_property(raw)
    assert isinstance(prop, Property)
    assert prop.external_id == "123456"
    assert prop.name == "Seaside Apartments"
    assert (prop.address, prop.city, prop.country) == ("1 Harbour Street", "Lisbon", "PT")
    assert (prop.latitude, prop.longitude) == (38.7097, -9.1366)
    assert (prop.check_in_time, prop.check_out_time) == ("15:00", "11:00")
    assert prop.currency == "EUR"
    assert prop.max_guests == 5
    assert prop.raw["roomTypes"][0]["units"][1]["name"] == "Studio 2"


def test_documented_booking_maps_every_canonical_field() -> None:
    raw = load("bookings_page.json")["data"][0] | {CURRENCY_KEY: "EUR"}
    booking, guests = booking_of(raw)
    assert booking.external_id == "71234567"
    assert booking.property_external_id == "123456"
    assert booking.status is BookingStatus.CONFIRMED
    assert (booking.check_in, booking.check_out) == (date(2025, 7, 1), date(2025, 7, 5))
    assert (booking.adults, booking.children) == (2, 0)
    assert booking.channel == "booking"
    assert booking.confirmation_code == "4123456789"
    assert booking.total_price == Decimal("480.0")
    assert booking.currency == "EUR"
    assert booking.created_at == datetime(2025, 5, 10, 14, 22, 5, tzinfo=UTC)
    assert booking.updated_at == booking.created_at
    assert (booking.guest_name, booking.guest_email) == ("Anna Schmidt", "anna@example.com")
    assert booking.guest_phone == "+49 170 0000000"
    # guests[0] is the lead guest again, so exactly one guest row comes out.
    (guest,) = guests
    assert booking.guest_external_id == guest.external_id == "email:anna@example.com"
    assert (guest.first_name, guest.last_name, guest.language, guest.country) == (
        "Anna",
        "Schmidt",
        "de",
        "DE",
    )


def test_booking_without_the_adapters_currency_note_has_no_currency() -> None:
    booking, _ = booking_of(load("bookings_page.json")["data"][0])
    assert booking.currency is None
    assert booking.total_price == Decimal("480.0")


@pytest.mark.parametrize(
    ("raw_status", "expected"),
    [
        ("confirmed", BookingStatus.CONFIRMED),
        ("new", BookingStatus.CONFIRMED),
        ("request", BookingStatus.PENDING),
        ("inquiry", BookingStatus.INQUIRY),
        ("cancelled", BookingStatus.CANCELLED),
        ("black", BookingStatus.BLOCKED),
        ("somethingNew", BookingStatus.INQUIRY),
        (None, BookingStatus.INQUIRY),
    ],
)
def test_every_beds24_status_maps_to_a_canonical_status(
    raw_status: str | None, expected: BookingStatus
) -> None:
    booking, _ = booking_of({"id": 1, "status": raw_status})
    assert booking.status is expected


def test_anonymised_cancelled_booking_keeps_its_row_but_yields_no_guest() -> None:
    booking, guests = booking_of(load("booking_cancelled_anonymised.json"))
    assert booking.status is BookingStatus.CANCELLED
    assert guests == []
    assert booking.guest_external_id is None and booking.guest_name is None
    assert booking.confirmation_code == "HMABCDEF12"


def test_black_booking_is_a_block_and_never_a_guest() -> None:
    booking, guests = booking_of(load("booking_black.json"))
    assert booking.status is BookingStatus.BLOCKED
    assert guests == [] and booking.guest_external_id is None
    assert booking.channel is None  # empty strings are not a channel


def test_guest_list_fills_gaps_of_the_lead_guest_and_adds_co_travellers() -> None:
    booking, guests = booking_of(load("booking_group_with_co_traveller.json"))
    assert booking.status is BookingStatus.CONFIRMED  # `new` counts as confirmed
    assert booking.total_price == Decimal("612.50")
    assert booking.confirmation_code == "WEB-991"
    assert booking.channel == "direct"
    lead, co = guests
    assert booking.guest_external_id == lead.external_id == "email:luis@example.com"
    assert (lead.name, lead.country) == ("Luis García", "ES")
    assert booking.guest_name == "Luis García"
    assert co.external_id == "phone:+34600000000"
    assert co.name == "Marta Pérez"


def test_lead_guest_without_email_or_phone_is_keyed_by_its_guest_id() -> None:
    raw = {"id": 7, "status": "new", "firstName": "Kim", "guests": [{"id": 42, "firstName": "Kim"}]}
    booking, (guest,) = booking_of(raw)
    assert booking.guest_external_id == guest.external_id == "guest:42"
    assert guest.raw["bookingId"] == 7


def test_lead_guest_without_any_guest_list_is_keyed_by_the_booking() -> None:
    _, (guest,) = booking_of({"id": 8, "status": "confirmed", "lastName": "Ito"})
    assert guest.external_id == "booking:8"


def test_booking_without_an_id_is_rejected_so_the_engine_skips_it() -> None:
    with pytest.raises(KeyError):
        to_booking({"status": "confirmed"})
    with pytest.raises(KeyError):
        to_property({"name": "x"})


def test_envelope_extractor_reads_data_and_next_page_flag() -> None:
    page = extract(load("bookings_page.json"))
    assert len(page.records) == 1 and page.has_more is True
    last = extract(load("properties_page.json"))
    assert last.has_more is False


def test_envelope_without_pages_object_counts_as_the_last_page() -> None:
    assert extract({"success": True, "data": []}).has_more is False


@pytest.mark.parametrize("body", [load("error.json"), {"success": True}, [], None, "html"])
def test_error_envelope_or_garbage_raises_a_provider_error(body: Any) -> None:
    with pytest.raises(ProviderError) as info:
        extract(body)
    assert info.value.code == "provider_garbage"


def test_credit_reader_prefers_the_wire_header_names_with_decimals() -> None:
    headers = load("credit_headers.json")
    assert read_credits(headers) == (96.8, 241.0)
    assert read_credits({k.upper(): v for k, v in headers.items()}) == (96.8, 241.0)


def test_credit_reader_falls_back_to_the_spec_header_names() -> None:
    headers = {"X-FiveMinCreditLimit-Remaining": "12", "X-FiveMinCreditLimit-ResetsIn": "30"}
    assert read_credits(headers) == (12.0, 30.0)


def test_credit_reader_returns_nothing_without_both_headers() -> None:
    assert read_credits({}) is None
    assert read_credits({"x-five-min-limit-remaining": "5"}) is None
    assert (
        read_credits({"x-five-min-limit-remaining": "x", "x-five-min-limit-resets-in": "1"}) is None
    )


def test_a_429_waits_until_the_credit_window_resets() -> None:
    assert credit_retry_after(load("credit_headers.json"), now=0.0) == 241.0
    assert credit_retry_after({"retry-after": "7"}, now=0.0) == 7.0
    assert credit_retry_after({}, now=0.0) is None


def test_incremental_filter_is_a_utc_datetime_without_offset() -> None:
    since = datetime(2025, 5, 10, 14, 22, 5, tzinfo=UTC)
    assert since_params(since) == {"modifiedFrom": "2025-05-10T14:22:05"}


# --------------------------------------------------------------------------- property-based

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**12), max_value=10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(
        ["", "inf", "1e400", "2025-07-01", "2025-05-10T14:22:05Z", "DE", "EUR", "กา", "ÄÖÜ"]
    )
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=5,
)
BOOKING_KEYS = [
    *GUEST_FIELDS,
    "status", "propertyId", "arrival", "departure", "numAdult", "numChild", "channel",
    "apiSource", "referer", "apiReference", "reference", "price", "bookingTime", "modifiedTime",
    "guests", CURRENCY_KEY,
]  # fmt: skip
PROPERTY_KEYS = [
    "name", "address", "city", "country", "latitude", "longitude", "checkInStart",
    "checkOutEnd", "currency", "roomTypes",
]  # fmt: skip
usable_ids = st.integers(min_value=1, max_value=10**12) | st.text(min_size=1, max_size=10)
guest_lists = st.lists(st.dictionaries(st.sampled_from([*GUEST_FIELDS, "id"]), values), max_size=3)


@settings(max_examples=150, deadline=None)
@given(
    rid=usable_ids,
    fields=st.dictionaries(st.sampled_from(BOOKING_KEYS), values),
    guests=guest_lists | values,
    status=st.sampled_from(["confirmed", "new", "request", "cancelled", "black", "inquiry", 3]),
)
def test_booking_mapper_tolerates_any_field_values_when_the_id_is_usable(
    rid: int | str, fields: dict[str, Any], guests: Any, status: Any
) -> None:
    booking, found = booking_of({**fields, "guests": guests, "status": status, "id": rid})
    assert booking.external_id == str(rid)
    assert booking.guest_external_id in {None, *(g.external_id for g in found)}
    assert len({g.external_id for g in found}) == len(found)


@settings(max_examples=100, deadline=None)
@given(
    pid=usable_ids,
    fields=st.dictionaries(st.sampled_from(PROPERTY_KEYS), values),
    rooms=st.lists(st.dictionaries(st.sampled_from(["maxPeople", "qty"]), values), max_size=3),
)
def test_property_mapper_tolerates_any_field_values_when_the_id_is_usable(
    pid: int | str, fields: dict[str, Any], rooms: list[dict[str, Any]]
) -> None:
    (prop,) = to_property({**fields, "roomTypes": fields.get("roomTypes", rooms), "id": pid})
    assert prop.external_id == str(pid)


def test_non_ascii_letters_are_not_taken_for_country_or_currency_codes() -> None:
    (prop,) = to_property({"id": 1, "country": "กา", "currency": "ÄÖÜ"})
    assert isinstance(prop, Property)
    assert (prop.country, prop.currency) == (None, None)


def test_counts_that_overflow_an_integer_are_dropped() -> None:
    booking, _ = booking_of({"id": 2, "numAdult": "inf", "numChild": "1e400"})
    assert (booking.adults, booking.children) == (None, None)
