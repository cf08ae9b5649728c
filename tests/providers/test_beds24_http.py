"""The Beds24 adapter against its sandbox over httpx.ASGITransport: no sleeps, no sockets."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from pms_cli.connections import verify
from pms_cli.errors import AuthError, ConfigError
from pms_cli.http.tokens import MemoryTokenCache
from pms_cli.providers.beds24 import ALL_STATUSES, Beds24, LongLifeTokenAuth, RefreshTokenAuth
from pms_cli.sandbox.beds24 import SANDBOX_INVITE_CODE, SANDBOX_OWNER_ID, Beds24Sandbox
from pms_cli.sync.engine import SyncEngine, SyncOptions, SyncResult
from pms_cli.sync.session import Runtime, open_adapter
from tests.conftest import SharedClock
from tests.helpers import Harness

PAGE = 100  # Beds24's fixed page size


class Recorder(httpx.AsyncBaseTransport):
    """Passes requests to the sandbox and remembers them."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return await self.inner.handle_async_request(request)

    def paths(self) -> list[str]:
        return [r.url.path.rsplit("/v2/", 1)[-1] for r in self.requests]


def harness(tmp_path: Path, clock: SharedClock, **options: Any) -> Harness:
    options.setdefault("listings", 7)
    options.setdefault("reservations", 450)
    return Harness("beds24", tmp_path, clock, **options)


def sandbox(h: Harness) -> Beds24Sandbox:
    state = h.state
    assert isinstance(state, Beds24Sandbox)
    return state


def run(h: Harness, runtime: Runtime | None = None, **options: Any) -> SyncResult:
    engine = SyncEngine(h.store, runtime or h.runtime())
    return asyncio.run(engine.sync_connection(h.conn, SyncOptions(**options)))


def recorded(h: Harness, **changes: Any) -> tuple[Runtime, Recorder]:
    recorder = Recorder(httpx.ASGITransport(app=h.sandbox.app))
    return dataclasses.replace(h.runtime(), transport=recorder, **changes), recorder


def rows(h: Harness, kind: str) -> dict[str, dict[str, Any]]:
    return {r["external_id"]: r for r in h.store.fetch_rows(kind, h.conn.id)}


def test_full_sync_keeps_every_status_including_cancelled_blocks_and_past_stays(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock)
    result = run(h)
    assert result.status == "succeeded", result.error
    bookings = rows(h, "booking")
    assert set(bookings) == {str(i) for i in sandbox(h).bookings}
    assert {"cancelled", "blocked", "confirmed", "pending", "inquiry"} <= {
        r["status"] for r in bookings.values()
    }
    today = datetime.fromtimestamp(clock.now(), UTC).date().isoformat()
    assert any(str(r["check_out"]) < today for r in bookings.values())  # history, not upcoming
    assert h.store.counts(h.conn.id)["property"] == 7
    assert 0 < h.store.counts(h.conn.id)["guest"] < 450


@pytest.mark.parametrize(("properties", "bookings"), [(7, 450), (3, 200), (120, 0)])
def test_full_sync_costs_one_token_plus_one_request_per_hundred_records(
    tmp_path: Path, clock: SharedClock, properties: int, bookings: int
) -> None:
    h = harness(tmp_path, clock, listings=properties, reservations=bookings)
    result = run(h)
    pages = max(1, math.ceil(properties / PAGE)) + max(1, math.ceil(bookings / PAGE))
    assert result.status == "succeeded", result.error
    assert result.requests == 1 + pages
    assert sandbox(h).stats.requests == 1 + pages
    assert sandbox(h).stats.per_path["GET /v2/authentication/token"] == 1


def test_requests_ask_for_every_status_as_repeated_keys_with_history_and_guests(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, reservations=150)
    runtime, recorder = recorded(h)
    run(h, runtime)
    assert recorder.paths() == ["authentication/token", "properties", "bookings", "bookings"]
    token_request, properties, first, second = recorder.requests
    assert token_request.headers["refreshToken"] == h.sandbox.credentials["refresh_token"]
    assert properties.url.params["includeAllRooms"] == "true"
    for request in (first, second):
        params = request.url.params
        assert params.get_list("status") == list(ALL_STATUSES)
        assert params["arrivalFrom"] == "2000-01-01"
        assert params["includeGuests"] == "true"
        assert "modifiedFrom" not in params
        # The access token goes bare in a `token` header, never as a Bearer authorization.
        assert request.headers["token"] in sandbox(h).tokens
        assert "authorization" not in request.headers
    assert [r.url.params["page"] for r in (first, second)] == ["1", "2"]


def test_second_run_is_incremental_and_fetches_only_changed_bookings(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock)
    run(h)
    clock.advance(3600)
    state = sandbox(h)
    changed = set(state.modify_bookings(4)) | set(state.add_bookings(2))
    cancelled = next(i for i, b in state.bookings.items() if b["status"] == "confirmed")
    state.cancel_booking(cancelled)
    runtime, recorder = recorded(h)
    result = run(h, runtime)
    assert result.status == "succeeded", result.error
    assert result.resources["bookings"].fetched == len(changed | {cancelled})
    assert result.requests == 2  # properties + one bookings page; the token comes from the cache
    since = recorder.requests[-1].url.params["modifiedFrom"]
    assert datetime.fromisoformat(since) < datetime.fromtimestamp(clock.now() - 3600)
    bookings = rows(h, "booking")
    assert len(bookings) == 452
    assert bookings[str(cancelled)]["status"] == "cancelled"
    assert bookings[str(cancelled)]["deleted_at"] is None


def test_booking_rows_carry_the_currency_of_their_property(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, reservations=60)
    run(h)
    currencies = {str(i): p["currency"] for i, p in sandbox(h).properties.items()}
    for row in rows(h, "booking").values():
        assert row["currency"] == currencies[row["property_external_id"]]


def test_bookings_only_run_fetches_one_properties_page_to_learn_currencies(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, reservations=60)
    result = run(h, resources=["bookings"])
    assert result.status == "succeeded", result.error
    assert sandbox(h).stats.per_path["GET /v2/properties"] == 1
    assert all(r["currency"] for r in rows(h, "booking").values())
    assert h.store.counts(h.conn.id).get("property", 0) == 0


def candidate_runtime(h: Harness) -> Runtime:
    return dataclasses.replace(h.runtime(), env={})


def connect(h: Harness, secrets: Mapping[str, str]) -> tuple[Any, dict[str, SecretStr]]:
    return asyncio.run(
        verify(
            candidate_runtime(h),
            "beds24",
            {},
            {k: SecretStr(v) for k, v in secrets.items()},
            {"base_url": f"http://sandbox{h.sandbox.api_path}"},
            None,
            connection_id="new-conn",
        )
    )


def test_connect_exchanges_the_invite_code_and_checks_with_the_new_token_at_once(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock)
    info, kept = connect(h, {"invite_code": SANDBOX_INVITE_CODE})
    assert info.account_ref == str(SANDBOX_OWNER_ID)
    assert info.display_name == f"Beds24 account {SANDBOX_OWNER_ID}"
    assert set(kept) == {"refresh_token"}  # the spent invite code is not kept
    state = sandbox(h)
    assert kept["refresh_token"].get_secret_value() in state.refresh_tokens
    assert SANDBOX_INVITE_CODE not in state.invite_codes
    assert state.stats.per_path["GET /v2/authentication/setup"] == 1
    assert state.stats.per_path["GET /v2/authentication/details"] == 1
    assert state.stats.per_path["GET /v2/authentication/token"] == 0

    # The kept refresh token is all a later sync needs.
    env = {"BEDS24_REFRESH_TOKEN": kept["refresh_token"].get_secret_value()}
    result = run(h, dataclasses.replace(h.runtime(), env=env))
    assert result.status == "succeeded", result.error


def test_a_used_invite_code_is_rejected_with_the_beds24_hint(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock)
    connect(h, {"invite_code": SANDBOX_INVITE_CODE})
    with pytest.raises(AuthError) as info:
        connect(h, {"invite_code": SANDBOX_INVITE_CODE})
    assert info.value.hint == Beds24.auth_hint
    assert "invite code" in info.value.message
    assert SANDBOX_INVITE_CODE not in str(info.value.to_dict())


def test_connect_without_any_credential_is_a_config_error_naming_what_to_pass(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock)
    with pytest.raises(ConfigError) as info:
        connect(h, {})
    assert "--invite-code" in info.value.hint and "BEDS24_REFRESH_TOKEN" in info.value.hint
    assert sandbox(h).stats.requests == 0


def test_connect_with_a_refresh_token_keeps_it_and_reads_the_owner(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock)
    info, kept = connect(h, dict(h.sandbox.credentials))
    assert info.account_ref == str(SANDBOX_OWNER_ID)
    assert kept["refresh_token"].get_secret_value() == h.sandbox.credentials["refresh_token"]


def test_long_life_read_only_token_syncs_without_any_token_call(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, reservations=120)
    env = {"BEDS24_TOKEN": h.sandbox.extra["long_life_token"]}
    result = run(h, dataclasses.replace(h.runtime(), env=env))
    assert result.status == "succeeded", result.error
    assert result.requests == 1 + 2
    assert sandbox(h).stats.tokens_issued == 0


def test_expired_token_is_renewed_once_from_the_refresh_token(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, reservations=50)
    run(h)
    sandbox(h).expire_access_tokens()
    clock.advance(60)
    result = run(h)
    assert result.status == "succeeded", result.error
    assert sandbox(h).stats.auth_failures == 1
    assert sandbox(h).stats.tokens_issued == 2


def test_revoked_grant_fails_the_sync_with_an_auth_error_and_the_reconnect_hint(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, reservations=50)
    run(h)
    sandbox(h).revoke_all_tokens()
    result = run(h)
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["code"] == "auth_rejected"
    assert result.error["exit_code"] == 3
    assert result.error["hint"] == Beds24.auth_hint


def test_client_paces_itself_to_the_credit_headers_and_never_hits_429(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, relaxed=False)
    sandbox(h).config.credit_limit = 8.0  # token 1 + properties 1 + 5 pages x 1.5 = 9.5 > 8
    result = run(h)
    assert result.status == "succeeded", result.error
    assert sandbox(h).stats.rate_limited == 0
    assert result.rate_limit_waits >= 1
    assert 0 < clock.slept <= 300


def test_a_429_from_credits_spent_elsewhere_waits_for_the_window_reset(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, relaxed=False, reservations=150)
    sandbox(h).spend_credits(99.5)  # another integration on the account used the quota
    result = run(h)
    assert result.status == "succeeded", result.error
    assert result.rate_limited == 1
    assert sandbox(h).stats.rate_limited == 1
    assert clock.slept == 300  # x-five-min-limit-resets-in, not an exponential backoff


def test_a_rotated_refresh_token_is_handed_back_to_be_stored(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock)
    sandbox(h).config.rotate_refresh_tokens = True
    seen: list[tuple[str, str]] = []

    async def go() -> None:
        async with open_adapter(
            h.runtime(),
            "beds24",
            connection_id="c1",
            public={},
            secrets=h.secrets(),
            conn_settings={"base_url": f"http://sandbox{h.sandbox.api_path}"},
            token_store=None,
            on_secret_rotated=lambda name, value: seen.append((name, value)),
        ) as adapter:
            await adapter.check()

    asyncio.run(go())
    ((name, value),) = seen
    assert name == "refresh_token"
    assert value in sandbox(h).refresh_tokens
    assert h.sandbox.credentials["refresh_token"] not in sandbox(h).refresh_tokens


@pytest.mark.parametrize(
    ("status", "body", "rejected"),
    [
        (401, {"success": False, "code": 401, "error": "Unauthorized"}, True),
        (400, {"success": False, "code": 400, "error": "Token is not valid"}, True),
        (400, {"success": False, "code": 400, "error": "Invalid value for status"}, False),
        (403, {"success": False, "code": 403, "error": "Forbidden"}, False),
    ],
)
def test_a_401_or_a_400_about_the_token_counts_as_a_rejected_token(
    status: int, body: dict[str, Any], rejected: bool
) -> None:
    response = httpx.Response(status, json=body)
    auths = [
        LongLifeTokenAuth({"token": "long-life-token-value"}),
        RefreshTokenAuth(fetch=lambda http: None, cache=MemoryTokenCache(), cache_key="k"),  # type: ignore[arg-type, return-value]
    ]
    assert [a.is_auth_failure(response) for a in auths] == [rejected, rejected]
