"""The receiver: ``POST /webhooks/{provider}/{connection_id}`` and ``GET /healthz``.

Order of work for a delivery, each step before the next:

1. body size capped while reading (413), connection looked up, secrets loaded;
2. ``spec.verify`` on the raw bytes — any failure is 401 with the same body whatever the
   reason (unknown connection, missing/wrong secret, bad signature, stale timestamp), counted by
   reason in ``metrics``; no detail leaves the process;
3. JSON decoded and the changes named (400 on garbage, kept as an ``invalid`` inbox row);
4. one inbox row per change, insert-or-ignore on the provider's event identity — committed
   **before** the 2xx; a store failure answers 503 so the provider redelivers.

The applier runs beside it (lifespan); on start it replays whatever a crash left in the inbox.
The access log is off on purpose: Smoobu's URL carries its token.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pms_cli.errors import PmsError
from pms_cli.providers import get_provider
from pms_cli.redact import redact_card_data, redact_text, register_secret
from pms_cli.stores.base import Connection, Store, WebhookEventRow
from pms_cli.sync.session import Runtime
from pms_cli.webhooks import secrets as webhook_secrets
from pms_cli.webhooks import specs
from pms_cli.webhooks.applier import Applier, ApplierOptions
from pms_cli.webhooks.base import Delivery, Parsed, Rejected, WebhookSpec, check_ids

log = logging.getLogger("pms.webhooks")

MAX_BODY_BYTES = 1_048_576
INVALID_EXCERPT = 500
MAX_JSON_DEPTH = 64
"""Deepest nesting a delivery may have; providers send a handful of levels. Deeper bodies are
400: they would otherwise hit recursion limits in the decoder, the dedupe key or the store."""


def check_depth(value: Any, limit: int) -> None:
    """ValueError when ``value`` (decoded JSON) nests deeper than ``limit``; iterative, so a
    hostile document cannot exhaust the stack here."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            raise ValueError(f"JSON nested deeper than {limit} levels")
        stack.extend((child, depth + 1) for child in children)


@dataclass
class ReceiverOptions:
    max_body_bytes: int = MAX_BODY_BYTES
    apply: bool = True
    """Run the applier in this process (a second receiver on the same store may set False)."""
    secret_ttl_seconds: float = 30.0
    """Secrets are re-read after this long: a rotated token is accepted within 30 s."""
    shutdown_grace_seconds: float = 10.0
    retry_after_seconds: int = 30
    """``Retry-After`` of a 503 when the store is down (providers may or may not honour it)."""
    applier: ApplierOptions = field(default_factory=ApplierOptions)


class _SecretCache:
    """Webhook secrets, re-read after ``ttl`` (rotations apply soon); the connection row is
    read on every delivery, so one disconnected (by `pms disconnect` in another process) is
    refused from its next delivery on, not after the cache expires."""

    def __init__(self, store: Store, env: Mapping[str, str], ttl: float) -> None:
        self.store, self.env, self.ttl = store, env, ttl
        self._entries: dict[str, tuple[float, dict[str, SecretStr]]] = {}

    async def get(self, connection_id: str) -> tuple[Connection, dict[str, SecretStr]] | None:
        conn = await asyncio.to_thread(self.store.get_connection, connection_id)
        if conn is None or conn.status == "disconnected":
            self._entries.pop(connection_id, None)
            return None
        hit = self._entries.get(connection_id)
        if hit is not None and hit[0] > time.monotonic():
            return conn, hit[1]
        secrets = await asyncio.to_thread(webhook_secrets.load, conn, self.env)
        for value in secrets.values():
            register_secret(value.get_secret_value())  # masked in any later log line
        self._entries[connection_id] = (time.monotonic() + self.ttl, secrets)
        return conn, secrets


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


UNAUTHORIZED = 401


class Receiver:
    """State of one receiver process: store, secrets cache, counters, the applier."""

    def __init__(self, store: Store, runtime: Runtime, options: ReceiverOptions) -> None:
        self.store = store
        self.runtime = runtime
        self.options = options
        self.metrics: Counter[str] = Counter()
        self.secrets = _SecretCache(store, runtime.env, options.secret_ttl_seconds)
        self.applier = Applier(store, runtime, options.applier)
        self.specs = specs()

    # --- request handling ---------------------------------------------------------------

    async def receive(self, request: Request) -> Response:
        spec = self.specs.get(request.path_params["provider"])
        if spec is None:
            self.metrics["rejected.unknown_provider"] += 1
            return _error(404, "not found")
        body = await self._read_body(request)
        if body is None:
            self.metrics["rejected.oversized"] += 1
            return _error(413, "payload too large")
        delivery = Delivery(
            body=body,
            headers={k.lower(): v for k, v in request.headers.items()},
            query=dict(request.query_params),
        )
        try:
            found = await self.secrets.get(request.path_params["connection_id"])
        except Exception as exc:  # the store (or the secret store) is down: redeliver later
            return self._unavailable("connection lookup", exc)
        try:
            if found is None:
                raise Rejected("unknown_connection")
            conn, secrets = found
            if conn.provider != spec.provider or conn.status == "disconnected":
                raise Rejected("unknown_connection")
            try:
                spec.verify(delivery, secrets, self.runtime.clock.time())
            except Rejected:
                raise
            except Exception:
                # Whatever a hostile header does to a verifier (a non-ASCII byte in Basic
                # auth, a malformed signature), it proves nothing: 401 like any other failure.
                raise Rejected("bad_credentials") from None
        except Rejected as verdict:
            self.metrics[f"rejected.{verdict.reason}"] += 1
            log.info("webhook rejected: provider=%s reason=%s", spec.provider, verdict.reason)
            return _error(UNAUTHORIZED, "unauthorized")
        try:
            return await self._accept(spec, conn, delivery)
        except Exception as exc:
            return self._unavailable("storing", exc)

    def _unavailable(self, step: str, exc: Exception) -> Response:
        """503 + ``Retry-After``: nothing was stored, so the provider's redelivery is what keeps
        the event. A store error is expected here (the database is down); anything else is
        logged by type only, never with a traceback or the body."""
        self.metrics["store_errors"] += 1
        why = redact_text(exc.message) if isinstance(exc, PmsError) else type(exc).__name__
        log.warning("webhook not stored (%s failed; will be redelivered): %s", step, why)
        return JSONResponse(
            {"error": "try again later"},
            status_code=503,
            headers={"Retry-After": str(self.options.retry_after_seconds)},
        )

    async def _read_body(self, request: Request) -> bytes | None:
        limit = self.options.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return None
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    async def _accept(self, spec: WebhookSpec, conn: Connection, delivery: Delivery) -> Response:
        now = datetime.fromtimestamp(self.runtime.clock.time(), UTC)
        try:
            body = spec.json_body(delivery)
            check_depth(body, MAX_JSON_DEPTH)
            parsed: Parsed = spec.parse(body, delivery)
            check_ids(get_provider(spec.provider), parsed)
            key = spec.dedupe_key(body, delivery)
        except (ValueError, TypeError, LookupError, AttributeError, RecursionError) as exc:
            self.metrics["rejected.malformed"] += 1
            await self._store_invalid(spec, conn, delivery, now, type(exc).__name__)
            return _error(400, "bad request")
        rows = self._rows(spec, conn, body, parsed, key, now)
        new = 0
        for row in rows:
            if await asyncio.to_thread(self.store.inbox_add, row):
                new += 1
        self.metrics["accepted"] += 1
        self.metrics["duplicates"] += len(rows) - new
        if parsed.ignored:
            self.metrics["ignored"] += 1
        if new:
            self.applier.wake.set()
        return JSONResponse({"ok": True})

    def _rows(
        self,
        spec: WebhookSpec,
        conn: Connection,
        body: Any,
        parsed: Parsed,
        key: str,
        now: datetime,
    ) -> list[WebhookEventRow]:
        def row(dedupe: str, payload: dict[str, Any], status: str) -> WebhookEventRow:
            return WebhookEventRow(
                id=str(uuid.uuid4()),
                provider=spec.provider,
                connection_id=conn.id,
                organization_id=conn.organization_id,
                dedupe_key=dedupe,
                payload=payload,
                received_at=now,
                status=status,
            )

        if not parsed.changes:
            return [row(key, {"body": body, "ignored": parsed.ignored}, "ignored")]
        many = len(parsed.changes) > 1
        return [
            row(
                f"{key}#{i}" if many else key,
                {"body": body, "change": change.as_dict()},
                "pending",
            )
            for i, change in enumerate(parsed.changes)
        ]

    async def _store_invalid(
        self, spec: WebhookSpec, conn: Connection, delivery: Delivery, now: datetime, why: str
    ) -> None:
        # Authenticated but unusable: kept so someone can look at it, but never verbatim (it
        # may be a form full of card data): size, type, hash and a bounded, redacted excerpt.
        text = delivery.body[:INVALID_EXCERPT].decode("utf-8", "replace")
        row = WebhookEventRow(
            id=str(uuid.uuid4()),
            provider=spec.provider,
            connection_id=conn.id,
            organization_id=conn.organization_id,
            dedupe_key=f"invalid:{uuid.uuid4()}",
            payload={
                "size": len(delivery.body),
                "content_type": delivery.headers.get("content-type", ""),
                "sha256": hashlib.sha256(delivery.body).hexdigest(),
                "excerpt": redact_card_data(redact_text(text)),
            },
            received_at=now,
            status="invalid",
            error=f"unparseable delivery ({why})",
        )
        with contextlib.suppress(PmsError):
            await asyncio.to_thread(self.store.inbox_add, row)

    async def healthz(self, request: Request) -> Response:
        """200 while the store answers; 503 naming the store as unavailable otherwise (a load
        balancer or orchestrator should stop sending deliveries this receiver cannot keep)."""
        metrics = dict(sorted(self.metrics.items()))
        try:
            await asyncio.to_thread(self.store.get_connection, "healthz")  # a key lookup
        except Exception as exc:
            why = redact_text(exc.message) if isinstance(exc, PmsError) else type(exc).__name__
            return JSONResponse(
                {"ok": False, "store": "unavailable", "error": why, "metrics": metrics},
                status_code=503,
                headers={"Retry-After": str(self.options.retry_after_seconds)},
            )
        return JSONResponse({"ok": True, "store": "ok", "metrics": metrics})

    # --- lifespan -----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        stop = asyncio.Event()
        task: asyncio.Task[None] | None = None
        if self.options.apply:
            replayed = await asyncio.to_thread(self.store.inbox_recover)
            if replayed:
                log.info("webhook inbox: replaying %d events left by a stopped receiver", replayed)
            task = asyncio.create_task(self.applier.run(stop))
        try:
            yield
        finally:
            stop.set()
            if task is not None:
                # Let the batch in hand finish; one stuck behind a provider's backoff is
                # cancelled instead: its leased rows are replayed on the next start.
                with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(task, self.options.shutdown_grace_seconds)
            await self.applier.aclose()


def create_app(store: Store, runtime: Runtime, options: ReceiverOptions | None = None) -> Starlette:
    """The ASGI app; ``app.state.receiver`` holds the metrics and the applier."""
    receiver = Receiver(store, runtime, options or ReceiverOptions())
    app = Starlette(
        routes=[
            Route("/webhooks/{provider}/{connection_id}", receiver.receive, methods=["POST"]),
            Route("/healthz", receiver.healthz, methods=["GET"]),
        ],
        lifespan=receiver.lifespan,
    )
    app.state.receiver = receiver
    return app
