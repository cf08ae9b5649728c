"""The Beds24 emulator against providers/beds24.md (section 9), in-process, no sleeps."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from pms_cli.sandbox.beds24 import (
    BOOKING_STATUSES,
    DEFAULT_STATUSES,
    SANDBOX_INVITE_CODE,
    SANDBOX_LONG_LIFE_TOKEN,
    SANDBOX_OWNER_ID,
    SANDBOX_REFRESH_TOKEN,
    Beds24Sandbox,
    Beds24SandboxConfig,
    build_sandbox,
)
from pms_cli.sandbox.common import SANDBOX_EPOCH, ManualClock
from pms_cli.sandbox.server import SandboxOptions

ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
CREDIT_HEADERS = ("x-five-min-limit-remaining", "x-five-min-limit-resets-in", "x-request-cost")
HISTORY = {"arrivalFrom": "2000-01-01"}


class Api:
    """Synchronous facade over httpx.ASGITransport, so tests stay plain functions."""

    def __init__(self, sandbox: Beds24Sandbox) -> None:
        self.sandbox = sandbox
        self.token: str | None = None

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, params: Any = None
    ) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.sandbox.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
                return await client.request(method, path, headers=headers, params=params)

        return asyncio.run(send())

    def login(self) -> str:
        response = self.request(
            "GET", "/v2/authentication/token", {"refreshToken": SANDBOX_REFRESH_TOKEN}
        )
        assert response.status_code == 200, response.text
        self.token = response.json()["token"]
        return self.token

    def get(self, path: str, params: Any = None) -> httpx.Response:
        headers = {"token": self.token} if self.token else {}
        return self.request("GET", path, headers, params)

    def all_bookings(self, params: Any) -> list[dict[str, Any]]:
        found, page = [], 1
        while True:
            body = self.get("/v2/bookings", [*params, ("page", page)]).json()
            found += body["data"]
            if not body["pages"]["nextPageExists"]:
                return found
            page += 1


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(SANDBOX_EPOCH.timestamp() + 30 * 86_400)


def make_api(clock: ManualClock, **overrides: Any) -> Api:
    return Api(Beds24Sandbox(Beds24SandboxConfig(clock=clock, **overrides)))


@pytest.fixture
def api(clock: ManualClock) -> Api:
    api = make_api(clock, credit_limit=None)
    api.login()
    return api


def every_status() -> list[tuple[str, str]]:
    return [("status", s) for s in BOOKING_STATUSES]


# --------------------------------------------------------------------------- authentication


def test_invite_code_is_exchanged_once_for_a_refresh_token_and_a_day_long_token(
    clock: ManualClock,
) -> None:
    api = make_api(clock)
    headers = {"code": SANDBOX_INVITE_CODE, "deviceName": "tests"}
    first = api.request("GET", "/v2/authentication/setup", headers)
    assert first.status_code == 200
    body = first.json()
    assert set(body) == {"token", "expiresIn", "refreshToken"}
    assert body["expiresIn"] == 86_400
    assert 152 <= len(body["token"]) <= 172 and 152 <= len(body["refreshToken"]) <= 172
    again = api.request("GET", "/v2/authentication/setup", headers)
    assert again.status_code == 400
    assert again.json() | {"error": ""} == {
        "success": False,
        "type": "error",
        "code": 400,
        "error": "",
    }


def test_refresh_token_keeps_working_and_is_not_rotated(clock: ManualClock) -> None:
    api = make_api(clock)
    tokens = set()
    for _ in range(2):
        response = api.request(
            "GET", "/v2/authentication/token", {"refreshToken": SANDBOX_REFRESH_TOKEN}
        )
        assert response.status_code == 200
        assert set(response.json()) == {"token", "expiresIn"}
        tokens.add(response.json()["token"])
    assert len(tokens) == 2
    bad = api.request("GET", "/v2/authentication/token", {"refreshToken": "nope"})
    assert bad.status_code == 400 and bad.json()["success"] is False


def test_deleting_a_refresh_token_revokes_it(clock: ManualClock) -> None:
    api = make_api(clock)
    headers = {"refreshToken": SANDBOX_REFRESH_TOKEN}
    assert api.request("DELETE", "/v2/authentication/token", headers).status_code == 200
    assert api.request("GET", "/v2/authentication/token", headers).status_code == 400


def test_token_details_answer_200_even_for_an_invalid_token(api: Api) -> None:
    good = api.get("/v2/authentication/details").json()
    assert good["validToken"] is True
    assert good["token"]["ownerId"] == SANDBOX_OWNER_ID
    assert "read:bookings-personal" in good["token"]["scopes"]
    assert 0 < good["token"]["expiresIn"] <= 86_400
    api.token = "invalid"
    response = api.get("/v2/authentication/details")
    assert response.status_code == 200
    assert response.json()["validToken"] is False


@pytest.mark.parametrize("token", [None, "invalid", "expired"])
def test_data_endpoints_reject_a_missing_invalid_or_expired_token_with_401(
    api: Api, clock: ManualClock, token: str | None
) -> None:
    if token == "expired":
        clock.advance(86_400)
    else:
        api.token = token
    for path in ("/v2/properties", "/v2/bookings"):
        response = api.get(path)
        assert response.status_code == 401
        assert response.json()["success"] is False and response.json()["code"] == 401
    assert api.sandbox.stats.auth_failures == 2


def test_long_life_token_reads_data_without_a_refresh_step(clock: ManualClock) -> None:
    api = make_api(clock)
    api.token = SANDBOX_LONG_LIFE_TOKEN
    assert api.get("/v2/properties").status_code == 200
    assert api.sandbox.stats.tokens_issued == 0


# --------------------------------------------------------------------------- credits


def test_every_response_carries_the_wire_credit_headers(clock: ManualClock) -> None:
    api = make_api(clock)
    api.login()
    response = api.get("/v2/bookings", HISTORY)
    assert all(name in response.headers for name in CREDIT_HEADERS)
    assert response.headers["x-request-cost"] == "1.5"
    assert response.headers["x-five-min-limit-remaining"] == "97.5"  # 100 - token 1 - 1.5
    assert response.headers["x-five-min-limit-resets-in"] == "300"
    assert "X-FiveMinCreditLimit-Remaining" not in response.headers  # the spec names are unused


def test_spent_credits_give_429_with_the_error_envelope_until_the_window_resets(
    clock: ManualClock,
) -> None:
    api = make_api(clock, credit_limit=4.0)
    api.login()  # 1 credit
    assert api.get("/v2/bookings", HISTORY).status_code == 200  # 2.5 spent
    clock.advance(100)
    assert api.get("/v2/bookings", HISTORY).status_code == 200  # the last 1.5 credits
    assert api.get("/v2/bookings", HISTORY).status_code == 429
    limited = api.get("/v2/bookings", HISTORY)
    assert limited.status_code == 429
    assert limited.json() == {
        "success": False,
        "type": "error",
        "code": 429,
        "error": "Credit limit exceeded, try again after the reset",
    }
    assert limited.headers["x-five-min-limit-resets-in"] == "200"
    assert limited.headers["x-request-cost"] == "0"
    clock.advance(200)
    assert api.get("/v2/bookings", HISTORY).status_code == 200
    assert api.sandbox.stats.rate_limited == 2


def test_credits_spent_by_another_integration_count_against_the_account(
    clock: ManualClock,
) -> None:
    api = make_api(clock)
    api.sandbox.spend_credits(99.5)
    response = api.request(
        "GET", "/v2/authentication/token", {"refreshToken": SANDBOX_REFRESH_TOKEN}
    )
    assert response.status_code == 429
    assert response.headers["x-five-min-limit-remaining"] == "0.5"


# --------------------------------------------------------------------------- envelope, paging


def test_list_envelope_pages_by_a_fixed_hundred_with_a_next_page_link(api: Api) -> None:
    first = api.get("/v2/bookings", [*every_status(), *HISTORY.items(), ("limit", 5)]).json()
    assert set(first) == {"success", "type", "count", "pages", "data"}
    assert (first["success"], first["type"], first["count"]) == (True, "booking", 100)
    assert first["pages"]["nextPageExists"] is True
    assert "page=2" in first["pages"]["nextPageLink"]
    second = api.get("/v2/bookings", [*every_status(), *HISTORY.items(), ("page", 2)]).json()
    assert second["count"] == 100 and second["pages"] == {
        "nextPageExists": False,
        "nextPageLink": "",
    }
    ids = [b["id"] for b in first["data"] + second["data"]]
    assert sorted(ids) == sorted(api.sandbox.bookings)  # 200 bookings, no gaps or repeats


def test_a_page_past_the_end_is_empty(api: Api) -> None:
    body = api.get("/v2/properties", {"page": 9}).json()
    assert body["data"] == [] and body["count"] == 0 and body["pages"]["nextPageExists"] is False


def test_a_bad_page_number_is_a_400(api: Api) -> None:
    assert api.get("/v2/properties", {"page": "zero"}).status_code == 400


# --------------------------------------------------------------------------- bookings quirks


def test_cancelled_bookings_are_hidden_unless_asked_for(api: Api) -> None:
    default = api.all_bookings(list(HISTORY.items()))
    assert {b["status"] for b in default} == DEFAULT_STATUSES
    everything = api.all_bookings([*every_status(), *HISTORY.items()])
    assert len(everything) == len(api.sandbox.bookings)
    only = api.all_bookings([("status", "cancelled"), *HISTORY.items()])
    assert only and {b["status"] for b in only} == {"cancelled"}


def test_array_parameters_are_repeated_keys_and_the_comma_form_is_a_400(api: Api) -> None:
    response = api.get("/v2/bookings", {"status": "new,cancelled", **HISTORY})
    assert response.status_code == 400
    assert response.json()["success"] is False
    assert api.get("/v2/bookings", {"status": "deleted"}).status_code == 400
    pid = sorted(api.sandbox.properties)[:2]
    both = api.all_bookings([("propertyId", pid[0]), ("propertyId", pid[1]), *HISTORY.items()])
    assert both and {b["propertyId"] for b in both} <= set(pid)


def test_without_a_date_filter_only_upcoming_stays_are_listed(api: Api, clock: ManualClock) -> None:
    today = datetime.fromtimestamp(clock.now(), UTC).date().isoformat()
    bare = api.all_bookings(every_status())
    assert bare and all(b["departure"] >= today for b in bare)
    history = api.all_bookings([*every_status(), *HISTORY.items()])
    assert len(history) > len(bare)
    # modifiedFrom alone does not lift the default (the adapter always sends arrivalFrom).
    modified = api.all_bookings([*every_status(), ("modifiedFrom", "2000-01-01T00:00:00")])
    assert len(modified) == len(bare)


def test_modified_from_returns_only_bookings_changed_since(api: Api, clock: ManualClock) -> None:
    clock.advance(3600)
    changed = set(api.sandbox.modify_bookings(3))
    since = datetime.fromtimestamp(clock.now() - 60, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    found = api.all_bookings([*every_status(), *HISTORY.items(), ("modifiedFrom", since)])
    assert {b["id"] for b in found} == changed
    assert api.get("/v2/bookings", {"modifiedFrom": "yesterday"}).status_code == 400


def test_guests_and_invoice_items_appear_only_when_included(api: Api) -> None:
    params = [*every_status(), *HISTORY.items()]
    plain = api.get("/v2/bookings", params).json()["data"]
    assert all("guests" not in b and "invoiceItems" not in b for b in plain)
    rich = api.get(
        "/v2/bookings", [*params, ("includeGuests", "true"), ("includeInvoiceItems", "true")]
    ).json()["data"]
    assert any(b["guests"] for b in rich) and any(b["invoiceItems"] for b in rich)
    # Unknown flags are ignored silently.
    assert api.get("/v2/bookings", [*params, ("includeCancelled", "true")]).status_code == 200


def test_generated_bookings_follow_the_documented_shapes(api: Api) -> None:
    for booking in api.sandbox.bookings.values():
        assert booking["status"] in BOOKING_STATUSES
        assert booking["propertyId"] in api.sandbox.properties
        assert ISO_UTC.match(booking["bookingTime"]) and ISO_UTC.match(booking["modifiedTime"])
        assert booking["bookingTime"] <= booking["modifiedTime"] < "2026-01-01T00:00:00Z"
        assert booking["arrival"] < booking["departure"]
        if booking["status"] == "black":
            assert booking["firstName"] == "" and booking["price"] == 0
    cancelled = [b for b in api.sandbox.bookings.values() if b["status"] == "cancelled"]
    assert any(b["cancelTime"] is None for b in cancelled)  # observed on ~20 %
    assert any(b["cancelTime"] for b in cancelled)


# --------------------------------------------------------------------------- properties


def test_properties_nest_room_types_and_hide_inactive_ones_unless_all_rooms(api: Api) -> None:
    default = api.get("/v2/properties").json()
    assert default["type"] == "property" and default["pages"]["nextPageLink"] is None
    every = api.get("/v2/properties", {"includeAllRooms": "true"}).json()["data"]
    rooms = sum(len(p["roomTypes"]) for p in default["data"])
    assert rooms < sum(len(p["roomTypes"]) for p in every)
    prop = every[0]
    assert prop["account"] == {"ownerId": SANDBOX_OWNER_ID}
    assert re.match(r"^[A-Z]{2}$", prop["country"]) and re.match(r"^[A-Z]{3}$", prop["currency"])
    assert re.match(r"^\d{2}:\d{2}$", prop["checkInStart"])
    assert all(r["propertyId"] == prop["id"] for r in prop["roomTypes"])
    one = api.get("/v2/properties", [("id", prop["id"])]).json()["data"]
    assert [p["id"] for p in one] == [prop["id"]]


# --------------------------------------------------------------------------- determinism, mutations


def test_same_seed_generates_the_same_account(clock: ManualClock) -> None:
    a, b = make_api(clock).sandbox, make_api(clock).sandbox
    assert a.properties == b.properties and a.bookings == b.bookings
    c = make_api(clock, seed=7).sandbox
    assert c.bookings != a.bookings


def test_mutations_are_stamped_with_the_clock(api: Api, clock: ManualClock) -> None:
    clock.advance(500)
    stamp = datetime.fromtimestamp(clock.now(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    state = api.sandbox
    (added,) = state.add_bookings(1)
    assert state.bookings[added]["bookingTime"] == stamp == state.bookings[added]["modifiedTime"]
    (changed,) = state.modify_bookings(1)
    assert state.bookings[changed]["modifiedTime"] == stamp
    state.cancel_booking(changed)
    assert state.bookings[changed]["status"] == "cancelled"
    assert state.bookings[changed]["cancelTime"] == stamp


def test_revoking_everything_invalidates_issued_tokens(api: Api) -> None:
    api.sandbox.revoke_all_tokens()
    assert api.get("/v2/properties").status_code == 401


def test_new_invite_codes_can_be_generated_for_reconnects(clock: ManualClock) -> None:
    api = make_api(clock)
    code = api.sandbox.new_invite_code()
    assert api.request("GET", "/v2/authentication/setup", {"code": code}).status_code == 200


def test_mounted_sandbox_offers_reusable_credentials_and_relaxes_credits(
    clock: ManualClock,
) -> None:
    mounted = build_sandbox(SandboxOptions(seed=1, listings=3, reservations=20, clock=clock))
    assert mounted.provider == "beds24" and mounted.api_path == "/v2"
    assert mounted.credentials == {"refresh_token": SANDBOX_REFRESH_TOKEN}
    assert mounted.extra["invite_code"] == SANDBOX_INVITE_CODE
    state = mounted.state
    assert isinstance(state, Beds24Sandbox)
    assert (len(state.properties), len(state.bookings)) == (3, 20)
    assert state.config.credit_limit == 100.0
    relaxed = build_sandbox(SandboxOptions(relaxed=True, clock=clock)).state
    assert isinstance(relaxed, Beds24Sandbox)
    api = Api(relaxed)
    api.login()
    response = api.get("/v2/properties")
    assert not any(name in response.headers for name in CREDIT_HEADERS)


def test_unknown_paths_answer_the_error_envelope(api: Api) -> None:
    response = api.get("/v2/nothing")
    assert response.status_code == 404
    assert response.json()["success"] is False and response.json()["code"] == 404


# ------------------------------------------------------------------ real-account shapes


def test_default_bookings_show_the_price_and_name_shapes_of_real_accounts(
    clock: ManualClock,
) -> None:
    sandbox = Beds24Sandbox(Beds24SandboxConfig(clock=clock, bookings=600))
    bookings = [b for b in sandbox.bookings.values() if b["status"] != "black"]

    def charges(b: dict[str, Any]) -> float:
        return round(sum(i["lineTotal"] for i in b["invoiceItems"] if i["type"] == "charge"), 2)

    direct_zero = [b for b in bookings if b["channel"] == "direct" and b["price"] == 0]
    assert direct_zero and all(charges(b) > 0 for b in direct_zero)
    payouts = [b for b in bookings if b["channel"] == "airbnb" and 0 < b["price"] < charges(b)]
    assert payouts
    assert any(i["type"] == "payment" for b in bookings for i in b["invoiceItems"])
    disagree = sum(b["price"] != charges(b) for b in bookings) / len(bookings)
    assert 0.1 < disagree < 0.6  # 8 of 19 in the real sample
    whole = [b for b in bookings if " " in b["firstName"] and not b["lastName"]]
    assert whole
    assert any(b["mobile"].startswith("0") for b in bookings)
