"""Hostaway Public API v1 (fact sheet: shared/providers/hostaway.md)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from pms_cli.errors import AuthError, ProviderError
from pms_cli.http.auth import TokenAuth
from pms_cli.http.client import Auth, HttpClient, api_path
from pms_cli.http.paginate import CursorPaginator, OffsetPaginator, Page, PageBody, Raw
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
    guest_key,
    hour_to_time,
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

# --- unverified facts (fact sheet marks them so); correct them here and only here ----------------
PAGE_SIZE = 500  # max `limit` undocumented for listings/reservations; clients use 500 successfully
# Whole reads go oldest-modified first (`sortOrder=updatedOn`, ascending, with afterId), so a
# guest shared by several reservations ends with the details of the latest one written. The
# incremental walk uses the documented default, `updatedOn DESC, id DESC`.
RESERVATION_ORDER = {"sortOrder": "updatedOn"}
AUTH_FAILURE_STATUSES = frozenset(
    {401, 403}
)  # 403 documented for invalid token; 401 seen in clients
# latestActivityStart is documented as a date (YYYY-MM-DD); in which zone the day is read is
# undocumented, so the filter starts a day early and records are filtered here exactly.
FILTER_DATE = "%Y-%m-%d"
FILTER_OVERLAP = timedelta(days=1)
TOKEN_ACTIVATION_DELAY = 1.0  # documented: a new token is valid one second after issue
# Reservation `updatedOn` moves on every edit, `latestActivityOn` (what latestActivityStart
# filters) does not: 48 % of a real 707-reservation account had updatedOn > latestActivityOn.
# There is no updatedOn filter, so incremental syncs walk the default updatedOn DESC order.
# `guestExternalAccountId` is the channel's own guest id (Airbnb's user id), scoped here by
# `channelId`; that it stays the same across one guest's reservations is observed (repeat
# guests in the real account), not documented. Relay e-mails (…@guest.airbnb.com) still count
# as e-mails: whether a relay address is per guest or per reservation is unverified.
# -------------------------------------------------------------------------------------------------

STATUS = {
    "new": BookingStatus.CONFIRMED,
    "modified": BookingStatus.CONFIRMED,
    "ownerStay": BookingStatus.BLOCKED,
    "pending": BookingStatus.PENDING,
    "unconfirmed": BookingStatus.PENDING,
    "awaitingPayment": BookingStatus.PENDING,
    "awaitingGuestVerification": BookingStatus.PENDING,
    "cancelled": BookingStatus.CANCELLED,
    "declined": BookingStatus.CANCELLED,
    "expired": BookingStatus.CANCELLED,
}


def extract(body: Any) -> PageBody:
    """Hostaway's ``{status, result, count}`` envelope; ``status: fail`` can come with HTTP 200."""
    if not isinstance(body, dict) or body.get("status") != "success":
        message = body.get("result") or body.get("message") if isinstance(body, dict) else body
        raise ProviderError(
            f"Hostaway answered a failure: {str(message)[:200]}",
            hint="Rerun later; if it persists, the request parameters may be rejected.",
            code="provider_garbage",
            provider="hostaway",
        )
    result = body.get("result")
    if not isinstance(result, list):
        raise ProviderError(
            "Hostaway list response without a result list",
            hint="The API changed shape; report it.",
            code="provider_garbage",
            provider="hostaway",
        )
    count = body.get("count")
    return PageBody(
        [r for r in result if isinstance(r, dict)], count if isinstance(count, int) else None
    )


def since_params(since: datetime) -> dict[str, str]:
    """``latestActivityStart`` (a date) a day before ``since``: the day-granular filter reads
    at least everything from ``since`` whichever zone it reads the date in."""
    return {"latestActivityStart": (since.astimezone(UTC) - FILTER_OVERLAP).strftime(FILTER_DATE)}


def walk_to_watermark(since: datetime) -> dict[str, str]:
    """No query parameter: reservations have no updatedOn filter, and ``latestActivityStart``
    misses edits. ``Hostaway.pages`` walks the default ``updatedOn DESC`` order instead and
    stops below ``since``: about ⌈changed / page⌉ + 1 requests."""
    return {}


def _older_than(raw: Raw, key: str, floor: datetime) -> bool:
    """``raw[key]`` is a time before ``floor``; an absent or unreadable time is never older
    (the record is kept and the walk goes on)."""
    moment = utc_datetime(raw.get(key))
    return moment is not None and moment < floor


def to_property(raw: Raw) -> Sequence[AnyRecord]:
    return [
        Property(
            external_id=raw["id"],
            raw=raw,
            name=text(raw.get("name")) or text(raw.get("internalListingName")),
            address=text(raw.get("address")) or text(raw.get("street")),
            city=text(raw.get("city")),
            country=country_code(raw.get("countryCode")),
            latitude=number(raw.get("lat")),
            longitude=number(raw.get("lng")),
            timezone=text(raw.get("timeZoneName")),
            max_guests=integer(raw.get("personCapacity")),
            bedrooms=integer(raw.get("bedroomsNumber")),
            bathrooms=number(raw.get("bathroomsNumber")),
            check_in_time=hour_to_time(raw.get("checkInTimeStart")),
            check_out_time=hour_to_time(raw.get("checkOutTime")),
            currency=currency_code(raw.get("currencyCode")),
            active=raw.get("specialStatus") != "archived",
            updated_at=utc_datetime(raw.get("latestActivityOn")),
        )
    ]


def booking_status(raw_status: object) -> BookingStatus:
    # inquiry*, unknown and any status added later count as inquiries: they never block dates.
    return STATUS.get(str(raw_status), BookingStatus.INQUIRY)


def channel_account(raw: Raw) -> str | None:
    """``channelId:guestExternalAccountId``: the channel's own id of the guest (Airbnb's user
    id), stable across that guest's reservations; scoped by channel, since two channels' ids
    can collide."""
    account, channel = text(raw.get("guestExternalAccountId")), text(raw.get("channelId"))
    return f"{channel}:{account}" if account and channel else None


def guest_count(raw: Raw) -> int | None:
    """Everyone staying: ``numberOfGuests``, else the sum of the counts that are known."""
    total = integer(raw.get("numberOfGuests"))
    if total is not None:
        return total
    adults = integer(raw.get("adults"))
    if adults is None:
        return None
    return adults + sum(integer(raw.get(k)) or 0 for k in ("children", "infants"))


def to_booking(
    raw: Raw, property_countries: Mapping[str, str] | None = None
) -> Sequence[AnyRecord]:
    """A reservation and its derived guest. ``property_countries`` (listing id → alpha-2)
    reads a phone number written without country code when the guest's country is unknown."""
    rid = str(raw["id"])
    email = text(raw.get("guestEmail"))
    phone = text(raw.get("phone"))
    first, last = text(raw.get("guestFirstName")), text(raw.get("guestLastName"))
    name = text(raw.get("guestName")) or " ".join(p for p in (first, last) if p) or None
    country = country_code(raw.get("guestCountry"))
    account = channel_account(raw)
    status = booking_status(raw.get("status"))
    records: list[AnyRecord] = []
    gkey: str | None = None
    if status is not BookingStatus.BLOCKED and (email or phone or name or account):
        region = country or (property_countries or {}).get(str(raw.get("listingMapId")))
        gkey = guest_key(email, phone, f"reservation:{rid}", region=region, account=account)
        records.append(
            Guest(
                external_id=gkey,
                raw={"reservationId": raw["id"], "channelAccount": account},
                name=name,
                first_name=first,
                last_name=last,
                email=email,
                phone=phone,
                # guestLocale is often null where Hostaway has picked a messaging locale.
                language=text(raw.get("guestLocale")) or text(raw.get("localeForMessaging")),
                country=country,
            )
        )
    records.insert(
        0,
        Booking(
            external_id=rid,
            raw=raw,
            property_external_id=text(raw.get("listingMapId")),
            guest_external_id=gkey,
            status=status,
            check_in=iso_date(raw.get("arrivalDate")),
            check_out=iso_date(raw.get("departureDate")),
            # Null on some direct/VRBO bookings: unknown, not the total (that is `guests`).
            adults=integer(raw.get("adults")),
            children=integer(raw.get("children")),
            guests=guest_count(raw),
            channel=text(raw.get("channelName")) or text(raw.get("channelId")),
            confirmation_code=text(raw.get("confirmationCode")),
            total_price=money(raw.get("totalPrice")),
            currency=currency_code(raw.get("currency")),
            guest_name=name,
            guest_email=email,
            guest_phone=phone,
            created_at=utc_datetime(raw.get("insertedOn") or raw.get("reservationDate")),
            updated_at=utc_datetime(raw.get("updatedOn") or raw.get("latestActivityOn")),
        ),
    )
    return records


def _token_fetcher(account_id: str, client_id: str, secret: str) -> Any:
    async def fetch(http: HttpClient) -> CachedToken:
        body = await http.request_json(
            "POST",
            "accessTokens",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id or account_id,
                "client_secret": secret,
                "scope": "general",
            },
            authenticate=False,
        )
        # Documented bare object; one client also accepts it wrapped in {"result": ...}.
        if isinstance(body, dict) and isinstance(body.get("result"), dict):
            body = body["result"]
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise AuthError(
                "Hostaway's token endpoint answered without an access token",
                hint=Hostaway.auth_hint,
                provider="hostaway",
            )
        expires_in = number(body.get("expires_in"))
        expires_at = http.clock.time() + expires_in if expires_in else None
        return CachedToken(token, expires_at)

    return fetch


class Hostaway(Provider):
    name = "hostaway"
    title = "Hostaway"
    id_pattern = r"\d{1,20}"  # ids in API paths (checked for webhook ids)
    default_base_url = "https://api.hostaway.com/v1"
    auth_kind = "OAuth2 client credentials (token cached, lives 24 months)"
    credential_fields = (
        CredentialField("account_id", "Account ID", "HOSTAWAY_ACCOUNT_ID", secret=False),
        CredentialField(
            "client_id",
            "Client ID",
            "HOSTAWAY_CLIENT_ID",
            secret=False,
            required=False,
            help="usually the account ID",
        ),
        CredentialField("client_secret", "Client secret", "HOSTAWAY_CLIENT_SECRET"),
    )
    rate_limits = (Window(20, 10.0),)
    ip_rate_limits = (Window(15, 10.0),)
    keys_help = "Dashboard → Settings → Hostaway API (dashboard.hostaway.com/settings/hostaway-api)"
    webhooks = "unified webhooks with HTTP Basic auth"
    auth_hint = (
        "Check the account ID and client secret in Hostaway → Settings → Hostaway API, then run "
        "`pms connect hostaway` again (or fix HOSTAWAY_CLIENT_SECRET)."
    )
    resources = (
        Resource(
            name="properties",
            kind="property",
            path="listings",
            paginator=OffsetPaginator(limit=PAGE_SIZE),
            extract=extract,
            mapper=to_property,
            required=("id", "name"),
            expected=("timeZoneName", "personCapacity", "currencyCode"),
            since=since_params,
        ),
        Resource(
            name="bookings",
            kind="booking",
            path="reservations",
            paginator=CursorPaginator(limit=PAGE_SIZE, param="afterId"),
            extract=extract,
            mapper=to_booking,
            required=("id", "listingMapId", "arrivalDate", "status"),
            expected=("departureDate", "totalPrice", "currency", "guestName", "updatedOn"),
            params=RESERVATION_ORDER,  # whole reads; the incremental walk drops it
            since=walk_to_watermark,
            derived_kinds=("guest",),
        ),
    )

    @classmethod
    def build_auth(cls, ctx: ProviderContext) -> Auth:
        return TokenAuth(
            fetch=_token_fetcher(
                ctx.public.get("account_id", ""),
                ctx.public.get("client_id", ""),
                ctx.credentials["client_secret"].get_secret_value(),
            ),
            cache=ctx.token_cache,
            cache_key=ctx.token_key,
            failure_statuses=AUTH_FAILURE_STATUSES,
            activation_delay=TOKEN_ACTIVATION_DELAY,
        )

    async def check(self) -> AccountInfo:
        extract(await self.http.get_json("listings", {"limit": 1}))
        account = self.ctx.public.get("account_id", "")
        return AccountInfo(account_ref=account, display_name=f"Hostaway account {account}")

    # Reservations do not say their listing's country, which reads guest phone numbers
    # written without country code: stored listings give it (``remember_properties``).
    needs_stored_properties = True

    def __init__(self, ctx: ProviderContext, http: HttpClient) -> None:
        super().__init__(ctx, http)
        self.property_countries: dict[str, str] = {}
        """Listing id → ISO alpha-2, from stored listings and from listings read this run."""

    def remember_properties(self, rows: Sequence[Mapping[str, Any]]) -> None:
        self.property_countries.update(
            {str(r["external_id"]): str(r["country"]) for r in rows if r.get("country")}
        )

    def mapper_for(self, resource: Resource) -> Callable[[Raw], Sequence[AnyRecord]]:
        if resource.kind != "booking":
            return resource.mapper
        return lambda raw: to_booking(raw, self.property_countries)

    async def pages(self, resource: Resource, since: datetime | None) -> AsyncIterator[list[Raw]]:
        async with contextlib.aclosing(self._changed(resource, since)) as pages:
            async for page in pages:
                if resource.kind == "property":
                    # Listings read in this run give their countries to its reservations.
                    for listing in page:
                        if code := country_code(listing.get("countryCode")):
                            self.property_countries[str(listing.get("id"))] = code
                yield page

    async def _changed(
        self, resource: Resource, since: datetime | None
    ) -> AsyncGenerator[list[Raw], None]:
        """Incremental reads keep only records changed since ``since``.

        Reservations: the walk in ``updatedOn DESC`` order ends with the first page that
        reaches below ``since``; each page is handed on oldest first, so where two changed
        reservations share a guest the newer one's details are written last. Listings:
        ``latestActivityStart`` is a day early (a date), the rest is dropped here.
        """
        if since is None:
            async for page in super().pages(resource, since):
                yield page
            return
        floor = since.astimezone(UTC)
        walking = resource.kind == "booking"
        key = "updatedOn" if walking else "latestActivityOn"
        params = dict(resource.params)
        if walking:
            params.pop("sortOrder", None)  # the default order: newest-modified first
        elif resource.since is not None:
            params.update(resource.since(since))
        walk = resource.paginator.pages(self.http, resource.path, params, resource.extract)
        async with contextlib.aclosing(cast(AsyncGenerator[list[Raw], None], walk)) as pages:
            async for page in pages:
                fresh = [r for r in page if not _older_than(r, key, floor)]
                if fresh:
                    # Where the walk goes on stays the page's (a checkpoint resumes there); the
                    # total is of all reservations, not of the changed ones this walk reads.
                    after = getattr(page, "after", None)
                    total = None if walking else getattr(page, "total", None)
                    yield Page(fresh[::-1] if walking else fresh, after, total)
                if walking and page and _older_than(page[-1], key, floor):
                    return

    async def fetch_one(self, resource: Resource, external_id: str) -> Raw | None:
        """``GET listings/{id}`` / ``GET reservations/{id}``: ``{status, result: {...}}``."""
        path = "listings" if resource.kind == "property" else "reservations"
        body = await get_or_none(self.http, api_path(path, external_id))
        if body is None:
            return None
        result = body.get("result") if isinstance(body, dict) else None
        if not isinstance(body, dict) or body.get("status") != "success":
            raise ProviderError(
                f"Hostaway answered a failure for {path}/{external_id}",
                hint="Rerun later; if it persists, report it.",
                code="provider_garbage",
                provider="hostaway",
            )
        return result if isinstance(result, dict) and result else None


PROVIDER = Hostaway
