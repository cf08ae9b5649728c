"""Supabase store: the Store protocol over Supabase's REST API (PostgREST) with supabase-py.

Selected by ``PMS_SUPABASE_URL`` + ``PMS_SUPABASE_SERVICE_KEY``. Same tables as the Postgres
store (``pms db sql`` creates them); every call is one or a few PostgREST requests made with
supabase-py's ``postgrest`` client, authenticated with the service-role key (which bypasses
row-level security, as a writer must).

What REST can and cannot promise, and what this store does about it:

- **One request, one transaction.** PostgREST runs each request in its own transaction, so a
  batch sent as one upsert is all-or-nothing. A batch bigger than one request (``batch_rows`` /
  ``batch_bytes``, or split after a 413) is several transactions; the engine advances a cursor
  only after ``upsert_records`` returned, so a failure halfway leaves rows that the rerun
  upserts again, identically (every write is keyed and idempotent).
- **Upserts** are ``POST /rest/v1/<table>?on_conflict=<natural key>`` with
  ``Prefer: resolution=merge-duplicates, return=minimal``; keys are deduplicated within a batch
  first (PostgreSQL refuses to update one row twice in one statement).
- **Reads are paged** (``limit``/``offset`` until an empty page): Supabase caps a response at
  ``db-max-rows`` (1000 by default) and says nothing when it truncates.
- **Locks** without a stored procedure: ``INSERT … ON CONFLICT DO NOTHING`` (``resolution=
  ignore-duplicates`` + ``return=representation``) is atomic, and a stale lease is removed with a
  DELETE conditioned on the stale owner, so two contenders can never both win.
- **Errors**: supabase-py's own retry of GETs is switched off (it sleeps for real and hides
  503s); transient failures are retried here a bounded number of times with an injectable
  sleep, and every PostgREST/gateway error becomes a ``StoreError`` with one of our codes and a
  hint (see ``_map_api_error``).
"""

from __future__ import annotations

import base64
import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit, urlunsplit

import httpx
from postgrest import APIError, CountMethod, SyncPostgrestClient
from postgrest.types import ReturnMethod
from pydantic import SecretStr

from pms_cli.errors import ConfigError, StoreError
from pms_cli.models import AnyRecord, Kind
from pms_cli.redact import redact_text, redact_url, register_secret
from pms_cli.stores import migrations, pgtext
from pms_cli.stores.base import Connection, Store, SyncRun, WebhookEventRow
from pms_cli.stores.schema import (
    CHECKPOINTS,
    CONNECTIONS,
    DATA_TABLES,
    LOCKS,
    PROPERTY_MAPPINGS,
    PURGED_ON_DISCONNECT,
    SYNC_LOG,
    SYNC_STATE,
    TOKEN_CACHE,
    WEBHOOK_EVENTS,
    Table,
)
from pms_cli.stores.sql import HOST, _pid_alive, record_row, utcnow

if TYPE_CHECKING:
    from postgrest import SyncSelectRequestBuilder
    from postgrest.base_request_builder import APIResponse

    from pms_cli.config import Settings

REST_PATH = "/rest/v1"
VERSION_TABLE = "pms_schema_version"

MIGRATE_HINT = (
    "Create or upgrade the pms tables in the Supabase project: `pms db sql` prints the migration "
    "to paste into the SQL editor (or save under supabase/migrations/), or set PMS_DATABASE_URL "
    "to the project's Postgres connection string and run `pms db migrate`. Just migrated? "
    "PostgREST reloads its schema cache within seconds (or run NOTIFY pgrst, 'reload schema')."
)
URL_HINT = (
    "Check PMS_SUPABASE_URL (https://<project-ref>.supabase.co, from Project Settings → API) "
    "and the network; unset PMS_SUPABASE_URL and PMS_SUPABASE_SERVICE_KEY to use another store."
)
KEY_HINT = (
    "Set PMS_SUPABASE_SERVICE_KEY to the project's service_role / secret key (Project Settings "
    "→ API keys); the anon/publishable key is limited by row-level security and cannot write."
)
RETRY_HINT = (
    "Rerun when Supabase is available: batches already written are kept and rewritten "
    "identically, and cursors only move after their rows are stored."
)

# Gateway / PostgREST answers worth retrying: the request may succeed a moment later.
TRANSIENT_STATUS = frozenset({429, 502, 503, 504, 520, 522, 523, 524})
TRANSIENT_CODES = frozenset({"PGRST000", "PGRST001", "PGRST002", "PGRST003"})
SCHEMA_CODES = frozenset(
    {"PGRST205", "PGRST204", "PGRST202", "PGRST200", "42P01", "42703", "42883", "3F000"}
)
AUTH_CODES = frozenset({"PGRST300", "PGRST301", "PGRST302", "PGRST303"})
# Every status an inbox row can have (base.WebhookEventRow); counted one by one because
# Supabase disables PostgREST aggregates (GROUP BY) by default.
INBOX_STATUSES = ("pending", "processing", "retry", "done", "failed", "ignored", "invalid")
IN_CHUNK = 100  # ids per `in.(…)` filter: keeps URLs far below proxies' limits


@dataclass
class RestStats:
    """Counters for benchmarks and debugging (requests sent, retries, 413 splits)."""

    requests: int = 0
    retries: int = 0
    splits: int = 0


def key_role(key: str) -> str | None:
    """The role a Supabase API key acts as, without verifying it (the server does that).

    Legacy keys are JWTs with a ``role`` claim (``anon`` / ``service_role``); new keys carry
    their kind in the prefix (``sb_publishable_…`` / ``sb_secret_…``). None when unknown.
    """
    if key.startswith("sb_secret_"):
        return "service_role"
    if key.startswith("sb_publishable_"):
        return "anon"
    parts = key.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, TypeError):
        return None
    role = payload.get("role") if isinstance(payload, dict) else None
    return role if isinstance(role, str) else None


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def encode_json(value: Any) -> bytes:
    """JSON exactly as postgrest-py encodes request bodies (so byte budgets are exact)."""
    return json.dumps(
        value, default=_json_default, ensure_ascii=False, separators=(",", ":"), allow_nan=False
    ).encode()


class _RestClient(httpx.Client):
    """Every PostgREST request passes here with its JSON body already encoded by postgrest-py:
    the one place where U+0000 escapes are replaced for every REST write (upserts, updates,
    the inbox), as ``pgtext`` does for the Postgres store."""

    def build_request(self, method: str, url: Any, **kwargs: Any) -> httpx.Request:
        content = kwargs.get("content")
        if isinstance(content, bytes) and b"\\u0000" in content:
            kwargs["content"] = pgtext.clean_json(content.decode()).encode()
        return super().build_request(method, url, **kwargs)


# Logical types whose Python values are already the JSON values PostgREST expects.
PASSTHROUGH = frozenset({"text", "int", "bool", "json"})


def to_wire(logical: str, value: Any) -> Any:
    """A Python value → the JSON value PostgREST casts into the column's type."""
    if value is None:
        return None
    if logical in ("ts", "date"):
        return value.isoformat()
    if logical == "money":
        return str(value)  # a string keeps every digit; PostgreSQL casts it to numeric
    if logical == "bytes":
        return "\\x" + bytes(value).hex()  # bytea's hex input format
    if logical == "real" and isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN/Infinity; an unknown coordinate is better than no row
    return value


def from_wire(logical: str, value: Any) -> Any:
    """A JSON value as PostgREST returns it → the Python value the other stores return."""
    if value is None:
        return None
    if logical == "ts":
        return datetime.fromisoformat(value).astimezone(UTC)
    if logical == "date":
        return date.fromisoformat(value)
    if logical == "money":
        return Decimal(str(value))  # selected as ::text, so no float ever holds it
    if logical == "bytes":
        text = str(value)
        return bytes.fromhex(text[2:] if text.startswith("\\x") else text)
    if logical == "real":
        return float(value)
    if logical == "bool":
        return bool(value)
    return value


def _select_list(table: Table) -> str:
    # numeric comes back as a JSON number (a float in Python): cast to text to keep cents exact.
    return ",".join(f"{n}::text" if t == "money" else n for n, t, _ in table.columns)


def normalise_url(url: str) -> str:
    """``https://ref.supabase.co`` from what a user may paste (trailing ``/``, ``/rest/v1``)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"PMS_SUPABASE_URL is not an http(s) URL: {redact_url(url)!r}",
            hint=URL_HINT,
            code="config_invalid",
        )
    path = parts.path.rstrip("/")
    if path.endswith(REST_PATH):
        path = path[: -len(REST_PATH)]
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


class SupabaseStore:
    """The Store protocol over Supabase's REST API; see the module docstring for guarantees."""

    def __init__(
        self,
        url: str,
        service_key: SecretStr | str,
        *,
        check_schema: bool = True,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 60.0,
        batch_rows: int = 500,
        batch_bytes: int = 4_000_000,
        page_rows: int = 1000,
        retries: int = 2,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        key = service_key if isinstance(service_key, SecretStr) else SecretStr(service_key)
        secret = key.get_secret_value().strip()
        register_secret(secret)
        self.url = normalise_url(url)
        self.description = f"supabase:{redact_url(self.url)}"
        if not secret:
            raise ConfigError(
                "PMS_SUPABASE_SERVICE_KEY is empty", hint=KEY_HINT, code="config_invalid"
            )
        if key_role(secret) in ("anon", "authenticated"):
            raise ConfigError(
                "PMS_SUPABASE_SERVICE_KEY holds the anon/publishable key, which cannot write "
                "the pms tables",
                hint=KEY_HINT,
                code="store_auth",
            )
        self.batch_rows = max(1, batch_rows)
        self.batch_bytes = max(1024, batch_bytes)
        self.page_rows = max(1, page_rows)
        self.retries = max(0, retries)
        self.sleep = sleep
        self.stats = RestStats()
        self._status = threading.local()
        self._http = _RestClient(
            transport=transport,
            timeout=httpx.Timeout(timeout, connect=10.0),
            event_hooks={"response": [self._remember_status]},
        )
        self._rest = SyncPostgrestClient(
            self.url + REST_PATH,
            # What supabase-py's create_client sends: the key as `apikey` for the API gateway
            # and as the bearer token PostgREST takes the role from.
            headers={
                "Accept": "application/json",
                "Content-Type": "application/json",
                "apikey": secret,
                "Authorization": f"Bearer {secret}",
            },
            http_client=self._http,
            # postgrest-py retries GET/HEAD on 503/520 with real, growing sleeps and then
            # returns the last answer: we retry ourselves (bounded, injectable sleep) instead.
            retry_enabled=False,
        )
        if check_schema:
            try:
                self.check_schema()
            except BaseException:
                self.close()
                raise

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> SupabaseStore:
        """The store ``open_store`` returns when PMS_SUPABASE_URL / _SERVICE_KEY are set."""
        if not settings.supabase_url or settings.supabase_service_key is None:
            missing = (
                "PMS_SUPABASE_URL" if not settings.supabase_url else "PMS_SUPABASE_SERVICE_KEY"
            )
            raise ConfigError(
                f"{missing} is not set (the Supabase store needs both PMS_SUPABASE_URL and "
                "PMS_SUPABASE_SERVICE_KEY)",
                hint=f"Set {missing}; {KEY_HINT}",
                code="config_invalid",
            )
        return cls(settings.supabase_url, settings.supabase_service_key, **kwargs)

    def close(self) -> None:
        self._http.close()

    # --- requests and errors --------------------------------------------------------------

    def _remember_status(self, response: httpx.Response) -> None:
        self._status.value = response.status_code

    def _execute(self, what: str, builder: Any) -> APIResponse:
        """Run one postgrest request; retry transient failures; map errors to StoreError."""
        attempt = 0
        while True:
            self._status.value = None
            self.stats.requests += 1
            try:
                result: APIResponse = builder.execute()
                return result
            except httpx.TransportError as exc:
                if attempt < self.retries:
                    attempt += 1
                    self._backoff(attempt)
                    continue
                kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
                raise StoreError(
                    f"cannot reach Supabase at {self.description} ({what} {kind}: "
                    f"{type(exc).__name__})",
                    hint=URL_HINT + " " + RETRY_HINT,
                    code="store_unreachable",
                ) from None
            except APIError as exc:
                status = getattr(self._status, "value", None)
                if attempt < self.retries and (
                    status in TRANSIENT_STATUS or exc.code in TRANSIENT_CODES
                ):
                    attempt += 1
                    self._backoff(attempt)
                    continue
                raise self._map_api_error(exc, status, what) from None

    def _backoff(self, attempt: int) -> None:
        self.stats.retries += 1
        self.sleep(min(0.5 * 2 ** (attempt - 1), 5.0))

    def _map_api_error(self, exc: APIError, status: int | None, what: str) -> StoreError:
        """PostgREST / gateway error → our code, message and hint (the one error table)."""
        code = str(exc.code or "")
        detail = redact_text(" ".join(str(exc.message or exc.details or "").split()))[:300]
        where = f"{what} at {self.description}"
        msg = f"Supabase refused {where}: {detail}" if detail else f"Supabase refused {where}"
        if code in SCHEMA_CODES:
            return StoreError(
                f"the pms schema is missing or outdated in {self.description} ({detail})",
                hint=MIGRATE_HINT,
                code="schema_missing",
                status=status,
            )
        if status == 401 or code in AUTH_CODES or code.startswith("28"):
            return StoreError(
                f"Supabase rejected PMS_SUPABASE_SERVICE_KEY ({where}: {detail})",
                hint=KEY_HINT,
                code="store_auth",
                status=status,
            )
        if code == "42501" or status == 403:
            return StoreError(msg, hint=KEY_HINT, code="store_permission", status=status)
        if code == "21000":
            return StoreError(
                f"{msg} (the same key twice in one batch)",
                hint="pms deduplicates keys before writing, so this is a bug: please report it "
                "with the output of `pms logs --failed --json`.",
                code="store_duplicate_key",
                status=status,
            )
        if code.startswith("22") or code in ("23502", "23514"):
            return StoreError(
                msg,
                hint="A value did not fit its column: compare the table with `pms db sql` "
                "(run `pms db migrate` if the schema is older than this pms) or report the "
                "record named above.",
                code="store_bad_value",
                status=status,
            )
        if code == "PGRST106":
            return StoreError(
                msg,
                hint="Expose the `public` schema in Project Settings → Data API.",
                code="store_config",
                status=status,
            )
        if status == 413 or code == "413":
            return StoreError(
                f"{msg} (request too large even for a single row)",
                hint="Raise the request body limit of the proxy in front of PostgREST.",
                code="store_payload_too_large",
                status=status,
            )
        if code == "57014":
            return StoreError(
                f"{msg} (statement timeout)",
                hint="Lower `sync.batch_size` in config.toml (PMS_SYNC__BATCH_SIZE) and rerun.",
                code="store_timeout",
                status=status,
            )
        if status in TRANSIENT_STATUS or code in TRANSIENT_CODES or (status or 0) >= 500:
            return StoreError(
                f"Supabase is unavailable ({where}: HTTP {status}, {detail or code})",
                hint=RETRY_HINT,
                code="store_unavailable",
                status=status,
            )
        if status == 404:
            return StoreError(
                f"no Supabase REST API at {self.description} ({what}: HTTP 404)",
                hint=URL_HINT,
                code="store_unreachable",
                status=status,
            )
        return StoreError(
            msg + (f" [{code}]" if code else ""), hint=RETRY_HINT, code="store", status=status
        )

    def _table(self, name: str) -> Any:
        return self._rest.table(name)

    def _rows(self, what: str, builder: Any) -> list[dict[str, Any]]:
        data = self._execute(what, builder).data
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise StoreError(
                f"{self.description} did not answer {what} with PostgREST JSON",
                hint=URL_HINT,
                code="store_unreachable",
            )
        return cast(list[dict[str, Any]], data)

    def _select_all(
        self,
        table: Table,
        filters: Callable[[Any], Any],
        order: Sequence[tuple[str, bool]],
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Every matching row, paged, restored to Python values."""
        out: list[dict[str, Any]] = []
        while limit is None or len(out) < limit:
            size = self.page_rows if limit is None else min(self.page_rows, limit - len(out))
            query = filters(self._table(table.name).select(_select_list(table)))
            for column, desc in order:
                query = query.order(column, desc=desc)
            page = self._rows(f"reading {table.name}", query.range(len(out), len(out) + size - 1))
            if not page:
                break
            out.extend(self._restore(table, r) for r in page)
        return out

    @staticmethod
    def _restore(table: Table, row: dict[str, Any]) -> dict[str, Any]:
        return {n: from_wire(t, row.get(n)) for n, t, _ in table.columns}

    @staticmethod
    def _wire(table: Table, row: dict[str, Any]) -> dict[str, Any]:
        # Hot path (every synced row): only call to_wire where JSON needs a conversion.
        out: dict[str, Any] = {}
        for n, t, _ in table.columns:
            v = row.get(n)
            out[n] = v if v is None or t in PASSTHROUGH else to_wire(t, v)
        return out

    def _count(self, what: str, builder: Any) -> int:
        return int(self._execute(what, builder).count or 0)

    # --- schema ---------------------------------------------------------------------------

    def schema_version(self) -> int | None:
        """The applied migration version, or None when the project has no pms schema."""
        query = self._table(VERSION_TABLE).select("version").order("version", desc=True).limit(1)
        try:
            rows = self._rows("reading the schema version", query)
        except StoreError as exc:
            if exc.code == "schema_missing":
                return None
            raise
        return int(rows[0]["version"]) if rows else 0

    def check_schema(self) -> None:
        migrations.require_current(
            self.schema_version(), "Supabase project", self.description, MIGRATE_HINT
        )

    # --- batched upserts ------------------------------------------------------------------

    def _chunks(self, rows: list[dict[str, Any]]) -> Iterator[tuple[list[dict[str, Any]], int]]:
        """Greedy chunks bounded by ``batch_rows`` and the encoded body size ``batch_bytes``."""
        chunk: list[dict[str, Any]] = []
        size = 2  # the surrounding [ ]
        for row in rows:
            try:
                n = len(encode_json(row)) + 1  # + the separating comma
            except ValueError as exc:
                raise StoreError(
                    f"cannot encode row {row.get('external_id') or row.get('id')!r} as JSON: {exc}",
                    hint="Report the record: a provider sent a value JSON cannot carry.",
                    code="store_bad_value",
                ) from None
            if chunk and (len(chunk) >= self.batch_rows or size + n > self.batch_bytes):
                yield chunk, size
                chunk, size = [], 2
            chunk.append(row)
            size += n
        if chunk:
            yield chunk, size

    def _upsert(
        self, table: str, rows: list[dict[str, Any]], on_conflict: Sequence[str], size: int = 0
    ) -> None:
        """One upsert request; a 413 halves the chunk (and the byte budget) and tries again."""
        query = self._table(table).upsert(
            rows,
            on_conflict=",".join(on_conflict),
            returning=ReturnMethod.minimal,
            default_to_null=True,
        )
        try:
            self._execute(f"writing {len(rows)} rows to {table}", query)
        except StoreError as exc:
            if exc.code != "store_payload_too_large" or len(rows) < 2:
                raise
            self.stats.splits += 1
            if size:
                # Remember the limit we just met so later batches stop knocking on it.
                self.batch_bytes = max(1024, min(self.batch_bytes, size // 2))
            half = len(rows) // 2
            for part in (rows[:half], rows[half:]):
                self._upsert(table, part, on_conflict, len(encode_json(part)))

    def _write(self, table: Table, rows: list[dict[str, Any]]) -> None:
        for chunk, size in self._chunks(rows):
            self._upsert(table.name, chunk, table.primary_key, size)

    # --- connections ----------------------------------------------------------------------

    def add_connection(self, conn: Connection) -> None:
        now = utcnow()
        conn.created_at = conn.created_at or now
        conn.updated_at = now
        self._write(CONNECTIONS, [self._wire(CONNECTIONS, vars(conn))])

    def get_connection(self, connection_id: str) -> Connection | None:
        rows = self._select_all(CONNECTIONS, lambda q: q.eq("id", connection_id), (), limit=1)
        return Connection(**rows[0]) if rows else None

    def list_connections(self, include_disconnected: bool = False) -> list[Connection]:
        def where(q: Any) -> Any:
            return q if include_disconnected else q.neq("status", "disconnected")

        rows = self._select_all(CONNECTIONS, where, (("created_at", False), ("id", False)))
        return [Connection(**r) for r in rows]

    def update_connection(self, connection_id: str, **fields: Any) -> None:
        fields["updated_at"] = utcnow()
        types = {n: t for n, t, _ in CONNECTIONS.columns}
        values = {k: to_wire(types[k], v) for k, v in fields.items()}
        query = (
            self._table(CONNECTIONS.name)
            .update(values, returning=ReturnMethod.minimal)
            .eq("id", connection_id)
        )
        self._execute("updating a connection", query)

    def purge_connection(self, connection_id: str) -> dict[str, int]:
        """Delete the connection's rows table by table (each DELETE is atomic; rerun to finish)."""
        removed: dict[str, int] = {}
        for table in PURGED_ON_DISCONNECT:
            query = (
                self._table(table)
                .delete(count=CountMethod.exact, returning=ReturnMethod.minimal)
                .eq("connection_id", connection_id)
            )
            removed[table] = self._count(f"purging {table}", query)
        return removed

    # --- rows -----------------------------------------------------------------------------

    def upsert_records(
        self, conn: Connection, kind: Kind, records: Sequence[AnyRecord], synced_at: datetime
    ) -> int:
        table = DATA_TABLES[kind]
        # Last occurrence wins: a record seen twice in one batch (page drift) is written once.
        unique = {r.external_id: r for r in records}
        if not unique:
            return 0
        rows = [self._wire(table, record_row(conn, r, synced_at)) for r in unique.values()]
        if kind == "property":
            # Mappings first: a property row visible to readers always has its mapping row,
            # and a failure here leaves no property rows behind (REST cannot span two tables
            # in one transaction; see the module docstring).
            self._touch_mappings(conn, list(unique.values()), synced_at)
        self._write(table, rows)
        return len(unique)

    def _touch_mappings(self, conn: Connection, records: list[AnyRecord], now: datetime) -> None:
        """Upsert mapping rows (name, updated_at) without touching a linked ``property_id``.

        ``property_id`` is left out of the payload, so PostgREST neither inserts nor updates
        it (new rows get NULL); ``created_at`` is read first so a resync keeps the original.
        """
        ids = [r.external_id for r in records]
        created: dict[str, str] = {}
        for i in range(0, len(ids), IN_CHUNK):
            query = (
                self._table(PROPERTY_MAPPINGS.name)
                .select("external_property_id,created_at")
                .eq("connection_id", conn.id)
                .in_("external_property_id", ids[i : i + IN_CHUNK])
            )
            for row in self._rows("reading property mappings", query):
                created[row["external_property_id"]] = row["created_at"]
        ts = now.isoformat()
        rows = [
            {
                "connection_id": conn.id,
                "external_property_id": r.external_id,
                "organization_id": conn.organization_id,
                "name": getattr(r, "name", None),
                "created_at": created.get(r.external_id, ts),
                "updated_at": ts,
            }
            for r in records
        ]
        for chunk, size in self._chunks(rows):
            self._upsert(PROPERTY_MAPPINGS.name, chunk, PROPERTY_MAPPINGS.primary_key, size)

    def mark_missing_deleted(
        self, connection_id: str, kind: Kind, seen_before: datetime, now: datetime
    ) -> int:
        query = (
            self._table(DATA_TABLES[kind].name)
            .update(
                {"deleted_at": now.isoformat()},
                count=CountMethod.exact,
                returning=ReturnMethod.minimal,
            )
            .eq("connection_id", connection_id)
            .is_("deleted_at", None)
            .lt("synced_at", seen_before.isoformat())
        )
        return self._count(f"marking deleted {kind} rows", query)

    def _column(self, table: str, column: str, connection_id: str) -> set[str]:
        """Every non-null value of one column of a connection's rows, paged."""
        values: set[str] = set()
        start = 0
        while True:
            query = (
                self._table(table)
                .select(column)
                .eq("connection_id", connection_id)
                .not_.is_(column, None)
                .order("external_id")
                .range(start, start + self.page_rows - 1)
            )
            page = self._rows(f"reading {table}.{column}", query)
            if not page:
                return values
            values.update(str(r[column]) for r in page)
            start += len(page)

    def booking_guest_keys(
        self, connection_id: str, booking_ids: Sequence[str]
    ) -> dict[str, str | None]:
        found: dict[str, str | None] = {}
        ids = list(dict.fromkeys(booking_ids))
        for start in range(0, len(ids), IN_CHUNK):
            query = (
                self._table(DATA_TABLES["booking"].name)
                .select("external_id,guest_external_id")
                .eq("connection_id", connection_id)
                .in_("external_id", ids[start : start + IN_CHUNK])
            )
            for row in self._rows("reading booking guest keys", query):
                found[str(row["external_id"])] = row.get("guest_external_id")
        return found

    def delete_unreferenced_guests(
        self, connection_id: str, among: Sequence[str] | None = None
    ) -> int:
        # REST has no anti-join: find the guest ids still referenced, delete the others.
        guests_table = DATA_TABLES["guest"].name
        if among is None:
            candidates = self._column(guests_table, "external_id", connection_id)
            used = self._column(DATA_TABLES["booking"].name, "guest_external_id", connection_id)
        else:
            candidates, used = set(among), set()
            ids = sorted(candidates)
            for start in range(0, len(ids), IN_CHUNK):
                query = (
                    self._table(DATA_TABLES["booking"].name)
                    .select("guest_external_id")
                    .eq("connection_id", connection_id)
                    .in_("guest_external_id", ids[start : start + IN_CHUNK])
                )
                used.update(
                    str(r["guest_external_id"]) for r in self._rows("reading guest refs", query)
                )
        orphans = sorted(candidates - used)
        total = 0
        for i in range(0, len(orphans), IN_CHUNK):
            query = (
                self._table(guests_table)
                .delete(count=CountMethod.exact, returning=ReturnMethod.minimal)
                .eq("connection_id", connection_id)
                .in_("external_id", orphans[i : i + IN_CHUNK])
            )
            total += self._count("deleting unreferenced guest rows", query)
        return total

    def counts(self, connection_id: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for kind, table in DATA_TABLES.items():
            query = (
                self._table(table.name)
                .select("external_id", count=CountMethod.exact, head=True)
                .eq("connection_id", connection_id)
                .is_("deleted_at", None)
            )
            out[kind] = self._count(f"counting {table.name}", query)
        return out

    def known_external_ids(
        self, connection_id: str, kind: Kind, external_ids: Sequence[str]
    ) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(external_ids), IN_CHUNK):
            chunk = list(external_ids[start : start + IN_CHUNK])
            query = (
                self._table(DATA_TABLES[kind].name)
                .select("external_id")
                .eq("connection_id", connection_id)
                .is_("deleted_at", None)
                .in_("external_id", chunk)
            )
            found.update(str(r["external_id"]) for r in self._rows(f"reading {kind} ids", query))
        return found

    def fetch_rows(self, kind: Kind, connection_id: str | None = None) -> list[dict[str, Any]]:
        table = DATA_TABLES[kind]
        if connection_id is None:
            return self._select_all(
                table, lambda q: q, (("connection_id", False), ("external_id", False))
            )
        return self._select_all(
            table, lambda q: q.eq("connection_id", connection_id), (("external_id", False),)
        )

    # --- cursors --------------------------------------------------------------------------

    def get_cursor(self, connection_id: str, resource: str) -> str | None:
        return self.cursors(connection_id).get(resource)

    def set_cursor(self, connection_id: str, resource: str, cursor: str | None) -> None:
        row: dict[str, Any] = {
            "connection_id": connection_id,
            "resource": resource,
            "cursor": cursor,
            "updated_at": utcnow(),
        }
        self._write(SYNC_STATE, [self._wire(SYNC_STATE, row)])

    def cursors(self, connection_id: str) -> dict[str, str | None]:
        rows = self._select_all(
            SYNC_STATE, lambda q: q.eq("connection_id", connection_id), (("resource", False),)
        )
        return {r["resource"]: r["cursor"] for r in rows}

    # --- checkpoints ----------------------------------------------------------------------

    def get_checkpoint(self, connection_id: str, resource: str) -> dict[str, Any] | None:
        rows = self._select_all(
            CHECKPOINTS,
            lambda q: q.eq("connection_id", connection_id).eq("resource", resource),
            (("resource", False),),
        )
        state = rows[0]["state"] if rows else None
        return state if isinstance(state, dict) else None

    def set_checkpoint(
        self, connection_id: str, resource: str, state: dict[str, Any] | None
    ) -> None:
        row: dict[str, Any] = {
            "connection_id": connection_id,
            "resource": resource,
            "state": state,
            "updated_at": utcnow(),
        }
        self._write(CHECKPOINTS, [self._wire(CHECKPOINTS, row)])

    # --- sync log -------------------------------------------------------------------------

    def start_run(self, run: SyncRun) -> None:
        self._write(SYNC_LOG, [self._wire(SYNC_LOG, vars(run))])

    def finish_run(self, run: SyncRun) -> None:
        self._write(SYNC_LOG, [self._wire(SYNC_LOG, vars(run))])

    def list_runs(
        self, connection_id: str | None = None, failed_only: bool = False, limit: int = 20
    ) -> list[SyncRun]:
        def where(q: Any) -> Any:
            if connection_id:
                q = q.eq("connection_id", connection_id)
            if failed_only:
                q = q.in_("status", ["failed", "partial", "interrupted"])
            return q

        rows = self._select_all(
            SYNC_LOG, where, (("started_at", True), ("id", True)), limit=max(0, int(limit))
        )
        return [SyncRun(**r) for r in rows]

    def mark_interrupted(self, connection_id: str, except_run: str) -> int:
        query = (
            self._table(SYNC_LOG.name)
            .update(
                {
                    "status": "interrupted",
                    "finished_at": utcnow().isoformat(),
                    "error_code": "interrupted",
                    "error_message": "the process stopped before the run finished",
                },
                count=CountMethod.exact,
                returning=ReturnMethod.minimal,
            )
            .eq("connection_id", connection_id)
            .eq("status", "running")
            .neq("id", except_run)
        )
        return self._count("marking interrupted runs", query)

    # --- property mappings ----------------------------------------------------------------

    def set_mapping(self, connection_id: str, external_property_id: str, property_id: str) -> None:
        query = (
            self._table(PROPERTY_MAPPINGS.name)
            .update(
                {"property_id": property_id, "updated_at": utcnow().isoformat()},
                count=CountMethod.exact,
                returning=ReturnMethod.minimal,
            )
            .eq("connection_id", connection_id)
            .eq("external_property_id", external_property_id)
        )
        if self._count("linking a property", query) == 0:
            raise KeyError(external_property_id)

    def list_mappings(self, connection_id: str | None = None) -> list[dict[str, Any]]:
        if connection_id is None:
            return self._select_all(
                PROPERTY_MAPPINGS,
                lambda q: q,
                (("connection_id", False), ("external_property_id", False)),
            )
        return self._select_all(
            PROPERTY_MAPPINGS,
            lambda q: q.eq("connection_id", connection_id),
            (("external_property_id", False),),
        )

    # --- locks ----------------------------------------------------------------------------

    def _insert_lock(self, connection_id: str, owner: str, ttl_seconds: float) -> bool:
        row = {
            "connection_id": connection_id,
            "owner": owner,
            "host": HOST,
            "pid": os.getpid(),
            "expires_at": time.time() + ttl_seconds,
        }
        # INSERT … ON CONFLICT DO NOTHING RETURNING: a row comes back only if we inserted it.
        query: SyncSelectRequestBuilder = self._table(LOCKS.name).upsert(
            row,
            on_conflict="connection_id",
            ignore_duplicates=True,
            returning=ReturnMethod.representation,
        )
        return bool(self._rows("taking the sync lock", query))

    def acquire_lock(self, connection_id: str, owner: str, ttl_seconds: float) -> bool:
        """Take the per-connection lock unless a live holder has it (atomic over REST).

        A holder is dead when its lease expired, or when it ran on this host and its process
        no longer exists. The stale row is deleted only if it still names that holder, so
        when two processes race for a dead lease exactly one insert wins.
        """
        if self._insert_lock(connection_id, owner, ttl_seconds):
            return True
        holder = self.lock_holder(connection_id)
        if holder is None:  # released in between: try once more
            return self._insert_lock(connection_id, owner, ttl_seconds)
        if holder["owner"] == owner:  # our insert committed but its answer was lost (retry)
            return True
        pid = holder["pid"]
        dead = holder["expires_at"] < time.time() or (
            holder["host"] == HOST and pid and not _pid_alive(int(pid))
        )
        if not dead:
            return False
        query = (
            self._table(LOCKS.name)
            .delete(returning=ReturnMethod.minimal)
            .eq("connection_id", connection_id)
            .eq("owner", holder["owner"])
        )
        self._execute("removing a stale sync lock", query)
        return self._insert_lock(connection_id, owner, ttl_seconds)

    def release_lock(self, connection_id: str, owner: str) -> None:
        query = (
            self._table(LOCKS.name)
            .delete(returning=ReturnMethod.minimal)
            .eq("connection_id", connection_id)
            .eq("owner", owner)
        )
        self._execute("releasing the sync lock", query)

    def lock_holder(self, connection_id: str) -> dict[str, Any] | None:
        rows = self._select_all(LOCKS, lambda q: q.eq("connection_id", connection_id), (), 1)
        if not rows:
            return None
        row = rows[0]
        return {k: row[k] for k in ("owner", "host", "pid", "expires_at")}

    # --- token cache ----------------------------------------------------------------------

    def token_cache_get(self, key: str) -> tuple[bytes, float | None] | None:
        rows = self._select_all(TOKEN_CACHE, lambda q: q.eq("key", key), (), 1)
        return (rows[0]["ciphertext"], rows[0]["expires_at"]) if rows else None

    def token_cache_put(self, key: str, ciphertext: bytes, expires_at: float | None) -> None:
        row: dict[str, Any] = {
            "key": key,
            "ciphertext": ciphertext,
            "expires_at": expires_at,
            "updated_at": utcnow(),
        }
        self._write(TOKEN_CACHE, [self._wire(TOKEN_CACHE, row)])

    def token_cache_delete(self, key: str) -> None:
        query = self._table(TOKEN_CACHE.name).delete(returning=ReturnMethod.minimal).eq("key", key)
        self._execute("deleting a cached token", query)

    # --- webhook inbox --------------------------------------------------------------------

    def inbox_add(self, event: WebhookEventRow) -> bool:
        """Insert unless (connection_id, dedupe_key) exists (ON CONFLICT DO NOTHING RETURNING)."""
        query = self._table(WEBHOOK_EVENTS.name).upsert(
            self._wire(WEBHOOK_EVENTS, vars(event)),
            on_conflict="connection_id,dedupe_key",
            ignore_duplicates=True,
            returning=ReturnMethod.representation,
        )
        return bool(self._rows("storing a webhook event", query))

    def inbox_claim(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[WebhookEventRow]:
        """Lease due events with one compare-and-set PATCH each.

        REST has no ``SELECT … FOR UPDATE SKIP LOCKED``: candidates are read first, then each
        is claimed only if its status and lease are still what we read, so two receivers never
        claim the same event (the loser's PATCH matches no row).
        """
        if limit <= 0:
            return []
        ts = now.isoformat()
        due: list[Callable[[Any], Any]] = [
            lambda q: q.eq("status", "pending").is_("next_attempt_at", None),
            lambda q: q.eq("status", "pending").lte("next_attempt_at", ts),
            lambda q: q.in_("status", ["retry", "processing"]).lte("next_attempt_at", ts),
        ]
        order = (("received_at", False), ("id", False))
        candidates: dict[str, dict[str, Any]] = {}
        for where in due:
            for row in self._select_all(WEBHOOK_EVENTS, where, order, limit):
                candidates[row["id"]] = row
        picked = sorted(candidates.values(), key=lambda r: (r["received_at"], r["id"]))[:limit]
        claimed: list[WebhookEventRow] = []
        for row in picked:
            query = (
                self._table(WEBHOOK_EVENTS.name)
                .update(
                    {"status": "processing", "next_attempt_at": lease_until.isoformat()},
                    count=CountMethod.exact,
                    returning=ReturnMethod.minimal,
                )
                .eq("id", row["id"])
                .eq("status", row["status"])
            )
            seen = row["next_attempt_at"]
            query = (
                query.is_("next_attempt_at", None)
                if seen is None
                else query.eq("next_attempt_at", seen.isoformat())
            )
            if self._count("claiming a webhook event", query) == 1:
                event = WebhookEventRow(**row)
                event.status, event.next_attempt_at = "processing", lease_until
                claimed.append(event)
        return claimed

    def inbox_mark(
        self,
        ids: Sequence[str],
        status: str,
        *,
        next_attempt_at: datetime | None = None,
        error: str | None = None,
        attempted: bool = True,
    ) -> None:
        """Set the outcome; ``attempts + 1`` is a compare-and-set on the value read (REST
        cannot increment), retried for rows another writer changed in between."""
        values = {
            "status": status,
            "next_attempt_at": to_wire("ts", next_attempt_at),
            "error": error,
        }
        pending = list(dict.fromkeys(ids))
        for _ in range(5):
            if not pending:
                return
            if not attempted:
                for i in range(0, len(pending), IN_CHUNK):
                    query = (
                        self._table(WEBHOOK_EVENTS.name)
                        .update(values, returning=ReturnMethod.minimal)
                        .in_("id", pending[i : i + IN_CHUNK])
                    )
                    self._execute("updating webhook events", query)
                return
            attempts: dict[int, list[str]] = {}
            for i in range(0, len(pending), IN_CHUNK):
                query = (
                    self._table(WEBHOOK_EVENTS.name)
                    .select("id,attempts")
                    .in_("id", pending[i : i + IN_CHUNK])
                )
                for row in self._rows("reading webhook events", query):
                    attempts.setdefault(int(row["attempts"] or 0), []).append(row["id"])
            retry: list[str] = []
            for seen, group in attempts.items():
                query = (
                    self._table(WEBHOOK_EVENTS.name)
                    .update(
                        {**values, "attempts": seen + 1},
                        returning=ReturnMethod.representation,
                    )
                    .in_("id", group)
                    .eq("attempts", seen)
                )
                done = {r["id"] for r in self._rows("updating webhook events", query)}
                retry += [i for i in group if i not in done]
            pending = retry
        if pending:
            raise StoreError(
                f"webhook events {', '.join(pending[:5])} kept changing while being marked",
                hint="Another receiver is processing the same events; rerun `pms webhook serve`.",
                code="store_conflict",
            )

    def inbox_recover(self) -> int:
        query = (
            self._table(WEBHOOK_EVENTS.name)
            .update(
                {"status": "pending", "next_attempt_at": None},
                count=CountMethod.exact,
                returning=ReturnMethod.minimal,
            )
            .eq("status", "processing")
        )
        return self._count("recovering webhook events", query)

    def inbox_list(
        self,
        connection_id: str | None = None,
        statuses: Sequence[str] | None = None,
        limit: int = 20,
    ) -> list[WebhookEventRow]:
        def where(q: Any) -> Any:
            if connection_id:
                q = q.eq("connection_id", connection_id)
            if statuses:
                q = q.in_("status", list(statuses))
            return q

        order = (("received_at", True), ("id", True))
        rows = self._select_all(WEBHOOK_EVENTS, where, order, max(0, int(limit)))
        return [WebhookEventRow(**r) for r in rows]

    def inbox_counts(self, connection_id: str | None = None) -> dict[str, int]:
        out: dict[str, int] = {}
        for status in INBOX_STATUSES:
            query = (
                self._table(WEBHOOK_EVENTS.name)
                .select("id", count=CountMethod.exact, head=True)
                .eq("status", status)
            )
            if connection_id:
                query = query.eq("connection_id", connection_id)
            n = self._count("counting webhook events", query)
            if n:
                out[status] = n
        return out

    def mark_deleted(
        self, connection_id: str, kind: Kind, external_ids: Sequence[str], now: datetime
    ) -> int:
        ts = now.isoformat()
        ids = list(dict.fromkeys(external_ids))
        total = 0
        for i in range(0, len(ids), IN_CHUNK):
            query = (
                self._table(DATA_TABLES[kind].name)
                .update(
                    {"deleted_at": ts, "synced_at": ts},
                    count=CountMethod.exact,
                    returning=ReturnMethod.minimal,
                )
                .eq("connection_id", connection_id)
                .is_("deleted_at", None)
                .in_("external_id", ids[i : i + IN_CHUNK])
            )
            total += self._count(f"marking deleted {kind} rows", query)
        return total


if TYPE_CHECKING:

    def _implements_store(store: SupabaseStore) -> Store:
        return store  # mypy checks SupabaseStore against the whole Store protocol here
