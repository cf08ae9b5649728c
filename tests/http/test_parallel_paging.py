"""OffsetPaginator(parallel=N): several pages in flight once the total is known, same pages."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import respx

from pms_cli.config import HttpSettings
from pms_cli.errors import ProviderError
from pms_cli.http.client import HttpClient, NoAuth
from pms_cli.http.clock import FakeClock
from pms_cli.http.paginate import OffsetPaginator, PageNumberPaginator, records_at
from pms_cli.http.ratelimit import RateLimiter

BASE = "https://api.example.test/v1"


class FakeApi:
    """``GET /items?limit&skip`` over ``total`` records, with knobs for misbehaviour."""

    def __init__(self, total: int, clamp: int | None = None) -> None:
        self.records = [{"id": i} for i in range(total)]
        self.clamp = clamp
        self.short_once_at: int | None = None
        self.fail_at: int | None = None
        self.offsets: list[int] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def serve(self, position: int) -> None:
        """Log the request and stay "in flight" a few loop turns, so others can start."""
        self.offsets.append(position)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            for _ in range(5):
                await asyncio.sleep(0)
        finally:
            self.in_flight -= 1

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        skip = int(request.url.params["skip"])
        limit = min(int(request.url.params["limit"]), self.clamp or 10**9)
        await self.serve(skip)
        if skip == self.fail_at:
            return httpx.Response(404, json={"message": "gone"})
        if skip == self.short_once_at:
            self.short_once_at = None
            limit -= 10
        page = self.records[skip : skip + limit]
        return httpx.Response(200, json={"results": page, "count": len(self.records)})


def client() -> HttpClient:
    clock = FakeClock()
    return HttpClient(
        provider="example",
        base_url=BASE,
        auth=NoAuth(),
        limiter=RateLimiter(clock=clock),
        settings=HttpSettings(),
        clock=clock,
    )


def walk(
    api: FakeApi,
    respx_mock: respx.MockRouter,
    parallel: int = 4,
    pages: list[list[Any]] | None = None,
) -> list[list[Any]]:
    """The ids of each page, in order; ``pages`` collects them as they come (partial walks)."""
    pages = [] if pages is None else pages
    respx_mock.get(f"{BASE}/items").mock(side_effect=api)
    http = client()
    paginator = OffsetPaginator(limit=100, offset_param="skip", parallel=parallel)

    async def collect() -> list[list[Any]]:
        async for page in paginator.pages(http, "items", {}, records_at("results", "count")):
            pages.append([r["id"] for r in page])
            await asyncio.sleep(0)
        return pages

    return asyncio.run(collect())


@respx.mock
def test_parallel_walk_yields_every_page_in_order_with_exactly_the_sequential_requests(
    respx_mock: respx.MockRouter,
) -> None:
    api = FakeApi(1050)
    pages = walk(api, respx_mock)
    assert [i for page in pages for i in page] == list(range(1050))
    assert sorted(api.offsets) == list(range(0, 1100, 100))  # 11 requests, none wasted
    assert 1 < api.max_in_flight <= 4


@respx.mock
def test_a_sequential_walk_has_one_request_in_flight(respx_mock: respx.MockRouter) -> None:
    api = FakeApi(1050)
    walk(api, respx_mock, parallel=1)
    assert api.max_in_flight == 1


@respx.mock
def test_a_server_that_clamps_pages_gets_no_speculative_requests(
    respx_mock: respx.MockRouter,
) -> None:
    api = FakeApi(230, clamp=50)
    pages = walk(api, respx_mock)
    assert [i for page in pages for i in page] == list(range(230))
    assert api.offsets == [0, 50, 100, 150, 200]


@respx.mock
def test_a_short_page_mid_walk_drops_the_speculation_and_goes_on_from_the_real_offset(
    respx_mock: respx.MockRouter,
) -> None:
    api = FakeApi(1050)
    api.short_once_at = 300
    pages = walk(api, respx_mock)
    assert [i for page in pages for i in page] == list(range(1050))
    wasted = len(api.offsets) - len(set(api.offsets))
    assert len(api.offsets) - len(pages) <= 4 and wasted <= 4


@respx.mock
def test_a_failing_page_fails_the_walk_after_the_pages_before_it(
    respx_mock: respx.MockRouter,
) -> None:
    api = FakeApi(1050)
    api.fail_at = 500
    pages: list[list[Any]] = []
    with pytest.raises(ProviderError):
        walk(api, respx_mock, pages=pages)
    assert [i for page in pages for i in page] == list(range(500))


class FakePagedApi(FakeApi):
    """``GET /items?page&size`` (1-based), answering ``{items, count}``."""

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        size = min(int(request.url.params["size"]), self.clamp or 10**9)
        await self.serve(page)
        items = self.records[(page - 1) * size : page * size]
        return httpx.Response(200, json={"items": items, "count": len(self.records)})


def walk_pages(api: FakePagedApi, respx_mock: respx.MockRouter, size: int = 50) -> list[int]:
    respx_mock.get(f"{BASE}/items").mock(side_effect=api)
    http = client()
    paginator = PageNumberPaginator(size=size, parallel=4)

    async def collect() -> list[int]:
        ids: list[int] = []
        async for page in paginator.pages(http, "items", {}, records_at("items", "count")):
            ids.extend(r["id"] for r in page)
            await asyncio.sleep(0)
        return ids

    return asyncio.run(collect())


@respx.mock
def test_parallel_page_numbers_yield_every_record_once_with_one_request_per_page(
    respx_mock: respx.MockRouter,
) -> None:
    api = FakePagedApi(1020)
    assert walk_pages(api, respx_mock) == list(range(1020))
    assert sorted(api.offsets) == list(range(1, 22))  # ⌈1020 / 50⌉ pages, none past the last
    assert 1 < api.max_in_flight <= 4


@respx.mock
def test_a_server_clamping_the_page_size_is_walked_to_its_total_without_speculation(
    respx_mock: respx.MockRouter,
) -> None:
    api = FakePagedApi(95, clamp=20)
    assert walk_pages(api, respx_mock) == list(range(95))
    assert api.offsets == [1, 2, 3, 4, 5]
