"""Guesty Open API emulator (see ``providers/guesty.md``), in-process, no sleeps.

Mount the app at ``/guesty``; clients then use ``http://127.0.0.1:PORT/guesty/v1`` as their base
URL and get tokens from ``http://127.0.0.1:PORT/guesty/oauth2/token`` (beside ``/v1``, as on
``open-api.guesty.com``). State lives in memory on a :class:`GuestySandbox`; tests drive time
with a ``ManualClock`` and change data through the mutation methods.

It is the 2027 Guesty: the legacy ``/v1/reservations`` routes answer 410 Gone (unless
``legacy_reservations`` turns them back on for migration tests); reservations are read through
``/v1/reservations-v3/search`` (bracket filters, documented sorts, 400 for anything else,
``pagination.hasMore``) and ``/v1/reservations-v3`` by ids (a bare array). Rows are lean, shaped
as public client code reports them: search rows keyed ``reservationId``, by-id rows ``_id``, the
listing and dates in ``stay[]`` segments, no guest or money (``/v1/guest-folio/overview`` serves
money for up to 200 ids; the guests list needs ``columns`` and names email/phone
``guestEmail``/``guestPhone``). Webhooks: ``PUT /v1/webhooks/{id}`` changes events only,
``DELETE`` removes one, new subscriptions to the legacy reservation events get 400, and
subscribers of the v2 events receive lean ``reservation.created.v2`` / ``reservation.updated.v2``
bodies (the reservation id rotates between the places receivers report it).

Emulated: the client-credentials token endpoint with its per-client 24 h quota (429 after 5),
bearer auth (401 ``UNAUTHORIZED``; 403 when the ``Bearer`` prefix is missing), three rate-limit
windows per client with the six ``X-RateLimit-*`` headers and ``Retry-After``, the
``{results, count, limit, skip}`` envelope of listings/reservations, the ``{results, total}``
envelope and ``columns`` of guests-crud, ``fields`` projection, JSON ``filters`` and ``sort``.
Guesses (the fact sheet marks them unverified): the token quota's 429 body and Retry-After,
400 for ``limit`` above 100, the 429 body of the data API, owner holds as ``source: owner``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

from starlette.applications import Starlette
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
    "RESERVATION_STATUSES",
    "SANDBOX_CLIENT_ID",
    "SANDBOX_CLIENT_SECRET",
    "GuestySandbox",
    "GuestySandboxConfig",
    "create_app",
    "object_id",
]

Json = dict[str, Any]

# Published, sandbox-only credentials (Guesty client ids are Okta ids, "0oa…").
SANDBOX_CLIENT_ID = "0oa8sandboxGuesty5d7"
SANDBOX_CLIENT_SECRET = "gS4ndb0x-Jq7v2XyPq9LmN3rT8wZ1aB6cD0eF4gH7iK2lM5nO8pQ"
TOKEN_TTL_SECONDS = 86_400
_DAY = 86_400.0

RESERVATION_STATUSES: dict[str, float] = {
    "confirmed": 42, "checked_out": 16, "checked_in": 3, "canceled": 12, "inquiry": 7,
    "reserved": 4, "declined": 2, "expired": 2, "closed": 1,
}  # fmt: skip
# source → integration.platform (the source is free text; the platform is an identifier).
_SOURCES: dict[str, str] = {
    "Airbnb": "airbnb2", "Booking.com": "bookingCom", "Vrbo": "homeaway2", "manual": "manual",
    "direct": "direct", "Website": "manual",
}  # fmt: skip
_SOURCE_WEIGHTS: dict[str, float] = {
    "Airbnb": 38, "Booking.com": 25, "Vrbo": 8, "manual": 10, "direct": 9, "Website": 6,
}  # fmt: skip
OWNER_SOURCE = "owner"
_CANCELLED = ("canceled", "declined", "expired", "closed")
# Present on a reservation only when asked for through `fields`.
_ON_REQUEST = ("guest", "listing", "plannedArrival", "plannedDeparture", "numberOfGuests")
_LANGUAGES = ("en", "de", "fr", "es", "pt", "it", None)
_WINDOW_NAMES = ("Second", "Minute", "Hour")
_FILTER_OPERATORS = frozenset(
    {"$eq", "$not", "$contains", "$notcontains", "$gt", "$lt", "$between"}
    | {"$gte", "$lte", "$in"}  # not documented, but integrators send them
)


def object_id(ts: float, fake: FakeData) -> str:
    """A MongoDB ObjectId: 4-byte creation time then 8 random bytes, so ``_id`` order is age."""
    return f"{int(ts):08x}{fake.hex(16)}"


def iso_ms(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{round(ts * 1000) % 1000:03d}Z"
    )


@dataclass
class GuestySandboxConfig:
    """Knobs of the emulator; the defaults are the documented production values."""

    seed: int = 42
    listings: int = 10
    reservations: int = 200
    client_id: str = SANDBOX_CLIENT_ID
    client_secret: str = SANDBOX_CLIENT_SECRET
    #: Tokens per client per ``token_quota_window`` seconds; None disables the quota.
    token_quota: int | None = 5
    token_quota_window: float = _DAY
    token_ttl: int = TOKEN_TTL_SECONDS
    #: Window name (Second/Minute/Hour) → (max requests, seconds); None disables limiting.
    rate_limits: dict[str, tuple[int, float]] | None = field(
        default_factory=lambda: {"Second": (15, 1.0), "Minute": (120, 60.0), "Hour": (5000, 3600.0)}
    )
    max_limit: int = 100
    default_limit: int = 25
    #: Serve the legacy ``/v1/reservations`` routes (retired 2027-03-01) instead of 410.
    legacy_reservations: bool = False
    #: Refuse guest-list columns outside the documented list (400), as Guesty might.
    strict_guest_columns: bool = False
    clock: Clock = field(default_factory=SystemClock)


class _ApiError(Exception):
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def _fail(status: int, code: str, message: str) -> _ApiError:
    # Documented envelope of every Open API 4xx.
    return _ApiError(status, {"error": {"code": code, "message": message}})


def _bad(message: str) -> _ApiError:
    return _fail(400, "BAD_REQUEST", message)


@dataclass
class _Token:
    client_id: str
    expires_at: float


class _Windows:
    """Sliding windows per client that also report what is left (for the headers)."""

    def __init__(self, limits: dict[str, tuple[int, float]], clock: Clock) -> None:
        self.limits, self.clock = limits, clock
        self.hits: dict[tuple[str, str], deque[float]] = {}

    def hit(self, key: str) -> tuple[float | None, dict[str, str]]:
        now = self.clock.now()
        waits, remaining = [], {}
        for name, (limit, seconds) in self.limits.items():
            hits = self.hits.setdefault((key, name), deque())
            while hits and hits[0] <= now - seconds:
                hits.popleft()
            if len(hits) >= limit:
                waits.append(hits[0] + seconds - now)
            remaining[name] = limit - len(hits)
        if not waits:
            for name in self.limits:
                self.hits[(key, name)].append(now)
                remaining[name] -= 1
        headers = {}
        for name, (limit, _) in self.limits.items():
            headers[f"X-RateLimit-Limit-{name}"] = str(limit)
            headers[f"X-RateLimit-Remaining-{name}"] = str(max(0, remaining[name]))
        return (max(waits) if waits else None), headers


Endpoint = Callable[[Request], Awaitable[Response]]


class GuestySandbox:
    """In-memory Guesty Open API: tokens with quota, rate limits, listings, reservations, guests.

    ``stats`` counts what the server saw; mutation methods stamp ``lastUpdatedAt`` with the clock.
    """

    def __init__(self, config: GuestySandboxConfig | None = None) -> None:
        self.config = config or GuestySandboxConfig()
        self.clock = self.config.clock
        self.stats = RequestStats()
        fake = FakeData(self.config.seed)
        self.account_id = fake.hex(24)
        self.listings: dict[str, Json] = {}
        for index in range(self.config.listings):
            listing = self._make_listing(fake, index)
            self.listings[listing["_id"]] = listing
        self.guests: dict[str, Json] = {}
        self._guest_ids: list[str] = []
        self.reservations: dict[str, Json] = {}
        self._generate_reservations(fake)
        # Mutations draw from their own stream so they never disturb the generated data.
        self._fake = FakeData(self.config.seed + 1)
        self._tokens: dict[str, _Token] = {}
        self._issued: dict[str, deque[float]] = {}
        limits = self.config.rate_limits
        self._windows = _Windows(limits, self.clock) if limits else None
        self._app: Starlette | None = None
        #: ``/v1/webhooks`` subscriptions by id, each with its Svix signing secret.
        self.webhooks: dict[str, Json] = {}
        self.sender = WebhookSender()
        self.webhook_updates = 0
        self._webhook_seq = 0
        self._v2_sent = 0
        self._sort_cache: dict[str, tuple[Any, list[Json]]] = {}

    # ------------------------------------------------------------------ data generation

    def _make_listing(self, fake: FakeData, index: int) -> Json:
        city = fake.city()
        created = SANDBOX_EPOCH.timestamp() - fake.rng.uniform(400 * _DAY, 900 * _DAY)
        updated = SANDBOX_EPOCH.timestamp() - fake.rng.uniform(3600, 300 * _DAY)
        street, zipcode = fake.street_address(city), fake.postcode(city)
        lat, lng = fake.near(city)
        capacity = fake.rng.randint(2, 10)
        bedrooms = max(1, capacity // 2 - fake.rng.randint(0, 1))
        listing_id = object_id(created, fake)
        return {
            "_id": listing_id,
            "accountId": self.account_id,
            "title": fake.listing_name(city),
            "nickname": f"{city.name[:3].upper()}-{bedrooms}BR-{index + 1:02d}",
            "type": "SINGLE",
            "propertyType": fake.choice(("Apartment", "House", "Loft", "Villa", "Condominium")),
            "roomType": fake.weighted(
                {"Entire home/apt": 88, "Private room": 10, "Shared room": 2}
            ),
            # Every eighth listing is deactivated so lists always carry an inactive one.
            "active": index % 8 != 7,
            "isListed": index % 8 != 7 and fake.chance(0.9),
            # Every sixth has the PMS off, so "every listing" includes one of those too.
            "pms": {"active": index % 6 != 5},
            "accommodates": capacity,
            "bedrooms": bedrooms,
            "beds": bedrooms + fake.rng.randint(0, 2),
            "bathrooms": fake.choice((1, 1.5, 2, 2.5)),
            "timezone": city.time_zone,
            "defaultCheckInTime": fake.choice(("14:00", "15:00", "16:00")),
            "defaultCheckOutTime": fake.choice(("10:00", "11:00", "12:00")),
            "address": {
                "full": f"{street}, {zipcode} {city.name}, {city.country}",
                "street": street,
                "city": city.name,
                "state": city.state,
                "zipcode": zipcode,
                "country": city.country,
                "lat": lat,
                "lng": lng,
            },
            "prices": {
                "basePrice": fake.rng.randint(60, 450),
                "currency": city.currency,
                "cleaningFee": fake.rng.randint(20, 120),
            },
            "picture": {"thumbnail": f"https://images.sandbox.invalid/guesty/{listing_id}.jpg"},
            "tags": [city.name.lower().replace(" ", "-")],
            "createdAt": iso_ms(created),
            "lastUpdatedAt": iso_ms(updated),
        }

    def _make_guest(self, fake: FakeData, person: Person, created: float) -> Json:
        home = fake.city()
        email = None if fake.chance(0.1) else fake.email(person)
        phone = None if fake.chance(0.15) else fake.phone(home)
        stamp = iso_ms(created)
        if fake.chance(0.2):  # the spec's example carries an offset instead of Z
            local = datetime.fromtimestamp(created, UTC).astimezone(ZoneInfo(home.time_zone))
            stamp = local.isoformat(timespec="milliseconds")
        guest: Json = {
            "_id": object_id(created, fake),
            "firstName": person.first,
            "lastName": person.last,
            "fullName": person.full,
            "email": email,
            "emails": [email] if email else [],
            "phone": phone,
            "phones": [phone] if phone else [],
            "hometown": home.name,
            "preferredLanguage": fake.choice(_LANGUAGES),
            "createdAt": stamp,
        }
        if fake.chance(0.6):
            guest["address"] = {
                "city": home.name,
                "country": home.country,
                "countryCode": home.country_code,
            }
        self.guests[guest["_id"]] = guest
        self._guest_ids.append(guest["_id"])
        return guest

    def _generate_reservations(self, fake: FakeData) -> None:
        if not self.listings:
            return
        epoch = SANDBOX_EPOCH.timestamp()
        booked = sorted(
            epoch - fake.rng.uniform(3600, 365 * _DAY) for _ in range(self.config.reservations)
        )
        for booked_at in booked:
            owner = fake.chance(0.04)
            status = "confirmed" if owner else fake.weighted(RESERVATION_STATUSES)
            res = self._make_reservation(fake, booked_at, status, owner=owner)
            updated = booked_at + 1 + fake.rng.uniform(0, min(30 * _DAY, epoch - booked_at - 2))
            res["lastUpdatedAt"] = iso_ms(updated)
            if status in _CANCELLED:
                res["canceledAt"] = res["lastUpdatedAt"]
            self.reservations[res["_id"]] = res

    def _make_reservation(
        self, fake: FakeData, booked_at: float, status: str, *, owner: bool
    ) -> Json:
        listing = self.listings[fake.choice(sorted(self.listings))]
        # Data is made in booking order, so every known guest booked before: a returning one.
        returning = not owner and bool(self.guests) and fake.chance(0.12)
        if returning:
            guest = self.guests[fake.choice(self._guest_ids)]
        else:
            guest = self._make_guest(fake, fake.person(), booked_at)
        source = OWNER_SOURCE if owner else fake.weighted(_SOURCE_WEIGHTS)
        zone = ZoneInfo(listing["timezone"])
        arrival = datetime.fromtimestamp(booked_at, UTC).date() + timedelta(
            fake.rng.randint(1, 180)
        )
        nights = fake.weighted({1: 8, 2: 20, 3: 20, 4: 14, 5: 10, 7: 12, 10: 5, 14: 4})
        departure = arrival + timedelta(nights)
        planned_in = listing["defaultCheckInTime"] if fake.chance(0.7) else "17:30"
        planned_out = listing["defaultCheckOutTime"]
        adults = fake.rng.randint(1, listing["accommodates"])
        children = fake.rng.randint(0, 2) if fake.chance(0.25) else 0
        fare = (
            0
            if owner
            else round(listing["prices"]["basePrice"] * nights * fake.rng.uniform(0.85, 1.3), 2)
        )
        cleaning = 0 if owner else listing["prices"]["cleaningFee"]
        taxes = round(fare * 0.07, 2) if fake.chance(0.4) else 0
        total = round(fare + cleaning + taxes, 2)
        paid = fake.choice((total, total, round(total / 2, 2), 0)) if status != "inquiry" else 0
        res: Json = {
            "_id": object_id(booked_at, fake),
            "accountId": self.account_id,
            "confirmationCode": f"GY-{fake.code(8, 'abcdefghijkmnpqrstuvwxyz23456789')}",
            "status": status,
            "listingId": listing["_id"],
            "guestId": guest["_id"],
            "guest": {
                k: guest[k] for k in ("_id", "fullName", "firstName", "lastName", "email", "phone")
            },
            "checkIn": _utc_at(arrival, planned_in, zone),
            "checkOut": _utc_at(departure, planned_out, zone),
            "checkInDateLocalized": arrival.isoformat(),
            "checkOutDateLocalized": departure.isoformat(),
            "plannedArrival": planned_in,
            "plannedDeparture": planned_out,
            "nightsCount": nights,
            "guestsCount": adults + children,
            "numberOfGuests": {
                "numberOfAdults": adults,
                "numberOfChildren": children,
                "numberOfInfants": 0,
            },
            "source": source,
            "integration": {
                "_id": object_id(booked_at, fake),
                "platform": "manual" if owner else _SOURCES[source],
            },
            "money": {
                "currency": listing["prices"]["currency"],
                "fareAccommodation": fare,
                "fareCleaning": cleaning,
                "totalTaxes": taxes,
                "subTotalPrice": round(fare + cleaning, 2),
                "totalPaid": paid,
                "balanceDue": round(total - paid, 2),
                "hostPayout": round(total * 0.85, 2),
            },
            "createdAt": iso_ms(booked_at),
            "confirmedAt": iso_ms(booked_at + 60) if status != "inquiry" else None,
            "lastUpdatedAt": iso_ms(booked_at),
            "isReturningGuest": returning,
            "manuallyCreated": source in ("manual", OWNER_SOURCE),
        }
        return res

    # ------------------------------------------------------------------ mutations (for tests)

    def modify_reservations(self, n: int) -> list[str]:
        """Change status and price of ``n`` random reservations; return their ids."""
        ids = sorted(
            self._fake.rng.sample(sorted(self.reservations), min(n, len(self.reservations)))
        )
        now = self.clock.now()
        for rid in ids:
            res = self.reservations[rid]
            res["status"] = {"reserved": "confirmed", "inquiry": "reserved"}.get(
                res["status"], res["status"]
            )
            m = res["money"]
            m["fareAccommodation"] = round(
                m["fareAccommodation"] * self._fake.rng.uniform(1.01, 1.2), 2
            )
            m["subTotalPrice"] = round(m["fareAccommodation"] + m["fareCleaning"], 2)
            total = m["subTotalPrice"] + m["totalTaxes"]
            m["balanceDue"] = round(total - m["totalPaid"], 2)
            res["lastUpdatedAt"] = iso_ms(now)
            self._emit("reservation.updated", res)
        return ids

    def add_reservations(self, n: int) -> list[str]:
        """Book ``n`` new confirmed reservations now; return their ids."""
        now = self.clock.now()
        ids = []
        for _ in range(n):
            res = self._make_reservation(self._fake, now, "confirmed", owner=False)
            self.reservations[res["_id"]] = res
            self._emit("reservation.new", res)
            ids.append(res["_id"])
        return ids

    def cancel_reservation(self, reservation_id: str) -> None:
        """Cancel a reservation as the guest would (raises KeyError for unknown ids)."""
        res = self.reservations[reservation_id]
        res["status"] = "canceled"
        res["canceledAt"] = res["lastUpdatedAt"] = iso_ms(self.clock.now())
        self._emit("reservation.updated", res)

    def revoke_all_tokens(self) -> None:
        """Invalidate every issued token, as rotating the client secret would."""
        self._tokens.clear()

    def add_webhook(self, url: str, events: list[str]) -> Json:
        """Subscribe ``url`` (``POST /v1/webhooks``); its signing secret is per endpoint URL."""
        # A counter, not len(): ids stay unique once webhooks are deleted.
        hook_id = object_id(self.clock.now(), FakeData(self._webhook_seq))
        self._webhook_seq += 1
        hook = {"_id": hook_id, "accountId": self.account_id, "url": url, "events": events}
        self.webhooks[hook_id] = {
            **hook,
            "secret": "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
        }
        return hook

    def webhook_secret(self, url: str) -> str | None:
        return next((w["secret"] for w in self.webhooks.values() if w["url"] == url), None)

    def _emit(self, event: str, res: Json) -> None:
        """Queue the legacy ``{event, reservation, meta}`` body to legacy subscribers and the
        lean v2 body to v2 subscribers, each signed the Svix way with its endpoint's secret."""
        v2_event = V2_EVENTS[event]
        for hook in list(self.webhooks.values()):
            if event in hook["events"]:
                message_id = "msg_" + secrets.token_hex(12)
                payload: Json = {
                    "event": event,
                    "reservation": self._present(res),
                    "meta": {"eventId": secrets.token_hex(12), "messageId": message_id},
                }
                self._sign_and_queue(hook, message_id, payload)
            if v2_event in hook["events"]:
                self._sign_and_queue(
                    hook, "msg_" + secrets.token_hex(12), self._v2_body(v2_event, res)
                )

    def _v2_body(self, event: str, res: Json) -> Json:
        """A lean v2 body; where the id sits rotates between the shapes receivers report."""
        self._v2_sent += 1
        rid = res["_id"]
        lean: Json = {
            "status": res["status"],
            "confirmationCode": res["confirmationCode"],
            "stay": self._v3_row(res)["stay"],
        }
        shape = self._v2_sent % 3
        data: Json = {**lean, "reservationId": rid} if shape == 0 else lean
        if shape == 1:
            data = {**lean, "reservation": {"id": rid}}
        body: Json = {
            ("eventType" if self._v2_sent % 2 else "event"): event,
            "publishedAt": iso_ms(self.clock.now()),
            "accountId": self.account_id,
            "subTypes": ["created"] if event.startswith("reservation.created") else ["status"],
            "data": data,
        }
        if shape == 2:
            body["reservationId"] = rid
        return body

    def _sign_and_queue(self, hook: Json, message_id: str, payload: Json) -> None:
        body = dumps(payload)
        stamp = str(int(self.clock.now()))
        key = base64.b64decode(hook["secret"].removeprefix("whsec_"))
        signed = f"{message_id}.{stamp}.".encode() + body
        digest = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        headers = {
            "svix-id": message_id,
            "svix-timestamp": stamp,
            "svix-signature": f"v1,{digest}",
        }
        self.sender.queue(hook["url"], body, headers)

    async def _create_webhook(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError as error:
            raise _bad("body must be JSON") from error
        url = body.get("url") if isinstance(body, dict) else None
        events = body.get("events") if isinstance(body, dict) else None
        if not isinstance(url, str) or not isinstance(events, list):
            raise _bad("url and events are required")
        legacy = sorted(set(map(str, events)) & set(V2_EVENTS))
        if legacy:  # reported since mid-2026 (unconfirmed): no new legacy subscriptions
            raise _bad(f"events {legacy} are deprecated; subscribe to the .v2 events")
        return JSONResponse(self.add_webhook(url, [str(e) for e in events]), status_code=201)

    async def _update_webhook(self, request: Request) -> Response:
        hook = self.webhooks.get(request.path_params["item_id"])
        if hook is None:
            raise _fail(404, "NOT_FOUND", "Webhook not found")
        try:
            body = json.loads(await request.body())
        except ValueError as error:
            raise _bad("body must be JSON") from error
        if not isinstance(body, dict) or not isinstance(body.get("events"), list):
            raise _bad("events are required")
        if "url" in body and body["url"] != hook["url"]:
            # Since 2025-12-28 a webhook's URL cannot change: delete and recreate it.
            raise _bad("url cannot be updated; delete the webhook and create a new one")
        hook["events"] = [str(e) for e in body["events"]]
        self.webhook_updates += 1
        return JSONResponse({k: v for k, v in hook.items() if k != "secret"})

    async def _delete_webhook(self, request: Request) -> Response:
        if self.webhooks.pop(request.path_params["item_id"], None) is None:
            raise _fail(404, "NOT_FOUND", "Webhook not found")
        return Response(status_code=204)

    async def _list_webhooks(self, request: Request) -> Response:
        return JSONResponse(
            [{k: v for k, v in w.items() if k != "secret"} for w in self.webhooks.values()]
        )

    async def _get_webhook_secret(self, request: Request) -> Response:
        secret = self.webhook_secret(request.query_params.get("url", ""))
        if secret is None:
            raise _fail(404, "NOT_FOUND", "No webhook with this url")
        return JSONResponse({"key": secret})

    @property
    def tokens_issued(self) -> int:
        return self.stats.tokens_issued

    # ------------------------------------------------------------------ ASGI app

    @property
    def app(self) -> Starlette:
        """The Starlette app (``/oauth2/token`` and ``/v1/...``); ``app.state.sandbox`` is self."""
        if self._app is None:
            routes = [
                self._route("POST", "/oauth2/token", self._issue_token, api=False),
                self._route("GET", "/v1/listings", self._list_listings),
                self._route("GET", "/v1/listings/{item_id}", self._get_listing),
                self._route("GET", "/v1/reservations", self._list_reservations),
                self._route("GET", "/v1/reservations/{item_id}", self._get_reservation),
                self._route("GET", "/v1/reservations-v3/search", self._search_v3),
                self._route("GET", "/v1/reservations-v3", self._reservations_by_ids),
                self._route("GET", "/v1/guest-folio/overview", self._folio_overview),
                self._route("GET", "/v1/guests-crud", self._list_guests),
                self._route("GET", "/v1/guests-crud/{item_id}", self._get_guest),
                self._route("GET", "/v1/webhooks", self._list_webhooks),
                self._route("POST", "/v1/webhooks", self._create_webhook),
                self._route("PUT", "/v1/webhooks/{item_id}", self._update_webhook),
                self._route("DELETE", "/v1/webhooks/{item_id}", self._delete_webhook),
                self._route("GET", "/v1/webhooks-v2/secret", self._get_webhook_secret),
            ]
            self._app = Starlette(routes=routes)
            self._app.state.sandbox = self
        return self._app

    def _route(self, method: str, path: str, handler: Endpoint, *, api: bool = True) -> Route:
        key = f"{method} {path}"

        async def endpoint(request: Request) -> Response:
            self.stats.record(key)
            headers: dict[str, str] = {}
            try:
                if api:
                    client_id = self._authenticate(request)
                    headers = self._rate_limit(client_id)
                response = await handler(request)
            except _ApiError as error:
                response = JSONResponse(error.body, error.status, headers=error.headers)
            response.headers.update(headers)
            return response

        return Route(path, endpoint, methods=[method])

    def _authenticate(self, request: Request) -> str:
        header = request.headers.get("authorization")
        scheme, _, value = (header or "").partition(" ")
        if header and scheme.lower() != "bearer":
            self.stats.auth_failures += 1
            message = "You don't have permission to access, please contact Guesty support"
            raise _fail(403, "FORBIDDEN", message)
        token = self._tokens.get(value.strip())
        if token is None or self.clock.now() >= token.expires_at:
            self.stats.auth_failures += 1
            raise _fail(401, "UNAUTHORIZED", "Unauthorized")
        return token.client_id

    def _rate_limit(self, client_id: str) -> dict[str, str]:
        if self._windows is None:
            return {}
        wait, headers = self._windows.hit(client_id)
        if wait is not None:
            self.stats.rate_limited += 1
            headers["Retry-After"] = str(max(1, math.ceil(wait)))
            raise _ApiError(
                429,
                {"error": {"code": "TOO_MANY_REQUESTS", "message": "API rate limit exceeded"}},
                headers,
            )
        return headers

    # ------------------------------------------------------------------ handlers

    async def _issue_token(self, request: Request) -> Response:
        try:
            form = dict(parse_qsl((await request.body()).decode()))
        except UnicodeDecodeError:
            form = {}
        if form.get("grant_type") != "client_credentials":
            raise _ApiError(400, {"error": "unsupported_grant_type"})
        if form.get("scope", "open-api") != "open-api":
            raise _ApiError(400, {"error": "invalid_scope"})
        client_id = form.get("client_id", "")
        ok = hmac.compare_digest(
            form.get("client_secret", "").encode(), self.config.client_secret.encode()
        )
        if client_id != self.config.client_id or not ok:
            self.stats.auth_failures += 1
            body: Json = {
                "error": "invalid_client",
                "error_description": "Client authentication failed",
            }
            raise _ApiError(401, body)
        now = self.clock.now()
        issued = self._issued.setdefault(client_id, deque())
        window = self.config.token_quota_window
        while issued and issued[0] <= now - window:
            issued.popleft()
        if self.config.token_quota is not None and len(issued) >= self.config.token_quota:
            self.stats.rate_limited += 1
            retry = str(max(1, math.ceil(issued[0] + window - now)))
            body = {
                "error": "too_many_requests",
                "error_description": "Token quota exceeded: reuse the token you already have",
            }
            raise _ApiError(429, body, {"Retry-After": retry})
        issued.append(now)
        claims = {
            "cid": client_id,
            "accountId": self.account_id,
            "scp": ["open-api"],
            "iat": int(now),
            "exp": int(now) + self.config.token_ttl,
            "jti": secrets.token_hex(16),
        }
        token = ".".join(
            base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()
            for part in ({"alg": "RS256", "typ": "JWT"}, claims)
        )
        token += "." + base64.urlsafe_b64encode(secrets.token_bytes(64)).rstrip(b"=").decode()
        self._tokens[token] = _Token(client_id, now + self.config.token_ttl)
        self.stats.tokens_issued += 1
        body = {
            "token_type": "Bearer",
            "expires_in": self.config.token_ttl,
            "access_token": token,
            "scope": "open-api",
        }
        return JSONResponse(body)

    async def _list_listings(self, request: Request) -> Response:
        q = request.query_params
        items = list(self.listings.values())
        for name, key in (
            ("active", "active"),
            ("listed", "isListed"),
            ("pmsActive", "pms.active"),
        ):
            if q.get(name) in ("true", "false"):
                items = [i for i in items if _get(i, key) is (q[name] == "true")]
        if q.get("ids"):
            wanted = set(q["ids"].split(","))
            items = [i for i in items if i["_id"] in wanted]
        if q.get("q"):
            needle = q["q"].lower()
            items = [i for i in items if needle in f"{i['title']} {i['address']['full']}".lower()]
        items = self._sorted("listings", items, q.get("sort") or "title")
        return JSONResponse(self._page(request, items, _project))

    async def _get_listing(self, request: Request) -> Response:
        listing = self.listings.get(request.path_params["item_id"])
        if listing is None:
            raise _fail(404, "NOT_FOUND", "Listing not found")
        return JSONResponse(_project(listing, _field_list(request, "fields")))

    def _legacy(self) -> None:
        if not self.config.legacy_reservations:
            raise _fail(410, "GONE", "This endpoint was retired on 2027-03-01; use reservations-v3")

    async def _list_reservations(self, request: Request) -> Response:
        self._legacy()
        keep = _filters(request)
        items = [r for r in self.reservations.values() if keep(r)]
        items = self._sorted("reservations", items, request.query_params.get("sort") or "_id")
        return JSONResponse(self._page(request, items, self._present))

    async def _get_reservation(self, request: Request) -> Response:
        self._legacy()
        res = self.reservations.get(request.path_params["item_id"])
        if res is None:
            raise _fail(404, "NOT_FOUND", "Reservation not found")
        return JSONResponse(self._present(res, _field_list(request, "fields")))

    def _v3_row(self, res: Json, *, key: str = "reservationId") -> Json:
        """The lean v3 shape: no guest or money; listing and dates in ``stay[]``."""
        segment = {
            k: res.get(k)
            for k in (
                "listingId",
                "checkIn",
                "checkOut",
                "checkInDateLocalized",
                "checkOutDateLocalized",
                "plannedArrival",
                "plannedDeparture",
                "nightsCount",
                "guestsCount",
                "numberOfGuests",
            )
        }
        row: Json = {key: res["_id"]}
        for k in ("accountId", "confirmationCode", "status", "source", "guestId", "createdAt"):
            row[k] = res.get(k)
        row["integration"] = {"platform": res["integration"]["platform"]}
        row["stay"] = [segment]
        if res.get("canceledAt"):
            row["canceledAt"] = res["canceledAt"]
        return row

    async def _search_v3(self, request: Request) -> Response:
        keep = _v3_filters(request)
        sort = request.query_params.get("sort") or "-_id"
        if sort.lstrip("-") not in _V3_SORTS:
            raise _bad(f"sort by {sort!r} is not supported")
        items = [r for r in self.reservations.values() if keep(r)]
        ordered = self._sorted("reservations-v3", items, sort)
        limit = _int(request, "limit", self.config.default_limit, minimum=1)
        if limit > self.config.max_limit:
            raise _bad(f"limit must be less than or equal to {self.config.max_limit}")
        skip = _int(request, "skip", 0, minimum=0)
        page = ordered[skip : skip + limit]
        return JSONResponse(
            {
                "results": [self._v3_row(r) for r in page],
                "pagination": {
                    "skip": skip,
                    "limit": limit,
                    "hasMore": skip + limit < len(ordered),
                },
            }
        )

    async def _reservations_by_ids(self, request: Request) -> Response:
        ids = _id_list(request, "reservationIds")
        if not ids:
            raise _bad("reservationIds is required")
        if len(ids) > self.config.max_limit:
            raise _bad(f"at most {self.config.max_limit} reservationIds")
        found = [self.reservations[i] for i in ids if i in self.reservations]
        return JSONResponse([self._v3_row(r, key="_id") for r in found])

    async def _folio_overview(self, request: Request) -> Response:
        ids = _id_list(request, "reservationIds")
        fields = _id_list(request, "fields")
        if not ids or not fields:
            raise _bad("reservationIds and fields are required")
        if len(ids) > 200:
            raise _bad("at most 200 reservationIds per request")
        unknown = sorted(set(fields) - _FOLIO_FIELDS)
        if unknown:
            raise _bad(f"unknown fields {unknown}")
        results, missing = [], []
        for rid in ids:
            res = self.reservations.get(rid)
            if res is None:
                missing.append(rid)
                continue
            m = res["money"]
            results.append({"reservationId": rid, **{f: m.get(f) for f in fields}})
        return JSONResponse({"results": results, "notFound": missing})

    async def _list_guests(self, request: Request) -> Response:
        columns = _field_list(request, "columns")
        if not columns:
            raise _bad("columns is required")
        unknown = sorted(set(columns) - _DOCUMENTED_GUEST_COLUMNS)
        if self.config.strict_guest_columns and unknown:
            raise _bad(f"unknown columns {unknown}")
        keep = _filters(request)
        items = self._sorted("guests", [g for g in self.guests.values() if keep(g)], "_id")
        # guests-crud selects with `columns` (not `fields`) and answers {results, total}.
        page = self._page(request, items, _guest_columns, columns="columns")
        return JSONResponse({"results": page["results"], "total": page["count"]})

    async def _get_guest(self, request: Request) -> Response:
        guest = self.guests.get(request.path_params["item_id"])
        if guest is None:
            raise _fail(404, "NOT_FOUND", "Guest not found")
        # Documented: email and phone come with the guests list, not the single-guest call.
        single = {k: v for k, v in guest.items() if k not in _LIST_ONLY}
        return JSONResponse(_project(single, _field_list(request, "fields")))

    def _sorted(self, endpoint: str, items: list[Json], sort: str) -> list[Json]:
        """``_sorted`` remembered between the pages of one walk.

        Sorting the whole account for every page made a walk quadratic: 3,000 reservations
        took ~22 ms per page, which a real-socket benchmark then measured as the client's
        latency. The fingerprint holds each item's identity and sort value, so any change to
        the set or to a sort value (a mutation, a new record) sorts again.
        """
        key = sort.lstrip("-")
        if "." in key:
            values = [_get(item, key) for item in items]
        else:
            values = [item.get(key) for item in items]
        fingerprint = (sort, list(map(id, items)), values)
        cached = self._sort_cache.get(endpoint)
        if cached is None or cached[0] != fingerprint:
            cached = (fingerprint, _sorted(items, sort))
            self._sort_cache[endpoint] = cached
        return cached[1]

    def _present(self, res: Json, fields: list[str] | None = None) -> Json:
        if fields is None:
            return {k: v for k, v in res.items() if k not in _ON_REQUEST}
        full = dict(res)
        listing = self.listings.get(res["listingId"])
        if listing is not None:
            full["listing"] = {k: listing[k] for k in ("_id", "title", "nickname", "address")}
        return _project(full, fields)

    def _page(
        self,
        request: Request,
        items: list[Json],
        present: Callable[[Json, list[str] | None], Json],
        columns: str = "fields",
    ) -> Json:
        limit = _int(request, "limit", self.config.default_limit, minimum=1)
        if limit > self.config.max_limit:
            raise _bad(f"limit must be less than or equal to {self.config.max_limit}")
        skip = _int(request, "skip", 0, minimum=0)
        fields = _field_list(request, columns)
        page = items[skip : skip + limit]
        results = [present(r, fields) for r in page]
        return {"results": results, "count": len(items), "limit": limit, "skip": skip}


V2_EVENTS = {
    "reservation.new": "reservation.created.v2",
    "reservation.updated": "reservation.updated.v2",
}
_V3_SORTS = frozenset({"_id", "checkIn", "checkOut", "createdAt"})
# v3 filter field → (operators it takes, the stored value it compares)
_V3_FILTERS: dict[str, tuple[frozenset[str], str]] = {
    "status": (frozenset({"eq", "ne", "in", "nin"}), "status"),
    "listingId": (frozenset({"eq", "in"}), "listingId"),
    "confirmationCode": (frozenset({"eq", "in"}), "confirmationCode"),
    "source": (frozenset({"eq", "ne", "in", "nin"}), "source"),
    "checkIn": (frozenset({"eq", "gt", "gte", "lt", "lte"}), "checkInDateLocalized"),
    "checkOut": (frozenset({"eq", "gt", "gte", "lt", "lte"}), "checkOutDateLocalized"),
    "createdAt": (frozenset({"gt", "gte", "lt", "lte"}), "createdAt"),
}
_DATE_FILTERS = frozenset({"checkIn", "checkOut"})
_FOLIO_FIELDS = frozenset(
    {"currency", "fareAccommodation", "fareCleaning", "subTotalPrice", "totalTaxes"}
    | {"totalPaid", "balanceDue", "hostPayout"}
)
_LIST_ONLY = frozenset({"email", "emails", "phone", "phones"})
_DOCUMENTED_GUEST_COLUMNS = frozenset(
    {"id", "firstName", "lastName", "fullName", "tags", "notes", "goodToKnowNotes"}
    | {"guestEmail", "guestOtherEmails", "guestPhone", "guestOtherPhones", "guestHometown"}
    | {"dateCreated"}
)
_GUEST_LIST_NAMES = {
    "id": "_id",
    "guestEmail": "email",
    "guestPhone": "phone",
    "guestHometown": "hometown",
    "dateCreated": "createdAt",
}


def _guest_columns(guest: Json, columns: list[str] | None) -> Json:
    """A guests-list row: ``_id`` plus the requested columns under their list names."""
    out: Json = {"_id": guest["_id"]}
    for column in columns or []:
        if column == "guestOtherEmails":
            out[column] = list(guest.get("emails") or [])[1:]
        elif column == "guestOtherPhones":
            out[column] = list(guest.get("phones") or [])[1:]
        elif _GUEST_LIST_NAMES.get(column, column) in guest:
            out[column] = guest[_GUEST_LIST_NAMES.get(column, column)]
    return out


def _id_list(request: Request, name: str) -> list[str]:
    """``name=a,b``, ``name=a&name=b`` or ``name[]=a&name[]=b``."""
    values = request.query_params.getlist(name) + request.query_params.getlist(f"{name}[]")
    return [v for value in values for v in value.split(",") if v]


def _v3_filters(request: Request) -> Callable[[Json], bool]:
    """``filter[f]=v`` / ``filter[f][op]=v``; a comma in a value means ``in``."""
    tests: list[Callable[[Json], bool]] = []
    for name, raw in request.query_params.multi_items():
        if not name.startswith("filter["):
            if name not in ("sort", "skip", "limit"):
                raise _bad(f"unknown parameter {name!r}")
            continue
        parts = name.removeprefix("filter[").removesuffix("]").split("][")
        field_name, op = parts[0], (parts[1] if len(parts) > 1 else None)
        if field_name not in _V3_FILTERS or len(parts) > 2:
            raise _bad(f"filtering by {field_name!r} is not supported")
        ops, key = _V3_FILTERS[field_name]
        if op is None:
            if field_name in _DATE_FILTERS or field_name == "createdAt":
                raise _bad(f"filter[{field_name}] needs an operator")
            op = "in" if "," in raw else "eq"
        if op not in ops:
            raise _bad(f"operator {op!r} is not supported for {field_name}")
        if field_name in _DATE_FILTERS:
            try:
                date.fromisoformat(raw)
            except ValueError:
                raise _bad(f"filter[{field_name}] takes a local date YYYY-MM-DD") from None
        tests.append(_v3_test(key, op, raw, field_name))
    return lambda r: all(t(r) for t in tests)


def _v3_test(key: str, op: str, raw: str, field_name: str) -> Callable[[Json], bool]:
    values = raw.split(",")
    if op in ("in", "nin"):
        return lambda r: (str(r.get(key)) in values) is (op == "in")
    if op in ("eq", "ne") and field_name not in _DATE_FILTERS:
        return lambda r: (str(r.get(key)) == raw) is (op == "eq")
    wanted = {"eq": (0,), "gt": (1,), "gte": (0, 1), "lt": (-1,), "lte": (-1, 0)}[op]
    return lambda r: _compare(r.get(key), raw) in wanted


def create_app(config: GuestySandboxConfig | None = None) -> Starlette:
    """Build a fresh sandbox and return its app (the sandbox is at ``app.state.sandbox``)."""
    return GuestySandbox(config).app


# ---------------------------------------------------------------------- helpers


def _utc_at(day: date, hhmm: str, zone: ZoneInfo) -> str:
    local = datetime.combine(day, time.fromisoformat(hhmm), zone)
    return iso_ms(local.timestamp())


def _int(request: Request, name: str, default: int, minimum: int) -> int:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _bad(f"{name} must be an integer") from None
    if value < minimum:
        raise _bad(f"{name} must be >= {minimum}")
    return value


def _field_list(request: Request, name: str) -> list[str] | None:
    raw = request.query_params.get(name)
    return raw.split() if raw and raw.strip() else None


def _get(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def _project(obj: Json, fields: Iterable[str] | None) -> Json:
    """Only ``_id`` and the named (possibly dotted) fields, as Guesty's ``fields`` does."""
    if fields is None:
        return dict(obj)
    out: Json = {"_id": obj["_id"]}
    for path in fields:
        value = _get(obj, path)
        if value is None and path.split(".")[0] not in obj:
            continue
        target = out
        *parents, leaf = path.split(".")
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = value
    return out


def _sorted(items: list[Json], sort: str) -> list[Json]:
    descending = sort.startswith("-")
    key = sort.lstrip("-")

    def order(item: Json) -> tuple[bool, Any, str]:
        value = _get(item, key)
        return (value is None, _comparable(value) if value is not None else 0, item["_id"])

    return sorted(items, key=order, reverse=descending)


def _comparable(value: Any) -> Any:
    """Timestamps compare as instants (``...Z`` vs ``+01:00``), other strings as text."""
    if isinstance(value, bool | int | float):
        return float(value)
    if isinstance(value, str) and len(value) >= 10 and value[4:5] == "-":
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    return value


def _compare(left: Any, right: Any) -> int | None:
    a, b = _comparable(left), _comparable(right)
    if type(a) is not type(b):
        return None
    return int((a > b) - (a < b))


def _contains(actual: Any, value: Any) -> bool:
    if isinstance(value, list):  # client code uses `$contains` with a list as "in"
        return actual in value
    if isinstance(actual, list):
        return value in actual
    return isinstance(actual, str) and str(value).lower() in actual.lower()


def _predicate(rule: Any) -> Callable[[Json], bool]:
    if not isinstance(rule, dict) or not isinstance(rule.get("field"), str):
        raise _bad("each filter needs a field")
    if "context" in rule:
        raise _bad("filter context is not emulated by the sandbox")
    name, op = rule["field"], rule.get("operator")
    if op not in _FILTER_OPERATORS:
        raise _bad(f"unsupported operator {op!r}")
    if op == "$between":
        if "from" not in rule or "to" not in rule:
            raise _bad("$between needs from and to")
        low, high = rule["from"], rule["to"]
        return lambda r: (
            _compare(_get(r, name), low) in (0, 1) and _compare(_get(r, name), high) in (-1, 0)
        )
    if "value" not in rule:
        raise _bad(f"{op} needs a value")
    value = rule["value"]
    # A set: pms asks for a page's 100 guests by id, tested against every guest of the account.
    members = {v for v in value if isinstance(v, str | int)} if isinstance(value, list) else set()
    tests: dict[str, Callable[[Any], bool]] = {
        "$eq": lambda a: a == value or _compare(a, value) == 0,
        "$not": lambda a: not (a == value or _compare(a, value) == 0),
        "$contains": lambda a: _contains(a, value),
        "$notcontains": lambda a: not _contains(a, value),
        "$in": lambda a: isinstance(a, str | int) and a in members,
        "$gt": lambda a: _compare(a, value) == 1,
        "$gte": lambda a: _compare(a, value) in (0, 1),
        "$lt": lambda a: _compare(a, value) == -1,
        "$lte": lambda a: _compare(a, value) in (-1, 0),
    }
    test = tests[op]
    return lambda r: test(_get(r, name))


def _filters(request: Request) -> Callable[[Json], bool]:
    raw = request.query_params.get("filters")
    if not raw:
        return lambda r: True
    try:
        rules = json.loads(raw)
    except ValueError:
        raise _bad("filters must be a JSON array") from None
    if not isinstance(rules, list):
        raise _bad("filters must be a JSON array")
    predicates = [_predicate(rule) for rule in rules]  # all filters are ANDed
    return lambda r: all(p(r) for p in predicates)


def build_sandbox(options: SandboxOptions) -> MountedSandbox:
    """Mount point for `pms sandbox serve` / `pms demo` (see ``pms_cli.sandbox.server``)."""
    config = GuestySandboxConfig(
        seed=options.seed, listings=options.listings, reservations=options.reservations
    )
    if options.clock is not None:
        config.clock = options.clock
    if options.relaxed:
        config.rate_limits = None
        config.token_quota = None
    sandbox = GuestySandbox(config)
    return MountedSandbox(
        provider="guesty",
        app=sandbox.app,
        credentials={"client_id": config.client_id, "client_secret": config.client_secret},
        api_path="/v1",
        state=sandbox,
    )
