"""One contract for every provider, run against its sandbox through the real engine and store."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pms_cli.errors import AuthError
from pms_cli.providers import get_provider, registry
from pms_cli.sync.session import open_adapter
from tests.conftest import SharedClock
from tests.helpers import Harness

PROVIDERS = sorted(registry())


@pytest.fixture(params=PROVIDERS)
def harness(request: pytest.FixtureRequest, tmp_path: Path, clock: SharedClock) -> Harness:
    return Harness(request.param, tmp_path, clock, listings=6, reservations=150)


def test_every_resource_yields_records_with_unique_non_null_keys(harness: Harness) -> None:
    result = harness.sync()
    assert result.status == "succeeded", result.error
    cls = get_provider(harness.conn.provider)
    for resource in cls.resources:
        assert result.resources[resource.name].fetched > 0, resource.name
    for kind in ("property", "booking", "guest"):
        rows = harness.store.fetch_rows(kind, harness.conn.id)  # type: ignore[arg-type]
        assert rows, kind
        keys = [r["external_id"] for r in rows]
        assert all(keys) and len(keys) == len(set(keys))


def test_synced_rows_are_normalised(harness: Harness) -> None:
    harness.sync()
    statuses = {r["status"] for r in harness.store.fetch_rows("booking", harness.conn.id)}
    assert statuses <= {"confirmed", "pending", "cancelled", "blocked", "inquiry"}
    assert "confirmed" in statuses
    for row in harness.store.fetch_rows("booking", harness.conn.id):
        for field in ("created_at", "updated_at"):
            if row[field] is not None:
                assert row[field].utcoffset().total_seconds() == 0
        assert row["currency"] is None or len(row["currency"]) == 3
        assert row["raw"]
    for row in harness.store.fetch_rows("property", harness.conn.id):
        assert row["country"] is None or (len(row["country"]) == 2 and row["country"].isupper())


def unchanged_but_reread(harness: Harness, cursor: str | None) -> int:
    """Bookings an incremental run reads although nothing changed: none, except Guesty's stays
    not ended at the cursor (v3 has no updated-at filter; see providers/guesty.py)."""
    if harness.conn.provider != "guesty" or cursor is None:
        return 0
    since = datetime.fromisoformat(cursor) - timedelta(minutes=harness.settings.sync.lag_minutes)
    day = (since.astimezone(UTC) - timedelta(days=1)).date().isoformat()
    return sum(r["checkOutDateLocalized"] >= day for r in harness.state.reservations.values())


def test_cursors_advance_and_a_second_run_fetches_only_changes(
    harness: Harness, clock: SharedClock
) -> None:
    first = harness.sync()
    cursors = harness.store.cursors(harness.conn.id)
    cls = get_provider(harness.conn.provider)
    incremental = [r.name for r in cls.resources if r.incremental]
    assert incremental, "a provider must sync at least one resource incrementally"
    assert all(cursors.get(name) for name in incremental)
    # Windowed resources (Guesty v3) are read whole again once sync.refresh_hours passed: stay
    # inside that interval so the second run is incremental for them too.
    windowed = any(r.windowed for r in cls.resources)
    hours = harness.settings.sync.refresh_hours
    clock.advance(hours * 3600 - 60 if windowed else 3 * 86400)
    second = harness.sync()
    for name in incremental:
        if name == "bookings":
            assert second.resources[name].fetched < first.resources[name].fetched
            assert second.resources[name].fetched == unchanged_but_reread(harness, cursors[name])
    assert harness.store.cursors(harness.conn.id)["bookings"] > cursors["bookings"]


def test_wrong_credentials_fail_with_exit_3_and_a_provider_specific_hint(harness: Harness) -> None:
    cls = get_provider(harness.conn.provider)
    secrets = {
        k: type(v)("wrong-" + v.get_secret_value()[:8]) for k, v in harness.secrets().items()
    }

    async def check() -> None:
        async with open_adapter(
            harness.runtime(),
            cls.name,
            connection_id="x",
            public=harness.public(),
            secrets=secrets,
            conn_settings=harness.conn.settings,
            token_store=None,
        ) as adapter:
            await adapter.setup()
            await adapter.check()

    with pytest.raises(AuthError) as info:
        asyncio.run(check())
    assert info.value.exit_code == 3
    assert cls.title in info.value.hint or cls.name in info.value.hint.lower()


def test_dates_stay_local_and_timestamps_are_utc(harness: Harness) -> None:
    """Check-in/out are the provider's local calendar dates (never shifted through a timezone
    conversion); every timestamp is aware UTC; a property's timezone is kept when given."""
    import datetime as dt

    harness.sync()
    for row in harness.store.fetch_rows("booking", harness.conn.id):
        for field in ("check_in", "check_out"):
            value = row[field]
            assert value is None or type(value) is dt.date
        if row["check_in"] and row["check_out"]:
            assert row["check_out"] >= row["check_in"]
    for row in harness.store.fetch_rows("property", harness.conn.id):
        assert row["synced_at"].utcoffset() == dt.timedelta(0)
        tz = row["timezone"]
        if tz is not None:
            from zoneinfo import ZoneInfo

            ZoneInfo(tz)  # a real IANA name, kept as the provider sent it
