"""Run a sync under injected faults and judge it against a clean sync (tests and bench/faults.py).

In-process: the provider sandbox sits behind ``FaultInjector`` and ``httpx.ASGITransport``; the
sandbox, the client's sleeps and the fault's waits all share one fake clock, so a 429 storm with
``Retry-After: 30`` costs no real time. A run that stops with an error is rerun (as cron would),
up to ``max_runs`` times; after mid-read mutations one more incremental run follows. The rows
are then compared with a clean full sync of the same upstream data into a fresh database.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pms_cli.models import Kind
from pms_cli.sandbox.faults import Fault, FaultInjector, with_faults
from pms_cli.stores.sqlite import SqliteStore
from pms_cli.sync.engine import SyncResult
from tests.conftest import SharedClock
from tests.helpers import Harness

PROVIDERS = ("hostaway", "smoobu", "lodgify", "guesty", "beds24")
#: Enough bookings for three pages each (page sizes: Hostaway 500, Lodgify 50, others 100).
BOOKINGS = {"hostaway": 1100, "smoobu": 250, "lodgify": 120, "guesty": 250, "beds24": 250}
#: The text in each provider's bookings list path, to aim faults at booking pages.
BOOKING_PATH = {
    "hostaway": "reservations",
    "smoobu": "reservations",
    "lodgify": "bookings",
    "guesty": "reservations",
    "beds24": "bookings",
}
#: Guesty v3 search rows carry their id as `reservationId` (by-id rows as `_id`).
ID_KEY = {
    "hostaway": "id",
    "smoobu": "id",
    "lodgify": "id",
    "guesty": "reservationId",
    "beds24": "id",
}
#: Providers whose incremental run cannot see every edit (Guesty v3: no updated-at filter, an
#: edit to a stay that has ended is caught by webhooks or the periodic whole re-read): the run
#: that follows mid-read mutations is that whole re-read.
EDITS_NEED_WHOLE_READ = frozenset({"guesty"})
KINDS: tuple[Kind, ...] = ("property", "booking", "guest")
_VOLATILE = frozenset({"synced_at", "created_at", "updated_at"})

Rows = dict[tuple[str, str], dict[str, Any]]


def matrix(provider: str) -> dict[str, list[Fault]]:
    """The named fault scenarios, aimed at ``provider``'s endpoints where that matters."""
    bookings = BOOKING_PATH[provider]
    return {
        "429 storm, Retry-After": [Fault("429", start=2, every=4, burst=3, retry_after=30)],
        "429 storm, no Retry-After": [Fault("429-bare", start=2, every=4, burst=3)],
        "429 beyond max attempts": [Fault("429", start=3, burst=8, times=1)],
        "5xx bursts": [Fault("5xx", start=2, every=5, burst=2, status=502)],
        "5xx outage": [Fault("5xx", start=3, burst=12, times=1)],
        "slow responses": [Fault("slow", every=1, delay=2.0)],
        "timeouts": [Fault("timeout", start=2, every=3, delay=30.0)],
        "connection resets": [Fault("reset", start=2, every=3)],
        "truncated JSON": [Fault("truncate", start=2, every=3)],
        "malformed JSON": [Fault("malformed", start=2, every=4, burst=2)],
        "token expiry mid-sync": [Fault("token-expiry", start=3, every=3)],
        "pages change mid-read": [
            Fault("mutate", path=bookings, start=2, every=1, times=2, records=3)
        ],
        "duplicates across pages": [Fault("duplicate", path=bookings, every=1, records=2)],
        "schema drift: extra fields": [Fault("drift", mode="extra", field="*", records=0, every=1)],
        "schema drift: renamed fields": [
            Fault("drift", mode="rename", path=bookings, records=0, every=1)
        ],
        "schema drift: wrong types": [
            Fault("drift", mode="type", field="*", path=bookings, records=3, every=1)
        ],
        "schema drift: record without id": [
            Fault("drift", mode="missing", field=ID_KEY[provider], path=bookings, start=2, times=1)
        ],
    }


#: Faults that describe what the provider's data *is* (it keeps drifting), not an accident:
#: the clean reference sync sees them too.
def persistent(faults: Sequence[Fault]) -> list[Fault]:
    return [f for f in faults if f.kind == "drift" and f.times is None]


@dataclass
class Outcome:
    provider: str
    scenario: str
    converged: bool
    runs: int
    statuses: list[str]
    errors: list[str]
    rows: int
    lost: int
    changed: int
    extra: int
    duplicated: int
    retries: int
    injected: int
    skipped: int
    wall: float
    problems: list[str] = field(default_factory=list)


def table(store: SqliteStore, connection_id: str) -> Rows:
    """Every synced row (and property mapping) keyed by kind and id, minus bookkeeping times."""
    out: Rows = {}
    for kind in KINDS:
        for row in store.fetch_rows(kind, connection_id):
            out[(kind, str(row["external_id"]))] = {
                k: v for k, v in row.items() if k not in _VOLATILE
            }
    for row in store.list_mappings(connection_id):
        out[("mapping", str(row["external_property_id"]))] = {
            k: v for k, v in row.items() if k not in _VOLATILE
        }
    return out


def duplicate_keys(store: SqliteStore) -> int:
    """Rows sharing a (connection, external id) key: the schema forbids them; count anyway."""
    total = 0
    with store._tx() as cur:
        for name in ("pms_properties", "pms_bookings", "pms_guests"):
            cur.execute(
                f"SELECT count(*) FROM (SELECT 1 FROM {name} "  # noqa: S608 - fixed table names
                "GROUP BY connection_id, external_id HAVING count(*) > 1)"
            )
            total += int(cur.fetchone()[0])
    return total


def compare(got: Rows, want: Rows) -> tuple[int, int, int]:
    """(rows missing, rows differing, rows not in the reference)."""
    lost = sum(1 for k in want if k not in got)
    changed = sum(1 for k, row in want.items() if k in got and got[k] != row)
    extra = sum(1 for k in got if k not in want)
    return lost, changed, extra


def run(
    provider: str,
    scenario: str,
    faults: Sequence[Fault],
    workdir: Path,
    *,
    max_runs: int = 3,
    bookings: int | None = None,
    max_page: int | None = None,
    check_run: Callable[[SyncResult, dict[str, str | None], dict[str, str | None]], list[str]]
    | None = None,
) -> Outcome:
    """Sync ``provider`` under ``faults`` until it succeeds (rerunning like cron), then judge it.

    ``max_page`` lowers the sandbox's page-size cap where it has one (Hostaway), so a small
    account still spans several pages.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    clock = SharedClock()
    size = bookings or BOOKINGS[provider]
    harness = Harness(provider, workdir / "faulted", clock, listings=4, reservations=size)
    # Every run re-reads resources without a modified-since filter: a guest changed mid-read
    # (a returning guest's booking list) must converge by the next run, not sync.refresh_hours
    # later. The refresh policy itself is tested in tests/test_refresh_policy.py.
    harness.settings.sync.refresh_hours = 0
    clean = harness.sandbox
    if max_page is not None and hasattr(clean.state.config, "max_limit"):
        # Hostaway's pages hold 500: a lower server-side cap gives several pages cheaply.
        clean.state.config.max_limit = max_page
    harness.sandbox = with_faults(clean, faults, sleep=clock.sleep)
    injector: FaultInjector = harness.sandbox.extra["faults"]
    mutating = any(f.kind == "mutate" for f in faults)
    results: list[SyncResult] = []
    problems: list[str] = []
    started = time.perf_counter()
    for attempt in range(max_runs + (1 if mutating else 0)):
        before = harness.store.cursors(harness.conn.id)
        whole = mutating and attempt > 0 and provider in EDITS_NEED_WHOLE_READ
        result = harness.sync(full=True) if whole else harness.sync()
        after = harness.store.cursors(harness.conn.id)
        results.append(result)
        problems += run_problems(result, before, after)
        if check_run is not None:
            problems += check_run(result, before, after)
        done = result.status == "succeeded" or (
            result.status == "partial" and result.error is None and persistent(faults)
        )
        if done and not (mutating and attempt == 0):
            break
    wall = time.perf_counter() - started

    reference = Harness(provider, workdir / "reference", clock, listings=1, reservations=0)
    kept = persistent(faults)
    reference.sandbox = with_faults(clean, kept, sleep=clock.sleep) if kept else clean
    reference.sync()
    want = table(reference.store, reference.conn.id)
    got = table(harness.store, harness.conn.id)
    lost, changed, extra = compare(got, want)
    duplicated = duplicate_keys(harness.store)
    last = results[-1]
    converged = (
        last.status in ("succeeded", "partial")
        and not (lost or changed or extra or duplicated)
        and (last.status == "succeeded" or bool(kept))
    )
    outcome = Outcome(
        provider=provider,
        scenario=scenario,
        converged=converged,
        runs=len(results),
        statuses=[r.status for r in results],
        errors=[str(r.error["code"]) for r in results if r.error],
        rows=len(want),
        lost=lost,
        changed=changed,
        extra=extra,
        duplicated=duplicated,
        retries=sum(r.retries for r in results),
        injected=sum(injector.injected.values()),
        skipped=sum(rr.skipped for r in results for rr in r.resources.values()),
        wall=wall,
        problems=problems,
    )
    harness.store.close()
    reference.store.close()
    return outcome


def run_problems(
    result: SyncResult, before: dict[str, str | None], after: dict[str, str | None]
) -> list[str]:
    """A cursor moves only for a resource whose every row was written; a run that is not a
    success says why (an error with message and hint, or the ids of skipped records)."""
    problems = []
    for name, rr in result.resources.items():
        if rr.status != "succeeded" and after.get(name) != before.get(name):
            problems.append(f"{name}: cursor moved on a {rr.status} run")
    skipped = any(rr.skipped_ids for rr in result.resources.values())
    if result.status != "succeeded" and not result.error and not skipped:
        problems.append(f"run {result.status} without an error or skipped record ids")
    for error in filter(None, [result.error]):
        if not error.get("message") or not error.get("hint"):
            problems.append(f"error without message or hint: {error}")
    return problems
