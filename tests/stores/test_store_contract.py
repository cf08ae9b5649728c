"""One contract for every SQL store, run on a real SQLite file and a real PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import pytest

from pms_cli.models import Booking, BookingStatus, Guest, Property
from pms_cli.stores.base import Connection, Store, SyncRun
from pms_cli.stores.sql import HOST, SqlStore

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def make_conn(cid: str = "c1", org: str = "org-a", **kw: Any) -> Connection:
    return Connection(
        id=cid,
        organization_id=org,
        provider=kw.pop("provider", "hostaway"),
        display_name=kw.pop("display_name", f"conn {cid}"),
        status=kw.pop("status", "active"),
        account_ref=kw.pop("account_ref", "acct-1"),
        secret_location=kw.pop("secret_location", "env"),
        **kw,
    )


def booking(i: int | str, **kw: Any) -> Booking:
    fields: dict[str, Any] = {
        "external_id": str(i),
        "property_external_id": "p1",
        "guest_external_id": f"email:g{i}@example.com",
        "status": BookingStatus.CONFIRMED,
        "check_in": date(2026, 6, 1),
        "check_out": date(2026, 6, 5),
        "adults": 2,
        "children": 1,
        "channel": "airbnb",
        "confirmation_code": f"HM{i}",
        "total_price": Decimal("696.67"),
        "currency": "EUR",
        "guest_name": "Zoë Ærø",
        "guest_email": f"g{i}@example.com",
        "guest_phone": "+4512345678",
        "created_at": T0,
        "updated_at": T0 + timedelta(hours=1),
        "raw": {"id": i, "nested": {"list": [1, 2.5, None, "ü"]}, "flag": True},
    }
    fields.update(kw)
    return Booking(**fields)


def prop(i: int | str, **kw: Any) -> Property:
    fields: dict[str, Any] = {
        "external_id": str(i),
        "name": f"Villa {i}",
        "city": "Lisbon",
        "country": "PT",
        "latitude": 38.7223,
        "longitude": -9.1393,
        "max_guests": 6,
        "bedrooms": 3,
        "bathrooms": 1.5,
        "check_in_time": "15:00",
        "currency": "EUR",
        "active": True,
        "updated_at": T0,
        "raw": {"id": i},
    }
    fields.update(kw)
    return Property(**fields)


def guest(key: str, **kw: Any) -> Guest:
    return Guest(external_id=key, name="Ana Silva", email="ana@example.com", **kw)


def run(rid: str, conn: Connection, started: datetime, status: str = "running") -> SyncRun:
    return SyncRun(
        id=rid,
        connection_id=conn.id,
        organization_id=conn.organization_id,
        trigger="cli",
        status=status,
        started_at=started,
        full_sync=False,
    )


@pytest.fixture
def conn(store: Store) -> Connection:
    c = make_conn(settings={"public": {"account_id": "123"}, "base_url": "http://x"})
    store.add_connection(c)
    return c


# --- connections -------------------------------------------------------------------------


def test_connection_round_trips_with_native_types(store: Store, conn: Connection) -> None:
    got = store.get_connection("c1")
    assert got is not None
    assert got.settings == {"public": {"account_id": "123"}, "base_url": "http://x"}
    assert got.created_at is not None and got.created_at.tzinfo is not None
    assert got.updated_at is not None and got.updated_at >= got.created_at
    assert (got.provider, got.status, got.last_sync_at, got.last_error) == (
        "hostaway",
        "active",
        None,
        None,
    )
    assert store.get_connection("nope") is None


def test_update_and_list_connections(store: Store, conn: Connection) -> None:
    store.add_connection(make_conn("c2", "org-b"))
    store.update_connection(
        "c1", status="error", last_error="boom", last_sync_at=T0, settings={"k": [1]}
    )
    got = store.get_connection("c1")
    assert got is not None
    assert (got.status, got.last_error, got.last_sync_at, got.settings) == (
        "error",
        "boom",
        T0,
        {"k": [1]},
    )
    store.update_connection("c2", status="disconnected")
    assert [c.id for c in store.list_connections()] == ["c1"]
    assert [c.id for c in store.list_connections(include_disconnected=True)] == ["c1", "c2"]


def test_add_connection_twice_updates_the_row(store: Store, conn: Connection) -> None:
    conn.display_name = "renamed"
    store.add_connection(conn)
    assert len(store.list_connections()) == 1
    got = store.get_connection("c1")
    assert got is not None and got.display_name == "renamed"


# --- synced rows -------------------------------------------------------------------------


def test_booking_values_round_trip(store: Store, conn: Connection) -> None:
    b = booking(1)
    assert store.upsert_records(conn, "booking", [b], T0) == 1
    [row] = store.fetch_rows("booking", "c1")
    assert row["total_price"] == Decimal("696.67")
    assert row["check_in"] == date(2026, 6, 1)
    assert row["created_at"] == T0 and row["created_at"].utcoffset() == timedelta(0)
    assert row["synced_at"] == T0
    assert row["status"] == "confirmed"
    assert row["guest_name"] == "Zoë Ærø"
    assert row["raw"] == {"id": 1, "nested": {"list": [1, 2.5, None, "ü"]}, "flag": True}
    assert (row["organization_id"], row["deleted_at"]) == ("org-a", None)


def test_property_and_guest_values_round_trip(store: Store, conn: Connection) -> None:
    store.upsert_records(conn, "property", [prop(1, active=False)], T0)
    store.upsert_records(conn, "guest", [guest("email:ana@example.com", country="PT")], T0)
    [p] = store.fetch_rows("property", "c1")
    assert p["active"] is False
    assert p["latitude"] == pytest.approx(38.7223)
    assert p["bathrooms"] == 1.5
    assert p["max_guests"] == 6
    [g] = store.fetch_rows("guest", "c1")
    assert (g["external_id"], g["country"], g["email"]) == (
        "email:ana@example.com",
        "PT",
        "ana@example.com",
    )


def test_upsert_is_idempotent_and_updates_in_place(store: Store, conn: Connection) -> None:
    batch = [booking(i) for i in range(50)]
    assert store.upsert_records(conn, "booking", batch, T0) == 50
    assert store.upsert_records(conn, "booking", batch, T0) == 50
    assert store.counts("c1")["booking"] == 50
    later = T0 + timedelta(hours=2)
    store.upsert_records(
        conn, "booking", [booking(7, status=BookingStatus.CANCELLED, total_price=None)], later
    )
    rows = {r["external_id"]: r for r in store.fetch_rows("booking", "c1")}
    assert len(rows) == 50
    assert rows["7"]["status"] == "cancelled"
    assert rows["7"]["total_price"] is None
    assert rows["7"]["synced_at"] == later
    assert rows["8"]["synced_at"] == T0


def test_duplicate_keys_in_one_batch_are_written_once_last_wins(
    store: Store, conn: Connection
) -> None:
    batch = [booking(1, channel="first"), booking(2), booking(1, channel="last")]
    assert store.upsert_records(conn, "booking", batch, T0) == 2
    rows = {r["external_id"]: r for r in store.fetch_rows("booking", "c1")}
    assert rows["1"]["channel"] == "last"


def test_empty_batch_writes_nothing(store: Store, conn: Connection) -> None:
    assert store.upsert_records(conn, "booking", [], T0) == 0
    assert store.counts("c1") == {"property": 0, "booking": 0, "guest": 0}


def test_same_external_id_in_two_connections_is_two_rows(store: Store, conn: Connection) -> None:
    other = make_conn("c2", "org-b")
    store.add_connection(other)
    store.upsert_records(conn, "booking", [booking(1)], T0)
    store.upsert_records(other, "booking", [booking(1, channel="vrbo")], T0)
    assert store.fetch_rows("booking", "c1")[0]["channel"] == "airbnb"
    assert store.fetch_rows("booking", "c2")[0]["channel"] == "vrbo"
    assert [(r["connection_id"], r["external_id"]) for r in store.fetch_rows("booking")] == [
        ("c1", "1"),
        ("c2", "1"),
    ]


def test_a_failing_batch_leaves_nothing_half_written(
    store: Store, conn: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args: Any) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(store, "_touch_mappings", explode)
    with pytest.raises(RuntimeError):
        store.upsert_records(conn, "property", [prop(1), prop(2)], T0)
    assert store.fetch_rows("property", "c1") == []
    assert store.list_mappings("c1") == []


def test_mark_missing_deleted_only_touches_stale_live_rows(store: Store, conn: Connection) -> None:
    store.upsert_records(conn, "property", [prop(1), prop(2), prop(3)], T0)
    later = T0 + timedelta(minutes=5)
    store.upsert_records(conn, "property", [prop(1), prop(3)], later)
    now = later + timedelta(minutes=1)
    assert store.mark_missing_deleted("c1", "property", later, now) == 1
    assert store.mark_missing_deleted("c1", "property", later, now) == 0  # already deleted
    rows = {r["external_id"]: r for r in store.fetch_rows("property", "c1")}
    assert rows["2"]["deleted_at"] == now
    assert rows["1"]["deleted_at"] is None
    assert store.counts("c1")["property"] == 2


def test_a_deleted_row_that_comes_back_is_live_again(store: Store, conn: Connection) -> None:
    store.upsert_records(conn, "property", [prop(1)], T0)
    store.mark_missing_deleted("c1", "property", T0 + timedelta(seconds=1), T0)
    assert store.counts("c1")["property"] == 0
    store.upsert_records(conn, "property", [prop(1)], T0 + timedelta(seconds=2))
    assert store.counts("c1")["property"] == 1


def test_known_external_ids_are_the_live_rows_of_that_kind_and_connection(
    store: Store, conn: Connection
) -> None:
    other = make_conn("c2")
    store.add_connection(other)
    store.upsert_records(conn, "guest", [guest(f"g{i}") for i in range(1, 601)], T0)
    store.upsert_records(other, "guest", [guest("x1")], T0)
    store.upsert_records(conn, "property", [prop("g700")], T0)
    store.mark_deleted(conn.id, "guest", ["g3"], T0)
    asked = [f"g{i}" for i in range(1, 701)] + ["x1"]  # more ids than one IN (...) chunk
    known = store.known_external_ids(conn.id, "guest", asked)
    assert known == {f"g{i}" for i in range(1, 601)} - {"g3"}
    assert store.known_external_ids(conn.id, "guest", []) == set()


def test_guests_no_booking_points_at_are_deleted_for_that_connection_only(
    store: Store, conn: Connection
) -> None:
    other = make_conn("c2")
    store.add_connection(other)
    store.upsert_records(conn, "booking", [booking(1, guest_external_id="a"), booking(2)], T0)
    store.upsert_records(
        conn, "booking", [booking(3, guest_external_id=None, status="blocked")], T0
    )
    store.upsert_records(
        conn, "guest", [guest(k) for k in ("a", "b", "c", "email:g2@example.com")], T0
    )
    store.upsert_records(other, "guest", [guest("b")], T0)
    assert store.booking_guest_keys(conn.id, ["1", "3", "404"]) == {"1": "a", "3": None}

    assert store.delete_unreferenced_guests(conn.id, ["b", "a"]) == 1  # only among those
    assert store.known_external_ids(conn.id, "guest", ["a", "b", "c"]) == {"a", "c"}
    assert store.delete_unreferenced_guests(conn.id) == 1  # "c"
    remaining = {g["external_id"] for g in store.fetch_rows("guest", conn.id)}
    assert remaining == {"a", "email:g2@example.com"}
    assert [g["external_id"] for g in store.fetch_rows("guest", other.id)] == ["b"]


def test_booking_rows_keep_the_total_guest_count(store: Store, conn: Connection) -> None:
    store.upsert_records(conn, "booking", [booking(1, adults=None, guests=4)], T0)
    [row] = store.fetch_rows("booking", conn.id)
    assert (row["adults"], row["guests"]) == (None, 4)


# --- cursors -------------------------------------------------------------------------------


def test_cursors(store: Store, conn: Connection) -> None:
    assert store.get_cursor("c1", "bookings") is None
    assert store.cursors("c1") == {}
    store.set_cursor("c1", "bookings", "2026-05-01T00:00:00+00:00")
    store.set_cursor("c1", "bookings", "2026-05-02T00:00:00+00:00")
    store.set_cursor("c1", "properties", None)
    store.set_cursor("c2", "bookings", "other")
    assert store.get_cursor("c1", "bookings") == "2026-05-02T00:00:00+00:00"
    assert store.cursors("c1") == {
        "bookings": "2026-05-02T00:00:00+00:00",
        "properties": None,
    }


def test_a_checkpoint_is_kept_per_connection_and_resource_until_cleared(
    store: Store, conn: Connection
) -> None:
    assert store.get_checkpoint("c1", "bookings") is None
    state = {"position": {"cursor": 12345, "fetched": 500, "total": None}, "since": None}
    store.set_checkpoint("c1", "bookings", {"position": {"page": 2}})
    store.set_checkpoint("c1", "bookings", state)
    store.set_checkpoint("c2", "bookings", {"position": {"page": 9}})
    assert store.get_checkpoint("c1", "bookings") == state
    assert store.get_checkpoint("c1", "properties") is None
    store.set_checkpoint("c1", "bookings", None)
    assert store.get_checkpoint("c1", "bookings") is None
    assert store.get_checkpoint("c2", "bookings") == {"position": {"page": 9}}


# --- sync log ------------------------------------------------------------------------------


def test_sync_log_start_finish_list(store: Store, conn: Connection) -> None:
    r1 = run("r1", conn, T0)
    store.start_run(r1)
    r1.status = "succeeded"
    r1.finished_at = T0 + timedelta(seconds=30)
    r1.counts = {"bookings": {"fetched": 3, "written": {"booking": 3}}}
    r1.requests, r1.retries, r1.rate_limit_waits = 4, 1, 2
    store.finish_run(r1)
    r2 = run("r2", conn, T0 + timedelta(hours=1))
    store.start_run(r2)
    r2.status = "failed"
    r2.error_code, r2.error_message, r2.error_hint = "auth_rejected", "no", "reconnect"
    store.finish_run(r2)
    runs = store.list_runs("c1")
    assert [r.id for r in runs] == ["r2", "r1"]
    assert runs[1].counts == r1.counts
    assert (runs[1].requests, runs[1].retries, runs[1].rate_limit_waits) == (4, 1, 2)
    assert runs[1].full_sync is False
    assert runs[1].finished_at == T0 + timedelta(seconds=30)
    assert [r.id for r in store.list_runs("c1", failed_only=True)] == ["r2"]
    assert [r.id for r in store.list_runs(limit=1)] == ["r2"]
    assert store.list_runs("other") == []


def test_mark_interrupted_spares_the_current_run(store: Store, conn: Connection) -> None:
    store.start_run(run("old", conn, T0))
    store.start_run(run("current", conn, T0 + timedelta(minutes=1)))
    assert store.mark_interrupted("c1", "current") == 1
    by_id = {r.id: r for r in store.list_runs("c1")}
    assert by_id["old"].status == "interrupted"
    assert by_id["old"].finished_at is not None
    assert by_id["current"].status == "running"


# --- locks ---------------------------------------------------------------------------------


def test_lock_is_exclusive_and_released_only_by_its_owner(store: Store, conn: Connection) -> None:
    assert store.acquire_lock("c1", "run-a", 3600)
    assert not store.acquire_lock("c1", "run-b", 3600)
    holder = store.lock_holder("c1")
    assert holder is not None and holder["owner"] == "run-a" and holder["host"] == HOST
    store.release_lock("c1", "run-b")  # not the owner: no effect
    assert not store.acquire_lock("c1", "run-b", 3600)
    store.release_lock("c1", "run-a")
    assert store.lock_holder("c1") is None
    assert store.acquire_lock("c1", "run-b", 3600)
    assert store.acquire_lock("c2", "run-c", 3600)  # per connection


def test_an_expired_lock_is_taken_over(store: Store, conn: Connection) -> None:
    assert store.acquire_lock("c1", "crashed", -1)  # lease already over
    assert store.acquire_lock("c1", "next", 3600)
    holder = store.lock_holder("c1")
    assert holder is not None and holder["owner"] == "next"


def test_a_lock_held_by_a_dead_process_on_this_host_is_taken_over(
    store: Store, conn: Connection
) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead_pid = int(proc.stdout)
    assert store.acquire_lock("c1", "killed", 3600)
    sql_store = cast(SqlStore, store)
    query = "UPDATE pms_locks SET pid = ? WHERE connection_id = ?".replace("?", sql_store.ph)
    with sql_store._tx() as cur:
        cur.execute(query, [dead_pid, "c1"])
    assert store.acquire_lock("c1", "next", 3600)
    holder = store.lock_holder("c1")
    assert holder is not None and holder["owner"] == "next"


# --- token cache ---------------------------------------------------------------------------


def test_token_cache_put_get_replace_delete(store: Store) -> None:
    blob = bytes(range(256))
    assert store.token_cache_get("hostaway:abc") is None
    store.token_cache_put("hostaway:abc", blob, 1_900_000_000.5)
    assert store.token_cache_get("hostaway:abc") == (blob, 1_900_000_000.5)
    store.token_cache_put("hostaway:abc", b"\x00new", None)
    got = store.token_cache_get("hostaway:abc")
    assert got == (b"\x00new", None) and isinstance(got[0], bytes)
    store.token_cache_delete("hostaway:abc")
    store.token_cache_delete("hostaway:abc")
    assert store.token_cache_get("hostaway:abc") is None


# --- mappings ------------------------------------------------------------------------------


def test_properties_fill_mappings_and_links_survive_resyncs(store: Store, conn: Connection) -> None:
    store.upsert_records(conn, "property", [prop(1), prop(2)], T0)
    mappings = store.list_mappings("c1")
    assert [(m["external_property_id"], m["property_id"], m["name"]) for m in mappings] == [
        ("1", None, "Villa 1"),
        ("2", None, "Villa 2"),
    ]
    assert mappings[0]["organization_id"] == "org-a"
    store.set_mapping("c1", "2", "internal-42")
    store.upsert_records(conn, "property", [prop(2, name="Villa Two")], T0 + timedelta(hours=1))
    by_ext = {m["external_property_id"]: m for m in store.list_mappings()}
    assert by_ext["2"]["property_id"] == "internal-42"
    assert by_ext["2"]["name"] == "Villa Two"
    with pytest.raises(KeyError):
        store.set_mapping("c1", "unknown", "x")
    assert store.list_mappings("other") == []


# --- purge ---------------------------------------------------------------------------------


def test_purge_removes_only_that_connections_rows(store: Store, conn: Connection) -> None:
    other = make_conn("c2", "org-b")
    store.add_connection(other)
    for c in (conn, other):
        store.upsert_records(c, "property", [prop(1)], T0)
        store.upsert_records(c, "booking", [booking(1), booking(2)], T0)
        store.upsert_records(c, "guest", [guest("g1")], T0)
        store.set_cursor(c.id, "bookings", "x")
    removed = store.purge_connection("c1")
    assert removed["pms_bookings"] == 2
    assert removed["pms_properties"] == 1
    assert removed["pms_guests"] == 1
    assert removed["pms_property_mappings"] == 1
    assert removed["pms_sync_state"] == 1
    assert store.counts("c1") == {"property": 0, "booking": 0, "guest": 0}
    assert store.counts("c2") == {"property": 1, "booking": 2, "guest": 1}
    assert store.cursors("c2") == {"bookings": "x"}
    assert store.get_connection("c1") is not None  # the row stays; disconnect marks it
