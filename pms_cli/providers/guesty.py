"""Guesty Open API (fact sheet: shared/providers/guesty.md).

Guesty issues at most 5 access tokens per client per rolling 24 h, so the token lives in the
shared token cache (keyed by client id) and is reused by every run and process until it expires;
a run mints only when the cache has no valid token, and a 401 renews once (``HttpClient``).

Requests: listings and guests are full reads (no documented modified-since filter), reservations
are incremental on ``lastUpdatedAt``. No detail endpoint is called: ``fields`` makes the list
endpoint return the embedded guest and money.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pms_cli.errors import AuthError, ProviderError
from pms_cli.http.auth import TokenAuth, TokenFetcher
from pms_cli.http.client import Auth, HttpClient, api_path, parse_retry_after
from pms_cli.http.paginate import Extractor, OffsetPaginator, Paginator, Raw, records_at
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

# --- unverified facts (the fact sheet marks them so); correct them here and only here -----------
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
# ------------------------------------------------------------------------------------------------

PAGE_SIZE = 100  # documented max `limit` of /listings and /reservations
# 15 requests/s is the binding limit; one request takes a few hundred ms over the internet, so
# a sequential walk would reach ~4/s. Offsets are known once page one reports the total.
PARALLEL_PAGES = 4
GUEST_COLUMNS = (
    "_id firstName lastName fullName email emails phone phones hometown address "
    "preferredLanguage nationality createdAt"
)
# `fields` drops unrequested defaults, so everything mapped (and kept in raw) is named here.
RESERVATION_FIELDS = (
    "_id accountId status confirmationCode listingId guestId guest checkIn checkOut "
    "checkInDateLocalized checkOutDateLocalized plannedArrival plannedDeparture nightsCount "
    "guestsCount numberOfGuests source integration money createdAt confirmedAt canceledAt "
    "lastUpdatedAt"
)


def iso_ms(moment: datetime) -> str:
    """Guesty's timestamp style: ``2024-05-01T00:00:00.000Z``."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def changed_since(since: datetime) -> dict[str, str]:
    rule = {"field": "lastUpdatedAt", "operator": "$gt", "value": iso_ms(since)}
    return {"filters": json.dumps([rule], separators=(",", ":"))}


@dataclass(frozen=True)
class ReservationsApi:
    """Everything that differs between Guesty's reservation list endpoints."""

    path: str
    params: Mapping[str, Any]
    since: Callable[[datetime], Mapping[str, Any]]
    extract: Extractor
    paginator: Paginator


# Sorted by `_id`, not `lastUpdatedAt`: with skip paging, a booking updated mid-walk would move
# to the end and shift an unchanged one past the offset (lost for good); `_id` order only moves
# on inserts, which land at the end. Incremental runs still filter on `lastUpdatedAt`.
# Legacy /v1/reservations is deprecated (removal announced for 2027-03-01). The replacement,
# reservations-v3/search, has unverified filter and paging syntax and does not embed guest/money:
# moving means a new ReservationsApi here (plus guest/money lookups in to_booking's inputs).
LEGACY_RESERVATIONS = ReservationsApi(
    path="reservations",
    params={"fields": RESERVATION_FIELDS, "sort": "_id"},
    since=changed_since,
    extract=records_at("results", "count"),
    paginator=OffsetPaginator(limit=PAGE_SIZE, offset_param="skip", parallel=PARALLEL_PAGES),
)
RESERVATIONS = LEGACY_RESERVATIONS


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


def to_booking(raw: Raw) -> Sequence[AnyRecord]:
    guest, m = _dict(raw.get("guest")), _dict(raw.get("money"))
    party = _dict(raw.get("numberOfGuests"))
    # Localized dates are the stay dates in the listing's zone; UTC checkIn can shift the day.
    return [
        Booking(
            external_id=raw["_id"],
            raw=raw,
            property_external_id=text(raw.get("listingId")),
            guest_external_id=text(raw.get("guestId")) or text(guest.get("_id")),
            status=booking_status(raw),
            check_in=iso_date(raw.get("checkInDateLocalized")) or iso_date(raw.get("checkIn")),
            check_out=iso_date(raw.get("checkOutDateLocalized")) or iso_date(raw.get("checkOut")),
            adults=integer(party.get("numberOfAdults")) or integer(raw.get("guestsCount")),
            children=integer(party.get("numberOfChildren")),
            channel=text(raw.get("source")) or text(_dict(raw.get("integration")).get("platform")),
            confirmation_code=text(raw.get("confirmationCode")),
            total_price=_total(m),
            currency=currency_code(m.get("currency")),
            guest_name=_full_name(guest),
            guest_email=text(guest.get("email")),
            guest_phone=text(guest.get("phone")),
            created_at=utc_datetime(raw.get("createdAt")),
            updated_at=utc_datetime(raw.get("lastUpdatedAt")),
        )
    ]


def to_guest(raw: Raw) -> Sequence[AnyRecord]:
    address = _dict(raw.get("address"))
    return [
        Guest(
            external_id=raw["_id"],
            raw=raw,
            name=_full_name(raw),
            first_name=text(raw.get("firstName")),
            last_name=text(raw.get("lastName")),
            email=text(raw.get("email")) or _first(raw.get("emails")),
            phone=text(raw.get("phone")) or _first(raw.get("phones")),
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
            path=RESERVATIONS.path,
            paginator=RESERVATIONS.paginator,
            extract=RESERVATIONS.extract,
            mapper=to_booking,
            required=("_id", "listingId", "checkIn", "status"),
            # The localized dates are the stay's local calendar dates; without them the
            # mapper falls back to the UTC date of checkIn, which can be a day off.
            expected=(
                "checkOut",
                "checkInDateLocalized",
                "checkOutDateLocalized",
                "money",
                "lastUpdatedAt",
            ),
            params=RESERVATIONS.params,
            since=RESERVATIONS.since,
        ),
        Resource(
            name="guests",
            kind="guest",
            path="guests-crud",
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

    async def fetch_one(self, resource: Resource, external_id: str) -> Raw | None:
        """``GET reservations/{id}`` with the list's ``fields``, ``listings/{id}``,
        ``guests-crud/{id}``."""
        params: dict[str, Any] = {}
        if resource.kind == "booking":
            params["fields"] = RESERVATION_FIELDS
        body = await get_or_none(self.http, api_path(resource.path, external_id), params)
        return body if isinstance(body, dict) and body else None


PROVIDER = Guesty
