"""The inbox methods of the SQL stores, on a real SQLite file and a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bench.pgtemp import PostgresUnavailable, TempPostgres
from pms_cli.models import Booking, BookingStatus
from pms_cli.stores.base import Connection, WebhookEventRow
from pms_cli.stores.postgres import PostgresStore
from pms_cli.stores.sql import SqlStore
from pms_cli.stores.sqlite import SqliteStore

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    try:
        server = TempPostgres().start()
    except PostgresUnavailable as exc:
        pytest.fail(f"cannot start the test PostgreSQL server: {exc}", pytrace=False)
    try:
        url = server.create_database("pms_inbox_tests")
        store = PostgresStore(url, check_schema=False)
        store.migrate()
        store.close()
        yield url
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    if request.param == "sqlite":
        s: SqlStore = SqliteStore(tmp_path / "inbox.sqlite3")
    else:
        url = request.getfixturevalue("pg_url")
        s = PostgresStore(url)
        with s._tx() as cur:
            cur.execute("TRUNCATE pms_webhook_events, pms_bookings, pms_connections")
    s.add_connection(Connection("c1", "org", "smoobu", "c1", "active", "7", "file", {"public": {}}))
    yield s
    s.close()


def event(key: str, at: datetime = T0, **kw: Any) -> WebhookEventRow:
    return WebhookEventRow(
        id=kw.pop("id", f"id-{key}"),
        provider="smoobu",
        connection_id=kw.pop("connection_id", "c1"),
        organization_id="org",
        dedupe_key=key,
        payload=kw.pop("payload", {"change": {"resource": "bookings", "external_id": key}}),
        received_at=at,
        **kw,
    )


def test_adding_the_same_event_twice_stores_it_once(store: SqlStore) -> None:
    assert store.inbox_add(event("k1")) is True
    assert store.inbox_add(event("k1", id="another-id")) is False
    assert store.inbox_counts() == {"pending": 1}


def test_the_same_dedupe_key_on_two_connections_is_two_events(store: SqlStore) -> None:
    assert store.inbox_add(event("k1"))
    assert store.inbox_add(event("k1", id="x", connection_id="c2"))
    assert store.inbox_counts() == {"pending": 2}
    assert store.inbox_counts("c2") == {"pending": 1}


def test_claim_leases_due_events_oldest_first(store: SqlStore) -> None:
    for i in range(3):
        store.inbox_add(event(f"k{i}", T0 + timedelta(seconds=10 - i)))
    lease = T0 + timedelta(minutes=5)
    claimed = store.inbox_claim(T0 + timedelta(minutes=1), lease, limit=2)
    assert [e.dedupe_key for e in claimed] == ["k2", "k1"]
    assert all(e.status == "processing" and e.next_attempt_at == lease for e in claimed)
    assert [e.dedupe_key for e in store.inbox_claim(T0, lease, 10)] == ["k0"]
    assert store.inbox_claim(T0, lease, 10) == []


def test_an_expired_lease_makes_the_event_due_again(store: SqlStore) -> None:
    store.inbox_add(event("k1"))
    store.inbox_claim(T0, T0 + timedelta(minutes=5), 10)
    assert store.inbox_claim(T0 + timedelta(minutes=4), T0 + timedelta(minutes=9), 10) == []
    again = store.inbox_claim(T0 + timedelta(minutes=6), T0 + timedelta(minutes=11), 10)
    assert [e.dedupe_key for e in again] == ["k1"]


def test_a_retry_is_due_only_at_its_next_attempt_time(store: SqlStore) -> None:
    store.inbox_add(event("k1"))
    (claimed,) = store.inbox_claim(T0, T0 + timedelta(minutes=5), 10)
    store.inbox_mark(
        [claimed.id], "retry", next_attempt_at=T0 + timedelta(minutes=2), error="rate_limited"
    )
    assert store.inbox_claim(T0 + timedelta(minutes=1), T0 + timedelta(minutes=6), 10) == []
    (again,) = store.inbox_claim(T0 + timedelta(minutes=3), T0 + timedelta(minutes=8), 10)
    assert again.attempts == 1
    assert again.error == "rate_limited"


def test_done_failed_and_ignored_events_are_never_claimed(store: SqlStore) -> None:
    store.inbox_add(event("a"))
    store.inbox_add(event("b"))
    store.inbox_add(event("c", status="ignored"))
    claimed = store.inbox_claim(T0, T0 + timedelta(minutes=5), 10)
    store.inbox_mark([claimed[0].id], "done")
    store.inbox_mark([claimed[1].id], "failed", error="bad_record")
    assert store.inbox_claim(T0 + timedelta(days=1), T0 + timedelta(days=2), 10) == []
    assert store.inbox_counts() == {"done": 1, "failed": 1, "ignored": 1}


def test_recover_makes_leased_events_pending_again(store: SqlStore) -> None:
    store.inbox_add(event("k1"))
    store.inbox_claim(T0, T0 + timedelta(hours=1), 10)
    assert store.inbox_recover() == 1
    (again,) = store.inbox_claim(T0, T0 + timedelta(hours=1), 10)
    assert again.dedupe_key == "k1"


def test_list_is_newest_first_and_filters_by_status(store: SqlStore) -> None:
    store.inbox_add(event("old", T0))
    store.inbox_add(event("new", T0 + timedelta(seconds=1), status="failed"))
    assert [e.dedupe_key for e in store.inbox_list()] == ["new", "old"]
    assert [e.dedupe_key for e in store.inbox_list(statuses=["failed"])] == ["new"]
    assert store.inbox_list(connection_id="nobody") == []
    (row,) = store.inbox_list(limit=1)
    assert row.payload == {"change": {"resource": "bookings", "external_id": "new"}}
    assert row.received_at == T0 + timedelta(seconds=1)


def test_mark_deleted_sets_deleted_at_only_on_the_named_live_rows(store: SqlStore) -> None:
    conn = store.get_connection("c1")
    assert conn is not None
    rows = [
        Booking(
            external_id=str(i),
            raw={},
            status=BookingStatus.CONFIRMED,
            check_in=date(2026, 6, 1),
            check_out=date(2026, 6, 3),
        )
        for i in range(3)
    ]
    store.upsert_records(conn, "booking", rows, T0)
    assert store.mark_deleted("c1", "booking", ["1", "404"], T0 + timedelta(hours=1)) == 1
    deleted = {r["external_id"]: r["deleted_at"] for r in store.fetch_rows("booking", "c1")}
    assert deleted == {"0": None, "1": T0 + timedelta(hours=1), "2": None}
    # A later refetch that finds the record again brings it back (upsert clears deleted_at).
    store.upsert_records(conn, "booking", rows[1:2], T0 + timedelta(hours=2))
    assert all(r["deleted_at"] is None for r in store.fetch_rows("booking", "c1"))
