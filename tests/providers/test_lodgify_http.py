"""The Lodgify adapter against its sandbox in-process (httpx.ASGITransport), engine + SQLite."""

from __future__ import annotations

import asyncio
import math
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from pms_cli.config import load_settings
from pms_cli.connections import verify
from pms_cli.errors import AuthError
from pms_cli.http.clock import FakeClock
from pms_cli.http.ratelimit import LimiterRegistry, Window
from pms_cli.http.tokens import MemoryTokenCache
from pms_cli.providers.lodgify import PAGE_SIZE, Lodgify
from pms_cli.sandbox.lodgify import LodgifySandbox, LodgifySandboxConfig
from pms_cli.sandbox.server import MountedSandbox
from pms_cli.sync.engine import SyncEngine, SyncOptions, SyncResult
from pms_cli.sync.session import Runtime, open_adapter
from tests.conftest import SharedClock
from tests.helpers import Harness


class Recorder(httpx.AsyncBaseTransport):
    """Passes requests to the sandbox and keeps them, so tests can read what was sent."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return await self.inner.handle_async_request(request)


def harness(
    tmp_path: Path, clock: SharedClock, *, client_limit: str | None = None, **config: Any
) -> Harness:
    """A Harness whose sandbox is built from ``config`` (rate limit, sizes) rather than options."""
    h = Harness("lodgify", tmp_path, clock)
    sandbox = LodgifySandbox(LodgifySandboxConfig(clock=clock, **({"rate_limit": None} | config)))
    h.sandbox = MountedSandbox("lodgify", sandbox.app, {"api_key": sandbox.api_key}, "", sandbox)
    if client_limit:
        h.settings = load_settings(providers={"lodgify": {"rate_limits": [client_limit]}})
    return h


def recorded_sync(h: Harness, **options: Any) -> tuple[SyncResult, Recorder]:
    recorder = Recorder(httpx.ASGITransport(app=h.sandbox.app))
    runtime = h.runtime()
    runtime.transport = recorder
    result = asyncio.run(
        SyncEngine(h.store, runtime).sync_connection(h.conn, SyncOptions(**options))
    )
    return result, recorder


def rows(h: Harness, kind: str) -> dict[str, dict[str, Any]]:
    return {r["external_id"]: r for r in h.store.fetch_rows(kind, h.conn.id)}  # type: ignore[arg-type]


# ------------------------------------------------------------------ full sync


def test_full_sync_writes_every_property_booking_and_derived_guest(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, properties=7, bookings=230)
    result = h.sync()
    assert result.status == "succeeded", result.error
    counts = h.store.counts(h.conn.id)
    assert counts["property"] == 7
    assert counts["booking"] == 230  # historic, trashed and iCal-imported stays included
    assert 0 < counts["guest"] < 230
    assert set(rows(h, "booking")) == {str(i) for i in h.state.bookings}


def test_closed_periods_are_blocked_and_trashed_bookings_cancelled(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, properties=4, bookings=200)
    h.sync()
    booked = rows(h, "booking")
    for bid, raw in h.state.bookings.items():
        row = booked[str(bid)]
        if raw["is_deleted"] or raw["status"] == "Declined":
            assert row["status"] == "cancelled"
        elif raw["status"] == "Unavailable":
            assert row["status"] == "blocked" and row["guest_external_id"] is None


def test_full_sync_costs_one_request_per_page_of_fifty_and_no_auth_call(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, properties=12, bookings=234)
    result = h.sync()
    # + one /v2/deletedProperties request after the properties.
    expected = math.ceil(12 / PAGE_SIZE) + 1 + math.ceil(234 / PAGE_SIZE)
    assert PAGE_SIZE == 50
    assert result.requests == h.state.stats.requests == expected == 7
    assert result.resources["bookings"].requests == 5


def test_an_exact_multiple_of_the_page_size_needs_no_extra_empty_page(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, properties=50, bookings=200)
    result = h.sync()
    assert result.resources["properties"].requests == 1 + 1  # + /v2/deletedProperties
    assert result.resources["bookings"].requests == 4


def test_every_request_carries_the_key_and_asks_for_all_stays_trash_and_external(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, properties=3, bookings=60)
    _, recorder = recorded_sync(h)
    assert all(r.headers["x-apikey"] == h.state.api_key for r in recorder.requests)
    [prop, deleted, *bookings] = recorder.requests
    assert prop.url.path == "/v2/properties"
    assert dict(prop.url.params) == {"includeCount": "true", "page": "1", "size": "50"}
    assert deleted.url.path == "/v2/deletedProperties"
    assert dict(deleted.url.params) == {"includeCount": "true", "page": "1", "size": "50"}
    assert [dict(r.url.params) for r in bookings] == [
        {
            "includeCount": "true",
            "stayFilter": "All",
            "trash": "All",
            "includeExternal": "true",
            "page": str(page),
            "size": "50",
        }
        for page in (1, 2)
    ]


# ------------------------------------------------------------------ incremental sync


def test_second_run_sends_updated_since_and_fetches_only_changed_bookings(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, properties=5, bookings=300)
    h.sync()
    clock.advance(3600)
    changed = h.state.modify_bookings(4)
    added = h.state.add_bookings(2)
    result, recorder = recorded_sync(h)
    bookings = result.resources["bookings"]
    assert bookings.incremental_since is not None
    assert bookings.fetched == len(set(changed) | set(added)) == 6
    assert result.resources["properties"].fetched == 0
    # One page per resource, the empty one included, + the deleted properties since then.
    assert result.requests == 3
    for r in recorder.requests:
        since = "deletedSince" if r.url.path == "/v2/deletedProperties" else "updatedSince"
        assert since in r.url.params
    assert h.store.counts(h.conn.id)["booking"] == 302
    stored = rows(h, "booking")
    for bid in changed:
        assert stored[str(bid)]["raw"]["updated_at"] == h.state.bookings[bid]["updated_at"]


def test_cancellations_trash_and_new_closed_periods_arrive_incrementally(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, properties=3, bookings=80)
    h.sync()
    clock.advance(600)
    live = [
        b for b, v in h.state.bookings.items() if v["status"] == "Booked" and not v["is_deleted"]
    ]
    h.state.cancel_booking(live[0])
    h.state.trash_booking(live[1])
    block = h.state.block_dates(min(h.state.properties), date(2026, 7, 1), date(2026, 7, 8))
    result = h.sync()
    assert result.resources["bookings"].fetched == 3
    stored = rows(h, "booking")
    assert stored[str(live[0])]["status"] == "cancelled"
    assert stored[str(live[1])]["status"] == "cancelled"
    assert stored[str(block)]["status"] == "blocked"
    assert stored[str(live[0])]["deleted_at"] is None  # cancelled rows stay


def test_a_renamed_property_is_picked_up_by_updated_since(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, properties=6, bookings=10)
    h.sync()
    clock.advance(600)
    pid = max(h.state.properties)
    h.state.modify_property(pid, name="Harbour Loft")
    result = h.sync()
    assert result.resources["properties"].fetched == 1
    assert rows(h, "property")[str(pid)]["name"] == "Harbour Loft"


def test_full_sync_marks_a_property_gone_upstream_as_deleted(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, properties=4, bookings=10)
    h.sync()
    gone = min(h.state.properties)
    h.state.delete_property(gone)
    clock.advance(60)
    result = h.sync(full=True)
    assert result.resources["properties"].deleted == 1
    assert rows(h, "property")[str(gone)]["deleted_at"] is not None


# ------------------------------------------------------------------ rate limits


def test_429_without_retry_after_is_retried_with_backoff_until_it_passes(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(
        tmp_path, clock, client_limit="1000/1", rate_limit=(2, 2.0), properties=3, bookings=240
    )
    result = h.sync()
    assert result.status == "succeeded", result.error
    assert result.rate_limited == h.state.stats.rate_limited > 0
    assert h.store.counts(h.conn.id)["booking"] == 240
    assert clock.slept > 0


def test_429_with_retry_after_waits_exactly_that_long(tmp_path: Path, clock: SharedClock) -> None:
    h = harness(
        tmp_path,
        clock,
        client_limit="1000/1",
        rate_limit=(1, 7.0),
        send_retry_after=True,
        properties=3,
        bookings=10,
    )
    result = h.sync()
    assert result.status == "succeeded", result.error
    # 1 request per 7 s: each of the 3 calls after the first waits out one 429 of exactly 7 s
    # (properties, deleted properties, bookings).
    assert result.rate_limited == 2
    assert clock.slept == 7.0 * 2


def test_the_documented_750_per_minute_pacing_never_trips_the_sandbox_limit(
    tmp_path: Path, clock: SharedClock
) -> None:
    assert Lodgify.rate_limits == (Window(750, 60.0),)
    h = harness(tmp_path, clock, rate_limit=(750, 60.0), properties=2, bookings=0)

    async def hammer() -> None:
        async with open_adapter(
            h.runtime(),
            "lodgify",
            connection_id=h.conn.id,
            public={},
            secrets=h.secrets(),
            conn_settings=h.conn.settings,
            token_store=None,
        ) as adapter:
            for _ in range(800):
                await adapter.check()

    asyncio.run(hammer())
    assert h.state.stats.requests == 800
    assert h.state.stats.rate_limited == 0
    assert clock.slept >= 60.0


# ------------------------------------------------------------------ auth


def test_check_is_one_cheap_call_and_names_the_account_size(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, properties=4, bookings=5)
    info, kept = asyncio.run(verify(h.runtime(), "lodgify", {}, h.secrets(), h.conn.settings, None))
    assert info.display_name == "Lodgify account (4 properties)"
    assert info.account_ref.startswith("key-") and h.state.api_key not in info.account_ref
    assert kept == h.secrets()
    assert h.state.stats.requests == 1
    assert h.state.stats.per_path["GET /v2/properties"] == 1


def test_a_wrong_key_fails_the_check_with_the_lodgify_hint(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, properties=2, bookings=5)
    wrong = {"api_key": SecretStr("wrong-key")}
    with pytest.raises(AuthError) as info:
        asyncio.run(verify(h.runtime(), "lodgify", {}, wrong, h.conn.settings, None))
    assert info.value.status == 401
    assert info.value.hint == Lodgify.auth_hint
    assert "LODGIFY_API_KEY" in info.value.hint
    assert "wrong-key" not in str(info.value.to_dict())
    assert h.state.stats.requests == 1  # a static key cannot be renewed: no retry


def test_a_rotated_key_fails_the_sync_as_auth_rejected_without_retrying(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, properties=2, bookings=5)
    h.state.rotate_api_key("regenerated")
    result = h.sync()
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["code"] == "auth_rejected" and result.error["exit_code"] == 3
    assert result.error["hint"] == Lodgify.auth_hint
    assert result.requests == 1
    assert h.store.get_connection(h.conn.id).status == "error"  # type: ignore[union-attr]


def test_403_is_also_treated_as_a_rejected_key(tmp_path: Path) -> None:
    def forbidden(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, json={"message": "Forbidden", "code": "NotAuthorized"})

    runtime = Runtime(
        load_settings(),
        clock=FakeClock(),
        limiters=LimiterRegistry(),
        transport=httpx.MockTransport(forbidden),
        token_cache=MemoryTokenCache(),
        env={},
    )
    secrets = {"api_key": SecretStr("k" * 32)}
    with pytest.raises(AuthError):
        asyncio.run(verify(runtime, "lodgify", {}, secrets, {"base_url": "http://x"}, None))
