"""The fault injector on its own: spec parsing, schedules, and what each kind does on the wire."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from pms_cli.sandbox.faults import (
    Fault,
    FaultInjector,
    FaultSpecError,
    InjectedReset,
    InjectedTimeout,
    parse_fault,
)


def pages_app() -> Starlette:
    async def items(request: Request) -> JSONResponse:
        page = int(request.query_params.get("page", "1"))
        return JSONResponse({"total": 6, "items": [{"id": page * 10 + i} for i in range(3)]})

    return Starlette(routes=[Route("/items", items)])


def get(injector: FaultInjector, page: int = 1) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=injector)
        async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
            return await client.get("/items", params={"page": page})

    return asyncio.run(go())


def test_a_spec_string_becomes_a_fault() -> None:
    fault = parse_fault("5xx:status=502,burst=3,every=10,path=reservations")
    assert (fault.kind, fault.status, fault.burst, fault.every, fault.path) == (
        "5xx",
        502,
        3,
        10,
        "reservations",
    )
    assert parse_fault(fault.describe()) == fault


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        ("teapot", "unknown fault kind"),
        ("429:every", "not key=value"),
        ("429:often=3", "unknown key"),
        ("429:every=x", "not a number"),
        ("5xx:every=2,burst=3", "overlap"),
        ("reset:probability=2", "between 0 and 1"),
    ],
)
def test_a_bad_spec_says_what_is_wrong(spec: str, complaint: str) -> None:
    with pytest.raises(FaultSpecError, match=complaint):
        parse_fault(spec)


def test_bursts_start_at_start_and_repeat_every_n_requests_up_to_times() -> None:
    injector = FaultInjector(pages_app(), [Fault("5xx", start=2, every=3, burst=2, times=2)])
    statuses = [get(injector).status_code for _ in range(10)]
    assert statuses == [200, 503, 503, 200, 503, 503, 200, 200, 200, 200]
    assert injector.injected["5xx"] == 4
    assert injector.requests == 10


def test_a_429_carries_retry_after_unless_it_is_bare() -> None:
    told = get(FaultInjector(pages_app(), [Fault("429", retry_after=7)]))
    bare = get(FaultInjector(pages_app(), [Fault("429-bare")]))
    assert (told.status_code, told.headers["retry-after"]) == (429, "7")
    assert bare.status_code == 429 and "retry-after" not in bare.headers


def test_resets_and_timeouts_reach_the_client_as_transport_errors() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    with pytest.raises(InjectedReset):
        get(FaultInjector(pages_app(), [Fault("reset")]))
    with pytest.raises(InjectedTimeout):
        get(FaultInjector(pages_app(), [Fault("timeout", delay=30)], sleep=sleep))
    assert issubclass(InjectedReset, httpx.TransportError) and slept == [30]


def test_truncated_and_malformed_bodies_are_not_json() -> None:
    for kind in ("truncate", "malformed"):
        response = get(FaultInjector(pages_app(), [Fault(kind)]))
        assert response.status_code == 200
        assert int(response.headers["content-length"]) == len(response.content)
        with pytest.raises(ValueError):
            json.loads(response.content)


def test_duplicates_repeat_the_previous_pages_last_records() -> None:
    injector = FaultInjector(pages_app(), [Fault("duplicate", start=2, records=2)])
    get(injector, page=1)
    ids = [r["id"] for r in get(injector, page=2).json()["items"]]
    assert ids == [11, 12, 20, 21, 22]


def test_drift_changes_the_named_field_of_the_first_records() -> None:
    def items(fault: Fault) -> list[dict[str, Any]]:
        body = get(FaultInjector(pages_app(), [fault])).json()
        return list(body["items"])

    assert items(Fault("drift", mode="missing", field="id", records=1))[0] == {}
    assert items(Fault("drift", mode="rename", field="id", records=0))[2] == {"idRenamed": 12}
    assert items(Fault("drift", mode="type", field="id"))[0] == {"id": {"value": 10}}


def test_hooks_run_before_the_request_reaches_the_sandbox() -> None:
    seen: list[str] = []
    injector = FaultInjector(
        pages_app(),
        [Fault("mutate", start=2, records=3)],
        hooks={"mutate": lambda fault: seen.append(f"mutate {fault.records}")},
    )
    get(injector)
    get(injector)
    assert seen == ["mutate 3"]


def test_sandbox_serve_rejects_a_bad_fault_with_error_and_hint(pms: Any) -> None:
    result = pms("sandbox", "serve", "--fault", "429:often=3")
    assert result.code == 2
    assert "Error: --fault: unknown key 'often'" in result.stderr
    assert "Hint:" in result.stderr and "--fault help" in result.stderr
