"""read_ahead: page n+1 is fetched while the caller handles page n, with nothing else changed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from pms_cli.http.paginate import read_ahead


class Walk:
    """A fake page walk that logs when each fetch starts and ends."""

    def __init__(self, pages: int, fail_at: int | None = None) -> None:
        self.pages = pages
        self.fail_at = fail_at
        self.log: list[str] = []
        self.closed = False

    async def __call__(self) -> AsyncIterator[int]:
        try:
            for n in range(self.pages):
                self.log.append(f"fetch {n}")
                await asyncio.sleep(0.001)
                if n == self.fail_at:
                    raise RuntimeError(f"page {n} failed")
                self.log.append(f"got {n}")
                yield n
        finally:
            self.closed = True


def test_yields_every_page_in_order_and_fetches_the_next_while_the_caller_works() -> None:
    walk = Walk(3)

    async def consume() -> list[int]:
        seen = []
        async for page in read_ahead(walk()):
            walk.log.append(f"start {page}")
            await asyncio.sleep(0.01)  # mapping and writing the page
            walk.log.append(f"done {page}")
            seen.append(page)
        return seen

    assert asyncio.run(consume()) == [0, 1, 2]
    # Page 1's fetch begins before page 0 is done being handled.
    assert walk.log.index("fetch 1") < walk.log.index("done 0")
    assert walk.log.index("got 1") < walk.log.index("done 0")
    assert [e for e in walk.log if e.startswith("fetch")] == ["fetch 0", "fetch 1", "fetch 2"]
    assert walk.closed


def test_an_error_in_the_caller_cancels_the_fetch_ahead_and_closes_the_walk() -> None:
    walk = Walk(100)

    async def consume() -> None:
        async with contextlib.aclosing(read_ahead(walk())) as pages:
            async for page in pages:
                if page == 1:
                    await asyncio.sleep(0)  # the fetch of page 2 is under way...
                    raise ValueError("store down")

    with pytest.raises(ValueError, match="store down"):
        asyncio.run(consume())
    assert walk.closed
    # ...and is cancelled: one page beyond the failing one was asked for, none completed.
    assert [e for e in walk.log if e.startswith("fetch")] == ["fetch 0", "fetch 1", "fetch 2"]
    assert "got 2" not in walk.log


def test_an_error_fetching_a_page_reaches_the_caller_after_the_pages_before_it() -> None:
    walk = Walk(5, fail_at=2)
    seen: list[int] = []

    async def consume() -> None:
        async for page in read_ahead(walk()):
            seen.append(page)

    with pytest.raises(RuntimeError, match="page 2 failed"):
        asyncio.run(consume())
    assert seen == [0, 1]
