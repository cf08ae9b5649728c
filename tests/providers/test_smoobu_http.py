"""The Smoobu adapter against its sandbox in-process: auth modes, signing, paging, cursors, 429."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from pydantic import SecretStr

from pms_cli.errors import EXIT_AUTH, EXIT_CONFIG, AuthError, ConfigError
from pms_cli.providers.base import AccountInfo, Provider
from pms_cli.providers.smoobu import PAGE_SIZE, HmacAuth, Smoobu, sign
from pms_cli.sync.engine import SyncEngine, SyncOptions, SyncResult
from pms_cli.sync.session import Runtime, open_adapter
from tests.conftest import SharedClock
from tests.helpers import Harness

VECTORS = json.loads(
    (Path(__file__).parent.parent / "fixtures" / "smoobu" / "hmac_vectors.json").read_text()
)


class Recorder(httpx.AsyncBaseTransport):
    """Forwards to the sandbox, remembering each request.

    ``fault`` may answer instead of the sandbox; requests numbered in ``lost`` reach the sandbox
    but the client gets a 503 (a response lost on the way back).
    """

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.fault: Callable[[httpx.Request], httpx.Response | None] | None = None
        self.lost: set[int] = set()
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.fault(request) if self.fault is not None else None
        if answer is not None:
            return answer
        response = await self.inner.handle_async_request(request)
        if len(self.requests) in self.lost:
            await response.aread()
            return httpx.Response(503, json={"status": 503, "title": "Service Unavailable"})
        return response

    def params(self, path_end: str) -> list[dict[str, str]]:
        return [
            dict(parse_qsl(urlsplit(str(r.url)).query))
            for r in self.requests
            if r.url.path.endswith(path_end)
        ]


class SmoobuHarness(Harness):
    def __init__(self, tmp_path: Path, clock: SharedClock, **options: Any) -> None:
        super().__init__("smoobu", tmp_path, clock, **options)
        self.recorder = Recorder(httpx.ASGITransport(app=self.sandbox.app))
        self.env_override: dict[str, str] | None = None

    def runtime(self) -> Runtime:
        runtime = super().runtime()
        runtime.transport = self.recorder
        if self.env_override is not None:
            runtime.env = self.env_override
        return runtime

    def legacy(self) -> None:
        """Use only the API key, as a user without the HMAC secret would."""
        self.env_override = {"SMOOBU_API_KEY": self.sandbox.credentials["api_key"]}

    def sync(self, **options: Any) -> SyncResult:
        engine = SyncEngine(self.store, self.runtime())
        return asyncio.run(engine.sync_connection(self.conn, SyncOptions(**options)))

    def check(self, **secrets: str) -> AccountInfo:
        async def run() -> AccountInfo:
            values = secrets or dict(self.sandbox.credentials)
            async with open_adapter(
                self.runtime(),
                "smoobu",
                connection_id=self.conn.id,
                public={},
                secrets={k: SecretStr(v) for k, v in values.items()},
                conn_settings=self.conn.settings,
                token_store=None,
            ) as adapter:
                return await adapter.check()

        return asyncio.run(run())


def make(tmp_path: Path, clock: SharedClock, **options: Any) -> SmoobuHarness:
    return SmoobuHarness(tmp_path, clock, **options)


def rows(h: Harness, kind: str) -> dict[str, dict[str, Any]]:
    return {r["external_id"]: r for r in h.store.fetch_rows(kind, h.conn.id)}  # type: ignore[arg-type]


# --------------------------------------------------------------------------- signing


@pytest.mark.parametrize("case", ["post", "get"])
def test_signer_reproduces_the_documented_test_vectors(case: str) -> None:
    v = VECTORS[case]
    signature = sign(
        VECTORS["secret"],
        VECTORS["api_key"],
        method=v["method"],
        path=v["path"],
        query=v["query"],
        body=v["body"].encode(),
        timestamp=VECTORS["timestamp"],
        nonce=VECTORS["nonce"],
    )
    assert signature == v["signature"]


def test_auth_object_signs_the_query_exactly_as_sent_on_the_wire() -> None:
    clock = SharedClock(start=1_775_044_800.0)  # 2026-04-01T12:00:00Z
    auth = HmacAuth(VECTORS["api_key"], VECTORS["secret"], new_nonce=lambda: VECTORS["nonce"])
    request = httpx.Request(
        "GET", "https://login.smoobu.com/api/reservations?to=2026-04-10&from=2026-04-01"
    )
    asyncio.run(auth.apply(request, type("Http", (), {"clock": clock})()))  # type: ignore[arg-type]
    assert request.headers["X-API-Key"] == VECTORS["api_key"]
    assert request.headers["X-Timestamp"] == VECTORS["timestamp"]
    assert request.headers["X-Nonce"] == VECTORS["nonce"]
    assert request.headers["X-Signature"] == VECTORS["get"]["signature"]
    assert "Api-Key" not in request.headers


def test_a_secret_selects_signing_and_a_key_without_it_is_refused_before_any_request() -> None:
    from pms_cli.http.tokens import MemoryTokenCache
    from pms_cli.providers.base import ProviderContext

    def ctx(**secrets: str) -> ProviderContext:
        creds = {k: SecretStr(v) for k, v in secrets.items()}
        return ProviderContext("c", "", creds, {}, MemoryTokenCache())

    assert isinstance(Smoobu.build_auth(ctx(api_key="k1234", api_secret="s1234")), HmacAuth)
    for key_only in (ctx(api_key="k1234"), ctx(api_key="k1234", api_secret="")):
        with pytest.raises(ConfigError) as info:
            Smoobu.build_auth(key_only)
        assert "SMOOBU_API_SECRET" in info.value.message
        assert "Advanced → API Keys" in info.value.hint


def test_the_credential_check_names_a_missing_secret_and_accepts_key_plus_secret() -> None:
    problem = Smoobu.credential_problem({"api_key"})
    assert problem is not None
    assert problem.exit_code == EXIT_CONFIG
    assert problem.code == "credentials_missing"
    assert "2026-09-25" in problem.message
    assert Smoobu.credential_problem({"api_key", "api_secret"}) is None
    assert Smoobu.credential_problem(set()) is None  # nothing at all: the generic message


# --------------------------------------------------------------------------- auth


def test_check_with_key_and_secret_sends_signed_requests(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = make(tmp_path, clock)
    info = h.check()
    assert info.account_ref == "7"
    assert "Sandra Boxer" in info.display_name
    (request,) = h.recorder.requests
    assert request.url.path == "/api/me"
    assert {"x-api-key", "x-timestamp", "x-nonce", "x-signature"} <= set(request.headers)
    assert "api-key" not in request.headers


def test_check_with_only_the_key_fails_with_the_secret_hint_before_any_request(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = make(tmp_path, clock)
    with pytest.raises(ConfigError) as info:
        h.check(api_key=h.sandbox.credentials["api_key"])
    assert "SMOOBU_API_SECRET" in info.value.message
    assert h.recorder.requests == []


def test_wrong_secret_raises_auth_error_with_the_smoobu_hint(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = make(tmp_path, clock)
    with pytest.raises(AuthError) as info:
        h.check(api_key=h.sandbox.credentials["api_key"], api_secret="not-the-secret")
    assert info.value.exit_code == EXIT_AUTH
    assert info.value.status == 401
    assert info.value.hint == Smoobu.auth_hint
    assert "Advanced → API Keys" in info.value.hint
    assert len(h.recorder.requests) == 1  # static credentials: no renewal attempt


def test_the_sandbox_refuses_the_legacy_header_by_default_as_smoobu_does_since_the_sunset(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = make(tmp_path, clock)

    async def legacy() -> httpx.Response:
        transport = httpx.ASGITransport(app=h.sandbox.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as c:
            return await c.get("/api/me", headers={"Api-Key": h.sandbox.credentials["api_key"]})

    response = asyncio.run(legacy())
    assert response.status_code == 401
    assert h.check().account_ref == "7"  # the signed mode works


def test_sync_with_a_rotated_key_fails_with_auth_rejected(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = make(tmp_path, clock)
    h.state.rotate_credentials("usr_live_rotated000", "rotated_secret_000")
    result = h.sync()
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["code"] == "auth_rejected"
    assert result.error["hint"] == Smoobu.auth_hint
    assert h.store.get_connection(h.conn.id).status == "error"  # type: ignore[union-attr]


def test_a_retry_after_a_server_error_is_signed_again_with_a_fresh_nonce(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = make(tmp_path, clock)
    h.recorder.lost = {1}  # the sandbox has seen (and remembers) the first nonce
    assert h.check().account_ref == "7"
    first, second = h.recorder.requests
    assert first.headers["x-nonce"] != second.headers["x-nonce"]
    assert first.headers["x-signature"] != second.headers["x-signature"]


def test_replaying_a_signed_request_is_refused_by_the_sandbox(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = make(tmp_path, clock)
    h.check()
    (request,) = h.recorder.requests

    async def replay() -> httpx.Response:
        transport = httpx.ASGITransport(app=h.sandbox.app)
        async with httpx.AsyncClient(transport=transport) as client:
            return await client.send(request)

    response = asyncio.run(replay())
    assert response.status_code == 401
    assert response.json()["detail"] == "Nonce already used"


# --------------------------------------------------------------------------- sync


def test_full_sync_stores_apartments_all_bookings_and_guests(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = make(tmp_path, clock, listings=6, reservations=180)
    result = h.sync()
    assert result.status == "succeeded", result.error
    counts = h.store.counts(h.conn.id)
    assert counts == {"property": 6, "booking": 180, "guest": len(h.state.guests)}
    bookings = rows(h, "booking")
    statuses = {r["status"] for r in bookings.values()}
    assert {"confirmed", "cancelled", "blocked"} <= statuses
    for booking_id, raw in h.state.reservations.items():
        expected = (
            "cancelled"
            if raw["type"] == "cancellation"
            else "blocked"
            if raw["is-blocked-booking"]
            else "confirmed"
        )
        assert bookings[str(booking_id)]["status"] == expected
    properties = rows(h, "property")
    for apartment_id, apartment in h.state.apartments.items():
        row = properties[str(apartment_id)]
        assert row["name"] == apartment["name"]  # kept from the list: the detail omits it
        assert row["currency"] == apartment["currency"]
        assert row["max_guests"] == apartment["rooms"]["maxOccupancy"]


def test_full_sync_costs_list_plus_detail_per_apartment_and_one_request_per_page(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = make(tmp_path, clock, listings=7, reservations=250)
    result = h.sync()
    res = result.resources
    assert res["properties"].requests == 1 + 7
    assert res["bookings"].requests == math.ceil(250 / PAGE_SIZE) == 3
    assert res["guests"].requests == math.ceil(len(h.state.guests) / PAGE_SIZE)
    assert result.requests == h.state.stats.requests
    for params in h.recorder.params("/reservations"):
        assert params["pageSize"] == "100"
        assert params["showCancellation"] == "true"
        assert params["excludeBlocked"] == "false"
        assert "modifiedFrom" not in params
    assert [p["page"] for p in h.recorder.params("/reservations")] == ["1", "2", "3"]
    assert h.recorder.params("/apartments") == [{}]  # the list is not paginated


def test_second_run_fetches_only_bookings_modified_since_the_cursor(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = make(tmp_path, clock, listings=5, reservations=260)
    first_run = datetime.fromtimestamp(clock.now(), UTC)
    h.sync()
    clock.advance(3600)
    changed = h.state.modify_bookings(3)
    cancelled = next(i for i, r in h.state.reservations.items() if r["type"] == "reservation")
    h.state.cancel_booking(cancelled)
    added = h.state.add_bookings(2) + h.state.add_bookings(1, blocked=True)
    h.recorder.requests.clear()
    result = h.sync()
    bookings = result.resources["bookings"]
    assert bookings.incremental_since is not None
    assert bookings.fetched == len({*changed, cancelled, *added}) == 7
    assert bookings.requests == 1
    (params,) = h.recorder.params("/reservations")
    # The cursor minus the engine's lag, minus a day for Smoobu's account-local dates.
    since = first_run - timedelta(minutes=h.settings.sync.lag_minutes) - timedelta(days=1)
    assert params["modifiedFrom"] == since.date().isoformat()
    stored = rows(h, "booking")
    assert stored[str(cancelled)]["status"] == "cancelled"
    assert stored[str(added[-1])]["status"] == "blocked"
    assert h.store.counts(h.conn.id)["booking"] == 263


def test_a_key_only_connection_fails_its_sync_with_the_secret_hint_and_sends_nothing(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = make(tmp_path, clock, listings=3, reservations=40)
    h.legacy()
    result = h.sync()
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["code"] == "credentials_missing"
    assert result.error["exit_code"] == EXIT_CONFIG  # not a provider 401, not retried
    assert "SMOOBU_API_SECRET" in result.error["message"]
    assert "Advanced → API Keys" in result.error["hint"]
    assert h.recorder.requests == []
    assert h.store.get_connection(h.conn.id).status == "error"  # type: ignore[union-attr]


def test_an_apartment_deleted_between_list_and_detail_keeps_its_list_entry(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = make(tmp_path, clock, listings=3, reservations=10)
    gone = sorted(h.state.apartments)[1]

    def detail_404(request: httpx.Request) -> httpx.Response | None:
        if request.url.path == f"/api/apartments/{gone}":
            return httpx.Response(404, json={"status": 404, "title": "Not Found", "detail": "x"})
        return None

    h.recorder.fault = detail_404
    result = h.sync(resources=["properties"])
    assert result.status == "succeeded", result.error
    row = rows(h, "property")[str(gone)]
    assert row["name"] == h.state.apartments[gone]["name"]
    assert row["currency"] is None


# --------------------------------------------------------------------------- rate limits


@pytest.mark.parametrize("standard_header", [False, True])
def test_429_waits_until_the_advertised_reset_and_the_sync_completes(
    tmp_path: Path, clock: SharedClock, standard_header: bool
) -> None:
    h = make(tmp_path, clock, relaxed=False, listings=4, reservations=120)
    h.state.config.rate_limit = (5, 60.0)
    h.state.config.send_retry_after = standard_header
    start = clock.now()
    result = h.sync()
    assert result.status == "succeeded", result.error
    assert result.rate_limited >= 1
    assert h.state.stats.rate_limited == result.rate_limited
    assert h.store.counts(h.conn.id)["booking"] == 120
    # Waits come from the server's reset time (no jitter): every window of 60 s fits 5 calls.
    calls = result.requests - result.rate_limited
    assert clock.now() - start >= 60.0 * (math.ceil(calls / 5) - 1)
    assert len(h.recorder.requests) == result.requests


def test_rate_limit_headers_reach_the_client_on_success(tmp_path: Path, clock: SharedClock) -> None:
    h = make(tmp_path, clock, relaxed=False)
    h.check()
    h.state.config.accept_legacy = True  # an unsigned probe, to read the headers directly

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=h.sandbox.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as c:
            return await c.get("/api/me", headers={"Api-Key": h.sandbox.credentials["api_key"]})

    response = asyncio.run(get())
    assert response.headers["X-RateLimit-Limit"] == "1000"
    assert response.headers["X-RateLimit-Remaining"] == "998"


def test_provider_declares_the_documented_limit_and_retry_reader() -> None:
    assert [(w.limit, w.seconds) for w in Smoobu.rate_limits] == [(1000, 60.0)]
    assert Smoobu.retry_after({"x-ratelimit-retry-after": "1000000100"}, 1_000_000_000.0) == 100.0
    assert issubclass(Smoobu, Provider)
