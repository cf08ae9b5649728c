"""Beds24 API V2 (fact sheet: shared/providers/beds24.md).

Requests per sync: properties = ceil(properties / 100) (always full: no modified filter);
bookings = ceil(bookings / 100), all statuses, guests derived from them; + one
``/authentication/token`` call when no cached 24 h token is valid. No detail endpoints are
called. A bookings-only run (``--resource bookings``) adds one ``/properties`` page to learn the
currencies, because Beds24 bookings carry none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

import hashlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import SecretStr

from pms_cli.errors import AuthError, ConfigError, ProviderError
from pms_cli.http.auth import HeaderAuth, TokenAuth
from pms_cli.http.client import Auth, HttpClient, parse_retry_after
from pms_cli.http.paginate import PageBody, PageNumberPaginator, Raw
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
    integer,
    iso_date,
    money,
    number,
    text,
    utc_datetime,
)
from pms_cli.providers.base import AccountInfo, CredentialField, Provider, ProviderContext, Resource
from pms_cli.redact import register_secret

# --- unverified facts (fact sheet marks them so); correct them here and only here ----------------
# Bare GET /bookings returns only upcoming stays; whether `modifiedFrom` alone lifts that default
# is unverified, so every bookings request also sends arrivalFrom far in the past.
HISTORY_FROM = "2000-01-01"
FILTER_DATETIME = "%Y-%m-%dT%H:%M:%S"  # modifiedFrom's zone is unstated in the spec; assumed UTC
# The spec documents only 400; clients see 401 for a bad/expired token, and a 400 whose error
# text mentions the token is treated the same way (exact messages unverified).
AUTH_FAILURE_STATUSES = frozenset({401})
TOKEN_ERROR_STATUS, TOKEN_ERROR_WORD = 400, "token"
# Wire names (observed) first; the spec's names reportedly never appear but cost nothing to read.
REMAINING_HEADERS = ("x-five-min-limit-remaining", "x-fivemincreditlimit-remaining")
RESETS_IN_HEADERS = ("x-five-min-limit-resets-in", "x-fivemincreditlimit-resetsin")
# includeInvoiceItems needs the bookings-financial scope; without it the items are assumed to be
# left out (as personal fields are without bookings-personal), and total_price falls back to
# `price`. Invoice item `type` is "charge"/"payment"; where it is missing, subType >= 200 are
# payments (200 payment, 203 Stripe). Observed cost: 1.6 credits per page instead of 1.5.
PAYMENT_SUBTYPES_FROM = 200
# -------------------------------------------------------------------------------------------------

ALL_STATUSES = ("confirmed", "request", "new", "cancelled", "black", "inquiry")
STATUS = {
    "confirmed": BookingStatus.CONFIRMED,
    "new": BookingStatus.CONFIRMED,  # channel bookings often stay `new` forever
    "request": BookingStatus.PENDING,
    "inquiry": BookingStatus.INQUIRY,  # an enquiry, holds no inventory (unverified)
    "cancelled": BookingStatus.CANCELLED,
    "black": BookingStatus.BLOCKED,
}
CURRENCY_KEY = "propertyCurrency"  # added by this adapter: bookings carry no currency
# Added too: the property's country reads guest phone numbers written without country code.
COUNTRY_KEY = "propertyCountry"
DEVICE_NAME = "pms-cli"
GUEST_FIELDS = (
    "title", "firstName", "lastName", "email", "phone", "mobile", "company", "address", "city",
    "state", "postcode", "country", "country2", "lang",
)  # fmt: skip


def _header(headers: Mapping[str, str], names: Sequence[str]) -> float | None:
    lower = {k.lower(): v for k, v in headers.items()}
    return next((v for v in (number(lower.get(n)) for n in names) if v is not None), None)


def read_credits(headers: Mapping[str, str]) -> tuple[float, float] | None:
    remaining, resets_in = _header(headers, REMAINING_HEADERS), _header(headers, RESETS_IN_HEADERS)
    return None if remaining is None or resets_in is None else (remaining, max(0.0, resets_in))


def credit_retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """A 429 means the 5-minute credit window is spent: wait for its reset, not a backoff."""
    reading = read_credits(headers)
    return reading[1] if reading is not None else parse_retry_after(headers, now)


def extract(body: Any) -> PageBody:
    """``{success, type, count, pages: {nextPageExists}, data}``; page size is fixed at 100."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(body, dict) or body.get("success") is False or not isinstance(data, list):
        message = body.get("error") if isinstance(body, dict) else body
        raise ProviderError(
            f"Beds24 answered without data: {str(message)[:200]}",
            hint="Rerun later; if it persists, the API changed shape or rejects the parameters.",
            code="provider_garbage",
            provider="beds24",
        )
    pages = body.get("pages")
    more = pages.get("nextPageExists") if isinstance(pages, dict) else None
    return PageBody([r for r in data if isinstance(r, dict)], has_more=more is True)


def since_params(since: datetime) -> dict[str, str]:
    # The API reads the filter as UTC wall time: an offset from `--since` must be converted.
    return {"modifiedFrom": since.astimezone(UTC).strftime(FILTER_DATETIME)}


def _dicts(value: object) -> list[Raw]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def to_property(raw: Raw) -> Sequence[AnyRecord]:
    capacities = [integer(r.get("maxPeople")) for r in _dicts(raw.get("roomTypes"))]
    return [
        Property(
            external_id=raw["id"],
            raw=raw,
            name=text(raw.get("name")),
            address=text(raw.get("address")),
            city=text(raw.get("city")),
            country=country_code(raw.get("country")),
            latitude=number(raw.get("latitude")),
            longitude=number(raw.get("longitude")),
            # One booking takes one room type, so the largest room type is the guest limit.
            max_guests=max((c for c in capacities if c is not None), default=None),
            check_in_time=text(raw.get("checkInStart")),
            check_out_time=text(raw.get("checkOutEnd")),
            currency=currency_code(raw.get("currency")),
        )
    ]


def _is_charge(item: Raw) -> bool:
    kind = text(item.get("type"))
    if kind is not None:
        return kind.lower() == "charge"
    sub_type = integer(item.get("subType"))
    return sub_type is not None and sub_type < PAYMENT_SUBTYPES_FROM


def _line_total(item: Raw) -> Decimal | None:
    total = money(item.get("lineTotal"))
    if total is not None:
        return total
    amount = money(item.get("amount"))
    qty = money(item.get("qty"))
    return None if amount is None else amount * (qty if qty is not None else 1)


def total_price(raw: Raw) -> Decimal | None:
    """Canonical ``total_price``: what the guest pays in total, in the property's currency.

    The invoice's charges where the booking has any: direct bookings carry ``price`` 0 with
    the charges only in invoice items, and an Airbnb ``price`` can be the host's payout while
    the invoice holds what the guest paid (8 of 19 real bookings disagreed). Without invoice
    items (no ``bookings-financial`` scope) it is ``price``.
    """
    lines = [_line_total(i) for i in _dicts(raw.get("invoiceItems")) if _is_charge(i)]
    charges = [line for line in lines if line is not None]
    if charges:
        return sum(charges, Decimal(0))
    return money(raw.get("price"))


def split_name(first: str | None, last: str | None) -> tuple[str | None, str | None]:
    """``firstName`` holding the whole name with ``lastName`` empty (real payloads do this):
    the first word is the first name, the rest the last name (``"Maria de la Cruz"`` →
    ``"Maria"``, ``"de la Cruz"``)."""
    if first and not last and " " in first:
        given, _, family = first.partition(" ")
        return given, family.strip() or None
    return first, last


def _guest(fields: Raw, fallback: str, region: str | None = None) -> Guest | None:
    first, last = split_name(text(fields.get("firstName")), text(fields.get("lastName")))
    email, phone = (
        text(fields.get("email")),
        text(fields.get("phone")) or text(fields.get("mobile")),
    )
    name = " ".join(p for p in (first, last) if p) or None
    if not (name or email or phone):
        return None  # OTAs anonymise guests after the stay; no personal scope → empty too
    country = country_code(fields.get("country2")) or country_code(fields.get("country"))
    return Guest(
        external_id=guest_key(email, phone, fallback, region=country or region),
        raw=fields,
        name=name,
        first_name=first,
        last_name=last,
        email=email,
        phone=phone,
        language=text(fields.get("lang")),
        country=country,
    )


def to_booking(raw: Raw) -> Sequence[AnyRecord]:
    rid = str(raw["id"])
    status = STATUS.get(str(raw.get("status")), BookingStatus.INQUIRY)
    guests: dict[str, Guest] = {}
    if status is not BookingStatus.BLOCKED:  # `black` rows are closed dates, not stays
        # The lead guest lives in the booking's own fields; `guests[0]` (includeGuests) is
        # usually the same person, so it only fills gaps. Further entries are co-travellers.
        extra = _dicts(raw.get("guests"))
        first = extra[0] if extra else {}
        lead = {k: raw.get(k) if text(raw.get(k)) else first.get(k) for k in GUEST_FIELDS}
        lead = {k: v for k, v in lead.items() if v is not None} | {"bookingId": raw["id"]}
        sources = [(lead, f"guest:{first['id']}" if first.get("id") else f"booking:{rid}")]
        sources += [
            (g, f"guest:{g['id']}" if g.get("id") else f"booking:{rid}:{i}")
            for i, g in enumerate(extra[1:], start=1)
        ]
        region = country_code(raw.get(COUNTRY_KEY))
        for fields, fallback in sources:
            guest = _guest(fields, fallback, region)
            if guest is not None:
                guests.setdefault(guest.external_id, guest)
    main = next(iter(guests.values()), None)
    adults, children = integer(raw.get("numAdult")), integer(raw.get("numChild"))
    booking = Booking(
        external_id=rid,
        raw=raw,
        property_external_id=text(raw.get("propertyId")),
        guest_external_id=main.external_id if main else None,
        status=status,
        check_in=iso_date(raw.get("arrival")),
        check_out=iso_date(raw.get("departure")),
        adults=adults,
        children=children,
        guests=None if adults is None else adults + (children or 0),
        channel=text(raw.get("channel")) or text(raw.get("apiSource")) or text(raw.get("referer")),
        confirmation_code=text(raw.get("apiReference")) or text(raw.get("reference")),
        total_price=total_price(raw),
        currency=currency_code(raw.get(CURRENCY_KEY)),
        guest_name=main.name if main else None,
        guest_email=main.email if main else None,
        guest_phone=main.phone if main else None,
        created_at=utc_datetime(raw.get("bookingTime")),
        updated_at=utc_datetime(raw.get("modifiedTime")),
    )
    return [booking, *guests.values()]


def _token_rejected(response: httpx.Response) -> bool:
    if response.status_code in AUTH_FAILURE_STATUSES:
        return True
    return response.status_code == TOKEN_ERROR_STATUS and TOKEN_ERROR_WORD in response.text.lower()


class LongLifeTokenAuth(HeaderAuth):
    def is_auth_failure(self, response: httpx.Response) -> bool:
        return _token_rejected(response)


@dataclass
class Grant:
    """What mints access tokens: the refresh token, or (once) the invite code it comes from."""

    refresh_token: str | None
    invite_code: str | None
    on_rotated: Callable[[str, str], None] | None

    async def fetch(self, http: HttpClient) -> CachedToken:
        if self.refresh_token:
            path, headers = "authentication/token", {"refreshToken": self.refresh_token}
        elif self.invite_code:
            path, headers = "authentication/setup", {"code": self.invite_code}
            headers["deviceName"] = DEVICE_NAME
        else:
            raise _no_credentials()
        try:
            body = await http.request_json("GET", path, headers=headers, authenticate=False)
        except ProviderError as exc:
            if exc.status not in (400, 401):
                raise
            raise AuthError(
                "Beds24 rejected the " + ("refresh token" if self.refresh_token else "invite code"),
                hint=Beds24.auth_hint,
                provider="beds24",
                status=exc.status,
                body_excerpt=exc.body_excerpt,
            ) from None
        self.invite_code = None  # single use, whatever happens next
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise AuthError(
                "Beds24 answered without a token", hint=Beds24.auth_hint, provider="beds24"
            )
        rotated = text(body.get("refreshToken"))
        if rotated and rotated != self.refresh_token:
            register_secret(rotated)
            self.refresh_token = rotated
            if self.on_rotated is not None:
                self.on_rotated("refresh_token", rotated)
        expires_in = number(body.get("expiresIn"))
        return CachedToken(token, http.clock.time() + expires_in if expires_in else None)


@dataclass
class RefreshTokenAuth(TokenAuth):
    grant: Grant | None = None

    def is_auth_failure(self, response: httpx.Response) -> bool:
        return _token_rejected(response)


def _no_credentials() -> ConfigError:
    return ConfigError(
        "no Beds24 credentials given",
        hint="Pass --invite-code (Beds24 → Settings → Marketplace → API → generate invite code), "
        "or set BEDS24_REFRESH_TOKEN or BEDS24_TOKEN.",
        code="credentials_missing",
    )


class Beds24(Provider):
    name = "beds24"
    title = "Beds24"
    id_pattern = r"\d{1,20}"  # ids in API paths (checked for webhook ids)
    default_base_url = "https://api.beds24.com/v2"
    auth_kind = "invite code → refresh token → 24 h token (cached); or long-life read-only token"
    credential_fields = (
        CredentialField(
            "invite_code", "Invite code", required=False, help="single use; exchanged on connect"
        ),
        CredentialField("refresh_token", "Refresh token", "BEDS24_REFRESH_TOKEN", required=False),
        CredentialField("token", "Long-life token (read-only)", "BEDS24_TOKEN", required=False),
    )
    rate_limits = ()  # credits, not requests: paced from the response headers below
    rate_limit_note = "100 credits / 5 min per account (paced from response headers)"
    setup_fields = ("invite_code",)
    # mypy reads base.py's ClassVar[Callable] as a bound method; the runtime lookup is right.
    credit_headers = staticmethod(read_credits)  # type: ignore[assignment]
    retry_after = staticmethod(credit_retry_after)  # type: ignore[assignment]
    keys_help = "Settings → Marketplace → API (beds24.com/control3.php?pagetype=apiv2)"
    webhooks = "booking webhook per property, verified by a per-connection token in a custom header"
    auth_hint = (
        "Generate a new invite code in Beds24 → Settings → Marketplace → API (scopes read:bookings,"
        " read:bookings-personal, read:bookings-financial, read:properties) and run"
        " `pms connect beds24 --invite-code CODE`"
        " (a refresh token lapses after 30 days unused; invite codes work once)."
    )
    resources = (
        Resource(
            name="properties",
            kind="property",
            path="properties",
            paginator=PageNumberPaginator(),
            extract=extract,
            mapper=to_property,
            required=("id", "name"),
            expected=("currency", "city"),
            params={"includeAllRooms": "true"},
        ),
        Resource(
            name="bookings",
            kind="booking",
            path="bookings",
            paginator=PageNumberPaginator(),
            extract=extract,
            mapper=to_booking,
            required=("id", "propertyId", "arrival", "status"),
            expected=("departure", "price", "numAdult", "modifiedTime"),
            # Cancelled bookings are hidden unless asked for; arrays go as repeated keys.
            # Invoice items come with the same pages (no request per booking): total_price.
            params={
                "status": ALL_STATUSES,
                "arrivalFrom": HISTORY_FROM,
                "includeGuests": "true",
                "includeInvoiceItems": "true",
            },
            since=since_params,
            derived_kinds=("guest",),
        ),
    )

    def __init__(self, ctx: ProviderContext, http: HttpClient) -> None:
        super().__init__(ctx, http)
        self._currencies: dict[str, str] | None = None
        self.property_countries: dict[str, str] = {}

    @classmethod
    def build_auth(cls, ctx: ProviderContext) -> Auth:
        secrets = {k: v.get_secret_value() for k, v in ctx.credentials.items() if v}
        invite, refresh = secrets.get("invite_code"), secrets.get("refresh_token")
        if not (invite or refresh) and secrets.get("token"):
            return LongLifeTokenAuth({"token": secrets["token"]})
        # A fresh invite code wins over an older refresh token given alongside it.
        grant = Grant(None if invite else refresh, invite, ctx.on_secret_rotated)
        minted_by = (invite or refresh or "").encode()
        return RefreshTokenAuth(
            fetch=grant.fetch,
            cache=ctx.token_cache,
            # Keyed by the minting credential too, so a changed env token never reuses a token
            # of another account.
            cache_key=f"beds24:{ctx.connection_id}:{hashlib.sha256(minted_by).hexdigest()[:12]}",
            header="token",
            scheme="",
            grant=grant,
        )

    async def setup(self) -> dict[str, SecretStr]:
        kept = {k: v for k, v in self.ctx.credentials.items() if v.get_secret_value()}
        if not kept:
            raise _no_credentials()
        auth = self.http.auth
        if kept.pop("invite_code", None) and isinstance(auth, RefreshTokenAuth) and auth.grant:
            await auth.renew(self.http)  # the exchange: check() then uses its token at once
            if auth.grant.refresh_token:
                kept["refresh_token"] = SecretStr(auth.grant.refresh_token)
        return kept

    async def check(self) -> AccountInfo:
        # /authentication/details answers 200 with validToken=false for a bad token.
        body = await self.http.get_json("authentication/details")
        if not _valid(body) and await self.http.auth.renew(self.http):
            body = await self.http.get_json("authentication/details")
        if not _valid(body):
            raise AuthError("Beds24 says the token is not valid", hint=self.auth_hint)
        owner = str(body["token"].get("ownerId") or "")
        return AccountInfo(account_ref=owner, display_name=f"Beds24 account {owner}".strip())

    async def pages(self, resource: Resource, since: datetime | None) -> AsyncIterator[list[Raw]]:
        if resource.kind == "property":
            self._currencies = {}
        elif self._currencies is None:
            async for _ in self.pages(self.resource("properties"), None):
                pass  # only to learn currencies: one page for almost every account
        currencies = self._currencies if self._currencies is not None else {}
        async for page in super().pages(resource, since):
            for item in page:
                if resource.kind == "property":
                    if currency := currency_code(item.get("currency")):
                        currencies[str(item.get("id"))] = currency
                    if country := country_code(item.get("country")):
                        self.property_countries[str(item.get("id"))] = country
                else:
                    self._add_property_facts(item)
            yield page

    def _add_property_facts(self, booking: Raw) -> None:
        """What the booking's property says and the booking does not: currency, country."""
        prop = str(booking.get("propertyId"))
        if currency := (self._currencies or {}).get(prop):
            booking.setdefault(CURRENCY_KEY, currency)
        if country := self.property_countries.get(prop):
            booking.setdefault(COUNTRY_KEY, country)

    async def fetch_one(self, resource: Resource, external_id: str) -> Raw | None:
        """``GET bookings?id=X`` with every status (the list's params), or ``properties?id=X``."""
        params = {**resource.params, "id": external_id}
        body = extract(await self.http.get_json(resource.path, params))
        record = next((r for r in body.records if str(r.get("id")) == str(external_id)), None)
        if record is None:
            return None
        if resource.kind == "booking":
            if self._currencies is None:
                async for _ in self.pages(self.resource("properties"), None):
                    pass  # learn currencies once per adapter, as a bookings-only sync does
            self._add_property_facts(record)
        return record


def _valid(body: Any) -> bool:
    return (
        isinstance(body, dict)
        and body.get("validToken") is True
        and isinstance(body.get("token"), dict)
    )


PROVIDER = Beds24
