"""The provider extension surface: a provider *declares*, shared code *does*.

A provider module defines one ``Provider`` subclass: identity, credential fields, documented
rate limits, resources (path, paginator, extractor, incremental filter, mapper), a cheap
``check()`` call and how to authenticate. It never sleeps, retries, catches 429s or logs
headers — ``HttpClient`` does. Mappers are pure functions from raw JSON to canonical models.

To add a provider: create ``pms_cli/providers/<name>.py`` with a subclass, and a sandbox in
``pms_cli/sandbox/<name>.py``. The registry discovers the module by itself.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from pydantic import SecretStr

from pms_cli.errors import ConfigError, ProviderError
from pms_cli.http.client import Auth, HttpClient, parse_retry_after
from pms_cli.http.paginate import Extractor, Paginator, Raw
from pms_cli.http.ratelimit import HeaderReader, Window
from pms_cli.http.tokens import TokenCache
from pms_cli.models import AnyRecord, Kind


@dataclass(frozen=True)
class CredentialField:
    """One thing ``pms connect`` asks for. Secret fields go to the keyring, others to the row."""

    name: str
    label: str
    env: str | None = None
    secret: bool = True
    required: bool = True
    help: str = ""


@dataclass(frozen=True)
class Resource:
    """A list endpoint synced into one canonical kind.

    ``since`` turns the incremental cursor into query parameters (None = always full).
    ``mapper`` turns one raw record into canonical records (a booking may also yield its guest).
    """

    name: str
    kind: Kind
    path: str
    paginator: Paginator
    extract: Extractor
    mapper: Callable[[Raw], Sequence[AnyRecord]]
    params: Mapping[str, Any] = field(default_factory=dict)
    since: Callable[[datetime], Mapping[str, Any]] | None = None
    derived_kinds: tuple[Kind, ...] = ()
    required: tuple[str, ...] = ()
    """Raw keys every record has. When one is absent (or null) in *every* record of a page, the
    API has changed shape (a renamed field): the sync stops with a ``schema_drift`` error instead
    of silently writing NULLs. A key missing from some records only is tolerated."""

    expected: tuple[str, ...] = ()
    """Raw keys the documented shape always carries (possibly null) and the mapping reads.
    When one is absent as a key from every record a run reads (at least ``DRIFT_MIN_RECORDS``),
    the field was probably renamed: the records are written (``raw`` keeps everything) but the
    cursor is kept and the run ends ``partial`` with ``schema_drift``, so the rows are read and
    mapped again once pms is updated instead of silently keeping a NULL column."""
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Other spellings real payloads use for a ``required`` or ``expected`` key (Smoobu's list
    example spells ``modifiedAt`` as ``modified-at``). Any spelling present counts as the key,
    so a spelling variant is never taken for a renamed field. The mapper reads them too."""
    lists_deletions: bool = False
    """The provider also lists this resource's deleted records (Lodgify
    ``/v2/deletedProperties``): ``Provider.deleted`` is read after every walk, so deletions
    reach incremental syncs too, at the declared cost of one more request per run."""
    windowed: bool = False
    """The incremental read sees windows, not every edit (Guesty v3 has no updated-at filter:
    reservations created since the cursor plus stays not yet ended). Edits outside the windows
    arrive by webhook; as a safety net the engine re-reads the resource whole, and marks what
    vanished upstream deleted, when its last whole read is older than ``sync.refresh_hours``
    (kept as the cursor ``<name>:whole``)."""
    detail_per_record: bool = False
    """The list lacks fields, so a whole read adds one detail request per record (Smoobu
    apartments). Prices a whole re-read against fetching a few records one by one."""

    def spellings(self, key: str) -> tuple[str, ...]:
        """``key`` and its known variants, canonical spelling first."""
        return (key, *self.aliases.get(key, ()))

    def carries(self, record: Mapping[str, Any], key: str) -> bool:
        """``record`` has ``key`` in some spelling (its value may be null)."""
        return any(k in record for k in self.spellings(key))

    def value(self, record: Mapping[str, Any], key: str) -> Any:
        """The first non-null value of ``key`` in any of its spellings, else None."""
        return next((record[k] for k in self.spellings(key) if record.get(k) is not None), None)

    @property
    def incremental(self) -> bool:
        return self.since is not None


@dataclass(frozen=True)
class AccountInfo:
    """What ``check()`` learns: a non-secret account reference and a display name."""

    account_ref: str
    display_name: str


@dataclass
class ProviderContext:
    """Everything a provider instance needs at run time."""

    connection_id: str
    account_ref: str
    credentials: Mapping[str, SecretStr]
    public: Mapping[str, str]
    token_cache: TokenCache
    on_secret_rotated: Callable[[str, str], None] | None = None
    provider: str = ""

    @property
    def token_key(self) -> str:
        """Cache key for this account's access token; `pms disconnect` deletes it."""
        return f"{self.provider}:{self.account_ref}"


class Provider:
    """Base class of every provider adapter; subclasses fill the class variables."""

    name: ClassVar[str]
    title: ClassVar[str]
    default_base_url: ClassVar[str]
    auth_kind: ClassVar[str]
    credential_fields: ClassVar[tuple[CredentialField, ...]]
    rate_limits: ClassVar[tuple[Window, ...]]
    """Documented per-account limits."""
    ip_rate_limits: ClassVar[tuple[Window, ...]] = ()
    """Documented per-IP limits, shared by every connection of this provider in a process."""
    credit_headers: ClassVar[HeaderReader | None] = None
    """Reads (remaining credits, seconds until reset) from response headers (Beds24)."""
    retry_after: ClassVar[Callable[[Mapping[str, str], float], float | None]] = staticmethod(
        parse_retry_after
    )
    """Seconds to wait after a 429, from the response headers (default: ``Retry-After``)."""
    rate_limit_note: ClassVar[str] = ""
    """Limits that are not request windows (e.g. Beds24 credits), shown by `pms providers`."""
    setup_fields: ClassVar[tuple[str, ...]] = ()
    """Credential fields consumed by ``setup()`` (one-time codes): never read from env later."""
    keys_help: ClassVar[str]
    webhooks: ClassVar[str] = "not supported"
    auth_hint: ClassVar[str]
    resources: ClassVar[tuple[Resource, ...]]

    local_timestamps: ClassVar[bool] = False
    id_pattern: ClassVar[str] = r"[A-Za-z0-9_-]{1,64}"
    """The provider's record id format (a full-match regex): ids that arrive in webhooks are
    checked against it before any request is built from them (``webhooks.base.valid_id``)."""
    """Timestamps without offset are wall time of the property's zone (Smoobu): before mapping,
    the engine fills ``property_timezones`` with the zones it has stored."""
    needs_stored_properties: ClassVar[bool] = False
    """Booking mapping needs more of what earlier runs stored about properties than their zone
    (Smoobu: bookings carry no currency, their apartment does): before mapping, the engine
    hands the stored property rows to ``remember_properties``."""

    def __init__(self, ctx: ProviderContext, http: HttpClient) -> None:
        self.ctx = ctx
        self.http = http
        self.property_timezones: dict[str, str] = {}
        """Property external id → IANA zone, for providers with ``local_timestamps``."""

    def remember_properties(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Keep what mapping needs from stored property rows (default: their time zones)."""
        self.property_timezones.update(
            {str(r["external_id"]): str(r["timezone"]) for r in rows if r.get("timezone")}
        )

    def mapper_for(self, resource: Resource) -> Callable[[Raw], Sequence[AnyRecord]]:
        """The mapper for ``resource``; override when mapping needs what the adapter knows
        (Smoobu reads a booking's timestamps in its apartment's zone)."""
        return resource.mapper

    # --- declared behaviour -------------------------------------------------------------

    @classmethod
    def account_ref_from(cls, public: Mapping[str, str]) -> str:
        """The non-secret account reference known before ``check()`` (e.g. an account id)."""
        return next(iter(public.values()), "")

    @classmethod
    def credential_problem(cls, present: Collection[str]) -> ConfigError | None:
        """Why credentials with only the ``present`` fields cannot work, known before any
        request (Smoobu refuses a key without its HMAC secret since 2026-09-25); None when they
        may. ``pms connect``, ``pms status`` and every sync consult it, so the user reads one
        clear ``Error:``/``Hint:`` instead of a provider 401."""
        return None

    @classmethod
    def build_auth(cls, ctx: ProviderContext) -> Auth:
        """How requests are authenticated for this connection."""
        raise NotImplementedError

    async def setup(self) -> dict[str, SecretStr]:
        """Called once by ``pms connect`` before ``check()``: turn what the user typed into the
        secrets to keep (Beds24 exchanges a one-time invite code for a refresh token here)."""
        return dict(self.ctx.credentials)

    async def check(self) -> AccountInfo:
        """One cheap authenticated call proving the credentials work."""
        raise NotImplementedError

    async def pages(self, resource: Resource, since: datetime | None) -> AsyncIterator[list[Raw]]:
        """Raw records of ``resource`` page by page; override for multi-step endpoints."""
        params = dict(resource.params)
        if since is not None and resource.since is not None:
            params.update(resource.since(since))
        async for page in resource.paginator.pages(
            self.http, resource.path, params, resource.extract
        ):
            yield page

    async def deleted(self, resource: Resource, since: datetime | None) -> AsyncIterator[list[str]]:
        """External ids of ``resource`` records the provider lists as deleted since ``since``
        (None: ever), a page at a time, for resources declaring ``lists_deletions`` (Lodgify
        ``/v2/deletedProperties``). Read after each successful walk; the engine sets their
        ``deleted_at``, so removals are seen by incremental syncs, not only by ``--full``."""
        for _ in ():  # none by default
            yield []

    async def fetch_one(self, resource: Resource, external_id: str) -> Raw | None:
        """One raw record of ``resource`` by id, shaped like the list's items (webhook refetch).

        None when the provider says the record no longer exists. The receiver treats the
        answer as the truth, whatever the webhook payload said.
        """
        raise NotImplementedError(f"{self.name} cannot fetch one {resource.kind}")

    # --- derived helpers ----------------------------------------------------------------

    @classmethod
    def resource(cls, name: str) -> Resource:
        for r in cls.resources:
            if r.name == name:
                return r
        raise KeyError(name)

    @classmethod
    def secret_fields(cls) -> tuple[CredentialField, ...]:
        return tuple(f for f in cls.credential_fields if f.secret)

    @classmethod
    def public_fields(cls) -> tuple[CredentialField, ...]:
        return tuple(f for f in cls.credential_fields if not f.secret)

    @classmethod
    def base_url_env(cls) -> str:
        return f"PMS_{cls.name.upper()}_BASE_URL"

    @classmethod
    def resolve_base_url(cls, connection_override: str | None, config_value: str | None) -> str:
        """Connection setting → ``PMS_<PROVIDER>_BASE_URL`` → config file → documented URL."""
        return (
            connection_override
            or os.environ.get(cls.base_url_env())
            or config_value
            or cls.default_base_url
        )


async def get_or_none(
    http: HttpClient, path: str, params: Mapping[str, Any] | None = None
) -> Any | None:
    """GET JSON, or None when the provider answers 404 (the record is gone)."""
    try:
        return await http.get_json(path, params)
    except ProviderError as exc:
        if exc.code == "not_found":
            return None
        raise
