"""Lodgify Public API v2 (fact sheet: shared/providers/lodgify.md).

A full sync calls two list endpoints and no detail endpoint: ``GET /v2/properties`` and
``GET /v2/reservations/bookings``, 50 records per request, plus ``GET /v2/deletedProperties``
after the properties so a property deleted in Lodgify is marked deleted by any sync. Room details
(``/v2/properties/{id}/rooms``: capacity, bedrooms) would cost one request per property, so
those Property fields stay empty; the raw list item is kept. Guests have no endpoint: they are
derived from the ``guest`` object embedded in every booking.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from pms_cli.errors import ProviderError
from pms_cli.http.auth import HeaderAuth
from pms_cli.http.client import Auth, HttpClient, api_path
from pms_cli.http.paginate import PageBody, PageNumberPaginator, Raw
from pms_cli.http.ratelimit import Window
from pms_cli.models import (
    AnyRecord,
    Booking,
    BookingStatus,
    Guest,
    Property,
    country_code,
    currency_code,
    guest_key,
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
PAGE_SIZE = 50  # documented default; "max 50" comes from client tool catalogs, not Lodgify's spec
PROPERTY_SINCE_PARAM = "updatedSince"  # on /v2/properties only in client catalogs, not the spec
AUTH_FAILURE_STATUSES = frozenset({401, 403})  # live status for a bad key unverified; 401 declared
# `includeExternal` scope (iCal/channel imports) is unverified; integrators always set it.
# guest_breakdown may sit per room and/or top-level; rooms[].people is the deprecated fallback.
# Naive timestamps ("2024-05-06T08:00:00") are read as UTC (models.utc_datetime does that).
# No Retry-After is documented on 429; the HTTP layer honours one if sent, else backs off.
# Trashing a booking is assumed to bump its updated_at, so updatedSince picks the deletion up.
# GET /v2/deletedProperties: `deletedSince` and the existence of the endpoint come from client
# tool catalogs; the response shape is undocumented. Accepted: {count, items} or a bare array,
# items as property objects (`id`), deletion records (`property_id` / `propertyId`) or bare ids.
DELETED_PROPERTIES_PATH = "v2/deletedProperties"
DELETED_SINCE_PARAM = "deletedSince"
DELETED_ID_KEYS = ("property_id", "propertyId", "id")
# Owner closures: v2 documents status "Unavailable" (BookingStatus enum). Unseen but plausible
# markers are accepted too, matched case-insensitively: a flag, or a type naming a closure.
CLOSURE_STATUSES = frozenset({"unavailable", "closed", "closedperiod", "blocked"})
CLOSURE_FLAGS = ("is_unavailable", "isUnavailable", "is_blocked", "isBlocked", "is_closed")
CLOSURE_TYPE_KEYS = ("type", "booking_type")
# -------------------------------------------------------------------------------------------------

# 750 requests/min is 12.5/s; one request at a time over the internet reaches a few per second.
PARALLEL_PAGES = 4

# The default stayFilter (Upcoming), trash=False and includeExternal=false each hide bookings a
# sync needs: past and in-house stays, trashed bookings (deletions to propagate), OTA/iCal imports.
BOOKING_PARAMS = {
    "includeCount": "true",  # fills `count`, so the paginator stops without an extra request
    "stayFilter": "All",
    "trash": "All",
    "includeExternal": "true",
}
PROPERTY_PARAMS = {"includeCount": "true"}

STATUS = {
    "booked": BookingStatus.CONFIRMED,
    "tentative": BookingStatus.PENDING,  # on hold until tentative_expires_at
    "open": BookingStatus.INQUIRY,  # enquiry / booking request
    "declined": BookingStatus.CANCELLED,
}

T = TypeVar("T")


def _obj(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def extract(body: Any) -> PageBody:
    """``{"count": int|null, "items": [...]|null}``; null items means an empty result."""
    if not isinstance(body, dict) or not isinstance(body.get("items", 0), list | None):
        raise ProviderError(
            "Lodgify list response without an items list",
            hint="The API changed shape or returned an error page; report it if it persists.",
            code="provider_garbage",
            provider="lodgify",
            body_excerpt=str(body)[:200],
        )
    items = body.get("items") or []
    count = body.get("count")
    return PageBody(
        [r for r in items if isinstance(r, dict)],
        count if isinstance(count, int) and not isinstance(count, bool) else None,
    )


def since_params(since: datetime) -> dict[str, str]:
    return {"updatedSince": since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}


def property_since_params(since: datetime) -> dict[str, str]:
    return {PROPERTY_SINCE_PARAM: since_params(since)["updatedSince"]}


def to_property(raw: Raw) -> Sequence[AnyRecord]:
    return [
        Property(
            external_id=raw["id"],
            raw=raw,
            name=text(raw.get("name")) or text(raw.get("internal_name")),
            address=text(raw.get("address")),
            city=text(raw.get("city")),
            # `country` is an English name ("Spain", resolved by pycountry); `country_code`
            # (sometimes sent) is ISO already, so it wins.
            country=country_code(raw.get("country_code")) or country_code(raw.get("country")),
            latitude=number(raw.get("latitude")),
            longitude=number(raw.get("longitude")),
            currency=currency_code(raw.get("currency_code")),
            active=raw.get("is_active") is not False,
            updated_at=utc_datetime(raw.get("updated_at")),
        )
    ]


def _word(value: object) -> str:
    return str(value or "").replace("_", "").replace(" ", "").lower()


def is_closure(raw: Raw) -> bool:
    """A period the owner closed (no guest stays), by status, flag or type."""
    if _word(raw.get("status")) in CLOSURE_STATUSES:
        return True
    if any(raw.get(flag) in (True, 1, "true", "True") for flag in CLOSURE_FLAGS):
        return True
    return any(_word(raw.get(key)) in CLOSURE_STATUSES for key in CLOSURE_TYPE_KEYS)


def booking_status(raw: Raw) -> BookingStatus:
    # A trashed booking no longer holds its dates, whatever its last status was.
    if raw.get("is_deleted") is True:
        return BookingStatus.CANCELLED
    if is_closure(raw):
        return BookingStatus.BLOCKED
    # Unknown statuses (the enum grows) count as inquiries: they never block dates.
    return STATUS.get(_word(raw.get("status")), BookingStatus.INQUIRY)


def _party(raw: Raw) -> tuple[int | None, int | None]:
    """(adults, children): per-room guest_breakdown, else top-level, else deprecated people."""
    listed = raw.get("rooms")
    rooms = [_obj(r) for r in listed] if isinstance(listed, list) else []
    breakdowns = [_obj(r.get("guest_breakdown")) for r in rooms if r.get("guest_breakdown")]
    breakdowns = breakdowns or [_obj(raw.get("guest_breakdown"))]
    adults = [a for b in breakdowns if (a := integer(b.get("adults"))) is not None]
    children = [c for b in breakdowns if (c := integer(b.get("children"))) is not None]
    if not adults:
        adults = [p for r in rooms if (p := integer(r.get("people"))) is not None]
    return (sum(adults) if adults else None, sum(children) if children else None)


def to_booking(raw: Raw) -> Sequence[AnyRecord]:
    bid = text(raw["id"])
    if bid is None:
        raise ValueError("booking without id")
    guest = _obj(raw.get("guest"))
    name, email, phone = text(guest.get("name")), text(guest.get("email")), text(guest.get("phone"))
    status = booking_status(raw)
    records: list[AnyRecord] = []
    gkey: str | None = None
    # A closed period's "guest" is the owner's own note or contact, never a person to keep.
    if not is_closure(raw) and (email or phone or name):
        gkey = guest_key(email, phone, f"booking:{bid}")
        records.append(
            Guest(
                external_id=gkey,
                raw={"bookingId": raw["id"], **guest},
                name=name,
                email=email,
                phone=phone,
                language=text(raw.get("language")),
                country=country_code(guest.get("country_code")),
            )
        )
    adults, children = _party(raw)
    records.insert(
        0,
        Booking(
            external_id=bid,
            raw=raw,
            property_external_id=text(raw.get("property_id")),
            guest_external_id=gkey,
            status=status,
            check_in=iso_date(raw.get("arrival")),
            check_out=iso_date(raw.get("departure")),
            adults=adults,
            children=children,
            channel=text(raw.get("source")),
            confirmation_code=text(raw.get("source_text")),
            total_price=money(raw.get("total_amount")),
            currency=currency_code(raw.get("currency_code")),
            guest_name=name,
            guest_email=email,
            guest_phone=phone,
            created_at=utc_datetime(raw.get("created_at")),
            updated_at=utc_datetime(raw.get("updated_at")),
        ),
    )
    return records


def deleted_extract(body: Any) -> PageBody:
    """``{count, items}`` like the other lists, or a bare array (the shape is undocumented)."""
    if isinstance(body, list):
        items = [r if isinstance(r, dict) else {"id": r} for r in body]
        return PageBody(items, len(items), False)
    return extract(body)


def deleted_property_id(item: Raw) -> str | None:
    return next((t for t in (text(item.get(k)) for k in DELETED_ID_KEYS) if t), None)


class Lodgify(Provider):
    name = "lodgify"
    title = "Lodgify"
    id_pattern = r"\d{1,20}"  # ids in API paths (checked for webhook ids)
    default_base_url = "https://api.lodgify.com"  # paths carry the version (/v2/...)
    auth_kind = "API key (X-ApiKey header)"
    credential_fields = (CredentialField("api_key", "API key", "LODGIFY_API_KEY"),)
    rate_limits = (Window(750, 60.0),)  # documented for v2; v1 (unused here) allows 600/min
    keys_help = "Lodgify dashboard → Settings → Public API (the key reads and writes)"
    webhooks = "self-service subscriptions signed with HMAC-SHA256 (ms-signature header)"
    auth_hint = (
        "Check the API key in Lodgify → Settings → Public API, then run `pms connect lodgify` "
        "again (or fix LODGIFY_API_KEY)."
    )
    resources = (
        Resource(
            name="properties",
            kind="property",
            path="v2/properties",
            paginator=PageNumberPaginator(size=PAGE_SIZE, parallel=PARALLEL_PAGES),
            extract=extract,
            mapper=to_property,
            required=("id", "name"),
            expected=("address", "city", "currency_code"),
            params=PROPERTY_PARAMS,
            since=property_since_params,
            lists_deletions=True,  # GET /v2/deletedProperties after the walk
        ),
        Resource(
            name="bookings",
            kind="booking",
            path="v2/reservations/bookings",
            paginator=PageNumberPaginator(size=PAGE_SIZE, parallel=PARALLEL_PAGES),
            extract=extract,
            mapper=to_booking,
            required=("id", "property_id", "arrival", "status"),
            expected=("departure", "total_amount", "currency_code", "guest", "updated_at"),
            params=BOOKING_PARAMS,
            since=since_params,
            derived_kinds=("guest",),
        ),
    )

    @classmethod
    def build_auth(cls, ctx: ProviderContext) -> Auth:
        return HeaderAuth(
            {"X-ApiKey": ctx.credentials["api_key"].get_secret_value()},
            failure_statuses=AUTH_FAILURE_STATUSES,
        )

    async def check(self) -> AccountInfo:
        # The documented cheapest key check; includeCount lets the display name say the size.
        body = extract(
            await self.http.get_json("v2/properties", {"page": 1, "size": 1, **PROPERTY_PARAMS})
        )
        # No account id is reachable in one call (bookings carry user_id), so the reference is
        # a fingerprint of the key: it tells connections apart and cannot be turned back into it.
        key = self.ctx.credentials["api_key"].get_secret_value()
        ref = "key-" + hashlib.sha256(key.encode()).hexdigest()[:10]
        size = f"{body.total} properties" if body.total is not None else "properties unknown"
        return AccountInfo(account_ref=ref, display_name=f"Lodgify account ({size})")

    def __init__(self, ctx: ProviderContext, http: HttpClient) -> None:
        super().__init__(ctx, http)
        self._listed: set[str] = set()

    async def pages(self, resource: Resource, since: datetime | None) -> AsyncIterator[list[Raw]]:
        async for page in super().pages(resource, since):
            if resource.kind == "property":
                self._listed.update(str(r.get("id")) for r in page)
            yield page

    async def deleted(self, resource: Resource, since: datetime | None) -> AsyncIterator[list[str]]:
        """``GET /v2/deletedProperties`` (``deletedSince`` = the run's since): one request for
        a normal account. A property listed by this same run is live again (restored), so it
        is never marked deleted."""
        if resource.kind != "property":
            return
        params: dict[str, str] = dict(PROPERTY_PARAMS)
        if since is not None:
            params[DELETED_SINCE_PARAM] = since_params(since)["updatedSince"]
        paginator = PageNumberPaginator(size=PAGE_SIZE)
        pages = paginator.pages(self.http, DELETED_PROPERTIES_PATH, params, deleted_extract)
        try:
            async for page in pages:
                ids = [i for i in map(deleted_property_id, page) if i and i not in self._listed]
                if ids:
                    yield ids
        except ProviderError as exc:
            # The endpoint is known from client catalogs only: an account without it must
            # not lose its property sync; `--full` still finds vanished properties.
            if exc.code != "not_found":
                raise

    async def fetch_one(self, resource: Resource, external_id: str) -> Raw | None:
        """``GET v2/reservations/bookings/{id}`` / ``GET v2/properties/{id}``."""
        body = await get_or_none(self.http, api_path(resource.path, external_id))
        return body if isinstance(body, dict) and body else None


PROVIDER = Lodgify
