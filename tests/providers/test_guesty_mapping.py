"""Guesty mappers and request helpers on the fact sheet's documented objects, and on junk."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pms_cli.models import Booking, BookingStatus, Guest, Property
from pms_cli.providers.guesty import (
    Guesty,
    booking_status,
    created_since,
    guesty_retry_after,
    iso_ms,
    search_page,
    stays_not_ended,
    to_booking,
    to_guest,
    to_property,
    token_url,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "guesty"


def load(name: str) -> dict[str, Any]:
    return dict(json.loads((FIXTURES / f"{name}.json").read_text()))


# ------------------------------------------------------------------ listings


def test_maps_the_documented_listing() -> None:
    [prop] = to_property(load("listing"))
    assert isinstance(prop, Property)
    assert prop.external_id == "5f0c6a5e8f1e3c002d4b7a11"
    assert prop.name == "Sunny 2BR near the beach"
    assert prop.address == "Rua X 12, 1200-001 Lisboa, Portugal"
    assert prop.city == "Lisboa"
    assert (prop.latitude, prop.longitude) == (38.7139, -9.1394)
    assert prop.timezone == "Europe/Lisbon"
    assert (prop.max_guests, prop.bedrooms, prop.bathrooms) == (4, 2, 1.5)
    assert (prop.check_in_time, prop.check_out_time) == ("15:00", "11:00")
    assert prop.currency == "EUR"
    assert prop.active is True
    assert prop.updated_at == datetime(2024, 5, 1, 8, 30, tzinfo=UTC)
    assert prop.raw["tags"] == ["lisbon"]


def test_a_country_name_or_code_becomes_iso_alpha_2() -> None:
    [prop] = to_property(load("listing"))
    assert isinstance(prop, Property) and prop.country == "PT"  # "Portugal", via pycountry
    listing = load("listing")
    listing["address"]["country"] = "pt"
    [prop] = to_property(listing)
    assert isinstance(prop, Property) and prop.country == "PT"


def test_an_inactive_listing_is_inactive_and_a_missing_flag_is_active() -> None:
    [off] = to_property({**load("listing"), "active": False})
    [unknown] = to_property({"_id": "x"})
    assert isinstance(off, Property) and off.active is False
    assert isinstance(unknown, Property) and unknown.active is True


def test_the_title_falls_back_to_the_nickname_and_bad_times_are_dropped() -> None:
    listing = {**load("listing"), "title": " ", "defaultCheckInTime": "3pm"}
    listing["defaultCheckOutTime"] = "25:00"
    [prop] = to_property(listing)
    assert isinstance(prop, Property)
    assert prop.name == "BEACH-2BR-01"
    assert prop.check_in_time is None and prop.check_out_time is None


# ------------------------------------------------------------------ reservations


def test_maps_the_documented_reservation() -> None:
    [booking] = to_booking(load("reservation"))
    assert isinstance(booking, Booking)
    assert booking.external_id == "62a08097b8a1ab0037fd3feb"
    assert booking.property_external_id == "5f0c6a5e8f1e3c002d4b7a11"
    assert booking.guest_external_id == "62a0809600112233445566aa"
    assert booking.status is BookingStatus.CONFIRMED
    assert (booking.check_in, booking.check_out) == (date(2024, 6, 10), date(2024, 6, 14))
    assert (booking.adults, booking.children) == (2, 0)
    assert booking.channel == "Airbnb"
    assert booking.confirmation_code == "GY-abc123"
    assert booking.total_price == Decimal("520") and booking.currency == "EUR"
    assert booking.guest_name == "Ana Silva"
    assert booking.guest_email == "ana@example.com"
    assert booking.guest_phone == "+351911111111"
    assert booking.created_at == datetime(2024, 5, 1, 8, 30, tzinfo=UTC)
    assert booking.updated_at == datetime(2024, 5, 2, 9, 0, tzinfo=UTC)


def test_stay_dates_come_from_the_localized_fields_not_the_utc_instants() -> None:
    # A 23:00 UTC check-in in Tokyo is the next calendar day locally.
    res = {**load("reservation"), "checkIn": "2024-06-09T23:00:00.000Z"}
    [booking] = to_booking(res)
    assert isinstance(booking, Booking) and booking.check_in == date(2024, 6, 10)


def test_utc_instants_are_the_fallback_when_localized_dates_are_missing() -> None:
    res = load("reservation")
    del res["checkInDateLocalized"], res["checkOutDateLocalized"]
    [booking] = to_booking(res)
    assert isinstance(booking, Booking)
    assert (booking.check_in, booking.check_out) == (date(2024, 6, 10), date(2024, 6, 14))


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("confirmed", BookingStatus.CONFIRMED),
        ("checked_in", BookingStatus.CONFIRMED),
        ("checked_out", BookingStatus.CONFIRMED),
        ("reserved", BookingStatus.PENDING),
        ("inquiry", BookingStatus.INQUIRY),
        ("canceled", BookingStatus.CANCELLED),
        ("declined", BookingStatus.CANCELLED),
        ("expired", BookingStatus.CANCELLED),
        ("closed", BookingStatus.CANCELLED),
        ("something_new", BookingStatus.INQUIRY),
        (None, BookingStatus.INQUIRY),
    ],
)
def test_statuses_map_to_the_canonical_vocabulary(
    status: str | None, expected: BookingStatus
) -> None:
    assert booking_status({"status": status, "source": "Airbnb"}) is expected


def test_an_owner_hold_is_blocked_unless_it_was_cancelled() -> None:
    assert booking_status({"status": "confirmed", "source": "owner"}) is BookingStatus.BLOCKED
    assert booking_status({"status": "reserved", "source": "Owner"}) is BookingStatus.BLOCKED
    assert booking_status({"status": "canceled", "source": "owner"}) is BookingStatus.CANCELLED


def test_the_total_is_paid_plus_due_else_subtotal_plus_taxes() -> None:
    res = load("reservation")
    res["money"] = {"currency": "EUR", "totalPaid": 100.1, "balanceDue": 420.2}
    [booking] = to_booking(res)
    assert isinstance(booking, Booking) and booking.total_price == Decimal("520.3")
    res["money"] = {"currency": "EUR", "subTotalPrice": 500, "totalTaxes": 35.5}
    [booking] = to_booking(res)
    assert isinstance(booking, Booking) and booking.total_price == Decimal("535.5")
    res["money"] = {"currency": "EUR", "subTotalPrice": 500}
    [booking] = to_booking(res)
    assert isinstance(booking, Booking) and booking.total_price == Decimal("500")


def test_a_reservation_without_requested_sections_still_maps() -> None:
    # Without `fields` Guesty leaves guest, numberOfGuests and friends out.
    res = {k: v for k, v in load("reservation").items() if k not in ("guest", "numberOfGuests")}
    [booking] = to_booking(res)
    assert isinstance(booking, Booking)
    assert booking.guest_external_id == "62a0809600112233445566aa"
    assert booking.guest_name is None
    assert booking.adults == 2  # guestsCount


def test_the_channel_falls_back_to_the_integration_platform() -> None:
    res = {**load("reservation"), "source": None}
    [booking] = to_booking(res)
    assert isinstance(booking, Booking) and booking.channel == "airbnb2"


# ------------------------------------------------------------------ guests


def test_maps_the_documented_guest() -> None:
    [guest] = to_guest(load("guest"))
    assert isinstance(guest, Guest)
    assert guest.external_id == "62a0809600112233445566aa"
    assert (guest.name, guest.first_name, guest.last_name) == ("Ana Silva", "Ana", "Silva")
    assert guest.email == "ana@example.com"
    assert guest.phone == "+351911111111"
    assert guest.country is None
    assert guest.raw["hometown"] == "Porto"


def test_guest_contact_falls_back_to_the_lists_and_country_to_the_address_code() -> None:
    raw = {
        "_id": "g1",
        "firstName": "Ana",
        "lastName": "Silva",
        "emails": ["second@example.com"],
        "phones": ["+351900000000"],
        "address": {"country": "Portugal", "countryCode": "pt"},
        "preferredLanguage": "pt",
    }
    [guest] = to_guest(raw)
    assert isinstance(guest, Guest)
    assert guest.name == "Ana Silva"
    assert (guest.email, guest.phone) == ("second@example.com", "+351900000000")
    assert (guest.country, guest.language) == ("PT", "pt")


@pytest.mark.parametrize("mapper", [to_property, to_booking, to_guest])
def test_a_record_without_an_id_is_rejected(mapper: Any) -> None:
    with pytest.raises(KeyError):
        mapper({"title": "no id"})


# ------------------------------------------------------------------ arbitrary input

KEYS = sorted(
    set(load("listing")) | set(load("reservation")) | set(load("guest")) | {"address", "money"}
    | {"numberOfAdults", "numberOfChildren", "countryCode", "country", "emails", "phones"}
    | {"currency", "totalPaid", "balanceDue", "subTotalPrice", "totalTaxes", "platform"}
    | {"prices", "nationality", "preferredLanguage"}
    | {"stay", "unitId", "reservationId", "guestEmail", "guestPhone", "guestOtherEmails"}
)  # fmt: skip
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=5), inner, max_size=6)
    ),
    max_leaves=12,
)
RECORDS = st.builds(
    lambda rid, rest: {**rest, "_id": rid},
    st.text(min_size=1, max_size=24) | st.integers(min_value=0),
    st.dictionaries(st.sampled_from(KEYS), JSON, max_size=12),
)


@settings(max_examples=200, deadline=None)
@given(RECORDS)
# "µ".upper() is a Greek capital: such codes must be dropped, not fail the model's pattern.
@example({"_id": "x", "address": {"countryCode": "aµ"}, "prices": {"currency": "eµr"}})
@example({"_id": "y", "money": {"currency": "µsd"}, "nationality": "µs"})
def test_no_record_with_an_id_crashes_any_mapper(raw: dict[str, Any]) -> None:
    for mapper in (to_property, to_booking, to_guest):
        [record] = mapper(raw)
        assert record.external_id == str(raw["_id"])
        assert record.raw == raw


# ------------------------------------------------------------------ requests


def test_the_windows_are_bracket_filters_on_created_at_and_local_check_out_dates() -> None:
    since = datetime(2024, 5, 1, 2, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert created_since(since) == {"filter[createdAt][gte]": "2024-05-01T00:00:00.123Z"}
    # Stays that had not ended at the cursor, with a day of slack for the listing's zone.
    assert stays_not_ended(since) == {"filter[checkOut][gte]": "2024-04-30"}
    assert iso_ms(datetime(2024, 5, 1, tzinfo=UTC)) == "2024-05-01T00:00:00.000Z"


def test_the_window_parameters_follow_the_documented_bracket_grammar() -> None:
    documented = load("reservations_v3_request")["query"]
    ours = {**created_since(datetime(2024, 5, 1, tzinfo=UTC))}
    ours |= stays_not_ended(datetime(2024, 5, 1, tzinfo=UTC))
    assert set(ours) <= set(documented)
    assert ours == {k: documented[k] for k in ours}
    assert Guesty.resource("bookings").params == {"sort": "_id"}


def test_a_v3_search_page_gives_ids_and_has_more_and_maps_both_row_shapes() -> None:
    page = search_page(load("reservations_v3_page"))
    assert page.has_more is False and page.total is None
    assert [r["_id"] for r in page.records] == [
        "62a08097b8a1ab0037fd3feb",
        "62a08097b8a1ab0037fd3fec",
    ]
    first, second = (to_booking(r)[0] for r in page.records)
    assert isinstance(first, Booking) and isinstance(second, Booking)
    assert first.property_external_id == second.property_external_id == "5f0c6a5e8f1e3c002d4b7a11"
    assert (first.check_in, first.check_out) == (date(2024, 6, 10), date(2024, 6, 14))
    assert (second.check_in, second.status) == (date(2024, 7, 1), BookingStatus.CANCELLED)


def test_a_lean_v3_row_joined_with_its_guest_and_folio_maps_fully() -> None:
    guest = load("guests_list_page")["results"][0]
    folio = load("folio_overview")["results"][0]
    row = {**search_page({"results": [load("reservation_v3")]}).records[0]}
    [booking] = to_booking({**row, "guest": guest, "money": folio})
    assert isinstance(booking, Booking)
    assert booking.external_id == "62a08097b8a1ab0037fd3feb"
    assert booking.property_external_id == "5f0c6a5e8f1e3c002d4b7a11"
    assert (booking.check_in, booking.check_out) == (date(2024, 6, 10), date(2024, 6, 14))
    assert (booking.adults, booking.children) == (2, 0)
    assert booking.total_price == Decimal("520") and booking.currency == "EUR"
    assert (booking.guest_name, booking.guest_email) == ("Ana Silva", "ana@example.com")
    assert booking.guest_phone == "+351911111111"


def test_a_lean_v3_row_without_joins_leaves_guest_and_money_empty() -> None:
    [booking] = to_booking(search_page({"results": [load("reservation_v3")]}).records[0])
    assert isinstance(booking, Booking)
    assert booking.total_price is None and booking.guest_email is None
    assert booking.guest_external_id == "62a0809600112233445566aa"


def test_a_guest_list_row_maps_with_the_list_column_names() -> None:
    [guest] = to_guest(load("guests_list_page")["results"][0])
    assert isinstance(guest, Guest)
    assert guest.external_id == "62a0809600112233445566aa"
    assert (guest.email, guest.phone) == ("ana@example.com", "+351911111111")


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("https://open-api.guesty.com/v1", "https://open-api.guesty.com/oauth2/token"),
        ("https://open-api.guesty.com/v1/", "https://open-api.guesty.com/oauth2/token"),
        ("http://127.0.0.1:8123/guesty/v1", "http://127.0.0.1:8123/guesty/oauth2/token"),
        ("http://proxy.test/guesty", "http://proxy.test/guesty/oauth2/token"),
    ],
)
def test_the_token_url_sits_beside_v1_not_under_it(base: str, expected: str) -> None:
    assert token_url(base) == expected


def test_retry_after_longer_than_an_hour_means_quota_and_is_not_slept() -> None:
    assert guesty_retry_after({"retry-after": "3"}, 0.0) == 3.0
    assert guesty_retry_after({"retry-after": "3600"}, 0.0) == 3600.0
    assert guesty_retry_after({"retry-after": "80000"}, 0.0) is None
    assert guesty_retry_after({}, 0.0) is None


def test_declares_the_three_documented_rate_windows_and_the_public_client_id() -> None:
    assert [(w.limit, w.seconds) for w in Guesty.rate_limits] == [
        (15, 1.0),
        (120, 60.0),
        (5000, 3600.0),
    ]
    [public] = Guesty.public_fields()
    assert (public.name, public.env) == ("client_id", "GUESTY_CLIENT_ID")
    [secret] = Guesty.secret_fields()
    assert (secret.name, secret.env) == ("client_secret", "GUESTY_CLIENT_SECRET")
    assert Guesty.account_ref_from({"client_id": "0oa123"}) == "0oa123"
