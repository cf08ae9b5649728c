"""The engine against the Hostaway sandbox in-process: counts, request economy, cursors, pacing."""

from __future__ import annotations

import math
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pms_cli.providers.hostaway import PAGE_SIZE
from tests.conftest import SharedClock
from tests.helpers import Harness


def test_full_sync_writes_every_listing_reservation_and_derived_guest(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = Harness("hostaway", tmp_path, clock, listings=7, reservations=230)
    result = h.sync()
    assert result.status == "succeeded", result.error
    counts = h.store.counts(h.conn.id)
    assert counts["property"] == len(h.state.listings) == 7
    assert counts["booking"] == len(h.state.reservations) == 230
    assert 0 < counts["guest"] <= 230
    booking_ids = {r["external_id"] for r in h.store.fetch_rows("booking", h.conn.id)}
    assert booking_ids == {str(i) for i in h.state.reservations}


def test_full_sync_costs_one_token_plus_one_request_per_page(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = Harness("hostaway", tmp_path, clock, listings=12, reservations=1234)
    result = h.sync()
    expected = 1 + math.ceil(12 / PAGE_SIZE) + math.ceil(1234 / PAGE_SIZE)
    assert result.requests == expected
    assert h.state.stats.requests == expected


def test_second_run_is_incremental_and_fetches_only_changed_reservations(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = Harness("hostaway", tmp_path, clock, listings=5, reservations=300)
    h.sync()
    clock.advance(3600)
    changed = h.state.modify_reservations(4)
    added = h.state.add_reservations(2)
    result = h.sync()
    bookings = result.resources["bookings"]
    assert bookings.incremental_since is not None
    assert bookings.fetched == len(set(changed) | set(added))
    assert result.resources["properties"].fetched == 0
    assert h.store.counts(h.conn.id)["booking"] == 302
    rows = {r["external_id"]: r for r in h.store.fetch_rows("booking", h.conn.id)}
    for rid in changed:
        assert rows[str(rid)]["raw"]["updatedOn"] == h.state.reservations[rid]["updatedOn"]


def test_unchanged_incremental_run_issues_one_request_per_resource(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = Harness("hostaway", tmp_path, clock, listings=5, reservations=300)
    h.sync()
    clock.advance(3600)
    result = h.sync()
    assert result.requests == 2  # the token is reused from the cache
    assert result.resources["bookings"].fetched == 0


def test_cancelled_reservation_stays_as_a_cancelled_row(tmp_path: Path, clock: SharedClock) -> None:
    h = Harness("hostaway", tmp_path, clock, listings=3, reservations=50)
    h.sync()
    clock.advance(600)
    rid = next(i for i, r in h.state.reservations.items() if r["status"] in ("new", "modified"))
    h.state.cancel_reservation(rid)
    h.sync()
    row = next(r for r in h.store.fetch_rows("booking", h.conn.id) if r["external_id"] == str(rid))
    assert row["status"] == "cancelled"
    assert row["deleted_at"] is None


def test_full_sync_marks_a_listing_that_vanished_upstream_as_deleted(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = Harness("hostaway", tmp_path, clock, listings=4, reservations=10)
    h.sync()
    gone = next(iter(h.state.listings))
    h.state.delete_listing(gone)
    clock.advance(60)
    result = h.sync(full=True)
    assert result.resources["properties"].deleted == 1
    rows = {r["external_id"]: r for r in h.store.fetch_rows("property", h.conn.id)}
    assert rows[str(gone)]["deleted_at"] is not None
    assert h.store.counts(h.conn.id)["property"] == 3


def test_dry_run_fetches_and_maps_but_writes_nothing(tmp_path: Path, clock: SharedClock) -> None:
    h = Harness("hostaway", tmp_path, clock, listings=3, reservations=40)
    result = h.sync(dry_run=True)
    assert result.status == "succeeded"
    assert result.resources["bookings"].written["booking"] == 40
    assert h.store.counts(h.conn.id) == {"property": 0, "booking": 0, "guest": 0}
    assert h.store.list_runs(h.conn.id) == []
    assert h.store.cursors(h.conn.id) == {}


def test_sync_log_row_records_counts_and_status(tmp_path: Path, clock: SharedClock) -> None:
    h = Harness("hostaway", tmp_path, clock, listings=2, reservations=20)
    result = h.sync(trigger="cron")
    [run] = h.store.list_runs(h.conn.id)
    assert run.id == result.run_id
    assert run.status == "succeeded"
    assert run.trigger == "cron"
    assert run.counts["bookings"]["written"]["booking"] == 20
    assert run.requests == result.requests


def test_mapping_rows_are_filled_for_every_property(tmp_path: Path, clock: SharedClock) -> None:
    h = Harness("hostaway", tmp_path, clock, listings=6, reservations=5)
    h.sync()
    mappings = h.store.list_mappings(h.conn.id)
    assert {m["external_property_id"] for m in mappings} == {str(i) for i in h.state.listings}
    assert all(m["property_id"] is None for m in mappings)


def test_documented_rate_limits_give_zero_429s_on_a_large_account(
    tmp_path: Path, clock: SharedClock
) -> None:
    # 20,000 reservations at 500/page = 40 pages + listings + token: well over 15 req / 10 s.
    h = Harness("hostaway", tmp_path, clock, relaxed=False, listings=3, reservations=20_000)
    h.state.config.token_activation_delay = 0.0
    start = clock.time()
    result = h.sync()
    assert result.status == "succeeded", result.error
    assert h.state.stats.rate_limited == 0
    assert result.rate_limited == 0
    requests = result.requests
    floor = (math.ceil(requests / 15) - 1) * 10.0  # 15 per 10 s per IP is the binding limit
    elapsed = clock.time() - start
    assert elapsed >= floor
    assert elapsed <= floor * 1.05 + 1.0


def test_a_second_sync_while_the_first_holds_the_lock_is_refused(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = Harness("hostaway", tmp_path, clock, listings=2, reservations=5)
    assert h.store.acquire_lock(h.conn.id, "someone-else", 3600)
    result = h.sync()
    assert result.status == "locked"
    assert result.error is not None and result.error["exit_code"] == 5


def test_a_bad_record_is_skipped_reported_and_keeps_the_cursor(
    tmp_path: Path, clock: SharedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pms_cli.providers import hostaway

    h = Harness("hostaway", tmp_path, clock, listings=2, reservations=30)
    bad = sorted(h.state.reservations)[7]
    real_booking = hostaway.Booking

    def picky_booking(**fields: Any) -> Any:
        if fields["external_id"] == str(bad):
            raise ValueError("schema drift")
        return real_booking(**fields)

    monkeypatch.setattr(hostaway, "Booking", picky_booking)
    result = h.sync()
    bookings = result.resources["bookings"]
    assert result.status == "partial"
    assert bookings.skipped == 1 and bookings.skipped_ids == [str(bad)]
    assert h.store.counts(h.conn.id)["booking"] == 29
    assert "bookings" not in h.store.cursors(h.conn.id)  # refetched next run
    assert h.store.cursors(h.conn.id)["properties"]
    assert h.store.list_runs(h.conn.id)[0].status == "partial"


def test_base_url_comes_from_the_connection_then_env_then_config(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pms_cli.providers.hostaway import Hostaway

    assert Hostaway.resolve_base_url(None, None) == "https://api.hostaway.com/v1"
    assert Hostaway.resolve_base_url(None, "http://config/v1") == "http://config/v1"
    monkeypatch.setenv("PMS_HOSTAWAY_BASE_URL", "http://env/v1")
    assert Hostaway.resolve_base_url(None, "http://config/v1") == "http://env/v1"
    assert Hostaway.resolve_base_url("http://conn/v1", "http://config/v1") == "http://conn/v1"


def test_resources_without_a_filter_are_skipped_until_their_refresh_is_due(
    tmp_path: Path, clock: SharedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PMS_SYNC__REFRESH_HOURS", "24")
    h = Harness("smoobu", tmp_path, clock, listings=4, reservations=30)
    first = h.sync()
    assert first.resources["properties"].status == "succeeded"
    clock.advance(3600)
    second = h.sync()
    assert second.resources["properties"].status == "fresh"
    assert second.resources["guests"].status == "fresh"
    assert second.requests == 1  # only the bookings page
    clock.advance(24 * 3600)
    third = h.sync()
    assert third.resources["properties"].status == "succeeded"
    assert h.sync(full=True).resources["guests"].status == "succeeded"


# --- real-account behaviour (issue 14) --------------------------------------------------------


def test_an_edit_that_moves_only_updated_on_reaches_the_store_in_one_request(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = Harness("hostaway", tmp_path, clock, listings=5, reservations=300)
    h.sync()
    clock.advance(3600)
    changed = h.state.modify_reservations(4)
    for rid in changed:  # the edit left latestActivityOn (what latestActivityStart reads) alone
        res = h.state.reservations[rid]
        assert res["latestActivityOn"] < res["updatedOn"]
    result = h.sync()
    bookings = result.resources["bookings"]
    rows = {r["external_id"]: r for r in h.store.fetch_rows("booking", h.conn.id)}
    for rid in changed:
        res = h.state.reservations[rid]
        assert rows[str(rid)]["raw"]["updatedOn"] == res["updatedOn"]
        assert rows[str(rid)]["total_price"] == Decimal(str(res["totalPrice"]))
    assert bookings.fetched == len(changed)
    assert bookings.requests == 1  # ⌈4 / 500⌉: the first page already reaches below the cursor


def test_an_incremental_walk_costs_about_one_request_per_page_of_changes(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = Harness("hostaway", tmp_path, clock, listings=3, reservations=3000)
    h.sync()
    clock.advance(3600)
    changed = h.state.modify_reservations(1200)
    result = h.sync()
    bookings = result.resources["bookings"]
    assert bookings.fetched == len(changed) == 1200
    assert math.ceil(1200 / PAGE_SIZE) <= bookings.requests <= math.ceil(1200 / PAGE_SIZE) + 1
    stored = {r["external_id"]: r["raw"]["updatedOn"] for r in h.store.fetch_rows("booking")}
    assert all(stored[str(rid)] == h.state.reservations[rid]["updatedOn"] for rid in changed)


def test_listing_filter_latest_activity_start_is_sent_as_a_date_a_day_early() -> None:
    from datetime import datetime, timedelta, timezone

    from pms_cli.providers.hostaway import since_params

    since = datetime(2026, 1, 2, 0, 30, tzinfo=timezone(timedelta(hours=2)))  # 2026-01-01 UTC
    assert since_params(since) == {"latestActivityStart": "2025-12-31"}


def test_a_repeat_guest_known_only_by_the_channel_account_is_one_guest_row(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = Harness("hostaway", tmp_path, clock, listings=4, reservations=600)
    h.sync()
    by_account: dict[tuple[int, str], list[int]] = {}
    for rid, res in h.state.reservations.items():
        if res["guestExternalAccountId"] and not (res["guestEmail"] or res["phone"]):
            key = (res["channelId"], res["guestExternalAccountId"])
            by_account.setdefault(key, []).append(rid)
    (channel, account), rids = next((k, v) for k, v in by_account.items() if len(v) > 1)
    bookings = {r["external_id"]: r for r in h.store.fetch_rows("booking", h.conn.id)}
    keys = {bookings[str(rid)]["guest_external_id"] for rid in rids}
    assert keys == {f"account:{channel}:{account}"}
    guests = [g for g in h.store.fetch_rows("guest", h.conn.id) if g["external_id"] in keys]
    assert len(guests) == 1


def test_a_guest_key_that_changes_leaves_no_orphaned_guest_row(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = Harness("hostaway", tmp_path, clock, listings=3, reservations=200)
    h.sync()
    bookings = h.store.fetch_rows("booking", h.conn.id)
    uses = Counter(b["guest_external_id"] for b in bookings)
    rid, old_key = next(
        (int(b["external_id"]), b["guest_external_id"])
        for b in bookings
        if uses[b["guest_external_id"]] == 1
        and not (b["raw"]["guestEmail"] or b["raw"]["phone"])
        and b["guest_external_id"]
    )
    guests_before = h.store.counts(h.conn.id)["guest"]
    clock.advance(600)
    h.state.reservations[rid]["guestCountry"] = "DE"
    h.state.set_guest_phone(rid, "0170 9876543")  # typed without country code
    result = h.sync()
    assert result.status == "succeeded", result.error
    row = next(r for r in h.store.fetch_rows("booking", h.conn.id) if r["external_id"] == str(rid))
    assert row["guest_external_id"] == "phone:+491709876543"
    guest_ids = {g["external_id"] for g in h.store.fetch_rows("guest", h.conn.id)}
    assert old_key not in guest_ids
    referenced = {r["guest_external_id"] for r in h.store.fetch_rows("booking", h.conn.id)}
    assert guest_ids == referenced - {None}
    assert h.store.counts(h.conn.id)["guest"] == guests_before


def test_incremental_runs_read_national_phones_in_the_stored_listing_country(
    tmp_path: Path, clock: SharedClock
) -> None:
    import phonenumbers

    h = Harness("hostaway", tmp_path, clock, listings=3, reservations=40)
    h.sync()
    rid, res = next(
        (i, r) for i, r in h.state.reservations.items() if r["status"] not in ("ownerStay",)
    )
    region = h.state.listings[res["listingMapId"]]["countryCode"]
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    national = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.NATIONAL)
    res.update(guestEmail=None, guestCountry=None)
    clock.advance(600)
    h.state.set_guest_phone(rid, national)  # typed without country code
    result = h.sync()  # incremental: the listing is not re-read, its country comes from the store
    assert result.resources["properties"].fetched == 0
    row = next(r for r in h.store.fetch_rows("booking", h.conn.id) if r["external_id"] == str(rid))
    e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
    assert row["guest_external_id"] == f"phone:{e164}"


def test_a_repeat_guests_row_carries_the_details_of_the_latest_modified_reservation(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = Harness("hostaway", tmp_path, clock, listings=4, reservations=600)
    by_account: dict[tuple[int, str], list[int]] = {}
    for rid, res in h.state.reservations.items():
        if res["guestExternalAccountId"] and not (res["guestEmail"] or res["phone"]):
            key = (res["channelId"], res["guestExternalAccountId"])
            by_account.setdefault(key, []).append(rid)
    (channel, account), rids = next((k, v) for k, v in by_account.items() if len(v) > 1)
    rids.sort(key=lambda i: (h.state.reservations[i]["updatedOn"], i))
    older, newer = rids[0], rids[-1]
    for rid, locale in ((older, "fr"), (newer, "de")):
        h.state.reservations[rid].update(guestLocale=None, localeForMessaging=locale)

    def language() -> str | None:
        rows = h.store.fetch_rows("guest", h.conn.id)
        return next(
            g["language"] for g in rows if g["external_id"] == f"account:{channel}:{account}"
        )

    h.sync()  # a whole read: oldest-modified first, so the newest reservation is written last
    assert language() == "de"
    clock.advance(600)
    h.state.reservations[newer]["localeForMessaging"] = "it"
    h.state.set_guest_phone(newer, None)  # an edit: updatedOn moves
    clock.advance(1)
    h.state.reservations[older]["localeForMessaging"] = "es"
    h.state.set_guest_phone(older, None)  # edited last: now the latest reservation
    h.sync()  # incremental, newest-modified first: still the latest one's details win
    assert language() == "es"


def test_an_interrupted_incremental_walk_resumes_at_its_checkpoint(
    tmp_path: Path, clock: SharedClock
) -> None:
    from dataclasses import replace

    from pms_cli.sandbox.faults import Fault, with_faults
    from tests.sync.test_resume import PathCounter

    h = Harness("hostaway", tmp_path, clock, listings=3, reservations=2000)
    h.state.config.max_limit = 100  # the server clamps pages to 100: several pages of changes
    h.settings.sync.batch_size = 100  # one page per batch, so each page is a checkpoint
    h.sync()
    clock.advance(3600)
    changed = h.state.modify_reservations(750)  # 8 pages of changes, newest first
    clean = h.sandbox
    h.sandbox = with_faults(clean, [Fault("5xx", start=5, burst=1000, path="reservations")])
    first = h.sync()
    assert first.resources["bookings"].status == "failed"
    checkpoint = h.store.get_checkpoint(h.conn.id, "bookings")
    assert checkpoint is not None and checkpoint["position"]["cursor"]

    counter = PathCounter(clean.app)
    h.sandbox = replace(clean, app=counter)
    again = h.sync()
    assert again.status == "succeeded", again.error
    assert again.resources["bookings"].resumed_at_page == 4
    assert counter.paths["reservations"] == 8 - 4  # the walk goes on after page 4
    stored = {r["external_id"]: r["raw"]["updatedOn"] for r in h.store.fetch_rows("booking")}
    assert all(stored[str(rid)] == h.state.reservations[rid]["updatedOn"] for rid in changed)
