"""The Lodgify emulator against providers/lodgify.md (section 9), in-process, no sleeps."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from pms_cli.sandbox.common import SANDBOX_EPOCH, ManualClock
from pms_cli.sandbox.lodgify import (
    AUTH_DENIED_MESSAGE,
    OWNER_EMAIL,
    SANDBOX_API_KEY,
    LodgifySandbox,
    LodgifySandboxConfig,
    build_sandbox,
)
from pms_cli.sandbox.server import SandboxOptions, build

FIXTURES = Path(__file__).parent.parent / "fixtures" / "lodgify"
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z?$")
ALL = {"stayFilter": "All", "trash": "All", "includeExternal": "true", "includeCount": "true"}


class Api:
    """Synchronous facade over httpx.ASGITransport, so tests stay plain functions."""

    def __init__(self, sandbox: LodgifySandbox, key: str | None = SANDBOX_API_KEY) -> None:
        self.sandbox, self.key = sandbox, key

    def get(self, path: str, key: str | None = None, **params: Any) -> httpx.Response:
        return self.many(path, 1, key, **params)[0]

    def many(
        self, path: str, n: int, key: str | None = None, **params: Any
    ) -> list[httpx.Response]:
        key = key or self.key
        headers = {"X-ApiKey": key} if key else {}

        async def send() -> list[httpx.Response]:
            transport = httpx.ASGITransport(app=self.sandbox.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
                return [await client.get(path, params=params, headers=headers) for _ in range(n)]

        return asyncio.run(send())

    def items(self, path: str, **params: Any) -> list[dict[str, Any]]:
        """Every record of a list endpoint, walking page=1..n."""
        out: list[dict[str, Any]] = []
        for page in range(1, 1000):
            body = self.get(path, **(params | {"page": page, "size": 50})).json()
            if not body["items"]:
                return out
            out.extend(body["items"])
        raise AssertionError("pagination did not terminate")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def make(clock: ManualClock, **overrides: Any) -> LodgifySandbox:
    return LodgifySandbox(LodgifySandboxConfig(clock=clock, **({"rate_limit": None} | overrides)))


@pytest.fixture
def api(clock: ManualClock) -> Api:
    return Api(make(clock))


def ids(items: list[dict[str, Any]]) -> set[int]:
    return {item["id"] for item in items}


# ------------------------------------------------------------------ authentication


def test_missing_api_key_gets_the_documented_401_envelope(api: Api) -> None:
    response = Api(api.sandbox, key=None).get("/v2/properties")
    assert response.status_code == 401
    body = response.json()
    documented = json.loads((FIXTURES / "error_401.json").read_text())
    assert set(body) == set(documented)
    assert body["message"] == AUTH_DENIED_MESSAGE
    assert body["code"] == "NotAuthorized"
    assert api.sandbox.stats.auth_failures == 1


def test_wrong_api_key_is_rejected_and_the_right_one_accepted(api: Api) -> None:
    assert api.get("/v2/properties", key="not-the-key").status_code == 401
    assert api.get("/v2/properties").status_code == 200


def test_rotating_the_key_invalidates_the_old_one(api: Api) -> None:
    new = api.sandbox.rotate_api_key("fresh-key")
    assert api.get("/v2/properties").status_code == 401
    assert api.get("/v2/properties", key=new).status_code == 200


# ------------------------------------------------------------------ envelope and paging


def test_count_is_null_unless_include_count_is_true(api: Api) -> None:
    plain = api.get("/v2/properties").json()
    assert plain["count"] is None and len(plain["items"]) == 10
    counted = api.get("/v2/properties", includeCount="true").json()
    assert counted["count"] == 10


def test_an_empty_result_has_null_items_and_a_page_past_the_end_an_empty_list(api: Api) -> None:
    future = (SANDBOX_EPOCH + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    empty = api.get("/v2/properties", includeCount="true", updatedSince=future).json()
    assert empty == {"count": 0, "items": None}
    past_end = api.get("/v2/properties", includeCount="true", page=9, size=5).json()
    assert past_end == {"count": 10, "items": []}


def test_page_and_size_walk_every_booking_once_in_id_order(api: Api) -> None:
    pages = [
        api.get("/v2/reservations/bookings", **(ALL | {"page": p, "size": 7})).json()["items"]
        for p in range(1, 32)
    ]
    walked = [b["id"] for page in pages for b in page]
    assert len(walked) == 200 and walked == sorted(api.sandbox.bookings)
    assert all(len(page) == 7 for page in pages[:28])


def test_size_defaults_to_fifty_and_larger_sizes_are_clamped_to_fifty(api: Api) -> None:
    assert len(api.get("/v2/reservations/bookings", **ALL).json()["items"]) == 50
    assert len(api.get("/v2/reservations/bookings", **ALL, size=500).json()["items"]) == 50


@pytest.mark.parametrize(
    "params",
    [{"page": "0"}, {"page": "two"}, {"size": "0"}, {"includeCount": "yes"},
     {"stayFilter": "Tomorrow"}, {"trash": "maybe"}, {"updatedSince": "last week"},
     {"stayFilter": "ArrivalDate"}],
)  # fmt: skip
def test_invalid_query_values_get_a_400_error_envelope(api: Api, params: dict[str, str]) -> None:
    response = api.get("/v2/reservations/bookings", **params)
    assert response.status_code == 400
    assert response.json()["code"] in ("ArgumentError", "ValidationError")


# ------------------------------------------------------------------ booking filters


def test_default_listing_hides_past_trashed_and_external_bookings(api: Api) -> None:
    everything = api.items("/v2/reservations/bookings", **ALL)
    default = api.items("/v2/reservations/bookings")
    today = "2026-01-01"
    assert len(everything) == 200
    assert default and len(default) < 200
    assert all(b["arrival"] >= today and not b["is_deleted"] for b in default)
    assert not ids(default) & api.sandbox.external


def test_stay_filters_split_bookings_by_the_clock_date(api: Api, clock: ManualClock) -> None:
    clock.set(datetime(2025, 6, 15, 12, tzinfo=UTC).timestamp())
    everything = {"trash": "All", "includeExternal": "true"}
    split = {
        name: api.items("/v2/reservations/bookings", stayFilter=name, **everything)
        for name in ("Upcoming", "Current", "Historic")
    }
    assert all(split.values())
    assert all(b["arrival"] >= "2025-06-15" for b in split["Upcoming"])
    assert all(b["arrival"] <= "2025-06-15" < b["departure"] for b in split["Current"])
    assert all(b["departure"] < "2025-06-15" for b in split["Historic"])
    union = ids(split["Upcoming"]) | ids(split["Current"]) | ids(split["Historic"])
    assert union == set(api.sandbox.bookings)


def test_arrival_and_departure_date_filters_match_that_day(api: Api) -> None:
    sample = api.sandbox.bookings[min(api.sandbox.bookings)]
    arriving = api.items(
        "/v2/reservations/bookings",
        **(ALL | {"stayFilter": "arrivaldate", "stayFilterDate": sample["arrival"]}),
    )
    assert sample["id"] in ids(arriving)
    assert {b["arrival"] for b in arriving} == {sample["arrival"]}
    leaving = api.items(
        "/v2/reservations/bookings",
        **(
            ALL
            | {"stayFilter": "DepartureDate", "stayFilterDate": sample["departure"] + "T00:00:00Z"}
        ),
    )
    assert {b["departure"] for b in leaving} == {sample["departure"]}


def test_trash_filter_shows_live_trashed_or_all_bookings(api: Api) -> None:
    base = {"stayFilter": "All", "includeExternal": "true"}
    live = api.items("/v2/reservations/bookings", **base)
    trashed = api.items("/v2/reservations/bookings", **base, trash="True")
    assert trashed and all(b["is_deleted"] for b in trashed)
    assert not any(b["is_deleted"] for b in live)
    assert len(live) + len(trashed) == 200


def test_external_ical_bookings_appear_only_with_include_external(api: Api) -> None:
    base = {"stayFilter": "All", "trash": "All"}
    without = api.items("/v2/reservations/bookings", **base)
    with_external = api.items("/v2/reservations/bookings", **base, includeExternal="True")
    assert api.sandbox.external
    assert ids(with_external) - ids(without) == api.sandbox.external
    assert all(api.sandbox.bookings[i]["source"] == "ICal" for i in api.sandbox.external)


def test_updated_since_returns_only_bookings_touched_at_or_after_it(
    api: Api, clock: ManualClock
) -> None:
    clock.advance(3600)
    changed = set(api.sandbox.modify_bookings(3))
    stamp = datetime.fromtimestamp(clock.now(), UTC)
    for since in (stamp.strftime("%Y-%m-%dT%H:%M:%SZ"), stamp.strftime("%Y-%m-%dT%H:%M:%S")):
        assert ids(api.items("/v2/reservations/bookings", **ALL, updatedSince=since)) == changed
    day = api.items("/v2/reservations/bookings", **ALL, updatedSince=stamp.date().isoformat())
    assert ids(day) == changed


# ------------------------------------------------------------------ detail endpoints


def test_property_booking_and_room_details_use_the_list_shapes(api: Api) -> None:
    pid, bid = min(api.sandbox.properties), min(api.sandbox.bookings)
    assert api.get(f"/v2/properties/{pid}").json() == api.sandbox.properties[pid]
    assert api.get(f"/v2/reservations/bookings/{bid}").json() == api.sandbox.bookings[bid]
    rooms = api.get(f"/v2/properties/{pid}/rooms").json()
    assert [r["id"] for r in rooms] == [r["id"] for r in api.sandbox.properties[pid]["rooms"]]
    assert {"max_people", "bedrooms", "bathrooms", "currency"} <= set(rooms[0])


@pytest.mark.parametrize(
    "path", ["/v2/properties/1", "/v2/properties/1/rooms", "/v2/reservations/bookings/1"]
)
def test_unknown_ids_get_404_not_found(api: Api, path: str) -> None:
    response = api.get(path)
    assert response.status_code == 404
    body = response.json()
    assert set(body) == set(json.loads((FIXTURES / "error_404.json").read_text()))
    assert body["code"] == "NotFound" and body["event_id"] is None
    assert re.fullmatch(r"[0-9a-f-]{36}", body["correlation_id"])


# ------------------------------------------------------------------ rate limit


def test_the_751st_request_in_a_minute_gets_429_and_the_window_then_reopens(
    clock: ManualClock,
) -> None:
    api = Api(make(clock, rate_limit=(750, 60.0)))
    responses = api.many("/v2/properties", 751, size=1)
    assert [r.status_code for r in responses[:750]] == [200] * 750
    limited = responses[750]
    assert limited.status_code == 429
    assert "750 requests per 60 seconds" in limited.json()["message"]
    assert "retry-after" not in limited.headers  # none is documented
    assert api.sandbox.stats.rate_limited == 1
    clock.advance(60)
    assert api.get("/v2/properties").status_code == 200


def test_rate_limit_counts_per_key_and_can_send_retry_after(clock: ManualClock) -> None:
    api = Api(make(clock, rate_limit=(2, 10.0), send_retry_after=True))
    assert [r.status_code for r in api.many("/v2/properties", 3)] == [200, 200, 429]
    assert api.get("/v2/properties").headers["retry-after"] == "10"
    assert api.get("/v2/properties", key="someone-else").status_code == 401  # own bucket


# ------------------------------------------------------------------ data


def test_data_is_deterministic_per_seed(clock: ManualClock) -> None:
    a, b, c = make(clock), make(clock), make(clock, seed=7)
    assert a.bookings == b.bookings and a.properties == b.properties
    assert a.bookings != c.bookings


def test_generated_records_use_the_documented_field_names_and_formats(api: Api) -> None:
    documented_booking = json.loads((FIXTURES / "booking.json").read_text())
    documented_property = json.loads((FIXTURES / "property.json").read_text())
    for booking in api.sandbox.bookings.values():
        assert set(booking) == set(documented_booking)
        assert date.fromisoformat(booking["arrival"]) < date.fromisoformat(booking["departure"])
        assert TIMESTAMP.match(booking["created_at"]) and TIMESTAMP.match(booking["updated_at"])
        assert booking["status"] in {"Open", "Unavailable", "Tentative", "Booked", "Declined"}
    for prop in api.sandbox.properties.values():
        assert set(prop) - {"country_code"} == set(documented_property)


def test_generated_timestamps_precede_the_sandbox_epoch(api: Api) -> None:
    epoch = SANDBOX_EPOCH.strftime("%Y-%m-%dT%H:%M:%S")
    stamps = [b[k] for b in api.sandbox.bookings.values() for k in ("created_at", "updated_at")]
    stamps += [p["updated_at"] for p in api.sandbox.properties.values()]
    assert max(stamps) < epoch


def test_every_status_blocks_declines_and_trash_appear_in_generated_data(api: Api) -> None:
    bookings = api.sandbox.bookings.values()
    assert {b["status"] for b in bookings} == {
        "Open",
        "Unavailable",
        "Tentative",
        "Booked",
        "Declined",
    }
    assert all(b["canceled_at"] for b in bookings if b["status"] == "Declined")
    closures = [b for b in bookings if b["status"] == "Unavailable"]
    # The owner's own label (and e-mail on some) sits where a guest would.
    assert all(b["guest"]["name"] for b in closures)
    assert {b["guest"]["email"] for b in closures} == {OWNER_EMAIL, None}
    assert any(b["is_deleted"] for b in bookings)
    assert any("guest_breakdown" not in b["rooms"][0] for b in bookings)  # deprecated `people`


# ------------------------------------------------------------------ mutations


def test_mutations_are_stamped_with_the_sandbox_clock(api: Api, clock: ManualClock) -> None:
    clock.set(SANDBOX_EPOCH.timestamp() + 86_400)
    stamp = "2026-01-02T00:00:00Z"
    sandbox = api.sandbox
    [new] = sandbox.add_bookings(1, status="Booked")
    assert sandbox.bookings[new]["created_at"] == stamp
    assert sandbox.bookings[new]["updated_at"].rstrip("Z") == stamp.rstrip("Z")  # may be naive
    target = next(b for b, v in sandbox.bookings.items() if v["status"] == "Booked" and b != new)
    sandbox.cancel_booking(target)
    assert sandbox.bookings[target]["status"] == "Declined"
    assert sandbox.bookings[target]["canceled_at"] == stamp
    sandbox.trash_booking(new)
    assert sandbox.bookings[new]["is_deleted"] is True
    pid = min(sandbox.properties)
    block = sandbox.block_dates(pid, date(2026, 2, 1), date(2026, 2, 5))
    assert sandbox.bookings[block]["status"] == "Unavailable"
    assert (sandbox.bookings[block]["arrival"], sandbox.bookings[block]["departure"]) == (
        "2026-02-01",
        "2026-02-05",
    )
    sandbox.modify_property(pid, name="Renamed")
    assert sandbox.properties[pid]["updated_at"] == stamp
    sandbox.delete_property(pid)
    assert api.get(f"/v2/properties/{pid}").status_code == 404


# ------------------------------------------------------------------ mounting


def test_build_sandbox_mounts_under_lodgify_with_working_credentials() -> None:
    app, [mounted] = build(SandboxOptions(listings=3, reservations=20, relaxed=True), ["lodgify"])
    assert mounted.api_path == "" and mounted.credentials == {"api_key": SANDBOX_API_KEY}
    assert mounted.state.config.rate_limit is None

    async def fetch() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
            return await client.get(
                "/lodgify/v2/reservations/bookings",
                params=ALL,
                headers={"X-ApiKey": mounted.credentials["api_key"]},
            )

    assert asyncio.run(fetch()).json()["count"] == 20


def test_unrelaxed_sandbox_enforces_the_documented_limit() -> None:
    mounted = build_sandbox(SandboxOptions())
    assert mounted.state.config.rate_limit == (750, 60.0)
