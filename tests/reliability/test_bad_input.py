"""Bad input: each case gives `Error:` + `Hint:` on stderr, the documented exit code, no
traceback, and loses nothing that was already synced."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keyring
import pytest
from keyring.errors import KeyringLocked

from pms_cli.errors import EXIT_AUTH, EXIT_CONFIG, EXIT_PARTIAL, StoreError
from pms_cli.sandbox.faults import Fault
from pms_cli.stores.sqlite import SqliteStore
from tests.conftest import MemoryKeyring, SharedClock
from tests.helpers import Harness
from tests.reliability import kill, scenario

pytestmark = pytest.mark.e2e


def assert_user_error(result: Any, code: int, *words: str) -> None:
    assert result.code == code, (result.stdout, result.stderr)
    assert "Error:" in result.stderr and "Hint:" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for word in words:
        assert word in result.stderr


@contextlib.contextmanager
def lodgify_serving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, faults: list[Fault] | None = None
) -> Iterator[kill.Served]:
    """A Lodgify sandbox (60 bookings, optionally faulty) and a connection to it."""
    with kill.serve("lodgify", bookings=60, delay=0, faults=faults) as served:
        kill.connect(tmp_path, served)
        monkeypatch.setenv("LODGIFY_API_KEY", served.sandbox.credentials["api_key"])
        yield served


@pytest.fixture
def lodgify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[kill.Served]:
    with lodgify_serving(tmp_path, monkeypatch) as served:
        yield served


def rows(tmp_path: Path) -> scenario.Rows:
    return kill.rows(tmp_path)


def test_an_unknown_connection_id_is_a_config_error(pms: Any, lodgify: kill.Served) -> None:
    assert_user_error(pms("sync", "--connection", "nope-nope"), EXIT_CONFIG, "no connection")


def test_a_disconnected_connection_is_a_config_error(
    pms: Any, lodgify: kill.Served, tmp_path: Path
) -> None:
    store = SqliteStore(kill.database(tmp_path))
    store.update_connection(kill.CONNECTION_ID, status="disconnected")
    store.close()
    assert_user_error(pms("sync", "--connection", kill.CONNECTION_ID), EXIT_CONFIG, "disconnected")


def test_wrong_credentials_exit_with_the_auth_code_and_keep_synced_rows(
    pms: Any, lodgify: kill.Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert pms("sync", "--connection", kill.CONNECTION_ID).code == 0
    before = rows(tmp_path)
    monkeypatch.setenv("LODGIFY_API_KEY", "not-the-key-0123456789")
    assert_user_error(pms("sync", "--connection", kill.CONNECTION_ID, "--full"), EXIT_AUTH)
    assert rows(tmp_path) == before


def test_revoked_credentials_exit_with_the_auth_code(
    pms: Any, lodgify: kill.Served, tmp_path: Path
) -> None:
    lodgify.sandbox.state.rotate_api_key()
    assert_user_error(pms("sync", "--connection", kill.CONNECTION_ID), EXIT_AUTH, "rejected")


def _use_keyring(tmp_path: Path) -> None:
    store = SqliteStore(kill.database(tmp_path))
    store.update_connection(kill.CONNECTION_ID, secret_location="keyring")
    store.close()


def test_an_absent_keyring_names_the_env_variable_to_set(
    pms: Any, lodgify: kill.Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _use_keyring(tmp_path)
    monkeypatch.delenv("LODGIFY_API_KEY")
    assert_user_error(
        pms("sync", "--connection", kill.CONNECTION_ID), EXIT_CONFIG, "LODGIFY_API_KEY"
    )


class LockedKeyring(MemoryKeyring):
    def get_password(self, service: str, username: str) -> str | None:
        raise KeyringLocked("the login keyring is locked")


def test_a_locked_keyring_is_a_config_error_not_a_crash(
    pms: Any, lodgify: kill.Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _use_keyring(tmp_path)
    monkeypatch.delenv("LODGIFY_API_KEY")
    keyring.set_keyring(LockedKeyring())
    assert_user_error(pms("sync", "--connection", kill.CONNECTION_ID), EXIT_CONFIG)


def test_malformed_toml_is_a_config_error_naming_the_file(pms: Any, tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.toml").write_text("[sync\nbatch_size = 5\n")
    assert_user_error(pms("status"), EXIT_CONFIG, "config.toml")


def test_an_unknown_config_key_is_a_config_error(pms: Any, tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.toml").write_text("[sync]\nbatch_sise = 5\n")
    assert_user_error(pms("status"), EXIT_CONFIG, "batch_sise")


def test_an_unreachable_database_is_a_store_error(
    pms: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PMS_DATABASE_URL", "postgresql://pms@127.0.0.1:9/pms?connect_timeout=2")
    assert_user_error(pms("sync", "--all"), EXIT_CONFIG)


def test_schema_drift_skips_the_bad_records_by_id_and_exits_partial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pms: Any
) -> None:
    drift = Fault("drift", mode="missing", field="id", path="bookings", every=1)
    with lodgify_serving(tmp_path, monkeypatch, [drift]):
        result = pms("sync", "--connection", kill.CONNECTION_ID, "--json")
    assert result.code == EXIT_PARTIAL
    assert "Traceback" not in result.stderr
    bookings = result.json()["connections"][0]["resources"]["bookings"]
    # One record without an id on each of the two pages; the id-less ones are reported as "?".
    assert bookings["skipped"] == 2 and bookings["skipped_ids"] == ["?", "?"]
    assert bookings["written"]["booking"] == 58


def test_schema_drift_in_human_output_says_error_and_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pms: Any
) -> None:
    drift = Fault("drift", mode="missing", field="id", path="bookings", every=1)
    with lodgify_serving(tmp_path, monkeypatch, [drift]):
        result = pms("sync", "--connection", kill.CONNECTION_ID)
    assert result.code == EXIT_PARTIAL, result.stderr  # the part that works today
    assert_user_error(result, EXIT_PARTIAL, "skipped")


class FailingStore(SqliteStore):
    """A database that goes away after ``ok`` successful batch writes."""

    ok = 1

    def upsert_records(self, *args: Any, **kwargs: Any) -> int:
        if self.ok <= 0:
            raise StoreError("server closed the connection unexpectedly", hint="Check it.")
        self.ok -= 1
        return super().upsert_records(*args, **kwargs)


def test_a_store_lost_mid_sync_fails_clearly_keeps_the_cursor_and_a_rerun_converges(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = Harness("smoobu", tmp_path, clock, listings=3, reservations=150)
    h.settings.sync.batch_size = 40
    h.store.close()
    h.store = FailingStore(h.store.path)
    failed = h.sync()
    assert failed.status in ("failed", "partial")
    assert failed.error is not None and failed.error["code"] == "store"
    assert h.store.cursors(h.conn.id).get("bookings") is None
    h.store.ok = 10**6
    assert h.sync().status == "succeeded"
    reference = Harness("smoobu", tmp_path / "ref", clock, listings=3, reservations=150)
    reference.sync()
    assert scenario.table(h.store, h.conn.id) == scenario.table(reference.store, h.conn.id)


def test_a_full_disk_fails_clearly_writes_no_partial_batch_and_a_rerun_converges(
    tmp_path: Path, clock: SharedClock
) -> None:
    h = Harness("smoobu", tmp_path, clock, listings=3, reservations=150)
    h.settings.sync.batch_size = 40
    pages = h.store._db.execute("PRAGMA page_count").fetchone()[0]
    # SQLite's own "database or disk is full", a few pages above the empty schema.
    h.store._db.execute(f"PRAGMA max_page_count = {pages + 8}")
    full = h.sync()
    assert full.error is not None and full.error["code"] == "store"
    assert "full" in str(full.error["message"])
    assert h.store.cursors(h.conn.id).get("bookings") is None
    h.store._db.execute("PRAGMA max_page_count = 1073741823")
    assert h.sync().status == "succeeded"
    reference = Harness("smoobu", tmp_path / "ref", clock, listings=3, reservations=150)
    reference.sync()
    assert scenario.table(h.store, h.conn.id) == scenario.table(reference.store, h.conn.id)


def test_a_renamed_required_field_stops_the_sync_with_a_schema_drift_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pms: Any
) -> None:
    drift = Fault("drift", mode="rename", field="arrival", path="bookings", records=0, every=1)
    with lodgify_serving(tmp_path, monkeypatch, [drift]) as served:
        result = pms("sync", "--connection", kill.CONNECTION_ID)
        assert result.code == EXIT_PARTIAL  # properties synced; bookings stopped
        assert "Error:" in result.stderr and "arrival missing from every record" in result.stderr
        assert "Hint:" in result.stderr and "Traceback" not in result.stderr
        status = pms("status", "--json").json()["connections"][0]
        assert status["counts"]["booking"] == 0  # nothing half-understood was written
        assert "bookings" not in status["cursors"]
        served.sandbox.extra["faults"].set_faults([])  # the provider is fixed (or pms updated)
        again = pms("sync", "--connection", kill.CONNECTION_ID, "--json")
    assert again.code == 0, again.stderr
    assert again.json()["connections"][0]["resources"]["bookings"]["written"]["booking"] == 60


def test_a_renamed_mapped_field_is_written_but_flagged_and_read_again_after_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pms: Any
) -> None:
    drift = Fault("drift", mode="rename", field="total_amount", path="bookings", records=0, every=1)
    with lodgify_serving(tmp_path, monkeypatch, [drift]) as served:
        result = pms("sync", "--connection", kill.CONNECTION_ID)
        assert_user_error(result, EXIT_PARTIAL, "total_amount absent from all 60 records")
        status = pms("status", "--json").json()["connections"][0]
        assert status["counts"]["booking"] == 60  # written: raw JSON keeps the renamed field
        assert "bookings" not in status["cursors"]  # ...but read again next run
        store = SqliteStore(tmp_path / "data" / "pms.sqlite3")
        assert {r["total_price"] for r in store.fetch_rows("booking")} == {None}
        store.close()
        served.sandbox.extra["faults"].set_faults([])  # pms updated / the provider fixed it
        again = pms("sync", "--connection", kill.CONNECTION_ID, "--json")
    assert again.code == 0, again.stderr
    bookings = again.json()["connections"][0]["resources"]["bookings"]
    assert bookings["written"]["booking"] == 60 and bookings["missing_fields"] == []
    store = SqliteStore(tmp_path / "data" / "pms.sqlite3")
    assert None not in {r["total_price"] for r in store.fetch_rows("booking")}
    store.close()


def test_an_expected_field_that_is_present_but_null_is_not_drift(tmp_path: Path) -> None:
    clock = SharedClock()
    h = Harness("lodgify", tmp_path, clock, listings=2, reservations=40)
    for booking in h.state.bookings.values():
        booking["total_amount"] = None
    result = h.sync()
    assert result.status == "succeeded", result.error
    assert result.resources["bookings"].missing_fields == []
