"""The Guesty adapter against its sandbox in-process: token economy, paging, incremental, errors."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.routing import Mount

from pms_cli import credentials
from pms_cli.config import load_settings
from pms_cli.errors import AuthError
from pms_cli.http.clock import FakeClock
from pms_cli.http.ratelimit import LimiterRegistry
from pms_cli.http.tokens import MemoryTokenCache
from pms_cli.models import Guest
from pms_cli.providers.guesty import PAGE_SIZE, Guesty
from pms_cli.sandbox.guesty import GuestySandbox, GuestySandboxConfig
from pms_cli.sandbox.server import MountedSandbox
from pms_cli.stores.sqlite import SqliteStore
from pms_cli.sync.session import Runtime, open_adapter, open_connection_adapter
from tests.conftest import SharedClock
from tests.helpers import Harness


class Recorder(httpx.AsyncBaseTransport):
    """Passes requests to the sandbox app and remembers them."""

    def __init__(self, app: Any) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.requests.append(request)
        return await self.inner.handle_async_request(request)


def harness(tmp_path: Path, clock: SharedClock, **config: Any) -> Harness:
    """The shared harness, with a Guesty sandbox built from ``config`` (documented defaults)."""
    h = Harness("guesty", tmp_path, clock)
    sandbox = GuestySandbox(GuestySandboxConfig(clock=clock, **config))
    h.sandbox = MountedSandbox(
        provider="guesty",
        app=sandbox.app,
        credentials={"client_id": sandbox.config.client_id},
        api_path="/v1",
        state=sandbox,
    )
    h.sandbox.credentials["client_secret"] = sandbox.config.client_secret
    return h


def recorded(h: Harness) -> Recorder:
    recorder = Recorder(h.sandbox.app)
    original = h.runtime

    def runtime() -> Runtime:
        rt = original()
        rt.transport = recorder
        return rt

    h.runtime = runtime  # type: ignore[method-assign]
    return recorder


def connected(h: Harness) -> Any:
    """The adapter of the harness's connection, as the webhook applier opens it."""
    return open_connection_adapter(h.runtime(), h.conn, h.store)


def query(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.url.query.decode()).items()}


# ------------------------------------------------------------------ full and incremental sync


def test_full_sync_writes_every_listing_reservation_and_guest(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, listings=7, reservations=230)
    result = h.sync()
    assert result.status == "succeeded", result.error
    counts = h.store.counts(h.conn.id)
    assert counts == {**counts, "property": 7, "booking": 230, "guest": len(h.state.guests)}
    booking_ids = {r["external_id"] for r in h.store.fetch_rows("booking", h.conn.id)}
    assert booking_ids == set(h.state.reservations)
    statuses = {r["status"] for r in h.store.fetch_rows("booking", h.conn.id)}
    assert {"confirmed", "cancelled", "blocked"} <= statuses


def test_full_sync_costs_one_token_plus_three_requests_per_hundred_reservations(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, listings=130, reservations=1234)
    result = h.sync()
    guests = len(h.state.guests)
    reservation_pages = math.ceil(1234 / PAGE_SIZE)
    # Each reservation page: the v3 search, its guests and its money (never one per booking).
    pages = math.ceil(130 / PAGE_SIZE) + 3 * reservation_pages + math.ceil(guests / 100)
    assert result.status == "succeeded", result.error
    assert result.requests == h.state.stats.requests == 1 + pages
    assert h.state.stats.per_path["POST /oauth2/token"] == 1
    assert result.resources["bookings"].requests == 3 * reservation_pages
    assert h.state.stats.per_path["GET /v1/reservations-v3/search"] == reservation_pages
    assert h.state.stats.per_path["GET /v1/guest-folio/overview"] == reservation_pages


def test_requests_ask_for_documented_paging_fields_and_envelopes(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, listings=3, reservations=20)
    recorder = recorded(h)
    h.sync()
    token, *data = recorder.requests
    assert token.method == "POST" and token.url.path == "/oauth2/token"
    form = parse_qs(token.content.decode())
    assert form["grant_type"] == ["client_credentials"] and form["scope"] == ["open-api"]
    assert form["client_id"] == [h.state.config.client_id]
    by_path = {r.url.path: query(r) for r in data}
    # Every listing: the active/listed/pmsActive flags are never sent (schema default true).
    assert by_path["/v1/listings"] == {"limit": "100", "skip": "0"}
    assert by_path["/v1/reservations-v3/search"] == {"limit": "100", "skip": "0", "sort": "_id"}
    guests = [query(r) for r in data if r.url.path == "/v1/guests-crud"]
    assert all("columns" in g and "fields" not in g for g in guests)
    assert {"guestEmail", "guestPhone", "id"} <= set(guests[0]["columns"].split())
    folio = by_path["/v1/guest-folio/overview"]
    assert set(folio["reservationIds"].split(",")) == set(h.state.reservations)
    assert all(r.headers["authorization"].startswith("Bearer ") for r in data)


def test_no_request_goes_to_a_legacy_reservation_endpoint(
    tmp_path: Path, clock: SharedClock
) -> None:
    # The legacy routes still work here (migration mode): pms must not use them anyway.
    h = harness(tmp_path, clock, listings=3, reservations=150, legacy_reservations=True)
    h.sync()
    clock.advance(3600)
    h.state.add_reservations(1)
    h.sync()
    legacy = {"GET /v1/reservations", "GET /v1/reservations/{item_id}"}
    assert not legacy & set(h.state.stats.per_path)
    assert h.state.stats.per_path["GET /v1/reservations-v3/search"] > 0


def test_the_2027_api_answers_410_on_legacy_routes_and_the_sync_still_succeeds(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, listings=3, reservations=40)
    result = h.sync()
    assert result.status == "succeeded", result.error
    assert h.store.counts(h.conn.id)["booking"] == 40


def test_bookings_carry_guest_contact_and_money_from_the_joins(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, listings=3, reservations=60)
    h.sync()
    for row in h.store.fetch_rows("booking", h.conn.id):
        res = h.state.reservations[row["external_id"]]
        guest = h.state.guests[res["guestId"]]
        assert row["guest_email"] == guest["email"] and row["guest_name"] == guest["fullName"]
        assert row["currency"] == res["money"]["currency"]
        paid, due = res["money"]["totalPaid"], res["money"]["balanceDue"]
        assert float(row["total_price"]) == pytest.approx(paid + due)


def test_money_the_folio_refuses_leaves_total_price_empty_and_the_sync_succeeds(
    tmp_path: Path, clock: SharedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pms_cli.providers.guesty as guesty

    monkeypatch.setattr(guesty, "FOLIO_FIELDS", "currency,notAFolioField")  # sandbox: 400
    h = harness(tmp_path, clock, listings=3, reservations=250)
    result = h.sync()
    assert result.status == "succeeded", result.error
    rows = h.store.fetch_rows("booking", h.conn.id)
    assert len(rows) == 250 and all(r["total_price"] is None for r in rows)
    assert h.state.stats.per_path["GET /v1/guest-folio/overview"] == 1  # asked once, then off


def test_a_guest_filter_the_api_ignores_stops_the_guest_join_for_the_run(
    tmp_path: Path, clock: SharedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pms_cli.providers.guesty as guesty

    monkeypatch.setattr(guesty, "GUEST_FILTER_PARAM", "unknownFilter")  # the sandbox ignores it
    h = harness(tmp_path, clock, listings=3, reservations=450)
    result = h.sync()
    assert result.status == "succeeded", result.error
    # One lookup answered with guests nobody asked for; the other pages do not ask again.
    assert result.resources["bookings"].requests == 2 * math.ceil(450 / PAGE_SIZE) + 1
    rows = {r["external_id"]: r for r in h.store.fetch_rows("booking", h.conn.id)}
    for rid, row in rows.items():  # a name is the booking's own guest's, or none
        guest = h.state.guests[h.state.reservations[rid]["guestId"]]
        assert row["guest_name"] in (None, guest["fullName"])


def test_guests_keep_language_and_country_where_the_list_returns_them(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, listings=3, reservations=120)
    h.sync()
    rows = {r["external_id"]: r for r in h.store.fetch_rows("guest", h.conn.id)}
    for gid, guest in h.state.guests.items():
        assert rows[gid]["language"] == guest["preferredLanguage"]
        assert rows[gid]["email"] == guest["email"]
        code = (guest.get("address") or {}).get("countryCode")
        assert rows[gid]["country"] == code


def test_a_guest_list_refusing_the_extra_columns_is_read_with_the_documented_ones(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, listings=3, reservations=120, strict_guest_columns=True)
    result = h.sync()
    assert result.status == "succeeded", result.error
    guests = h.store.fetch_rows("guest", h.conn.id)
    assert len(guests) == len(h.state.guests)
    assert {g["email"] for g in guests} == {g["email"] for g in h.state.guests.values()}
    bookings = h.store.fetch_rows("booking", h.conn.id)
    assert all(b["guest_name"] for b in bookings)  # the join fell back too
    # One refused request per walk that tried the extra columns, not one per page.
    assert result.requests <= 1 + 1 + 3 * 2 + 2 + 2


def test_second_run_reads_new_reservations_and_stays_not_ended_once_each(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, listings=5, reservations=300)
    h.sync()
    clock.advance(3600)
    added = h.state.add_reservations(2)  # new, and their stays have not ended: both windows
    recorder = recorded(h)
    result = h.sync()
    bookings = result.resources["bookings"]
    assert bookings.incremental_since is not None
    searches = [query(r) for r in recorder.requests if r.url.path.endswith("/search")]
    assert {k for q in searches for k in q if k.startswith("filter")} == {
        "filter[createdAt][gte]",
        "filter[checkOut][gte]",
    }
    today = datetime.fromtimestamp(clock.now(), UTC).date()
    not_ended = [
        r
        for r in h.state.reservations.values()
        if date.fromisoformat(r["checkOutDateLocalized"]) >= today - timedelta(days=1)
    ]
    assert set(added) <= {r["_id"] for r in not_ended}
    assert bookings.fetched == len(not_ended)  # the two new ones are not counted twice
    assert bookings.fetched < 300 / 2
    assert h.store.counts(h.conn.id)["booking"] == 302


def test_a_future_stay_cancelled_upstream_reaches_the_store_without_a_whole_reread(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, listings=5, reservations=600)
    h.sync()
    clock.advance(3600)  # within sync.refresh_hours: no periodic whole read is due
    today = datetime.fromtimestamp(clock.now(), UTC).date()
    future = [
        r["_id"]
        for r in h.state.reservations.values()
        if r["status"] == "confirmed" and date.fromisoformat(r["checkInDateLocalized"]) > today
    ]
    rid = future[0]
    h.state.cancel_reservation(rid)
    result = h.sync()
    rows = {r["external_id"]: r for r in h.store.fetch_rows("booking", h.conn.id)}
    assert rows[rid]["status"] == "cancelled"
    whole_read = 3 * math.ceil(600 / PAGE_SIZE)
    assert result.resources["bookings"].requests < whole_read


def test_an_ended_stay_changed_upstream_reaches_the_store_by_the_periodic_whole_read(
    tmp_path: Path, clock: SharedClock
) -> None:
    # No window sees an edit to a stay that has ended (only a webhook would): the engine reads
    # a windowed resource whole once its last whole read is older than sync.refresh_hours, and
    # marks what vanished upstream deleted.
    h = harness(tmp_path, clock, listings=5, reservations=300)
    h.sync()
    today = datetime.fromtimestamp(clock.now(), UTC).date()
    ended = sorted(
        rid
        for rid, r in h.state.reservations.items()
        if r["status"] == "confirmed"
        and date.fromisoformat(r["checkOutDateLocalized"]) < today - timedelta(days=3)
    )
    cancelled, vanished = ended[0], ended[1]
    h.state.cancel_reservation(cancelled)
    del h.state.reservations[vanished]

    clock.advance(3600)
    within = h.sync()
    assert within.resources["bookings"].incremental_since is not None
    rows = {r["external_id"]: r for r in h.store.fetch_rows("booking", h.conn.id)}
    assert rows[cancelled]["status"] == "confirmed"  # unseen by both windows, as designed
    assert rows[vanished]["deleted_at"] is None

    clock.advance(h.settings.sync.refresh_hours * 3600)
    due = h.sync()
    assert due.status == "succeeded", due.error
    assert due.resources["bookings"].incremental_since is None
    rows = {r["external_id"]: r for r in h.store.fetch_rows("booking", h.conn.id)}
    assert rows[cancelled]["status"] == "cancelled"
    assert rows[vanished]["deleted_at"] is not None
    assert due.resources["bookings"].deleted == 1

    clock.advance(3600)  # the whole read moved its own cursor: incremental again
    assert h.sync().resources["bookings"].incremental_since is not None


def test_a_webhook_refetch_reads_one_reservation_through_v3_by_id(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, listings=2, reservations=30)
    rid = sorted(h.state.reservations)[3]

    async def fetch() -> Any:
        async with connected(h) as adapter:
            return await adapter.fetch_one(Guesty.resource("bookings"), rid)

    raw = asyncio.run(fetch())
    assert raw["_id"] == rid and raw["money"]["reservationId"] == rid
    assert raw["guest"]["guestEmail"] == h.state.guests[raw["guestId"]]["email"]
    assert h.state.stats.per_path["GET /v1/reservations-v3"] == 1

    async def gone() -> Any:
        async with connected(h) as adapter:
            return await adapter.fetch_one(Guesty.resource("bookings"), "0" * 24)

    assert asyncio.run(gone()) is None


def test_a_guest_refetched_by_id_keeps_the_email_only_the_list_returns(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, listings=2, reservations=30)
    gid, guest = next((k, g) for k, g in h.state.guests.items() if g["email"] and g["phone"])

    async def fetch() -> Any:
        async with connected(h) as adapter:
            return await adapter.fetch_one(Guesty.resource("guests"), gid)

    [record] = Guesty.resource("guests").mapper(asyncio.run(fetch()))
    assert isinstance(record, Guest)
    assert (record.external_id, record.email, record.phone) == (gid, guest["email"], guest["phone"])


def test_every_listing_is_synced_and_inactive_ones_are_inactive(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, listings=12, reservations=10)
    listings = h.state.listings.values()
    assert any(not x["active"] for x in listings) and any(not x["pms"]["active"] for x in listings)
    assert any(not x["isListed"] for x in listings)
    h.sync()
    rows = {r["external_id"]: r for r in h.store.fetch_rows("property", h.conn.id)}
    assert set(rows) == set(h.state.listings)
    for lid, listing in h.state.listings.items():
        assert bool(rows[lid]["active"]) is listing["active"]


def test_the_sandbox_like_guesty_drops_inactive_listings_when_the_flags_are_sent(
    tmp_path: Path, clock: SharedClock
) -> None:
    # What a generated client sending the schema defaults would get: why pms never sends them.
    h = harness(tmp_path, clock, listings=12, reservations=10)

    async def listed(params: dict[str, str]) -> int:
        async with connected(h) as adapter:
            body = await adapter.http.get_json("listings", {"limit": 100, **params})
            return len(body["results"])

    assert asyncio.run(listed({})) == 12
    defaults = {"active": "true", "listed": "true", "pmsActive": "true"}
    assert asyncio.run(listed(defaults)) < 12


def test_a_cancellation_upstream_lands_as_a_cancelled_booking(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, listings=2, reservations=10)
    h.sync()
    clock.advance(600)
    [rid] = h.state.add_reservations(1)
    h.state.cancel_reservation(rid)
    h.sync()
    rows = {r["external_id"]: r for r in h.store.fetch_rows("booking", h.conn.id)}
    assert rows[rid]["status"] == "cancelled"


# ------------------------------------------------------------------ the 5-tokens-a-day quota


def test_two_consecutive_syncs_with_fresh_engines_mint_exactly_one_token(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, listings=2, reservations=10)
    first = h.sync()  # each sync builds a new Runtime, engine, adapter and HTTP client
    clock.advance(3600)
    second = h.sync()
    assert first.status == second.status == "succeeded"
    assert h.state.stats.tokens_issued == 1
    assert h.state.stats.per_path["POST /oauth2/token"] == 1


def test_the_store_backed_token_cache_is_shared_across_store_instances(
    tmp_path: Path, clock: SharedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Headless (no keyring): the token goes to the store, encrypted, as in two cron processes.
    monkeypatch.setattr(credentials, "keyring_available", lambda: False)
    h = harness(tmp_path, clock, listings=2, reservations=10)
    h.token_cache = None  # type: ignore[assignment]
    assert h.sync().status == "succeeded"
    h.store = SqliteStore(h.store.path)
    clock.advance(3600)
    assert h.sync().status == "succeeded"
    assert h.state.stats.tokens_issued == 1


def test_a_401_renews_the_token_exactly_once(tmp_path: Path, clock: SharedClock) -> None:
    h = harness(tmp_path, clock, listings=2, reservations=10)
    h.sync()
    h.state.revoke_all_tokens()
    result = h.sync()
    assert result.status == "succeeded", result.error
    assert h.state.stats.tokens_issued == 2
    assert h.state.stats.auth_failures == 1


def test_a_token_rejected_again_after_renewal_fails_without_looping(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, listings=2, reservations=10, token_ttl=0)
    result = h.sync()
    assert result.status == "failed"
    assert result.error is not None and result.error["code"] == "auth_rejected"
    assert result.error["hint"] == Guesty.auth_hint
    assert h.state.stats.tokens_issued == 2


def test_an_expired_token_is_replaced_before_use_without_a_401(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, listings=2, reservations=10)
    h.sync()
    clock.advance(86_400)
    assert h.sync().status == "succeeded"
    assert h.state.stats.tokens_issued == 2
    assert h.state.stats.auth_failures == 0


def test_an_exhausted_token_quota_fails_fast_naming_the_quota_instead_of_sleeping_a_day(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, listings=2, reservations=10, token_quota=1)
    h.sync()
    h.token_cache = MemoryTokenCache()  # another machine that does not share the cache
    result = h.sync()
    assert result.status == "failed"
    assert result.error is not None and result.error["code"] == "rate_limited"
    # The error names the quota, not a generic rate limit (issue 15 point 10).
    assert "token quota" in result.error["message"]
    assert "5 tokens per client ID per 24 hours" in result.error["message"]
    assert h.state.stats.tokens_issued == 1
    assert clock.slept < 600


# ------------------------------------------------------------------ errors and limits


def test_429_waits_for_retry_after_and_the_sync_completes(
    tmp_path: Path, clock: SharedClock
) -> None:
    # The server allows fewer requests per second than the client paces for.
    limits = {"Second": (2, 1.0), "Minute": (120, 60.0), "Hour": (5000, 3600.0)}
    h = harness(tmp_path, clock, listings=250, reservations=500, rate_limits=limits)
    result = h.sync()
    assert result.status == "succeeded", result.error
    assert result.rate_limited > 0
    assert h.state.stats.rate_limited == result.rate_limited
    assert h.store.counts(h.conn.id)["booking"] == 500


def test_the_client_paces_itself_under_the_documented_windows(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, listings=100, reservations=2000)
    result = h.sync()
    assert result.status == "succeeded", result.error
    assert result.requests > 15 and result.rate_limit_waits > 0
    assert h.state.stats.rate_limited == 0


def open_candidate(
    sandbox: GuestySandbox, secret: str, transport: httpx.AsyncBaseTransport, base: str
) -> Any:
    runtime = Runtime(
        load_settings(),
        clock=FakeClock(),
        limiters=LimiterRegistry(),
        transport=transport,
        token_cache=MemoryTokenCache(),
    )
    return open_adapter(
        runtime,
        "guesty",
        connection_id="candidate",
        public={"client_id": sandbox.config.client_id},
        secrets={"client_secret": SecretStr(secret)},
        conn_settings={"base_url": base},
        token_store=None,
    )


def test_a_wrong_secret_is_an_auth_error_with_the_guesty_hint() -> None:
    sandbox = GuestySandbox(GuestySandboxConfig(listings=1, reservations=0))

    async def run() -> None:
        transport = httpx.ASGITransport(app=sandbox.app)
        async with open_candidate(sandbox, "typo", transport, "http://sandbox/v1") as adapter:
            await adapter.check()

    with pytest.raises(AuthError) as raised:
        asyncio.run(run())
    assert raised.value.hint == Guesty.auth_hint
    assert raised.value.status == 401
    assert "typo" not in str(raised.value.to_dict())
    assert sandbox.stats.tokens_issued == 0


def test_check_works_through_a_mounted_base_url_and_names_the_account() -> None:
    sandbox = GuestySandbox(GuestySandboxConfig(listings=1, reservations=0))
    parent = Starlette(routes=[Mount("/guesty", app=sandbox.app)])

    async def run() -> Any:
        transport = httpx.ASGITransport(app=parent)
        secret = sandbox.config.client_secret
        async with open_candidate(sandbox, secret, transport, "http://h/guesty/v1") as adapter:
            return await adapter.check()

    info = asyncio.run(run())
    assert info.account_ref == sandbox.config.client_id
    assert info.display_name == f"Guesty account {sandbox.account_id}"
    assert sandbox.stats.per_path["POST /oauth2/token"] == 1
