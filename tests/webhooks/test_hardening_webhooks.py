"""Hostile deliveries (issue 15): ids that would escape the API path, refetches that answer
another record, card data in unparseable bodies, a store that is down, odd headers."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from pms_cli.config import HttpSettings
from pms_cli.errors import ProviderError
from pms_cli.http.client import HttpClient, NoAuth, api_path
from pms_cli.http.ratelimit import RateLimiter
from pms_cli.stores.base import WebhookEventRow
from tests.conftest import SharedClock
from tests.webhooks.conftest import Rig


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
    for secret in ("4111", "5555", "737", "Ana+Silva", "12%2F29"):
        assert secret not in result.stdout
        assert secret not in json.dumps(row.payload)
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
