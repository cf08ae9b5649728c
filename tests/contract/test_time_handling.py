"""Time handling per provider fact sheet (shared/providers/*.md, "Date/time" sections).

Every raw record below is shaped like the fact sheet's examples; every expected value is either a
literal or computed here with ``zoneinfo`` — never by calling the code under test. The scenarios
sit on the 2026 DST changes of a European, a North-American and a southern-hemisphere zone, and
each one first checks (with zoneinfo) that the night, hour or wall time really is a DST edge, so a
changed tz database cannot quietly turn a test into a tautology.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from pms_cli.models import AnyRecord, Booking, Property, iso_date, local_datetime, utc_datetime
from pms_cli.providers import get_provider

ZERO = timedelta(0)

# --- helpers ---------------------------------------------------------------------------------


def mapped(provider: str, resource: str, raw: dict[str, Any]) -> AnyRecord:
    """The first record the provider's wired mapper (``PROVIDER.resources``) makes of ``raw``."""
    records = get_provider(provider).resource(resource).mapper(raw)
    assert records, f"{provider}/{resource} mapped nothing"
    return records[0]


def booking(provider: str, raw: dict[str, Any]) -> Booking:
    record = mapped(provider, "bookings", raw)
    assert isinstance(record, Booking)
    return record


def prop(provider: str, raw: dict[str, Any]) -> Property:
    record = mapped(provider, "properties", raw)
    assert isinstance(record, Property)
    return record


def local(zone: str, wall: datetime, fold: int = 0) -> datetime:
    return wall.replace(tzinfo=ZoneInfo(zone), fold=fold)


def is_skipped(zone: str, wall: datetime) -> bool:
    """The wall time does not exist in ``zone`` (spring-forward gap)."""
    there = local(zone, wall)
    return there.astimezone(UTC).astimezone(ZoneInfo(zone)).replace(tzinfo=None) != wall


def is_repeated(zone: str, wall: datetime) -> bool:
    """The wall time happens twice in ``zone`` (fall-back overlap)."""
    offsets = {local(zone, wall, fold).utcoffset() for fold in (0, 1)}
    return len(offsets) == 2 and not is_skipped(zone, wall)


def offset_changes_overnight(zone: str, night: date) -> bool:
    """The UTC offset at noon before the night differs from the offset at noon after it."""
    noon = time(12)
    before = local(zone, datetime.combine(night, noon)).utcoffset()
    after = local(zone, datetime.combine(night + timedelta(days=1), noon)).utcoffset()
    return before != after


def checked_utc(value: datetime | None) -> datetime:
    assert value is not None
    assert value.utcoffset() == ZERO
    return value


# --- scenarios (2026 DST changes) --------------------------------------------------------------


@dataclass(frozen=True)
class Stay:
    """Check-in at 15:00 and check-out at 11:00 local, with a DST change on one of the nights."""

    zone: str
    check_in: date
    check_out: date
    dst_night: date

    @property
    def nights(self) -> int:
        return (self.check_out - self.check_in).days

    @property
    def arrives(self) -> datetime:
        return local(self.zone, datetime.combine(self.check_in, time(15)))

    @property
    def leaves(self) -> datetime:
        return local(self.zone, datetime.combine(self.check_out, time(11)))

    def __str__(self) -> str:
        return f"{self.zone}:{self.check_in}"


STAYS = [
    Stay("Europe/Lisbon", date(2026, 3, 28), date(2026, 3, 30), date(2026, 3, 28)),  # spring
    Stay("Europe/Lisbon", date(2026, 10, 24), date(2026, 10, 26), date(2026, 10, 24)),  # fall
    Stay("America/New_York", date(2026, 3, 7), date(2026, 3, 9), date(2026, 3, 7)),  # spring
    Stay("America/New_York", date(2026, 10, 31), date(2026, 11, 2), date(2026, 10, 31)),  # fall
    Stay("Australia/Sydney", date(2026, 4, 4), date(2026, 4, 6), date(2026, 4, 4)),  # fall-back
    Stay("Australia/Sydney", date(2026, 10, 3), date(2026, 10, 5), date(2026, 10, 3)),  # spring
]


def check_stay_is_a_dst_stay(stay: Stay) -> None:
    assert offset_changes_overnight(stay.zone, stay.dst_night)
    assert stay.check_in <= stay.dst_night < stay.check_out
    # 15:00 → 11:00 is 20 h short of whole days, give or take the DST hour.
    elapsed = stay.leaves.astimezone(UTC) - stay.arrives.astimezone(UTC)
    assert elapsed != timedelta(days=stay.nights, hours=-4)


@dataclass(frozen=True)
class Moment:
    """A local wall time on a DST-change day with a fold, and the UTC instant it is (literal)."""

    zone: str
    wall: datetime
    fold: int
    utc: datetime

    @property
    def aware(self) -> datetime:
        return local(self.zone, self.wall, self.fold)

    def __str__(self) -> str:
        return f"{self.zone}:{self.wall:%m-%d %H:%M}:fold{self.fold}"


def _utc(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


MOMENTS = [
    # Europe/Berlin: +01:00 → +02:00 at 2026-03-29 01:00Z; back at 2026-10-25 01:00Z.
    Moment("Europe/Berlin", datetime(2026, 3, 29, 1, 30), 0, _utc(2026, 3, 29, 0, 30)),
    Moment("Europe/Berlin", datetime(2026, 3, 29, 3, 30), 0, _utc(2026, 3, 29, 1, 30)),
    Moment("Europe/Berlin", datetime(2026, 10, 25, 2, 30), 0, _utc(2026, 10, 25, 0, 30)),
    Moment("Europe/Berlin", datetime(2026, 10, 25, 2, 30), 1, _utc(2026, 10, 25, 1, 30)),
    # Europe/Lisbon: +00:00 → +01:00 at 2026-03-29 01:00Z.
    Moment("Europe/Lisbon", datetime(2026, 3, 29, 0, 59), 0, _utc(2026, 3, 29, 0, 59)),
    Moment("Europe/Lisbon", datetime(2026, 3, 29, 2, 30), 0, _utc(2026, 3, 29, 1, 30)),
    # America/New_York: -04:00 → -05:00 at 2026-11-01 06:00Z.
    Moment("America/New_York", datetime(2026, 11, 1, 1, 30), 0, _utc(2026, 11, 1, 5, 30)),
    Moment("America/New_York", datetime(2026, 11, 1, 1, 30), 1, _utc(2026, 11, 1, 6, 30)),
    # Australia/Sydney: +11:00 → +10:00 at 2026-04-04 16:00Z (a different UTC day).
    Moment("Australia/Sydney", datetime(2026, 4, 5, 2, 30), 0, _utc(2026, 4, 4, 15, 30)),
    Moment("Australia/Sydney", datetime(2026, 4, 5, 2, 30), 1, _utc(2026, 4, 4, 16, 30)),
]


@dataclass(frozen=True)
class Wall:
    """A local wall time that is skipped or repeated on a 2026 DST-change day."""

    zone: str
    wall: datetime
    kind: str  # "skipped" | "repeated"

    def __str__(self) -> str:
        return f"{self.zone}:{self.wall:%m-%d %H:%M}:{self.kind}"


WALLS = [
    Wall("Europe/Berlin", datetime(2026, 3, 29, 2, 30), "skipped"),
    Wall("Europe/Berlin", datetime(2026, 10, 25, 2, 30), "repeated"),
    Wall("Europe/Lisbon", datetime(2026, 3, 29, 1, 30), "skipped"),
    Wall("Europe/Lisbon", datetime(2026, 10, 25, 1, 30), "repeated"),
    Wall("America/New_York", datetime(2026, 3, 8, 2, 30), "skipped"),
    Wall("America/New_York", datetime(2026, 11, 1, 1, 30), "repeated"),
    Wall("Australia/Sydney", datetime(2026, 10, 4, 2, 30), "skipped"),
    Wall("Australia/Sydney", datetime(2026, 4, 5, 2, 30), "repeated"),
]


def check_wall_is_a_dst_edge(case: Wall) -> None:
    check = is_skipped if case.kind == "skipped" else is_repeated
    assert check(case.zone, case.wall), f"{case} is not {case.kind} in the tz database"


ZONES = [
    "Europe/Lisbon",
    "America/New_York",
    "Australia/Sydney",
    "America/Argentina/Buenos_Aires",
    "Asia/Kolkata",
    "Etc/GMT+3",  # POSIX sign: UTC-03:00; must not be "corrected"
    "UTC",
]

ids = str  # pytest ids from the dataclasses' __str__


def test_the_scenarios_sit_on_real_dst_changes() -> None:
    for stay in STAYS:
        check_stay_is_a_dst_stay(stay)
    for case in WALLS:
        check_wall_is_a_dst_edge(case)
    for moment in MOMENTS:
        assert moment.aware.astimezone(UTC) == moment.utc, moment
    # The repeated hour gives two instants one hour apart: fold matters in every zone used.
    pairs = [(a, b) for a in MOMENTS for b in MOMENTS if a.wall == b.wall and a.fold < b.fold]
    assert len(pairs) == 3
    assert all(b.utc - a.utc == timedelta(hours=1) for a, b in pairs)


# --- Guesty ------------------------------------------------------------------------------------
# checkIn/checkOut/createdAt/lastUpdatedAt: ISO-8601 UTC with milliseconds ("...000Z"), createdAt
# may carry an offset; checkInDateLocalized/checkOutDateLocalized: stay dates in the listing zone.


def guesty_ms(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def guesty_reservation(arrives: datetime, leaves: datetime, **extra: Any) -> dict[str, Any]:
    return {
        "_id": "62a08097b8a1ab0037fd3feb",
        "confirmationCode": "GY-abc123",
        "status": "confirmed",
        "listingId": "5f0c6a5e8f1e3c002d4b7a11",
        "checkIn": guesty_ms(arrives),
        "checkOut": guesty_ms(leaves),
        "checkInDateLocalized": arrives.date().isoformat(),
        "checkOutDateLocalized": leaves.date().isoformat(),
        "plannedArrival": arrives.strftime("%H:%M"),
        "plannedDeparture": leaves.strftime("%H:%M"),
        "nightsCount": (leaves.date() - arrives.date()).days,
        "guestsCount": 2,
        "source": "Airbnb",
        "money": {"currency": "EUR", "totalPaid": 520, "balanceDue": 0},
        "createdAt": "2024-05-01T08:30:00.000Z",
        "lastUpdatedAt": "2024-05-02T09:00:00.000Z",
        **extra,
    }


def guesty_listing(**extra: Any) -> dict[str, Any]:
    return {
        "_id": "5f0c6a5e8f1e3c002d4b7a11",
        "title": "Sunny 2BR near the beach",
        "timezone": "Europe/Lisbon",
        "defaultCheckInTime": "15:00",
        "defaultCheckOutTime": "11:00",
        "address": {"city": "Lisboa", "country": "Portugal"},
        "prices": {"currency": "EUR"},
        "lastUpdatedAt": "2024-05-01T08:30:00.000Z",
        **extra,
    }


@pytest.mark.parametrize(
    ("zone", "arrival"),
    [
        ("Australia/Sydney", datetime(2026, 10, 4, 10, 0)),  # spring-forward day, +11:00
        ("Europe/Lisbon", datetime(2026, 3, 30, 0, 30)),  # the day after spring-forward, +01:00
    ],
)
def test_guesty_keeps_localized_check_in_when_utc_date_is_the_day_before(
    zone: str, arrival: datetime
) -> None:
    arrives = local(zone, arrival)
    leaves = local(zone, arrival.replace(hour=11, minute=0) + timedelta(days=2))
    assert arrives.astimezone(UTC).date() == arrival.date() - timedelta(days=1)
    b = booking("guesty", guesty_reservation(arrives, leaves))
    assert b.check_in == arrival.date()
    assert b.check_out == arrival.date() + timedelta(days=2)


@pytest.mark.parametrize(
    ("zone", "arrival"),
    [
        ("America/New_York", datetime(2026, 3, 8, 21, 0)),  # spring-forward day, -04:00
        ("America/New_York", datetime(2026, 11, 1, 22, 0)),  # fall-back day, -05:00
    ],
)
def test_guesty_keeps_localized_check_in_when_utc_date_is_the_day_after(
    zone: str, arrival: datetime
) -> None:
    arrives = local(zone, arrival)
    leaves = local(zone, arrival.replace(hour=23, minute=30) + timedelta(days=1))
    assert arrives.astimezone(UTC).date() == arrival.date() + timedelta(days=1)
    assert leaves.astimezone(UTC).date() == arrival.date() + timedelta(days=2)
    b = booking("guesty", guesty_reservation(arrives, leaves))
    assert b.check_in == arrival.date()
    assert b.check_out == arrival.date() + timedelta(days=1)


@pytest.mark.parametrize("stay", STAYS, ids=ids)
def test_guesty_stay_across_a_dst_night_keeps_its_local_dates_and_nights(stay: Stay) -> None:
    check_stay_is_a_dst_stay(stay)
    raw = guesty_reservation(stay.arrives, stay.leaves)
    b = booking("guesty", raw)
    assert (b.check_in, b.check_out) == (stay.check_in, stay.check_out)
    assert b.check_in is not None and b.check_out is not None
    assert (b.check_out - b.check_in).days == raw["nightsCount"] == stay.nights


@pytest.mark.parametrize("moment", MOMENTS, ids=ids)
def test_guesty_offset_and_z_timestamps_become_the_exact_utc_instant(moment: Moment) -> None:
    # createdAt as in the spec example (milliseconds + offset), lastUpdatedAt as "...Z".
    with_offset = moment.aware.isoformat(timespec="milliseconds")
    stay = STAYS[0]
    raw = guesty_reservation(
        stay.arrives, stay.leaves, createdAt=with_offset, lastUpdatedAt=guesty_ms(moment.aware)
    )
    b = booking("guesty", raw)
    assert checked_utc(b.created_at) == moment.utc
    assert checked_utc(b.updated_at) == moment.utc
    listing = prop("guesty", guesty_listing(lastUpdatedAt=with_offset))
    assert checked_utc(listing.updated_at) == moment.utc


@pytest.mark.parametrize("zone", ZONES)
def test_guesty_listing_keeps_its_timezone_verbatim(zone: str) -> None:
    p = prop("guesty", guesty_listing(timezone=zone))
    assert p.timezone == zone
    assert p.timezone is not None and ZoneInfo(p.timezone).key == zone


@pytest.mark.parametrize("case", WALLS, ids=ids)
def test_guesty_default_check_in_and_out_times_stay_local_wall_clock_on_dst_edges(
    case: Wall,
) -> None:
    check_wall_is_a_dst_edge(case)
    hhmm = case.wall.strftime("%H:%M")
    p = prop(
        "guesty",
        guesty_listing(timezone=case.zone, defaultCheckInTime=hhmm, defaultCheckOutTime=hhmm),
    )
    assert (p.check_in_time, p.check_out_time) == (hhmm, hhmm)
    assert p.timezone == case.zone


# --- Hostaway ----------------------------------------------------------------------------------
# Datetimes are UTC "YYYY-MM-DD HH:MM:SS" (no T, no offset); arrivalDate/departureDate are listing-
# local dates; checkInTimeStart/checkOutTime are integer local hours; timeZoneName is IANA.


def hostaway_reservation(**extra: Any) -> dict[str, Any]:
    return {
        "id": 13,
        "listingMapId": 40160,
        "channelName": "airbnbOfficial",
        "confirmationCode": "HMP2KQ4B44",
        "reservationDate": "2017-06-10 10:41:10",
        "guestName": "Andrew Peterson",
        "guestEmail": "guest@example.com",
        "arrivalDate": "2017-07-15",
        "departureDate": "2017-07-16",
        "nights": 1,
        "checkInTime": None,
        "checkOutTime": None,
        "status": "new",
        "totalPrice": 267,
        "currency": "USD",
        "latestActivityOn": "2017-06-10 10:41:10",
        "insertedOn": "2017-06-10 10:41:11",
        "updatedOn": "2017-06-12 08:00:00",
        **extra,
    }


def hostaway_listing(**extra: Any) -> dict[str, Any]:
    return {
        "id": 40160,
        "name": "Cozy apartment near city center",
        "countryCode": "DE",
        "currencyCode": "USD",
        "checkInTimeStart": 12,
        "checkInTimeEnd": 21,
        "checkOutTime": 11,
        "timeZoneName": "Europe/Berlin",
        "latestActivityOn": "2024-05-02 10:11:12",
        **extra,
    }


@pytest.mark.parametrize("stay", STAYS, ids=ids)
def test_hostaway_stay_across_a_dst_night_keeps_its_local_dates_and_nights(stay: Stay) -> None:
    check_stay_is_a_dst_stay(stay)
    raw = hostaway_reservation(
        arrivalDate=stay.check_in.isoformat(),
        departureDate=stay.check_out.isoformat(),
        nights=stay.nights,
    )
    b = booking("hostaway", raw)
    assert (b.check_in, b.check_out) == (stay.check_in, stay.check_out)
    assert b.check_in is not None and b.check_out is not None
    assert (b.check_out - b.check_in).days == raw["nights"]


@pytest.mark.parametrize("case", WALLS, ids=ids)
def test_hostaway_reads_naive_timestamps_as_utc_even_where_the_listing_zone_skips_or_repeats(
    case: Wall,
) -> None:
    check_wall_is_a_dst_edge(case)
    stamp = case.wall.strftime("%Y-%m-%d %H:%M:%S")
    expected = case.wall.replace(tzinfo=UTC)
    b = booking("hostaway", hostaway_reservation(insertedOn=stamp, updatedOn=stamp))
    assert checked_utc(b.created_at) == expected
    assert checked_utc(b.updated_at) == expected
    p = prop("hostaway", hostaway_listing(timeZoneName=case.zone, latestActivityOn=stamp))
    assert checked_utc(p.updated_at) == expected
    assert p.timezone == case.zone


def test_hostaway_reservation_date_is_utc_when_inserted_on_is_absent() -> None:
    raw = hostaway_reservation(reservationDate="2026-03-29 01:30:00")
    del raw["insertedOn"]
    b = booking("hostaway", raw)
    assert checked_utc(b.created_at) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)


@pytest.mark.parametrize("zone", ZONES)
def test_hostaway_listing_keeps_its_timezone_verbatim(zone: str) -> None:
    p = prop("hostaway", hostaway_listing(timeZoneName=zone))
    assert p.timezone == zone


@pytest.mark.parametrize("case", WALLS, ids=ids)
def test_hostaway_check_in_and_out_hours_stay_local_wall_clock_on_dst_edges(case: Wall) -> None:
    check_wall_is_a_dst_edge(case)
    hour = case.wall.hour
    p = prop(
        "hostaway",
        hostaway_listing(timeZoneName=case.zone, checkInTimeStart=hour, checkOutTime=hour),
    )
    assert (p.check_in_time, p.check_out_time) == (f"{hour:02d}:00", f"{hour:02d}:00")


# --- Smoobu ------------------------------------------------------------------------------------
# arrival/departure "YYYY-MM-DD"; created-at "YYYY-MM-DD HH:mm" and modifiedAt "YYYY-MM-DD
# HH:mm[:ss]" are account-local with no designator. The adapter's "unverified facts" block says it
# reads them as UTC (the account zone is not exposed by /api/me): that documented choice is tested.


def smoobu_booking(**extra: Any) -> dict[str, Any]:
    return {
        "id": 291,
        "reference-id": "3412789922",
        "type": "reservation",
        "arrival": "2026-01-10",
        "departure": "2026-01-12",
        "created-at": "2025-12-01 14:26",
        "modifiedAt": "2025-12-02 09:01:44",
        "apartment": {"id": 123456, "name": "Sea View Loft"},
        "channel": {"id": 1234, "name": "Booking.com"},
        "guest-name": "Anna Muster",
        "email": "anna.muster@guest.booking.com",
        "adults": 2,
        "children": 0,
        "check-in": "16:00",
        "check-out": "10:00",
        "price": 240.0,
        "is-blocked-booking": False,
        "guestId": 4711,
        **extra,
    }


def smoobu_apartment(**extra: Any) -> dict[str, Any]:
    # The list item (id, name) merged with the detail, as Smoobu.pages yields it.
    return {
        "id": 123456,
        "name": "Sea View Loft",
        "location": {"street": "Hauptstr. 1", "city": "Berlin", "country": "Germany"},
        "timeZone": "Europe/Berlin",
        "rooms": {"maxOccupancy": 4, "bedrooms": 2, "bathrooms": 1},
        "currency": "EUR",
        **extra,
    }


@pytest.mark.parametrize("stay", STAYS, ids=ids)
def test_smoobu_stay_across_a_dst_night_keeps_its_local_dates_and_nights(stay: Stay) -> None:
    check_stay_is_a_dst_stay(stay)
    raw = smoobu_booking(arrival=stay.check_in.isoformat(), departure=stay.check_out.isoformat())
    b = booking("smoobu", raw)
    assert (b.check_in, b.check_out) == (stay.check_in, stay.check_out)
    assert b.check_in is not None and b.check_out is not None
    assert (b.check_out - b.check_in).days == stay.nights


@pytest.mark.parametrize("case", WALLS, ids=ids)
def test_smoobu_reads_naive_modified_at_as_utc_while_the_apartment_zone_is_unknown(
    case: Wall,
) -> None:
    """A skipped or repeated account-local wall time neither raises nor moves to another day."""
    check_wall_is_a_dst_edge(case)
    expected = case.wall.replace(tzinfo=UTC)
    for modified in (f"{case.wall:%Y-%m-%d %H:%M:%S}", f"{case.wall:%Y-%m-%d %H:%M}"):
        b = booking("smoobu", smoobu_booking(modifiedAt=modified))
        assert checked_utc(b.updated_at) == expected
        assert b.updated_at is not None and b.updated_at.date() == case.wall.date()


@pytest.mark.parametrize("case", WALLS, ids=ids)
def test_smoobu_reads_naive_created_at_as_utc_while_the_apartment_zone_is_unknown(
    case: Wall,
) -> None:
    check_wall_is_a_dst_edge(case)
    b = booking("smoobu", smoobu_booking(**{"created-at": f"{case.wall:%Y-%m-%d %H:%M}"}))
    assert checked_utc(b.created_at) == case.wall.replace(tzinfo=UTC)


@pytest.mark.parametrize("case", WALLS, ids=ids)
def test_smoobu_reads_naive_timestamps_as_wall_time_of_the_apartment_zone(case: Wall) -> None:
    """Fact sheet §7: interpret them in the apartment's ``timeZone``. A repeated hour reads as
    its first occurrence; a skipped one with the offset from before the change (zoneinfo)."""
    check_wall_is_a_dst_edge(case)
    zone = ZoneInfo(case.zone)
    expected = case.wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    raw = smoobu_booking(
        modifiedAt=f"{case.wall:%Y-%m-%d %H:%M:%S}", **{"created-at": f"{case.wall:%Y-%m-%d %H:%M}"}
    )
    mapper = get_provider("smoobu").resource("bookings").mapper
    [b] = mapper(raw, zones={"123456": case.zone})  # type: ignore[call-arg]
    assert isinstance(b, Booking)
    assert checked_utc(b.updated_at) == expected
    assert checked_utc(b.created_at) == expected
    utc_offset = zone.utcoffset(case.wall.replace(fold=0))
    assert utc_offset is not None and expected == (case.wall - utc_offset).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "zone", "expected"),
    [
        ("2026-07-01 12:00:00", "Europe/Berlin", datetime(2026, 7, 1, 10, 0, tzinfo=UTC)),
        ("2026-01-15 12:00", "Europe/Berlin", datetime(2026, 1, 15, 11, 0, tzinfo=UTC)),
        ("2026-01-15 12:00", "Australia/Sydney", datetime(2026, 1, 15, 1, 0, tzinfo=UTC)),
        ("2026-07-01T12:00:00+05:00", "Europe/Berlin", datetime(2026, 7, 1, 7, 0, tzinfo=UTC)),
        ("2026-07-01T12:00:00Z", "Europe/Berlin", datetime(2026, 7, 1, 12, 0, tzinfo=UTC)),
        ("2026-07-01 12:00:00", "Mars/Olympus_Mons", datetime(2026, 7, 1, 12, 0, tzinfo=UTC)),
        ("2026-07-01 12:00:00", None, datetime(2026, 7, 1, 12, 0, tzinfo=UTC)),
        ("not a time", "Europe/Berlin", None),
    ],
)
def test_local_datetime_reads_wall_time_in_the_zone_and_keeps_explicit_offsets(
    text: str, zone: str | None, expected: datetime | None
) -> None:
    assert local_datetime(text, zone) == expected


@pytest.mark.parametrize("zone", ZONES)
def test_smoobu_apartment_keeps_its_timezone_verbatim(zone: str) -> None:
    p = prop("smoobu", smoobu_apartment(timeZone=zone))
    assert p.timezone == zone


# --- Lodgify -----------------------------------------------------------------------------------
# arrival/departure "YYYY-MM-DD"; created_at/updated_at ISO-8601 with or without Z / fractional
# seconds; naive values are read as UTC (unverified; the adapter documents it).


def lodgify_booking(**extra: Any) -> dict[str, Any]:
    return {
        "id": 9876543,
        "user_id": 111222,
        "arrival": "2025-07-10",
        "departure": "2025-07-14",
        "property_id": 123456,
        "rooms": [{"room_type_id": 654321, "guest_breakdown": {"adults": 2, "children": 1}}],
        "guest": {"name": "Anna Schmidt", "email": "anna@example.com", "country_code": "DE"},
        "status": "Booked",
        "source": "Manual",
        "currency_code": "EUR",
        "total_amount": 520.0,
        "created_at": "2025-03-02T09:15:27Z",
        "updated_at": "2025-03-05T11:00:00.000Z",
        "is_deleted": False,
        **extra,
    }


def lodgify_property(**extra: Any) -> dict[str, Any]:
    return {
        "id": 123456,
        "name": "Sea View Apartment",
        "city": "Barcelona",
        "country": "Spain",
        "currency_code": "EUR",
        "created_at": "2023-02-01T10:12:33.123Z",
        "updated_at": "2024-05-06T08:00:00Z",
        "is_active": True,
        **extra,
    }


@pytest.mark.parametrize("stay", STAYS, ids=ids)
def test_lodgify_stay_across_a_dst_night_keeps_its_local_dates_and_nights(stay: Stay) -> None:
    check_stay_is_a_dst_stay(stay)
    raw = lodgify_booking(arrival=stay.check_in.isoformat(), departure=stay.check_out.isoformat())
    b = booking("lodgify", raw)
    assert (b.check_in, b.check_out) == (stay.check_in, stay.check_out)
    assert b.check_in is not None and b.check_out is not None
    assert (b.check_out - b.check_in).days == stay.nights


@pytest.mark.parametrize("moment", MOMENTS, ids=ids)
def test_lodgify_offset_and_z_timestamps_become_the_exact_utc_instant(moment: Moment) -> None:
    with_offset = moment.aware.isoformat()
    with_z = moment.utc.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    b = booking("lodgify", lodgify_booking(created_at=with_offset, updated_at=with_z))
    assert checked_utc(b.created_at) == moment.utc
    assert checked_utc(b.updated_at) == moment.utc
    p = prop("lodgify", lodgify_property(updated_at=with_offset))
    assert checked_utc(p.updated_at) == moment.utc


@pytest.mark.parametrize("case", WALLS, ids=ids)
def test_lodgify_reads_naive_timestamps_as_utc_as_the_adapter_documents(case: Wall) -> None:
    check_wall_is_a_dst_edge(case)
    expected = case.wall.replace(tzinfo=UTC)
    naive = case.wall.isoformat()
    b = booking("lodgify", lodgify_booking(created_at=naive, updated_at=naive))
    assert checked_utc(b.created_at) == expected
    assert checked_utc(b.updated_at) == expected
    p = prop("lodgify", lodgify_property(updated_at=naive))
    assert checked_utc(p.updated_at) == expected


# --- Beds24 ------------------------------------------------------------------------------------
# arrival/departure "YYYY-MM-DD" in the property's calendar; bookingTime/modifiedTime ISO-8601 UTC
# with Z; property checkInStart/checkInEnd/checkOutEnd "HH:MM" local.


def beds24_booking(**extra: Any) -> dict[str, Any]:
    return {
        "id": 71234567,
        "propertyId": 123456,
        "roomId": 234567,
        "status": "confirmed",
        "arrival": "2025-07-01",
        "departure": "2025-07-05",
        "numAdult": 2,
        "numChild": 0,
        "firstName": "Anna",
        "lastName": "Schmidt",
        "email": "anna@example.com",
        "arrivalTime": "",
        "price": 480.00,
        "channel": "booking",
        "apiReference": "4123456789",
        "bookingTime": "2025-05-10T14:22:05Z",
        "modifiedTime": "2025-05-10T14:22:05Z",
        "cancelTime": None,
        **extra,
    }


def beds24_property(**extra: Any) -> dict[str, Any]:
    return {
        "id": 123456,
        "name": "Seaside Apartments",
        "currency": "EUR",
        "city": "Lisbon",
        "country": "PT",
        "checkInStart": "15:00",
        "checkInEnd": "22:00",
        "checkOutEnd": "11:00",
        "roomTypes": [{"id": 234567, "propertyId": 123456, "name": "Studio", "maxPeople": 2}],
        **extra,
    }


@pytest.mark.parametrize("stay", STAYS, ids=ids)
def test_beds24_stay_across_a_dst_night_keeps_its_local_dates_and_nights(stay: Stay) -> None:
    check_stay_is_a_dst_stay(stay)
    raw = beds24_booking(arrival=stay.check_in.isoformat(), departure=stay.check_out.isoformat())
    b = booking("beds24", raw)
    assert (b.check_in, b.check_out) == (stay.check_in, stay.check_out)
    assert b.check_in is not None and b.check_out is not None
    assert (b.check_out - b.check_in).days == stay.nights


@pytest.mark.parametrize("moment", MOMENTS, ids=ids)
def test_beds24_z_timestamps_around_dst_changes_are_the_exact_utc_instant(moment: Moment) -> None:
    stamp = moment.aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    b = booking("beds24", beds24_booking(bookingTime=stamp, modifiedTime=stamp))
    assert checked_utc(b.created_at) == moment.utc
    assert checked_utc(b.updated_at) == moment.utc


@pytest.mark.parametrize("case", WALLS, ids=ids)
def test_beds24_check_in_and_out_times_stay_local_wall_clock_on_dst_edges(case: Wall) -> None:
    check_wall_is_a_dst_edge(case)
    hhmm = case.wall.strftime("%H:%M")
    p = prop("beds24", beds24_property(checkInStart=hhmm, checkOutEnd=hhmm))
    assert (p.check_in_time, p.check_out_time) == (hhmm, hhmm)


@pytest.mark.parametrize(
    ("provider", "raw"),
    [("lodgify", lodgify_property()), ("beds24", beds24_property())],
)
def test_providers_without_a_documented_timezone_field_do_not_invent_one(
    provider: str, raw: dict[str, Any]
) -> None:
    assert prop(provider, raw).timezone is None


# --- shared normalisers (pms_cli.models) -------------------------------------------------------

REAL_WORLD = {"min_value": datetime(1900, 1, 1), "max_value": datetime(2100, 12, 31)}


@settings(max_examples=300, deadline=None)
@given(
    moment=st.datetimes(**REAL_WORLD, timezones=st.timezones()),
    sep=st.sampled_from(["T", " "]),
)
def test_utc_datetime_reads_any_aware_iso_string_as_the_same_instant(
    moment: datetime, sep: str
) -> None:
    offset = moment.utcoffset()
    assert offset is not None
    expected = (moment.replace(tzinfo=None) - offset).replace(tzinfo=UTC)
    assert checked_utc(utc_datetime(moment.isoformat(sep=sep))) == expected


@settings(max_examples=300, deadline=None)
@given(
    moment=st.datetimes(**REAL_WORLD),
    sep=st.sampled_from(["T", " "]),
    spec=st.sampled_from(["minutes", "seconds", "milliseconds", "microseconds"]),
)
def test_utc_datetime_reads_any_naive_iso_string_as_utc(
    moment: datetime, sep: str, spec: str
) -> None:
    kept = {
        "minutes": moment.replace(second=0, microsecond=0),
        "seconds": moment.replace(microsecond=0),
        "milliseconds": moment.replace(microsecond=moment.microsecond // 1000 * 1000),
        "microseconds": moment,
    }[spec]
    result = checked_utc(utc_datetime(moment.isoformat(sep=sep, timespec=spec)))
    assert result == kept.replace(tzinfo=UTC)


@settings(max_examples=200, deadline=None)
@given(moment=st.datetimes(**REAL_WORLD), millis=st.booleans())
def test_utc_datetime_reads_a_z_suffix_with_or_without_fractions_as_utc(
    moment: datetime, millis: bool
) -> None:
    moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000 if millis else 0)
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S")
    stamp += f".{moment.microsecond // 1000:03d}Z" if millis else "Z"
    assert checked_utc(utc_datetime(stamp)) == moment.replace(tzinfo=UTC)


@settings(max_examples=300, deadline=None)
@given(
    day=st.dates(min_value=date(1900, 1, 2), max_value=date(2100, 12, 30)),
    clock=st.times(),
    zone=st.one_of(
        st.none(),
        st.just("Z"),
        st.integers(min_value=-14 * 60, max_value=14 * 60).map(
            lambda minutes: timezone(timedelta(minutes=minutes))
        ),
    ),
    sep=st.sampled_from(["T", " "]),
)
def test_iso_date_keeps_the_date_of_a_string_with_a_time_part(
    day: date, clock: time, zone: timezone | str | None, sep: str
) -> None:
    if isinstance(zone, timezone):
        text = datetime.combine(day, clock, tzinfo=zone).isoformat(sep=sep)
    else:
        text = datetime.combine(day, clock).isoformat(sep=sep) + (zone or "")
    assert iso_date(text) == day


@pytest.mark.parametrize("moment", MOMENTS, ids=ids)
def test_utc_datetime_maps_both_sides_of_a_dst_change_to_the_exact_instant(
    moment: Moment,
) -> None:
    assert checked_utc(utc_datetime(moment.aware.isoformat())) == moment.utc


def test_utc_datetime_reads_the_documented_example_instant() -> None:
    assert utc_datetime("2026-03-29T03:30:00+02:00") == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert utc_datetime("2026-03-29T01:30:00Z") == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert utc_datetime("2026-03-29 01:30:00") == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)


@pytest.mark.parametrize("model", [Property, Booking])
@pytest.mark.parametrize("moment", MOMENTS, ids=ids)
def test_model_updated_at_given_with_a_zone_is_stored_as_the_same_utc_instant(
    model: type[Property] | type[Booking], moment: Moment
) -> None:
    extra = {"status": "confirmed"} if model is Booking else {}
    record = model(external_id="1", updated_at=moment.aware, **extra)
    assert checked_utc(record.updated_at) == moment.utc


@pytest.mark.parametrize("model", [Property, Booking])
def test_model_updated_at_rejects_a_naive_datetime_whose_zone_is_unknown(
    model: type[Property] | type[Booking],
) -> None:
    extra = {"status": "confirmed"} if model is Booking else {}
    with pytest.raises(ValidationError, match="timezone-aware"):
        model(external_id="1", updated_at=datetime(2026, 10, 25, 2, 30), **extra)


@pytest.mark.parametrize("moment", MOMENTS, ids=ids)
def test_guesty_and_lodgify_send_a_modified_since_given_with_a_zone_as_the_utc_instant(
    moment: Moment,
) -> None:
    """``pms sync --since 2026-03-29T03:30:00+02:00`` reaches the adapters with its offset."""
    guesty_filter = get_provider("guesty").resource("bookings").since
    lodgify_filter = get_provider("lodgify").resource("bookings").since
    assert guesty_filter is not None and lodgify_filter is not None
    # Guesty v3 has no updated-at filter: the cursor bounds the created-since window.
    created = guesty_filter(moment.aware)["filter[createdAt][gte]"]
    assert created == moment.utc.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert lodgify_filter(moment.aware)["updatedSince"] == moment.utc.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("moment", MOMENTS, ids=ids)
def test_hostaway_and_beds24_send_a_modified_since_given_with_a_zone_as_utc_wall_time(
    moment: Moment,
) -> None:
    """Both APIs read their naive filter as UTC: an offset must be converted, not dropped.

    Hostaway's is a date (listings; reservations are walked to the cursor instead), sent a
    day before the UTC day of the moment."""
    hostaway_filter = get_provider("hostaway").resource("properties").since
    beds24_filter = get_provider("beds24").resource("bookings").since
    assert hostaway_filter is not None and beds24_filter is not None
    wall = moment.utc.strftime("%Y-%m-%d %H:%M:%S")
    day_before = (moment.utc - timedelta(days=1)).strftime("%Y-%m-%d")
    assert hostaway_filter(moment.aware)["latestActivityStart"] == day_before
    assert beds24_filter(moment.aware)["modifiedFrom"] == wall.replace(" ", "T")
