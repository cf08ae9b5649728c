"""The Guesty adapter against its sandbox in-process: token economy, paging, incremental, errors."""

from __future__ import annotations

import asyncio
import math
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
from pms_cli.providers.guesty import PAGE_SIZE, Guesty
from pms_cli.sandbox.guesty import GuestySandbox, GuestySandboxConfig
from pms_cli.sandbox.server import MountedSandbox
from pms_cli.stores.sqlite import SqliteStore
from pms_cli.sync.session import Runtime, open_adapter
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


def test_full_sync_costs_one_token_plus_one_request_per_hundred_records(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, listings=130, reservations=1234)
    result = h.sync()
    guests = len(h.state.guests)
    pages = math.ceil(130 / PAGE_SIZE) + math.ceil(1234 / PAGE_SIZE) + math.ceil(guests / 100)
    assert result.status == "succeeded", result.error
    assert result.requests == h.state.stats.requests == 1 + pages
    assert h.state.stats.per_path["POST /oauth2/token"] == 1
    assert result.resources["bookings"].requests == math.ceil(1234 / PAGE_SIZE)


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
    assert by_path["/v1/listings"] == {"limit": "100", "skip": "0"}
    reservations = by_path["/v1/reservations"]
    assert {"guest", "money", "listingId"} <= set(reservations["fields"].split())
    assert (reservations["limit"], reservations["skip"], reservations["sort"]) == (
        "100",
        "0",
        "_id",
    )
    assert "filters" not in reservations  # the first run is full
    guests = by_path["/v1/guests-crud"]
    assert "columns" in guests and "fields" not in guests
    assert all(r.headers["authorization"].startswith("Bearer ") for r in data)


def test_second_run_is_incremental_and_fetches_only_changed_reservations(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, listings=5, reservations=300)
    h.sync()
    clock.advance(3600)
    changed = h.state.modify_reservations(4)
    added = h.state.add_reservations(2)
    recorder = recorded(h)
    result = h.sync()
    bookings = result.resources["bookings"]
    assert bookings.incremental_since is not None
    assert bookings.fetched == 6 and bookings.requests == 1
    [request] = [r for r in recorder.requests if r.url.path == "/v1/reservations"]
    assert '"operator":"$gt"' in query(request)["filters"]
    assert h.store.counts(h.conn.id)["booking"] == 302
    rows = {r["external_id"]: r for r in h.store.fetch_rows("booking", h.conn.id)}
    for rid in changed + added:
        assert rows[rid]["raw"]["lastUpdatedAt"] == h.state.reservations[rid]["lastUpdatedAt"]


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


def test_an_exhausted_token_quota_fails_fast_instead_of_sleeping_a_day(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, listings=2, reservations=10, token_quota=1)
    h.sync()
    h.token_cache = MemoryTokenCache()  # another machine that does not share the cache
    result = h.sync()
    assert result.status == "failed"
    assert result.error is not None and result.error["code"] == "rate_limited"
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
