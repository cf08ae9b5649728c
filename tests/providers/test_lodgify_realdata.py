"""Lodgify as real accounts show it (issue 14, points 9-10): deleted properties and closures.

A property deleted in Lodgify vanishes from ``/v2/properties``; only ``/v2/deletedProperties``
says so, and only ``--full`` used to notice. An owner closure is a booking whose ``guest``
holds the owner's own label or e-mail: it is stored ``blocked`` and never becomes a guest.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from pms_cli.models import BookingStatus, Guest
from pms_cli.providers.lodgify import deleted_extract, deleted_property_id, to_booking
from pms_cli.sandbox.lodgify import OWNER_EMAIL
from pms_cli.sync.engine import SyncEngine, SyncOptions, SyncResult
from tests.conftest import SharedClock
from tests.helpers import Harness
from tests.providers.test_lodgify_http import harness, recorded_sync, rows

# --------------------------------------------------------------------------- 9: deleted


def test_a_property_deleted_in_lodgify_is_marked_deleted_by_the_next_incremental_sync(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, properties=5, bookings=40)
    assert h.sync().status == "succeeded"
    clock.advance(3600)
    gone = sorted(h.state.properties)[2]
    h.state.delete_property(gone)
    result, recorder = recorded_sync(h)
    assert result.status == "succeeded", result.error
    assert result.resources["properties"].deleted == 1
    stored = rows(h, "property")
    assert stored[str(gone)]["deleted_at"] is not None
    assert [k for k, r in stored.items() if r["deleted_at"] is not None] == [str(gone)]
    (deleted_call,) = [r for r in recorder.requests if r.url.path == "/v2/deletedProperties"]
    assert "deletedSince" in deleted_call.url.params  # only deletions since the last run


def test_a_deleted_property_listed_again_in_the_same_run_stays_live(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, properties=3, bookings=10)
    h.sync()
    clock.advance(3600)
    restored = sorted(h.state.properties)[0]
    prop = dict(h.state.properties[restored])
    h.state.delete_property(restored)
    clock.advance(60)
    h.state.properties[restored] = prop  # restored: listed again, still in the deleted list
    h.state.modify_property(restored)
    result = h.sync()
    assert result.resources["properties"].deleted == 0
    assert rows(h, "property")[str(restored)]["deleted_at"] is None


def test_a_dry_run_counts_deleted_properties_without_marking_them(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, properties=3, bookings=10)
    h.sync()
    clock.advance(3600)
    gone = sorted(h.state.properties)[1]
    h.state.delete_property(gone)
    result = h.sync(dry_run=True)
    assert result.resources["properties"].deleted == 1
    assert rows(h, "property")[str(gone)]["deleted_at"] is None


class NoDeletedEndpoint(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/deletedProperties":
            return httpx.Response(404, json={"message": "Not found", "code": "NotFound"})
        return await self.inner.handle_async_request(request)


def test_an_account_without_the_deleted_properties_list_still_syncs_its_properties(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, properties=4, bookings=20)
    runtime = h.runtime()
    runtime.transport = NoDeletedEndpoint(httpx.ASGITransport(app=h.sandbox.app))
    result: SyncResult = asyncio.run(
        SyncEngine(h.store, runtime).sync_connection(h.conn, SyncOptions())
    )
    assert result.status == "succeeded", result.error
    assert h.store.counts(h.conn.id)["property"] == 4


@pytest.mark.parametrize(
    "body",
    [
        {"count": 2, "items": [{"id": 11, "name": "A"}, {"id": 12, "name": "B"}]},
        [{"property_id": 11, "deleted_at": "2026-01-01T00:00:00Z"}, {"propertyId": 12}],
        [11, 12],
    ],
)
def test_deleted_properties_are_read_from_every_plausible_shape(body: Any) -> None:
    page = deleted_extract(body)
    assert [deleted_property_id(r) for r in page.records] == ["11", "12"]


def test_the_sandbox_lists_a_deleted_property_by_default_and_filters_by_deleted_since(
    tmp_path: Path, clock: SharedClock
) -> None:
    h: Harness = harness(tmp_path, clock)
    assert list(h.state.deleted_properties) == [100_001]
    _, recorder = recorded_sync(h, resources=["properties"])
    assert any(r.url.path == "/v2/deletedProperties" for r in recorder.requests)


# --------------------------------------------------------------------------- 10: closures


def closure(**fields: Any) -> dict[str, Any]:
    return {
        "id": 77,
        "property_id": 123456,
        "arrival": "2026-02-01",
        "departure": "2026-02-08",
        "status": "Unavailable",
        "source": "Manual",
        "guest": {"name": "Owner stay", "email": OWNER_EMAIL, "phone": None},
        "currency_code": "EUR",
        "total_amount": 0,
        **fields,
    }


@pytest.mark.parametrize(
    "fields",
    [
        {},  # the documented v2 status
        {"status": "unavailable"},
        {"status": "Booked", "is_unavailable": True},
        {"status": "Booked", "isBlocked": True},
        {"status": None, "type": "ClosedPeriod"},
        {"status": "Closed"},
    ],
)
def test_an_owner_closure_is_blocked_and_never_produces_a_guest(fields: dict[str, Any]) -> None:
    booking, *others = to_booking(closure(**fields))
    assert booking.status is BookingStatus.BLOCKED  # type: ignore[union-attr]
    assert booking.guest_external_id is None  # type: ignore[union-attr]
    assert not [r for r in others if isinstance(r, Guest)]


def test_a_trashed_closure_no_longer_blocks() -> None:
    booking, *_ = to_booking(closure(is_deleted=True))
    assert booking.status is BookingStatus.CANCELLED  # type: ignore[union-attr]


def test_statuses_are_read_whatever_their_case() -> None:
    booking, *_ = to_booking(closure(status="booked", guest={"name": "Ann Lee"}))
    assert booking.status is BookingStatus.CONFIRMED  # type: ignore[union-attr]


def test_closures_in_the_sandbox_carry_owner_details_that_never_become_guests(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = harness(tmp_path, clock, properties=4, bookings=200)
    assert h.sync().status == "succeeded"
    closures = [b for b in h.state.bookings.values() if b["status"] == "Unavailable"]
    assert closures and any(b["guest"]["email"] == OWNER_EMAIL for b in closures)
    stored = rows(h, "booking")
    assert all(stored[str(b["id"])]["status"] == "blocked" for b in closures)
    assert all(stored[str(b["id"])]["guest_external_id"] is None for b in closures)
    guests = rows(h, "guest").values()
    assert not [g for g in guests if g["email"] == OWNER_EMAIL]
    labels = {b["guest"]["name"] for b in closures}
    assert not [g for g in guests if g["name"] in labels]
