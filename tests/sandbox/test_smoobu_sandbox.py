"""The Smoobu emulator against providers/smoobu.md (section 9), in-process, no sleeps."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from pms_cli.sandbox.common import SANDBOX_EPOCH, ManualClock
from pms_cli.sandbox.server import SandboxOptions, build
from pms_cli.sandbox.smoobu import (
    CHANNELS,
    SANDBOX_API_KEY,
    SANDBOX_API_SECRET,
    SANDBOX_USER,
    SmoobuSandbox,
    SmoobuSandboxConfig,
    build_sandbox,
    signature_for,
)

VECTORS = json.loads(
    (Path(__file__).parent.parent / "fixtures" / "smoobu" / "hmac_vectors.json").read_text()
)
MODIFIED_AT = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
CREATED_AT = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}$")
# The list spells the modification time as Smoobu's own list example does.
BOOKING_FIELDS = {
    "id", "reference-id", "type", "arrival", "departure", "created-at", "modified-at",
    "apartment", "channel", "guest-name", "firstname", "lastname", "email", "phone", "adults",
    "children", "check-in", "check-out", "notice", "assistant-notice", "price", "price-paid",
    "prepayment", "prepayment-paid", "deposit", "deposit-paid", "commission-included",
    "language", "guest-app-url", "is-blocked-booking", "guestId",
}  # fmt: skip


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Api:
    """Synchronous client over httpx.ASGITransport that signs like a Smoobu client would."""

    def __init__(self, sandbox: SmoobuSandbox, clock: ManualClock) -> None:
        self.sandbox, self.clock = sandbox, clock
        self.mode = "hmac"

    def send(self, method: str, url: str, headers: dict[str, str] | None = None) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.sandbox.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as c:
                return await c.request(method, url, headers=headers or {})

        return asyncio.run(go())

    def signed_headers(
        self, path: str, query: str = "", nonce: str | None = None
    ) -> dict[str, str]:
        cfg = self.sandbox.config
        stamp, nonce = iso(self.clock.now()), nonce or str(uuid.uuid4())
        signature = signature_for(
            cfg.api_secret, cfg.api_key, "GET", path, query, b"", stamp, nonce
        )
        return {
            "X-API-Key": cfg.api_key,
            "X-Timestamp": stamp,
            "X-Nonce": nonce,
            "X-Signature": signature,
        }

    def get(self, path: str, query: str = "") -> httpx.Response:
        url = f"{path}?{query}" if query else path
        if self.mode == "legacy":
            return self.send("GET", url, {"Api-Key": self.sandbox.config.api_key})
        return self.send("GET", url, self.signed_headers(path, query))


def make(clock: ManualClock, **overrides: Any) -> Api:
    settings: dict[str, Any] = {"rate_limit": None} | overrides
    return Api(SmoobuSandbox(SmoobuSandboxConfig(clock=clock, **settings)), clock)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(SANDBOX_EPOCH.timestamp() + 30 * 86_400)


@pytest.fixture
def api(clock: ManualClock) -> Api:
    return make(clock)


def all_bookings(api: Api, query: str = "") -> list[dict[str, Any]]:
    out, page = [], 1
    while True:
        sep = "&" if query else ""
        body = api.get("/api/reservations", f"{query}{sep}page={page}&pageSize=100").json()
        out += body["bookings"]
        if page >= body["page_count"]:
            return out
        page += 1


# --------------------------------------------------------------------------- auth


def test_sandbox_verifier_accepts_the_documented_get_test_vector(clock: ManualClock) -> None:
    clock.set(datetime(2026, 4, 1, 12, tzinfo=UTC).timestamp())
    api = make(clock, api_key=VECTORS["api_key"], api_secret=VECTORS["secret"])
    headers = {
        "X-API-Key": VECTORS["api_key"],
        "X-Timestamp": VECTORS["timestamp"],
        "X-Nonce": VECTORS["nonce"],
        "X-Signature": VECTORS["get"]["signature"],
    }
    response = api.send("GET", "/api/reservations?to=2026-04-10&from=2026-04-01", headers)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("case", ["post", "get"])
def test_sandbox_signature_function_matches_both_test_vectors(case: str) -> None:
    v = VECTORS[case]
    assert hashlib.sha256(v["body"].encode()).hexdigest() == v["body_sha256"]
    signature = signature_for(
        VECTORS["secret"],
        VECTORS["api_key"],
        v["method"],
        v["path"],
        v["query"],
        v["body"].encode(),
        VECTORS["timestamp"],
        VECTORS["nonce"],
    )
    assert signature == v["signature"]


def test_signed_request_is_accepted_and_counted(api: Api) -> None:
    response = api.get("/api/me")
    assert response.status_code == 200
    assert response.json() == SANDBOX_USER
    assert api.sandbox.stats.per_path["GET /api/me"] == 1


def test_legacy_api_key_header_is_refused_by_default_and_accepted_only_when_switched_on(
    api: Api,
) -> None:
    api.mode = "legacy"
    response = api.get("/api/me")
    assert response.status_code == 401  # HMAC signing is mandatory since 2026-09-25
    assert response.json()["title"] == "Unauthorized"
    assert api.sandbox.stats.auth_failures == 1
    api.sandbox.config.accept_legacy = True  # an account from before the sunset
    assert api.get("/api/me").status_code == 200


def test_missing_or_wrong_key_is_a_401_problem_body(api: Api) -> None:
    missing = api.send("GET", "/api/me")
    assert missing.status_code == 401
    assert missing.json() == {"status": 401, "title": "Unauthorized", "detail": "Missing API key"}
    assert api.send("GET", "/api/me", {"API-KEY": "nope"}).status_code == 401


def test_bad_signature_is_rejected(api: Api) -> None:
    headers = api.signed_headers("/api/me")
    headers["X-Signature"] = base64.b64encode(b"x" * 32).decode()
    response = api.send("GET", "/api/me", headers)
    assert (response.status_code, response.json()["detail"]) == (401, "Invalid signature")


def test_signature_covers_the_query_string(api: Api) -> None:
    headers = api.signed_headers("/api/reservations", "page=1")
    assert api.send("GET", "/api/reservations?page=2", headers).status_code == 401


def test_query_order_does_not_matter_because_pairs_are_sorted(api: Api) -> None:
    headers = api.signed_headers("/api/reservations", "pageSize=5&page=2")
    assert api.send("GET", "/api/reservations?page=2&pageSize=5", headers).status_code == 200


def test_hex_encoded_signature_is_rejected_since_the_docs_say_base64(api: Api) -> None:
    cfg = api.sandbox.config
    headers = api.signed_headers("/api/me")
    lines = [
        "GET", "/api/me", "", headers["X-Timestamp"], headers["X-Nonce"],
        hashlib.sha256(b"").hexdigest(), cfg.api_key,
    ]  # fmt: skip
    mac = hmac.new(cfg.api_secret.encode(), "\n".join(lines).encode(), hashlib.sha256)
    assert base64.b64encode(mac.digest()).decode() == headers["X-Signature"]
    headers["X-Signature"] = mac.hexdigest()
    assert api.send("GET", "/api/me", headers).status_code == 401


@pytest.mark.parametrize("skew", [-301.0, 301.0])
def test_timestamps_outside_the_300_second_window_are_rejected(
    api: Api, clock: ManualClock, skew: float
) -> None:
    headers = api.signed_headers("/api/me")
    clock.advance(-skew)
    response = api.send("GET", "/api/me", headers)
    assert response.status_code == 401
    assert "window" in response.json()["detail"]


def test_timestamp_skew_within_tolerance_is_accepted(api: Api, clock: ManualClock) -> None:
    headers = api.signed_headers("/api/me")
    clock.advance(299)
    assert api.send("GET", "/api/me", headers).status_code == 200


def test_malformed_timestamp_is_rejected(api: Api) -> None:
    headers = api.signed_headers("/api/me")
    headers["X-Timestamp"] = headers["X-Timestamp"].replace("Z", ".000Z")
    assert api.send("GET", "/api/me", headers).status_code == 401


def test_a_reused_nonce_is_rejected(api: Api) -> None:
    headers = api.signed_headers("/api/me")
    assert api.send("GET", "/api/me", headers).status_code == 200
    replay = api.send("GET", "/api/me", headers)
    assert (replay.status_code, replay.json()["detail"]) == (401, "Nonce already used")


def test_signed_headers_must_come_together(api: Api) -> None:
    headers = api.signed_headers("/api/me")
    del headers["X-Nonce"]
    assert api.send("GET", "/api/me", headers).status_code == 401


def test_rotated_credentials_invalidate_the_old_ones(api: Api) -> None:
    old = api.signed_headers("/api/me")
    api.sandbox.rotate_credentials("usr_live_new", "new_secret")
    assert api.send("GET", "/api/me", old).status_code == 401
    assert api.get("/api/me").status_code == 200


# --------------------------------------------------------------------------- rate limits


def test_rate_limit_answers_429_with_headers_and_problem_body(clock: ManualClock) -> None:
    api = make(clock, rate_limit=(3, 60.0))
    first = api.get("/api/me")
    assert first.headers["X-RateLimit-Limit"] == "3"
    assert first.headers["X-RateLimit-Remaining"] == "2"
    clock.advance(10)
    api.get("/api/me")
    api.get("/api/me")
    limited = api.get("/api/me")
    assert limited.status_code == 429
    assert limited.json()["status"] == 429
    assert limited.json()["title"] == "Too Many Requests"
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert int(limited.headers["X-RateLimit-Retry-After"]) == int(clock.now() - 10 + 60)
    assert "Retry-After" not in limited.headers
    assert api.sandbox.stats.rate_limited == 1
    clock.advance(50)
    assert api.get("/api/me").status_code == 200


def test_standard_retry_after_can_be_sent_too(clock: ManualClock) -> None:
    api = make(clock, rate_limit=(1, 60.0), send_retry_after=True)
    api.get("/api/me")
    clock.advance(15)
    assert api.get("/api/me").headers["Retry-After"] == "45"


def test_the_documented_limit_is_1000_per_minute_per_key(clock: ManualClock) -> None:
    config = SmoobuSandboxConfig(clock=clock)
    assert config.rate_limit == (1000, 60.0)
    mounted = build_sandbox(SandboxOptions(clock=clock, relaxed=True))
    assert mounted.state.config.rate_limit is None


# --------------------------------------------------------------------------- apartments


def test_apartment_list_has_only_id_and_name(api: Api) -> None:
    body = api.get("/api/apartments").json()
    assert list(body) == ["apartments"]
    assert len(body["apartments"]) == 10
    assert all(set(a) == {"id", "name"} for a in body["apartments"])


def test_apartment_detail_has_the_documented_shape_and_string_numbers(api: Api) -> None:
    apartment_id = next(iter(api.sandbox.apartments))
    detail = api.get(f"/api/apartments/{apartment_id}").json()
    assert "id" not in detail and "name" not in detail
    assert {"location", "timeZone", "rooms", "currency", "price", "type"} <= set(detail)
    assert isinstance(detail["location"]["latitude"], str)
    assert isinstance(detail["price"]["minimal"], str)
    assert len(detail["location"]["country"]) > 2  # a country name
    assert detail["rooms"]["maxOccupancy"] >= 2


def test_unknown_ids_and_paths_answer_404_problem_bodies(api: Api) -> None:
    for path in ("/api/apartments/1", "/api/reservations/1", "/api/guests/1"):
        response = api.get(path)
        assert response.status_code == 404
        assert response.json()["title"] == "Not Found"


# --------------------------------------------------------------------------- reservations


def test_reservation_envelope_uses_snake_case_paging_keys_and_default_page_size(api: Api) -> None:
    body = api.get("/api/reservations", "showCancellation=true").json()
    assert set(body) == {"page_count", "page_size", "total_items", "page", "bookings"}
    assert body["page_size"] == 25
    assert body["total_items"] == 200
    assert body["page_count"] == 8
    assert len(body["bookings"]) == 25


def test_page_size_is_clamped_to_100(api: Api) -> None:
    body = api.get("/api/reservations", "pageSize=500&showCancellation=1").json()
    assert (body["page_size"], len(body["bookings"]), body["page_count"]) == (100, 100, 2)


def test_paging_past_the_end_returns_an_empty_page(api: Api) -> None:
    body = api.get("/api/reservations", "page=99&pageSize=100").json()
    assert body["bookings"] == []
    assert body["page"] == 99


def test_empty_results_have_page_count_zero(api: Api) -> None:
    body = api.get("/api/reservations", "arrivalFrom=2099-01-01").json()
    assert (body["page_count"], body["total_items"], body["bookings"]) == (0, 0, [])


def test_bookings_carry_the_documented_kebab_and_camel_case_fields(api: Api) -> None:
    bookings = all_bookings(api, "showCancellation=true")
    assert len(bookings) == 200
    for b in bookings:
        assert set(b) == BOOKING_FIELDS
        assert MODIFIED_AT.match(b["modified-at"])
        assert CREATED_AT.match(b["created-at"])
        assert b["type"] in ("reservation", "modification of booking", "cancellation")
        assert b["price-paid"] in ("Yes", "No")
        if not b["is-blocked-booking"]:
            assert b["channel"]["name"] == CHANNELS[b["channel"]["id"]]
            assert b["guestId"] in api.sandbox.guests


def test_cancellations_are_hidden_unless_asked_for(api: Api) -> None:
    default = all_bookings(api)
    assert all(b["type"] != "cancellation" for b in default)
    everything = all_bookings(api, "showCancellation=true")
    cancelled = [b for b in everything if b["type"] == "cancellation"]
    assert cancelled
    assert len(default) + len(cancelled) == len(everything)


def test_blocked_bookings_are_shown_unless_excluded(api: Api) -> None:
    blocked = [b for b in all_bookings(api) if b["is-blocked-booking"]]
    assert blocked
    assert all(b["guestId"] is None for b in blocked)
    assert not [b for b in all_bookings(api, "excludeBlocked=true") if b["is-blocked-booking"]]


def test_single_reservation_spells_the_modification_time_modified_at_in_camel_case(
    api: Api,
) -> None:
    listed = api.get("/api/reservations", "pageSize=1").json()["bookings"][0]
    single = api.get(f"/api/reservations/{listed['id']}").json()
    assert "modifiedAt" in single and "modified-at" not in single
    assert single["modifiedAt"] == listed["modified-at"]
    camel = make(api.clock, list_modified_key="modifiedAt")
    assert "modifiedAt" in camel.get("/api/reservations", "pageSize=1").json()["bookings"][0]


def test_filters_by_modification_creation_arrival_and_apartment(api: Api) -> None:
    everything = [
        {**b, "modifiedAt": b["modified-at"]} for b in all_bookings(api, "showCancellation=true")
    ]
    pivot = sorted(b["modifiedAt"] for b in everything)[150]
    day, minute = pivot[:10], pivot[:16]
    by_day = all_bookings(api, f"showCancellation=true&modifiedFrom={day}")
    assert {b["id"] for b in by_day} == {b["id"] for b in everything if b["modifiedAt"] >= day}
    by_minute = all_bookings(api, f"showCancellation=true&modifiedFrom={minute.replace(' ', '+')}")
    assert {b["id"] for b in by_minute} == {
        b["id"] for b in everything if b["modifiedAt"][:16] >= minute
    }
    created = all_bookings(api, f"showCancellation=true&created_to={day}")
    assert {b["id"] for b in created} == {
        b["id"] for b in everything if b["created-at"][:10] <= day
    }
    apartment = everything[0]["apartment"]["id"]
    mine = all_bookings(api, f"showCancellation=true&apartmentId={apartment}")
    assert mine and all(b["apartment"]["id"] == apartment for b in mine)
    arriving = all_bookings(
        api, "showCancellation=true&arrivalFrom=2025-06-01&arrivalTo=2025-06-30"
    )
    assert all("2025-06-01" <= b["arrival"] <= "2025-06-30" for b in arriving)


def test_invalid_filter_values_are_422_with_validation_messages(api: Api) -> None:
    response = api.get("/api/reservations", "showCancellation=maybe")
    assert response.status_code == 422
    body = response.json()
    assert body["detail"] == "Failed Validation"
    assert "showCancellation" in body["validation_messages"]
    assert api.get("/api/reservations", "modifiedFrom=yesterday").status_code == 422
    assert api.get("/api/reservations", "pageSize=0").status_code == 422


def test_related_and_price_elements_appear_only_on_request(api: Api) -> None:
    plain = api.get("/api/reservations").json()["bookings"][0]
    assert "related" not in plain and "priceElements" not in plain
    rich = api.get("/api/reservations", "includeRelated=true&includePriceElements=true").json()
    first = rich["bookings"][0]
    assert isinstance(first["related"], list)
    assert first["priceElements"][0]["amount"] == first["price"]


def test_single_reservation_is_returned_even_when_cancelled(api: Api) -> None:
    cancelled = next(r for r in api.sandbox.reservations.values() if r["type"] == "cancellation")
    body = api.get(f"/api/reservations/{cancelled['id']}").json()
    assert body["type"] == "cancellation"


# --------------------------------------------------------------------------- guests


def test_guest_list_pages_in_camel_case_unlike_reservations(api: Api) -> None:
    body = api.get("/api/guests", "pageSize=100").json()
    assert set(body) == {"pageCount", "pageSize", "totalItems", "page", "guests"}
    assert body["totalItems"] == len(api.sandbox.guests)
    guest = body["guests"][0]
    assert {"id", "firstName", "lastName", "emails", "telephoneNumbers", "address"} <= set(guest)
    assert api.get(f"/api/guests/{guest['id']}").json() == guest


# --------------------------------------------------------------------------- data & mutations


def test_generated_data_is_deterministic_for_a_seed_and_before_the_epoch(
    clock: ManualClock,
) -> None:
    a = SmoobuSandbox(SmoobuSandboxConfig(clock=clock, seed=5))
    b = SmoobuSandbox(SmoobuSandboxConfig(clock=clock, seed=5))
    c = SmoobuSandbox(SmoobuSandboxConfig(clock=clock, seed=6))
    assert a.reservations == b.reservations and a.guests == b.guests
    assert a.reservations != c.reservations
    epoch = SANDBOX_EPOCH.strftime("%Y-%m-%d %H:%M:%S")
    assert all(r["modifiedAt"] < epoch for r in a.reservations.values())
    assert all(r["created-at"] <= r["modifiedAt"][:16] for r in a.reservations.values())


def test_mutations_are_stamped_with_the_clock_in_account_local_time(
    api: Api, clock: ManualClock
) -> None:
    clock.set(datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC).timestamp())
    sandbox = api.sandbox
    changed = sandbox.modify_bookings(2)
    added = sandbox.add_bookings(1)
    target = next(i for i, r in sandbox.reservations.items() if r["type"] == "reservation")
    sandbox.cancel_booking(target)
    local = "2026-03-01 13:00:00"  # UTC+1
    for booking_id in [*changed, *added, target]:
        assert sandbox.reservations[booking_id]["modifiedAt"] == local
    assert sandbox.reservations[added[0]]["created-at"] == local[:16]
    assert [b["type"] for b in (sandbox.reservations[i] for i in changed)] == [
        "modification of booking"
    ] * 2
    recent = all_bookings(api, "showCancellation=true&modifiedFrom=2026-03-01")
    assert {b["id"] for b in recent} == {*changed, *added, target}
    sandbox.delete_booking(added[0])
    actions = [w["action"] for w in sandbox.webhooks]
    assert actions == [
        "updateReservation",
        "updateReservation",
        "newReservation",
        "cancelReservation",
        "deleteReservation",
    ]
    assert all(w["user"] == SANDBOX_USER["id"] for w in sandbox.webhooks)


def test_a_price_element_moves_the_booking_and_its_webhook_names_element_and_booking(
    api: Api, clock: ManualClock
) -> None:
    sandbox = api.sandbox
    booking_id = next(i for i, r in sandbox.reservations.items() if r["type"] == "reservation")
    before = sandbox.reservations[booking_id]["price"]
    clock.advance(60)
    element = sandbox.add_price_element(booking_id, 40.0)
    res = sandbox.reservations[booking_id]
    assert res["price"] == round(before + 40.0, 2)
    assert res["modifiedAt"] == sandbox.local(clock.now())
    (hook,) = sandbox.webhooks
    assert hook["action"] == "priceElementCreated"
    assert hook["data"]["id"] == element != booking_id  # the element's own id
    assert hook["data"]["bookingId"] == booking_id
    apartment = sandbox.apartments[res["apartment"]["id"]]
    assert hook["data"]["currencyCode"] == apartment["currency"]


def test_online_check_in_sends_only_the_booking_id(api: Api) -> None:
    sandbox = api.sandbox
    booking_id = sorted(sandbox.reservations)[0]
    sandbox.complete_online_check_in(booking_id, "18:30")
    assert sandbox.reservations[booking_id]["check-in"] == "18:30"
    assert sandbox.webhooks == [
        {"action": "onlineCheckInUpdate", "user": SANDBOX_USER["id"],
         "data": {"bookingId": booking_id}}
    ]  # fmt: skip


def test_new_blocks_have_no_guest(api: Api) -> None:
    (block,) = api.sandbox.add_bookings(1, blocked=True)
    res = api.sandbox.reservations[block]
    assert res["is-blocked-booking"] is True
    assert res["guestId"] is None


def test_mounted_sandbox_offers_its_credentials_and_api_path(clock: ManualClock) -> None:
    app, mounted = build(SandboxOptions(clock=clock, listings=2, reservations=5), ["smoobu"])
    (smoobu,) = mounted
    assert smoobu.credentials == {"api_key": SANDBOX_API_KEY, "api_secret": SANDBOX_API_SECRET}
    assert smoobu.api_path == "/api"

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://s") as c:
            path = "/smoobu/api/apartments"
            return await c.get(path, headers=Api(smoobu.state, clock).signed_headers(path))

    response = asyncio.run(go())
    assert response.status_code == 200  # the signed path includes the mount prefix
    assert len(response.json()["apartments"]) == 2
