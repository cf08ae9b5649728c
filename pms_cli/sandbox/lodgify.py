"""Lodgify Public API v2 emulator (see ``providers/lodgify.md``, section 9).

Mount the app at ``/lodgify``; clients then use ``http://127.0.0.1:PORT/lodgify`` as their base
URL (paths carry the version: ``/v2/...``). State lives in memory on a :class:`LodgifySandbox`;
tests drive time with a ``ManualClock`` and change data through the mutation methods.

Emulated: ``X-ApiKey`` auth with the documented 401 envelope, the 750 requests/minute v2 limit
(429), ``page``/``size`` paging with the ``{count, items}`` envelope (``count`` null unless
``includeCount=true``, ``items`` null for an empty result), ``updatedSince``, ``stayFilter``,
``trash`` and ``includeExternal`` on bookings, ``/v2/deletedProperties`` (``deletedSince``; one
property deleted before the epoch by default), owner closures as ``Unavailable`` bookings whose
``guest`` holds the owner's own label and e-mail (never a guest), and webhooks:
``/webhooks/v1/subscribe|list|unsubscribe`` with a per-subscription secret; mutations queue the
signed (``ms-signature``) booking documents in ``sender``. Not emulated: v1, quotes, writes.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import math
import secrets
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
    City,
    Clock,
    FakeData,
    RequestStats,
    SlidingWindowCounter,
    SystemClock,
)
from pms_cli.sandbox.server import MountedSandbox, SandboxOptions
from pms_cli.sandbox.webhook_sender import WebhookSender, dumps

__all__ = [
    "AUTH_DENIED_MESSAGE",
    "BOOKING_STATUSES",
    "SANDBOX_API_KEY",
    "SANDBOX_USER_ID",
    "LodgifySandbox",
    "LodgifySandboxConfig",
    "create_app",
]

Json = dict[str, Any]

SANDBOX_USER_ID = 111_222
# A published, sandbox-only key, shaped like a real one (base64-looking, 64 characters).
SANDBOX_API_KEY = "sandbox0LodgifyKey0c2FuZGJveC1vbmx5LWtleS1uZXZlci12YWxpZC1saXZl0"
AUTH_DENIED_MESSAGE = "Authorization has been denied for this request."

BOOKING_STATUSES: dict[str, float] = {
    "Booked": 68, "Tentative": 5, "Open": 8, "Declined": 11, "Unavailable": 8,
}  # fmt: skip
_SOURCES: dict[str, float] = {
    "AirbnbIntegration": 30, "BookingCom": 24, "OH": 15, "Manual": 8, "HomeAway": 7,
    "ICal": 8, "Expedia": 4, "PublicApi": 3, "Email": 1,
}  # fmt: skip
# iCal imports are "external": hidden unless includeExternal=true (exact scope unverified).
_EXTERNAL_SOURCES = frozenset({"ICal"})
_STAY_FILTERS = ("Upcoming", "Current", "Historic", "All", "ArrivalDate", "DepartureDate")
_TRASH = ("False", "True", "All")
_DAY = 86_400.0
# What an owner types when closing dates; the booking's "guest" then holds it (and the owner's
# e-mail on some), which a sync must not turn into a guest.
_CLOSURE_LABELS = ("Owner stay", "Maintenance", "Blocked by owner", "Family visit")
OWNER_EMAIL = "owner@sandbox.invalid"
# A property removed before the epoch: present only in /v2/deletedProperties.
_DELETED_PROPERTY: Json = {"id": 100_001, "name": "Old Harbour Flat", "days_before_epoch": 30}
WEBHOOK_EVENTS = (
    "rate_change", "availability_change", "booking_new_any_status", "booking_new_status_booked",
    "booking_change", "booking_status_change_booked", "booking_status_change_tentative",
    "booking_status_change_open", "booking_status_change_declined", "guest_message_received",
)  # fmt: skip
_STATUS_EVENTS = {
    "Booked": "booking_status_change_booked",
    "Tentative": "booking_status_change_tentative",
    "Open": "booking_status_change_open",
    "Declined": "booking_status_change_declined",
}


@dataclass
class LodgifySandboxConfig:
    """Knobs of the emulator; the defaults are the documented production values."""

    seed: int = 42
    properties: int = 10
    bookings: int = 200
    api_key: str = SANDBOX_API_KEY
    #: (max requests, window seconds) per API key on /v2; None disables the limiter.
    rate_limit: tuple[int, float] | None = (750, 60.0)
    #: Lodgify documents no Retry-After on 429; tests may switch one on.
    send_retry_after: bool = False
    #: Larger sizes are clamped to this (clamp-vs-reject is unverified).
    max_size: int = 50
    default_size: int = 50
    clock: Clock = field(default_factory=SystemClock)


class _ApiError(Exception):
    def __init__(self, status: int, body: Json, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers

    def response(self) -> Response:
        return JSONResponse(self.body, status_code=self.status, headers=self.headers)


Endpoint = Callable[[Request], Awaitable[Response]]


class LodgifySandbox:
    """In-memory Lodgify API v2: API-key auth, rate limit, properties, rooms and bookings.

    ``stats`` counts what the server saw; the mutation methods change data the way a host's
    activity would, stamping ``updated_at`` with the configured clock.
    """

    def __init__(self, config: LodgifySandboxConfig | None = None) -> None:
        self.config = config or LodgifySandboxConfig()
        self.clock = self.config.clock
        self.stats = RequestStats()
        self.api_key = self.config.api_key
        self._errors = itertools.count(1)
        fake = FakeData(self.config.seed)
        self.properties: dict[int, Json] = {}
        self.rooms: dict[int, list[Json]] = {}
        self._cities: dict[int, City] = {}
        property_id, room_id = 123_456, 654_321
        for index in range(self.config.properties):
            self._make_property(fake, property_id, room_id, index)
            room_id += 10
            property_id += fake.rng.randint(1, 500)
        deleted_at = SANDBOX_EPOCH.timestamp() - _DELETED_PROPERTY["days_before_epoch"] * _DAY
        #: ``/v2/deletedProperties`` records by property id: {id, name, deleted_at}.
        self.deleted_properties: dict[int, Json] = {
            _DELETED_PROPERTY["id"]: {
                "id": _DELETED_PROPERTY["id"],
                "name": _DELETED_PROPERTY["name"],
                "deleted_at": _iso(deleted_at),
            }
        }
        self.bookings: dict[int, Json] = {}
        self.external: set[int] = set()
        self._next_booking = 9_876_000
        self._generate_bookings(fake)
        # Mutations draw from their own stream so they never disturb the generated data.
        self._fake = FakeData(self.config.seed + 1)
        rate = self.config.rate_limit
        self._limiter = None if rate is None else SlidingWindowCounter(*rate, clock=self.clock)
        self._app: Starlette | None = None
        #: ``/webhooks/v1`` subscriptions by id: {id, event, url, secret}.
        self.subscriptions: dict[str, Json] = {}
        self.sender = WebhookSender()

    # ------------------------------------------------------------------ data generation

    def _make_property(self, fake: FakeData, property_id: int, room_id: int, index: int) -> None:
        city = fake.city()
        name = fake.listing_name(city)
        lat, lng = fake.near(city)
        created = SANDBOX_EPOCH.timestamp() - fake.rng.uniform(400 * _DAY, 900 * _DAY)
        updated = created + fake.rng.uniform(_DAY, SANDBOX_EPOCH.timestamp() - created - 2 * _DAY)
        min_price = round(fake.rng.uniform(60, 250), 0)
        units = 1 if fake.chance(0.8) else fake.rng.randint(2, 3)  # multi-unit = several rooms
        rooms = []
        for n in range(units):
            people = fake.rng.randint(2, 8)
            rooms.append(
                {
                    "id": room_id + n,
                    "name": name if units == 1 else f"{name} – unit {n + 1}",
                    "description": f"<p>Sleeps {people}.</p>",
                    "max_people": people,
                    "units": 1,
                    "bedrooms": max(1, people // 2),
                    "bathrooms": max(1, people // 3),
                    "area": fake.rng.randint(30, 160),
                    "area_unit": "m2",
                    "image_url": f"https://l.icdbcdn.invalid/oh/{property_id}/{n}.jpg",
                    "images": [],
                    "has_wifi": True,
                    "pets_allowed": fake.chance(0.3),
                    "min_price": min_price,
                    "max_price": min_price * 2,
                    "price_unit_in_days": 1,
                    "currency": {"code": city.currency},
                }
            )
        self.rooms[property_id] = rooms
        self._cities[property_id] = city
        prop: Json = {
            "id": property_id,
            "name": name,
            "internal_name": f"P{index + 1}",
            "description": f"<p>{name}.</p>",
            "latitude": lat,
            "longitude": lng,
            "address": fake.street_address(city),
            "hide_address": fake.chance(0.1),
            "zip": fake.postcode(city),
            "city": city.name,
            "state": city.state,
            "country": city.country,
            "image_url": f"https://l.icdbcdn.invalid/oh/{property_id}.jpg",
            "has_addons": False,
            "has_agreement": False,
            "agreement_text": None,
            "agreement_url": None,
            "contact": {"spoken_languages": ["en"]},
            "rating": 0,
            "price_unit_in_days": 1,
            "min_price": min_price,
            "original_min_price": min_price,
            "max_price": min_price * 2,
            "original_max_price": min_price * 2,
            "rooms": [{"id": r["id"], "name": r["name"]} for r in rooms],
            "in_out_max_date": (SANDBOX_EPOCH + timedelta(days=365)).strftime("%Y-%m-%dT00:00:00"),
            "in_out": None,
            "currency_code": city.currency,
            "created_at": _iso(created, millis=True),
            "updated_at": _iso(updated),
            # Every ninth property is deactivated so lists always show the flag in use.
            "is_active": index % 9 != 8,
            "subscription_plans": ["Professional"],
        }
        if fake.chance(0.5):  # the ISO code is only "sometimes present"
            prop["country_code"] = city.country_code
        self.properties[property_id] = prop

    def _generate_bookings(self, fake: FakeData) -> None:
        if not self.properties:
            return
        epoch = SANDBOX_EPOCH.timestamp()
        created = sorted(
            epoch - fake.rng.uniform(2 * _DAY, 365 * _DAY) for _ in range(self.config.bookings)
        )
        for booked_at in created:
            # Touched again later (payments, messages), but at least a day before the epoch so
            # an incremental sync's lag window never re-reads generated data.
            updated = booked_at + fake.rng.uniform(0, max(0.0, epoch - _DAY - booked_at))
            self._add_booking(fake, fake.weighted(BOOKING_STATUSES), booked_at, updated)

    def _add_booking(
        self,
        fake: FakeData,
        status: str,
        booked_at: float,
        updated: float,
        property_id: int | None = None,
        stay: tuple[date, date] | None = None,
    ) -> Json:
        self._next_booking += fake.rng.randint(1, 60)
        bid = self._next_booking
        property_id = property_id or fake.choice(sorted(self.properties))
        city, room = self._cities[property_id], fake.choice(self.rooms[property_id])
        blocked = status == "Unavailable"
        source = "Manual" if blocked else fake.weighted(_SOURCES)
        if stay is None:
            arrival = datetime.fromtimestamp(booked_at, UTC).date() + timedelta(
                fake.rng.randint(0, 180)
            )
            stay = (arrival, arrival + timedelta(fake.choice((1, 2, 3, 3, 4, 5, 7, 10, 14))))
        nights = (stay[1] - stay[0]).days
        person, home = fake.person(), fake.city()
        guest: Json = {"name": None, "email": None, "phone": None, "country_code": None}
        if source in _EXTERNAL_SOURCES:
            guest["name"] = "Reserved"  # an iCal import carries only the event summary
        elif blocked:
            # Chosen from the id, not the random stream, so the generated data stays as it was.
            guest["name"] = _CLOSURE_LABELS[bid % len(_CLOSURE_LABELS)]
            guest["email"] = OWNER_EMAIL if bid % 2 == 0 else None
        else:
            guest = {
                "name": person.full,
                "email": None if fake.chance(0.12) else fake.email(person),
                "phone": None if fake.chance(0.2) else fake.phone(home),
                "country_code": home.country_code if fake.chance(0.85) else None,
            }
        adults = fake.rng.randint(1, room["max_people"])
        children = fake.rng.randint(0, 2) if fake.chance(0.25) else 0
        if blocked:
            adults = children = 0  # a closed period has no party
        room_item: Json = {
            "room_type_id": room["id"],
            "people": adults + children,
            "key_code": None,
        }
        if fake.chance(0.8):  # older bookings carry only the deprecated `people`
            room_item["guest_breakdown"] = {
                "adults": adults,
                "children": children,
                "infants": 0,
                "pets": 0,
            }
        stay_total = 0.0 if blocked else round(room["min_price"] * nights, 2)
        fees = 0.0 if blocked else round(fake.rng.uniform(20, 90), 2)
        total = round(stay_total + fees, 2)
        paid = round(total * fake.choice((0.0, 0.3, 1.0)), 2)
        booking: Json = {
            "id": bid,
            "user_id": SANDBOX_USER_ID,
            "arrival": stay[0].isoformat(),
            "departure": stay[1].isoformat(),
            "property_id": property_id,
            "rooms": [room_item],
            "guest": guest,
            "language": None if blocked else fake.choice(("en", "de", "es", "it", "fr")),
            "status": status,
            "tentative_expires_at": _iso(booked_at + 3 * _DAY) if status == "Tentative" else None,
            "source": source,
            "source_text": fake.digits(10) if source == "BookingCom" else None,
            "created_from_ip": None,
            "created_at": _iso(booked_at),
            "updated_at": "",
            "canceled_at": None,
            "is_new": fake.chance(0.1),
            "is_deleted": not blocked and fake.chance(0.03),
            "currency_code": city.currency,
            "total_amount": total,
            "subtotals": {
                "stay": stay_total,
                "promotions": 0.0,
                "fees": fees,
                "taxes": 0.0,
                "addons": 0.0,
                "vat": 0.0,
            },
            "amount_paid": paid,
            "amount_due": round(total - paid, 2),
        }
        if source == "AirbnbIntegration":
            booking["source_text"] = "HM" + fake.code(8)
        _touch(booking, updated, naive=fake.chance(0.1))
        if status == "Declined":
            booking["canceled_at"] = booking["updated_at"]
        self.bookings[bid] = booking
        if source in _EXTERNAL_SOURCES:
            self.external.add(bid)
        return booking

    # ------------------------------------------------------------------ mutations (for tests)

    def modify_bookings(self, n: int) -> list[int]:
        """Advance status / change price of ``n`` random live bookings; return their ids."""
        live = sorted(b for b, v in self.bookings.items() if not v["is_deleted"])
        ids = sorted(self._fake.rng.sample(live, min(n, len(live))))
        now = self.clock.now()
        for bid in ids:
            booking = self.bookings[bid]
            before = booking["status"]
            booking["status"] = {"Open": "Tentative", "Tentative": "Booked"}.get(
                booking["status"], booking["status"]
            )
            booking["total_amount"] = round(booking["total_amount"] * 1.1, 2)
            booking["amount_due"] = round(booking["total_amount"] - booking["amount_paid"], 2)
            _touch(booking, now)
            self._emit_change(booking, status_changed=before != booking["status"])
        return ids

    def add_bookings(self, n: int, status: str | None = None) -> list[int]:
        """Book ``n`` new stays now; return their ids."""
        now = self.clock.now()
        ids = []
        for _ in range(n):
            booking = self._add_booking(
                self._fake, status or self._fake.weighted(BOOKING_STATUSES), now, now
            )
            self._emit("booking_new_any_status", booking)
            if booking["status"] == "Booked":
                self._emit("booking_new_status_booked", booking)
            ids.append(booking["id"])
        return ids

    def block_dates(self, property_id: int, arrival: date, departure: date) -> int:
        """Close a period as the owner would (an ``Unavailable`` booking); return its id."""
        now = self.clock.now()
        return int(
            self._add_booking(
                self._fake, "Unavailable", now, now, property_id, (arrival, departure)
            )["id"]
        )

    def cancel_booking(self, booking_id: int) -> None:
        """Decline a booking (raises KeyError for unknown ids)."""
        booking = self.bookings[booking_id]
        _touch(booking, self.clock.now())
        booking.update(status="Declined", canceled_at=booking["updated_at"])
        self._emit_change(booking, status_changed=True)

    def trash_booking(self, booking_id: int) -> None:
        """Move a booking to the trash (raises KeyError for unknown ids)."""
        booking = self.bookings[booking_id]
        booking["is_deleted"] = True
        _touch(booking, self.clock.now())
        self._emit_change(booking, status_changed=False)

    def modify_property(self, property_id: int, **fields: Any) -> None:
        """Change a property's fields (default: its name) and stamp ``updated_at``."""
        prop = self.properties[property_id]
        prop.update(fields or {"name": prop["name"] + " (renovated)"})
        prop["updated_at"] = _iso(self.clock.now())

    def delete_property(self, property_id: int) -> None:
        """Remove a property; its bookings keep pointing at it (raises KeyError if unknown).
        It is listed by ``/v2/deletedProperties`` from now on."""
        prop = self.properties.pop(property_id)
        self.rooms.pop(property_id, None)
        self.deleted_properties[property_id] = {
            "id": property_id,
            "name": prop["name"],
            "deleted_at": _iso(self.clock.now()),
        }

    def rotate_api_key(self, new_key: str = "rotated-" + SANDBOX_API_KEY[8:]) -> str:
        """Replace the key, as regenerating it in Settings → Public API would; the old one fails."""
        self.api_key = new_key
        return new_key

    # ------------------------------------------------------------------ webhooks

    def subscribe(self, target_url: str, event: str) -> Json:
        """``POST /webhooks/v1/subscribe``: the secret is returned only here."""
        if event not in WEBHOOK_EVENTS:
            raise self.error(400, f"Unknown event {event!r}", "ValidationError")
        if any(s["url"] == target_url for s in self.subscriptions.values()):
            raise self.error(409, "target_url is already subscribed", "Conflict")
        sub = {
            "id": f"wh-{len(self.subscriptions) + 1}-{secrets.token_hex(4)}",
            "event": event,
            "url": target_url,
            "secret": secrets.token_hex(32),
        }
        self.subscriptions[sub["id"]] = sub
        return {"id": sub["id"], "secret": sub["secret"]}

    def _emit_change(self, booking: Json, *, status_changed: bool) -> None:
        self._emit("booking_change", booking)
        status_event = _STATUS_EVENTS.get(booking["status"])
        if status_changed and status_event:
            self._emit(status_event, booking)

    def _emit(self, action: str, booking: Json) -> None:
        """Queue the rich booking document, signed per subscription (``ms-signature``)."""
        subs = [s for s in self.subscriptions.values() if s["event"] == action]
        if not subs:
            return
        body = dumps(self._webhook_document(action, booking))
        for sub in subs:
            digest = hmac.new(sub["secret"].encode(), body, hashlib.sha256).hexdigest()
            self.sender.queue(sub["url"], body, {"ms-signature": f"sha256={digest}"})

    def _webhook_document(self, action: str, b: Json) -> Json:
        # The webhook shape differs from REST on purpose (date-times, string amounts, guest).
        prop = self.properties.get(b["property_id"], {})
        guest = b["guest"] or {}
        return {
            "action": action,
            "booking": {
                "type": "Booking",
                "id": b["id"],
                "date_arrival": f"{b['arrival']}T14:00:00",
                "date_departure": f"{b['departure']}T10:00:00",
                "date_created": b["created_at"],
                "property_id": b["property_id"],
                "property_name": prop.get("name"),
                "status": b["status"],
                "currency_code": b["currency_code"],
                "source": b["source"],
                "source_text": b["source_text"],
                "language": b["language"],
            },
            "guest": {
                "uid": f"g-{b['id']}",
                "name": guest.get("name"),
                "email": guest.get("email"),
                "phone_number": guest.get("phone"),
                "country_code": guest.get("country_code"),
            },
            "booking_total_amount": f"{b['total_amount']:g}",
            "booking_currency_code": b["currency_code"],
            "balance_due": f"{b['amount_due']:g}",
        }

    async def _subscribe(self, request: Request) -> Response:
        body = await self._json(request)
        target, event = body.get("target_url"), body.get("event")
        if not isinstance(target, str) or not isinstance(event, str):
            raise self.error(400, "target_url and event are required", "ValidationError")
        return JSONResponse(self.subscribe(target, event), status_code=201)

    async def _list_subscriptions(self, request: Request) -> Response:
        return JSONResponse(
            [
                {"id": s["id"], "event": s["event"], "url": s["url"]}
                for s in self.subscriptions.values()
            ]
        )

    async def _unsubscribe(self, request: Request) -> Response:
        body = await self._json(request)
        if self.subscriptions.pop(str(body.get("id")), None) is None:
            raise self.error(404, "Webhook not found", "NotFound")
        return JSONResponse({})

    async def _json(self, request: Request) -> Json:
        try:
            body = json.loads(await request.body())
        except ValueError as error:
            raise self.error(400, "Body must be JSON", "ValidationError") from error
        if not isinstance(body, dict):
            raise self.error(400, "Body must be a JSON object", "ValidationError")
        return body

    # ------------------------------------------------------------------ ASGI app

    @property
    def app(self) -> Starlette:
        """The Starlette app (routes under ``/v2``); ``app.state.sandbox`` is this object."""
        if self._app is None:
            routes = [
                self._route("/v2/properties", self._list_properties),
                self._route("/v2/properties/{item_id:int}", self._get_property),
                self._route("/v2/properties/{item_id:int}/rooms", self._get_rooms),
                self._route("/v2/deletedProperties", self._list_deleted_properties),
                self._route("/v2/reservations/bookings", self._list_bookings),
                self._route("/v2/reservations/bookings/{item_id:int}", self._get_booking),
                self._route("/webhooks/v1/subscribe", self._subscribe, "POST"),
                self._route("/webhooks/v1/list", self._list_subscriptions),
                self._route("/webhooks/v1/unsubscribe", self._unsubscribe, "DELETE"),
            ]
            self._app = Starlette(routes=routes, exception_handlers={HTTPException: self._http})
            self._app.state.sandbox = self
        return self._app

    def _route(self, path: str, handler: Endpoint, method: str = "GET") -> Route:
        key = f"{method} {path}"

        async def endpoint(request: Request) -> Response:
            self.stats.record(key)
            try:
                self._enforce_rate_limit(request)
                self._authenticate(request)
                return await handler(request)
            except _ApiError as error:
                return error.response()

        return Route(path, endpoint, methods=[method])

    def error(self, status: int, message: str, code: str) -> _ApiError:
        """The documented envelope; ids are counters so responses stay deterministic."""
        n = next(self._errors)
        return _ApiError(
            status,
            {
                "message": message,
                "code": code,
                "correlation_id": f"00000000-0000-4000-8000-{n:012d}",
                "event_id": None,
            },
        )

    def _enforce_rate_limit(self, request: Request) -> None:
        if self._limiter is None:
            return
        # Lodgify counts per key; requests without one share a bucket per client address.
        key = request.headers.get("x-apikey") or (
            f"ip:{request.client.host}" if request.client else "anonymous"
        )
        wait = self._limiter.hit(key)
        if wait is None:
            return
        self.stats.rate_limited += 1
        limit, window = self._limiter.limit, self._limiter.window_seconds
        error = self.error(
            429,
            f"Rate limit exceeded: at most {limit} requests per {window:g} seconds are allowed "
            "for API v2.",
            "Unknown",
        )
        if self.config.send_retry_after:
            error.headers = {"Retry-After": str(max(1, math.ceil(wait)))}
        raise error

    def _authenticate(self, request: Request) -> None:
        presented = request.headers.get("x-apikey", "")
        if not hmac.compare_digest(presented.encode(), self.api_key.encode()):
            self.stats.auth_failures += 1
            raise self.error(401, AUTH_DENIED_MESSAGE, "NotAuthorized")

    async def _http(self, request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        detail = exc.detail if isinstance(exc, HTTPException) else "Internal error"
        code = {404: "NotFound", 405: "NotImplemented"}.get(status, "Unknown")
        return self.error(status, str(detail), code).response()

    # ------------------------------------------------------------------ handlers

    async def _list_properties(self, request: Request) -> Response:
        since = self._datetime_param(request, "updatedSince")
        self._int_param(request, "wid", minimum=1)  # website filter: one website in the sandbox
        self._bool_param(request, "includeInOut")  # accepted; availability is not emulated
        items = [
            p
            for _, p in sorted(self.properties.items())
            if since is None or _parse_ts(p["updated_at"]) >= since
        ]
        return JSONResponse(self._page(request, items))

    async def _list_deleted_properties(self, request: Request) -> Response:
        # Shape undocumented: the {count, items} envelope of the other lists is assumed.
        since = self._datetime_param(request, "deletedSince")
        items = [
            d
            for _, d in sorted(self.deleted_properties.items())
            if since is None or _parse_ts(d["deleted_at"]) >= since
        ]
        return JSONResponse(self._page(request, items))

    async def _get_property(self, request: Request) -> Response:
        prop = self.properties.get(request.path_params["item_id"])
        if prop is None:
            raise self.error(404, "Property not found", "NotFound")
        return JSONResponse(prop)

    async def _get_rooms(self, request: Request) -> Response:
        property_id = request.path_params["item_id"]
        if property_id not in self.properties:
            raise self.error(404, "Property not found", "NotFound")
        return JSONResponse(self.rooms.get(property_id, []))

    async def _list_bookings(self, request: Request) -> Response:
        keep = self._booking_filter(request)
        for flag in ("includeTransactions", "includeQuoteDetails"):
            self._bool_param(request, flag)  # accepted; payments and quotes are not emulated
        items = [b for bid, b in sorted(self.bookings.items()) if keep(bid, b)]
        return JSONResponse(self._page(request, items))

    async def _get_booking(self, request: Request) -> Response:
        booking = self.bookings.get(request.path_params["item_id"])
        if booking is None:
            raise self.error(404, "Booking not found", "NotFound")
        return JSONResponse(booking)

    def _booking_filter(self, request: Request) -> Callable[[int, Json], bool]:
        stay = self._enum_param(request, "stayFilter", _STAY_FILTERS, "Upcoming")
        stay_date = self._datetime_param(request, "stayFilterDate")
        if stay in ("ArrivalDate", "DepartureDate") and stay_date is None:
            raise self.error(400, f"stayFilterDate is required for {stay}", "ValidationError")
        day = stay_date.date().isoformat() if stay_date else ""
        trash = self._enum_param(request, "trash", _TRASH, "False")
        external = self._bool_param(request, "includeExternal")
        since = self._datetime_param(request, "updatedSince")
        today = datetime.fromtimestamp(self.clock.now(), UTC).date().isoformat()

        def stay_matches(b: Json) -> bool:
            arrival: str = b["arrival"]
            departure: str = b["departure"]
            return {
                "Upcoming": arrival >= today,
                "Current": arrival <= today < departure,
                "Historic": departure < today,
                "All": True,
                "ArrivalDate": arrival == day,
                "DepartureDate": departure == day,
            }[stay]

        def keep(bid: int, b: Json) -> bool:
            return (
                stay_matches(b)
                and (trash == "All" or b["is_deleted"] == (trash == "True"))
                and (external or bid not in self.external)
                and (since is None or _parse_ts(b["updated_at"]) >= since)
            )

        return keep

    def _page(self, request: Request, items: list[Json]) -> Json:
        page = self._int_param(request, "page", minimum=1) or 1
        size = self._int_param(request, "size", minimum=1) or self.config.default_size
        size = min(size, self.config.max_size)
        start = (page - 1) * size
        return {
            "count": len(items) if self._bool_param(request, "includeCount") else None,
            # An empty result comes back as null, not [] (integrators normalise it).
            "items": items[start : start + size] if items else None,
        }

    # ------------------------------------------------------------------ query parsing

    def _int_param(self, request: Request, name: str, minimum: int) -> int | None:
        raw = request.query_params.get(name)
        if not raw:
            return None
        try:
            value = int(raw)
        except ValueError:
            raise self.error(
                400, f"The value '{raw}' is not valid for {name}.", "ArgumentError"
            ) from None
        if value < minimum:
            raise self.error(400, f"{name} must be at least {minimum}.", "ValidationError")
        return value

    def _bool_param(self, request: Request, name: str) -> bool:
        raw = (request.query_params.get(name) or "false").lower()
        if raw not in ("true", "false"):
            raise self.error(400, f"The value '{raw}' is not valid for {name}.", "ArgumentError")
        return raw == "true"

    def _enum_param(
        self, request: Request, name: str, values: tuple[str, ...], default: str
    ) -> str:
        # ASP.NET binds enums case-insensitively.
        raw = request.query_params.get(name) or default
        for value in values:
            if value.lower() == raw.lower():
                return value
        raise self.error(400, f"The value '{raw}' is not valid for {name}.", "ArgumentError")

    def _datetime_param(self, request: Request, name: str) -> datetime | None:
        raw = request.query_params.get(name)
        if not raw:
            return None
        try:
            return _parse_ts(raw)
        except (ValueError, OverflowError):
            raise self.error(
                400, f"The value '{raw}' is not valid for {name}.", "ArgumentError"
            ) from None


def create_app(config: LodgifySandboxConfig | None = None) -> Starlette:
    """Build a fresh sandbox and return its app (the sandbox is at ``app.state.sandbox``)."""
    return LodgifySandbox(config).app


def _iso(ts: float, *, millis: bool = False, naive: bool = False) -> str:
    moment = datetime.fromtimestamp(ts, UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if millis:
        text += f".{moment.microsecond // 1000:03d}"
    return text if naive else text + "Z"


def _touch(booking: Json, ts: float, *, naive: bool = False) -> None:
    # Some live timestamps come without "Z"; they are UTC (fact sheet, section 7).
    booking["updated_at"] = _iso(ts, naive=naive)


def _parse_ts(value: str) -> datetime:
    """ISO-8601 with or without ``Z``/offset/fraction, or a bare date; naive means UTC."""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def build_sandbox(options: SandboxOptions) -> MountedSandbox:
    """Mount point for `pms sandbox serve` / `pms demo` (see ``pms_cli.sandbox.server``)."""
    config = LodgifySandboxConfig(
        seed=options.seed, properties=options.listings, bookings=options.reservations
    )
    if options.clock is not None:
        config.clock = options.clock
    if options.relaxed:
        config.rate_limit = None
    sandbox = LodgifySandbox(config)
    return MountedSandbox(
        provider="lodgify",
        app=sandbox.app,
        credentials={"api_key": sandbox.api_key},
        api_path="",
        state=sandbox,
    )
