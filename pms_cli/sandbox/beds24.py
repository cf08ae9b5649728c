"""Beds24 API V2 emulator (see ``providers/beds24.md``, section 9 "Emulator checklist").

Mount the app at ``/beds24``; clients then use ``http://127.0.0.1:PORT/beds24/v2`` as their base
URL. Emulated: invite code → refresh token → 24 h token (``/authentication/*``), the per-account
credit budget with the wire header names and 429 when spent, the ``{success, type, count, pages,
data}`` envelope with a fixed 100 items per page, ``GET /properties`` (room types nested) and
``GET /bookings`` with its quirks: cancelled bookings hidden unless asked for, only upcoming stays
without a date filter, array parameters as repeated keys (a comma-joined value is a 400).

Sandbox choices where the sheet is silent (marked unverified there): the cost of each endpoint
(``Beds24SandboxConfig.costs``), a fixed 5-minute credit window starting at the first request,
failed requests cost the same as successful ones, ``modifiedFrom`` alone does not lift the
"upcoming only" default, and 401 + error envelope for a bad token on data endpoints.
"""

from __future__ import annotations

import json
import math
import secrets
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pms_cli.sandbox.common import SANDBOX_EPOCH, Clock, FakeData, RequestStats, SystemClock
from pms_cli.sandbox.server import MountedSandbox, SandboxOptions
from pms_cli.sandbox.webhook_sender import WebhookSender, dumps

__all__ = [
    "BOOKING_STATUSES",
    "DEFAULT_STATUSES",
    "SANDBOX_INVITE_CODE",
    "SANDBOX_LONG_LIFE_TOKEN",
    "SANDBOX_OWNER_ID",
    "SANDBOX_REFRESH_TOKEN",
    "Beds24Sandbox",
    "Beds24SandboxConfig",
    "build_sandbox",
    "create_app",
    "iso_utc",
]

Json = dict[str, Any]

SANDBOX_OWNER_ID = 54321
# Published, sandbox-only credentials, shaped like real ones (152-172 characters).
SANDBOX_INVITE_CODE = "sandbox-invite-" + "a1b2c3d4" * 18
SANDBOX_REFRESH_TOKEN = "sandbox-refresh-" + "e5f6a7b8" * 18
SANDBOX_LONG_LIFE_TOKEN = "sandbox-longlife-" + "c9d0e1f2" * 18
TOKEN_TTL_SECONDS = 86_400
FULL_SCOPES = ("read:bookings", "read:bookings-personal", "read:properties", "read:inventory")

BOOKING_STATUSES: dict[str, float] = {
    "new": 40, "confirmed": 28, "request": 3, "cancelled": 14, "black": 8, "inquiry": 7,
}  # fmt: skip
DEFAULT_STATUSES = frozenset({"confirmed", "request", "new", "black", "inquiry"})
# channel → (apiSource, apiSourceId); the ids are illustrative (unverified in the sheet).
CHANNELS: dict[str, tuple[str, int]] = {
    "airbnb": ("Airbnb.com", 46), "booking": ("Booking.com", 19), "expedia": ("Expedia", 14),
    "vrbo": ("Vrbo", 91), "direct": ("Direct", 0), "bookingpage": ("Booking Page", 1),
}  # fmt: skip
_CHANNEL_WEIGHTS: dict[str, float] = {
    "airbnb": 38, "booking": 30, "direct": 10, "bookingpage": 8, "vrbo": 8, "expedia": 6,
}  # fmt: skip
_NIGHTS: dict[int, float] = {1: 8, 2: 20, 3: 20, 4: 14, 5: 10, 7: 14, 10: 5, 14: 4}
_PROPERTY_TYPES = ("apartment", "house", "villa", "cottage", "guesthouse", "condo", "chalet")
_ROOM_TYPES = ("apartment", "studio", "double", "suite", "holidayHome", "villa")
_DATE_FILTERS = ("arrival", "arrivalFrom", "arrivalTo", "departure", "departureFrom",
                 "departureTo", "id", "masterId", "apiReference")  # fmt: skip
_DAY = 86_400.0
#: Credits per request by endpoint: sandbox guesses except bookings (≈1.5 per page, observed).
DEFAULT_COSTS = {"setup": 1.0, "token": 1.0, "details": 0.0, "properties": 1.0, "bookings": 1.5}


def _invoice(fake: FakeData, booking: Json, prop: Json, at: float) -> list[Json]:
    """Invoice items as real accounts show them; ``price`` often disagrees (8 of 19 real
    bookings): direct bookings keep ``price`` 0 with the charges only here, and an Airbnb
    ``price`` can be the host payout while the invoice holds the guest's gross."""
    gross = booking["price"]
    cleaning = round(gross * 0.12, 2) if fake.chance(0.5) else 0.0
    nights = max(
        1, (date.fromisoformat(booking["departure"]) - date.fromisoformat(booking["arrival"])).days
    )
    lines = [("Room", 1, nights, round((gross - cleaning) / nights, 2))]
    if cleaning:
        lines.append(("Cleaning fee", 7, 1, cleaning))
    items: list[Json] = []
    for n, (description, sub_type, qty, amount) in enumerate(lines, start=2):
        items.append(
            {"id": booking["id"] * 10 + n, "bookingId": booking["id"], "invoiceId": None,
             "invoiceeId": None, "type": "charge", "subType": sub_type,
             "description": description, "status": "", "qty": qty, "amount": amount,
             "lineTotal": round(qty * amount, 2), "vatRate": 0, "createdBy": 0,
             "createTime": iso_utc(at)}
        )  # fmt: skip
    charged = round(sum(i["lineTotal"] for i in items), 2)
    if fake.chance(0.4):
        items.append(
            {"id": booking["id"] * 10 + 9, "bookingId": booking["id"], "invoiceId": None,
             "invoiceeId": None, "type": "payment", "subType": 200, "description": "Payment",
             "status": "", "qty": 1, "amount": charged, "lineTotal": charged, "vatRate": 0,
             "createdBy": 0, "createTime": iso_utc(at)}
        )  # fmt: skip
    if booking["channel"] in ("direct", "bookingpage") and fake.chance(0.6):
        booking["price"] = 0.0
    elif booking["channel"] == "airbnb" and fake.chance(0.6):
        booking["price"] = round(charged * 0.97, 2)  # the payout, after Airbnb's host fee
    else:
        booking["price"] = charged
    return items


def iso_utc(ts: float) -> str:
    """Beds24's response date-time format, e.g. ``2022-09-05T09:00:09Z``."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Beds24SandboxConfig:
    """Knobs of the emulator; defaults are the documented production values."""

    seed: int = 42
    properties: int = 10
    bookings: int = 200
    owner_id: int = SANDBOX_OWNER_ID
    invite_codes: tuple[str, ...] = (SANDBOX_INVITE_CODE,)
    refresh_token: str = SANDBOX_REFRESH_TOKEN
    long_life_token: str = SANDBOX_LONG_LIFE_TOKEN
    token_ttl: int = TOKEN_TTL_SECONDS
    #: Credits per window; None disables the budget (and its headers).
    credit_limit: float | None = 100.0
    credit_window: float = 300.0
    #: Credits per request by endpoint (sandbox guesses; the sheet only measures bookings).
    costs: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_COSTS))
    page_size: int = 100
    #: Live refresh tokens are not rotated (observed); True makes /authentication/token return
    #: a new refreshToken and retire the old one, to exercise clients' write-back path.
    rotate_refresh_tokens: bool = False
    clock: Clock = field(default_factory=SystemClock)


@dataclass
class _Token:
    expires_at: float | None
    created: float
    scopes: tuple[str, ...]
    device: str


class _ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message

    def body(self) -> Json:
        return {"success": False, "type": "error", "code": self.status, "error": self.message}


Endpoint = Callable[[Request], Awaitable[Response]]


class Beds24Sandbox:
    """In-memory Beds24 API V2 for one account: tokens, credits, properties and bookings."""

    def __init__(self, config: Beds24SandboxConfig | None = None) -> None:
        self.config = config or Beds24SandboxConfig()
        self.clock = self.config.clock
        self.stats = RequestStats()
        fake = FakeData(self.config.seed)
        self.properties: dict[int, Json] = {}
        prop_id, room_id = 123_456, 234_567
        for index in range(self.config.properties):
            self.properties[prop_id] = self._make_property(fake, prop_id, room_id, index)
            room_id += 10
            prop_id += fake.rng.randint(1, 300)
        self.bookings: dict[int, Json] = {}
        self._generate_bookings(fake)
        self._fake = FakeData(self.config.seed + 1)  # mutations never disturb generated data
        self.invite_codes = set(self.config.invite_codes)
        self.refresh_tokens: dict[str, _Token] = {
            self.config.refresh_token: _Token(None, SANDBOX_EPOCH.timestamp(), FULL_SCOPES, "seed")
        }
        self.tokens: dict[str, _Token] = {
            self.config.long_life_token: _Token(
                None, SANDBOX_EPOCH.timestamp(), ("read:bookings", "read:properties"), "long-life"
            )
        }
        self._window_start: float | None = None
        self._spent = 0.0
        self._lock = threading.Lock()
        self._app: Starlette | None = None
        self.sender = WebhookSender()

    # ------------------------------------------------------------------ data generation

    def _make_property(self, fake: FakeData, prop_id: int, room_id: int, index: int) -> Json:
        city = fake.city()
        lat, lng = fake.near(city)
        contact = fake.person()
        rooms = []
        for n in range(fake.choice((1, 1, 1, 2, 3))):
            people = fake.rng.randint(2, 8)
            rooms.append(
                {
                    "id": room_id + n,
                    "propertyId": prop_id,
                    "name": fake.choice(("Studio", "Apartment", "Suite", "Loft", "Garden room")),
                    "roomType": fake.choice(_ROOM_TYPES),
                    # A second/third room type may be switched off (qty 0): only listed with
                    # includeAllRooms=true, as the spec hints the default output omits some.
                    "qty": 0 if n and fake.chance(0.3) else fake.rng.randint(1, 3),
                    "minPrice": round(fake.rng.uniform(50, 300)),
                    "maxPeople": people,
                    "maxAdult": people,
                    "maxChildren": fake.rng.randint(0, 2),
                    "minStay": fake.choice((1, 2, 3)),
                    "maxStay": 365,
                    "rackRate": round(fake.rng.uniform(80, 400)),
                    "cleaningFee": round(fake.rng.uniform(20, 90)),
                    "units": [{"id": u, "name": f"Unit {u}"} for u in range(1, 3)],
                }
            )
        return {
            "id": prop_id,
            "name": fake.listing_name(city),
            "propertyType": fake.choice(_PROPERTY_TYPES),
            "currency": city.currency,
            "address": fake.street_address(city),
            "city": city.name,
            "state": city.state,
            "country": city.country_code,
            "postcode": fake.postcode(city),
            "latitude": lat,
            "longitude": lng,
            "phone": fake.phone(city),
            "mobile": "",
            "fax": "",
            "email": fake.email(contact),
            "web": "",
            "contactFirstName": contact.first,
            "contactLastName": contact.last,
            "checkInStart": fake.choice(("14:00", "15:00", "16:00")),
            "checkInEnd": fake.choice(("20:00", "22:00", "23:45")),
            "checkOutEnd": fake.choice(("10:00", "10:30", "11:00")),
            "offerType": "perRoom",
            "account": {"ownerId": self.config.owner_id},
            "roomTypes": rooms,
        }

    def _generate_bookings(self, fake: FakeData) -> None:
        if not self.properties:
            return
        epoch = SANDBOX_EPOCH.timestamp()
        booked = sorted(
            epoch - fake.rng.uniform(3600, 400 * _DAY) for _ in range(self.config.bookings)
        )
        booking_id = 71_000_000
        for booked_at in booked:
            booking_id += fake.rng.randint(1, 50)
            status = fake.weighted(BOOKING_STATUSES)
            booking = self._make_booking(fake, booking_id, status, booked_at)
            modified = booked_at + fake.rng.uniform(0, min(30 * _DAY, epoch - booked_at - 1))
            booking["modifiedTime"] = iso_utc(modified)
            if status == "cancelled" and fake.chance(0.8):  # ~20 % lack cancelTime
                booking["cancelTime"] = booking["modifiedTime"]
            self.bookings[booking_id] = booking

    def _make_booking(self, fake: FakeData, booking_id: int, status: str, at: float) -> Json:
        prop = self.properties[fake.choice(sorted(self.properties))]
        room = fake.choice(prop["roomTypes"])
        black = status == "black"
        channel = "direct" if black else fake.weighted(_CHANNEL_WEIGHTS)
        source, source_id = CHANNELS[channel]
        arrival = datetime.fromtimestamp(at, UTC).date() + timedelta(fake.rng.randint(0, 200))
        nights = fake.weighted(_NIGHTS)
        adults = 0 if black else fake.rng.randint(1, room["maxPeople"])
        price = 0.0 if black else round(room["minPrice"] * nights * fake.rng.uniform(1, 1.4), 2)
        person, home = fake.person(), fake.city()
        # OTAs anonymise guests after the stay: names and emails are often empty strings.
        named = not black and fake.chance(0.75)
        email = fake.email(person) if named and fake.chance(0.5) else ""
        phone = fake.phone(home) if named and fake.chance(0.5) else ""
        if phone and fake.chance(0.3):  # typed in national format, as guests do
            phone = "0" + phone[len(home.phone_prefix) :]
        # Real bookings often carry the whole name in firstName with lastName empty.
        whole_name = named and fake.chance(0.15)
        guest = {
            "title": "",
            "firstName": (person.full if whole_name else person.first) if named else "",
            "lastName": person.last if named and not whole_name else "",
            "email": email,
            "phone": "",
            "mobile": phone,
            "address": "",
            "city": home.name if named else "",
            "state": "",
            "postcode": "",
            "country": home.country if named else "",
            "country2": home.country_code if named else "",
        }
        reference = {"airbnb": "HM" + fake.code(8), "booking": fake.digits(10)}.get(channel, "")
        booking: Json = {
            "id": booking_id,
            "masterId": None,
            "propertyId": prop["id"],
            "roomId": room["id"],
            "unitId": 1,
            "roomQty": 1,
            "status": status,
            "subStatus": "none",
            "statusCode": 0,
            "arrival": arrival.isoformat(),
            "departure": (arrival + timedelta(nights)).isoformat(),
            "numAdult": adults,
            "numChild": fake.rng.randint(0, 2) if not black and fake.chance(0.2) else 0,
            **guest,
            "lang": fake.choice(("en", "de", "fr", "es", "")) if named else "",
            "arrivalTime": "",
            "comments": "",
            "notes": "Owner stay" if black else "",
            "message": "",
            "custom1": "",
            "flagColor": "",
            "flagText": "",
            "price": price,
            "deposit": 0,
            "tax": 0,
            "commission": round(price * 0.15, 2) if channel in ("airbnb", "booking") else 0,
            "rateDescription": "" if black else "Standard rate",
            "referer": source,
            "channel": channel,
            "apiSource": source,
            "apiSourceId": source_id,
            "apiReference": reference,
            "reference": "",
            "offerId": 1,
            "bookingTime": iso_utc(at),
            "modifiedTime": iso_utc(at),
            "cancelTime": None,
            "allowChannelUpdate": "all",
            "allowAutoAction": "enable",
            "allowReview": "default",
            "allowCancellation": {"type": "propertyDefault", "daysBeforeArrivalValue": None},
            "guests": [],
            "invoiceItems": [],
            "infoItems": [],
        }
        if named:
            booking["guests"] = [
                {"id": booking_id * 10 + 1, "firstName": person.first, "lastName": person.last,
                 "email": email, "phone": "", "mobile": phone, "country2": home.country_code}
            ]  # fmt: skip
        if price:
            booking["invoiceItems"] = _invoice(fake, booking, prop, at)
        return booking

    # ------------------------------------------------------------------ mutations (for tests)

    def modify_bookings(self, n: int) -> list[int]:
        """Change price, status (request/new → confirmed) and guest name of ``n`` bookings."""
        ids = sorted(self._fake.rng.sample(sorted(self.bookings), min(n, len(self.bookings))))
        for booking_id in ids:
            booking = self.bookings[booking_id]
            if booking["status"] in ("request", "new"):
                booking["status"] = "confirmed"
            factor = self._fake.rng.uniform(0.9, 1.15)
            booking["price"] = round(booking["price"] * factor, 2)
            for item in booking["invoiceItems"]:
                if item["type"] == "charge":  # the invoice follows the price change
                    item["amount"] = round(item["amount"] * factor, 2)
                    item["lineTotal"] = round(item["amount"] * item["qty"], 2)
            if booking["status"] != "black":
                person = self._fake.person()
                booking["firstName"], booking["lastName"] = person.first, person.last
            booking["modifiedTime"] = iso_utc(self.clock.now())
            self._emit(booking)
        return ids

    def add_bookings(self, n: int, status: str = "new") -> list[int]:
        """Book ``n`` new bookings now; return their ids."""
        if not self.properties:
            raise ValueError("no property to book")
        next_id = max(self.bookings, default=71_000_000)
        ids = []
        for _ in range(n):
            next_id += self._fake.rng.randint(1, 50)
            self.bookings[next_id] = self._make_booking(
                self._fake, next_id, status, self.clock.now()
            )
            self._emit(self.bookings[next_id])
            ids.append(next_id)
        return ids

    def cancel_booking(self, booking_id: int) -> None:
        """Cancel a booking as the guest would (KeyError for unknown ids)."""
        booking = self.bookings[booking_id]
        now = iso_utc(self.clock.now())
        booking.update(status="cancelled", subStatus="cancelledByGuest", cancelTime=now)
        booking["modifiedTime"] = now
        self._emit(booking)

    def set_booking_webhook(
        self, prop_id: int, url: str, custom_header: str = "", version: str = "twoWithPersonalData"
    ) -> None:
        """Configure a property's Booking Webhook, as Settings → Properties → Access would."""
        self.properties[prop_id]["webhooks"] = {
            "url": url,
            "version": version,
            "customHeader": custom_header,
            "additionalData": "none",
        }

    def _emit(self, booking: Json) -> None:
        """Queue the version-2 payload to the booking's property webhook, if one is set."""
        hook = self.properties.get(booking["propertyId"], {}).get("webhooks")
        if not hook or not hook.get("url"):
            return
        personal = hook.get("version") == "twoWithPersonalData"
        hidden = {"guests", "invoiceItems", "infoItems"}
        if not personal:
            hidden |= {"firstName", "lastName", "email", "phone", "mobile", "address"}
        payload = {
            "timeStamp": iso_utc(self.clock.now()),
            "booking": {k: v for k, v in booking.items() if k not in hidden},
            "infoItems": [],
            "invoiceItems": [],
            "messages": [],
            "retries": 0,
        }
        headers = {}
        for line in str(hook.get("customHeader") or "").splitlines():
            name, sep, value = line.partition(":")
            if sep and name.strip():
                headers[name.strip()] = value.strip()
        self.sender.queue(hook["url"], dumps(payload), headers)

    def delete_property(self, prop_id: int) -> None:
        del self.properties[prop_id]

    def new_invite_code(self) -> str:
        """Generate another single-use invite code, as the account owner would."""
        code = "sandbox-invite-" + secrets.token_hex(72)
        self.invite_codes.add(code)
        return code

    def expire_access_tokens(self) -> None:
        """Make every 24 h token expire now (refresh and long-life tokens keep working)."""
        now = self.clock.now()
        for token in self.tokens.values():
            if token.expires_at is not None:
                token.expires_at = now

    def revoke_all_tokens(self) -> None:
        """Invalidate every refresh, access and long-life token (the owner deleted the grant)."""
        self.refresh_tokens.clear()
        self.tokens.clear()

    def spend_credits(self, amount: float) -> None:
        """Use credits as another integration on the same account would (the quota is shared)."""
        with self._lock:
            if self._remaining(self.clock.now()) is not None:
                self._spent += amount

    def credits_remaining(self) -> float | None:
        with self._lock:
            return self._remaining(self.clock.now())

    # ------------------------------------------------------------------ ASGI app

    @property
    def app(self) -> Starlette:
        """The Starlette app (routes under ``/v2``); ``app.state.sandbox`` is this object."""
        if self._app is None:
            routes = [
                self._route("GET", "/v2/authentication/setup", "setup", self._setup),
                self._route("GET", "/v2/authentication/token", "token", self._token),
                self._route("DELETE", "/v2/authentication/token", "token", self._revoke),
                self._route("GET", "/v2/authentication/details", "details", self._details),
                self._route("GET", "/v2/properties", "properties", self._properties, auth=True),
                self._route(
                    "POST", "/v2/properties", "properties", self._update_properties, auth=True
                ),
                self._route("GET", "/v2/bookings", "bookings", self._bookings, auth=True),
            ]
            self._app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
            self._app.state.sandbox = self
        return self._app

    def _route(
        self, method: str, path: str, cost_key: str, handler: Endpoint, *, auth: bool = False
    ) -> Route:
        key = f"{method} {path}"

        async def endpoint(request: Request) -> Response:
            self.stats.record(key)
            headers, allowed = self._charge(self.config.costs.get(cost_key, 1.0))
            if not allowed:
                self.stats.rate_limited += 1
                error = _ApiError(429, "Credit limit exceeded, try again after the reset")
                return JSONResponse(error.body(), status_code=429, headers=headers)
            try:
                if auth:
                    self._authenticate(request)
                response = await handler(request)
            except _ApiError as error:
                if error.status == 401:
                    self.stats.auth_failures += 1
                response = JSONResponse(error.body(), status_code=error.status)
            response.headers.update(headers)
            return response

        return Route(path, endpoint, methods=[method])

    def _remaining(self, now: float) -> float | None:
        limit = self.config.credit_limit
        if limit is None:
            return None
        if self._window_start is None or now >= self._window_start + self.config.credit_window:
            self._window_start, self._spent = now, 0.0
        return limit - self._spent

    def _charge(self, cost: float) -> tuple[dict[str, str], bool]:
        """Spend ``cost`` credits if the window has them; the credit headers and whether it did."""
        with self._lock:
            now = self.clock.now()
            remaining = self._remaining(now)
            if remaining is None or self._window_start is None:
                return {}, True
            allowed = remaining >= cost
            spent = cost if allowed else 0.0
            self._spent += spent
            resets_in = math.ceil(self._window_start + self.config.credit_window - now)
            return {
                "x-five-min-limit-remaining": _num(remaining - spent),
                "x-five-min-limit-resets-in": str(max(0, resets_in)),
                "x-request-cost": _num(spent),
            }, allowed

    def _authenticate(self, request: Request) -> None:
        value = request.headers.get("token")
        token = self.tokens.get(value or "")
        if not value:
            raise _ApiError(401, "Token missing")
        if token is None:
            raise _ApiError(401, "Token not valid")
        if token.expires_at is not None and self.clock.now() >= token.expires_at:
            raise _ApiError(401, "Token expired")

    # ------------------------------------------------------------------ handlers

    def _issue(self, grant: _Token) -> tuple[str, int]:
        value = secrets.token_urlsafe(120)  # 160 characters
        now = self.clock.now()
        self.tokens[value] = _Token(now + self.config.token_ttl, now, grant.scopes, grant.device)
        self.stats.tokens_issued += 1
        return value, self.config.token_ttl

    async def _setup(self, request: Request) -> Response:
        code = request.headers.get("code") or ""
        if code not in self.invite_codes:
            raise _ApiError(400, "Invalid code: it does not exist, expired or was already used")
        self.invite_codes.discard(code)  # single use
        refresh = secrets.token_urlsafe(120)
        device = request.headers.get("deviceName") or ""
        grant = _Token(None, self.clock.now(), FULL_SCOPES, device)
        self.refresh_tokens[refresh] = grant
        token, ttl = self._issue(grant)
        return JSONResponse({"token": token, "expiresIn": ttl, "refreshToken": refresh})

    async def _token(self, request: Request) -> Response:
        grant = self.refresh_tokens.get(request.headers.get("refreshToken") or "")
        if grant is None:
            raise _ApiError(400, "Invalid refresh token")
        token, ttl = self._issue(grant)
        if not self.config.rotate_refresh_tokens:
            return JSONResponse({"token": token, "expiresIn": ttl})
        refresh = secrets.token_urlsafe(120)
        self.refresh_tokens[refresh] = self.refresh_tokens.pop(request.headers["refreshToken"])
        return JSONResponse({"token": token, "expiresIn": ttl, "refreshToken": refresh})

    async def _revoke(self, request: Request) -> Response:
        if self.refresh_tokens.pop(request.headers.get("refreshToken") or "", None) is None:
            raise _ApiError(400, "Invalid refresh token")
        return Response(status_code=200)

    async def _details(self, request: Request) -> Response:
        # Always 200: an invalid or expired token is reported as validToken=false.
        token = self.tokens.get(request.headers.get("token") or "")
        now = self.clock.now()
        valid = token is not None and (token.expires_at is None or now < token.expires_at)
        body: Json = {
            "validToken": valid,
            "diagnostics": {"requestIp": request.client.host if request.client else None},
        }
        if valid and token is not None:
            body["token"] = {
                "ownerId": self.config.owner_id,
                "expiresIn": None if token.expires_at is None else int(token.expires_at - now),
                "created": iso_utc(token.created),
                "scopes": list(token.scopes),
                "deviceName": token.device,
                "linkedProperties": False,
                "onlyPropertyId": None,
                "whiteListOnly": False,
                "whiteList": [],
            }
        return JSONResponse(body)

    async def _properties(self, request: Request) -> Response:
        ids = _ints(request, "id")
        all_rooms = _flag(request, "includeAllRooms")
        unit_details = _flag(request, "includeUnitDetails")
        items = []
        for prop in sorted(self.properties.values(), key=lambda p: p["id"]):
            if ids and prop["id"] not in ids:
                continue
            rooms = [r for r in prop["roomTypes"] if all_rooms or r["qty"] > 0]
            if not unit_details:
                rooms = [{**r, "units": [{"id": u["id"], "name": u["name"]}
                                         for u in r["units"]]} for r in rooms]  # fmt: skip
            items.append({**prop, "roomTypes": rooms})
        return JSONResponse(self._page(request, items, "property", empty_link=None))

    async def _update_properties(self, request: Request) -> Response:
        """``POST /properties``: only the ``webhooks`` object is emulated."""
        try:
            items = json.loads(await request.body())
        except ValueError as error:
            raise _ApiError(400, "Body must be JSON") from error
        if not isinstance(items, list):
            raise _ApiError(400, "Body must be an array of properties")
        results = []
        for item in items:
            prop_id = item.get("id") if isinstance(item, dict) else None
            hook = item.get("webhooks") if isinstance(item, dict) else None
            if prop_id not in self.properties or not isinstance(hook, dict):
                results.append({"success": False, "errors": [{"message": "Unknown property"}]})
                continue
            self.set_booking_webhook(
                prop_id,
                str(hook.get("url") or ""),
                str(hook.get("customHeader") or ""),
                str(hook.get("version") or "twoWithPersonalData"),
            )
            results.append({"success": True, "modified": {"id": prop_id}})
        return JSONResponse(results, status_code=201)

    async def _bookings(self, request: Request) -> Response:
        statuses = set(_strs(request, "status")) or set(DEFAULT_STATUSES)
        unknown = statuses - set(BOOKING_STATUSES)
        if unknown:
            raise _ApiError(400, f"Invalid value for status: {sorted(unknown)[0]}")
        equals = {name: _ints(request, name) for name in ("id", "propertyId", "roomId", "masterId")}
        references = set(_strs(request, "apiReference"))
        dates = {name: _date(request, name) for name in _DATE_FILTERS[:6]}
        times = {
            name: _datetime(request, name)
            for name in ("modifiedFrom", "modifiedTo", "bookingTimeFrom", "bookingTimeTo")
        }
        upcoming_only = not any(request.query_params.get(n) for n in _DATE_FILTERS)
        today = datetime.fromtimestamp(self.clock.now(), UTC).date().isoformat()

        def keep(b: Json) -> bool:
            checks = [
                b["status"] in statuses,
                not upcoming_only or b["departure"] >= today,
                not references or b["apiReference"] in references,
                all(not want or b[name] in want for name, want in equals.items()),
                _within(b["arrival"], dates["arrival"], dates["arrival"]),
                _within(b["arrival"], dates["arrivalFrom"], dates["arrivalTo"]),
                _within(b["departure"], dates["departure"], dates["departure"]),
                _within(b["departure"], dates["departureFrom"], dates["departureTo"]),
                _within(b["modifiedTime"], times["modifiedFrom"], times["modifiedTo"]),
                _within(b["bookingTime"], times["bookingTimeFrom"], times["bookingTimeTo"]),
            ]
            return all(checks)

        drop = {
            key
            for key, flag in (
                ("guests", "includeGuests"),
                ("invoiceItems", "includeInvoiceItems"),
                ("infoItems", "includeInfoItems"),
            )
            if not _flag(request, flag)
        }
        items = [
            {k: v for k, v in b.items() if k not in drop}
            for _, b in sorted(self.bookings.items())
            if keep(b)
        ]
        return JSONResponse(self._page(request, items, "booking", empty_link=""))

    def _page(self, request: Request, items: list[Json], kind: str, empty_link: Any) -> Json:
        raw_page = request.query_params.get("page") or "1"
        if not raw_page.isdigit() or int(raw_page) < 1:
            raise _ApiError(400, "page must be a positive integer")
        page, size = int(raw_page), self.config.page_size
        data = items[(page - 1) * size : page * size]
        more = page * size < len(items)
        link = str(request.url.include_query_params(page=page + 1)) if more else empty_link
        return {
            "success": True,
            "type": kind,
            "count": len(data),
            "pages": {"nextPageExists": more, "nextPageLink": link},
            "data": data,
        }


def _num(value: float) -> str:
    return f"{round(value, 2):g}"


def _strs(request: Request, name: str) -> list[str]:
    values = request.query_params.getlist(name)
    # Arrays are repeated keys; the comma form is rejected by the live API.
    if any("," in v for v in values):
        raise _ApiError(400, f"Invalid value for {name}: use one {name}= per value")
    return [v for v in values if v]


def _ints(request: Request, name: str) -> set[int]:
    values = _strs(request, name)
    if not all(v.isdigit() for v in values):
        raise _ApiError(400, f"{name} must be an integer")
    return {int(v) for v in values}


def _flag(request: Request, name: str) -> bool:
    # Unknown flags (e.g. includeCancelled) are silently ignored by the live API.
    return (request.query_params.get(name) or "").lower() in ("true", "1")


def _date(request: Request, name: str) -> str | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        return date.fromisoformat(raw).isoformat()
    except ValueError:
        raise _ApiError(400, f"{name} must be YYYY-MM-DD") from None


def _datetime(request: Request, name: str) -> str | None:
    """``YYYY-MM-DDTHH:MM:SS`` (UTC) as a string comparable with ``iso_utc`` values."""
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise _ApiError(400, f"{name} must be YYYY-MM-DDTHH:MM:SS") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return iso_utc(moment.timestamp())


def _within(value: str, low: str | None, high: str | None) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "Internal error"
    return JSONResponse(_ApiError(status, str(detail)).body(), status_code=status)


def create_app(config: Beds24SandboxConfig | None = None) -> Starlette:
    """Build a fresh sandbox and return its app (the sandbox is at ``app.state.sandbox``)."""
    return Beds24Sandbox(config).app


def build_sandbox(options: SandboxOptions) -> MountedSandbox:
    """Mount point for `pms sandbox serve` / `pms demo` (see ``pms_cli.sandbox.server``)."""
    config = Beds24SandboxConfig(
        seed=options.seed, properties=options.listings, bookings=options.reservations
    )
    if options.clock is not None:
        config.clock = options.clock
    if options.relaxed:
        config.credit_limit = None
    sandbox = Beds24Sandbox(config)
    return MountedSandbox(
        provider="beds24",
        app=sandbox.app,
        # The refresh token is reusable; the invite code works once per sandbox run.
        credentials={"refresh_token": config.refresh_token},
        api_path="/v2",
        state=sandbox,
        extra={"invite_code": SANDBOX_INVITE_CODE, "long_life_token": config.long_life_token},
    )
