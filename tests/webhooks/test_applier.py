"""Applying inbox events: refetch through the adapter, write through the engine, never drop.

Every test compares the receiver's rows with a fresh full `pms sync` of the same sandbox (the
ground truth), so "right final state" means "what a sync would have written".
"""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from pms_cli.webhooks.applier import target_of
from tests.webhooks.conftest import PROVIDERS, Rig, same_state


def assert_final_state(rig: Rig, tmp_path: Path, ids: set[str]) -> None:
    truth, mine = rig.truth(tmp_path), rig.bookings()
    wrong = {i for i in ids if i not in mine or not same_state(mine[i], truth[i])}
    assert not wrong, f"{len(wrong)} bookings differ from a full sync: {sorted(wrong)[:5]}"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_created_updated_and_cancelled_bookings_end_as_a_full_sync_sees_them(
    provider: str, rig_factory: Any, tmp_path: Path
) -> None:
    rig = rig_factory(provider)
    created = rig.create(4)
    updated = rig.update(4)
    rig.cancel(created[0])
    rig.cancel(updated[-1])
    assert set(rig.deliver()) == {200}
    rig.apply()
    assert rig.store.inbox_counts() == {"done": len(rig.sender.delivered)}
    assert_final_state(rig, tmp_path, set(created) | set(updated))
    cancelled = rig.bookings()[created[0]]
    assert cancelled["status"] == "cancelled"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_shuffled_and_repeated_deliveries_end_in_the_same_final_state(
    provider: str, rig_factory: Any, tmp_path: Path
) -> None:
    rig = rig_factory(provider)
    ids: set[str] = set()
    for _ in range(3):  # several rounds: later states must win whatever the order
        ids |= set(rig.create(2)) | set(rig.update(3))
        rig.clock.advance(60)
    rig.cancel(sorted(ids)[0])
    statuses = rig.deliver(shuffle=random.Random(7), duplicates=15)
    assert set(statuses) == {200}
    assert rig.receiver.metrics["duplicates"] >= 15
    rig.apply()
    assert_final_state(rig, tmp_path, ids)


def test_a_redelivery_after_the_event_was_applied_is_not_applied_again(
    rig_factory: Any,
) -> None:
    rig = rig_factory("guesty")
    rig.create(1)
    (hook,) = rig.sender.take()
    assert rig.post(hook.body, hook.headers, url=hook.url).status_code == 200
    rig.apply()
    refetches = rig.receiver.applier.stats.refetches
    assert rig.post(hook.body, hook.headers, url=hook.url).status_code == 200  # Svix retry
    assert rig.apply() == 0
    assert rig.receiver.applier.stats.refetches == refetches
    assert rig.store.inbox_counts() == {"done": 1}


def test_events_for_one_booking_in_a_batch_cost_one_refetch(rig_factory: Any) -> None:
    rig = rig_factory("smoobu")
    (booking_id,) = rig.create(1)
    for _ in range(4):
        rig.clock.advance(1)
        rig.sandbox.modify_bookings(0)  # no-op keeps the stream; then touch ours:
        rig.sandbox.reservations[int(booking_id)]["price"] += 1
        rig.sandbox.reservations[int(booking_id)]["modifiedAt"] = rig.sandbox.local(rig.clock.now())
        rig.sandbox._event("updateReservation", rig.sandbox.reservations[int(booking_id)])
    rig.deliver()
    assert rig.apply() == 5
    assert rig.receiver.applier.stats.refetches == 1


def test_a_booking_deleted_upstream_is_marked_deleted(rig_factory: Any) -> None:
    rig = rig_factory("smoobu")
    (booking_id,) = rig.create(1)
    rig.deliver()
    rig.apply()
    assert rig.bookings()[booking_id]["deleted_at"] is None
    rig.sandbox.delete_booking(int(booking_id))  # refetch answers 404 from now on
    rig.deliver()
    rig.apply()
    assert rig.bookings()[booking_id]["deleted_at"] is not None
    assert rig.receiver.applier.stats.gone == 1


class Throttle(httpx.AsyncBaseTransport):
    """Answers 429 to the next ``n`` requests, then passes through to the sandbox."""

    def __init__(self, inner: httpx.AsyncBaseTransport, n: int) -> None:
        self.inner, self.n = inner, n

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.n > 0:
            self.n -= 1
            return httpx.Response(429, headers={"Retry-After": "30"}, json={"message": "slow"})
        return await self.inner.handle_async_request(request)


def test_a_provider_that_rate_limits_delays_the_event_and_never_drops_it(
    rig_factory: Any, tmp_path: Path
) -> None:
    rig = rig_factory("lodgify")
    created = rig.create(2)
    rig.deliver()
    max_attempts = rig.runtime.settings.http.max_attempts
    rig.runtime.transport = Throttle(rig.runtime.transport, n=max_attempts * 2)
    rig.apply()
    rows = rig.store.inbox_list()
    assert {r.status for r in rows} == {"retry"}
    assert all(r.error and r.error.startswith("rate_limited") for r in rows)
    due = min(r.next_attempt_at for r in rows if r.next_attempt_at)
    assert due - rig.receiver.applier._now() >= timedelta(seconds=59)
    assert rig.apply() == 0  # not due yet
    rig.clock.advance(2 * 3600)
    rig.apply()
    assert rig.store.inbox_counts() == {"done": len(rows)}
    assert_final_state(rig, tmp_path, set(created))


def test_a_provider_outage_is_retried_with_growing_backoff(rig_factory: Any) -> None:
    rig = rig_factory("hostaway")
    rig.create(1)
    rig.deliver()
    inner = rig.runtime.transport
    rig.runtime.transport = httpx.MockTransport(lambda r: httpx.Response(503))
    # Fixed jitter: with random jitter (50-100 %) consecutive delays may legitimately shrink.
    rig.receiver.applier.rng = random.Random(0)
    rig.receiver.applier.rng.random = lambda: 0.5  # type: ignore[method-assign]
    delays = []
    for _ in range(3):
        rig.apply()
        (row,) = rig.store.inbox_list()
        assert row.status == "retry"
        assert row.error and row.error.startswith("provider_unavailable")
        # Measured after apply: the HTTP client's own retries advance the fake clock too.
        delays.append((row.next_attempt_at - rig.receiver.applier._now()).total_seconds())
        rig.clock.advance(delays[-1] + 1)
    assert delays[0] < delays[1] < delays[2]
    rig.runtime.transport = inner
    rig.apply()
    (row,) = rig.store.inbox_list()
    assert (row.status, row.attempts) == ("done", 4)


class Garbled(httpx.AsyncBaseTransport):
    """Single-reservation answers lose their id (a record no mapper can key)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and "/reservations/" in request.url.path:
            return httpx.Response(200, json={"status": "success", "result": {"listingMapId": 1}})
        return await self.inner.handle_async_request(request)


def test_a_record_the_mapper_cannot_read_ends_failed_and_visible(rig_factory: Any) -> None:
    rig = rig_factory("hostaway")
    rig.create(1)
    rig.deliver()
    rig.runtime.transport = Garbled(rig.runtime.transport)
    rig.apply()
    (row,) = rig.store.inbox_list()
    assert row.status == "failed"
    assert row.error and row.error.startswith("bad_record")


def test_events_leased_by_a_crashed_receiver_are_replayed_when_it_starts_again(
    rig_factory: Any, tmp_path: Path
) -> None:
    rig = rig_factory("beds24")
    created = rig.create(3)
    rig.deliver()
    # The crashed process had leased every event for an hour and applied none of them.
    now = rig.receiver.applier._now()
    leased = rig.store.inbox_claim(now, now + timedelta(hours=1), 100)
    assert len(leased) == 3 and all(target_of(r) for r in leased)

    async def restart() -> None:
        async with rig.app.router.lifespan_context(rig.app):
            for _ in range(200):
                if rig.store.inbox_counts() == {"done": 3}:
                    return
                await asyncio.sleep(0.01)

    asyncio.run(restart())
    assert rig.store.inbox_counts() == {"done": 3}
    assert_final_state(rig, tmp_path, set(created))


def test_events_of_a_disconnected_connection_fail_visibly(rig_factory: Any) -> None:
    rig = rig_factory("smoobu")
    rig.create(1)
    rig.deliver()
    rig.store.update_connection(rig.conn.id, status="disconnected")
    rig.apply()
    (row,) = rig.store.inbox_list()
    assert row.status == "failed"
