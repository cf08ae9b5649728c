"""Guesty Open API (fact sheet: shared/providers/guesty.md), on the API it has from 2027-03-01.

Guesty issues at most 5 access tokens per client per rolling 24 h, so the token lives in the
shared token cache (keyed by client id) and is reused by every run and process until it expires;
a run mints only when the cache has no valid token, and a 401 renews once (``HttpClient``).

Reservations come from ``GET /reservations-v3/search`` (the legacy ``/reservations`` retires on
2027-03-01 and is never called). Its rows are lean: each page is joined, in one request each,
with its guests (``guests-crud`` filtered by the page's guest ids) and its money
(``guest-folio/overview``, up to 200 reservation ids per request). A page of 100 reservations
therefore costs 3 requests, never one per reservation.

Incremental reservations without an updated-at filter (v3 has none) — the design:

1. **New reservations**: ``filter[createdAt][gte]`` = cursor − ``sync.lag_minutes``.
2. **Stays not yet ended**: ``filter[checkOut][gte]`` = the cursor's date − ``STAY_LAG_DAYS``,
   i.e. every stay that had not ended when the last sync ran, whenever it was booked. A future
   stay cancelled, moved or repriced upstream is in this window, so it reaches the store on the
   next incremental sync without a whole re-read. Rows already read by window 1 in the same run
   are skipped (deduped by id).
3. **Webhooks** (``reservation.created.v2`` / ``reservation.updated.v2``) refetch a reservation
   by id within seconds, including edits to stays that have already ended, which no window sees.
4. **A periodic whole re-read**: the resource is ``windowed``, so the engine reads it whole once
   its last whole read is older than ``sync.refresh_hours`` (and on ``--full``). That catches what
   all of the above missed (an edit to an ended stay while the receiver was down) and marks
   reservations that vanished upstream as deleted.

Cost per incremental run: ceil(new / 100) + ceil(not-ended / 100) pages, 3 requests each.
Listings and guests are whole reads re-done every ``sync.refresh_hours`` (no filter exists).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pms_cli.errors import AuthError, ProviderError
from pms_cli.http.auth import TokenAuth, TokenFetcher
from pms_cli.http.client import Auth, HttpClient, api_path, parse_retry_after
from pms_cli.http.paginate import OffsetPaginator, PageBody, Raw, records_at
from pms_cli.http.ratelimit import Window
from pms_cli.http.tokens import CachedToken
from pms_cli.models import (
    AnyRecord,
    Booking,
    BookingStatus,
    Guest,
    Property,
    country_code,
    currency_code,
    integer,
    iso_date,
    money,
    number,
    text,
    utc_datetime,
)
from pms_cli.providers.base import (
    AccountInfo,
    CredentialField,
    Provider,
    ProviderContext,
    Resource,
    get_or_none,
)

# --- facts block -------------------------------------------------------------------------------
# Confirmed (Guesty's own pages, or the fact sheet's "Changes checked 2026-12-06" block):
# - v3 search `GET /reservations-v3/search`, bracket filters, skip/limit <= 100, sorts `_id`,
#   `checkIn`, `checkOut`, `createdAt`; no updated-at filter (fact sheet: reference
#   reservationsopenapicontroller_searchreservations; changelog 2026-05-12, 2026-11-05).
# - Legacy `/reservations` and `/reservations/{id}` retire 2027-03-01; guest, money and payment
#   data are "by reference" in v3 (docs/reservation-migration).
# - `GET /guest-folio/overview?reservationIds=a,b&fields=...`: bulk money for up to 200
#   reservations, `fields` required, unknown field -> 400, `notFound` lists missing ids
#   (changelog 2026-07-01, reference guestfoliocontroller_getfoliooverview).
# - Guest list: `columns` required; list names `guestEmail`, `guestPhone`, ... (docs
#   fields-for-guest-reports); email/phone come from the list, not the single-guest call.
# - `GET /listings`: omit `active`/`listed`/`pmsActive` for all listings (their schema default
#   is true: never send them).
# Unverified (public client code or inference) -- every plausible shape is accepted:
# - Search rows keyed `reservationId` (by-ids rows `_id`), with a `stay[]` array of segments
#   carrying listingId/unitId and the dates; `pagination.hasMore` (client code; sheet).
# - By-ids refetch `GET /reservations-v3?reservationIds[]=...` answering a bare array
#   (client code) -- `{results: [...]}` is accepted too.
# - Folio field names (only hostPayout/totalTaxes/currency appear in the docs' example); a 400
#   or 404 turns money off for the run instead of failing it.
# - The guest list's `filters` syntax for "these ids": the reference only says "object of
#   filters"; the legacy JSON rule array is sent. Guests are joined by id, so an ignored filter
#   leaves a booking's guest fields empty, never wrong.
# - Language and country: the documented list columns have neither; the legacy names
#   (GUEST_EXTRA_COLUMNS) are asked for too, and dropped for the run if the list answers 400.
# - Booking.com reservations reportedly missing from v3 search (one integration): webhooks
#   and the whole re-read are the safety net.
GUESTS_PAGE_SIZE = 100  # guests-crud documents only "default 25"; 100 is the max of the others
OWNER_SOURCES = frozenset({"owner"})  # owner holds: reservation `source` (lower-cased), inferred
# The status enum is not typed in the OpenAPI file; `reserved` holds dates without confirming.
STATUS = {
    **dict.fromkeys(("confirmed", "checked_in", "checked_out"), BookingStatus.CONFIRMED),
    "reserved": BookingStatus.PENDING,
    "inquiry": BookingStatus.INQUIRY,
    **dict.fromkeys(("canceled", "declined", "expired", "closed"), BookingStatus.CANCELLED),
}
# The token quota's 429 is reported (not documented); its Retry-After, if any, can be hours.
# Longer than the longest rate window means "quota": back off briefly and fail, never sleep a day.
MAX_RETRY_AFTER = 3600.0
FOLIO_FIELDS = "currency,subTotalPrice,totalTaxes,totalPaid,balanceDue,hostPayout"
# ------------------------------------------------------------------------------------------------

PAGE_SIZE = 100  # documented max `limit` of /listings and /reservations-v3/search
FOLIO_BATCH = 200  # documented max reservation ids per guest-folio/overview request
# 15 requests/s is the binding limit; one request takes a few hundred ms over the internet, so
# a sequential walk would reach ~4/s. Offsets are known once page one reports the total.
PARALLEL_PAGES = 4
# checkOut filters take the listing's local date; a day of slack covers every zone's offset.
STAY_LAG_DAYS = 1
SEARCH_PATH = "reservations-v3/search"
BY_IDS_PATH = "reservations-v3"
GUESTS_PATH = "guests-crud"
GUEST_FILTER_PARAM = "filters"
FOLIO_PATH = "guest-folio/overview"
GUEST_COLUMNS = (
    "id firstName lastName fullName guestEmail guestOtherEmails guestPhone guestOtherPhones "
    "guestHometown dateCreated"
)
GUEST_EXTRA_COLUMNS = "preferredLanguage nationality address"  # unverified, see facts block
# `_id` order only moves on inserts (which land at the end), so skip paging stays stable while
# other reservations change mid-walk.
SEARCH_SORT = "_id"


def iso_ms(moment: datetime) -> str:
    """Guesty's timestamp style: ``2024-05-01T00:00:00.000Z``."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def created_since(since: datetime) -> dict[str, str]:
    """Window 1 of the incremental design: reservations created since the cursor."""
    return {"filter[createdAt][gte]": iso_ms(since)}


def stays_not_ended(since: datetime) -> dict[str, str]:
    """Window 2: stays that had not ended when the cursor was set (local dates)."""
    day = since.astimezone(UTC).date() - timedelta(days=STAY_LAG_DAYS)
    return {"filter[checkOut][gte]": day.isoformat()}


def search_page(body: Any) -> PageBody:
    """``{results, pagination: {hasMore}}`` (v3); a ``count``/``total`` is used when present."""
    page = records_at("results")(body)
    pagination = body.get("pagination") if isinstance(body, dict) else None
    pagination = pagination if isinstance(pagination, dict) else {}
    more = pagination.get("hasMore")
    total = pagination.get("total", body.get("count") if isinstance(body, dict) else None)
    return PageBody(
        [normalise_reservation(r) for r in page.records],
        total if isinstance(total, int) and not isinstance(total, bool) else None,
        more if isinstance(more, bool) else None,
    )


def reservation_id(raw: Mapping[str, Any]) -> str | None:
    """``_id`` (legacy, by-ids rows), ``reservationId`` (v3 search rows) or ``id``."""
    for key in ("_id", "reservationId", "id"):
        value = raw.get(key)
        if value is not None and value != "" and not isinstance(value, dict | list):
            return str(value)
    return None


def normalise_reservation(raw: Raw) -> Raw:
    """Give every row an ``_id`` (v3 search rows carry ``reservationId``); nothing is dropped."""
    rid = reservation_id(raw)
    return {"_id": rid, **raw} if rid and raw.get("_id") != rid else raw


def _records(body: Any) -> list[Raw]:
    """A bare array or one wrapped in ``results`` / ``data``."""
    if isinstance(body, dict):
        body = body.get("results", body.get("data"))
    return [r for r in body if isinstance(r, dict)] if isinstance(body, list) else []


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _first(value: object) -> str | None:
    return text(value[0]) if isinstance(value, list) and value else None


def _clock_time(value: object) -> str | None:
    """``HH:mm`` only; anything else is dropped rather than stored malformed."""
    s = text(value)
    if s and len(s) == 5 and s[2] == ":" and s[:2].isdigit() and s[3:].isdigit():
        return s if int(s[:2]) < 24 and int(s[3:]) < 60 else None
    return None


def _full_name(raw: Mapping[str, Any]) -> str | None:
    first, last = text(raw.get("firstName")), text(raw.get("lastName"))
    return text(raw.get("fullName")) or " ".join(p for p in (first, last) if p) or None


def to_property(raw: Raw) -> Sequence[AnyRecord]:
    address = _dict(raw.get("address"))
    return [
        Property(
            external_id=raw["_id"],
            raw=raw,
            name=text(raw.get("title")) or text(raw.get("nickname")),
            address=text(address.get("full")) or text(address.get("street")),
            city=text(address.get("city")),
            # address.country is a name ("Portugal"); only an ISO-2 value is kept.
            country=country_code(address.get("countryCode") or address.get("country")),
            latitude=number(address.get("lat")),
            longitude=number(address.get("lng")),
            timezone=text(raw.get("timezone")),
            max_guests=integer(raw.get("accommodates")),
            bedrooms=integer(raw.get("bedrooms")),
            bathrooms=number(raw.get("bathrooms")),
            check_in_time=_clock_time(raw.get("defaultCheckInTime")),
            check_out_time=_clock_time(raw.get("defaultCheckOutTime")),
            currency=currency_code(_dict(raw.get("prices")).get("currency")),
            active=raw.get("active") is not False,
            updated_at=utc_datetime(raw.get("lastUpdatedAt")),
        )
    ]


def booking_status(raw: Mapping[str, Any]) -> BookingStatus:
    status = STATUS.get(str(raw.get("status")).lower(), BookingStatus.INQUIRY)
    source = str(raw.get("source") or "").lower()
    # An owner hold blocks dates unless it was cancelled; unknown statuses never block.
    if source in OWNER_SOURCES and status is not BookingStatus.CANCELLED:
        return BookingStatus.BLOCKED
    return status


def _total(m: Mapping[str, Any]) -> Any:
    paid, due = money(m.get("totalPaid")), money(m.get("balanceDue"))
    if paid is not None and due is not None:
        return paid + due  # what the guest pays in all, whatever has been paid so far
    sub, taxes = money(m.get("subTotalPrice")), money(m.get("totalTaxes"))
    return sub + taxes if sub is not None and taxes is not None else sub


def _segments(raw: Mapping[str, Any]) -> list[dict[str, Any]]:
    stay = raw.get("stay")
    if isinstance(stay, dict):
        stay = [stay]
    return [s for s in stay if isinstance(s, dict)] if isinstance(stay, list) else []


def _stay_value(raw: Mapping[str, Any], key: str, *, last: bool = False) -> Any:
    """``key`` at the top level (legacy rows) or on the first/last ``stay[]`` segment (v3)."""
    if raw.get(key) is not None:
        return raw[key]
    segments = _segments(raw)
    return (segments[-1] if last else segments[0]).get(key) if segments else None


def _listing_id(raw: Mapping[str, Any]) -> str | None:
    for key in ("listingId", "unitId"):
        value = text(_stay_value(raw, key))
        if value:
            return value
    return text(_dict(raw.get("listing")).get("_id"))


def _email(guest: Mapping[str, Any]) -> str | None:
    return (
        text(guest.get("guestEmail"))
        or text(guest.get("email"))
        or _first(guest.get("guestOtherEmails"))
        or _first(guest.get("emails"))
    )


def _phone(guest: Mapping[str, Any]) -> str | None:
    return (
        text(guest.get("guestPhone"))
        or text(guest.get("phone"))
        or _first(guest.get("guestOtherPhones"))
        or _first(guest.get("phones"))
    )


def to_booking(raw: Raw) -> Sequence[AnyRecord]:
    """Legacy rows and v3 rows (``reservationId``, ``stay[]``); ``guest`` and ``money`` are
    the joined guest-list row and folio overview (v3) or the embedded objects (legacy)."""
    guest, m = _dict(raw.get("guest")), _dict(raw.get("money"))
    party = _dict(_stay_value(raw, "numberOfGuests"))
    guests_count = integer(_stay_value(raw, "guestsCount"))
    # Localized dates are the stay dates in the listing's zone; UTC checkIn can shift the day.
    check_in = iso_date(_stay_value(raw, "checkInDateLocalized")) or iso_date(
        _stay_value(raw, "checkIn")
    )
    check_out = iso_date(_stay_value(raw, "checkOutDateLocalized", last=True)) or iso_date(
        _stay_value(raw, "checkOut", last=True)
    )
    external_id = reservation_id(raw)
    if external_id is None:
        raise KeyError("_id")
    return [
        Booking(
            external_id=external_id,
            raw=raw,
            property_external_id=_listing_id(raw),
            guest_external_id=text(raw.get("guestId")) or text(guest.get("_id") or guest.get("id")),
            status=booking_status(raw),
            check_in=check_in,
            check_out=check_out,
            adults=integer(party.get("numberOfAdults")) or guests_count,
            children=integer(party.get("numberOfChildren")),
            channel=text(raw.get("source")) or text(_dict(raw.get("integration")).get("platform")),
            confirmation_code=text(raw.get("confirmationCode")),
            total_price=_total(m),
            currency=currency_code(m.get("currency")),
            guest_name=_full_name(guest),
            guest_email=_email(guest),
            guest_phone=_phone(guest),
            created_at=utc_datetime(raw.get("createdAt")),
            updated_at=utc_datetime(raw.get("lastUpdatedAt") or raw.get("updatedAt")),
        )
    ]


def to_guest(raw: Raw) -> Sequence[AnyRecord]:
    """Guest-list rows (``id``, ``guestEmail``, ...) and single-guest / legacy shapes."""
    address = _dict(raw.get("address"))
    external_id = reservation_id(raw)  # list rows name it `id`, single guests `_id`
    if external_id is None:
        raise KeyError("_id")
    return [
        Guest(
            external_id=external_id,
            raw=raw,
            name=_full_name(raw),
            first_name=text(raw.get("firstName")),
            last_name=text(raw.get("lastName")),
            email=_email(raw),
            phone=_phone(raw),
            language=text(raw.get("preferredLanguage")),
            country=country_code(address.get("countryCode") or raw.get("nationality")),
        )
    ]


def token_url(base_url: str) -> str:
    """The token endpoint sits beside ``/v1``, not under it (works for sandbox mounts too)."""
    parts = urlsplit(base_url.rstrip("/"))
    path = parts.path[:-3] if parts.path.endswith("/v1") else parts.path
    return urlunsplit((parts.scheme, parts.netloc, f"{path}/oauth2/token", "", ""))


def guesty_retry_after(headers: Mapping[str, str], now: float) -> float | None:
    seconds = parse_retry_after(headers, now)
    return None if seconds is not None and seconds > MAX_RETRY_AFTER else seconds


def _token_fetcher(client_id: str, secret: str) -> TokenFetcher:
    async def fetch(http: HttpClient) -> CachedToken:
        form = {"grant_type": "client_credentials", "scope": "open-api"}
        form |= {"client_id": client_id, "client_secret": secret}
        try:
            body = await http.request_json(
                "POST", token_url(http.base_url), data=form, authenticate=False
            )
        except ProviderError as exc:
            if exc.status not in (401, 403):
                raise
            raise AuthError(
                f"Guesty refused to issue a token (HTTP {exc.status})",
                hint=Guesty.auth_hint,
                provider="guesty",
                status=exc.status,
                body_excerpt=exc.body_excerpt,
            ) from None
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise AuthError(
                "Guesty's token endpoint answered without an access token",
                hint=Guesty.auth_hint,
                provider="guesty",
            )
        expires_in = number(body.get("expires_in")) if isinstance(body, dict) else None
        return CachedToken(token, http.clock.time() + (expires_in or 86400.0))

    return fetch


class Guesty(Provider):
    name = "guesty"
    title = "Guesty"
    id_pattern = r"[0-9a-fA-F]{24}"  # ids in API paths (checked for webhook ids)
    default_base_url = "https://open-api.guesty.com/v1"
    auth_kind = "OAuth2 client credentials (5 tokens / 24 h: token cached and shared)"
    credential_fields = (
        CredentialField("client_id", "Client ID", "GUESTY_CLIENT_ID", secret=False),
        CredentialField("client_secret", "Client secret", "GUESTY_CLIENT_SECRET"),
    )
    rate_limits = (Window(15, 1.0), Window(120, 60.0), Window(5000, 3600.0))
    retry_after = staticmethod(guesty_retry_after)  # type: ignore[assignment]
    webhooks = "webhooks API, Svix-signed (id + timestamp + body, 5 min tolerance)"
    keys_help = (
        "Guesty dashboard → Integrations → OAuth applications → new application "
        "(the client secret is shown once)"
    )
    auth_hint = (
        "Check the client ID and secret of your Guesty OAuth application (Integrations → OAuth "
        "applications), then run `pms connect guesty` again (or fix GUESTY_CLIENT_ID / "
        "GUESTY_CLIENT_SECRET). Guesty issues only 5 tokens per 24 h per application."
    )
    resources = (
        Resource(
            name="properties",
            kind="property",
            # Never `active`, `listed` or `pmsActive`: omitted they mean "all listings" (their
            # schema default of true would silently drop inactive and unlisted ones).
            path="listings",
            paginator=OffsetPaginator(
                limit=PAGE_SIZE, offset_param="skip", parallel=PARALLEL_PAGES
            ),
            extract=records_at("results", "count"),
            mapper=to_property,
            required=("_id", "title"),
            expected=("timezone", "accommodates", "address"),
        ),
        Resource(
            name="bookings",
            kind="booking",
            path=SEARCH_PATH,
            # v3 reports `hasMore`, not a total: pages are walked one after another.
            paginator=OffsetPaginator(limit=PAGE_SIZE, offset_param="skip"),
            extract=search_page,
            mapper=to_booking,
            # v3 rows put listing and dates in `stay[]` (shape unconfirmed): only what every
            # plausible shape carries is required.
            required=("_id", "status"),
            # v3 filters and sorts on these and joins guests by `guestId`: every row has them.
            expected=("confirmationCode", "guestId", "createdAt"),
            params={"sort": SEARCH_SORT},
            # Marks the resource incremental; `pages()` turns the cursor into both windows.
            since=created_since,
            windowed=True,
        ),
        Resource(
            name="guests",
            kind="guest",
            path=GUESTS_PATH,
            paginator=OffsetPaginator(
                limit=GUESTS_PAGE_SIZE, offset_param="skip", parallel=PARALLEL_PAGES
            ),
            # guests-crud answers {results, total}, not {results, count}.
            extract=records_at("results", "total"),
            mapper=to_guest,
            params={"columns": GUEST_COLUMNS},
            required=("_id",),
            expected=("firstName", "lastName"),
        ),
    )

    def __init__(self, ctx: ProviderContext, http: HttpClient) -> None:
        super().__init__(ctx, http)
        # Set when the folio endpoint refuses our request (400/403/404): money stays empty for
        # the rest of this adapter's life instead of failing every page.
        self.money_unavailable = False
        # Set when the guests list answers a by-id lookup with guests nobody asked for: its
        # filter syntax is not the one assumed, and asking again per page would only cost.
        self.guest_filter_ignored = False
        self.guest_columns = f"{GUEST_COLUMNS} {GUEST_EXTRA_COLUMNS}"

    @classmethod
    def build_auth(cls, ctx: ProviderContext) -> Auth:
        client_id = ctx.public.get("client_id", "")
        return TokenAuth(
            fetch=_token_fetcher(client_id, ctx.credentials["client_secret"].get_secret_value()),
            cache=ctx.token_cache,
            cache_key=f"guesty:{client_id}",
        )

    async def check(self) -> AccountInfo:
        page = records_at("results", "count")(
            await self.http.get_json("listings", {"limit": 1, "fields": "_id accountId"})
        )
        client_id = self.ctx.public.get("client_id", "")
        account = next((text(r.get("accountId")) for r in page.records), None) or client_id
        return AccountInfo(account_ref=client_id, display_name=f"Guesty account {account}")

    async def pages(self, resource: Resource, since: datetime | None) -> AsyncIterator[list[Raw]]:
        if resource.kind == "guest":
            async for page in self.guest_pages(resource):
                yield page
            return
        if resource.kind != "booking":
            async for page in super().pages(resource, since):
                yield page
            return
        windows = [{}] if since is None else [created_since(since), stays_not_ended(since)]
        seen: set[str] = set()
        for window in windows:
            params = {**resource.params, **window}
            async for page in resource.paginator.pages(
                self.http, resource.path, params, resource.extract
            ):
                # Window 2 repeats what window 1 read (a new booking for next week): once only.
                fresh = [r for r in page if (reservation_id(r) or "") not in seen]
                seen.update(reservation_id(r) or "" for r in fresh)
                if fresh:
                    yield await self.enrich(fresh)

    async def enrich(self, rows: list[Raw]) -> list[Raw]:
        """Join a page of lean v3 rows with its guests and money: one request each."""
        guests = await self.guests_by_id({text(r.get("guestId")) or "" for r in rows} - {""})
        folios = await self.money_by_id([reservation_id(r) or "" for r in rows])
        out = []
        for row in rows:
            extra: dict[str, Any] = {}
            guest = guests.get(text(row.get("guestId")) or "")
            if guest is not None and not isinstance(row.get("guest"), dict):
                extra["guest"] = guest
            folio = folios.get(reservation_id(row) or "")
            if folio is not None and not isinstance(row.get("money"), dict):
                extra["money"] = folio
            out.append({**row, **extra} if extra else row)
        return out

    async def guest_pages(self, resource: Resource) -> AsyncIterator[list[Raw]]:
        """The guests list with ``self.guest_columns``; a 400 before the first page means the
        undocumented extra columns are refused: the walk restarts without them."""
        started = False
        try:
            params = {**resource.params, "columns": self.guest_columns}
            async for page in resource.paginator.pages(
                self.http, resource.path, params, resource.extract
            ):
                started = True
                yield page
            return
        except ProviderError as exc:
            if started or not self._drop_extra_columns(exc):
                raise
        params = {**resource.params, "columns": self.guest_columns}
        async for page in resource.paginator.pages(
            self.http, resource.path, params, resource.extract
        ):
            yield page

    def _drop_extra_columns(self, exc: ProviderError) -> bool:
        if exc.status != 400 or self.guest_columns == GUEST_COLUMNS:
            return False
        self.guest_columns = GUEST_COLUMNS
        return True

    async def guests_by_id(self, ids: Iterable[str]) -> dict[str, Raw]:
        wanted = sorted(ids)
        found: dict[str, Raw] = {}
        for start in range(0, len(wanted), GUESTS_PAGE_SIZE):
            if self.guest_filter_ignored:
                break
            chunk = wanted[start : start + GUESTS_PAGE_SIZE]
            rule = {"field": "_id", "operator": "$in", "value": chunk}
            query = {GUEST_FILTER_PARAM: _json([rule]), "limit": GUESTS_PAGE_SIZE, "skip": 0}
            try:
                body = await self.http.get_json(
                    GUESTS_PATH, {**query, "columns": self.guest_columns}
                )
            except ProviderError as exc:
                if not self._drop_extra_columns(exc):
                    raise
                body = await self.http.get_json(
                    GUESTS_PATH, {**query, "columns": self.guest_columns}
                )
            for guest in _records(body):
                gid = reservation_id(guest)
                if gid in chunk:  # joined by id: an ignored filter never mislabels a booking
                    found[gid] = guest
                else:
                    self.guest_filter_ignored = True
        return found

    async def money_by_id(self, ids: Sequence[str]) -> dict[str, Raw]:
        wanted = [i for i in dict.fromkeys(ids) if i]
        found: dict[str, Raw] = {}
        for start in range(0, len(wanted), FOLIO_BATCH):
            if self.money_unavailable:
                break
            chunk = wanted[start : start + FOLIO_BATCH]
            try:
                body = await self.http.get_json(
                    FOLIO_PATH, {"reservationIds": ",".join(chunk), "fields": FOLIO_FIELDS}
                )
            except ProviderError as exc:
                if exc.status not in (400, 403, 404):
                    raise
                self.money_unavailable = True
                break
            for folio in _records(body):
                rid = reservation_id(folio)
                if rid in chunk:
                    found[rid] = folio
        return found

    async def fetch_one(self, resource: Resource, external_id: str) -> Raw | None:
        """A reservation through ``GET reservations-v3`` by id (joined like a list page); a guest
        from the guests list (``guests-crud/{id}`` if the list does not name it); a listing
        from ``listings/{id}``."""
        if resource.kind == "guest":
            # The single-guest call has no email or phone (the list has): ask the list first.
            found = await self.guests_by_id([external_id])
            if external_id in found:
                return found[external_id]
        if resource.kind != "booking":
            body = await get_or_none(self.http, api_path(resource.path, external_id))
            return body if isinstance(body, dict) and body else None
        body = await get_or_none(self.http, BY_IDS_PATH, {"reservationIds[]": [external_id]})
        rows = [normalise_reservation(r) for r in _records(body)]
        match = [r for r in rows if reservation_id(r) == external_id]
        if not match:
            if rows:
                # Other reservations than the one asked for: the id parameter was not
                # understood. "Gone" would delete a live booking, so fail loudly instead.
                raise ProviderError(
                    "Guesty answered a reservation lookup by id with other reservations",
                    hint="The reservations-v3 id parameter may have changed; report it.",
                    code="provider_garbage",
                    provider="guesty",
                )
            return None
        return (await self.enrich(match))[0]


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


PROVIDER = Guesty
