"""U+0000 from a provider: PostgreSQL cannot store it in text or jsonb, SQLite can.

Every write path of the Postgres and Supabase stores replaces it with U+FFFD (see
``pms_cli/stores/pgtext.py``) and writes the record; nothing is dropped.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pms_cli.errors import StoreError
from pms_cli.sandbox.server import SandboxOptions, SandboxServer, build
from pms_cli.stores.base import Connection, Store, SyncRun, WebhookEventRow
from pms_cli.stores.pgtext import REPLACEMENT, clean_json, clean_text
from pms_cli.stores.postgres import PostgresStore
from pms_cli.sync.engine import SyncEngine, SyncOptions
from tests.conftest import LiveSandbox, SharedClock
from tests.helpers import Harness
from tests.stores.test_store_contract import T0, booking, make_conn, prop

NUL = "\x00"


def test_json_cleaning_replaces_escaped_nuls_and_keeps_escaped_backslashes() -> None:
    assert clean_json('{"a\\u0000":"x\\u0000y"}') == '{"a\\ufffd":"x\\ufffdy"}'
    # A literal backslash followed by "u0000" is text, not a NUL: it stays.
    assert clean_json('"\\\\u0000"') == '"\\\\u0000"'
    assert clean_json('"\\\\\\u0000"') == '"\\\\\\ufffd"'
    assert clean_text(f"a{NUL}b") == f"a{REPLACEMENT}b"


def test_a_booking_with_nul_in_text_and_nested_raw_is_written_with_a_replacement(
    store: Store,
) -> None:
    conn = make_conn()
    store.add_connection(conn)
    record = booking(
        1,
        guest_name=f"Ana{NUL}Silva",
        raw={"guest": {f"first{NUL}Name": f"Ana{NUL}", "tags": [f"x{NUL}"]}, "id": 1},
    )
    assert store.upsert_records(conn, "booking", [record, booking(2)], T0) == 2
    rows = {r["external_id"]: r for r in store.fetch_rows("booking", conn.id)}
    assert set(rows) == {"1", "2"}
    if store.description.startswith("sqlite"):
        assert rows["1"]["guest_name"] == f"Ana{NUL}Silva"  # SQLite keeps it as it came
    else:
        assert rows["1"]["guest_name"] == f"Ana{REPLACEMENT}Silva"
        assert rows["1"]["raw"]["guest"] == {
            f"first{REPLACEMENT}Name": f"Ana{REPLACEMENT}",
            "tags": [f"x{REPLACEMENT}"],
        }


def test_every_other_write_path_accepts_nul(store: Store) -> None:
    conn = make_conn(display_name=f"Villa{NUL}s")
    store.add_connection(conn)
    store.upsert_records(conn, "property", [prop(1, name=f"Casa{NUL}")], T0)
    store.update_connection(conn.id, last_error=f"boom{NUL}")
    store.set_cursor(conn.id, "bookings", f"2026{NUL}")
    run = SyncRun("r1", conn.id, conn.organization_id, "cli", "running", T0, False)
    store.start_run(run)
    run.status, run.error_message = "failed", f"bad{NUL}value"
    store.finish_run(run)
    event = WebhookEventRow(
        id="e1",
        provider="hostaway",
        connection_id=conn.id,
        organization_id=conn.organization_id,
        dedupe_key=f"k{NUL}",
        payload={"body": {f"k{NUL}": f"v{NUL}"}},
        received_at=datetime(2026, 5, 1, tzinfo=UTC),
    )
    assert store.inbox_add(event)
    store.inbox_mark(["e1"], "failed", error=f"e{NUL}")
    assert store.list_runs(conn.id)[0].status == "failed"
    assert next(m["name"] for m in store.list_mappings(conn.id)).startswith("Casa")
    assert store.inbox_list(conn.id)[0].status == "failed"


# --- through the engine: a whole sync, and a store failure on one connection ---------------


def _two_connections(h: Harness, store: Store) -> list[Connection]:
    """Two connections to the same sandbox account, in ``store``."""
    h.store = store  # type: ignore[assignment]  # Harness types it as SQLite
    other = dataclasses.replace(h.conn, id="conn-other")
    for conn in (h.conn, other):
        store.add_connection(conn)
    return [h.conn, other]


def test_a_sync_with_a_nul_in_a_guest_name_succeeds_on_every_store(
    tmp_path: Path, clock: SharedClock, store: Store
) -> None:
    h = Harness("lodgify", tmp_path, clock, listings=2, reservations=12)
    first = next(iter(h.state.bookings.values()))
    first["guest"]["name"] = f"Ana{NUL}Silva"
    conns = _two_connections(h, store)
    engine = SyncEngine(store, h.runtime())
    results = asyncio.run(engine.sync_many(conns, SyncOptions()))
    assert [r.status for r in results] == ["succeeded", "succeeded"], results[0].error
    names = {r["guest_name"] for r in store.fetch_rows("booking", conns[0].id)}
    assert any(n and n.startswith("Ana") and n.endswith("Silva") for n in names)
    assert store.counts(conns[0].id)["booking"] == 12


class FailingStore:
    """``store`` whose batch writes for one connection raise ``error``."""

    def __init__(self, store: Store, connection_id: str, error: Exception) -> None:
        self._store, self._id, self._error = store, connection_id, error

    def upsert_records(self, conn: Connection, *args: Any) -> int:
        if conn.id == self._id:
            raise self._error
        return self._store.upsert_records(conn, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


@pytest.mark.parametrize(
    "error",
    [
        StoreError("PostgreSQL refused a statement", hint="Compare the schema.", code="x"),
        RuntimeError("a driver error pms does not know"),
    ],
    ids=["store_error", "unexpected"],
)
def test_a_failing_batch_fails_its_connection_only_and_leaves_no_run_running(
    tmp_path: Path, clock: SharedClock, store: Store, error: Exception
) -> None:
    h = Harness("lodgify", tmp_path, clock, listings=2, reservations=12)
    conns = _two_connections(h, store)
    failing = FailingStore(store, conns[0].id, error)
    engine = SyncEngine(failing, h.runtime())  # type: ignore[arg-type]
    bad, good = asyncio.run(engine.sync_many(conns, SyncOptions()))
    assert good.status == "succeeded"
    assert store.counts(conns[1].id)["booking"] == 12
    assert bad.status == "failed"
    assert bad.error is not None and bad.error["hint"]
    assert "failed" in {r.status for r in bad.resources.values()}
    runs = store.list_runs()
    assert sorted(r.status for r in runs) == ["failed", "succeeded"]


# --- the probe's scenario: `pms sync --all --json` into the real PostgreSQL -------------------


@pytest.fixture
def hostaway_with_a_nul(memory_keyring: Any) -> Iterator[LiveSandbox]:
    app, mounted = build(
        SandboxOptions(listings=3, reservations=40, relaxed=True), providers=["hostaway"]
    )
    state = mounted[0].state
    first = state.reservations[min(state.reservations)]
    first["guestName"] = f"Ana{NUL}Silva"
    first["guestFirstName"] = f"Ana{NUL}"
    server = SandboxServer(app)
    server.start()
    yield LiveSandbox(server, {m.provider: m for m in mounted})
    server.stop()


def test_sync_all_into_postgres_with_a_nul_in_one_booking_syncs_every_connection(
    pms: Any, fresh_db: str, hostaway_with_a_nul: LiveSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PMS_DATABASE_URL", fresh_db)
    assert pms("db", "migrate").code == 0
    ids = []
    for _ in range(2):  # the same account twice: --new makes it a second connection
        connected = pms(*hostaway_with_a_nul.connect_args("hostaway"), "--new", "--json")
        assert connected.code == 0, connected.stderr
        ids.append(connected.json()["connection_id"])
    result = pms("sync", "--all", "--json")
    assert result.code == 0, result.stderr
    summary = result.json()
    assert [c["status"] for c in summary["connections"]] == ["succeeded", "succeeded"]
    store = PostgresStore(fresh_db)
    try:
        for cid in ids:
            assert store.counts(cid)["booking"] == 40
        assert not [r for r in store.list_runs() if r.status == "running"]
        names = {r["guest_name"] for r in store.fetch_rows("booking", ids[0])}
        assert f"Ana{REPLACEMENT}Silva" in names
    finally:
        store.close()
