"""Paginators: how a list endpoint is walked, independent of what the records mean.

Each paginator is a small declarative object; ``pages()`` yields one list of raw records per
HTTP request and stops without an extra request whenever the response says it was the last page.
Every paginator guards against loops (a server repeating a page or a cursor forever).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from pms_cli.errors import ProviderError
from pms_cli.http.client import HttpClient

Raw = dict[str, Any]
T = TypeVar("T")


@dataclass(frozen=True)
class PageBody:
    """What an extractor finds in one response: the records and, if the API says, the total."""

    records: list[Raw]
    total: int | None = None
    has_more: bool | None = None


Extractor = Callable[[Any], PageBody]


def records_at(key: str | None, total_key: str | None = None) -> Extractor:
    """Extractor for ``{key: [...], total_key: N}`` envelopes (or a bare list when key is None)."""

    def extract(body: Any) -> PageBody:
        items = body if key is None else (body.get(key) if isinstance(body, dict) else None)
        if not isinstance(items, list):
            raise ProviderError(
                f"unexpected response shape: no list at {key!r}",
                hint="The provider changed its API or returned an error page; rerun with "
                "--json to see the error excerpt, and report it if it persists.",
                code="provider_garbage",
                body_excerpt=str(body)[:200],
            )
        total = body.get(total_key) if total_key and isinstance(body, dict) else None
        return PageBody(
            [r for r in items if isinstance(r, dict)], total if isinstance(total, int) else None
        )

    return extract


class Paginator(Protocol):
    @property
    def page_size(self) -> int | None:
        """Records a full page holds, when known (prices a whole read of a resource)."""

    def pages(
        self, http: HttpClient, path: str, params: Mapping[str, Any], extract: Extractor
    ) -> AsyncIterator[list[Raw]]:
        """Yield the records of each page, one HTTP request per page."""


def _loop_guard(seen: set[str], marker: str, path: str) -> None:
    if marker in seen:
        raise ProviderError(
            f"pagination of {path} repeated position {marker!r}",
            hint="The provider returned the same page twice; retry later.",
            code="pagination_loop",
        )
    seen.add(marker)


@dataclass(frozen=True)
class OffsetPaginator:
    """``limit`` + ``offset`` (or ``skip``) paging; the offset advances by records received.

    Advancing by what was received (not by ``limit``) stays correct when a server silently
    clamps the page size; never by more than ``limit``, since a longer page carries repeats.
    Stops when the reported total is reached, or on a short/empty page when the API reports no
    total.

    ``parallel`` > 1 fetches up to that many pages at once once a full page has reported the
    total: the next offsets are then known, so a latency-bound walk approaches the rate limit
    (which every request still passes). Pages are still yielded in order and the stop rules
    are the same; a page that does not end where predicted (short, clamped) discards the
    speculative fetches after it and the walk goes on from where it really is.
    """

    limit: int
    limit_param: str = "limit"
    offset_param: str = "offset"
    short_page_ends: bool = True
    parallel: int = 1

    @property
    def page_size(self) -> int | None:
        return self.limit

    async def pages(
        self, http: HttpClient, path: str, params: Mapping[str, Any], extract: Extractor
    ) -> AsyncIterator[list[Raw]]:
        async def fetch(at: int) -> PageBody:
            query = {**params, self.limit_param: self.limit, self.offset_param: at}
            return extract(await http.get_json(path, query))

        offset = 0
        seen: set[str] = set()
        ahead: dict[int, asyncio.Task[PageBody]] = {}
        try:
            while True:
                _loop_guard(seen, str(offset), path)
                task = ahead.pop(offset, None)
                body = await (task if task is not None else fetch(offset))
                # More records than asked for can only be repeats (a page window that
                # shifted): stepping past them would skip as many unseen records.
                following = offset + min(len(body.records), self.limit)
                done = not body.records or body.has_more is False
                if body.total is not None:
                    done = done or following >= body.total
                elif self.short_page_ends and len(body.records) < self.limit:
                    done = True
                if not done and self.parallel > 1:
                    await _speculate(ahead, fetch, following, self.limit, self.parallel, body)
                if body.records:
                    yield body.records
                if done:
                    return
                offset = following
        finally:
            await _discard(ahead.values())


async def _speculate(
    ahead: dict[int, asyncio.Task[PageBody]],
    fetch: Callable[[int], Awaitable[PageBody]],
    following: int,
    limit: int,
    parallel: int,
    body: PageBody,
) -> None:
    """Keep up to ``parallel`` fetches in flight at the offsets that follow ``following``."""
    stale = [at for at in ahead if at < following or (at - following) % limit]
    await _discard([ahead.pop(at) for at in stale])
    if body.total is None or len(body.records) < limit:
        return  # the next offsets are not known (no total) or the server clamps pages
    for at in range(following, min(body.total, following + parallel * limit), limit):
        if at not in ahead:
            ahead[at] = asyncio.ensure_future(fetch(at))


async def _discard(tasks: Iterable[asyncio.Task[PageBody]]) -> None:
    """Cancel fetches no longer wanted and collect their outcome (errors included)."""
    pending = list(tasks)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


@dataclass(frozen=True)
class PageNumberPaginator:
    """1-based ``page`` (+ optional ``size``) paging, stopping on total, a flag or a short page."""

    size: int | None = None
    page_param: str = "page"
    size_param: str = "size"
    first_page: int = 1

    @property
    def page_size(self) -> int | None:
        return self.size

    async def pages(
        self, http: HttpClient, path: str, params: Mapping[str, Any], extract: Extractor
    ) -> AsyncIterator[list[Raw]]:
        page = self.first_page
        fetched = 0
        while True:
            query = {**params, self.page_param: page}
            if self.size is not None:
                query[self.size_param] = self.size
            body = extract(await http.get_json(path, query))
            if body.records:
                yield body.records
            # Repeats beyond the page size must not count towards the total (early stop).
            fetched += len(body.records) if self.size is None else min(len(body.records), self.size)
            if not body.records or body.has_more is False:
                return
            if body.has_more is None:
                if body.total is not None and fetched >= body.total:
                    return
                if self.size is not None and len(body.records) < self.size:
                    return
            page += 1


@dataclass(frozen=True)
class CursorPaginator:
    """Keyset paging: pass the id of the last record as ``param`` (Hostaway ``afterId``)."""

    limit: int
    param: str
    cursor_field: str = "id"
    limit_param: str = "limit"

    @property
    def page_size(self) -> int | None:
        return self.limit

    async def pages(
        self, http: HttpClient, path: str, params: Mapping[str, Any], extract: Extractor
    ) -> AsyncIterator[list[Raw]]:
        cursor: Any = None
        fetched = 0
        first_total: int | None = None
        seen: set[str] = set()
        while True:
            query = {**params, self.limit_param: self.limit}
            if cursor is not None:
                _loop_guard(seen, str(cursor), path)
                query[self.param] = cursor
            body = extract(await http.get_json(path, query))
            if body.records:
                yield body.records
            # Repeats beyond the page size must not count towards the total (early stop).
            fetched += min(len(body.records), self.limit)
            if not body.records or body.has_more is False:
                return
            if first_total is None:
                first_total = body.total
            # Whether a cursor page's total counts all matches or only those after the cursor
            # is undocumented; these two tests are each safe under both readings.
            if body.total is not None and len(body.records) >= body.total:
                return
            if body.total is not None and body.total == first_total and fetched >= body.total:
                return
            cursor = body.records[-1].get(self.cursor_field)
            if cursor is None:
                raise ProviderError(
                    f"record without {self.cursor_field!r} while paging {path}",
                    hint="The provider's response changed shape; report it.",
                    code="provider_garbage",
                )


async def _next(items: AsyncIterator[T]) -> T:
    return await anext(items)


async def read_ahead(items: AsyncIterator[T]) -> AsyncGenerator[T, None]:
    """Yield from ``items`` while already fetching the next one in the background.

    A page walk is sequential (page n+1's query depends on page n), so wall time is the sum of
    request latency and the caller's mapping and writing. Reading one page ahead overlaps the
    two without changing which requests are made or their order: at most one extra request is
    in flight, and it is cancelled if the caller stops early.
    """
    pending = asyncio.ensure_future(_next(items))
    try:
        while True:
            try:
                item = await pending
            except StopAsyncIteration:
                return
            pending = asyncio.ensure_future(_next(items))
            yield item
    finally:
        if not pending.done():
            pending.cancel()
        with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration, Exception):
            await pending
        close = getattr(items, "aclose", None)
        if close is not None:
            await close()
