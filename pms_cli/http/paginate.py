"""Paginators: how a list endpoint is walked, independent of what the records mean.

Each paginator is a small declarative object; ``pages()`` yields one list of raw records per
HTTP request and stops without an extra request whenever the response says it was the last page.
Every paginator guards against loops (a server repeating a page or a cursor forever).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
)
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from pms_cli.errors import ProviderError
from pms_cli.http.client import HttpClient

Raw = dict[str, Any]
T = TypeVar("T")

Position = dict[str, Any]
"""Where a walk continues: ``{"offset": n}``, ``{"page": n, "fetched": m}`` or
``{"cursor": id, "fetched": m, "total": t}`` (JSON-safe, so it can be stored as a checkpoint)."""


class Page(list[Raw]):
    """The records of one page, and where the walk continues after it.

    ``after`` is None when the paginator cannot restart mid-walk (one-request lists, records
    reshaped by an adapter) or when this was the last page.
    """

    after: Position | None
    total: int | None

    def __init__(
        self, records: Iterable[Raw], after: Position | None = None, total: int | None = None
    ) -> None:
        super().__init__(records)
        self.after = after
        self.total = total


_RESUME: ContextVar[tuple[str, Position] | None] = ContextVar("pms_resume", default=None)


@contextlib.contextmanager
def resuming(path: str, position: Position | None) -> Iterator[None]:
    """Walks of ``path`` started inside this block begin at ``position`` (a page's ``after``).

    A context variable rather than a parameter so that adapters which wrap ``pages()`` (Beds24,
    Smoobu) need not pass it on; keyed by path so a nested walk of another endpoint (Beds24
    reads properties before bookings) starts at its beginning.
    """
    token = _RESUME.set((path, position) if position else None)
    try:
        yield
    finally:
        _RESUME.reset(token)


def _start(path: str) -> Position:
    resume = _RESUME.get()
    return dict(resume[1]) if resume is not None and resume[0] == path else {}


def _int(position: Position, key: str, default: int) -> int:
    value = position.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


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

        offset = _int(_start(path), "offset", 0)
        seen: set[str] = set()
        async with Lookahead(fetch) as ahead:
            while True:
                _loop_guard(seen, str(offset), path)
                body = await ahead.take(offset)
                # More records than asked for can only be repeats (a page window that
                # shifted): stepping past them would skip as many unseen records.
                following = offset + min(len(body.records), self.limit)
                done = not body.records or body.has_more is False
                if body.total is not None:
                    done = done or following >= body.total
                elif self.short_page_ends and len(body.records) < self.limit:
                    done = True
                # The next offsets are known after a full page that reported the total (a
                # short page means no total or a server that clamps page sizes).
                if self.parallel > 1 and not done and body.total is not None:
                    full = len(body.records) >= self.limit
                    end = min(body.total, following + self.parallel * self.limit)
                    await ahead.want(range(following, end, self.limit) if full else ())
                else:
                    await ahead.want(())
                if body.records:
                    yield Page(body.records, None if done else {"offset": following}, body.total)
                if done:
                    return
                offset = following


class Lookahead:
    """Fetches of pages the walk will want next, started before it asks for them.

    ``want(positions)`` keeps exactly those fetches in flight (cancelling ones no longer
    predicted); ``take(position)`` returns a started fetch's page, or fetches it now. Every
    request still goes through the client's rate limiter; leaving the block cancels the rest.
    """

    def __init__(self, fetch: Callable[[int], Awaitable[PageBody]]) -> None:
        self.fetch = fetch
        self.tasks: dict[int, asyncio.Task[PageBody]] = {}

    async def __aenter__(self) -> Lookahead:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.want(())

    async def take(self, position: int) -> PageBody:
        task = self.tasks.pop(position, None)
        return await (task if task is not None else self.fetch(position))

    async def want(self, positions: Iterable[int]) -> None:
        wanted = list(positions)
        stale = [self.tasks.pop(p) for p in list(self.tasks) if p not in wanted]
        for task in stale:
            task.cancel()
        await asyncio.gather(*stale, return_exceptions=True)  # collect errors of cancelled ones
        for position in wanted:
            if position not in self.tasks:
                self.tasks[position] = asyncio.ensure_future(self.fetch(position))


@dataclass(frozen=True)
class PageNumberPaginator:
    """1-based ``page`` (+ optional ``size``) paging, stopping on the API's "more" flag, else on
    reaching its total, else on a short page.

    ``parallel`` > 1: as ``OffsetPaginator`` — once a full page has reported the total, the
    following page numbers (up to the last) are fetched that many at a time.
    """

    size: int | None = None
    page_param: str = "page"
    size_param: str = "size"
    first_page: int = 1
    parallel: int = 1

    @property
    def page_size(self) -> int | None:
        return self.size

    async def pages(
        self, http: HttpClient, path: str, params: Mapping[str, Any], extract: Extractor
    ) -> AsyncIterator[list[Raw]]:
        async def fetch(number: int) -> PageBody:
            query = {**params, self.page_param: number}
            if self.size is not None:
                query[self.size_param] = self.size
            return extract(await http.get_json(path, query))

        start = _start(path)
        page = _int(start, "page", self.first_page)
        fetched = _int(start, "fetched", 0)
        async with Lookahead(fetch) as ahead:
            while True:
                body = await ahead.take(page)
                # Repeats beyond the page size must not count towards the total (early stop).
                n = len(body.records)
                fetched += n if self.size is None else min(n, self.size)
                done = not body.records or body.has_more is False
                if body.has_more is None:
                    if body.total is not None:
                        # A short page before the total means the server clamps the size:
                        # its next page number still follows on (an empty page ends it).
                        done = done or fetched >= body.total
                    elif self.size is not None and n < self.size:
                        done = True
                size, total = self.size, body.total
                if self.parallel > 1 and not done and size and total is not None and n >= size:
                    last = self.first_page + math.ceil(total / size) - 1
                    await ahead.want(range(page + 1, min(last, page + self.parallel) + 1))
                else:
                    await ahead.want(())
                if body.records:
                    after = None if done else {"page": page + 1, "fetched": fetched}
                    yield Page(body.records, after, body.total)
                if done:
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
        start = _start(path)
        cursor: Any = start.get("cursor")
        fetched = _int(start, "fetched", 0)
        first_total: int | None = _int(start, "total", -1) if "cursor" in start else None
        if first_total == -1:
            first_total = None
        seen: set[str] = set()
        while True:
            query = {**params, self.limit_param: self.limit}
            if cursor is not None:
                _loop_guard(seen, str(cursor), path)
                query[self.param] = cursor
            body = extract(await http.get_json(path, query))
            # Repeats beyond the page size must not count towards the total (early stop).
            fetched += min(len(body.records), self.limit)
            done = not body.records or body.has_more is False
            if not done and first_total is None:
                first_total = body.total
            # Whether a cursor page's total counts all matches or only those after the cursor
            # is undocumented; these two tests are each safe under both readings.
            if body.total is not None and len(body.records) >= body.total:
                done = True
            if body.total is not None and body.total == first_total and fetched >= body.total:
                done = True
            following = None if done else body.records[-1].get(self.cursor_field)
            if body.records:
                after = None
                if following is not None:
                    after = {"cursor": following, "fetched": fetched, "total": first_total}
                yield Page(body.records, after, first_total)
            if done:
                return
            if following is None:
                raise ProviderError(
                    f"record without {self.cursor_field!r} while paging {path}",
                    hint="The provider's response changed shape; report it.",
                    code="provider_garbage",
                )
            cursor = following


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
