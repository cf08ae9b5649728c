"""Fault injection for the sandboxes: one ASGI middleware that wraps any provider sandbox app.

The middleware knows nothing about a provider. It counts the requests it sees, decides from a
deterministic schedule (or a seeded probability) whether to misbehave, and either answers by
itself (429, 5xx, a reset connection, a timeout), rewrites the sandbox's answer (truncated or
malformed JSON, records repeated from the previous page, drifted record fields, an error body
echoing the request's credentials), or calls a hook on the sandbox object before passing the
request on (tokens expire, records are inserted/updated between two pages).

Used three ways:

* ``pms sandbox serve --fault 429:every=5,burst=3 --fault reset:probability=0.05``;
* tests: ``FaultInjector(mounted.app, [Fault("5xx", burst=2)], hooks=sandbox_hooks(mounted))``
  behind ``httpx.ASGITransport`` (no sockets, no real sleeps: pass ``sleep=``);
* ``bench/faults.py``: the fault × provider matrix.

A spec string is ``KIND[:name=value,...]``; see ``Fault`` for the keys and ``KINDS`` for kinds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "KINDS",
    "Fault",
    "FaultInjector",
    "FaultSpecError",
    "InjectedReset",
    "InjectedTimeout",
    "parse_fault",
    "quiet_injected_errors",
    "sandbox_hooks",
    "with_faults",
]

#: Every kind of fault, with what it does to a request it hits.
KINDS: Mapping[str, str] = {
    "429": "answer 429 with Retry-After (retry_after= seconds)",
    "429-bare": "answer 429 without Retry-After",
    "5xx": "answer a server error (status=, default 503)",
    "slow": "wait delay= seconds, then answer normally",
    "timeout": "wait delay= seconds, then drop the request (the client times out)",
    "reset": "start the response, then drop the connection mid-body",
    "truncate": "answer the first half of the real JSON body",
    "malformed": "answer 200 with a body that is not JSON",
    "duplicate": "repeat records= records of the previous page at the start of this one",
    "drift": "change field= (* = all but the id) of records= records (0 = all) of a page: "
    "mode=missing|extra|rename|type",
    "echo": "answer status= (default 400) echoing the request's headers, query and body",
    "token-expiry": "expire the sandbox's access tokens, then answer normally",
    "mutate": "insert and update records= records in the sandbox, then answer normally",
}

_RESPONDS = frozenset({"429", "429-bare", "5xx", "timeout", "reset", "echo"})
_REWRITES = frozenset({"truncate", "malformed", "duplicate", "drift"})
_HOOKED = frozenset({"token-expiry", "mutate"})
_DRIFT_MODES = ("missing", "extra", "rename", "type")

Hook = Callable[["Fault"], None]
Sleep = Callable[[float], Awaitable[None]]


class FaultSpecError(ValueError):
    """A ``--fault`` spec that cannot be understood (the message says which part)."""


class InjectedReset(httpx.RemoteProtocolError):
    """Raised by the app after a partial body: uvicorn drops the socket, and behind
    ``httpx.ASGITransport`` the client sees this transport error directly."""

    def __init__(self) -> None:
        super().__init__("sandbox fault: connection reset mid-body")


class InjectedTimeout(httpx.ReadTimeout):
    """Raised after ``delay``: over a socket the client has given up already; behind
    ``httpx.ASGITransport`` the client sees this timeout directly."""

    def __init__(self) -> None:
        super().__init__("sandbox fault: no answer in time")


@dataclass
class Fault:
    """One kind of misbehaviour and when it strikes.

    Schedule (counted over the requests this fault is eligible for, 1-based): the first burst
    starts at request ``start`` and hits ``burst`` consecutive requests; with ``every`` > 0 a
    new burst starts every ``every`` requests after that; ``times`` caps the number of bursts.
    With ``probability`` set, each eligible request starts a burst with that chance instead
    (seeded, so a run is reproducible). ``path`` limits the fault to request paths containing
    that text (e.g. ``reservations``).
    """

    kind: str
    start: int = 1
    every: int = 0
    burst: int = 1
    times: int | None = None
    probability: float | None = None
    path: str | None = None
    status: int = 0  # 0 = the kind's default
    retry_after: float = 1.0
    delay: float = 0.0
    records: int = 1
    mode: str = "missing"
    field: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise FaultSpecError(f"unknown fault kind {self.kind!r}; known: {', '.join(KINDS)}")
        if self.start < 1 or self.burst < 1 or self.every < 0 or self.records < 0:
            raise FaultSpecError("start and burst must be >= 1; every and records >= 0")
        if self.every and self.every < self.burst:
            raise FaultSpecError("every must be >= burst (bursts would overlap)")
        if self.probability is not None and not 0.0 <= self.probability <= 1.0:
            raise FaultSpecError("probability must be between 0 and 1")
        if self.mode not in _DRIFT_MODES:
            raise FaultSpecError(f"drift mode must be one of {', '.join(_DRIFT_MODES)}")
        if self.status == 0:
            self.status = {"5xx": 503, "echo": 400}.get(self.kind, 429)

    def describe(self) -> str:
        default = Fault(self.kind)
        parts = [
            f"{f.name}={getattr(self, f.name)}"
            for f in fields(self)
            if f.name != "kind" and getattr(self, f.name) != getattr(default, f.name)
        ]
        return self.kind + (":" + ",".join(parts) if parts else "")


_INT_KEYS = {"start", "every", "burst", "times", "status", "records"}
_FLOAT_KEYS = {"probability", "retry_after", "delay"}
_STR_KEYS = {"path", "mode", "field"}


def parse_fault(spec: str) -> Fault:
    """``KIND[:name=value,...]`` → ``Fault`` (e.g. ``5xx:status=502,burst=3,every=10``)."""
    kind, _, rest = spec.strip().partition(":")
    kind = kind.strip()
    if kind not in KINDS:
        raise FaultSpecError(f"unknown fault kind {kind!r}; known: {', '.join(KINDS)}")
    values: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not eq:
            raise FaultSpecError(f"{item!r} in {spec!r} is not key=value")
        try:
            if key in _INT_KEYS:
                values[key] = int(raw)
            elif key in _FLOAT_KEYS:
                values[key] = float(raw)
            elif key in _STR_KEYS:
                values[key] = raw.strip()
            else:
                known = ", ".join(sorted(_INT_KEYS | _FLOAT_KEYS | _STR_KEYS))
                raise FaultSpecError(f"unknown key {key!r} in {spec!r}; known: {known}")
        except ValueError as exc:
            if isinstance(exc, FaultSpecError):
                raise
            raise FaultSpecError(f"{key}={raw!r} in {spec!r} is not a number") from None
    return Fault(kind, **values)


@dataclass
class _Schedule:
    fault: Fault
    rng: random.Random
    seen: int = 0
    bursts: int = 0
    left: int = 0  # requests still to hit in the current burst

    def hits(self) -> bool:
        """Count one eligible request; True when the fault strikes it."""
        f = self.fault
        self.seen += 1
        if self.left == 0 and (f.times is None or self.bursts < f.times):
            if f.probability is not None:
                begins = self.seen >= f.start and self.rng.random() < f.probability
            else:
                offset = self.seen - f.start
                begins = offset == 0 or (offset > 0 and f.every > 0 and offset % f.every == 0)
            if begins:
                self.bursts += 1
                self.left = f.burst
        if self.left:
            self.left -= 1
            return True
        return False


@dataclass
class FaultInjector:
    """ASGI middleware: ``app`` behaves, except where one of ``faults`` strikes.

    ``hooks`` maps ``token-expiry`` / ``mutate`` to callables acting on the sandbox (see
    ``sandbox_hooks``). ``sleep`` is what ``slow`` and ``timeout`` wait with: pass a fake
    clock's sleep in tests. ``injected`` counts strikes per kind (read by tests and the bench).
    """

    app: ASGIApp
    faults: Sequence[Fault] = ()
    hooks: Mapping[str, Hook] = field(default_factory=dict)
    sleep: Sleep = asyncio.sleep
    seed: int = 0
    injected: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    """HTTP requests seen, faulted or not (a kill test waits for the N-th)."""

    def __post_init__(self) -> None:
        # uvicorn serves one event loop, but tests may drive hooks from another thread.
        self._lock = threading.Lock()
        self._last_page: dict[str, list[Any]] = {}
        self.set_faults(self.faults)

    def set_faults(self, faults: Sequence[Fault]) -> None:
        """Replace the faults (schedules restart) while the app keeps serving."""
        rng = random.Random(self.seed)
        with self._lock:
            self.faults = list(faults)
            self._schedules = [_Schedule(f, random.Random(rng.random())) for f in self.faults]

    def _pick(self, path: str) -> Fault | None:
        chosen = None
        with self._lock:
            self.requests += 1
            for schedule in self._schedules:
                wanted = schedule.fault.path
                if wanted and wanted not in path:
                    continue
                # Every schedule counts the request, so adding a fault never shifts another's.
                if schedule.hits() and chosen is None:
                    chosen = schedule.fault
            if chosen is not None:
                self.injected[chosen.kind] += 1
        return chosen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        fault = self._pick(path)
        if fault is None:
            await self._passthrough(scope, receive, send, path)
            return
        if fault.kind in _RESPONDS:
            await self._respond(fault, scope, receive, send)
        elif fault.kind in _HOOKED:
            hook = self.hooks.get(fault.kind)
            if hook is not None:
                hook(fault)
            await self._passthrough(scope, receive, send, path)
        elif fault.kind == "slow":
            await self.sleep(fault.delay)
            await self._passthrough(scope, receive, send, path)
        else:
            await self._rewrite(fault, scope, receive, send, path)

    # ------------------------------------------------------------------ answering ourselves

    async def _respond(self, fault: Fault, scope: Scope, receive: Receive, send: Send) -> None:
        kind = fault.kind
        if kind == "timeout":
            await self.sleep(fault.delay)
            raise InjectedTimeout()
        if kind == "reset":
            # Promise more bytes than are sent, then stop: a socket closed mid-body.
            await send(_start(200, b'{"result": [{"id": 1}]}' * 4))
            await send({"type": "http.response.body", "body": b'{"result": [', "more_body": True})
            raise InjectedReset()
        headers: list[tuple[bytes, bytes]] = []
        if kind == "429":
            headers.append((b"retry-after", str(_whole(fault.retry_after)).encode()))
            body: Any = {"message": "Too many requests (sandbox fault)"}
        elif kind == "429-bare":
            body = {"message": "Too many requests (sandbox fault)"}
        elif kind == "5xx":
            body = {"message": "Internal server error (sandbox fault)"}
        else:  # echo: a careless provider quoting the request back, credentials included
            body = {
                "message": "Bad request (sandbox fault)",
                "request": {
                    "path": scope.get("path"),
                    "query": scope.get("query_string", b"").decode("latin-1"),
                    "headers": {
                        k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]
                    },
                    "body": (await _read_body(receive)).decode("latin-1"),
                },
            }
        payload = json.dumps(body).encode()
        await send(_start(fault.status, payload, headers))
        await send({"type": "http.response.body", "body": payload})

    # ------------------------------------------------------------------ rewriting the sandbox

    async def _call(self, scope: Scope, receive: Receive) -> tuple[Message, bytes]:
        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        return start, b"".join(chunks)

    async def _passthrough(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        start, body = await self._call(scope, receive)
        # Remember the records of each successful page: `duplicate` repeats them later.
        if start.get("status") == 200:
            records = _records_of(_loads(body))
            if records:
                with self._lock:
                    self._last_page[path] = list(records)
        await send(start)
        await send({"type": "http.response.body", "body": body})

    async def _rewrite(
        self, fault: Fault, scope: Scope, receive: Receive, send: Send, path: str
    ) -> None:
        start, body = await self._call(scope, receive)
        status = int(start.get("status", 500))
        if status == 200:
            if fault.kind == "truncate":
                body = body[: len(body) // 2]
            elif fault.kind == "malformed":
                body = b"<html><body>502 Bad Gateway</body></html>"
            else:
                body = self._edit_records(fault, body, path)
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        await send(_start(status, body, headers))
        await send({"type": "http.response.body", "body": body})

    def _edit_records(self, fault: Fault, body: bytes, path: str) -> bytes:
        data = _loads(body)
        records = _records_of(data)
        if records is None:
            return body
        with self._lock:
            previous = self._last_page.get(path, [])
            if records:
                self._last_page[path] = list(records)
        if fault.kind == "duplicate":
            # Records of the previous page again (as a page window shifted by inserts would
            # show them); on a first page, its own first records.
            source = previous or records
            records[:0] = [json.loads(json.dumps(r)) for r in source[-fault.records :]]
        else:
            for record in records[: fault.records or None]:
                if isinstance(record, dict):
                    _drift(record, fault)
        return json.dumps(data).encode()


# ---------------------------------------------------------------------- helpers


def _whole(seconds: float) -> int:
    return max(0, round(seconds))


def _start(status: int, body: bytes, headers: Sequence[tuple[bytes, bytes]] = ()) -> dict[str, Any]:
    kept = [(k, v) for k, v in headers if k.lower() not in (b"content-length", b"content-type")]
    return {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *kept,
        ],
    }


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _loads(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _records_of(data: Any) -> list[Any] | None:
    """The list of records in a response: the body itself or the first list of objects."""
    if isinstance(data, list):
        return data if all(isinstance(r, dict) for r in data) else None
    if isinstance(data, dict):
        for value in data.values():
            if isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
                return value
    return None


_ID_KEYS = ("id", "_id")


def _drift(record: dict[str, Any], fault: Fault) -> None:
    """Change one field the way a provider's schema drift would."""
    if fault.field == "*":
        for key in [k for k in record if k not in _ID_KEYS]:
            _drift(record, replace(fault, field=key))
        return
    name = fault.field or next((k for k in record if k not in _ID_KEYS), None)
    if name is None:
        return
    if fault.mode == "extra":
        record[f"{name}_v2"] = {"unexpected": [1, "two", None]}
    elif name not in record:
        return
    elif fault.mode == "missing":
        del record[name]
    elif fault.mode == "rename":
        record[f"{name}Renamed"] = record.pop(name)
    else:  # a wrong type: lists/objects become text, scalars become an object
        value = record[name]
        record[name] = (
            "not-a-" + type(value).__name__ if isinstance(value, list | dict) else {"value": value}
        )


# ---------------------------------------------------------------------- sandbox hooks

_MUTATORS = (
    ("add_reservations", "modify_reservations"),
    ("add_bookings", "modify_bookings"),
)
_TOKEN_EXPIRY = ("expire_access_tokens", "revoke_all_tokens")


def sandbox_hooks(state: Any) -> dict[str, Hook]:
    """Hooks for ``token-expiry`` and ``mutate`` from a sandbox object's own methods.

    Token expiry prefers ``expire_access_tokens`` (Beds24: refresh tokens survive) over
    ``revoke_all_tokens`` (Hostaway, Guesty: only access tokens exist). Sandboxes without tokens
    (API keys: Smoobu, Lodgify) get no ``token-expiry`` hook, and the fault then does nothing.
    """
    hooks: dict[str, Hook] = {}
    expire = next((getattr(state, n) for n in _TOKEN_EXPIRY if hasattr(state, n)), None)
    if expire is not None:
        hooks["token-expiry"] = lambda fault: expire()
    for add_name, modify_name in _MUTATORS:
        add, modify = getattr(state, add_name, None), getattr(state, modify_name, None)
        if add is not None and modify is not None:

            def mutate(fault: Fault, add: Any = add, modify: Any = modify) -> None:
                if fault.records:
                    add(fault.records)
                    modify(fault.records)

            hooks["mutate"] = mutate
            break
    return hooks


def with_faults(
    mounted: Any, faults: Sequence[Fault], *, sleep: Sleep | None = None, seed: int = 0
) -> Any:
    """A copy of a ``MountedSandbox`` whose app is wrapped in a ``FaultInjector``.

    The injector is at ``result.extra["faults"]``.
    """
    injector = FaultInjector(
        mounted.app,
        [replace(f) for f in faults],
        hooks=sandbox_hooks(mounted.state),
        sleep=sleep or asyncio.sleep,
        seed=seed,
    )
    return replace(mounted, app=injector, extra={**mounted.extra, "faults": injector})


class _DropInjected(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, InjectedReset | InjectedTimeout)


def quiet_injected_errors() -> None:
    """Keep uvicorn from logging a traceback for every reset or timeout injected on purpose."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DropInjected) for f in logger.filters):
        logger.addFilter(_DropInjected())
