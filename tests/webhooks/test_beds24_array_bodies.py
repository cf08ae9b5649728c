"""Beds24 booking webhooks whose body is a JSON array (issue 14, point 11): every booking named
is refetched and written; single objects keep working."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pms_cli.webhooks.base import Delivery
from pms_cli.webhooks.beds24 import SPEC
from tests.webhooks.conftest import Rig, same_state


def array_delivery(rig: Rig, items: list[Any]) -> Any:
    """A delivery like the sandbox's (same URL and custom header), with an array body."""
    rig.create(1)
    hook = rig.sender.take()[0]
    return rig.post(json.dumps(items).encode(), hook.headers, url=hook.url)


def test_an_array_of_webhook_objects_refetches_every_booking_it_names(
    rig_factory: Any, tmp_path: Path
) -> None:
    rig: Rig = rig_factory("beds24")
    a, b = rig.update(2)
    envelope = json.loads(rig.sender.take()[0].body)  # the sandbox's own v2 object
    items = [
        {**envelope, "booking": {**envelope["booking"], "id": int(a)}},
        {**envelope, "booking": {**envelope["booking"], "id": int(b)}, "retries": 1},
    ]
    response = array_delivery(rig, items)
    assert response.status_code == 200
    named = {row.payload["change"]["external_id"] for row in rig.store.inbox_list(limit=50)}
    assert {a, b} <= named
    rig.apply()
    truth, rows = rig.truth(tmp_path), rig.bookings()
    assert same_state(rows[a], truth[a]) and same_state(rows[b], truth[b])


def test_an_array_of_bare_bookings_is_accepted_too() -> None:
    body = [{"id": 71000123, "status": "new"}, {"id": 71000456, "status": "cancelled"}]
    parsed = SPEC.parse(body, Delivery(b"", {}))
    assert [(c.external_id, c.action) for c in parsed.changes] == [
        ("71000123", "new"),
        ("71000456", "cancelled"),
    ]


def test_a_booking_named_twice_in_one_array_is_refetched_once() -> None:
    body = [{"booking": {"id": 7}}, {"booking": {"id": 7, "status": "confirmed"}}]
    assert [c.external_id for c in SPEC.parse(body, Delivery(b"", {})).changes] == ["7"]


def test_a_single_object_keeps_working_and_redeliveries_share_a_dedupe_key() -> None:
    body = {"timeStamp": "2025-05-10T14:22:40Z", "booking": {"id": 9}, "retries": 0}
    assert [c.external_id for c in SPEC.parse(body, Delivery(b"", {})).changes] == ["9"]
    again = [{**body, "retries": 2}]
    first = SPEC.dedupe_key([body], Delivery(b"", {}))
    assert first == SPEC.dedupe_key(again, Delivery(b"", {}))


@pytest.mark.parametrize("body", [[], [{"booking": {}}], [1, 2]])
def test_an_empty_array_or_an_array_without_ids_is_malformed(body: Any) -> None:
    with pytest.raises(ValueError):
        SPEC.parse(body, Delivery(b"", {}))
