"""Smoobu API (fact sheet: shared/providers/smoobu.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

import base64
import functools
import hashlib
import hmac
import time
import uuid
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from pms_cli.errors import ConfigError, ProviderError
from pms_cli.http.client import Auth, HttpClient, api_path, parse_retry_after
from pms_cli.http.paginate import Extractor, PageBody, PageNumberPaginator, Raw
from pms_cli.http.ratelimit import Window
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
    local_datetime,
    money,
    number,
    text,
)
from pms_cli.providers.base import (
    AccountInfo,
    CredentialField,
    Provider,
    ProviderContext,
    Resource,
    get_or_none,
)
from pms_cli.redact import register_secret

# --- unverified facts (fact sheet marks them so); correct them here and only here ----------------
PAGE_SIZE = 100  # documented cap of `pageSize`; the default (25) is unverified, so always send it
# Filters and timestamps are account-local with no offset, and the account zone is not exposed by
# /api/me: we filter by date with a day of overlap. Booking timestamps are read in the apartment's
# `timeZone` (fact sheet §7), as UTC while that is unknown.
MODIFIED_OVERLAP = timedelta(days=1)
GUESTS_KEY = "guests"  # /api/guests envelope key and item field names are unverified
# Paging keys: /api/reservations sends snake_case, /api/guests camelCase (fact sheet 2026-12-06);
# each list is read with both so neither endpoint switching spelling breaks paging.
PAGE_COUNT_KEYS = ("page_count", "pageCount")
TOTAL_ITEMS_KEYS = ("total_items", "totalItems")
# Booking modification time: `modifiedAt` in the field table, webhooks and client code,
# `modified-at` in the official list example. No third spelling has been seen.
MODIFIED_KEY, MODIFIED_ALIASES = "modifiedAt", ("modified-at",)
# Webhook price-element payloads: which key names the booking is unverified (see webhooks/smoobu).
RATE_RESET_HEADER = "x-ratelimit-retry-after"  # catalogued name; a unix timestamp per one client
EPOCH_THRESHOLD = 1_000_000_000  # smaller X-RateLimit-Retry-After values are read as seconds
# -----------------------------------------------------------------------------------------------

DETAIL_CHUNK = 25  # apartments per yielded page while fetching details
# 1000 requests/min is ~17/s; one request at a time over the internet reaches a few per second.
PAGED = PageNumberPaginator(size=PAGE_SIZE, size_param="pageSize", parallel=4)


def canonical_query(query: str) -> str:
    """Query pairs exactly as sent, sorted by key (stable, so repeated keys keep their order)."""
    pairs = [p for p in query.split("&") if p]
    return "&".join(sorted(pairs, key=lambda p: p.partition("=")[0]))


def sign(
    secret: str,
    api_key: str,
    *,
    method: str,
    path: str,
    query: str,
    body: bytes,
    timestamp: str,
    nonce: str,
) -> str:
    """base64(HMAC-SHA256(secret, 7-line canonical string)); the body hash is hex (documented)."""
    canonical = "\n".join(
        (
            method.upper(),
            path,
            canonical_query(query),
            timestamp,
            nonce,
            hashlib.sha256(body).hexdigest(),
            api_key,
        )
    )
    digest = hmac.new(secret.encode(), canonical.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _uuid_nonce() -> str:
    return str(uuid.uuid4())


@dataclass
class HmacAuth:
    """Smoobu's signed requests. ``HttpClient`` calls ``apply`` on every attempt, so each retry
    is signed again with a fresh nonce and timestamp (a replayed nonce is rejected with 401)."""

    api_key: str
    secret: str
    new_nonce: Callable[[], str] = field(default_factory=lambda: _uuid_nonce)

    def __post_init__(self) -> None:
        register_secret(self.api_key)
        register_secret(self.secret)

    async def apply(self, request: httpx.Request, http: HttpClient) -> None:
        timestamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(http.clock.time()))
        nonce = self.new_nonce()
        # Sign the path and query in their on-the-wire (percent-encoded) form.
        path, _, query = request.url.raw_path.decode("ascii").partition("?")
        request.headers.update(
            {
                "X-API-Key": self.api_key,
                "X-Timestamp": timestamp,
                "X-Nonce": nonce,
                "X-Signature": sign(
                    self.secret,
                    self.api_key,
                    method=request.method,
                    path=path,
                    query=query,
                    body=request.content,
                    timestamp=timestamp,
                    nonce=nonce,
                ),
            }
        )

    def is_auth_failure(self, response: httpx.Response) -> bool:
        return response.status_code == 401

    async def renew(self, http: HttpClient, rejected: httpx.Request | None = None) -> bool:
        return False  # static credentials: nothing to refresh


def smoobu_retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """``Retry-After`` (seconds) if sent, else ``X-RateLimit-Retry-After`` (unix reset time)."""
    standard = parse_retry_after(headers, now)
    if standard is not None:
        return standard
    value = number(headers.get(RATE_RESET_HEADER))
    if value is None:
        return None
    return max(0.0, value - now if value > EPOCH_THRESHOLD else value)


def _garbage(message: str) -> ProviderError:
    return ProviderError(
        f"Smoobu {message}",
        hint="The API changed shape or returned an error page; report it if it persists.",
        code="provider_garbage",
        provider="smoobu",
    )


def _any_int(body: Mapping[str, Any], keys: Sequence[str]) -> int | None:
    return next((n for n in (integer(body.get(k)) for k in keys) if n is not None), None)


def paged(key: str) -> Extractor:
    """``{page, page_count|pageCount, total_items|totalItems, <key>: [...]}``; last page when
    ``page >= page_count``."""

    def extract(body: Any) -> PageBody:
        items = body.get(key) if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise _garbage(f"list response without a {key!r} list")
        page, count = integer(body.get("page")), _any_int(body, PAGE_COUNT_KEYS)
        more = None if page is None or count is None else page < count
        # total_items lets later pages be fetched in parallel; `more` still decides the end.
        total = _any_int(body, TOTAL_ITEMS_KEYS)
        return PageBody([r for r in items if isinstance(r, dict)], total, more)

    return extract


def apartments(body: Any) -> PageBody:
    items = body.get("apartments") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise _garbage("apartment list without an 'apartments' list")
    return PageBody([r for r in items if isinstance(r, dict)], len(items), False)


@dataclass(frozen=True)
class SinglePage:
    """/api/apartments is not paginated: one request, no paging parameters."""

    page_size: int | None = None

    async def pages(
        self, http: HttpClient, path: str, params: Mapping[str, Any], extract: Extractor
    ) -> AsyncIterator[list[Raw]]:
        body = extract(await http.get_json(path, params))
        if body.records:
            yield body.records


def since_params(since: datetime) -> dict[str, str]:
    # A bare date avoids the unverified "YYYY-MM-DD HH:mm" form and any query encoding question.
    return {"modifiedFrom": (since.astimezone(UTC) - MODIFIED_OVERLAP).date().isoformat()}


def _id(raw: Raw) -> str:
    value = raw.get("id")
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip():
        raise ValueError(f"Smoobu record without a usable id: {value!r}")
    return str(value).strip()


def _obj(value: object) -> dict[str, Any]:
    # Smoobu sometimes sends [] where an object is expected.
    return value if isinstance(value, dict) else {}


def _first(value: object) -> str | None:
    if isinstance(value, list):
        return next((t for t in map(text, value) if t), None)
    return text(value)


def _full_name(*parts: str | None) -> str | None:
    return " ".join(p for p in parts if p) or None


def to_property(raw: Raw) -> Sequence[AnyRecord]:
    location, rooms = _obj(raw.get("location")), _obj(raw.get("rooms"))
    return [
        Property(
            external_id=_id(raw),
            raw=raw,
            name=text(raw.get("name")),
            address=text(location.get("street")),
            city=text(location.get("city")),
            country=country_code(location.get("country")),  # usually a name ("Germany"): pycountry
            latitude=number(location.get("latitude")),
            longitude=number(location.get("longitude")),
            timezone=text(raw.get("timeZone")),
            max_guests=integer(rooms.get("maxOccupancy")),
            bedrooms=integer(rooms.get("bedrooms")),
            bathrooms=number(rooms.get("bathrooms")),
            currency=currency_code(raw.get("currency")),
        )
    ]


def booking_status(raw: Raw) -> BookingStatus:
    if raw.get("type") == "cancellation":
        return BookingStatus.CANCELLED
    if raw.get("is-blocked-booking") in (True, 1, "1", "true"):
        return BookingStatus.BLOCKED
    # "reservation", "modification of booking" and any later type occupy the calendar.
    return BookingStatus.CONFIRMED


def modified_at(raw: Raw) -> Any:
    """The booking's modification time in whichever spelling it came."""
    return next((raw[k] for k in (MODIFIED_KEY, *MODIFIED_ALIASES) if raw.get(k) is not None), None)


def to_booking(
    raw: Raw,
    zones: Mapping[str, str] | None = None,
    currencies: Mapping[str, str] | None = None,
) -> Sequence[AnyRecord]:
    """``zones``: apartment id → IANA zone, to read the naive ``created-at``/``modifiedAt``;
    ``currencies``: apartment id → ISO currency (bookings carry none, their apartment does)."""
    status = booking_status(raw)
    apartment = str(_obj(raw.get("apartment")).get("id"))
    zone = (zones or {}).get(apartment)
    first, last = text(raw.get("firstname")), text(raw.get("lastname"))
    guest_id = integer(raw.get("guestId")) if status is not BookingStatus.BLOCKED else None
    return [
        Booking(
            external_id=_id(raw),
            raw=raw,
            property_external_id=text(_obj(raw.get("apartment")).get("id")),
            guest_external_id=str(guest_id) if guest_id else None,
            status=status,
            check_in=iso_date(raw.get("arrival")),
            check_out=iso_date(raw.get("departure")),
            adults=integer(raw.get("adults")),
            children=integer(raw.get("children")),
            channel=text(_obj(raw.get("channel")).get("name")),
            confirmation_code=text(raw.get("reference-id")),
            total_price=money(raw.get("price")),
            currency=currency_code(raw.get("currency"))
            or currency_code((currencies or {}).get(apartment)),
            guest_name=text(raw.get("guest-name")) or _full_name(first, last),
            guest_email=text(raw.get("email")),
            guest_phone=text(raw.get("phone")),
            created_at=local_datetime(raw.get("created-at"), zone),
            updated_at=local_datetime(modified_at(raw), zone),
        )
    ]


def missing_secret_error() -> ConfigError:
    return ConfigError(
        "Smoobu refuses requests that are not HMAC-signed since 2026-09-25, and this connection "
        "has an API key but no API secret (SMOOBU_API_SECRET)",
        hint="In Smoobu → Settings → Advanced → API Keys, create a key (Create New): its secret "
        "is shown once. Then run `pms connect smoobu` with both, or set SMOOBU_API_KEY and "
        "SMOOBU_API_SECRET.",
        code="credentials_missing",
        provider="smoobu",
    )


def to_guest(raw: Raw) -> Sequence[AnyRecord]:
    # Field names are unverified: accept the booking spellings (firstname, email, phone) too.
    first = text(raw.get("firstName")) or text(raw.get("firstname"))
    last = text(raw.get("lastName")) or text(raw.get("lastname"))
    return [
        Guest(
            external_id=_id(raw),
            raw=raw,
            name=_full_name(first, last) or text(raw.get("companyName")),
            first_name=first,
            last_name=last,
            email=_first(raw.get("emails")) or text(raw.get("email")),
            phone=_first(raw.get("telephoneNumbers")) or text(raw.get("phone")),
            language=text(raw.get("language")),
            country=country_code(_obj(raw.get("address")).get("country")),
        )
    ]


class Smoobu(Provider):
    name = "smoobu"
    title = "Smoobu"
    id_pattern = r"\d{1,20}"  # ids in API paths (checked for webhook ids)
    default_base_url = "https://login.smoobu.com/api"
    auth_kind = "API key + secret; every request HMAC-SHA256 signed (mandatory since 2026-09-25)"
    credential_fields = (
        CredentialField("api_key", "API key", "SMOOBU_API_KEY"),
        CredentialField(
            "api_secret",
            "API secret",
            "SMOOBU_API_SECRET",
            help="shown once when the key is created; Smoobu refuses unsigned requests since "
            "2026-09-25",
        ),
    )
    rate_limits = (Window(1000, 60.0),)
    retry_after: ClassVar[Callable[[Mapping[str, str], float], float | None]] = staticmethod(
        smoobu_retry_after
    )
    webhooks = "one account-wide webhook URL, verified by a per-connection token in the URL"
    keys_help = "Settings → Advanced → API Keys (Create New: the key plus a one-time secret)"
    auth_hint = (
        "Check the API key (and secret) in Smoobu → Settings → Advanced → API Keys, then run "
        "`pms connect smoobu` again (or fix SMOOBU_API_KEY / SMOOBU_API_SECRET). Signed requests "
        "are also rejected when this machine's clock is off by minutes."
    )
    resources = (
        # One list call, then GET /apartments/{id} per apartment: the list has only id + name.
        Resource(
            name="properties",
            kind="property",
            path="apartments",
            paginator=SinglePage(),
            extract=apartments,
            mapper=to_property,
            required=("id", "name"),
            expected=("location", "rooms", "timeZone"),
            detail_per_record=True,
        ),
        Resource(
            name="bookings",
            kind="booking",
            path="reservations",
            paginator=PAGED,
            extract=paged("bookings"),
            mapper=to_booking,
            required=("id", "apartment", "arrival"),
            expected=("departure", "price", "guest-name", MODIFIED_KEY),
            aliases={MODIFIED_KEY: MODIFIED_ALIASES},
            # Cancellations are hidden by default; blocks are shown, but say so explicitly.
            params={"showCancellation": "true", "excludeBlocked": "false"},
            since=since_params,
        ),
        Resource(
            name="guests",
            kind="guest",
            path="guests",
            paginator=PAGED,
            extract=paged(GUESTS_KEY),
            mapper=to_guest,
            required=("id",),
            expected=("firstName", "lastName"),
            aliases={"firstName": ("firstname",), "lastName": ("lastname",)},  # see to_guest
        ),
    )

    @classmethod
    def credential_problem(cls, present: Collection[str]) -> ConfigError | None:
        if "api_key" in present and "api_secret" not in present:
            return missing_secret_error()
        return None

    @classmethod
    def build_auth(cls, ctx: ProviderContext) -> Auth:
        secret = ctx.credentials.get("api_secret")
        if secret is None or not secret.get_secret_value():
            # Library callers that bypass `pms connect` / the session get the same clear error
            # before a request is sent that Smoobu would refuse anyway.
            raise missing_secret_error()
        return HmacAuth(ctx.credentials["api_key"].get_secret_value(), secret.get_secret_value())

    local_timestamps = True
    needs_stored_properties = True

    def __init__(self, ctx: ProviderContext, http: HttpClient) -> None:
        super().__init__(ctx, http)
        self._apartment_list: dict[str, Raw] | None = None
        self.property_currencies: dict[str, str] = {}
        """Apartment id → ISO currency, for bookings (which carry none)."""
        self._looked_up: set[str] = set()
        # Details read while mapping bookings, kept until the engine's catch-up stores the
        # apartment, so a new apartment costs one detail request, not two.
        self._unstored_details: dict[str, Any] = {}

    def remember_properties(self, rows: Sequence[Mapping[str, Any]]) -> None:
        super().remember_properties(rows)
        self.property_currencies.update(
            {str(r["external_id"]): str(r["currency"]) for r in rows if r.get("currency")}
        )

    def mapper_for(self, resource: Resource) -> Callable[[Raw], Sequence[AnyRecord]]:
        if resource.kind == "booking":
            return functools.partial(
                to_booking, zones=self.property_timezones, currencies=self.property_currencies
            )
        return resource.mapper

    async def pages(self, resource: Resource, since: datetime | None) -> AsyncIterator[list[Raw]]:
        """Apartment details need one extra request each (N+1): the list gives id + name only.
        A booking page naming an apartment not read yet (created since the apartments were
        last read) costs one detail request for it, so its bookings get currency and zone."""
        async for page in super().pages(resource, since):
            if resource.kind == "booking":
                await self._learn_apartments(page)
                yield page
                continue
            if resource.kind != "property":
                yield page
                continue
            for start in range(0, len(page), DETAIL_CHUNK):
                yield [await self._apartment(item) for item in page[start : start + DETAIL_CHUNK]]

    async def _learn_apartments(self, bookings: Sequence[Raw]) -> None:
        for booking in bookings:
            apartment = _obj(booking.get("apartment")).get("id")
            key = str(apartment)
            if not isinstance(apartment, int | str) or key in self.property_currencies:
                continue
            if key in self._looked_up:  # asked once per run, even if it had no currency
                continue
            self._looked_up.add(key)
            await self._apartment({"id": apartment}, keep_detail=True)

    async def _apartment(self, item: Raw, keep_detail: bool = False) -> Raw:
        if not isinstance(item.get("id"), int | str):
            return item  # the mapper skips it
        detail = self._unstored_details.pop(str(item["id"]), None)
        if detail is None:
            try:
                detail = await self.http.get_json(api_path("apartments", item["id"]))
            except ProviderError as exc:
                if exc.code != "not_found":
                    raise
                return item  # deleted between the list and the detail call: keep what we know
            if keep_detail:
                self._unstored_details[str(item["id"])] = detail
        # The detail is not guaranteed to repeat id / name: the list's values win.
        merged = {**_obj(detail), **item}
        zone = text(merged.get("timeZone"))
        if zone:
            self.property_timezones[str(item["id"])] = zone
        currency = currency_code(merged.get("currency"))
        if currency:
            self.property_currencies[str(item["id"])] = currency
        return merged

    async def check(self) -> AccountInfo:
        me = _obj(await self.http.get_json("me"))
        user = text(me.get("id"))
        if user is None:
            raise _garbage("/api/me answered without a user id")
        name = _full_name(text(me.get("firstName")), text(me.get("lastName")))
        label = name or text(me.get("email")) or "account"
        return AccountInfo(account_ref=user, display_name=f"Smoobu {label} (user {user})")

    async def fetch_one(self, resource: Resource, external_id: str) -> Raw | None:
        """``GET reservations/{id}`` (cancelled ones too), ``guests/{id}``; an apartment is its
        list entry (read once per adapter) merged with ``apartments/{id}``."""
        path = {"property": "apartments", "booking": "reservations", "guest": "guests"}
        if resource.kind == "property":
            # The detail does not repeat id / name: take them from the list, read once per run.
            if self._apartment_list is None:
                listed = apartments(await self.http.get_json(resource.path)).records
                self._apartment_list = {str(item.get("id")): item for item in listed}
            item = self._apartment_list.get(str(external_id))
            if item is None:
                return None
            return await self._apartment(item)
        body = await get_or_none(self.http, api_path(path[resource.kind], external_id))
        if not isinstance(body, dict) or not body:
            return None
        return body


PROVIDER = Smoobu
