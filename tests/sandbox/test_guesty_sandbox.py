"""The Guesty emulator against providers/guesty.md, in-process, no sleeps."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from pms_cli.sandbox.common import SANDBOX_EPOCH, ManualClock
from pms_cli.sandbox.guesty import (
    RESERVATION_STATUSES,
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    GuestySandbox,
    GuestySandboxConfig,
    build_sandbox,
    create_app,
)
from pms_cli.sandbox.server import SandboxOptions

OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
CREDENTIALS = {
    "grant_type": "client_credentials",
    "scope": "open-api",
    "client_id": SANDBOX_CLIENT_ID,
    "client_secret": SANDBOX_CLIENT_SECRET,
}
WINDOWS = ("Second", "Minute", "Hour")
HEADERS = [f"X-RateLimit-{kind}-{w}" for kind in ("Limit", "Remaining") for w in WINDOWS]


class Api:
    """Synchronous facade over httpx.ASGITransport, so tests stay plain functions."""

    def __init__(self, sandbox: GuestySandbox) -> None:
        self.sandbox = sandbox
        self.token: str | None = None

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.sandbox.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
                return await client.request(method, path, **kwargs)

        return asyncio.run(send())

    def login(self) -> str:
        response = self.request("POST", "/oauth2/token", data=CREDENTIALS)
        assert response.status_code == 200, response.text
        self.token = response.json()["access_token"]
        return self.token

    def get(self, path: str, **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return self.request("GET", path, params=params, headers=headers)

    def results(self, path: str, **params: Any) -> list[dict[str, Any]]:
        response = self.get(path, **params)
        assert response.status_code == 200, response.text
        results: list[dict[str, Any]] = response.json()["results"]
        return results


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def make_api(clock: ManualClock, **overrides: Any) -> Api:
    settings: dict[str, Any] = {"rate_limits": None} | overrides
    return Api(GuestySandbox(GuestySandboxConfig(clock=clock, **settings)))


@pytest.fixture
def api(clock: ManualClock) -> Api:
    """The sandbox in migration mode: the legacy reservation routes still answer."""
    api = make_api(clock, legacy_reservations=True)
    api.login()
    return api


@pytest.fixture
def api27(clock: ManualClock) -> Api:
    """The sandbox as Guesty is from 2027-03-01 (the default)."""
    api = make_api(clock)
    api.login()
    return api


def walk(api: Api, path: str, **params: Any) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    for skip in range(0, 10_000, 100):
        page = api.results(path, limit=100, skip=skip, **params)
        seen.extend(page)
        if len(page) < 100:
            return seen
    raise AssertionError("paging did not end")


def rule(field: str, operator: str, **value: Any) -> str:
    return json.dumps([{"field": field, "operator": operator, **value}])


# ------------------------------------------------------------------ tokens


def test_issues_the_documented_token_response(clock: ManualClock) -> None:
    api = make_api(clock)
    response = api.request("POST", "/oauth2/token", data=CREDENTIALS)

    body = response.json()
    assert set(body) == {"token_type", "expires_in", "access_token", "scope"}
    assert (body["token_type"], body["expires_in"], body["scope"]) == ("Bearer", 86400, "open-api")
    assert body["access_token"].count(".") == 2
    assert api.sandbox.stats.tokens_issued == 1


def test_accepts_a_token_request_without_scope(clock: ManualClock) -> None:
    data = {k: v for k, v in CREDENTIALS.items() if k != "scope"}

    assert make_api(clock).request("POST", "/oauth2/token", data=data).status_code == 200


def test_the_token_endpoint_is_not_under_v1(clock: ManualClock) -> None:
    response = make_api(clock).request("POST", "/v1/oauth2/token", data=CREDENTIALS)

    assert response.status_code == 404


def test_wrong_client_credentials_get_an_oauth_style_401(clock: ManualClock) -> None:
    api = make_api(clock)
    for data in (CREDENTIALS | {"client_secret": "nope"}, CREDENTIALS | {"client_id": "0oaX"}):
        response = api.request("POST", "/oauth2/token", data=data)
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_client"
    assert api.sandbox.stats.tokens_issued == 0


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("grant_type", "password", "unsupported_grant_type"),
        ("scope", "booking_engine:api", "invalid_scope"),
    ],
)
def test_rejects_other_grants_and_scopes(
    clock: ManualClock, field: str, value: str, error: str
) -> None:
    response = make_api(clock).request("POST", "/oauth2/token", data=CREDENTIALS | {field: value})

    assert response.status_code == 400 and response.json()["error"] == error


def test_the_sixth_token_in_24_hours_is_refused_with_retry_after(clock: ManualClock) -> None:
    api = make_api(clock)
    for _ in range(5):
        api.login()
        clock.advance(3600)

    refused = api.request("POST", "/oauth2/token", data=CREDENTIALS)

    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) == 86400 - 5 * 3600
    assert api.sandbox.stats.tokens_issued == 5
    clock.advance(86400 - 5 * 3600)
    assert api.request("POST", "/oauth2/token", data=CREDENTIALS).status_code == 200


def test_the_token_quota_is_configurable_and_can_be_disabled(clock: ManualClock) -> None:
    strict = make_api(clock, token_quota=1)
    strict.login()
    assert strict.request("POST", "/oauth2/token", data=CREDENTIALS).status_code == 429

    free = make_api(clock, token_quota=None)
    for _ in range(8):
        free.login()
    assert free.sandbox.stats.tokens_issued == 8


# ------------------------------------------------------------------ bearer auth


def test_requests_without_a_token_get_the_documented_401(clock: ManualClock) -> None:
    response = make_api(clock).get("/v1/listings")

    assert response.status_code == 401
    assert response.json() == {"error": {"code": "UNAUTHORIZED", "message": "Unauthorized"}}


def test_a_token_without_the_bearer_prefix_gets_403(api: Api) -> None:
    response = api.request("GET", "/v1/listings", headers={"Authorization": str(api.token)})

    assert response.status_code == 403
    assert "please contact Guesty support" in response.json()["error"]["message"]


def test_unknown_expired_and_revoked_tokens_get_401(api: Api, clock: ManualClock) -> None:
    assert api.get("/v1/listings").status_code == 200
    api.sandbox.revoke_all_tokens()
    assert api.get("/v1/listings").status_code == 401

    api.login()
    clock.advance(86400)
    assert api.get("/v1/listings").status_code == 401
    assert api.sandbox.stats.auth_failures == 2


# ------------------------------------------------------------------ rate limits


def test_every_api_response_carries_the_six_rate_limit_headers(clock: ManualClock) -> None:
    api = make_api(clock, rate_limits=GuestySandboxConfig().rate_limits)
    api.login()

    first, second = api.get("/v1/listings"), api.get("/v1/listings/unknown")

    assert all(name in first.headers for name in HEADERS)
    limits = [first.headers[f"X-RateLimit-Limit-{w}"] for w in ("Second", "Minute", "Hour")]
    assert limits == ["15", "120", "5000"]
    assert first.headers["X-RateLimit-Remaining-Second"] == "14"
    assert first.headers["X-RateLimit-Remaining-Minute"] == "119"
    assert first.headers["X-RateLimit-Remaining-Hour"] == "4999"
    assert second.status_code == 404
    assert second.headers["X-RateLimit-Remaining-Minute"] == "118"


def test_the_second_window_answers_429_with_retry_after(clock: ManualClock) -> None:
    api = make_api(clock, rate_limits=GuestySandboxConfig().rate_limits)
    api.login()
    for _ in range(15):
        assert api.get("/v1/listings").status_code == 200

    limited = api.get("/v1/listings")

    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "1"
    assert limited.headers["X-RateLimit-Remaining-Second"] == "0"
    assert limited.json()["error"]["code"] == "TOO_MANY_REQUESTS"
    clock.advance(1)
    assert api.get("/v1/listings").status_code == 200


def test_the_minute_window_holds_across_seconds(clock: ManualClock) -> None:
    api = make_api(clock, rate_limits=GuestySandboxConfig().rate_limits)
    api.login()
    for _ in range(120):
        assert api.get("/v1/listings").status_code == 200
        clock.advance(0.25)

    limited = api.get("/v1/listings")

    assert limited.status_code == 429
    assert limited.headers["X-RateLimit-Remaining-Minute"] == "0"
    assert int(limited.headers["Retry-After"]) == 30
    assert api.sandbox.stats.rate_limited == 1


def test_the_token_endpoint_is_governed_by_its_quota_not_the_windows(clock: ManualClock) -> None:
    api = make_api(clock, rate_limits={"Second": (1, 1.0)}, token_quota=None)
    for _ in range(3):
        assert api.request("POST", "/oauth2/token", data=CREDENTIALS).status_code == 200


# ------------------------------------------------------------------ envelopes and paging


def test_listing_envelope_echoes_limit_and_skip_and_counts_all(api: Api) -> None:
    body = api.get("/v1/listings", limit=4, skip=8).json()

    assert set(body) == {"results", "count", "limit", "skip"}
    assert (body["count"], body["limit"], body["skip"]) == (10, 4, 8)
    assert len(body["results"]) == 2


def test_the_default_page_is_25_and_the_maximum_is_100(api: Api) -> None:
    body = api.get("/v1/reservations").json()
    assert body["limit"] == 25 and len(body["results"]) == 25

    too_big = api.get("/v1/reservations", limit=101)
    assert too_big.status_code == 400
    assert too_big.json()["error"]["code"] == "BAD_REQUEST"
    assert api.get("/v1/reservations", skip="x").status_code == 400


def test_skip_paging_returns_every_reservation_exactly_once(api: Api) -> None:
    ids = [r["_id"] for r in walk(api, "/v1/reservations")]

    assert len(ids) == len(set(ids)) == 200
    assert ids == sorted(ids)  # default sort is _id


def test_guests_crud_answers_results_and_total_and_selects_with_columns(api: Api) -> None:
    body = api.get("/v1/guests-crud", limit=5, columns="fullName guestEmail").json()

    assert set(body) == {"results", "total"}
    assert body["total"] == len(api.sandbox.guests)
    assert all(set(g) <= {"_id", "fullName", "guestEmail"} for g in body["results"])
    assert len(body["results"]) == 5
    # The documented list names: email and phone are guestEmail / guestPhone.
    [one] = api.results("/v1/guests-crud", limit=1, columns="id guestEmail guestPhone email")
    guest = api.sandbox.guests[one["_id"]]
    assert (one["id"], one["guestEmail"]) == (guest["_id"], guest["email"])
    assert api.get("/v1/guests-crud", limit=1).status_code == 400  # columns is required


def test_single_objects_and_documented_404s(api: Api) -> None:
    rid, gid = next(iter(api.sandbox.reservations)), next(iter(api.sandbox.guests))
    lid = next(iter(api.sandbox.listings))

    assert api.get(f"/v1/reservations/{rid}", fields="status").json() == {
        "_id": rid,
        "status": api.sandbox.reservations[rid]["status"],
    }
    assert api.get(f"/v1/listings/{lid}").json()["_id"] == lid
    assert api.get(f"/v1/guests-crud/{gid}").json()["_id"] == gid
    missing = api.get("/v1/guests-crud/000000000000000000000000")
    assert missing.status_code == 404
    assert missing.json() == {"error": {"code": "NOT_FOUND", "message": "Guest not found"}}


# ------------------------------------------------------------------ fields, sort, filters


def test_without_fields_reservations_omit_guest_and_with_fields_keep_only_those(
    api: Api,
) -> None:
    default = api.results("/v1/reservations", limit=3)
    assert all("guest" not in r and "money" in r and "status" in r for r in default)

    chosen = api.results("/v1/reservations", limit=3, fields="guest money guest.email listing")
    for res in chosen:
        assert set(res) == {"_id", "guest", "money", "listing"}
        assert res["listing"]["_id"] == api.sandbox.reservations[res["_id"]]["listingId"]


def test_dotted_fields_project_nested_values(api: Api) -> None:
    [res] = api.results("/v1/reservations", limit=1, fields="money.currency guest.fullName")

    assert set(res) == {"_id", "money", "guest"}
    assert set(res["money"]) == {"currency"} and set(res["guest"]) == {"fullName"}


def test_sorts_ascending_and_descending_by_any_field(api: Api) -> None:
    up = [r["lastUpdatedAt"] for r in walk(api, "/v1/reservations", sort="lastUpdatedAt")]
    down = [r["lastUpdatedAt"] for r in walk(api, "/v1/reservations", sort="-lastUpdatedAt")]

    assert up == sorted(up) and down == sorted(up, reverse=True)


def test_gt_on_last_updated_at_returns_only_later_changes(api: Api) -> None:
    stamps = sorted(r["lastUpdatedAt"] for r in api.sandbox.reservations.values())
    since = stamps[150]

    found = walk(api, "/v1/reservations", filters=rule("lastUpdatedAt", "$gt", value=since))

    assert sorted(r["lastUpdatedAt"] for r in found) == [s for s in stamps if s > since]


def test_between_compares_instants_across_utc_offsets(api: Api) -> None:
    res = next(iter(api.sandbox.reservations.values()))
    instant = datetime.fromisoformat(res["lastUpdatedAt"].replace("Z", "+00:00"))
    # The same instant written as +01:00 must still match (the `+` travels URL-encoded).
    shifted = instant.astimezone(timezone(timedelta(hours=1))).isoformat(timespec="milliseconds")
    filters = rule("lastUpdatedAt", "$between", **{"from": shifted, "to": shifted})

    found = walk(api, "/v1/reservations", filters=filters)

    assert shifted.endswith("+01:00")
    assert res["_id"] in {r["_id"] for r in found}


def test_eq_not_lt_and_contains_filters_and_they_are_anded(api: Api) -> None:
    all_res = list(api.sandbox.reservations.values())
    lid = all_res[0]["listingId"]
    both = json.dumps(
        [
            {"field": "listingId", "operator": "$eq", "value": lid},
            {"field": "status", "operator": "$contains", "value": ["canceled", "declined"]},
        ]
    )
    expected = {
        r["_id"]
        for r in all_res
        if r["listingId"] == lid and r["status"] in ("canceled", "declined")
    }

    assert {r["_id"] for r in walk(api, "/v1/reservations", filters=both)} == expected
    not_confirmed = walk(api, "/v1/reservations", filters=rule("status", "$not", value="confirmed"))
    assert all(r["status"] != "confirmed" for r in not_confirmed)
    early = walk(
        api, "/v1/reservations", filters=rule("checkInDateLocalized", "$lt", value="2025-06-01")
    )
    assert all(r["checkInDateLocalized"] < "2025-06-01" for r in early)
    named = walk(api, "/v1/reservations", filters=rule("guest.fullName", "$contains", value="an"))
    names = [api.sandbox.reservations[r["_id"]]["guest"]["fullName"] for r in named]
    assert names and all("an" in name.lower() for name in names)


def test_guests_can_be_filtered_too(api: Api) -> None:
    email = next(g["email"] for g in api.sandbox.guests.values() if g["email"])

    found = api.get(
        "/v1/guests-crud", columns="guestEmail", filters=rule("email", "$eq", value=email)
    ).json()

    assert found["total"] >= 1 and all(g["guestEmail"] == email for g in found["results"])


@pytest.mark.parametrize(
    "filters",
    [
        "not json",
        '{"field": "status"}',
        rule("status", "$regex", value="x"),
        rule("status", "$eq"),
        rule("checkIn", "$between", **{"from": "2024-01-01"}),
        json.dumps([{"field": "checkIn", "operator": "$gt", "value": "x", "context": "now"}]),
    ],
)
def test_malformed_or_unsupported_filters_get_400(api: Api, filters: str) -> None:
    response = api.get("/v1/reservations", filters=filters)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BAD_REQUEST"


def test_listing_filters_active_listed_ids_and_text(api: Api) -> None:
    listings = list(api.sandbox.listings.values())

    active = api.results("/v1/listings", active="true")
    assert {x["_id"] for x in active} == {x["_id"] for x in listings if x["active"]}
    assert {x["_id"] for x in api.results("/v1/listings", listed="false")} == {
        x["_id"] for x in listings if not x["isListed"]
    }
    two = ",".join(x["_id"] for x in listings[:2])
    assert len(api.results("/v1/listings", ids=two)) == 2
    city = listings[0]["address"]["city"]
    assert listings[0]["_id"] in {x["_id"] for x in api.results("/v1/listings", q=city)}


# ------------------------------------------------------------------ data


def test_generates_data_with_documented_shapes_and_vocabularies(clock: ManualClock) -> None:
    sandbox = GuestySandbox(GuestySandboxConfig(clock=clock))
    epoch = SANDBOX_EPOCH.isoformat()[:19]

    for listing in sandbox.listings.values():
        assert OBJECT_ID.match(listing["_id"]) and TIMESTAMP.match(listing["lastUpdatedAt"])
        assert isinstance(listing["address"]["lat"], float)
        assert re.fullmatch(r"\d{2}:\d{2}", listing["defaultCheckOutTime"])
    statuses = set()
    for res in sandbox.reservations.values():
        statuses.add(res["status"])
        assert OBJECT_ID.match(res["_id"]) and res["listingId"] in sandbox.listings
        assert res["guestId"] == res["guest"]["_id"] and res["guestId"] in sandbox.guests
        assert all(TIMESTAMP.match(res[k]) for k in ("createdAt", "lastUpdatedAt", "checkIn"))
        assert res["createdAt"] <= res["lastUpdatedAt"] < epoch
        assert res["checkInDateLocalized"] < res["checkOutDateLocalized"]
        m = res["money"]
        assert round(m["totalPaid"] + m["balanceDue"], 2) == round(
            m["subTotalPrice"] + m["totalTaxes"], 2
        )
    assert statuses <= set(RESERVATION_STATUSES)
    assert {"confirmed", "canceled", "inquiry"} <= statuses and "cancelled" not in statuses
    assert any(r["source"] == "owner" for r in sandbox.reservations.values())
    assert len(sandbox.guests) < len(sandbox.reservations)  # returning guests exist
    assert any(not TIMESTAMP.match(g["createdAt"]) for g in sandbox.guests.values())  # offsets


def test_object_ids_sort_by_creation_time(clock: ManualClock) -> None:
    sandbox = GuestySandbox(GuestySandboxConfig(clock=clock))
    by_id = sorted(sandbox.reservations.values(), key=lambda r: r["_id"])

    assert [r["createdAt"][:19] for r in by_id] == sorted(r["createdAt"][:19] for r in by_id)


def test_generates_identical_data_for_the_same_seed_at_any_clock_time() -> None:
    early = GuestySandbox(GuestySandboxConfig(seed=7, clock=ManualClock(0)))
    late = GuestySandbox(GuestySandboxConfig(seed=7, clock=ManualClock(2e9)))
    other = GuestySandbox(GuestySandboxConfig(seed=8, clock=ManualClock(0)))

    assert early.reservations == late.reservations and early.guests == late.guests
    assert early.reservations != other.reservations


# ------------------------------------------------------------------ mutations


def test_modify_reservations_stamps_last_updated_at_with_the_clock(
    api: Api, clock: ManualClock
) -> None:
    clock.advance(3600)
    before = {rid: json.dumps(res, sort_keys=True) for rid, res in api.sandbox.reservations.items()}

    changed = api.sandbox.modify_reservations(3)

    stamp = "2026-01-01T01:00:00.000Z"
    assert all(api.sandbox.reservations[rid]["lastUpdatedAt"] == stamp for rid in changed)
    assert all(
        json.dumps(api.sandbox.reservations[rid], sort_keys=True) != before[rid] for rid in changed
    )
    found = walk(
        api,
        "/v1/reservations",
        filters=rule("lastUpdatedAt", "$gt", value="2026-01-01T00:00:00.000Z"),
    )
    assert sorted(r["_id"] for r in found) == sorted(changed)


def test_add_and_cancel_reservations(api: Api, clock: ManualClock) -> None:
    clock.advance(60)
    added = api.sandbox.add_reservations(2)
    api.sandbox.cancel_reservation(added[0])

    ids = [r["_id"] for r in walk(api, "/v1/reservations")]

    assert len(ids) == 202 and ids[-2:] == sorted(added)  # new ObjectIds sort last
    cancelled = api.sandbox.reservations[added[0]]
    assert cancelled["status"] == "canceled" and cancelled["canceledAt"] is not None


def test_stats_count_requests_per_route(api: Api) -> None:
    api.get("/v1/listings")
    api.get("/v1/guests-crud/nope")

    stats = api.sandbox.stats
    assert stats.requests == 3
    assert stats.per_path["POST /oauth2/token"] == 1
    assert stats.per_path["GET /v1/guests-crud/{item_id}"] == 1


# ------------------------------------------------------------------ mounting


def test_serves_token_and_api_routes_when_mounted_under_guesty(api: Api) -> None:
    parent = Starlette(routes=[Mount("/guesty", app=api.sandbox.app)])

    async def send() -> tuple[int, int]:
        transport = httpx.ASGITransport(app=parent)
        async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
            token = await client.post("/guesty/oauth2/token", data=CREDENTIALS)
            headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
            listings = await client.get("/guesty/v1/listings", headers=headers)
            return token.status_code, listings.status_code

    assert asyncio.run(send()) == (200, 200)


def test_build_sandbox_gives_connect_credentials_and_relaxed_drops_limits() -> None:
    strict = build_sandbox(SandboxOptions(listings=3, reservations=5))
    relaxed = build_sandbox(SandboxOptions(listings=3, reservations=5, relaxed=True))

    assert strict.credentials == {
        "client_id": SANDBOX_CLIENT_ID,
        "client_secret": SANDBOX_CLIENT_SECRET,
    }
    assert strict.api_path == "/v1" and strict.provider == "guesty"
    assert strict.state.config.token_quota == 5 and strict.state.config.rate_limits
    assert relaxed.state.config.token_quota is None and relaxed.state.config.rate_limits is None
    assert len(relaxed.state.listings) == 3 and len(relaxed.state.reservations) == 5


def test_create_app_exposes_its_sandbox_on_app_state() -> None:
    app = create_app(GuestySandboxConfig(listings=2, reservations=3))

    assert isinstance(app.state.sandbox, GuestySandbox)
    assert len(app.state.sandbox.reservations) == 3


# ------------------------------------------------------------------ the 2027 API


def test_legacy_reservation_routes_answer_410_unless_migration_mode_is_on(
    api27: Api, api: Api
) -> None:
    rid = next(iter(api27.sandbox.reservations))
    for path in ("/v1/reservations", f"/v1/reservations/{rid}"):
        gone = api27.get(path)
        assert gone.status_code == 410 and gone.json()["error"]["code"] == "GONE"
    assert api.get("/v1/reservations").status_code == 200


def walk_v3(api: Api, **params: Any) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    for skip in range(0, 10_000, 100):
        body = api.get("/v1/reservations-v3/search", limit=100, skip=skip, **params).json()
        seen.extend(body["results"])
        if not body["pagination"]["hasMore"]:
            return seen
    raise AssertionError("paging did not end")


def test_v3_search_pages_with_has_more_and_lean_rows(api27: Api) -> None:
    body = api27.get("/v1/reservations-v3/search", limit=10).json()
    assert set(body) == {"results", "pagination"}
    assert body["pagination"] == {"skip": 0, "limit": 10, "hasMore": True}
    row = body["results"][0]
    assert "reservationId" in row and "guest" not in row and "money" not in row
    assert set(row["stay"][0]) >= {"listingId", "checkInDateLocalized", "checkOutDateLocalized"}
    ids = [r["reservationId"] for r in walk_v3(api27, sort="_id")]
    assert ids == sorted(api27.sandbox.reservations)
    default = [r["reservationId"] for r in api27.results("/v1/reservations-v3/search", limit=5)]
    assert default == sorted(api27.sandbox.reservations, reverse=True)[:5]  # default -_id
    assert api27.get("/v1/reservations-v3/search", limit=101).status_code == 400


def test_v3_search_filters_by_status_dates_and_created_at(api27: Api) -> None:
    everything = list(api27.sandbox.reservations.values())
    confirmed = walk_v3(api27, **{"filter[status]": "confirmed"})
    assert len(confirmed) == sum(r["status"] == "confirmed" for r in everything)
    two = walk_v3(api27, **{"filter[status]": "confirmed,canceled"})
    assert {r["status"] for r in two} == {"confirmed", "canceled"}
    not_cancelled = walk_v3(api27, **{"filter[status][nin]": "canceled,declined"})
    assert not {r["status"] for r in not_cancelled} & {"canceled", "declined"}
    day = sorted(r["checkOutDateLocalized"] for r in everything)[len(everything) // 2]
    later = walk_v3(api27, **{"filter[checkOut][gte]": day})
    assert len(later) == sum(r["checkOutDateLocalized"] >= day for r in everything)
    stamp = sorted(r["createdAt"] for r in everything)[-7]
    recent = walk_v3(api27, **{"filter[createdAt][gte]": stamp})
    assert len(recent) == 7


@pytest.mark.parametrize(
    "params",
    [
        {"filter[lastUpdatedAt][gt]": "2026-01-01T00:00:00Z"},  # no updated-at filter in v3
        {"sort": "lastUpdatedAt"},
        {"filter[checkOut]": "2026-01-01"},  # dates need an operator
        {"filter[checkOut][gte]": "2026-01-01T00:00:00"},  # local date only
        {"filter[listingId][ne]": "x"},
        {"filters": "[]"},  # the legacy syntax
        {"fields": "guest money"},
    ],
)
def test_v3_search_answers_400_for_what_is_not_documented(
    api27: Api, params: dict[str, str]
) -> None:
    response = api27.get("/v1/reservations-v3/search", **params)
    assert response.status_code == 400 and response.json()["error"]["code"] == "BAD_REQUEST"


def test_v3_by_ids_answers_a_bare_array_of_found_reservations(api27: Api) -> None:
    a, b = sorted(api27.sandbox.reservations)[:2]
    auth = {"Authorization": f"Bearer {api27.token}"}
    query = {"reservationIds[]": [a, "0" * 24, b]}
    rows = api27.request("GET", "/v1/reservations-v3", params=query, headers=auth)
    assert [r["_id"] for r in rows.json()] == [a, b]
    assert api27.get("/v1/reservations-v3", reservationIds=a).json()[0]["_id"] == a
    assert api27.get("/v1/reservations-v3").status_code == 400


def test_the_folio_overview_serves_money_for_up_to_200_ids(api27: Api) -> None:
    ids = sorted(api27.sandbox.reservations)[:3]
    body = api27.get(
        "/v1/guest-folio/overview",
        reservationIds=",".join([*ids, "0" * 24]),
        fields="currency,totalPaid",
    ).json()
    assert body["notFound"] == ["0" * 24]
    first = body["results"][0]
    assert set(first) == {"reservationId", "currency", "totalPaid"}
    assert first["totalPaid"] == api27.sandbox.reservations[ids[0]]["money"]["totalPaid"]
    too_many = ",".join(f"{n:024x}" for n in range(201))
    assert (
        api27.get(
            "/v1/guest-folio/overview", reservationIds=too_many, fields="currency"
        ).status_code
        == 400
    )
    unknown = api27.get("/v1/guest-folio/overview", reservationIds=ids[0], fields="nope")
    assert unknown.status_code == 400


def test_listing_flags_sent_as_true_return_only_active_listed_pms_listings(api27: Api) -> None:
    listings = list(api27.sandbox.listings.values())
    every = api27.results("/v1/listings", limit=100)
    assert len(every) == len(listings)
    on = api27.results("/v1/listings", limit=100, active="true", pmsActive="true")
    assert {x["_id"] for x in on} == {
        x["_id"] for x in listings if x["active"] and x["pms"]["active"]
    }
    assert len(on) < len(listings)


def test_webhooks_change_events_with_put_but_never_the_url(api27: Api) -> None:
    sandbox = api27.sandbox
    hook = sandbox.add_webhook("https://hooks.example.com/a", ["reservation.new"])
    auth = {"Authorization": f"Bearer {api27.token}"}
    events = ["reservation.created.v2", "reservation.updated.v2"]
    ok = api27.request("PUT", f"/v1/webhooks/{hook['_id']}", json={"events": events}, headers=auth)
    assert ok.status_code == 200 and sandbox.webhooks[hook["_id"]]["events"] == events
    moved = api27.request(
        "PUT",
        f"/v1/webhooks/{hook['_id']}",
        json={"events": events, "url": "https://hooks.example.com/b"},
        headers=auth,
    )
    assert moved.status_code == 400
    legacy = api27.request(
        "POST",
        "/v1/webhooks",
        json={"url": "https://x.example", "events": ["reservation.new"]},
        headers=auth,
    )
    assert legacy.status_code == 400
    gone = api27.request("DELETE", f"/v1/webhooks/{hook['_id']}", headers=auth)
    assert gone.status_code == 204 and hook["_id"] not in sandbox.webhooks


def test_v2_subscribers_get_lean_bodies_with_the_id_in_every_reported_place(
    api27: Api,
) -> None:
    sandbox = api27.sandbox
    sandbox.add_webhook("https://hooks.example.com/v2", ["reservation.created.v2"])
    sandbox.add_webhook("https://hooks.example.com/v1", ["reservation.new"])
    added = sandbox.add_reservations(3)
    hooks = sandbox.sender.take()
    legacy = [h.payload for h in hooks if h.url.endswith("/v1")]
    lean = [h.payload for h in hooks if h.url.endswith("/v2")]
    assert [p["reservation"]["_id"] for p in legacy] == added
    assert all("reservation" not in p and "money" not in p["data"] for p in lean)
    assert {p.get("event") or p.get("eventType") for p in lean} == {"reservation.created.v2"}
    places = [
        p["data"].get("reservationId")
        or p["data"].get("reservation", {}).get("id")
        or p.get("reservationId")
        for p in lean
    ]
    assert places == added
    assert {("reservationId" in p["data"], "reservation" in p["data"]) for p in lean} == {
        (True, False),
        (False, True),
        (False, False),
    }
