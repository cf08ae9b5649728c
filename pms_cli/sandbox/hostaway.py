"""Hostaway Public API v1 emulator (see ``providers/hostaway.md``, section 9).

Mount the app at ``/hostaway``; clients then use ``http://127.0.0.1:PORT/hostaway/v1`` as their
base URL. State lives in memory on a :class:`HostawaySandbox`; tests drive time with a
``ManualClock`` and change data through the mutation methods.
"""

from __future__ import annotations

import base64
import bisect
import hmac
import itertools
import json
import math
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pms_cli.sandbox.common import (
    SANDBOX_EPOCH,
    Clock,
    FakeData,
    RequestStats,
    SlidingWindowCounter,
    SystemClock,
    format_utc,
)
from pms_cli.sandbox.server import MountedSandbox, SandboxOptions
from pms_cli.sandbox.webhook_sender import WebhookSender, dumps

__all__ = [
    "CHANNELS",
    "RATE_LIMIT_MESSAGE",
    "RESERVATION_STATUSES",
    "SANDBOX_ACCOUNT_ID",
    "SANDBOX_CLIENT_SECRET",
    "TOKEN_TTL_SECONDS",
    "HostawaySandbox",
    "HostawaySandboxConfig",
    "create_app",
]

Json = dict[str, Any]

SANDBOX_ACCOUNT_ID = 10450
# A published, sandbox-only credential (64 hex chars like a real Hostaway API secret).
SANDBOX_CLIENT_SECRET = "89ffe1a2be7318f12c2878bd19009241d09b0fead32923f3d2f1d6a4b08b000c"
# 730 days: what real tokens carry (exp - iat); the docs' example "15897600" is outdated.
TOKEN_TTL_SECONDS = 63_072_000
RATE_LIMIT_MESSAGE = (
    "This error occurs because a server detects that your application has exceeded the rate "
    "limits or has made too many requests in a given period of time."
)

CHANNELS: dict[int, str] = {
    2000: "direct",
    2001: "airbnb",  # legacy Airbnb integration, still used in the docs' examples
    2002: "homeaway",
    2005: "bookingcom",
    2007: "expedia",
    2009: "homeawayical",
    2010: "vrboical",
    2013: "bookingengine",
    2015: "customIcal",
    2016: "tripadvisorical",
    2017: "wordpress",
    2018: "airbnbOfficial",
    2019: "marriott",
    2020: "partner",
    2021: "gds",
    2022: "google",
}
_CHANNEL_WEIGHTS: dict[int, float] = {
    2018: 40, 2005: 25, 2000: 10, 2002: 7, 2013: 6, 2007: 4, 2010: 3, 2022: 2, 2001: 2, 2015: 1,
}  # fmt: skip
RESERVATION_STATUSES: dict[str, float] = {
    "new": 45, "modified": 18, "cancelled": 12, "ownerStay": 3, "pending": 3,
    "awaitingPayment": 2, "declined": 1, "expired": 1, "unconfirmed": 1,
    "awaitingGuestVerification": 1, "inquiry": 5, "inquiryPreapproved": 2, "inquiryDenied": 1,
    "inquiryTimedout": 3, "inquiryNotPossible": 1, "unknown": 1,
}  # fmt: skip
_NEW_BOOKING_STATUSES: dict[str, float] = {
    "new": 70, "pending": 8, "inquiry": 10, "awaitingPayment": 5, "ownerStay": 7,
}  # fmt: skip
# What modify_reservations moves a status to; statuses not listed keep their value.
_NEXT_STATUS = {
    "new": "modified",
    "modified": "modified",
    "pending": "new",
    "awaitingPayment": "new",
    "unconfirmed": "new",
    "awaitingGuestVerification": "new",
    "inquiry": "inquiryPreapproved",
    "inquiryPreapproved": "new",
}
_AIRBNB = (2001, 2018)
_RELAY_DOMAINS = {2001: "guest.airbnb.com", 2018: "guest.airbnb.com", 2005: "guest.booking.com"}
# includeResources=0 (the default since 2023-10-02) blanks these on the list endpoint.
_RESOURCE_BLANKS: Json = {
    "customFieldValues": [],
    "reservationFees": [],
    "reservationUnit": [],
    "hostProxyEmail": None,
}
_CANCELLATION_POLICY_KEYS = (
    "cancellationPolicyDetails",
    "bookingCancellationPolicy",
    "vrboCancellationPolicy",
    "marriottCancellationPolicy",
)
_DAY = 86_400.0
_PAGING = frozenset({"limit", "offset", "afterId"})


@dataclass
class HostawaySandboxConfig:
    """Knobs of the emulator; the defaults are the documented production values."""

    seed: int = 42
    listings: int = 10
    reservations: int = 200
    account_id: int = SANDBOX_ACCOUNT_ID
    client_secret: str = SANDBOX_CLIENT_SECRET
    #: (max requests, window seconds); None disables the limiter.
    rate_limit_ip: tuple[int, float] | None = (15, 10.0)
    rate_limit_account: tuple[int, float] | None = (20, 10.0)
    send_retry_after: bool = True
    #: A token used sooner than this after issue gets 403 (the docs' 1-second rule); 0 disables.
    token_activation_delay: float = 1.0
    token_ttl: int = TOKEN_TTL_SECONDS
    max_limit: int = 500
    default_limit: int = 100
    clock: Clock = field(default_factory=SystemClock)


@dataclass
class _Token:
    account_id: int
    issued_at: float
    expires_at: float


class _ApiError(Exception):
    def __init__(self, status: int, body: Json, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers

    def response(self) -> Response:
        return JSONResponse(self.body, status_code=self.status, headers=self.headers)


def _fail(status: int, message: str) -> _ApiError:
    return _ApiError(status, {"status": "fail", "result": message})


Endpoint = Callable[[Request], Awaitable[Response]]


class HostawaySandbox:
    """In-memory Hostaway API v1: tokens, rate limits, listings and reservations.

    ``stats`` counts what the server saw; the mutation methods change data the way a host's
    activity would, stamping ``updatedOn``/``latestActivityOn`` with the configured clock.
    """

    def __init__(self, config: HostawaySandboxConfig | None = None) -> None:
        self.config = config or HostawaySandboxConfig()
        self.clock = self.config.clock
        self.stats = RequestStats()
        fake = FakeData(self.config.seed)
        self._ids = itertools.count(1)
        self.listings: dict[int, Json] = {}
        listing_id = 40_160
        for index in range(self.config.listings):
            self.listings[listing_id] = self._make_listing(fake, listing_id, index)
            listing_id += fake.rng.randint(1, 400)
        self.reservations: dict[int, Json] = {}
        self._generate_reservations(fake)
        # Mutations draw from their own stream so they never disturb the generated data.
        self._fake = FakeData(self.config.seed + 1)
        self._tokens: dict[str, _Token] = {}
        self._ip_limiter = self._limiter(self.config.rate_limit_ip)
        self._account_limiter = self._limiter(self.config.rate_limit_account)
        self._app: Starlette | None = None
        self._sort_cache: tuple[Any, list[Json], list[tuple[str, int]]] | None = None
        #: Unified webhooks (``/v1/webhooks/unifiedWebhooks``); deliveries queue in ``sender``.
        self.unified_webhooks: dict[int, Json] = {}
        self.sender = WebhookSender()

    # ------------------------------------------------------------------ data generation

    def _limiter(self, setting: tuple[int, float] | None) -> SlidingWindowCounter | None:
        return None if setting is None else SlidingWindowCounter(*setting, clock=self.clock)

    def _make_listing(self, fake: FakeData, listing_id: int, index: int) -> Json:
        city = fake.city()
        name = fake.listing_name(city)
        street, zipcode = fake.street_address(city), fake.postcode(city)
        lat, lng = fake.near(city)
        capacity = fake.rng.randint(2, 10)
        bedrooms = max(1, capacity // 2 - fake.rng.randint(0, 1))
        owner = fake.person()
        check_in = fake.choice((14, 15, 16))
        rating = round(fake.rng.uniform(7.5, 10), 1)
        activity = SANDBOX_EPOCH.timestamp() - fake.rng.uniform(3600, 300 * _DAY)
        public_address = f"{city.name}, {city.state} {zipcode}, {city.country}"
        return {
            "id": listing_id,
            "propertyTypeId": fake.choice((1, 2, 3, 4, 8)),
            "name": name,
            "externalListingName": name,
            "internalListingName": f"Property #{index + 1}",
            "description": f"{name}. {bedrooms} bedroom(s), sleeps {capacity}.",
            "country": city.country,
            "countryCode": city.country_code,
            "state": city.state,
            "city": city.name,
            "street": street,
            "zipcode": zipcode,
            "address": f"{street}, {public_address}",
            "publicAddress": public_address,
            "lat": lat,
            "lng": lng,
            "price": round(fake.rng.uniform(60, 450), 2),
            "cleaningFee": round(fake.rng.uniform(20, 120), 2),
            "currencyCode": city.currency,
            "personCapacity": capacity,
            "guestsIncluded": max(1, capacity // 2),
            "bedroomsNumber": bedrooms,
            "bedsNumber": bedrooms + fake.rng.randint(0, 2),
            "bathroomsNumber": max(1, bedrooms - 1),
            "guestBathroomsNumber": fake.rng.randint(0, 2),
            "roomType": fake.weighted({"entire_home": 85, "private_room": 10, "shared_room": 5}),
            "bathroomType": fake.weighted({"private": 80, "shared": 20}),
            "minNights": fake.choice((1, 1, 2, 3)),
            "maxNights": 1125,
            "checkInTimeStart": check_in,
            "checkInTimeEnd": check_in + fake.rng.randint(4, 8),
            "checkOutTime": fake.choice((10, 11, 12)),
            "timeZoneName": city.time_zone,
            "language": "en",
            "instantBookable": int(fake.chance(0.6)),
            "averageReviewRating": rating if fake.chance(0.8) else None,
            "starRating": fake.choice((None, 3.0, 3.5, 4.0, 4.5, 5.0)),
            "contactName": owner.full,
            "contactEmail": fake.email(owner),
            # Every eighth listing is archived so lists always show the 2025-11-15 field in use.
            "specialStatus": "archived" if index % 8 == 7 else None,
            "latestActivityOn": format_utc(activity),
            "listingAmenities": [
                {"id": next(self._ids), "amenityId": amenity}
                for amenity in sorted(fake.rng.sample(range(1, 80), fake.rng.randint(4, 10)))
            ],
            "listingBedTypes": [
                {"id": next(self._ids), "bedTypeId": fake.rng.randint(1, 5), "quantity": 1}
                for _ in range(bedrooms)
            ],
            "listingImages": [
                {
                    "id": next(self._ids),
                    "caption": caption,
                    "url": f"https://images.sandbox.invalid/hostaway/{listing_id}/{n}.jpg",
                    "sortOrder": n,
                }
                for n, caption in enumerate(("Living room", "Kitchen", "Bedroom"), start=1)
            ],
            "customFieldValues": [{"customFieldId": 167, "value": f"Key box {fake.digits(4)}"}],
            "bookingEngineUrls": [],
        }

    def _generate_reservations(self, fake: FakeData) -> None:
        epoch = SANDBOX_EPOCH.timestamp()
        if not self.listings:
            return
        booked = sorted(
            epoch - fake.rng.uniform(3600, 365 * _DAY) for _ in range(self.config.reservations)
        )
        reservation_id = 48_000_000
        repeaters: dict[int, list[Json]] = {}  # per channel
        for booked_at in booked:
            reservation_id += fake.rng.randint(1, 40)
            listing = self.listings[fake.choice(list(self.listings))]
            # Activity (messages, status changes) goes on for a while after booking; edits
            # that move only updatedOn come after it as often as not (real account, below).
            activity = booked_at + 1 + fake.rng.uniform(0, min(30 * _DAY, epoch - booked_at - 2))
            updated = min(activity + _edit_gap(fake), epoch - 1)
            status = fake.weighted(RESERVATION_STATUSES)
            if status == "cancelled":
                activity = updated  # cancellations did move latestActivityOn
            res = _make_reservation(
                fake, reservation_id, listing, self.config.account_id, status, booked_at
            )
            _touch(res, updated, activity)
            if status == "cancelled":
                res["cancellationDate"] = res["updatedOn"]
            same_channel = repeaters.get(res["channelId"])
            if fake.chance(0.1) and same_channel and res["status"] != "ownerStay":
                # A repeat guest the channel knows only by its guest account id.
                _same_guest(res, fake.choice(same_channel))
            elif res["guestExternalAccountId"] and not (res["guestEmail"] or res["phone"]):
                repeaters.setdefault(res["channelId"], []).append(res)
            self.reservations[reservation_id] = res

    # ------------------------------------------------------------------ mutations (for tests)

    def modify_reservations(self, n: int, *, activity: bool = False) -> list[int]:
        """Change status, price and guest details of ``n`` random reservations; return their ids.

        Like most real edits these move ``updatedOn`` only, not ``latestActivityOn`` (what
        ``latestActivityStart`` filters on); ``activity=True`` moves both. A guest who had
        given neither email nor phone now has a phone (the guest key changes).
        """
        ids = sorted(
            self._fake.rng.sample(sorted(self.reservations), min(n, len(self.reservations)))
        )
        now = self.clock.now()
        for reservation_id in ids:
            res = self.reservations[reservation_id]
            res["status"] = _NEXT_STATUS.get(res["status"], res["status"])
            _set_total(res, round(res["totalPrice"] * self._fake.rng.uniform(0.9, 1.15), 2))
            if res["guestLastName"] is None and res["guestFirstName"] is not None:
                # Airbnb reveals the full name only after confirmation.
                last = self._fake.person().last
                res["guestLastName"], res["guestName"] = last, f"{res['guestFirstName']} {last}"
            else:
                person = self._fake.person()
                res["guestFirstName"], res["guestLastName"] = person.first, person.last
                res["guestName"] = person.full
            if res["status"] != "ownerStay" and not (res["guestEmail"] or res["phone"]):
                res["phone"] = self._fake.phone(self._fake.city())
            _touch(res, now, now if activity else _parse_utc(res["latestActivityOn"]))
            self._emit("reservation.updated", res)
        return ids

    def set_guest_phone(self, reservation_id: int, phone: str | None) -> None:
        """The guest's phone arrives (or changes) later, as after an Airbnb confirmation; like
        other edits it moves ``updatedOn`` only (raises KeyError for unknown ids)."""
        res = self.reservations[reservation_id]
        res["phone"] = phone
        _touch(res, self.clock.now(), _parse_utc(res["latestActivityOn"]))
        self._emit("reservation.updated", res)

    def add_reservations(self, n: int) -> list[int]:
        """Book ``n`` new reservations now (on active listings); return their ids."""
        active = [lid for lid, listing in self.listings.items() if not listing["specialStatus"]]
        if not active:
            raise ValueError("no active listing to book")
        now = self.clock.now()
        next_id = max(self.reservations, default=48_000_000)
        ids = []
        for _ in range(n):
            next_id += self._fake.rng.randint(1, 40)
            listing = self.listings[self._fake.choice(active)]
            status = self._fake.weighted(_NEW_BOOKING_STATUSES)
            self.reservations[next_id] = _make_reservation(
                self._fake, next_id, listing, self.config.account_id, status, now
            )
            self._emit("reservation.created", self.reservations[next_id])
            ids.append(next_id)
        return ids

    def cancel_reservation(self, reservation_id: int) -> None:
        """Cancel a reservation as the guest would (raises KeyError for unknown ids)."""
        res = self.reservations[reservation_id]
        now = self.clock.now()
        res.update(status="cancelled", cancellationDate=format_utc(now), cancelledBy="guest")
        _touch(res, now)
        self._emit("reservation.updated", res)

    def delete_listing(self, listing_id: int) -> None:
        """Remove a listing; its reservations keep pointing at it (raises KeyError if unknown)."""
        del self.listings[listing_id]

    def revoke_all_tokens(self) -> None:
        """Invalidate every issued token, as rotating the API secret would."""
        self._tokens.clear()

    def add_unified_webhook(
        self, url: str, login: str | None = None, password: str | None = None
    ) -> int:
        """Register a unified webhook, as the dashboard or the API would; returns its id."""
        hook_id = max(self.unified_webhooks, default=1000) + 1
        self.unified_webhooks[hook_id] = {
            "id": hook_id,
            "isEnabled": 1,
            "url": url,
            "login": login,
            "password": password,
            "alertingEmailAddress": None,
        }
        return hook_id

    def _emit(self, event: str, res: Json) -> None:
        """Queue ``{object, event, accountId, data}`` to every enabled unified webhook."""
        body = dumps(
            {
                "object": "reservation",
                "event": event,
                "accountId": self.config.account_id,
                "data": _present(res, True, True),
            }
        )
        for hook in self.unified_webhooks.values():
            if not hook["isEnabled"]:
                continue
            headers = {}
            if hook["login"] and hook["password"]:
                pair = f"{hook['login']}:{hook['password']}".encode()
                headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
            self.sender.queue(hook["url"], body, headers)

    # ------------------------------------------------------------------ ASGI app

    @property
    def app(self) -> Starlette:
        """The Starlette app (routes under ``/v1``); ``app.state.sandbox`` is this object."""
        if self._app is None:
            routes = [
                self._route("POST", "/v1/accessTokens", self._issue_token, auth=False),
                self._route("DELETE", "/v1/accessTokens", self._revoke_token, auth=False),
                self._route("GET", "/v1/listings", self._list_listings),
                self._route("GET", "/v1/listings/{item_id:int}", self._get_listing),
                self._route("GET", "/v1/reservations", self._list_reservations),
                self._route("GET", "/v1/reservations/{item_id:int}", self._get_reservation),
                self._route("GET", "/v1/webhooks/unifiedWebhooks", self._list_webhooks),
                self._route("POST", "/v1/webhooks/unifiedWebhooks", self._create_webhook),
            ]
            self._app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
            self._app.state.sandbox = self
        return self._app

    def _route(self, method: str, path: str, handler: Endpoint, *, auth: bool = True) -> Route:
        key = f"{method} {path}"

        async def endpoint(request: Request) -> Response:
            self.stats.record(key)
            try:
                await self._enforce_rate_limits(request, token_endpoint=key.startswith("POST"))
                if auth:
                    self._authenticate(request)
                return await handler(request)
            except _ApiError as error:
                return error.response()

        return Route(path, endpoint, methods=[method])

    async def _enforce_rate_limits(self, request: Request, *, token_endpoint: bool) -> None:
        wait = None
        if self._ip_limiter is not None:
            wait = self._ip_limiter.hit(request.client.host if request.client else "unknown")
        if wait is None and self._account_limiter is not None:
            account = await self._account_of(request, token_endpoint=token_endpoint)
            if account is not None:
                wait = self._account_limiter.hit(str(account))
        if wait is None:
            return
        self.stats.rate_limited += 1
        headers = (
            {"Retry-After": str(max(1, math.ceil(wait)))} if self.config.send_retry_after else None
        )
        # The one documented error whose text sits under "message" rather than "result".
        raise _ApiError(429, {"status": "fail", "message": RATE_LIMIT_MESSAGE}, headers)

    async def _account_of(self, request: Request, *, token_endpoint: bool) -> int | None:
        if token_endpoint:
            client_id = (await _form(request)).get("client_id", "")
            return self.config.account_id if client_id == str(self.config.account_id) else None
        token = self._tokens.get(_bearer(request) or "")
        return token.account_id if token else None

    def _authenticate(self, request: Request) -> None:
        bearer = _bearer(request)
        token = self._tokens.get(bearer or "")
        now = self.clock.now()
        message = None
        if bearer is None:
            message = "Access denied: missing Authorization: Bearer token"
        elif token is None:
            message = "Access denied: invalid or revoked token"
        elif now >= token.expires_at:
            message = "Access denied: token expired"
        elif now - token.issued_at < self.config.token_activation_delay:
            message = "Access denied: token is not active yet, wait 1 second after issuing it"
        if message is not None:
            self.stats.auth_failures += 1
            raise _fail(403, message)

    # ------------------------------------------------------------------ handlers

    async def _issue_token(self, request: Request) -> Response:
        form = await _form(request)
        if form.get("grant_type") != "client_credentials":
            raise _fail(400, "grant_type must be client_credentials")
        if form.get("scope", "general") != "general":
            raise _fail(400, "scope must be general")
        secret_ok = hmac.compare_digest(
            form.get("client_secret", "").encode(), self.config.client_secret.encode()
        )
        if form.get("client_id") != str(self.config.account_id) or not secret_ok:
            self.stats.auth_failures += 1
            raise _fail(401, "Invalid client credentials")
        now = self.clock.now()
        iat = int(now)
        claims = {
            "aud": str(self.config.account_id),
            "jti": secrets.token_hex(40),
            "iat": iat,
            "nbf": iat,
            "exp": iat + self.config.token_ttl,
            "sub": "",
            "scopes": ["general"],
        }
        access_token = ".".join(
            _b64url(json.dumps(part, separators=(",", ":")).encode())
            for part in ({"typ": "JWT", "alg": "RS256"}, claims)
        )
        access_token += "." + _b64url(secrets.token_bytes(256))
        self._tokens[access_token] = _Token(
            self.config.account_id, now, iat + self.config.token_ttl
        )
        self.stats.tokens_issued += 1
        # The token response is bare, not wrapped in the status/result envelope.
        return JSONResponse(
            {
                "token_type": "Bearer",
                "expires_in": self.config.token_ttl,
                "access_token": access_token,
            }
        )

    async def _revoke_token(self, request: Request) -> Response:
        token = request.query_params.get("token") or (await _form(request)).get("token")
        if not token:
            raise _fail(400, "token is required")
        self._tokens.pop(token, None)
        return JSONResponse({"status": "success", "result": []})

    async def _list_webhooks(self, request: Request) -> Response:
        hooks = [
            {**h, "password": "****" if h["password"] else None}
            for h in self.unified_webhooks.values()
        ]
        return JSONResponse({"status": "success", "result": hooks})

    async def _create_webhook(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError as error:
            raise _fail(400, "Body must be JSON") from error
        if not isinstance(body, dict) or not isinstance(body.get("url"), str):
            raise _fail(400, "url is required")
        hook_id = self.add_unified_webhook(body["url"], body.get("login"), body.get("password"))
        hook = {**self.unified_webhooks[hook_id], "isEnabled": int(body.get("isEnabled", 1))}
        self.unified_webhooks[hook_id] = hook
        return JSONResponse({"status": "success", "result": {**hook, "password": "****"}})

    async def _list_listings(self, request: Request) -> Response:
        items = list(filter(_listing_filter(request), self.listings.values()))
        sort_order = request.query_params.get("sortOrder") or "order"
        if sort_order not in _LISTING_SORTS:
            raise _fail(400, f"Unknown sortOrder {sort_order!r}")
        field_name, descending = _LISTING_SORTS[sort_order]
        items.sort(key=lambda listing: (_sortable(listing[field_name]), listing["id"]))
        if descending:
            items.reverse()
        # Integrators report that /listings without a limit returns everything in one page.
        return JSONResponse(self._page(request, items, default_limit=None))

    async def _get_listing(self, request: Request) -> Response:
        listing = self.listings.get(request.path_params["item_id"])
        if listing is None:
            raise _fail(404, "Listing not found")
        return JSONResponse({"status": "success", "result": listing})

    async def _list_reservations(self, request: Request) -> Response:
        sort_order = request.query_params.get("sortOrder") or ""
        if sort_order not in _RESERVATION_SORTS:
            raise _fail(400, f"Unknown sortOrder {sort_order!r}")
        field_name, descending = _RESERVATION_SORTS[sort_order]

        def key(res: Json) -> tuple[str, int]:
            return (res[field_name], res["id"])

        items, keys = self._sorted_reservations(request, key, descending)
        start = None
        after_id = _int_param(request, "afterId")
        if after_id is not None:
            anchor = self.reservations.get(after_id)
            if anchor is None:
                raise _fail(400, f"Reservation {after_id} given as afterId does not exist")
            # Keyset semantics: compare against the anchor's *current* sort key, so rows
            # modified mid-walk move, exactly the drift the docs warn about.
            anchor_key = key(anchor)
            if descending:
                start = len(keys) - bisect.bisect_left(keys, anchor_key)
            else:
                start = bisect.bisect_right(keys, anchor_key)
        include = _int_param(request, "includeResources") == 1
        with_policy = _int_param(request, "includeCancellationPolicy") == 1
        page = self._page(request, items, default_limit=self.config.default_limit, start=start)
        page["result"] = [_present(res, include, with_policy) for res in page["result"]]
        return JSONResponse(page)

    def _sorted_reservations(
        self, request: Request, key: Callable[[Json], tuple[str, int]], descending: bool
    ) -> tuple[list[Json], list[tuple[str, int]]]:
        """Filtered + sorted reservations and their ascending keys, cached between pages.

        Without the cache every page re-filters and re-sorts the whole account, which makes a
        100k-booking walk quadratic. Any mutation changes the count or the newest ``updatedOn``,
        which is part of the cache key.
        """
        query = tuple(
            sorted((k, v) for k, v in request.query_params.multi_items() if k not in _PAGING)
        )
        newest = max((r["updatedOn"] for r in self.reservations.values()), default="")
        cache_key = (query, len(self.reservations), newest)
        if self._sort_cache is None or self._sort_cache[0] != cache_key:
            ascending = sorted(
                filter(_reservation_filter(request), self.reservations.values()), key=key
            )
            keys = [key(r) for r in ascending]
            items = ascending[::-1] if descending else ascending
            self._sort_cache = (cache_key, items, keys)
        return self._sort_cache[1], self._sort_cache[2]

    async def _get_reservation(self, request: Request) -> Response:
        res = self.reservations.get(request.path_params["item_id"])
        if res is None:
            raise _fail(404, "Reservation not found")
        # The single-object endpoint always carries resources and cancellation-policy fields.
        return JSONResponse({"status": "success", "result": _present(res, True, True)})

    def _page(
        self,
        request: Request,
        items: list[Json],
        *,
        default_limit: int | None,
        start: int | None = None,
    ) -> Json:
        limit_param = _int_param(request, "limit", minimum=1)
        offset_param = _int_param(request, "offset", minimum=0)
        # Above the cap the API is believed to clamp; echo the applied value so that clients
        # stepping offset by the echoed limit never skip rows.
        limit = default_limit if limit_param is None else min(limit_param, self.config.max_limit)
        if start is None:
            start = offset_param or 0
        result = items[start:] if limit is None else items[start : start + limit]
        per_page = limit or max(len(items), 1)
        return {
            "status": "success",
            "result": result,
            "limit": None if limit_param is None else limit,
            "offset": offset_param,
            "count": len(items),
            "page": start // per_page + 1,
            "totalPages": math.ceil(len(items) / per_page),
        }


def create_app(config: HostawaySandboxConfig | None = None) -> Starlette:
    """Build a fresh sandbox and return its app (the sandbox is at ``app.state.sandbox``)."""
    return HostawaySandbox(config).app


# ---------------------------------------------------------------------- reservation helpers


def _make_reservation(
    fake: FakeData,
    reservation_id: int,
    listing: Json,
    account_id: int,
    status: str,
    booked_at: float,
) -> Json:
    owner_stay = status == "ownerStay"
    channel_id = 2000 if owner_stay else fake.weighted(_CHANNEL_WEIGHTS)
    listing_id = listing["id"]
    if channel_id in _AIRBNB:
        channel_ref = f"{account_id}-{listing_id}-thread{fake.digits(9)}-{fake.digits(10)}"
        confirmation: str | None = "HM" + fake.code(8)
    else:
        channel_ref = f"{account_id}-{listing_id}-{channel_id}-{fake.digits(10)}"
        confirmation = fake.digits(10) if channel_id == 2005 else fake.code(8)

    person, home = fake.person(), fake.city()
    first: str | None = person.first
    last: str | None = person.last
    # Real account: 43 % of reservations had neither email nor phone; 90 % of those carried
    # the channel's guest account id, the only way to recognise a repeat guest. (Repeat guests,
    # added by the caller, are contactless with an account: they make up the difference.)
    contactless = not owner_stay and fake.chance(0.37)
    phone: str | None = None
    account: str | None = None
    if owner_stay:
        first, last = listing["contactName"].split(" ", 1)
        email: str | None = listing["contactEmail"]
    elif contactless:
        email = None
        account = fake.digits(9) if fake.chance(0.86) else None
    elif channel_id in _RELAY_DOMAINS and fake.chance(0.65):
        email = fake.relay_email(person, _RELAY_DOMAINS[channel_id])
    else:
        email = None if fake.chance(0.15) else fake.email(person)
    if not contactless and fake.chance(0.8):
        phone = _national_phone(fake, home) if fake.chance(0.2) else fake.phone(home)
    if account is None and channel_id in _AIRBNB and not owner_stay:
        account = fake.digits(9)
    guest_name = f"{first} {last}"
    if channel_id in _AIRBNB and status.startswith("inquiry"):
        last, guest_name = None, person.first  # Airbnb shows only a first name before booking
    elif fake.chance(0.05):
        first = last = None  # the split fields can be null while guestName is set

    arrival = datetime.fromtimestamp(booked_at, UTC).date() + timedelta(fake.rng.randint(0, 180))
    nights = fake.weighted({1: 10, 2: 20, 3: 20, 4: 14, 5: 10, 7: 12, 10: 5, 14: 4})
    adults: int | None = fake.rng.randint(1, listing["personCapacity"])
    children = fake.rng.randint(0, 2) if fake.chance(0.25) else None
    party = (adults or 0) + (children or 0)
    if channel_id in (2000, 2002, 2010, 2013) and fake.chance(0.4):
        adults = children = None  # direct/VRBO: only numberOfGuests is known
    locale = fake.choice((None, "en", "de", "fr", "es"))
    cleaning = None if owner_stay else listing["cleaningFee"]
    nightly = listing["price"] * fake.rng.uniform(0.85, 1.3)
    total = 0.0 if owner_stay else round(nightly * nights + (cleaning or 0), 2)
    use_times = fake.chance(0.3)
    res: Json = {
        "id": reservation_id,
        "hostawayReservationId": reservation_id,
        "listingMapId": listing_id,
        "listingName": listing["name"],
        "channelId": channel_id,
        "channelName": CHANNELS[channel_id],
        "source": {2002: "homeawayApi", 2000: "reservation"}.get(channel_id),
        "reservationId": channel_ref,
        "channelReservationId": channel_ref,
        "confirmationCode": confirmation,
        "reservationDate": format_utc(booked_at),
        "guestName": guest_name,
        "guestFirstName": first,
        "guestLastName": last,
        "guestEmail": email,
        "phone": phone,
        "guestAddress": fake.street_address(home) if fake.chance(0.3) else None,
        "guestZipCode": fake.postcode(home) if fake.chance(0.3) else None,
        "guestCountry": home.country_code if fake.chance(0.8) else None,
        "guestCity": home.name if fake.chance(0.6) else None,
        # guestLocale is often null while Hostaway has chosen a locale for messages.
        "guestLocale": locale if fake.chance(0.35) else None,
        "localeForMessaging": locale,
        "localeForMessagingSource": None,
        "guestPicture": None,
        "guestExternalAccountId": account,
        "guestRecommendations": fake.rng.randint(0, 20) if channel_id in _AIRBNB else None,
        "guestTrips": fake.rng.randint(0, 30) if channel_id in _AIRBNB else None,
        "guestWork": None,
        "numberOfGuests": party,
        "adults": adults,
        "children": children,
        "infants": None,
        "pets": fake.choice((None, None, 0, 1)),
        "arrivalDate": arrival.isoformat(),
        "departureDate": (arrival + timedelta(nights)).isoformat(),
        "nights": nights,
        "isDatesUnspecified": 0,
        "checkInTime": listing["checkInTimeStart"] if use_times else None,
        "checkOutTime": listing["checkOutTime"] if use_times else None,
        "status": status,
        "totalPrice": total,
        "currency": listing["currencyCode"],
        "cleaningFee": cleaning,
        "taxAmount": round(total * 0.07, 2) if fake.chance(0.5) else None,
        "isPaid": fake.choice((None, 0, 1)),
        "paymentMethod": fake.choice((None, "credit card", "bank transfer")),
        "paymentStatus": fake.choice(("paid", "paid", "unpaid", None)),
        "cancellationDate": format_utc(booked_at) if status == "cancelled" else None,
        "cancelledBy": fake.choice(("guest", "host")) if status == "cancelled" else None,
        "hostNote": None,
        "guestNote": "Arriving late, around 10pm." if fake.chance(0.1) else None,
        "isArchived": 0,
        "isStarred": int(fake.chance(0.05)),
        "isPinned": 0,
        "latestActivityOn": "",
        "insertedOn": format_utc(booked_at),
        "updatedOn": "",
        "hostProxyEmail": f"reservation-{reservation_id}@messages.sandbox.invalid",
        "customFieldValues": (
            [{"customFieldId": 201, "value": "Early check-in requested"}]
            if fake.chance(0.3)
            else []
        ),
        "reservationFees": [],
        "reservationUnit": [],
        "financeField": [],
    }
    _set_total(res, total)
    _touch(res, booked_at)
    return res


def _edit_gap(fake: FakeData) -> float:
    """Seconds from a reservation's latest activity to its last edit, as in a real account of
    707 reservations: 48 % had updatedOn after latestActivityOn, 24 % by more than ten
    minutes, 7 % by more than 30 days. Cancellations (12 %) move both, so the other bookings
    carry the whole share."""
    draw = fake.rng.random()
    if draw < 0.455:
        return 0.0
    if draw < 0.725:
        return fake.rng.uniform(1, 600)
    if draw < 0.92:
        return fake.rng.uniform(600, 30 * _DAY)
    return fake.rng.uniform(30 * _DAY, 120 * _DAY)


def _same_guest(res: Json, earlier: Json) -> None:
    """Make ``res`` a booking of the guest of ``earlier`` (same channel), known by name and
    channel account only."""
    for key in ("guestName", "guestFirstName", "guestLastName", "guestExternalAccountId"):
        res[key] = earlier[key]
    res["guestEmail"] = res["phone"] = None


def _national_phone(fake: FakeData, home: Any) -> str:
    """The same guest phone as typed into a form: national format, or ``00`` instead of
    ``+``, with spaces (real payloads carry all three)."""
    number = fake.phone(home)
    if fake.chance(0.5):
        return "00" + number[1:3] + " " + number[3:]
    prefix = home.phone_prefix
    return "0" + number[len(prefix) : len(prefix) + 3] + " " + number[len(prefix) + 3 :]


def _parse_utc(value: str) -> float:
    return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()


def _set_total(res: Json, total: float) -> None:
    res["totalPrice"] = total
    res["financeField"] = [
        {
            "id": 2,
            "type": "totals",
            "name": "totalPriceFromChannel",
            "title": "Total price from channel",
            "value": total,
            "total": total,
            "isIncludedInTotalPrice": 1,
            "isDeleted": 0,
        }
    ]
    cleaning = res["cleaningFee"]
    res["reservationFees"] = (
        [
            {
                "name": "cleaningFee",
                "title": "Cleaning fee",
                "amount": cleaning,
                "currency": res["currency"],
            }
        ]
        if cleaning
        else []
    )


def _touch(res: Json, updated: float, activity: float | None = None) -> None:
    res["updatedOn"] = format_utc(updated)
    res["latestActivityOn"] = format_utc(updated if activity is None else activity)


def _present(res: Json, include_resources: bool, cancellation_policy: bool) -> Json:
    out = dict(res) if include_resources else {**res, **_RESOURCE_BLANKS}
    if cancellation_policy:
        # Shapes of the policy objects are undocumented; null keeps the keys present.
        out.update(dict.fromkeys(_CANCELLATION_POLICY_KEYS))
    return out


def _listing_filter(request: Request) -> Callable[[Json], bool]:
    start, end = _activity_bounds(request)
    city, country, match = (
        (request.query_params.get(name) or "").lower() for name in ("city", "country", "match")
    )

    def keep(listing: Json) -> bool:
        return (
            (start is None or listing["latestActivityOn"] >= start)
            and (end is None or listing["latestActivityOn"] <= end)
            and (not city or city == listing["city"].lower())
            and (
                not country
                or country in (listing["country"].lower(), listing["countryCode"].lower())
            )
            and (not match or match in listing["name"].lower())
        )

    return keep


def _reservation_filter(request: Request) -> Callable[[Json], bool]:
    start, end = _activity_bounds(request)
    ranges = [
        ("latestActivityOn", start, end),
        (
            "arrivalDate",
            _date_param(request, "arrivalStartDate"),
            _date_param(request, "arrivalEndDate"),
        ),
        (
            "departureDate",
            _date_param(request, "departureStartDate"),
            _date_param(request, "departureEndDate"),
        ),
    ]
    equals = {
        name: value
        for name, value in (
            ("listingMapId", _int_param(request, "listingId")),
            ("channelId", _int_param(request, "channelId")),
        )
        if value is not None
    }
    match = (request.query_params.get("match") or "").lower()
    email = (request.query_params.get("guestEmail") or "").lower()

    def keep(res: Json) -> bool:
        return (
            all(
                (low is None or res[name] >= low) and (high is None or res[name] <= high)
                for name, low, high in ranges
            )
            and all(res[name] == value for name, value in equals.items())
            and (not match or match in (res["guestName"] or "").lower())
            and (not email or email == (res["guestEmail"] or "").lower())
        )

    return keep


# (field, descending) per documented sortOrder; ties break on id in the same direction.
_RESERVATION_SORTS: dict[str, tuple[str, bool]] = {
    "": ("updatedOn", True),
    "updatedOn": ("updatedOn", False),
    "arrivalDate": ("arrivalDate", False),
    "arrivalDateDesc": ("arrivalDate", True),
    "latestActivity": ("latestActivityOn", False),
    "latestActivityDesc": ("latestActivityOn", True),
    # Conversations are not emulated; latest activity is the closest stand-in.
    "lastConversationMessageSent": ("latestActivityOn", False),
    "lastConversationMessageSentDesc": ("latestActivityOn", True),
    "lastConversationMessageReceived": ("latestActivityOn", False),
    "lastConversationMessageReceivedDesc": ("latestActivityOn", True),
}


# Listings have no manual order in the sandbox, so "order" is creation order (id).
_LISTING_SORTS: dict[str, tuple[str, bool]] = {
    "order": ("id", False),
    "orderReversed": ("id", True),
    "name": ("name", False),
    "nameReversed": ("name", True),
    "contactName": ("contactName", False),
    "contactNameReversed": ("contactName", True),
    "latestActivity": ("latestActivityOn", False),
    "latestActivityDesc": ("latestActivityOn", True),
}


def _sortable(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


# ---------------------------------------------------------------------- request parsing


async def _form(request: Request) -> dict[str, str]:
    # Parsed by hand: Starlette's form parser needs python-multipart, which we do not ship.
    try:
        return dict(parse_qsl((await request.body()).decode()))
    except UnicodeDecodeError as error:
        raise _fail(400, "Body must be form-encoded UTF-8") from error


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _int_param(request: Request, name: str, minimum: int | None = None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise _fail(400, f"{name} must be an integer") from None
    if minimum is not None and value < minimum:
        raise _fail(400, f"{name} must be >= {minimum}")
    return value


def _date_param(request: Request, name: str) -> str | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        return date.fromisoformat(raw).isoformat()
    except ValueError:
        raise _fail(400, f"{name} must be YYYY-MM-DD") from None


def _activity_bounds(request: Request) -> tuple[str | None, str | None]:
    """latestActivityStart/End as comparable UTC strings; a bare date covers the whole day."""
    bounds: list[str | None] = []
    for name, day_time in (("latestActivityStart", "00:00:00"), ("latestActivityEnd", "23:59:59")):
        raw = request.query_params.get(name)
        if not raw:
            bounds.append(None)
            continue
        try:
            if len(raw) == 10:
                bounds.append(f"{date.fromisoformat(raw).isoformat()} {day_time}")
            else:
                moment = datetime.fromisoformat(raw)
                if moment.tzinfo is not None:
                    moment = moment.astimezone(UTC)
                bounds.append(moment.strftime("%Y-%m-%d %H:%M:%S"))
        except ValueError:
            raise _fail(400, f"{name} must be YYYY-MM-DD or YYYY-MM-DD HH:MM:SS") from None
    return bounds[0], bounds[1]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "Internal error"
    return JSONResponse({"status": "fail", "result": detail}, status_code=status)


def build_sandbox(options: SandboxOptions) -> MountedSandbox:
    """Mount point for `pms sandbox serve` / `pms demo` (see ``pms_cli.sandbox.server``)."""
    config = HostawaySandboxConfig(
        seed=options.seed, listings=options.listings, reservations=options.reservations
    )
    if options.clock is not None:
        config.clock = options.clock
    if options.relaxed:
        config.rate_limit_ip = config.rate_limit_account = None
        config.token_activation_delay = 0.0
    sandbox = HostawaySandbox(config)
    return MountedSandbox(
        provider="hostaway",
        app=sandbox.app,
        credentials={
            "account_id": str(config.account_id),
            "client_secret": config.client_secret,
        },
        api_path="/v1",
        state=sandbox,
    )
