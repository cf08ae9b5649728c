"""Hostile deliveries (issue 15): ids that would escape the API path, refetches that answer
another record, card data in unparseable bodies, a store that is down, odd headers."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from typing import Any

import httpx
import pytest

from pms_cli.config import HttpSettings
from pms_cli.errors import ProviderError, StoreError
from pms_cli.http.client import HttpClient, NoAuth, api_path
from pms_cli.http.ratelimit import RateLimiter
from pms_cli.stores.base import WebhookEventRow
from pms_cli.webhooks.receiver import create_app
from tests.conftest import SharedClock
from tests.webhooks.conftest import RECEIVER, Rig
from tests.webhooks.test_verification import one_delivery


def replace_id(payload: Any, old: str, new: str) -> Any:
    """``payload`` with every value equal to ``old`` (as int or text) replaced by ``new``."""
    if isinstance(payload, dict):
        return {k: replace_id(v, old, new) for k, v in payload.items()}
    if isinstance(payload, list):
        return [replace_id(v, old, new) for v in payload]
    return new if str(payload) == old and not isinstance(payload, bool) else payload


def hostile_delivery(rig: Rig, hostile_id: str) -> Any:
    [created] = rig.create(1)
    hook = rig.sender.take()[0]
    body = json.dumps(replace_id(hook.payload, created, hostile_id)).encode()
    assert hostile_id.encode() in body
    return rig.post(body, hook.headers, url=hook.url)


@pytest.mark.parametrize(
    ("provider", "hostile_id"),
    [("smoobu", "../me"), ("hostaway", "../listings/40160"), ("beds24", "1/../../users")],
)
def test_a_webhook_id_that_is_not_the_providers_id_format_is_refused_with_400(
    rig_factory: Any, provider: str, hostile_id: str
) -> None:
    rig = rig_factory(provider)
    response = hostile_delivery(rig, hostile_id)
    assert response.status_code == 400
    assert rig.store.inbox_counts() == {"invalid": 1}
    assert rig.apply() == 0  # nothing to refetch
    assert rig.receiver.applier.stats.refetches == 0


def test_an_inbox_row_with_a_hostile_id_fails_without_any_request(rig_factory: Any) -> None:
    rig = rig_factory("smoobu")
    row = WebhookEventRow(
        id="e1",
        provider="smoobu",
        connection_id=rig.conn.id,
        organization_id=rig.conn.organization_id,
        dedupe_key="k1",
        payload={"change": {"resource": "bookings", "external_id": "../me", "action": ""}},
        received_at=rig.receiver.applier._now(),
    )
    assert rig.store.inbox_add(row)
    assert rig.apply() == 1
    (stored,) = rig.store.inbox_list()
    assert stored.status == "failed"
    assert "not a Smoobu id" in (stored.error or "")
    assert rig.receiver.applier.stats.refetches == 0


def test_a_refetch_that_answers_another_record_is_rejected_and_not_stored(
    rig_factory: Any,
) -> None:
    rig = rig_factory("lodgify")
    [created] = rig.create(1)
    # The API answers GET bookings/{created} with a record whose id is another one.
    rig.sandbox.bookings[int(created)]["id"] = 1
    assert rig.deliver() == [200]
    rig.apply()
    (row,) = rig.store.inbox_list()
    assert row.status == "failed"
    assert f"refetch of booking {created} answered 1" in (row.error or "")
    assert rig.bookings() == {}


# --- the HTTP layer quotes every segment built from data --------------------------------


def test_api_path_quotes_each_data_segment_and_refuses_dot_segments() -> None:
    assert api_path("reservations", "../me") == "reservations/..%2Fme"
    assert (
        api_path("v2/reservations/bookings", "12?x=1#y")
        == "v2/reservations/bookings/12%3Fx%3D1%23y"
    )
    assert api_path("listings", 40160) == "listings/40160"
    for bad in ("..", ".", ""):
        with pytest.raises(ProviderError):
            api_path("reservations", bad)


def test_a_quoted_segment_reaches_the_server_as_one_segment(clock: SharedClock) -> None:
    seen: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path)
        return httpx.Response(200, json={})

    async def go() -> None:
        async with HttpClient(
            "smoobu",
            "https://api.example.test/api",
            NoAuth(),
            RateLimiter(clock=clock),
            settings=HttpSettings(),
            clock=clock,
            transport=httpx.MockTransport(handler),
        ) as http:
            await http.get_json(api_path("reservations", "../me"))

    asyncio.run(go())
    assert seen == [b"/api/reservations/..%2Fme"]


# --- card data in an unparseable body ----------------------------------------------------

CARD_FORM = (
    b"bookid=&status=new&cardnumber=4111+1111+1111+1111&cardholder=Ana+Silva"
    b"&ccexpiry=12%2F29&cvv=737&note=paid+with+5555-5555-5555-4444"
)


def test_a_beds24_card_form_with_an_empty_bookid_is_kept_without_card_data(
    rig_factory: Any, pms: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    rig = rig_factory("beds24")
    token = rig.secrets()["webhook_token"].get_secret_value()
    url = f"{rig.url}?token={token}&bookid=&status=new"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    assert rig.post(CARD_FORM, headers, url=url).status_code == 400
    (row,) = rig.store.inbox_list()
    assert row.status == "invalid"
    assert row.payload["size"] == len(CARD_FORM)
    assert row.payload["content_type"] == "application/x-www-form-urlencoded"
    assert len(row.payload["sha256"]) == 64
    # What `pms logs --webhooks --json` prints from this store: no PAN, CVV or card field.
    monkeypatch.setenv("PMS_SQLITE_PATH", str(rig.store.path))
    result = pms("logs", "--webhooks", "--json")
    assert result.code == 0, result.stderr
    # Short fragments are checked in the printed payloads only: the ids around them are random
    # uuids, which contain "737" or "4111" now and then.
    (printed,) = result.json()
    for payload in (json.dumps(printed["payload"]), json.dumps(row.payload)):
        for secret in ("4111", "5555", "737", "Ana+Silva", "12%2F29"):
            assert secret not in payload
    for whole in ("4111+1111+1111+1111", "5555-5555-5555-4444", "cvv=737", "Ana+Silva"):
        assert whole not in result.stdout
    assert "bookid=&status=new" in row.payload["excerpt"]


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ('{"card": {"number": "4111 1111 1111 1111", "cvc": 123}}', '"cvc": "***"'),
        ('{"ccNumber":"5555555555554444","id":17800000000001}', '"id":17800000000001'),
        ("order 1780000000000 at 2026-01-01", "1780000000000"),  # not Luhn-valid: kept
    ],
)
def test_card_redaction_masks_pans_and_card_fields_and_keeps_other_numbers(
    text: str, kept: str
) -> None:
    from pms_cli.redact import redact_card_data

    masked = redact_card_data(text)
    assert kept in masked
    assert "4111" not in masked and "5555" not in masked


# --- the store is down while receiving ----------------------------------------------------


class DownStore:
    """A store whose every call fails while ``down`` (``error`` says how)."""

    def __init__(self, store: Any, error: Exception) -> None:
        self._store, self.error, self.down = store, error, True

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._store, name)
        if not callable(target):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.down:
                raise self.error
            return target(*args, **kwargs)

        return call


@pytest.mark.parametrize(
    "error",
    [
        StoreError("lost the connection to PostgreSQL", hint="rerun", code="store_unreachable"),
        sqlite3.DatabaseError("file is not a database"),
    ],
    ids=["store_error", "driver_error"],
)
def test_a_store_that_is_down_answers_503_with_retry_after_and_healthz_says_so(
    rig_factory: Any, error: Exception
) -> None:
    rig = rig_factory("smoobu")
    down = DownStore(rig.store, error)
    app = create_app(down, rig.runtime, rig.options)  # type: ignore[arg-type]
    hook = one_delivery(rig)

    async def go() -> tuple[httpx.Response, httpx.Response]:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
            base_url=RECEIVER,
        ) as client:
            delivery = await client.post(hook.url, content=hook.body, headers=hook.headers)
            return delivery, await client.get("/healthz")

    delivery, health = asyncio.run(go())
    assert delivery.status_code == 503
    assert delivery.headers["Retry-After"] == "30"
    assert health.status_code == 503
    assert health.json()["store"] == "unavailable"
    down.down = False
    delivery, health = asyncio.run(go())
    assert (delivery.status_code, health.status_code) == (200, 200)
    assert rig.store.inbox_counts() == {"pending": 1}


# --- hostile deliveries: 401 and 400, never 500 -------------------------------------------


def test_a_non_ascii_byte_in_basic_auth_is_401(rig_factory: Any) -> None:
    rig = rig_factory("hostaway")
    hook = one_delivery(rig)
    headers = {**hook.headers, "Authorization": "Basic d\xe9adbeef"}
    headers = {k: v.encode("latin-1") for k, v in headers.items()}
    response = rig.post(hook.body, headers, url=hook.url)  # type: ignore[arg-type]
    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized"}
    assert rig.receiver.metrics["rejected.bad_credentials"] == 1


@pytest.mark.parametrize("depth", [100, 100_000])
def test_deeply_nested_json_from_an_authenticated_sender_is_400(
    rig_factory: Any, depth: int
) -> None:
    rig = rig_factory("smoobu")
    hook = one_delivery(rig)
    # A valid delivery with one extra, deeply nested field.
    extra = b'"extra": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b", "
    body = b"{" + extra + hook.body.lstrip()[1:]
    response = rig.post(body, hook.headers, url=hook.url)
    assert response.status_code == 400
    assert response.json() == {"error": "bad request"}
    assert rig.store.inbox_counts() == {"invalid": 1}


def test_deliveries_are_refused_as_soon_as_the_connection_is_disconnected(
    rig_factory: Any,
) -> None:
    rig = rig_factory("smoobu", secret_ttl=3600.0)  # secrets cached for an hour
    hook = one_delivery(rig)
    assert rig.post(hook.body, hook.headers, url=hook.url).status_code == 200
    rig.store.update_connection(rig.conn.id, status="disconnected")  # `pms disconnect`
    second = one_delivery(rig)
    response = rig.post(second.body, second.headers, url=second.url)
    assert response.status_code == 401
    assert rig.receiver.metrics["rejected.unknown_connection"] == 1


def test_a_refetch_that_keeps_getting_a_4xx_gives_up_and_keeps_the_providers_answer(
    rig_factory: Any, clock: SharedClock
) -> None:
    rig = rig_factory("lodgify")
    rig.create(1)
    assert rig.deliver() == [200]

    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(422, json={"message": "Booking cannot be read by this key"})

    rig.runtime.transport = httpx.MockTransport(refuse)
    attempts = 5  # ApplierOptions.client_error_attempts
    for _ in range(attempts + 3):
        rig.apply()
        clock.advance(7200)  # past any backoff
    (row,) = rig.store.inbox_list()
    assert row.status == "failed"
    assert row.attempts == attempts
    assert "HTTP 422" in (row.error or "")
    assert "cannot be read by this key" in (row.error or "")
