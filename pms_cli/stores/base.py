"""The Store protocol: everything the engine and CLI need from a database.

Implementations: ``SqliteStore`` (default, embedded), and later Postgres (psycopg) and Supabase
(supabase-py). Methods are synchronous; the async engine calls them in a worker thread.
Every write method is one transaction: it either fully happens or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from pms_cli.models import AnyRecord, Kind


@dataclass
class Connection:
    id: str
    organization_id: str
    provider: str
    display_name: str
    status: str  # active | error | disconnected
    account_ref: str
    secret_location: str  # keyring | file | env
    settings: dict[str, Any] = field(default_factory=dict)
    last_sync_at: datetime | None = None
    last_error: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass
class SyncRun:
    id: str
    connection_id: str
    organization_id: str
    trigger: str
    status: str  # running | succeeded | partial | failed | interrupted
    started_at: datetime
    full_sync: bool
    finished_at: datetime | None = None
    counts: dict[str, Any] = field(default_factory=dict)
    requests: int = 0
    retries: int = 0
    rate_limit_waits: int = 0
    error_code: str | None = None
    error_message: str | None = None
    error_hint: str | None = None
    owner: str | None = None


@dataclass
class WebhookEventRow:
    """One row of the ``pms_webhook_events`` inbox: a verified delivery waiting to be applied.

    ``status``: pending → processing (leased until ``next_attempt_at``) → done, or retry (due
    again at ``next_attempt_at``), failed (cannot ever apply), ignored (nothing to apply),
    invalid (authenticated but unparseable; kept for inspection).
    """

    id: str
    provider: str
    connection_id: str
    organization_id: str
    dedupe_key: str
    payload: Any
    received_at: datetime
    status: str = "pending"
    attempts: int = 0
    next_attempt_at: datetime | None = None
    error: str | None = None


class Store(Protocol):
    """Persistence for connections, synced rows, cursors, the sync log, locks and the inbox."""

    description: str
    """Human-readable, redacted description (``sqlite:/path``, ``postgres://host/db``)."""

    def close(self) -> None: ...

    # connections
    def add_connection(self, conn: Connection) -> None: ...
    def get_connection(self, connection_id: str) -> Connection | None: ...
    def list_connections(self, include_disconnected: bool = False) -> list[Connection]: ...
    def update_connection(self, connection_id: str, **fields: Any) -> None: ...
    def purge_connection(self, connection_id: str) -> dict[str, int]: ...

    # synced rows
    def upsert_records(
        self, conn: Connection, kind: Kind, records: Sequence[AnyRecord], synced_at: datetime
    ) -> int:
        """Insert or update rows keyed (connection_id, external_id); returns rows written."""

    def mark_missing_deleted(
        self, connection_id: str, kind: Kind, seen_before: datetime, now: datetime
    ) -> int:
        """Set ``deleted_at`` on live rows not touched since ``seen_before`` (full syncs)."""

    def booking_guest_keys(
        self, connection_id: str, booking_ids: Sequence[str]
    ) -> dict[str, str | None]:
        """``guest_external_id`` of the stored bookings among ``booking_ids`` (before a write
        that may change them)."""

    def delete_unreferenced_guests(
        self, connection_id: str, among: Sequence[str] | None = None
    ) -> int:
        """Delete the connection's guest rows that no booking row points at (only those whose
        id is in ``among``, when given); returns how many.

        Only for providers whose guests are derived from bookings: when a booking's guest key
        changes (a phone added after the name), the row under the old key is nobody's."""

    def counts(self, connection_id: str) -> dict[str, int]: ...
    def known_external_ids(
        self, connection_id: str, kind: Kind, external_ids: Sequence[str]
    ) -> set[str]:
        """The subset of ``external_ids`` stored as live rows of ``kind`` for the connection."""

    def fetch_rows(self, kind: Kind, connection_id: str | None = None) -> list[dict[str, Any]]: ...

    # cursors
    def get_cursor(self, connection_id: str, resource: str) -> str | None: ...
    def set_cursor(self, connection_id: str, resource: str, cursor: str | None) -> None: ...
    def cursors(self, connection_id: str) -> dict[str, str | None]: ...

    # checkpoints inside a resource walk
    def get_checkpoint(self, connection_id: str, resource: str) -> dict[str, Any] | None:
        """Where an unfinished walk of ``resource`` continues, or None."""

    def set_checkpoint(
        self, connection_id: str, resource: str, state: dict[str, Any] | None
    ) -> None:
        """Record (or with None, clear) where the walk continues; JSON-safe values only."""

    # sync log
    def start_run(self, run: SyncRun) -> None: ...
    def finish_run(self, run: SyncRun) -> None: ...
    def list_runs(
        self, connection_id: str | None = None, failed_only: bool = False, limit: int = 20
    ) -> list[SyncRun]: ...
    def mark_interrupted(self, connection_id: str, except_run: str) -> int: ...

    # property mappings
    def set_mapping(
        self, connection_id: str, external_property_id: str, property_id: str
    ) -> None: ...
    def list_mappings(self, connection_id: str | None = None) -> list[dict[str, Any]]: ...

    # locks
    def acquire_lock(self, connection_id: str, owner: str, ttl_seconds: float) -> bool: ...
    def release_lock(self, connection_id: str, owner: str) -> None: ...
    def lock_holder(self, connection_id: str) -> dict[str, Any] | None: ...

    # token cache (encrypted blobs only)
    def token_cache_get(self, key: str) -> tuple[bytes, float | None] | None: ...
    def token_cache_put(self, key: str, ciphertext: bytes, expires_at: float | None) -> None: ...
    def token_cache_delete(self, key: str) -> None: ...

    # webhook inbox (see pms_cli/webhooks)
    def inbox_add(self, event: WebhookEventRow) -> bool:
        """Insert unless (connection_id, dedupe_key) exists; True when the event is new."""

    def inbox_claim(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[WebhookEventRow]:
        """Lease up to ``limit`` due events (pending, retry due, or processing with an expired
        lease), oldest first: they become ``processing`` until ``lease_until``."""

    def inbox_mark(
        self,
        ids: Sequence[str],
        status: str,
        *,
        next_attempt_at: datetime | None = None,
        error: str | None = None,
        attempted: bool = True,
    ) -> None:
        """Set the outcome of claimed events (``attempted`` adds one to ``attempts``)."""

    def inbox_recover(self) -> int:
        """Make every ``processing`` event pending again (a receiver restarting after a crash)."""

    def inbox_list(
        self,
        connection_id: str | None = None,
        statuses: Sequence[str] | None = None,
        limit: int = 20,
    ) -> list[WebhookEventRow]:
        """Inbox rows, newest first."""

    def inbox_counts(self, connection_id: str | None = None) -> dict[str, int]:
        """Number of inbox rows per status."""

    def mark_deleted(
        self, connection_id: str, kind: Kind, external_ids: Sequence[str], now: datetime
    ) -> int:
        """Set ``deleted_at`` on these rows (a webhook refetch found them gone upstream)."""
