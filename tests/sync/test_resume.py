"""Checkpoints inside a resource: a walk that stops part-way continues where it stopped."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

from pms_cli.sandbox.faults import Fault, with_faults
from tests.conftest import SharedClock
from tests.helpers import Harness
from tests.reliability.scenario import table


class PathCounter:
    """ASGI middleware counting requests per path (the resume tests count pages read)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.paths: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.paths[scope["path"].rsplit("/", 1)[-1]] += 1
        await self.app(scope, receive, send)


def _harness(tmp_path: Path, clock: SharedClock, name: str, faults: list[Fault]) -> Harness:
    h = Harness("lodgify", tmp_path / name, clock, listings=3, reservations=1000)
    h.settings.sync.batch_size = 50  # one Lodgify page per batch
    if faults:
        h.sandbox = with_faults(h.sandbox, faults, sleep=clock.sleep)
    return h


def _count(h: Harness) -> PathCounter:
    counter = PathCounter(h.sandbox.app)
    h.sandbox = replace(h.sandbox, app=counter)
    return counter


def test_a_walk_that_failed_part_way_continues_from_its_last_committed_page(
    tmp_path: Path, clock: SharedClock
) -> None:
    clean = _harness(tmp_path, clock, "clean", [])
    clean_counter = _count(clean)
    assert clean.sync().status == "succeeded"
    pages = clean_counter.paths["bookings"]
    assert pages == 20

    # Page 12 of 20 keeps failing: the walk stops with pages 1-11 committed.
    h = _harness(tmp_path, clock, "resumed", [Fault("5xx", start=12, burst=1000, path="bookings")])
    first = h.sync()
    assert first.status in ("partial", "failed")
    assert first.resources["bookings"].status == "failed"
    checkpoint = h.store.get_checkpoint(h.conn.id, "bookings")
    assert checkpoint is not None and checkpoint["position"]["page"] == 12

    h.sandbox = replace(h.sandbox, app=h.sandbox.extra["faults"].app)  # the fault is gone
    counter = _count(h)
    again = h.sync()
    assert again.status == "succeeded", again.error
    assert again.resources["bookings"].resumed_at_page == 11
    assert counter.paths["bookings"] == pages - 11
    assert table(h.store, h.conn.id) == table(clean.store, clean.conn.id)
    assert h.store.get_checkpoint(h.conn.id, "bookings") is None


def test_a_checkpoint_of_another_query_is_not_resumed(tmp_path: Path, clock: SharedClock) -> None:
    h = _harness(tmp_path, clock, "other", [])
    h.store.set_checkpoint(
        h.conn.id,
        "bookings",
        {
            "since": "2026-01-01T00:00:00+00:00",
            "full": False,
            "position": {"page": 15, "fetched": 700},
            "started_at": "2026-05-28T00:00:00+00:00",
            "pages": 14,
        },
    )
    counter = _count(h)
    result = h.sync()
    assert result.status == "succeeded"
    assert result.resources["bookings"].resumed_at_page is None
    assert counter.paths["bookings"] == 20


def test_a_dry_run_neither_resumes_nor_leaves_a_checkpoint(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = _harness(tmp_path, clock, "dry", [Fault("5xx", start=5, burst=1000, path="bookings")])
    h.sync(dry_run=True)
    assert h.store.get_checkpoint(h.conn.id, "bookings") is None
