"""Pure Smoobu mapping: fixtures shaped after providers/smoobu.md, plus hypothesis fuzzing."""

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
from pms_cli.providers.smoobu import (
    apartments,
    booking_status,
    canonical_query,
    paged,
    since_params,
    smoobu_retry_after,
    to_booking,
    to_guest,
    to_property,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "smoobu"
NOW = 1_780_000_000.0


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def bookings() -> dict[int, dict[str, Any]]:
    return {b["id"]: b for b in load("reservations_page.json")["bookings"]}


def only(records: Any, kind: type[Any]) -> Any:
    assert len(records) == 1
    assert isinstance(records[0], kind)
    return records[0]


# --------------------------------------------------------------------------- bookings


def test_documented_booking_example_maps_every_canonical_field() -> None:
    b = only(to_booking(bookings()[291]), Booking)
    assert b.external_id == "291"
    assert b.property_external_id == "123456"
    assert b.guest_external_id == "98765"
    assert b.status is BookingStatus.CONFIRMED
    assert (b.check_in, b.check_out) == (date(2026, 1, 10), date(2026, 1, 12))
    assert (b.adults, b.children) == (2, 0)
    assert b.channel == "Booking.com"
    assert b.confirmation_code == "3412789922"
    assert b.total_price == Decimal("240.0")
    assert b.currency is None  # bookings carry no currency: it lives on the apartment
    assert b.guest_name == "Anna Muster"
    assert b.guest_email == "anna.muster@guest.booking.com"
    assert b.guest_phone == "+49 30 1234567"
    assert b.created_at == datetime(2025, 12, 1, 14, 26, tzinfo=UTC)
    assert b.updated_at == datetime(2025, 12, 2, 9, 1, 44, tzinfo=UTC)
    assert b.raw["price-paid"] == "No"


def test_cancellation_type_maps_to_cancelled_and_minute_precision_modified_at_parses() -> None:
    b = only(to_booking(bookings()[292]), Booking)
    assert b.status is BookingStatus.CANCELLED
    assert b.confirmation_code is None
    assert b.updated_at == datetime(2025, 12, 20, 18, 30, tzinfo=UTC)


def test_owner_block_maps_to_blocked_without_a_guest_reference() -> None:
    b = only(to_booking(bookings()[293]), Booking)
    assert b.status is BookingStatus.BLOCKED
    assert b.guest_external_id is None
    assert b.guest_name == "Owner stay"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"type": "reservation"}, BookingStatus.CONFIRMED),
        ({"type": "modification of booking"}, BookingStatus.CONFIRMED),
        ({"type": "cancellation"}, BookingStatus.CANCELLED),
        ({"type": "cancellation", "is-blocked-booking": True}, BookingStatus.CANCELLED),
        ({"type": "reservation", "is-blocked-booking": True}, BookingStatus.BLOCKED),
        ({"is-blocked-booking": 1}, BookingStatus.BLOCKED),
        ({"type": "something new"}, BookingStatus.CONFIRMED),
        ({}, BookingStatus.CONFIRMED),
    ],
)
def test_booking_status_follows_type_and_block_flag(
    raw: dict[str, Any], expected: BookingStatus
) -> None:
    assert booking_status(raw) is expected


def test_guest_name_falls_back_to_first_and_last_name() -> None:
    raw = {"id": 5, "firstname": "Jo", "lastname": "Lee", "guest-name": ""}
    assert only(to_booking(raw), Booking).guest_name == "Jo Lee"


def test_numeric_reference_id_and_string_price_are_tolerated() -> None:
    raw = {"id": "77", "reference-id": 123456789, "price": "99.90", "apartment": []}
    b = only(to_booking(raw), Booking)
    assert b.external_id == "77"
    assert b.confirmation_code == "123456789"
    assert b.total_price == Decimal("99.90")
    assert b.property_external_id is None


@pytest.mark.parametrize("bad_id", [None, "", "  ", True, 1.5, [], {}])
def test_booking_without_a_usable_id_raises(bad_id: object) -> None:
    with pytest.raises(ValueError, match="usable id"):
        to_booking({"id": bad_id, "type": "reservation"})


def test_booking_without_an_id_key_raises() -> None:
    with pytest.raises(ValueError):
        to_booking({"type": "reservation"})


# --------------------------------------------------------------------------- properties


def test_apartment_list_entry_merged_with_detail_maps_to_a_property() -> None:
    item = load("apartments.json")["apartments"][0]
    p = only(to_property({**load("apartment_detail.json"), **item}), Property)
    assert p.external_id == "123456"
    assert p.name == "Sea View Loft"
    assert p.address == "Hauptstr. 1"
    assert p.city == "Berlin"
    assert p.country == "DE"  # Smoobu sends a country name ("Germany"): pycountry reads it
    assert (p.latitude, p.longitude) == (52.5321, 13.3849)  # sent as strings
    assert p.timezone == "Europe/Berlin"
    assert (p.max_guests, p.bedrooms, p.bathrooms) == (4, 2, 1.0)
    assert p.currency == "EUR"
    assert p.active is True


def test_apartment_known_only_from_the_list_still_maps() -> None:
    p = only(to_property({"id": 123457, "name": "Garden Studio"}), Property)
    assert (p.external_id, p.name, p.city, p.currency) == ("123457", "Garden Studio", None, None)


def test_apartment_with_empty_array_objects_and_iso_country_maps() -> None:
    raw = {"id": 1, "location": {"country": "de", "latitude": "n/a"}, "rooms": [], "currency": "€"}
    p = only(to_property(raw), Property)
    assert (p.country, p.latitude, p.max_guests, p.currency) == ("DE", None, None, None)


@pytest.mark.parametrize(("country", "currency"), [("AÀ", "ÉÈÀ"), ("ß", "€"), (12, 978)])
def test_non_ascii_or_non_text_codes_become_none_instead_of_failing_validation(
    country: object, currency: object
) -> None:
    p = only(
        to_property({"id": 1, "location": {"country": country}, "currency": currency}), Property
    )
    assert (p.country, p.currency) == (None, None)
    b = only(to_booking({"id": 1, "currency": currency}), Booking)
    assert b.currency is None
    g = only(to_guest({"id": 1, "address": {"country": country}}), Guest)
    assert g.country is None


# --------------------------------------------------------------------------- guests


def test_plausible_guest_item_maps_to_a_guest() -> None:
    g = only(to_guest(load("guests_page.json")["guests"][0]), Guest)
    assert g.external_id == "98765"
    assert (g.name, g.first_name, g.last_name) == ("Anna Muster", "Anna", "Muster")
    assert g.email == "anna@example.com"
    assert g.phone == "+49301234567"
    assert g.country == "DE"


def test_guest_with_booking_style_field_names_maps_too() -> None:
    raw = {"id": 4, "firstname": "Li", "lastname": "Wu", "email": "li@x.org", "phone": "+1 555"}
    g = only(to_guest(raw), Guest)
    assert (g.name, g.email, g.phone) == ("Li Wu", "li@x.org", "+1 555")


def test_company_guest_without_person_name_uses_the_company_name() -> None:
    g = only(to_guest({"id": 9, "companyName": "ACME GmbH", "emails": ["", None]}), Guest)
    assert (g.name, g.email) == ("ACME GmbH", None)


# --------------------------------------------------------------------------- envelopes


def test_paged_envelope_reports_more_pages_until_page_reaches_page_count() -> None:
    body = load("reservations_page.json")
    first = paged("bookings")(body)
    assert len(first.records) == 3
    assert first.has_more is True
    assert paged("bookings")({**body, "page": 3}).has_more is False
    assert paged("bookings")({"page": 1, "page_count": 0, "bookings": []}).has_more is False


def test_paged_envelope_without_the_list_is_reported_as_garbage() -> None:
    with pytest.raises(ProviderError) as info:
        paged("guests")(load("error_401.json"))
    assert info.value.code == "provider_garbage"


def test_apartment_list_is_a_single_page() -> None:
    body = apartments(load("apartments.json"))
    assert [r["id"] for r in body.records] == [123456, 123457]
    assert body.has_more is False


# --------------------------------------------------------------------------- request helpers


def test_incremental_filter_is_a_date_one_day_before_the_cursor() -> None:
    since = datetime(2026, 5, 28, 0, 30, tzinfo=UTC)
    assert since_params(since) == {"modifiedFrom": "2026-05-27"}


def test_canonical_query_sorts_pairs_by_key_and_keeps_their_encoding() -> None:
    assert canonical_query("to=2026-04-10&from=2026-04-01") == "from=2026-04-01&to=2026-04-10"
    assert canonical_query("") == ""
    assert canonical_query("b=x+y&a%5B%5D=2&a%5B%5D=1") == "a%5B%5D=2&a%5B%5D=1&b=x+y"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "7", "x-ratelimit-retry-after": str(int(NOW) + 30)}, 7.0),
        ({"x-ratelimit-retry-after": str(int(NOW) + 30)}, 30.0),
        ({"x-ratelimit-retry-after": str(int(NOW) - 5)}, 0.0),
        ({"x-ratelimit-retry-after": "12"}, 12.0),
        ({"x-ratelimit-retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_reads_standard_header_then_smoobu_reset_timestamp(
    headers: dict[str, str], expected: float | None
) -> None:
    assert smoobu_retry_after(headers, NOW) == expected


# --------------------------------------------------------------------------- fuzzing

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=8,
)
usable_ids = st.integers(min_value=1, max_value=10**12) | st.from_regex(r"\A[0-9]{1,10}\Z")
BOOKING_KEYS = [
    "reference-id", "type", "arrival", "departure", "created-at", "modifiedAt", "apartment",
    "channel", "guest-name", "firstname", "lastname", "email", "phone", "adults", "children",
    "price", "currency", "is-blocked-booking", "guestId",
]  # fmt: skip
PROPERTY_KEYS = ["name", "location", "timeZone", "rooms", "currency", "price", "equipments"]
GUEST_KEYS = [
    "firstName", "lastName", "firstname", "lastname", "companyName", "emails", "email",
    "telephoneNumbers", "phone", "language", "address",
]  # fmt: skip


def records(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"id": usable_ids}, optional=dict.fromkeys(keys, json_values))


@settings(max_examples=300, deadline=None)
@given(records(BOOKING_KEYS))
def test_no_booking_with_a_usable_id_crashes_the_mapper(raw: dict[str, Any]) -> None:
    b = only(to_booking(raw), Booking)
    assert b.external_id == str(raw["id"])


@settings(max_examples=200, deadline=None)
@given(records(PROPERTY_KEYS))
def test_no_apartment_with_a_usable_id_crashes_the_mapper(raw: dict[str, Any]) -> None:
    assert only(to_property(raw), Property).external_id == str(raw["id"])


@settings(max_examples=200, deadline=None)
@given(records(GUEST_KEYS))
def test_no_guest_with_a_usable_id_crashes_the_mapper(raw: dict[str, Any]) -> None:
    assert only(to_guest(raw), Guest).external_id == str(raw["id"])


@settings(max_examples=100, deadline=None)
@given(json_values)
def test_envelope_extractors_return_records_or_raise_provider_error(body: Any) -> None:
    for extract in (paged("bookings"), apartments):
        try:
            page = extract(body)
        except ProviderError:
            continue
        assert all(isinstance(r, dict) for r in page.records)
