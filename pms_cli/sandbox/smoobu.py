"""Smoobu API emulator (see ``providers/smoobu.md``, section 9).

Mount the app at ``/smoobu``; clients then use ``http://127.0.0.1:PORT/smoobu/api`` as their base
URL. Requests must be HMAC-SHA256 signed (mandatory since 2026-09-25), verified with a timestamp
window and nonce-replay protection; the legacy ``Api-Key`` header can be switched back on
(``accept_legacy``) to emulate an account from before the sunset. State lives in memory on a
:class:`SmoobuSandbox`; tests drive time with a ``ManualClock`` and change data through the
mutation methods, which also queue the webhook payloads Smoobu would POST (``sandbox.webhooks``;
nothing is sent over the network).

Timestamps are naive account-local strings, as Smoobu sends them; ``utc_offset_hours`` sets the
account's offset from UTC.

Shapes follow what real payloads show, not one tidy spelling: the reservation *list* spells the
modification time ``modified-at`` (Smoobu's own list example) while the single reservation and
webhooks say ``modifiedAt``; ``/api/guests`` pages in camelCase (``pageCount``, ``totalItems``)
while ``/api/reservations`` pages in snake_case; price-element webhooks carry the price
element's own ``id`` beside the booking's (``bookingId``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pms_cli.sandbox.common import (
    SANDBOX_EPOCH,
    Clock,
    FakeData,
    Person,
    RequestStats,
    SystemClock,
)
from pms_cli.sandbox.server import MountedSandbox, SandboxOptions
from pms_cli.sandbox.webhook_sender import WebhookSender, dumps

__all__ = [
    "CHANNELS",
    "SANDBOX_API_KEY",
    "SANDBOX_API_SECRET",
    "SANDBOX_USER",
    "SmoobuSandbox",
    "SmoobuSandboxConfig",
    "create_app",
    "signature_for",
]

Json = dict[str, Any]

# Published, sandbox-only credentials shaped like new-style Smoobu keys.
SANDBOX_API_KEY = "usr_live_sandbox4f7c2e91"
SANDBOX_API_SECRET = "sandbox_secret_5b0d8e3a6c1f4927"
SANDBOX_USER: Json = {
    "id": 7,
    "firstName": "Sandra",
    "lastName": "Boxer",
    "email": "host@sandbox.invalid",
}
# 13 "Direct booking" and 1234 "Booking.com" are in the fact sheet; the other ids are invented.
CHANNELS: dict[int, str] = {
    13: "Direct booking",
    1234: "Booking.com",
    2345: "Airbnb",
    3456: "Vrbo",
    4567: "Expedia",
}
_CHANNEL_WEIGHTS = {13: 20.0, 1234: 35.0, 2345: 35.0, 3456: 6.0, 4567: 4.0}
# Channel of owner blocks: a guess (the sheet only says blocks carry is-blocked-booking: true).
BLOCKED_CHANNEL: Json = {"id": 11, "name": "Blocked channel"}
_RELAY_DOMAINS = {1234: "guest.booking.com", 2345: "guest.airbnb.com"}
_TYPES = {"reservation": 75.0, "modification of booking": 15.0, "cancellation": 10.0}
_BLOCK_LABELS = ("Owner stay", "Maintenance", "Blocked", "Renovation")
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
_DAY = 86_400.0


@dataclass
class SmoobuSandboxConfig:
    """Knobs of the emulator; the defaults are the documented production values."""

    seed: int = 42
    apartments: int = 10
    reservations: int = 200
    api_key: str = SANDBOX_API_KEY
    api_secret: str = SANDBOX_API_SECRET
    #: Accept the legacy ``Api-Key`` header (refused by Smoobu since 2026-09-25).
    accept_legacy: bool = False
    #: Spelling of the modification time in reservation *list* items (the official list
    #: example's); the single reservation and webhooks use ``modifiedAt``.
    list_modified_key: str = "modified-at"
    #: (max requests, window seconds) per key; None disables the limiter.
    rate_limit: tuple[int, float] | None = (1000, 60.0)
    #: Also send a standard ``Retry-After`` on 429 (only the X-RateLimit-* names are catalogued).
    send_retry_after: bool = False
    #: Unverified in the docs; the sheet suggests 300 s for both.
    timestamp_tolerance: float = 300.0
    nonce_ttl: float = 300.0
    max_page_size: int = 100
    default_page_size: int = 25  # unverified
    utc_offset_hours: float = 1.0
    clock: Clock = field(default_factory=SystemClock)


class _ApiError(Exception):
    def __init__(self, status: int, body: Json, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers

    def response(self) -> Response:
        return JSONResponse(self.body, status_code=self.status, headers=self.headers)


_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
}


def _problem(status: int, detail: str, **extra: Any) -> _ApiError:
    return _ApiError(
        status, {"status": status, "title": _TITLES[status], "detail": detail, **extra}
    )


def _invalid(name: str, message: str) -> _ApiError:
    return _problem(422, "Failed Validation", validation_messages={name: {"invalid": message}})


Endpoint = Callable[[Request], Awaitable[Response]]


class SmoobuSandbox:
    """In-memory Smoobu API: user, apartments, reservations, guests, both auth modes, limits."""

    def __init__(self, config: SmoobuSandboxConfig | None = None) -> None:
        self.config = config or SmoobuSandboxConfig()
        self.clock = self.config.clock
        self.stats = RequestStats()
        self.webhooks: list[Json] = []
        #: The account's one "Webhook URL" (Settings → Developer); None: nothing is sent.
        self.webhook_url: str | None = None
        self.sender = WebhookSender()
        fake = FakeData(self.config.seed)
        self.apartments: dict[int, Json] = {}
        apartment_id = 123_456
        for _ in range(self.config.apartments):
            self.apartments[apartment_id] = _make_apartment(fake, apartment_id)
            apartment_id += fake.rng.randint(1, 300)
        self.guests: dict[int, Json] = {}
        self.reservations: dict[int, Json] = {}
        self._generate_reservations(fake)
        # Mutations draw from their own stream so they never disturb the generated data.
        self._fake = FakeData(self.config.seed + 1)
        self._hits: dict[str, deque[float]] = {}
        self._nonces: dict[str, float] = {}
        self._element_ids = 5_000_000  # price elements have ids of their own
        self._app: Starlette | None = None

    # ------------------------------------------------------------------ data generation

    def local(self, ts: float, seconds: bool = True) -> str:
        """Unix seconds as the account-local naive timestamp Smoobu sends."""
        moment = datetime.fromtimestamp(ts, UTC) + timedelta(hours=self.config.utc_offset_hours)
        return moment.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")

    def _generate_reservations(self, fake: FakeData) -> None:
        if not self.apartments:
            return
        epoch = SANDBOX_EPOCH.timestamp()
        booked = sorted(
            epoch - fake.rng.uniform(2 * _DAY, 365 * _DAY) for _ in range(self.config.reservations)
        )
        booking_id = 290
        for booked_at in booked:
            booking_id += fake.rng.randint(1, 30)
            blocked = fake.chance(0.06)
            kind = "reservation" if blocked else fake.weighted(_TYPES)
            res = self._make_booking(fake, booking_id, booked_at, blocked, kind)
            # Bookings are edited after creation (messages, alterations), never past the epoch.
            updated = booked_at + fake.rng.uniform(60, min(20 * _DAY, epoch - booked_at - _DAY))
            res["modifiedAt"] = self.local(updated)
            self.reservations[booking_id] = res

    def _guest_for(self, fake: FakeData, person: Person, email: str | None, phone: str) -> Json:
        if self.guests and fake.chance(0.15):
            return self.guests[fake.choice(sorted(self.guests))]  # a returning guest
        guest_id = max(self.guests, default=98_700) + fake.rng.randint(1, 20)
        city = fake.city()
        guest: Json = {
            "id": guest_id,
            "firstName": person.first,
            "lastName": person.last,
            "companyName": None,
            "emails": [email] if email else [],
            "telephoneNumbers": [phone] if phone else [],
            "address": {
                "street": fake.street_address(city) if fake.chance(0.5) else None,
                "postalCode": fake.postcode(city) if fake.chance(0.5) else None,
                "location": city.name,
                "country": city.country_code,
            },
            "notes": "",
            "bookings": [],
        }
        self.guests[guest_id] = guest
        return guest

    def _make_booking(
        self, fake: FakeData, booking_id: int, booked_at: float, blocked: bool, kind: str
    ) -> Json:
        apartment = self.apartments[fake.choice(sorted(self.apartments))]
        arrival = datetime.fromtimestamp(booked_at, UTC).date() + timedelta(
            fake.rng.randint(0, 180)
        )
        nights = fake.weighted({1: 8.0, 2: 20.0, 3: 20.0, 4: 14.0, 5: 10.0, 7: 14.0, 14: 4.0})
        res: Json = {
            "id": booking_id,
            "reference-id": None,
            "type": kind,
            "arrival": arrival.isoformat(),
            "departure": (arrival + timedelta(nights)).isoformat(),
            "created-at": self.local(booked_at, seconds=False),
            "modifiedAt": self.local(booked_at),
            "apartment": {"id": apartment["id"], "name": apartment["name"]},
            "check-in": "16:00",
            "check-out": "10:00",
            "notice": "",
            "assistant-notice": "",
            "is-blocked-booking": blocked,
        }
        if blocked:
            res.update(
                {
                    "channel": dict(BLOCKED_CHANNEL),
                    "guest-name": fake.choice(_BLOCK_LABELS),
                    "firstname": "",
                    "lastname": "",
                    "email": None,
                    "phone": None,
                    "adults": 0,
                    "children": 0,
                    "price": 0,
                    "price-paid": "No",
                    "prepayment": 0,
                    "prepayment-paid": "No",
                    "deposit": None,
                    "deposit-paid": "No",
                    "commission-included": None,
                    "language": "en",
                    "guest-app-url": None,
                    "guestId": None,
                }
            )
            return res
        channel_id = fake.weighted(_CHANNEL_WEIGHTS)
        person, home = fake.person(), fake.city()
        if channel_id in _RELAY_DOMAINS and fake.chance(0.6):
            email: str | None = fake.relay_email(person, _RELAY_DOMAINS[channel_id])
        else:
            email = None if fake.chance(0.1) else fake.email(person)
        phone = "" if fake.chance(0.3) else fake.phone(home)  # OTA bookings often lack a phone
        guest = self._guest_for(fake, person, email, phone)
        nightly = float(apartment["price"]["minimal"]) * fake.rng.uniform(1.0, 1.8)
        price = round(nightly * nights, 2)
        res.update(
            {
                "reference-id": None if channel_id == 13 else fake.digits(10),
                "channel": {"id": channel_id, "name": CHANNELS[channel_id]},
                "guest-name": f"{guest['firstName']} {guest['lastName']}",
                "firstname": guest["firstName"],
                "lastname": guest["lastName"],
                "email": email,
                "phone": phone or None,
                "adults": fake.rng.randint(1, apartment["rooms"]["maxOccupancy"]),
                "children": fake.rng.randint(0, 2) if fake.chance(0.2) else 0,
                "price": price,
                "price-paid": fake.choice(("Yes", "No")),
                "prepayment": 0,
                "prepayment-paid": "No",
                "deposit": None,
                "deposit-paid": "No",
                "commission-included": round(price * 0.15, 2) if channel_id != 13 else None,
                "language": fake.choice(("en", "de", "fr", "es")),
                "guest-app-url": f"https://guest.smoobu.com/?t={fake.hex(12)}",
                "guestId": guest["id"],
            }
        )
        guest["bookings"].append(
            {"id": booking_id, "arrival": res["arrival"], "departure": res["departure"]}
        )
        return res

    # ------------------------------------------------------------------ mutations (for tests)

    def _event(self, action: str, res: Json) -> None:
        self._send({"action": action, "user": SANDBOX_USER["id"], "data": dict(res)})

    def _send(self, payload: Json) -> None:
        self.webhooks.append(payload)
        if self.webhook_url:  # no signature exists: the URL (with its token) is all there is
            self.sender.queue(self.webhook_url, dumps(payload))

    def modify_bookings(self, n: int) -> list[int]:
        """Alter price and party size of ``n`` live bookings now; return their ids."""
        live = [i for i, r in self.reservations.items() if r["type"] != "cancellation"]
        ids = sorted(self._fake.rng.sample(sorted(live), min(n, len(live))))
        for booking_id in ids:
            res = self.reservations[booking_id]
            res["type"] = "modification of booking"
            res["price"] = round(res["price"] * self._fake.rng.uniform(0.9, 1.2), 2)
            res["modifiedAt"] = self.local(self.clock.now())
            self._event("updateReservation", res)
        return ids

    def add_bookings(self, n: int, blocked: bool = False) -> list[int]:
        """Create ``n`` bookings (or owner blocks) now; return their ids."""
        if not self.apartments:
            raise ValueError("no apartment to book")
        ids = []
        for _ in range(n):
            booking_id = max(self.reservations, default=290) + self._fake.rng.randint(1, 30)
            self.reservations[booking_id] = res = self._make_booking(
                self._fake, booking_id, self.clock.now(), blocked, "reservation"
            )
            self._event("newReservation", res)
            ids.append(booking_id)
        return ids

    def cancel_booking(self, booking_id: int) -> None:
        """Cancel a booking as the guest would (KeyError for unknown ids)."""
        res = self.reservations[booking_id]
        res["type"] = "cancellation"
        res["modifiedAt"] = self.local(self.clock.now())
        self._event("cancelReservation", res)

    def delete_booking(self, booking_id: int) -> None:
        """Remove a booking entirely (KeyError for unknown ids)."""
        self._event("deleteReservation", self.reservations.pop(booking_id))

    def add_price_element(self, booking_id: int, amount: float, name: str = "Cleaning fee") -> int:
        """Add a charge to a booking, as the host would in the UI: the booking's price and
        modification time move, and a ``priceElementCreated`` webhook names the *element*
        (``data.id``) and the booking (``data.bookingId``). Returns the element id."""
        res = self.reservations[booking_id]
        self._element_ids += 1
        element: Json = {
            "id": self._element_ids,
            "bookingId": booking_id,
            "type": "cleaningFee",
            "name": name,
            "amount": amount,
            "quantity": None,
            "tax": None,
            "currencyCode": self.apartments[res["apartment"]["id"]]["currency"],
            "sortOrder": 2,
            "priceElementGroupId": None,
        }
        res["price"] = round(float(res["price"]) + amount, 2)
        res["modifiedAt"] = self.local(self.clock.now())
        payload = {"action": "priceElementCreated", "user": SANDBOX_USER["id"], "data": element}
        self._send(payload)
        return int(element["id"])

    def complete_online_check_in(self, booking_id: int, arrival_time: str = "15:00") -> None:
        """The guest finishes online check-in: the expected arrival time changes and an
        ``onlineCheckInUpdate`` webhook names the booking as ``data.bookingId`` only."""
        res = self.reservations[booking_id]
        res["check-in"] = arrival_time
        res["modifiedAt"] = self.local(self.clock.now())
        self._send(
            {
                "action": "onlineCheckInUpdate",
                "user": SANDBOX_USER["id"],
                "data": {"bookingId": booking_id},
            }
        )

    def rotate_credentials(self, api_key: str, api_secret: str) -> None:
        """Replace the key and secret, as deleting and re-creating the key in the UI would."""
        self.config.api_key, self.config.api_secret = api_key, api_secret

    # ------------------------------------------------------------------ ASGI app

    @property
    def app(self) -> Starlette:
        """The Starlette app (routes under ``/api``); ``app.state.sandbox`` is this object."""
        if self._app is None:
            routes = [
                self._route("/api/me", self._me),
                self._route("/api/apartments", self._list_apartments),
                self._route("/api/apartments/{item_id:int}", self._get_apartment),
                self._route("/api/reservations", self._list_reservations),
                self._route("/api/reservations/{item_id:int}", self._get_reservation),
                self._route("/api/guests", self._list_guests),
                self._route("/api/guests/{item_id:int}", self._get_guest),
            ]
            self._app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
            self._app.state.sandbox = self
        return self._app

    def _route(self, path: str, handler: Endpoint) -> Route:
        key = f"GET {path}"

        async def endpoint(request: Request) -> Response:
            self.stats.record(key)
            try:
                api_key = await self._authenticate(request)
                headers = self._rate_limit(api_key)
                response = await handler(request)
            except _ApiError as error:
                return error.response()
            response.headers.update(headers)
            return response

        return Route(path, endpoint, methods=["GET"])

    async def _authenticate(self, request: Request) -> str:
        try:
            if "x-api-key" in request.headers or "x-signature" in request.headers:
                return await self._verify_signature(request)
            legacy = request.headers.get("api-key")
            if legacy is None:
                raise _problem(401, "Missing API key")
            if not self.config.accept_legacy:
                raise _problem(401, "API keys without HMAC signatures are no longer accepted")
            if not hmac.compare_digest(legacy.encode(), self.config.api_key.encode()):
                raise _problem(401, "Invalid API key")
            return legacy
        except _ApiError:
            self.stats.auth_failures += 1
            raise

    async def _verify_signature(self, request: Request) -> str:
        h = request.headers
        api_key, stamp, nonce, signature = (
            h.get(n) for n in ("x-api-key", "x-timestamp", "x-nonce", "x-signature")
        )
        if not (api_key and stamp and nonce and signature):
            raise _problem(401, "Signed requests need X-API-Key, X-Timestamp, X-Nonce, X-Signature")
        if not hmac.compare_digest(api_key.encode(), self.config.api_key.encode()):
            raise _problem(401, "Invalid API key")
        now = self.clock.now()
        if not _TIMESTAMP.match(stamp):
            raise _problem(401, "X-Timestamp must be ISO-8601 UTC like 2026-04-01T12:00:00Z")
        sent = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
        if abs(now - sent) > self.config.timestamp_tolerance:
            raise _problem(401, "X-Timestamp is outside the allowed window")
        expected = signature_for(
            self.config.api_secret,
            api_key,
            request.method,
            request.url.path,
            request.scope.get("query_string", b"").decode("latin-1"),
            await request.body(),
            stamp,
            nonce,
        )
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            raise _problem(401, "Invalid signature")
        for seen, at in list(self._nonces.items()):
            if now - at > self.config.nonce_ttl:
                del self._nonces[seen]
        if nonce in self._nonces:
            raise _problem(401, "Nonce already used")
        self._nonces[nonce] = now
        return api_key

    def _rate_limit(self, api_key: str) -> dict[str, str]:
        if self.config.rate_limit is None:
            return {}
        limit, window = self.config.rate_limit
        now = self.clock.now()
        hits = self._hits.setdefault(api_key, deque())
        while hits and hits[0] <= now - window:
            hits.popleft()
        if len(hits) >= limit:
            self.stats.rate_limited += 1
            reset = hits[0] + window
            headers = {
                "X-RateLimit-Limit": str(limit),
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Retry-After": str(math.ceil(reset)),
            }
            if self.config.send_retry_after:
                headers["Retry-After"] = str(max(1, math.ceil(reset - now)))
            raise _ApiError(
                429,
                {
                    "status": 429,
                    "title": "Too Many Requests",
                    "detail": f"Rate limit of {limit} requests per {window:g} seconds exceeded",
                },
                headers,
            )
        hits.append(now)
        return {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(limit - len(hits))}

    # ------------------------------------------------------------------ handlers

    async def _me(self, request: Request) -> Response:
        return JSONResponse(SANDBOX_USER)

    async def _list_apartments(self, request: Request) -> Response:
        # Not paginated; id + name only.
        items = [{"id": a["id"], "name": a["name"]} for a in self.apartments.values()]
        return JSONResponse({"apartments": items})

    async def _get_apartment(self, request: Request) -> Response:
        apartment = self.apartments.get(request.path_params["item_id"])
        if apartment is None:
            raise _problem(404, "Apartment not found")
        # The detail object does not repeat id / name (the sheet's client schema lacks them).
        return JSONResponse({k: v for k, v in apartment.items() if k not in ("id", "name")})

    async def _list_reservations(self, request: Request) -> Response:
        keep = _reservation_filter(request)
        related = _flag(request, "includeRelated", False)
        elements = _flag(request, "includePriceElements", False)
        items = []
        for booking_id in sorted(self.reservations):
            res = self.reservations[booking_id]
            if keep(res):
                items.append(self._present(res, related, elements))
        return JSONResponse(self._page(request, items, "bookings"))

    async def _get_reservation(self, request: Request) -> Response:
        # Cancelled bookings are returned here too.
        res = self.reservations.get(request.path_params["item_id"])
        if res is None:
            raise _problem(404, "Booking not found")
        return JSONResponse(res)

    async def _list_guests(self, request: Request) -> Response:
        items = [self.guests[i] for i in sorted(self.guests)]
        return JSONResponse(self._page(request, items, "guests", camel=True))

    async def _get_guest(self, request: Request) -> Response:
        guest = self.guests.get(request.path_params["item_id"])
        if guest is None:
            raise _problem(404, "Guest not found")
        return JSONResponse(guest)

    def _present(self, res: Json, related: bool, elements: bool) -> Json:
        out = dict(res)
        key = self.config.list_modified_key
        if key != "modifiedAt":
            # Rebuilt in the same position so the key order stays the list example's.
            out = {(key if k == "modifiedAt" else k): v for k, v in out.items()}
        if related:
            guest_id = res.get("guestId")
            out["related"] = [
                {"id": other["id"], "arrival": other["arrival"], "departure": other["departure"]}
                for other in self.reservations.values()
                if guest_id and other.get("guestId") == guest_id and other["id"] != res["id"]
            ]
        if elements:
            out["priceElements"] = [
                {"type": "basePrice", "name": "Base price", "amount": res["price"], "tax": None}
            ]
        return out

    def _page(self, request: Request, items: list[Json], key: str, camel: bool = False) -> Json:
        page = _int(request, "page", 1)
        size = _int(request, "pageSize", self.config.default_page_size)
        if page < 1:
            raise _invalid("page", "must be at least 1")
        if size < 1:
            raise _invalid("pageSize", "must be at least 1")
        # Above the cap the sandbox clamps (whether Smoobu clamps or answers 422 is unverified).
        size = min(size, self.config.max_page_size)
        start = (page - 1) * size
        count, total = math.ceil(len(items) / size), len(items)
        if camel:  # /api/guests
            paging: Json = {"pageCount": count, "pageSize": size, "totalItems": total}
        else:
            paging = {"page_count": count, "page_size": size, "total_items": total}
        return {**paging, "page": page, key: items[start : start + size]}


def signature_for(
    secret: str,
    api_key: str,
    method: str,
    path: str,
    query: str,
    body: bytes,
    timestamp: str,
    nonce: str,
) -> str:
    """The documented signature, computed independently of the adapter's signer."""
    pairs = sorted((p for p in query.split("&") if p), key=lambda p: p.split("=", 1)[0])
    lines = [method.upper(), path, "&".join(pairs), timestamp, nonce]
    lines += [hashlib.sha256(body).hexdigest(), api_key]
    mac = hmac.new(secret.encode(), "\n".join(lines).encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def create_app(config: SmoobuSandboxConfig | None = None) -> Starlette:
    """Build a fresh sandbox and return its app (the sandbox is at ``app.state.sandbox``)."""
    return SmoobuSandbox(config).app


# ---------------------------------------------------------------------- data helpers


def _make_apartment(fake: FakeData, apartment_id: int) -> Json:
    city = fake.city()
    lat, lng = fake.near(city)
    occupancy = fake.rng.randint(2, 8)
    bedrooms = max(1, occupancy // 2 - fake.rng.randint(0, 1))
    minimal = round(fake.rng.uniform(50, 250), 0)
    apartment: Json = {
        "id": apartment_id,
        "name": fake.listing_name(city),
        "location": {
            "street": fake.street_address(city),
            "zip": fake.postcode(city),
            "city": city.name,
            "country": city.country,  # a name, not a code
            "latitude": f"{lat:.4f}",
            "longitude": f"{lng:.4f}",
        },
        "timeZone": city.time_zone,
        "rooms": {
            "maxOccupancy": occupancy,
            "bedrooms": bedrooms,
            "bathrooms": max(1, bedrooms - 1),
            "doubleBeds": bedrooms,
            "singleBeds": fake.rng.randint(0, 2),
            "sofaBeds": fake.choice((None, 1)),
            "couches": None,
            "childBeds": None,
            "queenSizeBeds": None,
            "kingSizeBeds": None,
        },
        "currency": city.currency,
        "price": {"minimal": f"{minimal:.2f}", "maximal": f"{minimal * 1.8:.2f}"},
        "type": {"id": 1, "name": "Apartment"},
    }
    if fake.chance(0.8):  # sometimes absent
        apartment["equipments"] = sorted(
            fake.rng.sample(
                ["Wireless Internet", "Kitchen", "Washer", "Parking", "Balcony", "TV"], 3
            )
        )
    return apartment


def _flag(request: Request, name: str, default: bool) -> bool:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise _invalid(name, "must be true/false or 1/0")


def _int(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise _invalid(name, "must be an integer") from None


def _day(request: Request, name: str) -> str | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        return date.fromisoformat(raw).isoformat()
    except ValueError:
        raise _invalid(name, "must be YYYY-MM-DD") from None


def _moment(request: Request, name: str, end: bool) -> str | None:
    """``YYYY-MM-DD`` (the whole day) or ``YYYY-MM-DD HH:mm`` as a comparable local string."""
    raw = request.query_params.get(name)
    if not raw:
        return None
    for fmt, seconds in (("%Y-%m-%d", 86_399 if end else 0), ("%Y-%m-%d %H:%M", 59 if end else 0)):
        try:
            parsed = datetime.strptime(raw, fmt) + timedelta(seconds=seconds)
        except ValueError:
            continue
        return parsed.strftime("%Y-%m-%d %H:%M:%S")
    raise _invalid(name, "must be YYYY-MM-DD or YYYY-MM-DD HH:mm")


def _reservation_filter(request: Request) -> Callable[[Json], bool]:
    def seconds(stamp: str) -> str:
        return stamp if len(stamp) == 19 else stamp + ":00"

    ranges: list[tuple[Callable[[Json], str], str | None, str | None]] = [
        (lambda r: r["arrival"], _day(request, "arrivalFrom"), _day(request, "arrivalTo")),
        (lambda r: r["departure"], _day(request, "departureFrom"), _day(request, "departureTo")),
        (
            lambda r: seconds(r["created-at"]),
            _moment(request, "created_from", False),
            _moment(request, "created_to", True),
        ),
        (
            lambda r: seconds(r["modifiedAt"]),
            _moment(request, "modifiedFrom", False),
            _moment(request, "modifiedTo", True),
        ),
    ]
    # from/to: stays overlapping the window (exact semantics unverified).
    stay_from, stay_to = _day(request, "from"), _day(request, "to")
    apartment = request.query_params.get("apartmentId")
    if apartment is not None:
        apartment_id = _int(request, "apartmentId", 0)
    show_cancelled = _flag(request, "showCancellation", False)
    exclude_blocked = _flag(request, "excludeBlocked", False)

    def keep(res: Json) -> bool:
        if res["type"] == "cancellation" and not show_cancelled:
            return False
        if res["is-blocked-booking"] and exclude_blocked:
            return False
        if apartment is not None and res["apartment"]["id"] != apartment_id:
            return False
        if stay_from is not None and res["departure"] < stay_from:
            return False
        if stay_to is not None and res["arrival"] > stay_to:
            return False
        return all(
            (low is None or get(res) >= low) and (high is None or get(res) <= high)
            for get, low, high in ranges
        )

    return keep


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "Internal error"
    title = _TITLES.get(status, "Error")
    return JSONResponse({"status": status, "title": title, "detail": detail}, status_code=status)


def build_sandbox(options: SandboxOptions) -> MountedSandbox:
    """Mount point for `pms sandbox serve` / `pms demo` (see ``pms_cli.sandbox.server``)."""
    config = SmoobuSandboxConfig(
        seed=options.seed, apartments=options.listings, reservations=options.reservations
    )
    if options.clock is not None:
        config.clock = options.clock
    if options.relaxed:
        config.rate_limit = None
    sandbox = SmoobuSandbox(config)
    return MountedSandbox(
        provider="smoobu",
        app=sandbox.app,
        credentials={"api_key": config.api_key, "api_secret": config.api_secret},
        api_path="/api",
        state=sandbox,
    )
