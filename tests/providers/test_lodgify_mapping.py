"""Lodgify mappers against the documented shapes (fixtures from providers/lodgify.md) + fuzzing."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pms_cli.errors import ProviderError
from pms_cli.models import Booking, BookingStatus, Guest, Property
from pms_cli.providers.lodgify import (
    STATUS,
    extract,
    property_since_params,
    since_params,
    to_booking,
    to_property,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "lodgify"


def load(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def page_item(booking_id: int) -> dict[str, Any]:
    item: dict[str, Any] = next(b for b in load("bookings_page")["items"] if b["id"] == booking_id)
    return item


def booking_of(raw: dict[str, Any]) -> Booking:
    first = to_booking(raw)[0]
    assert isinstance(first, Booking)
    return first


def guests_of(raw: dict[str, Any]) -> list[Guest]:
    return [r for r in to_booking(raw) if isinstance(r, Guest)]


# ------------------------------------------------------------------ properties


def test_documented_property_maps_to_a_canonical_property() -> None:
    [prop] = to_property(load("property"))
    assert isinstance(prop, Property)
    assert prop.external_id == "123456"
    assert prop.name == "Sea View Apartment"
    assert prop.address == "Carrer de Mallorca 1"
    assert prop.city == "Barcelona"
    assert prop.latitude == 41.3851 and prop.longitude == 2.1734
    assert prop.currency == "EUR"
    assert prop.active is True
    assert prop.updated_at == datetime(2024, 5, 6, 8, 0, tzinfo=UTC)
    assert prop.raw["internal_name"] == "SVA-1"


def test_property_country_name_becomes_alpha_2_and_an_iso_code_is_used_when_sent() -> None:
    raw = load("property")
    assert to_property(raw)[0].country == "ES"  # type: ignore[union-attr]  # "Spain"
    raw["country_code"] = "es"
    assert to_property(raw)[0].country == "ES"  # type: ignore[union-attr]


def test_property_without_a_public_name_falls_back_to_the_internal_name() -> None:
    raw = load("property") | {"name": None}
    assert to_property(raw)[0].name == "SVA-1"  # type: ignore[union-attr]


def test_deactivated_property_is_inactive_and_a_missing_flag_means_active() -> None:
    raw = load("property")
    assert to_property(raw | {"is_active": False})[0].active is False  # type: ignore[union-attr]
    del raw["is_active"]
    assert to_property(raw)[0].active is True  # type: ignore[union-attr]


def test_property_without_an_id_is_refused() -> None:
    raw = load("property")
    del raw["id"]
    with pytest.raises(KeyError):
        to_property(raw)


# ------------------------------------------------------------------ bookings


def test_documented_booking_maps_every_canonical_field() -> None:
    booking = booking_of(load("booking"))
    assert booking.external_id == "9876543"
    assert booking.property_external_id == "123456"
    assert booking.status is BookingStatus.CONFIRMED
    assert booking.check_in == date(2025, 7, 10) and booking.check_out == date(2025, 7, 14)
    assert (booking.adults, booking.children) == (2, 1)
    assert booking.channel == "BookingCom"
    assert booking.confirmation_code == "4012345678"
    assert booking.total_price == Decimal("620.0") and booking.currency == "EUR"
    assert booking.guest_name == "Anna Schmidt"
    assert booking.guest_email == "anna@example.com"
    assert booking.guest_phone == "+491701234567"
    assert booking.created_at == datetime(2025, 3, 2, 9, 15, 27, tzinfo=UTC)
    assert booking.updated_at == datetime(2025, 3, 5, 11, 0, tzinfo=UTC)
    assert booking.raw["amount_due"] == 434.0


def test_booking_guest_is_derived_with_an_email_key_language_and_country() -> None:
    records = to_booking(load("booking"))
    [guest] = [r for r in records if isinstance(r, Guest)]
    assert guest.external_id == "email:anna@example.com"
    assert records[0].guest_external_id == guest.external_id  # type: ignore[union-attr]
    assert (guest.name, guest.email, guest.phone) == (
        "Anna Schmidt",
        "anna@example.com",
        "+491701234567",
    )
    assert guest.language == "de" and guest.country == "DE"
    assert guest.raw["bookingId"] == 9876543


def test_closed_period_is_a_blocked_booking_without_a_guest() -> None:
    raw = page_item(9876600)
    booking = booking_of(raw)
    assert booking.status is BookingStatus.BLOCKED
    assert booking.guest_external_id is None
    assert guests_of(raw) == []
    assert booking.adults == 0  # the deprecated `people` is the only head count sent


def test_declined_booking_is_cancelled_and_keyed_by_phone_when_email_is_missing() -> None:
    raw = page_item(9876601)
    booking = booking_of(raw)
    assert booking.status is BookingStatus.CANCELLED
    [guest] = guests_of(raw)
    assert guest.external_id == "phone:+447700900123"
    assert guest.country == "GB"
    assert booking.adults == 2  # from rooms[].people when no guest_breakdown is sent
    assert booking.confirmation_code == "HMABCDEF12"


def test_naive_timestamps_are_read_as_utc() -> None:
    booking = booking_of(page_item(9876601))
    assert booking.created_at == datetime(2025, 5, 1, 10, 0, tzinfo=UTC)
    assert booking.updated_at == datetime(2025, 5, 3, 12, 30, 0, 250_000, tzinfo=UTC)


def test_trashed_booking_is_cancelled_whatever_its_last_status() -> None:
    raw = page_item(9876602)
    assert raw["status"] == "Tentative" and raw["is_deleted"] is True
    assert booking_of(raw).status is BookingStatus.CANCELLED
    assert booking_of(raw | {"is_deleted": False}).status is BookingStatus.PENDING


def test_top_level_guest_breakdown_counts_when_rooms_are_null() -> None:
    booking = booking_of(page_item(9876602))
    assert (booking.adults, booking.children) == (3, 0)


def test_guest_email_key_is_lower_cased_so_repeat_guests_merge() -> None:
    [guest] = guests_of(page_item(9876602))
    assert guest.external_id == "email:maria.lopez@example.com"
    assert guest.email == "Maria.Lopez@Example.com"


def test_guest_with_only_a_name_is_keyed_by_the_booking() -> None:
    raw = page_item(9876603)
    [guest] = guests_of(raw)
    assert guest.external_id == "booking:9876603"
    booking = booking_of(raw)
    assert booking.status is BookingStatus.INQUIRY
    assert booking.total_price is None and booking.currency is None


def test_per_room_guest_breakdowns_are_summed_for_multi_unit_bookings() -> None:
    room = {"room_type_id": 1, "guest_breakdown": {"adults": 2, "children": 1}}
    raw = load("booking") | {"rooms": [room, room | {"room_type_id": 2}]}
    booking = booking_of(raw)
    assert (booking.adults, booking.children) == (4, 2)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("Booked", BookingStatus.CONFIRMED),
        ("Tentative", BookingStatus.PENDING),
        ("Open", BookingStatus.INQUIRY),
        ("Declined", BookingStatus.CANCELLED),
        ("Unavailable", BookingStatus.BLOCKED),
        ("SomethingNew", BookingStatus.INQUIRY),
        (None, BookingStatus.INQUIRY),
    ],
)
def test_every_documented_status_maps_and_unknown_ones_never_block_dates(
    status: str | None, expected: BookingStatus
) -> None:
    assert booking_of(load("booking") | {"status": status}).status is expected


def test_status_table_and_closure_check_cover_the_documented_enum() -> None:
    # Unavailable (an owner closure) is recognised by is_closure, before the table.
    assert set(STATUS) | {"unavailable"} == {
        s.lower() for s in ("Open", "Unavailable", "Tentative", "Booked", "Declined")
    }


@pytest.mark.parametrize("bad_id", [None, "", "   "])
def test_booking_without_a_usable_id_is_refused(bad_id: object) -> None:
    with pytest.raises(ValueError):
        to_booking(load("booking") | {"id": bad_id})


def test_out_of_range_numbers_and_dates_are_dropped_not_fatal() -> None:
    absurd = {"updated_at": "0001-01-01T00:00:00+01:00", "created_at": "9999-12-31T23:59-05:00"}
    party = {"rooms": None, "guest_breakdown": {"adults": "1e999", "children": 1}}
    booking = booking_of(load("booking") | absurd | party)
    assert booking.updated_at is None and booking.created_at is None
    assert (booking.adults, booking.children) == (None, 1)
    [prop] = to_property(load("property") | absurd)
    assert prop.updated_at is None  # type: ignore[union-attr]


# ------------------------------------------------------------------ envelope and params


def test_list_envelope_yields_items_and_the_count() -> None:
    body = extract(load("bookings_page"))
    assert body.total == 4
    assert [r["id"] for r in body.records] == [9876600, 9876601, 9876602, 9876603]


def test_null_items_and_null_count_mean_an_empty_page_of_unknown_total() -> None:
    body = extract(load("properties_page_empty"))
    assert body.records == [] and body.total is None


@pytest.mark.parametrize(
    "body", [load("error_401"), [], "oops", None, {"count": 1, "items": {"id": 1}}]
)
def test_a_body_without_an_items_list_is_a_provider_error(body: object) -> None:
    with pytest.raises(ProviderError) as info:
        extract(body)
    assert info.value.code == "provider_garbage"


def test_non_object_items_are_dropped_and_a_boolean_count_is_ignored() -> None:
    body = extract({"count": True, "items": [{"id": 1}, None, 7, "x"]})
    assert body.records == [{"id": 1}] and body.total is None


def test_updated_since_is_sent_as_utc_iso_8601() -> None:
    moment = datetime(2025, 3, 1, 12, 30, 45, 999_000, tzinfo=timezone(timedelta(hours=2)))
    assert since_params(moment) == {"updatedSince": "2025-03-01T10:30:45Z"}
    assert property_since_params(moment) == {"updatedSince": "2025-03-01T10:30:45Z"}


# ------------------------------------------------------------------ fuzzing

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
odd_text = st.sampled_from(
    ["1e999", "-1e999", "nan", "inf", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-05:00",
     "2025-02-30", "", "  ", "Booked", "Unavailable", "DE", "eur"]
)  # fmt: skip
leaves = scalars | odd_text
values = leaves | st.lists(leaves, max_size=3) | st.dictionaries(st.text(max_size=4), leaves)
BOOKING_KEYS = [*load("booking"), "guest_breakdown"]
PROPERTY_KEYS = [*load("property"), "country_code"]
GUEST_KEYS = ["name", "email", "phone", "country_code"]
ROOM_KEYS = ["room_type_id", "people", "guest_breakdown"]
BREAKDOWN = st.dictionaries(st.sampled_from(["adults", "children", "infants"]), values)
ROOMS = st.lists(
    st.fixed_dictionaries({}, optional={k: values | BREAKDOWN for k in ROOM_KEYS}) | values,
    max_size=3,
)
GUEST = st.fixed_dictionaries({}, optional={k: values for k in GUEST_KEYS})


@settings(max_examples=200, deadline=None)
@given(
    ident=st.integers(min_value=1, max_value=2**53),
    fields=st.dictionaries(st.sampled_from(BOOKING_KEYS), values),
    guest=GUEST | values,
    rooms=ROOMS | values,
    breakdown=BREAKDOWN | values,
)
def test_any_booking_with_an_id_maps_without_crashing(
    ident: int, fields: dict[str, Any], guest: Any, rooms: Any, breakdown: Any
) -> None:
    raw = fields | {"id": ident, "guest": guest, "rooms": rooms, "guest_breakdown": breakdown}
    records = to_booking(raw)
    assert isinstance(records[0], Booking) and records[0].external_id == str(ident)
    assert all(isinstance(r, Guest) for r in records[1:])
    assert records[0].guest_external_id == (records[1].external_id if records[1:] else None)


@settings(max_examples=200, deadline=None)
@given(
    ident=st.integers(min_value=1, max_value=2**53),
    fields=st.dictionaries(st.sampled_from(PROPERTY_KEYS), values),
)
def test_any_property_with_an_id_maps_without_crashing(ident: int, fields: dict[str, Any]) -> None:
    [prop] = to_property(fields | {"id": ident})
    assert isinstance(prop, Property) and prop.external_id == str(ident)
    assert prop.updated_at is None or prop.updated_at.tzinfo is not None
