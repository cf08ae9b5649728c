"""HttpClient against respx fakes: retries, Retry-After, token renewal, garbage, pacing."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import respx

from pms_cli.config import HttpSettings
from pms_cli.errors import AuthError, ProviderError, RateLimitedError
from pms_cli.http.auth import TokenAuth
from pms_cli.http.client import HttpClient, NoAuth
from pms_cli.http.clock import FakeClock
from pms_cli.http.paginate import OffsetPaginator, records_at
from pms_cli.http.ratelimit import RateLimiter, SlidingWindow, Window
from pms_cli.http.tokens import CachedToken, MemoryTokenCache

BASE = "https://api.example.test/v1"


def make_client(clock: FakeClock, auth: Any = None, **settings: Any) -> HttpClient:
    return HttpClient(
        provider="example",
        base_url=BASE,
        auth=auth or NoAuth(),
        limiter=RateLimiter(clock=clock),
        settings=HttpSettings(**settings),
        clock=clock,
    )


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@respx.mock(assert_all_called=True)
def test_honours_retry_after_seconds_on_429(respx_mock: respx.MockRouter) -> None:
    clock = FakeClock()
    respx_mock.get(f"{BASE}/items").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "7"}, json={"message": "slow down"}),
            httpx.Response(200, json={"ok": True}),
        ]
    )
    client = make_client(clock)
    assert run(client.get_json("items")) == {"ok": True}
    assert clock.sleeps == [7.0]
    assert client.stats.rate_limited == 1
    assert client.stats.retries == 1


@respx.mock(assert_all_called=True)
def test_backs_off_exponentially_without_retry_after(respx_mock: respx.MockRouter) -> None:
    clock = FakeClock()
    respx_mock.get(f"{BASE}/items").mock(
        side_effect=[httpx.Response(429), httpx.Response(429), httpx.Response(200, json=[])]
    )
    client = make_client(clock, backoff_base_seconds=2.0)
    run(client.get_json("items"))
    assert len(clock.sleeps) == 2
    assert 1.0 <= clock.sleeps[0] <= 2.0
    assert 2.0 <= clock.sleeps[1] <= 4.0


@respx.mock(assert_all_called=True)
def test_gives_up_with_rate_limited_error_after_max_attempts(
    respx_mock: respx.MockRouter,
) -> None:
    clock = FakeClock()
    route = respx_mock.get(f"{BASE}/items").mock(return_value=httpx.Response(429))
    client = make_client(clock, max_attempts=3)
    with pytest.raises(RateLimitedError):
        run(client.get_json("items"))
    assert route.call_count == 3


@respx.mock(assert_all_called=True)
def test_retries_5xx_then_succeeds(respx_mock: respx.MockRouter) -> None:
    clock = FakeClock()
    respx_mock.get(f"{BASE}/items").mock(
        side_effect=[httpx.Response(503), httpx.Response(502), httpx.Response(200, json=[1])]
    )
    assert run(make_client(clock).get_json("items")) == [1]


@respx.mock(assert_all_called=True)
def test_retries_a_timeout_then_succeeds(respx_mock: respx.MockRouter) -> None:
    clock = FakeClock()
    respx_mock.get(f"{BASE}/items").mock(
        side_effect=[httpx.ReadTimeout("slow"), httpx.Response(200, json=[2])]
    )
    assert run(make_client(clock).get_json("items")) == [2]


@respx.mock(assert_all_called=True)
def test_malformed_json_is_retried_then_reported_as_provider_error(
    respx_mock: respx.MockRouter,
) -> None:
    clock = FakeClock()
    route = respx_mock.get(f"{BASE}/items").mock(
        return_value=httpx.Response(200, content=b'{"result": [1, 2')
    )
    with pytest.raises(ProviderError, match="malformed JSON"):
        run(make_client(clock, max_attempts=2).get_json("items"))
    assert route.call_count == 2


@respx.mock(assert_all_called=True)
def test_does_not_retry_a_404(respx_mock: respx.MockRouter) -> None:
    clock = FakeClock()
    route = respx_mock.get(f"{BASE}/items/9").mock(return_value=httpx.Response(404, json={}))
    with pytest.raises(ProviderError) as info:
        run(make_client(clock).get_json("items/9"))
    assert info.value.code == "not_found"
    assert route.call_count == 1


def token_auth(fetches: list[str]) -> TokenAuth:
    async def fetch(http: HttpClient) -> CachedToken:
        value = f"tok-{len(fetches) + 1}"
        fetches.append(value)
        return CachedToken(value, http.clock.time() + 86400)

    return TokenAuth(
        fetch=fetch,
        cache=MemoryTokenCache(),
        cache_key="example:1",
        failure_statuses=frozenset({401, 403}),
    )


@respx.mock(assert_all_called=True)
def test_refreshes_token_once_on_403_and_retries(respx_mock: respx.MockRouter) -> None:
    clock = FakeClock()
    fetches: list[str] = []
    route = respx_mock.get(f"{BASE}/items").mock(
        side_effect=lambda request: httpx.Response(
            403 if request.headers["Authorization"] == "Bearer tok-1" else 200, json={}
        )
    )
    client = make_client(clock, auth=token_auth(fetches))
    run(client.get_json("items"))
    assert fetches == ["tok-1", "tok-2"]
    assert route.call_count == 2
    assert client.stats.auth_renewals == 1


@respx.mock(assert_all_called=True)
def test_fails_with_auth_error_when_the_renewed_token_is_rejected_too(
    respx_mock: respx.MockRouter,
) -> None:
    clock = FakeClock()
    fetches: list[str] = []
    respx_mock.get(f"{BASE}/items").mock(return_value=httpx.Response(401, json={"e": "no"}))
    with pytest.raises(AuthError):
        run(make_client(clock, auth=token_auth(fetches)).get_json("items"))
    assert len(fetches) == 2


@respx.mock(assert_all_called=True)
def test_reuses_a_cached_token_across_clients(respx_mock: respx.MockRouter) -> None:
    clock = FakeClock()
    fetches: list[str] = []
    respx_mock.get(f"{BASE}/items").mock(return_value=httpx.Response(200, json={}))
    auth = token_auth(fetches)
    run(make_client(clock, auth=auth).get_json("items"))
    second = TokenAuth(fetch=auth.fetch, cache=auth.cache, cache_key=auth.cache_key)
    run(make_client(clock, auth=second).get_json("items"))
    assert fetches == ["tok-1"]


@respx.mock(assert_all_called=True)
def test_offset_paginator_stops_at_the_reported_total_without_an_extra_request(
    respx_mock: respx.MockRouter,
) -> None:
    clock = FakeClock()
    data = [{"id": i} for i in range(250)]

    def page(request: httpx.Request) -> httpx.Response:
        offset, limit = int(request.url.params["offset"]), int(request.url.params["limit"])
        return httpx.Response(200, json={"result": data[offset : offset + limit], "count": 250})

    route = respx_mock.get(f"{BASE}/items").mock(side_effect=page)

    async def collect() -> list[dict[str, Any]]:
        client = make_client(clock)
        out: list[dict[str, Any]] = []
        async for records in OffsetPaginator(limit=100).pages(
            client, "items", {}, records_at("result", "count")
        ):
            out.extend(records)
        return out

    assert [r["id"] for r in run(collect())] == list(range(250))
    assert route.call_count == 3


def test_sliding_window_never_allows_more_than_the_limit_in_any_window() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock, windows=[SlidingWindow(Window(15, 10.0))])
    sent: list[float] = []

    async def go() -> None:
        for _ in range(50):
            permit = await limiter.acquire()
            sent.append(clock.monotonic())
            permit.settle(clock.monotonic())  # answered at once

    run(go())
    for i in range(len(sent) - 15):
        assert sent[i + 15] - sent[i] >= 10.0
    # and it is not slower than needed: 50 requests need 3 full windows of waiting
    assert sent[-1] - sent[0] <= 3 * 10.05 + 0.01


def test_a_request_occupies_its_slot_until_a_window_after_its_answer() -> None:
    """The server stamps a request between our send and its answer: count from the answer."""
    clock = FakeClock()
    limiter = RateLimiter(clock=clock, windows=[SlidingWindow(Window(1, 1.0))])

    async def go() -> float:
        start = clock.monotonic()
        first = await limiter.acquire()
        clock.advance(0.4)  # the answer takes 0.4 s
        first.settle(clock.monotonic())
        await limiter.acquire()
        return clock.monotonic() - start

    assert run(go()) == pytest.approx(0.4 + 1.05, abs=1e-3)


def test_requests_in_flight_hold_their_slots_until_answered() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock, windows=[SlidingWindow(Window(2, 1.0))])

    async def go() -> float:
        first = await limiter.acquire()
        await limiter.acquire()
        third = asyncio.ensure_future(limiter.acquire())
        start = clock.monotonic()
        for _ in range(50):
            await asyncio.sleep(0)  # the third keeps checking, the fake time runs on
        assert clock.monotonic() - start > 1.05  # a window has passed since both were sent...
        assert not third.done()  # ...but both are still in flight
        answered = clock.monotonic()
        first.settle(answered)
        await third
        return clock.monotonic() - answered

    assert run(go()) >= 1.05 - 1e-6  # (float error at a 2026 epoch)


@respx.mock(assert_all_called=True)
def test_concurrent_requests_rejected_with_the_same_token_renew_it_only_once(
    respx_mock: respx.MockRouter,
) -> None:
    """Parallel page fetches share one token; Guesty allows 5 tokens a day."""
    clock = FakeClock()
    fetches: list[str] = []
    answered = 0

    async def answer(request: httpx.Request) -> httpx.Response:
        nonlocal answered
        if request.headers["Authorization"] == "Bearer tok-1":
            # Rejections arrive one by one, each after the previous one was renewed.
            answered += 1
            for _ in range(20 * answered):
                await asyncio.sleep(0)
            return httpx.Response(401, json={})
        return httpx.Response(200, json={"ok": True})

    respx_mock.get(f"{BASE}/items").mock(side_effect=answer)
    client = make_client(clock, auth=token_auth(fetches))

    async def four() -> list[Any]:
        return list(await asyncio.gather(*(client.get_json("items") for _ in range(4))))

    assert run(four()) == [{"ok": True}] * 4
    assert fetches == ["tok-1", "tok-2"]
