"""The Supabase store: the exact requests supabase-py sends, error mapping, batching, and whole
syncs through the PostgREST test double over the real test PostgreSQL.

The store contract itself (values, upserts, locks, …) runs over this store too: the ``store``
fixture in conftest.py has a ``supabase`` parameter.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from pms_cli.config import load_settings
from pms_cli.errors import EXIT_CONFIG, ConfigError, StoreError
from pms_cli.models import Booking, BookingStatus, Property
from pms_cli.redact import redact_text
from pms_cli.sandbox.server import SandboxServer
from pms_cli.stores.base import Connection
from pms_cli.stores.schema import BOOKINGS, LOCKS, PROPERTY_MAPPINGS, SCHEMA_VERSION
from pms_cli.stores.sqlite import SqliteStore
from pms_cli.stores.supabase import SupabaseStore, key_role
from tests.conftest import LiveSandbox, MemoryKeyring, SharedClock
from tests.helpers import Harness
from tests.stores.conftest import DOUBLE_SERVICE_KEY, truncate_all
from tests.stores.postgrest_double import PostgrestDouble

URL = "https://project-ref.supabase.co"
KEY = "sb_secret_unit-test-key-0123456789"
T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
CONN = Connection("c1", "org-a", "hostaway", "conn c1", "active", "acct", "env")


def booking(i: int | str, **kw: Any) -> Booking:
    fields: dict[str, Any] = {
        "external_id": str(i),
        "property_external_id": "p1",
        "status": BookingStatus.CONFIRMED,
        "check_in": date(2026, 6, 1),
        "check_out": date(2026, 6, 5),
        "total_price": Decimal("696.67"),
        "currency": "EUR",
        "guest_name": "Zoë",
        "created_at": T0,
        "raw": {"id": i, "note": "x" * 200},
    }
    fields.update(kw)
    return Booking(**fields)


def jwt(role: str) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256'})}.{part({'role': role, 'iss': 'supabase'})}.signature"


class Recorder:
    """An httpx transport that records every request and answers with ``respond``."""

    def __init__(self, respond: Callable[[httpx.Request], httpx.Response] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.respond = respond or (lambda request: httpx.Response(201))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        return self.respond(request)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)


def open_store(recorder: Recorder, **kw: Any) -> SupabaseStore:
    kw.setdefault("check_schema", False)
    kw.setdefault("sleep", lambda seconds: None)
    return SupabaseStore(URL, SecretStr(KEY), transport=recorder.transport(), **kw)


def columns(request: httpx.Request) -> set[str]:
    return {c.strip('"') for c in request.url.params["columns"].split(",")}


def body(request: httpx.Request) -> Any:
    return json.loads(request.content)


def error(status: int, payload: dict[str, Any] | None = None, text: str = "") -> httpx.Response:
    if payload is not None:
        return httpx.Response(status, json=payload)
    return httpx.Response(status, text=text, headers={"content-type": "text/html"})


# --- the exact requests ----------------------------------------------------------------------


def test_opening_the_store_checks_the_schema_version_with_one_get() -> None:
    rec = Recorder(lambda r: httpx.Response(200, json=[{"version": SCHEMA_VERSION}]))
    store = open_store(rec, check_schema=True)
    [req] = rec.requests
    assert req.method == "GET"
    assert str(req.url).startswith(f"{URL}/rest/v1/pms_schema_version?")
    assert dict(req.url.params) == {"select": "version", "order": "version.desc", "limit": "1"}
    assert req.headers["apikey"] == KEY
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert req.headers["accept-profile"] == "public"
    assert "x-retry-count" not in req.headers
    assert store.description == "supabase:https://project-ref.supabase.co"


def test_a_batch_is_one_upsert_on_the_natural_key_with_minimal_return_last_row_wins() -> None:
    rec = Recorder()
    store = open_store(rec)
    written = store.upsert_records(
        CONN, "booking", [booking(1, channel="first"), booking(2), booking(1, channel="last")], T0
    )
    assert written == 2
    [req] = rec.requests
    assert (req.method, req.url.path) == ("POST", "/rest/v1/pms_bookings")
    assert req.url.params["on_conflict"] == "connection_id,external_id"
    assert columns(req) == set(BOOKINGS.column_names)
    assert req.headers["prefer"] == "return=minimal,resolution=merge-duplicates"
    assert req.headers["content-type"] == "application/json"
    assert req.headers["content-profile"] == "public"
    rows = body(req)
    assert [(r["external_id"], r["channel"]) for r in rows] == [("1", "last"), ("2", None)]
    first = rows[0]
    assert first["connection_id"] == "c1" and first["organization_id"] == "org-a"
    assert first["total_price"] == "696.67"  # a string: numeric keeps every cent
    assert first["check_in"] == "2026-06-01"
    assert first["created_at"] == "2026-05-01T12:00:00+00:00"
    assert first["synced_at"] == "2026-05-01T12:00:00+00:00"
    assert first["raw"] == {"id": 1, "note": "x" * 200}
    assert first["status"] == "confirmed" and first["deleted_at"] is None


def test_property_batches_upsert_mappings_first_and_never_send_property_id() -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(
                200, json=[{"external_property_id": "1", "created_at": "2026-01-01T00:00:00+00:00"}]
            )
        return httpx.Response(201)

    rec = Recorder(respond)
    store = open_store(rec)
    props = [Property(external_id="1", name="Villa 1"), Property(external_id="2", name="Villa 2")]
    store.upsert_records(CONN, "property", props, T0)
    lookup, mappings, properties = rec.requests
    assert (lookup.method, lookup.url.path) == ("GET", "/rest/v1/pms_property_mappings")
    assert lookup.url.params["connection_id"] == "eq.c1"
    assert lookup.url.params["external_property_id"] == "in.(1,2)"
    assert (mappings.method, mappings.url.path) == ("POST", "/rest/v1/pms_property_mappings")
    assert mappings.url.params["on_conflict"] == "connection_id,external_property_id"
    assert "property_id" not in columns(mappings)  # a link made by `pms map` survives
    created = {r["external_property_id"]: r["created_at"] for r in body(mappings)}
    assert created == {"1": "2026-01-01T00:00:00+00:00", "2": T0.isoformat()}
    assert (properties.method, properties.url.path) == ("POST", "/rest/v1/pms_properties")


def test_batches_are_bounded_by_rows() -> None:
    rec = Recorder()
    store = open_store(rec, batch_rows=2)
    store.upsert_records(CONN, "booking", [booking(i) for i in range(5)], T0)
    assert [len(body(r)) for r in rec.requests] == [2, 2, 1]


def test_batches_are_bounded_by_encoded_bytes() -> None:
    rec = Recorder()
    store = open_store(rec, batch_bytes=3000)
    store.upsert_records(CONN, "booking", [booking(i) for i in range(10)], T0)
    assert len(rec.requests) > 1
    assert all(len(r.content) <= 3000 for r in rec.requests)
    sent = [row["external_id"] for r in rec.requests for row in body(r)]
    assert sent == [str(i) for i in range(10)]


def test_a_413_splits_the_batch_until_every_row_is_written_once() -> None:
    limit = 2500

    def respond(request: httpx.Request) -> httpx.Response:
        if len(request.content) > limit:
            return error(413, text="<html>413 Request Entity Too Large</html>")
        return httpx.Response(201)

    rec = Recorder(respond)
    store = open_store(rec)
    assert store.upsert_records(CONN, "booking", [booking(i) for i in range(8)], T0) == 8
    accepted = [r for r in rec.requests if len(r.content) <= limit]
    assert sorted(int(row["external_id"]) for r in accepted for row in body(r)) == list(range(8))
    assert store.stats.splits >= 1
    assert store.batch_bytes < 4_000_000  # the limit met is remembered for the next batches
    rec.requests.clear()
    store.upsert_records(CONN, "booking", [booking(i) for i in range(8, 12)], T0)
    assert all(len(r.content) <= limit for r in rec.requests)


def test_a_single_row_too_large_for_the_gateway_is_a_store_error() -> None:
    rec = Recorder(lambda r: error(413, text="Payload Too Large"))
    store = open_store(rec)
    with pytest.raises(StoreError) as info:
        store.upsert_records(CONN, "booking", [booking(1), booking(2)], T0)
    assert info.value.code == "store_payload_too_large"
    assert info.value.exit_code == EXIT_CONFIG
    assert len(rec.requests) == 2  # the pair, then its first half alone: nothing more


def test_lock_acquisition_is_an_insert_or_nothing_then_a_conditional_takeover() -> None:
    stale = {"owner": "old-run", "host": "elsewhere", "pid": 1, "expires_at": 1.0}
    answers = iter(
        [
            httpx.Response(201, json=[]),  # someone holds it
            httpx.Response(200, json=[stale]),  # …with a lease that ran out
            httpx.Response(204),  # the stale lease is removed
            httpx.Response(201, json=[{"owner": "new-run"}]),  # and we take it
        ]
    )
    rec = Recorder(lambda r: next(answers))
    store = open_store(rec)
    assert store.acquire_lock("c1", "new-run", 600)
    insert, read, delete, retry = rec.requests
    assert (insert.method, insert.url.path) == ("POST", "/rest/v1/pms_locks")
    assert insert.url.params["on_conflict"] == "connection_id"
    assert set(body(insert)) == set(LOCKS.column_names)  # one object: no `columns` param
    assert insert.headers["prefer"] == "return=representation,resolution=ignore-duplicates"
    assert body(insert)["owner"] == "new-run"
    assert (read.method, read.url.params["connection_id"]) == ("GET", "eq.c1")
    assert (delete.method, delete.url.path) == ("DELETE", "/rest/v1/pms_locks")
    assert dict(delete.url.params) == {"connection_id": "eq.c1", "owner": "eq.old-run"}
    assert retry.method == "POST"


def test_counts_are_head_requests_with_an_exact_count() -> None:
    rec = Recorder(lambda r: httpx.Response(200, headers={"content-range": "0-6/7"}))
    store = open_store(rec)
    assert store.counts("c1") == {"property": 7, "booking": 7, "guest": 7}
    req = rec.requests[1]
    assert (req.method, req.url.path) == ("HEAD", "/rest/v1/pms_bookings")
    assert req.headers["prefer"] == "count=exact"
    assert req.url.params["connection_id"] == "eq.c1"
    assert req.url.params["deleted_at"] == "is.null"


def test_mark_missing_deleted_is_one_filtered_patch() -> None:
    rec = Recorder(lambda r: httpx.Response(204, headers={"content-range": "*/3"}))
    store = open_store(rec)
    assert store.mark_missing_deleted("c1", "property", T0, T0 + timedelta(minutes=1)) == 3
    [req] = rec.requests
    assert (req.method, req.url.path) == ("PATCH", "/rest/v1/pms_properties")
    assert req.headers["prefer"] == "return=minimal,count=exact"
    assert dict(req.url.params) == {
        "connection_id": "eq.c1",
        "deleted_at": "is.null",
        "synced_at": f"lt.{T0.isoformat()}",
    }
    assert body(req) == {"deleted_at": (T0 + timedelta(minutes=1)).isoformat()}


def test_money_is_read_as_text_so_no_float_touches_it() -> None:
    row = {n: None for n in BOOKINGS.column_names}
    row.update(
        connection_id="c1",
        external_id="1",
        status="confirmed",
        total_price="123456789012.34",
        synced_at="2026-05-01T12:00:00+00:00",
    )
    rec = Recorder(
        lambda r: httpx.Response(200, json=[row] if r.url.params["offset"] == "0" else [])
    )
    store = open_store(rec)
    [got] = store.fetch_rows("booking", "c1")
    assert got["total_price"] == Decimal("123456789012.34")
    assert "total_price::text" in rec.requests[0].url.params["select"].split(",")


# --- errors: our codes and hints, and no hidden retries --------------------------------------


def test_transient_failures_are_retried_by_pms_with_an_injected_sleep_not_by_postgrest() -> None:
    answers = iter([error(503, text="busy"), error(503, text="busy")])
    rec = Recorder(lambda r: next(answers, httpx.Response(200, json=[{"version": SCHEMA_VERSION}])))
    slept: list[float] = []
    store = open_store(rec, check_schema=True, sleep=slept.append)
    assert len(rec.requests) == 3 and slept == [0.5, 1.0]
    assert store.stats.retries == 2
    assert all("x-retry-count" not in r.headers for r in rec.requests)


def test_a_persistent_503_is_store_unavailable_after_bounded_retries() -> None:
    rec = Recorder(lambda r: error(503, text="<html>Service Unavailable</html>"))
    store = open_store(rec)
    with pytest.raises(StoreError) as info:
        store.get_connection("c1")
    assert info.value.code == "store_unavailable"
    assert info.value.exit_code == EXIT_CONFIG and info.value.hint
    assert len(rec.requests) == 3


def test_unreachable_supabase_is_exit_2_naming_the_url_and_the_variable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(StoreError) as info:
        open_store(Recorder(refuse), check_schema=True)
    assert info.value.code == "store_unreachable"
    assert info.value.exit_code == EXIT_CONFIG
    assert "project-ref.supabase.co" in info.value.message
    assert "PMS_SUPABASE_URL" in info.value.hint


def pgrst(status: int, code: str | None, message: str) -> httpx.Response:
    payload: dict[str, Any] = {"message": message, "details": None, "hint": None}
    if code:
        payload["code"] = code
    return error(status, payload)


ERROR_TABLE = [
    (pgrst(404, "PGRST205", "Could not find the table"), "schema_missing", "pms db migrate"),
    (pgrst(404, "42P01", "relation does not exist"), "schema_missing", "pms db sql"),
    (pgrst(400, "PGRST204", "Could not find the 'x' column"), "schema_missing", "pms db sql"),
    (pgrst(401, None, "Invalid API key"), "store_auth", "PMS_SUPABASE_SERVICE_KEY"),
    (pgrst(401, "PGRST301", "JWSError JWSInvalidSignature"), "store_auth", "service_role"),
    (pgrst(403, "42501", "new row violates row-level security"), "store_permission", "anon"),
    (
        pgrst(400, "21000", "ON CONFLICT DO UPDATE cannot affect row a second time"),
        "store_duplicate_key",
        "bug",
    ),
    (pgrst(400, "22P02", "invalid input syntax for type bigint"), "store_bad_value", "pms db sql"),
    (
        pgrst(500, "57014", "canceling statement due to statement timeout"),
        "store_timeout",
        "batch_size",
    ),
    (error(500, text="<html>Internal Server Error</html>"), "store_unavailable", "Rerun"),
    (error(404, text="<html>Not Found</html>"), "store_unreachable", "PMS_SUPABASE_URL"),
]


@pytest.mark.parametrize(("response", "code", "hint_has"), ERROR_TABLE)
def test_postgrest_errors_map_to_our_codes_with_hints(
    response: httpx.Response, code: str, hint_has: str
) -> None:
    store = open_store(Recorder(lambda r: response))
    with pytest.raises(StoreError) as info:
        store.upsert_records(CONN, "booking", [booking(1)], T0)
    assert info.value.code == code
    assert hint_has in info.value.hint
    assert info.value.exit_code == EXIT_CONFIG
    assert info.value.message


def test_a_missing_schema_on_open_names_pms_db_migrate_and_pms_db_sql() -> None:
    missing = error(404, {"code": "PGRST205", "message": "Could not find the table"})
    with pytest.raises(StoreError) as info:
        open_store(Recorder(lambda r: missing), check_schema=True)
    assert info.value.code == "schema_missing" and info.value.exit_code == EXIT_CONFIG
    assert "pms db migrate" in info.value.hint and "pms db sql" in info.value.hint
    empty = Recorder(lambda r: httpx.Response(200, json=[]))
    with pytest.raises(StoreError, match="no pms schema"):
        open_store(empty, check_schema=True)


@pytest.mark.parametrize("key", [jwt("anon"), jwt("authenticated"), "sb_publishable_abc123456"])
def test_an_anon_or_publishable_key_is_refused_before_any_request(key: str) -> None:
    rec = Recorder()
    with pytest.raises(ConfigError) as info:
        SupabaseStore(URL, SecretStr(key), transport=rec.transport())
    assert info.value.code == "store_auth" and "service_role" in info.value.hint
    assert rec.requests == []
    assert key_role(jwt("service_role")) == "service_role"


def test_the_service_key_never_shows_in_the_description_or_an_error() -> None:
    echo = error(400, {"code": "XX001", "message": f"bad token {KEY} in request"})
    store = open_store(Recorder(lambda r: echo))
    assert KEY not in store.description and KEY not in repr(vars(store)["description"])
    with pytest.raises(StoreError) as info:
        store.get_connection("c1")
    assert KEY not in str(info.value.to_dict())
    assert redact_text(f"Authorization: {KEY}") == "Authorization: ***"


def test_the_url_may_carry_the_rest_path_and_a_non_http_url_is_a_config_error() -> None:
    rec = Recorder(lambda r: httpx.Response(200, json=[]))
    store = SupabaseStore(URL + "/rest/v1/", KEY, check_schema=False, transport=rec.transport())
    store.get_connection("c1")
    assert rec.requests[0].url.path == "/rest/v1/pms_connections"
    with pytest.raises(ConfigError):
        SupabaseStore("project-ref.supabase.co", KEY, transport=rec.transport())


def test_from_settings_requires_both_variables() -> None:
    with pytest.raises(ConfigError, match="PMS_SUPABASE_SERVICE_KEY"):
        SupabaseStore.from_settings(load_settings(supabase_url=URL))
    with pytest.raises(ConfigError, match="PMS_SUPABASE_URL"):
        SupabaseStore.from_settings(load_settings(supabase_service_key=KEY))


# --- through the PostgREST double over the real PostgreSQL -----------------------------------

pg = pytest.mark.postgres


@pytest.fixture
def double(pg_migrated_url: str) -> Iterator[PostgrestDouble]:
    """A double of its own (limits set per test) over the shared migrated database."""
    truncate_all(pg_migrated_url)
    d = PostgrestDouble(pg_migrated_url, DOUBLE_SERVICE_KEY)
    yield d
    d.close()


@pg
def test_reads_page_past_the_servers_max_rows(double: PostgrestDouble) -> None:
    double.max_rows = 3
    store = double.store()
    store.add_connection(CONN)
    store.upsert_records(CONN, "booking", [booking(i) for i in range(10)], T0)
    assert len(store.fetch_rows("booking", "c1")) == 10
    assert store.counts("c1")["booking"] == 10


@pg
def test_a_gateway_413_splits_batches_against_the_double(double: PostgrestDouble) -> None:
    double.max_body_bytes = 6_000
    store = double.store()
    store.add_connection(CONN)
    assert store.upsert_records(CONN, "booking", [booking(i) for i in range(40)], T0) == 40
    assert store.counts("c1")["booking"] == 40
    assert store.stats.splits >= 1
    assert any(r.url.path.endswith("pms_bookings") for r in double.log)


@pg
def test_postgres_itself_refuses_a_duplicate_key_in_one_upsert(double: PostgrestDouble) -> None:
    store = double.store()
    row = {"connection_id": "c1", "resource": "bookings", "cursor": "x", "updated_at": T0}
    with pytest.raises(StoreError) as info:
        store._upsert("pms_sync_state", [row, row], ("connection_id", "resource"))
    assert info.value.code == "store_duplicate_key"  # why upsert_records deduplicates first


@pg
def test_a_value_postgres_cannot_cast_is_store_bad_value(double: PostgrestDouble) -> None:
    store = double.store()
    row = store._wire(BOOKINGS, {"connection_id": "c1", "external_id": "1", "status": "x"})
    row.update(organization_id="o", synced_at=T0.isoformat(), check_in="not a date")
    with pytest.raises(StoreError) as info:
        store._upsert("pms_bookings", [row], BOOKINGS.primary_key)
    assert info.value.code == "store_bad_value"
    assert "not a date" in info.value.message


@pg
def test_a_database_without_the_schema_is_exit_2_naming_the_commands(fresh_db: str) -> None:
    empty = PostgrestDouble(fresh_db, DOUBLE_SERVICE_KEY)
    try:
        with pytest.raises(StoreError) as info:
            empty.store()
    finally:
        empty.close()
    assert info.value.code == "schema_missing" and info.value.exit_code == EXIT_CONFIG
    assert "pms db migrate" in info.value.hint and "pms db sql" in info.value.hint


@pg
def test_mapping_resyncs_keep_created_at_and_the_link(double: PostgrestDouble) -> None:
    store = double.store()
    store.add_connection(CONN)
    store.upsert_records(CONN, "property", [Property(external_id="1", name="A")], T0)
    store.set_mapping("c1", "1", "internal-1")
    later = T0 + timedelta(days=1)
    store.upsert_records(CONN, "property", [Property(external_id="1", name="B")], later)
    [m] = store.list_mappings("c1")
    assert (m["name"], m["property_id"], m["created_at"], m["updated_at"]) == (
        "B",
        "internal-1",
        T0,
        later,
    )
    assert set(m) == set(PROPERTY_MAPPINGS.column_names)


@pg
def test_only_one_of_many_racing_processes_takes_over_a_stale_lock(
    double: PostgrestDouble,
) -> None:
    stores = [double.store() for _ in range(6)]
    assert stores[0].acquire_lock("c1", "crashed", -1)  # a lease that is already over
    results: dict[str, bool] = {}
    start = threading.Barrier(len(stores) - 1)

    def contend(i: int) -> None:
        start.wait()
        results[f"run-{i}"] = stores[i].acquire_lock("c1", f"run-{i}", 600)

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(1, len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    winners = [owner for owner, won in results.items() if won]
    assert len(winners) == 1
    holder = stores[0].lock_holder("c1")
    assert holder is not None and holder["owner"] == winners[0]


@pg
def test_a_sync_that_fails_mid_way_logs_the_failure_keeps_the_cursor_and_reruns_clean(
    double: PostgrestDouble, tmp_path: Path, clock: SharedClock
) -> None:
    h = Harness("hostaway", tmp_path, clock, listings=4, reservations=120)
    reference = h.sync()  # the same sandbox into SQLite: what one clean run gives
    assert reference.status == "succeeded"
    sqlite_store: SqliteStore = h.store
    store = double.store()
    h.store = store
    store.add_connection(h.conn)

    def bookings_write(request: httpx.Request) -> bool:
        return request.method == "POST" and request.url.path.endswith("/pms_bookings")

    double.fail_next(503, b"upstream busy", times=3, when=bookings_write)
    failed = h.sync()
    assert failed.status in ("failed", "partial")
    assert failed.error is not None and failed.error["code"] == "store_unavailable"
    [run] = store.list_runs(h.conn.id)
    assert (run.status, run.error_code) == (failed.status, "store_unavailable")
    assert run.finished_at is not None and run.error_hint
    assert store.get_cursor(h.conn.id, "bookings") is None  # never advanced past unwritten rows
    assert store.lock_holder(h.conn.id) is None

    rerun = h.sync()
    assert rerun.status == "succeeded", rerun.error
    assert store.get_cursor(h.conn.id, "bookings") is not None

    def comparable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k != "synced_at"} for r in rows]

    for kind in ("property", "booking", "guest"):
        assert comparable(store.fetch_rows(kind, h.conn.id)) == comparable(  # type: ignore[arg-type]
            sqlite_store.fetch_rows(kind, h.conn.id)  # type: ignore[arg-type]
        )
    sqlite_store.close()


@pg
def test_every_command_works_against_supabase_over_a_real_socket(
    pms: Any,
    live_sandbox: LiveSandbox,
    memory_keyring: MemoryKeyring,
    double: PostgrestDouble,
    monkeypatch: pytest.MonkeyPatch,
) -> None:

    server = SandboxServer(double.asgi())
    server.start()
    try:
        monkeypatch.setenv("PMS_SUPABASE_URL", server.url)
        monkeypatch.setenv("PMS_SUPABASE_SERVICE_KEY", DOUBLE_SERVICE_KEY)
        connected = pms(*live_sandbox.connect_args("hostaway"), "--json")
        assert connected.code == 0, connected.stderr
        conn = connected.json()["connection_id"]
        synced = pms("sync", "-c", conn, "--json", "--progress", "none")
        assert synced.code == 0 and synced.stderr == "", synced.stderr
        status = pms("status", "--json").json()
        assert status["store"] == f"supabase:{server.url}"
        assert status["connections"][0]["counts"]["booking"] == 60
        logs = pms("logs", "--json").json()
        assert [r["status"] for r in logs] == ["succeeded"]
        gone = pms("disconnect", conn, "--purge", "--yes", "--json")
        assert gone.code == 0, gone.stderr
        assert gone.json()["purged"]["pms_bookings"] == 60
        after = pms("status", "--json", "--all").json()["connections"][0]
        assert after["counts"] == {"property": 0, "booking": 0, "guest": 0}
        outputs = [connected, synced, gone]
        assert all(DOUBLE_SERVICE_KEY not in r.stdout + r.stderr for r in outputs)
        monkeypatch.setenv("PMS_SUPABASE_SERVICE_KEY", "sb_secret_wrong-key-123456")
        refused = pms("status")
        assert refused.code == 2
        assert "Error:" in refused.stderr and "PMS_SUPABASE_SERVICE_KEY" in refused.stderr
        assert "sb_secret_wrong-key-123456" not in refused.stderr
    finally:
        server.stop()


# --- opt-in: a real Supabase project ---------------------------------------------------------

LIVE_URL = os.environ.get("PMS_TEST_SUPABASE_URL")
LIVE_KEY = os.environ.get("PMS_TEST_SUPABASE_SERVICE_KEY")


@pytest.mark.skipif(
    not (LIVE_URL and LIVE_KEY),
    reason="live Supabase test: set PMS_TEST_SUPABASE_URL and PMS_TEST_SUPABASE_SERVICE_KEY "
    "(service_role key of a project with `pms db sql` applied) to run it",
)
def test_live_supabase_round_trip() -> None:
    assert LIVE_URL and LIVE_KEY
    store = SupabaseStore(LIVE_URL, SecretStr(LIVE_KEY))
    cid = f"pms-live-test-{int(time.time())}"
    conn = Connection(cid, "pms-live-test", "hostaway", "live test", "active", "", "env")
    try:
        store.add_connection(conn)
        store.upsert_records(conn, "booking", [booking(i) for i in range(1200)], T0)
        rows = store.fetch_rows("booking", cid)
        assert len(rows) == 1200 and rows[0]["total_price"] == Decimal("696.67")
        assert store.counts(cid)["booking"] == 1200
        assert store.acquire_lock(cid, "a", 60) and not store.acquire_lock(cid, "b", 60)
        store.release_lock(cid, "a")
    finally:
        store.purge_connection(cid)
        query = store._table("pms_connections").delete().eq("id", cid)
        store._execute("cleaning up the live test", query)
        store.close()


@pg
def test_webhook_inbox_dedupes_claims_once_counts_attempts_and_recovers(
    supabase_store: SupabaseStore,
) -> None:
    from pms_cli.stores.base import WebhookEventRow

    store = supabase_store

    def event(i: int, key: str) -> WebhookEventRow:
        return WebhookEventRow(
            id=f"e{i}",
            provider="hostaway",
            connection_id="c1",
            organization_id="org-a",
            dedupe_key=key,
            payload={"reservationId": i},
            received_at=T0 + timedelta(seconds=i),
        )

    assert store.inbox_add(event(1, "k1"))
    assert not store.inbox_add(event(2, "k1"))  # the same delivery again
    assert store.inbox_add(event(3, "k3"))
    lease = T0 + timedelta(minutes=5)
    claimed = store.inbox_claim(T0 + timedelta(minutes=1), lease, 10)
    assert [e.id for e in claimed] == ["e1", "e3"]
    assert all(e.status == "processing" and e.next_attempt_at == lease for e in claimed)
    assert store.inbox_claim(T0 + timedelta(minutes=1), lease, 10) == []  # leased: not twice
    store.inbox_mark(["e1"], "done")
    store.inbox_mark(["e3"], "retry", next_attempt_at=T0 + timedelta(hours=1), error="429")
    store.inbox_mark(["e3"], "retry", next_attempt_at=T0 + timedelta(hours=1), attempted=False)
    by_id = {e.id: e for e in store.inbox_list("c1")}
    assert (by_id["e1"].status, by_id["e1"].attempts) == ("done", 1)
    assert (by_id["e3"].status, by_id["e3"].attempts, by_id["e3"].error) == ("retry", 1, None)
    assert store.inbox_counts("c1") == {"done": 1, "retry": 1}
    again = store.inbox_claim(T0 + timedelta(hours=2), T0 + timedelta(hours=3), 10)
    assert [e.id for e in again] == ["e3"]
    assert store.inbox_recover() == 1
    assert store.inbox_list(statuses=["pending"])[0].id == "e3"


@pg
def test_mark_deleted_sets_deleted_at_on_the_named_live_rows_only(
    supabase_store: SupabaseStore,
) -> None:
    store = supabase_store
    store.add_connection(CONN)
    store.upsert_records(CONN, "booking", [booking(i) for i in range(3)], T0)
    later = T0 + timedelta(hours=1)
    assert store.mark_deleted("c1", "booking", ["1", "2", "2", "404"], later) == 2
    assert store.mark_deleted("c1", "booking", ["1"], later) == 0  # already deleted
    rows = {r["external_id"]: r for r in store.fetch_rows("booking", "c1")}
    assert rows["1"]["deleted_at"] == later and rows["0"]["deleted_at"] is None
