"""The Hostaway emulator against providers/hostaway.md (section 9), in-process, no sleeps."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from pms_cli.sandbox.common import FakeData, ManualClock, SlidingWindowCounter
from pms_cli.sandbox.hostaway import (
    CHANNELS,
    RATE_LIMIT_MESSAGE,
    RESERVATION_STATUSES,
    SANDBOX_ACCOUNT_ID,
    SANDBOX_CLIENT_SECRET,
    HostawaySandbox,
    HostawaySandboxConfig,
    create_app,
)

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
CREDENTIALS = {
    "grant_type": "client_credentials",
    "client_id": str(SANDBOX_ACCOUNT_ID),
    "client_secret": SANDBOX_CLIENT_SECRET,
    "scope": "general",
}


class Api:
    """Synchronous facade over httpx.ASGITransport, so tests stay plain functions."""

    def __init__(self, sandbox: HostawaySandbox, clock: ManualClock, ip: str = "127.0.0.1"):
        self.sandbox, self.clock, self.ip = sandbox, clock, ip
        self.token: str | None = None

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.sandbox.app, client=(self.ip, 50000))
            async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
                return await client.request(method, path, **kwargs)

        return asyncio.run(send())

    def login(self) -> str:
        response = self.request("POST", "/v1/accessTokens", data=CREDENTIALS)
        assert response.status_code == 200, response.text
        self.token = response.json()["access_token"]
        self.clock.advance(1.0)  # the docs' 1-second activation rule
        return self.token

    def get(self, path: str, **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return self.request("GET", path, params=params, headers=headers)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def make_api(clock: ManualClock, **overrides: Any) -> Api:
    settings: dict[str, Any] = {"rate_limit_ip": None, "rate_limit_account": None} | overrides
    return Api(HostawaySandbox(HostawaySandboxConfig(clock=clock, **settings)), clock)


@pytest.fixture
def api(clock: ManualClock) -> Api:
    api = make_api(clock)
    api.login()
    return api


def all_pages(api: Api, **params: Any) -> list[dict[str, Any]]:
    """Walk /v1/reservations with afterId (or offset when params has it) until empty."""
    seen: list[dict[str, Any]] = []
    use_offset = "offset" in params
    for _ in range(1000):
        body = api.get("/v1/reservations", **params).json()
        if not body["result"]:
            return seen
        seen.extend(body["result"])
        if use_offset:
            params["offset"] += len(body["result"])
        else:
            params["afterId"] = body["result"][-1]["id"]
    raise AssertionError("pagination did not terminate")


def jwt_part(token: str, index: int) -> dict[str, Any]:
    part = token.split(".")[index]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


# ------------------------------------------------------------------ authentication


def test_issues_a_bare_bearer_token_with_jwt_shaped_claims(clock: ManualClock) -> None:
    api = make_api(clock)
    body = api.request("POST", "/v1/accessTokens", data=CREDENTIALS).json()

    assert set(body) == {"token_type", "expires_in", "access_token"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 63072000
    token = body["access_token"]
    assert jwt_part(token, 0) == {"typ": "JWT", "alg": "RS256"}
    claims = jwt_part(token, 1)
    assert claims["aud"] == str(SANDBOX_ACCOUNT_ID)
    assert re.fullmatch(r"[0-9a-f]{80}", claims["jti"])
    assert claims["nbf"] == claims["iat"] == int(clock.now())
    assert claims["exp"] - claims["iat"] == 63072000
    assert claims["sub"] == "" and claims["scopes"] == ["general"]
    assert api.sandbox.stats.tokens_issued == 1


def test_returns_401_for_a_wrong_client_secret(clock: ManualClock) -> None:
    api = make_api(clock)
    response = api.request(
        "POST", "/v1/accessTokens", data=CREDENTIALS | {"client_secret": "0" * 64}
    )

    assert response.status_code == 401
    assert response.json()["status"] == "fail"
    assert isinstance(response.json()["result"], str)
    assert api.sandbox.stats.auth_failures == 1


def test_returns_401_for_an_unknown_account_id(clock: ManualClock) -> None:
    api = make_api(clock)
    response = api.request("POST", "/v1/accessTokens", data=CREDENTIALS | {"client_id": "1"})

    assert response.status_code == 401


def test_returns_403_without_an_authorization_header(clock: ManualClock) -> None:
    response = make_api(clock).get("/v1/listings")

    assert response.status_code == 403
    assert response.json()["status"] == "fail"


def test_returns_403_for_an_unknown_token(api: Api) -> None:
    api.token = "not-a-token"

    assert api.get("/v1/reservations").status_code == 403


def test_returns_403_for_a_revoked_token(api: Api) -> None:
    assert api.get("/v1/listings").status_code == 200

    revoked = api.request("DELETE", "/v1/accessTokens", params={"token": api.token})

    assert revoked.json() == {"status": "success", "result": []}
    assert api.get("/v1/listings").status_code == 403


def test_returns_403_for_every_token_after_revoke_all_tokens(api: Api) -> None:
    api.sandbox.revoke_all_tokens()

    assert api.get("/v1/listings").status_code == 403


def test_returns_403_for_a_token_used_within_the_activation_delay(clock: ManualClock) -> None:
    api = make_api(clock)
    api.token = api.request("POST", "/v1/accessTokens", data=CREDENTIALS).json()["access_token"]

    clock.advance(0.5)
    assert api.get("/v1/listings").status_code == 403
    clock.advance(0.5)
    assert api.get("/v1/listings").status_code == 200


def test_accepts_a_token_immediately_when_the_activation_delay_is_disabled(
    clock: ManualClock,
) -> None:
    api = make_api(clock, token_activation_delay=0)
    api.token = api.request("POST", "/v1/accessTokens", data=CREDENTIALS).json()["access_token"]

    assert api.get("/v1/listings").status_code == 200


def test_returns_403_for_an_expired_token(api: Api, clock: ManualClock) -> None:
    clock.advance(63072000)

    assert api.get("/v1/listings").status_code == 403


def test_keeps_earlier_tokens_valid_when_a_new_one_is_issued(api: Api) -> None:
    first = api.token
    api.login()
    api.token = first

    assert api.get("/v1/listings").status_code == 200


# ------------------------------------------------------------------ rate limits


def test_returns_429_with_retry_after_when_the_ip_window_is_exceeded(clock: ManualClock) -> None:
    api = make_api(clock, rate_limit_ip=(15, 10.0))
    api.login()  # request 1 of 15, at t=0; now t=1
    for _ in range(14):
        assert api.get("/v1/listings").status_code == 200

    limited = api.get("/v1/listings")

    assert limited.status_code == 429
    assert limited.json() == {"status": "fail", "message": RATE_LIMIT_MESSAGE}
    assert limited.headers["Retry-After"] == "9"  # the first hit leaves the window at t=10
    assert api.sandbox.stats.rate_limited == 1
    clock.advance(9)
    assert api.get("/v1/listings").status_code == 200


def test_limits_each_ip_separately(clock: ManualClock) -> None:
    api = make_api(clock, rate_limit_ip=(2, 10.0), token_activation_delay=0)
    api.login()
    api.get("/v1/listings")
    other = Api(api.sandbox, clock, ip="10.0.0.2")
    other.token = api.token

    assert api.get("/v1/listings").status_code == 429
    assert other.get("/v1/listings").status_code == 200


def test_limits_the_account_across_ips(clock: ManualClock) -> None:
    api = make_api(clock, rate_limit_ip=(15, 10.0), rate_limit_account=(3, 10.0))
    api.login()
    others = [Api(api.sandbox, clock, ip=f"10.0.0.{n}") for n in range(4)]
    for other in others:
        other.token = api.token

    statuses = [other.get("/v1/listings").status_code for other in others]

    assert statuses == [200, 200, 429, 429]


def test_counts_token_requests_toward_the_rate_limit(clock: ManualClock) -> None:
    api = make_api(clock, rate_limit_ip=(3, 10.0))
    for _ in range(3):
        api.request("POST", "/v1/accessTokens", data=CREDENTIALS)

    response = api.request("POST", "/v1/accessTokens", data=CREDENTIALS)

    assert response.status_code == 429
    assert api.sandbox.stats.tokens_issued == 3


def test_omits_retry_after_when_configured_not_to_send_it(clock: ManualClock) -> None:
    api = make_api(clock, rate_limit_ip=(1, 10.0), send_retry_after=False)
    api.login()

    limited = api.get("/v1/listings")

    assert limited.status_code == 429
    assert "Retry-After" not in limited.headers


def test_sliding_window_counter_tracks_keys_independently(clock: ManualClock) -> None:
    counter = SlidingWindowCounter(2, 10.0, clock)
    assert counter.hit("a") is None
    clock.advance(4)
    assert counter.hit("a") is None
    assert counter.hit("b") is None

    assert counter.hit("a") == pytest.approx(6.0)
    clock.advance(6)
    assert counter.hit("a") is None


# ------------------------------------------------------------------ envelope and pagination


def test_list_envelope_echoes_limit_and_offset_and_counts_all_matches(api: Api) -> None:
    body = api.get("/v1/reservations", limit=30, offset=60).json()

    assert set(body) == {"status", "result", "limit", "offset", "count", "page", "totalPages"}
    assert body["status"] == "success"
    assert (body["limit"], body["offset"], body["count"]) == (30, 60, 200)
    assert (body["page"], body["totalPages"]) == (3, 7)
    assert len(body["result"]) == 30


def test_echoes_null_limit_and_offset_and_pages_by_100_when_not_supplied(api: Api) -> None:
    body = api.get("/v1/reservations").json()

    assert body["limit"] is None and body["offset"] is None
    assert len(body["result"]) == 100
    assert body["totalPages"] == 2


def test_clamps_limit_to_the_maximum(clock: ManualClock) -> None:
    api = make_api(clock, reservations=30, max_limit=20)
    api.login()

    body = api.get("/v1/reservations", limit=1000).json()

    assert len(body["result"]) == 20 and body["limit"] == 20


def test_returns_400_for_a_non_integer_limit(api: Api) -> None:
    response = api.get("/v1/reservations", limit="many")

    assert response.status_code == 400
    assert response.json()["status"] == "fail"


def test_offset_pagination_returns_every_reservation_exactly_once(api: Api) -> None:
    ids = [res["id"] for res in all_pages(api, limit=37, offset=0)]

    assert len(ids) == len(set(ids)) == 200
    assert set(ids) == set(api.sandbox.reservations)


@pytest.mark.parametrize(
    "sort_order",
    [None, "updatedOn", "arrivalDate", "arrivalDateDesc", "latestActivity", "latestActivityDesc"],
)
def test_after_id_pagination_returns_every_reservation_exactly_once(
    api: Api, sort_order: str | None
) -> None:
    params: dict[str, Any] = {"limit": 23} | ({"sortOrder": sort_order} if sort_order else {})
    ids = [res["id"] for res in all_pages(api, **params)]

    assert len(ids) == len(set(ids)) == 200


def test_after_id_ignores_offset(api: Api) -> None:
    first = api.get("/v1/reservations", limit=10).json()["result"]

    body = api.get("/v1/reservations", limit=5, afterId=first[4]["id"], offset=100).json()

    assert [res["id"] for res in body["result"]] == [res["id"] for res in first[5:10]]
    assert body["count"] == 200


def test_orders_by_updated_on_desc_then_id_desc_by_default(api: Api) -> None:
    result = api.get("/v1/reservations", limit=500).json()["result"]
    keys = [(res["updatedOn"], res["id"]) for res in result]

    assert keys == sorted(keys, reverse=True)


def test_sort_order_updated_on_is_ascending(api: Api) -> None:
    result = api.get("/v1/reservations", limit=500, sortOrder="updatedOn").json()["result"]
    keys = [(res["updatedOn"], res["id"]) for res in result]

    assert keys == sorted(keys)


def test_returns_400_for_an_unknown_sort_order(api: Api) -> None:
    assert api.get("/v1/reservations", sortOrder="price").status_code == 400


# ------------------------------------------------------------------ filters and resources


def test_filters_reservations_by_listing_and_arrival_window(api: Api) -> None:
    listing_id = next(iter(api.sandbox.listings))
    params = {"listingId": listing_id, "arrivalStartDate": "2025-06-01"}
    params |= {"arrivalEndDate": "2025-12-31", "limit": 500}

    body = api.get("/v1/reservations", **params).json()

    expected = {
        res["id"]
        for res in api.sandbox.reservations.values()
        if res["listingMapId"] == listing_id and "2025-06-01" <= res["arrivalDate"] <= "2025-12-31"
    }
    assert expected
    assert {res["id"] for res in body["result"]} == expected
    assert body["count"] == len(expected)


@pytest.mark.parametrize(
    ("start", "end"),
    [("2025-12-01", "2025-12-15"), ("2025-12-01 06:30:00", "2025-12-15 18:00:00")],
)
def test_filters_reservations_by_latest_activity_dates_or_datetimes(
    api: Api, start: str, end: str
) -> None:
    inclusive_end = end if " " in end else f"{end} 23:59:59"
    expected = {
        res["id"]
        for res in api.sandbox.reservations.values()
        if start <= res["latestActivityOn"] <= inclusive_end
    }

    body = api.get(
        "/v1/reservations", latestActivityStart=start, latestActivityEnd=end, limit=500
    ).json()

    assert expected
    assert {res["id"] for res in body["result"]} == expected


def test_include_resources_zero_blanks_fees_units_custom_fields_and_proxy_email(
    api: Api,
) -> None:
    plain = api.get("/v1/reservations", limit=500).json()["result"]
    rich = api.get("/v1/reservations", limit=500, includeResources=1).json()["result"]

    for res in plain:
        assert res["reservationFees"] == res["reservationUnit"] == res["customFieldValues"] == []
        assert res["hostProxyEmail"] is None
    assert any(res["reservationFees"] for res in rich)
    assert any(res["customFieldValues"] for res in rich)
    assert all(res["hostProxyEmail"] for res in rich)


def test_returns_a_single_reservation_with_resources_and_cancellation_policy(api: Api) -> None:
    reservation_id = next(iter(api.sandbox.reservations))

    body = api.get(f"/v1/reservations/{reservation_id}").json()

    assert set(body) == {"status", "result"}
    assert body["result"]["id"] == reservation_id
    assert body["result"]["hostProxyEmail"]
    assert "cancellationPolicyDetails" in body["result"]


def test_returns_404_fail_for_an_unknown_reservation_or_listing(api: Api) -> None:
    for path in ("/v1/reservations/1", "/v1/listings/1"):
        response = api.get(path)
        assert response.status_code == 404
        assert response.json()["status"] == "fail"


def test_lists_all_listings_in_one_page_without_a_limit(api: Api) -> None:
    body = api.get("/v1/listings").json()

    assert len(body["result"]) == body["count"] == 10
    assert body["limit"] is None and body["totalPages"] == 1


def test_filters_listings_by_latest_activity(api: Api) -> None:
    listings = sorted(api.sandbox.listings.values(), key=lambda item: item["latestActivityOn"])
    since = listings[5]["latestActivityOn"]

    body = api.get("/v1/listings", latestActivityStart=since, sortOrder="latestActivity").json()

    assert [item["id"] for item in body["result"]] == [item["id"] for item in listings[5:]]


def test_deleted_listing_disappears_from_list_and_single_lookup(api: Api) -> None:
    listing_id = next(iter(api.sandbox.listings))
    api.sandbox.delete_listing(listing_id)

    ids = [item["id"] for item in api.get("/v1/listings").json()["result"]]

    assert listing_id not in ids
    assert api.get(f"/v1/listings/{listing_id}").status_code == 404


def test_serves_the_v1_routes_when_mounted_under_hostaway(api: Api) -> None:
    parent = Starlette(routes=[Mount("/hostaway", app=api.sandbox.app)])

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=parent)
        async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
            headers = {"Authorization": f"Bearer {api.token}"}
            return await client.get("/hostaway/v1/listings", headers=headers)

    assert asyncio.run(send()).status_code == 200


def test_create_app_exposes_its_sandbox_on_app_state() -> None:
    app = create_app(HostawaySandboxConfig(listings=3, reservations=5))

    assert isinstance(app.state.sandbox, HostawaySandbox)
    assert len(app.state.sandbox.listings) == 3


# ------------------------------------------------------------------ data


def test_generates_data_with_documented_shapes_and_vocabularies(clock: ManualClock) -> None:
    sandbox = HostawaySandbox(HostawaySandboxConfig(clock=clock))
    listings, reservations = sandbox.listings, list(sandbox.reservations.values())

    assert any(item["specialStatus"] == "archived" for item in listings.values())
    for item in listings.values():
        assert re.fullmatch(r"[A-Z]{2}", item["countryCode"])
        assert "/" in item["timeZoneName"] and TIMESTAMP.match(item["latestActivityOn"])
        assert all(isinstance(item[key], int) for key in ("checkInTimeStart", "checkOutTime"))
    statuses = {res["status"] for res in reservations}
    assert statuses <= set(RESERVATION_STATUSES)
    assert {"cancelled", "new"} <= statuses and any(s.startswith("inquiry") for s in statuses)
    for res in reservations:
        assert CHANNELS[res["channelId"]] == res["channelName"]
        assert res["listingMapId"] in listings and res["hostawayReservationId"] == res["id"]
        assert isinstance(res["totalPrice"], float) and res["currency"]
        assert all(TIMESTAMP.match(res[k]) for k in ("insertedOn", "updatedOn", "latestActivityOn"))
        assert res["insertedOn"] <= min(res["updatedOn"], res["latestActivityOn"])
        assert res["isArchived"] in (0, 1) and res["isStarred"] in (0, 1)
    emails = [res["guestEmail"] for res in reservations]
    assert None in emails and any(e and e.endswith("@guest.airbnb.com") for e in emails)


def test_about_half_the_reservations_were_edited_after_their_latest_activity(
    clock: ManualClock,
) -> None:
    # The real 707-reservation account: 48 % / 24 % (> 10 min) / 7 % (> 30 days).
    sandbox = HostawaySandbox(HostawaySandboxConfig(clock=clock, reservations=2000))
    gaps = [
        (_ts(res["updatedOn"]) - _ts(res["latestActivityOn"]))
        for res in sandbox.reservations.values()
    ]
    share = {limit: sum(gap > limit for gap in gaps) / len(gaps) for limit in (0, 600, 30 * 86400)}
    assert 0.42 <= share[0] <= 0.54
    assert 0.19 <= share[600] <= 0.29
    assert 0.04 <= share[30 * 86400] <= 0.10


def test_generates_contactless_guests_known_only_by_their_channel_account(
    clock: ManualClock,
) -> None:
    sandbox = HostawaySandbox(HostawaySandboxConfig(clock=clock, reservations=2000))
    guests = [r for r in sandbox.reservations.values() if r["status"] != "ownerStay"]
    contactless = [r for r in guests if not (r["guestEmail"] or r["phone"])]
    with_account = [r for r in contactless if r["guestExternalAccountId"]]

    assert 0.36 <= len(contactless) / len(guests) <= 0.50
    assert 0.84 <= len(with_account) / len(contactless) <= 0.96
    accounts = Counter((r["channelId"], r["guestExternalAccountId"]) for r in with_account)
    assert max(accounts.values()) > 1  # repeat guests, recognisable by the account only
    phones = [r["phone"] for r in guests if r["phone"]]
    assert any(not p.startswith("+") for p in phones)  # typed as national / 00 numbers


def test_guest_locale_is_often_null_and_adults_sometimes_while_the_totals_are_set(
    clock: ManualClock,
) -> None:
    sandbox = HostawaySandbox(HostawaySandboxConfig(clock=clock, reservations=500))
    reservations = list(sandbox.reservations.values())

    assert any(r["guestLocale"] is None and r["localeForMessaging"] for r in reservations)
    unknown_adults = [r for r in reservations if r["adults"] is None]
    assert unknown_adults and all(r["numberOfGuests"] >= 1 for r in unknown_adults)
    assert {r["channelId"] for r in unknown_adults} <= {2000, 2002, 2010, 2013}


def test_generates_identical_data_for_the_same_seed_at_any_clock_time() -> None:
    early = HostawaySandbox(HostawaySandboxConfig(seed=7, clock=ManualClock(0)))
    late = HostawaySandbox(HostawaySandboxConfig(seed=7, clock=ManualClock(2e9)))
    other = HostawaySandbox(HostawaySandboxConfig(seed=8, clock=ManualClock(0)))

    assert early.listings == late.listings and early.reservations == late.reservations
    assert early.reservations != other.reservations


def test_fake_data_is_deterministic_per_seed() -> None:
    def sample(seed: int) -> list[str]:
        fake = FakeData(seed)
        person, city = fake.person(), fake.city()
        return [person.full, fake.email(person), fake.phone(city), fake.listing_name(city)]

    assert sample(1) == sample(1)
    assert sample(1) != sample(2)


# ------------------------------------------------------------------ mutations


def test_modify_reservations_bumps_updated_on_and_moves_them_to_the_front(
    api: Api, clock: ManualClock
) -> None:
    clock.advance(3600)
    before = {rid: dict(res) for rid, res in api.sandbox.reservations.items()}

    changed = api.sandbox.modify_reservations(3)

    front = api.get("/v1/reservations", limit=3).json()["result"]
    assert {res["id"] for res in front} == set(changed)
    for res in front:
        old = before[res["id"]]
        assert res["updatedOn"] > old["updatedOn"]
        # Like most real edits: latestActivityOn (what latestActivityStart filters) stays.
        assert res["latestActivityOn"] == old["latestActivityOn"]
        assert (res["guestName"], res["totalPrice"]) != (old["guestName"], old["totalPrice"])


def test_latest_activity_filter_finds_only_modified_reservations(
    api: Api, clock: ManualClock
) -> None:
    clock.advance(3600)
    api.sandbox.modify_reservations(3)  # edits that leave latestActivityOn alone
    changed = api.sandbox.modify_reservations(4, activity=True)
    since = api.sandbox.reservations[changed[0]]["updatedOn"]

    body = api.get("/v1/reservations", latestActivityStart=since).json()

    assert sorted(res["id"] for res in body["result"]) == sorted(changed)


def test_add_and_cancel_reservations(api: Api) -> None:
    added = api.sandbox.add_reservations(2)
    api.sandbox.cancel_reservation(added[0])

    body = api.get("/v1/reservations", limit=500).json()
    by_id = {res["id"]: res for res in body["result"]}

    assert body["count"] == 202
    assert by_id[added[0]]["status"] == "cancelled"
    assert by_id[added[0]]["cancellationDate"] is not None
    assert by_id[added[1]]["listingMapId"] in api.sandbox.listings


def test_stats_count_requests_per_path(api: Api) -> None:
    api.get("/v1/listings")
    api.get("/v1/reservations/1")

    stats = api.sandbox.stats
    assert stats.requests == 3
    assert stats.per_path["POST /v1/accessTokens"] == 1
    assert stats.per_path["GET /v1/reservations/{item_id:int}"] == 1


def _ts(value: str) -> float:
    return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()
