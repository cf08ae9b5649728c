"""Resources without a modified-since filter: re-read whole every `sync.refresh_hours`, and in
between only the records that new bookings point at are fetched (one request each)."""

from __future__ import annotations

import copy
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from pms_cli.providers import get_provider, registry
from tests.conftest import SharedClock
from tests.helpers import Harness

HOUR = 3600.0


def harness_for(provider: str, tmp_path: Path, clock: SharedClock) -> Harness:
    return Harness(provider, tmp_path, clock, listings=6, reservations=150)


def book_a_new_smoobu_apartment(h: Harness, apartment_id: int, name: str) -> dict[str, Any]:
    """Add an apartment upstream and one new booking in it; return the booking."""
    template = next(iter(h.state.apartments.values()))
    h.state.apartments[apartment_id] = {**copy.deepcopy(template), "id": apartment_id, "name": name}
    (booking_id,) = h.state.add_bookings(1)
    booking: dict[str, Any] = h.state.reservations[booking_id]
    booking["apartment"] = {"id": apartment_id, "name": name}
    return booking


def rows(h: Harness, kind: str) -> dict[str, dict[str, object]]:
    return {r["external_id"]: r for r in h.store.fetch_rows(kind, h.conn.id)}  # type: ignore[arg-type]


@pytest.mark.parametrize("provider", sorted(registry()))
def test_an_unchanged_incremental_sync_issues_at_most_one_request_per_resource(
    provider: str, tmp_path: Path, clock: SharedClock
) -> None:
    h = harness_for(provider, tmp_path, clock)
    first = h.sync()
    assert first.status == "succeeded", first.error
    before = {k: rows(h, k) for k in ("property", "booking", "guest")}
    clock.advance(HOUR)
    second = h.sync()
    assert second.status == "succeeded", second.error
    budget = len(get_provider(provider).resources)
    # + one per declared list of deleted records (Lodgify /v2/deletedProperties).
    budget += sum(r.lists_deletions for r in get_provider(provider).resources)
    if provider == "guesty":
        # v3 has no updated-at filter: the stays-not-ended window is re-read on every run
        # (3 requests per page with its guest and money joins); see providers/guesty.py.
        budget += 3 * math.ceil(second.resources["bookings"].fetched / 100)
    assert second.requests <= budget, second.to_dict()
    assert {k: rows(h, k).keys() for k in before} == {k: v.keys() for k, v in before.items()}


def test_unfiltered_resources_are_skipped_as_fresh_until_the_refresh_interval_passes(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness_for("smoobu", tmp_path, clock)
    h.sync()
    clock.advance(h.settings.sync.refresh_hours * HOUR - 60)
    within = h.sync()
    assert within.resources["properties"].status == "fresh"
    assert within.resources["guests"].status == "fresh"
    clock.advance(120)
    after = h.sync()
    assert after.resources["properties"].status == "succeeded"
    assert after.resources["guests"].status == "succeeded"
    assert after.resources["properties"].fetched == len(h.state.apartments)


def test_a_new_booking_brings_its_new_apartment_and_new_guest_in_the_same_run(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness_for("smoobu", tmp_path, clock)
    h.sync()
    clock.advance(HOUR)
    booking = book_a_new_smoobu_apartment(h, 999_001, "Loft am Kanal")
    guest_id = booking["guestId"]
    known_guest = str(guest_id) in rows(h, "guest")

    result = h.sync()

    assert result.status == "succeeded", result.error
    assert rows(h, "property")["999001"]["name"] == "Loft am Kanal"
    assert str(guest_id) in rows(h, "guest")
    # One bookings page; the apartment list (the detail lacks the name) and the apartment's
    # detail; the guest unless it was a returning one.
    assert result.requests == 1 + 2 + (0 if known_guest else 1)
    assert result.resources["properties"].written == {"property": 1}
    assert result.resources["properties"].status == "fresh"  # no whole read happened


def test_edits_to_an_existing_guest_wait_for_the_next_whole_read(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness_for("smoobu", tmp_path, clock)
    h.sync()
    guest_id = min(h.state.guests)
    h.state.guests[guest_id]["firstName"] = "Zora"
    clock.advance(HOUR)
    h.sync()
    assert rows(h, "guest")[str(guest_id)]["first_name"] != "Zora"
    clock.advance(h.settings.sync.refresh_hours * HOUR)
    h.sync()
    assert rows(h, "guest")[str(guest_id)]["first_name"] == "Zora"


def test_many_new_guests_are_read_with_one_whole_walk_instead_of_one_request_each(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness_for("smoobu", tmp_path, clock)
    h.sync()
    stored = len(rows(h, "guest"))
    clock.advance(HOUR)
    added = h.state.add_bookings(40)
    new_guests = {h.state.reservations[b]["guestId"] for b in added} - {
        int(k) for k in rows(h, "guest")
    }
    assert len(new_guests) > 2, "the sandbox made too few new guests for this test"

    result = h.sync()

    guests = result.resources["guests"]
    assert guests.status == "succeeded"  # a whole read: its refresh time moves on
    pages = -(-(stored + len(new_guests)) // 100)
    assert guests.requests == pages < len(new_guests)
    assert {str(g) for g in new_guests} <= rows(h, "guest").keys()


def test_guesty_fetches_the_new_listing_of_a_new_reservation_by_id(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness_for("guesty", tmp_path, clock)
    h.sync()
    clock.advance(HOUR)
    template = next(iter(h.state.listings.values()))
    h.state.listings["l-new"] = {**copy.deepcopy(template), "_id": "l-new", "title": "Casa Nova"}
    (reservation_id,) = h.state.add_reservations(1)
    h.state.reservations[reservation_id]["listingId"] = "l-new"

    result = h.sync()

    assert result.status == "succeeded", result.error
    assert rows(h, "property")["l-new"]["name"] == "Casa Nova"
    assert result.resources["properties"].requests == 1


def test_refresh_hours_zero_reads_every_resource_whole_on_every_run(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness_for("smoobu", tmp_path, clock)
    h.settings.sync.refresh_hours = 0
    h.sync()
    clock.advance(60)
    again = h.sync()
    assert {r.status for r in again.resources.values()} == {"succeeded"}
    assert again.resources["properties"].requests == 1 + len(h.state.apartments)


def test_a_dry_run_counts_caught_up_records_without_writing_them(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness_for("smoobu", tmp_path, clock)
    h.sync()
    clock.advance(HOUR)
    book_a_new_smoobu_apartment(h, 999_002, "Dry")

    result = h.sync(dry_run=True)

    assert result.resources["properties"].written == {"property": 1}
    assert "999002" not in rows(h, "property")


def expected_updated_at(h: Harness, booking_id: str) -> datetime:
    """The sandbox's naive `modifiedAt`, read as wall time of the booking's apartment zone."""
    raw = h.state.reservations[int(booking_id)]
    zone = h.state.apartments[raw["apartment"]["id"]]["timeZone"]
    wall = datetime.fromisoformat(raw["modifiedAt"])
    return wall.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)


def test_smoobu_booking_times_use_the_apartment_zone_also_when_apartments_were_not_read(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness_for("smoobu", tmp_path, clock)
    h.sync()
    first = rows(h, "booking")
    assert {str(z["timezone"]) for z in rows(h, "property").values()} != {"UTC"}
    for booking_id in list(first)[:20]:
        assert first[booking_id]["updated_at"] == expected_updated_at(h, booking_id)
    clock.advance(HOUR)
    changed = [str(b) for b in h.state.modify_bookings(5)]
    again = h.sync()
    assert again.resources["properties"].status == "fresh"  # zones came from the database
    after = rows(h, "booking")
    for booking_id in changed:
        assert after[booking_id]["updated_at"] == expected_updated_at(h, booking_id)
