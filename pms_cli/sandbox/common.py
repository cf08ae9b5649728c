"""Provider-agnostic building blocks for the sandbox emulators.

Everything here is deterministic or injectable: a clock that tests can move by hand, a
sliding-window rate limiter driven by that clock, a seeded fake-data toolkit and a small
counter object the apps expose so tests and benchmarks can read server-side figures.
"""

from __future__ import annotations

import random
import string
import threading
import time
import unicodedata
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol, TypeVar

__all__ = [
    "SANDBOX_EPOCH",
    "City",
    "Clock",
    "FakeData",
    "ManualClock",
    "Person",
    "RequestStats",
    "SlidingWindowCounter",
    "SystemClock",
    "format_utc",
]

T = TypeVar("T")

#: Generated data lies before this instant, so any "now" from a clock (system time, or a
#: ManualClock, which starts here) is later than every generated timestamp.
SANDBOX_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def format_utc(ts: float) -> str:
    """Format Unix seconds as ``YYYY-MM-DD HH:MM:SS`` in UTC (the common PMS style)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


# --------------------------------------------------------------------------- clocks


class Clock(Protocol):
    """Source of the current time in Unix seconds."""

    def now(self) -> float: ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> float:
        return time.time()


class ManualClock:
    """A clock that only moves when told to; tests use it so nothing ever sleeps."""

    def __init__(self, start: float | None = None) -> None:
        self._now = SANDBOX_EPOCH.timestamp() if start is None else start

    def now(self) -> float:
        return self._now

    def set(self, ts: float) -> None:
        self._now = ts

    def advance(self, seconds: float) -> None:
        self._now += seconds


# --------------------------------------------------------------------------- rate limiting


class SlidingWindowCounter:
    """At most ``limit`` hits per key within any ``window_seconds`` interval.

    Only allowed hits are recorded, so a client hammering a limited key does not extend its
    own penalty beyond the window.
    """

    def __init__(self, limit: int, window_seconds: float, clock: Clock) -> None:
        if limit < 1 or window_seconds <= 0:
            raise ValueError("limit must be >= 1 and window_seconds > 0")
        self.limit = limit
        self.window_seconds = window_seconds
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}
        # The app may be driven from a test thread while a server thread serves it.
        self._lock = threading.Lock()

    def hit(self, key: str) -> float | None:
        """Record a hit for ``key``; None if allowed, else seconds until one would be."""
        now = self._clock.now()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window_seconds:
                hits.popleft()
            if len(hits) >= self.limit:
                return max(hits[0] + self.window_seconds - now, 0.0)
            hits.append(now)
            return None

    def reset(self) -> None:
        with self._lock:
            self._hits.clear()


# --------------------------------------------------------------------------- stats


@dataclass
class RequestStats:
    """Server-side request counters (read by tests and benchmarks)."""

    requests: int = 0
    rate_limited: int = 0
    auth_failures: int = 0
    tokens_issued: int = 0
    per_path: Counter[str] = field(default_factory=Counter)

    def record(self, path: str) -> None:
        self.requests += 1
        self.per_path[path] += 1

    def reset(self) -> None:
        self.requests = self.rate_limited = self.auth_failures = self.tokens_issued = 0
        self.per_path.clear()


# --------------------------------------------------------------------------- fake data


@dataclass(frozen=True)
class City:
    """A real city with what a listing or a guest address needs."""

    name: str
    state: str
    country: str
    country_code: str  # ISO 3166-1 alpha-2
    time_zone: str  # IANA
    lat: float
    lng: float
    postcode_pattern: str  # "#" becomes a digit
    phone_prefix: str  # E.164 country calling code
    currency: str  # ISO 4217
    streets: tuple[str, ...]
    number_first: bool = False  # "12 Main St" rather than "Hauptstraße 12"


CITIES: tuple[City, ...] = (
    City("Bremerhaven", "Bremen", "Germany", "DE", "Europe/Berlin", 53.5396, 8.5809, "275##",
         "+49", "EUR", ("Schulstraße", "Bürgermeister-Smidt-Straße", "Hafenstraße")),
    City("Berlin", "Berlin", "Germany", "DE", "Europe/Berlin", 52.52, 13.405, "10###", "+49",
         "EUR", ("Kastanienallee", "Oranienstraße", "Torstraße")),
    City("Lisbon", "Lisboa", "Portugal", "PT", "Europe/Lisbon", 38.7223, -9.1393, "1###-###",
         "+351", "EUR", ("Rua Augusta", "Rua da Prata", "Rua do Alecrim")),
    City("Barcelona", "Catalonia", "Spain", "ES", "Europe/Madrid", 41.3874, 2.1686, "080##",
         "+34", "EUR", ("Carrer de Mallorca", "Carrer de Verdi", "Passeig de Gràcia")),
    City("Nice", "Provence-Alpes-Côte d'Azur", "France", "FR", "Europe/Paris", 43.7102, 7.262,
         "06###", "+33", "EUR", ("Rue de France", "Rue Masséna", "Boulevard Gambetta")),
    City("Florence", "Tuscany", "Italy", "IT", "Europe/Rome", 43.7696, 11.2558, "501##", "+39",
         "EUR", ("Via dei Neri", "Via Ghibellina", "Borgo Pinti")),
    City("Edinburgh", "Scotland", "United Kingdom", "GB", "Europe/London", 55.9533, -3.1883,
         "EH# ###", "+44", "GBP", ("Royal Mile", "Rose Street", "Leith Walk"), True),
    City("Austin", "Texas", "United States", "US", "America/Chicago", 30.2672, -97.7431,
         "787##", "+1", "USD", ("Congress Ave", "South Lamar Blvd", "East 6th St"), True),
    City("Miami Beach", "Florida", "United States", "US", "America/New_York", 25.7907,
         -80.13, "331##", "+1", "USD", ("Collins Ave", "Ocean Dr", "Washington Ave"), True),
    City("Denver", "Colorado", "United States", "US", "America/Denver", 39.7392, -104.9903,
         "802##", "+1", "USD", ("Larimer St", "Colfax Ave", "Blake St"), True),
    City("Vancouver", "British Columbia", "Canada", "CA", "America/Vancouver", 49.2827,
         -123.1207, "V6B #A#", "+1", "CAD", ("Robson St", "Granville St", "Main St"), True),
    City("Cape Town", "Western Cape", "South Africa", "ZA", "Africa/Johannesburg", -33.9249,
         18.4241, "80##", "+27", "ZAR", ("Long St", "Bree St", "Kloof St"), True),
    City("Sydney", "New South Wales", "Australia", "AU", "Australia/Sydney", -33.8688,
         151.2093, "20##", "+61", "AUD", ("George St", "Crown St", "Oxford St"), True),
    City("Mexico City", "CDMX", "Mexico", "MX", "America/Mexico_City", 19.4326, -99.1332,
         "06###", "+52", "MXN", ("Calle Durango", "Avenida Álvaro Obregón", "Calle Orizaba")),
    City("Kyoto", "Kyoto", "Japan", "JP", "Asia/Tokyo", 35.0116, 135.7681, "60#-####", "+81",
         "JPY", ("Shijo-dori", "Kawaramachi-dori", "Karasuma-dori"), True),
)  # fmt: skip

FIRST_NAMES: tuple[str, ...] = (
    "Andrew", "Maria", "James", "Sofia", "Lukas", "Emma", "Mateo", "Olivia", "Noah", "Chloé",
    "Liam", "Zoë", "Jonas", "Aisha", "Hiroshi", "Yuki", "Carlos", "Lucía", "Finn", "Isabella",
    "Oliver", "Amélie", "Ethan", "Priya", "Mohammed", "Fatima", "Jan", "Anna", "Tom", "Grace",
    "Ben", "Mia", "Leon", "Hannah", "Diego", "Valentina", "Sam", "Chen", "Kofi", "Ingrid",
)  # fmt: skip
LAST_NAMES: tuple[str, ...] = (
    "Peterson", "García", "Smith", "Müller", "Rossi", "Dubois", "Johnson", "Schmidt", "Silva",
    "Nguyen", "Brown", "Kowalski", "Tanaka", "Fernández", "O'Brien", "Jensen", "Novak", "Wilson",
    "Khan", "Moreau", "Taylor", "Weber", "Martins", "Andersson", "Lee", "Okafor", "Hughes",
    "Becker", "López", "Van der Berg", "Costa", "Fischer", "Murphy", "Ivanova", "Sato", "Patel",
)  # fmt: skip
EMAIL_DOMAINS: tuple[str, ...] = (
    "gmail.com", "yahoo.com", "outlook.com", "icloud.com", "web.de", "gmx.net", "hotmail.com",
    "proton.me", "example.com",
)  # fmt: skip
_NAME_ADJECTIVES = ("Cozy", "Sunny", "Modern", "Charming", "Spacious", "Quiet", "Bright",
                    "Stylish", "Rustic", "Elegant", "Airy", "Historic")  # fmt: skip
_NAME_KINDS = ("apartment", "loft", "studio", "townhouse", "villa", "cottage", "flat",
               "penthouse", "bungalow", "guesthouse")  # fmt: skip
_NAME_TAILS = ("near city center", "with balcony", "by the beach", "with garden", "in {city}",
               "in the old town", "with sea view", "close to the station", "with rooftop terrace",
               "in {city} with parking")  # fmt: skip


@dataclass(frozen=True)
class Person:
    """A fake person's name."""

    first: str
    last: str

    @property
    def full(self) -> str:
        return f"{self.first} {self.last}"


def ascii_slug(text: str, sep: str = "") -> str:
    """Lower-case ASCII form of a name for emails ("Zoë O'Brien" -> "zoeobrien")."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return sep.join("".join(ch for ch in part if ch.isalnum()) for part in folded.lower().split())


class FakeData:
    """Deterministic fake-data generator: the same seed yields the same sequence."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    # -- primitives
    def choice(self, items: Sequence[T]) -> T:
        return self.rng.choice(items)

    def weighted(self, weights: dict[T, float]) -> T:
        return self.rng.choices(list(weights), weights=list(weights.values()))[0]

    def chance(self, probability: float) -> bool:
        return self.rng.random() < probability

    def digits(self, n: int) -> str:
        return "".join(self.rng.choice(string.digits) for _ in range(n))

    def hex(self, n: int) -> str:
        return "".join(self.rng.choice("0123456789abcdef") for _ in range(n))

    def code(self, n: int, alphabet: str = string.ascii_uppercase + string.digits) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(n))

    # -- people
    def person(self) -> Person:
        return Person(self.choice(FIRST_NAMES), self.choice(LAST_NAMES))

    def email(self, person: Person) -> str:
        first, last = ascii_slug(person.first), ascii_slug(person.last)
        local = self.choice(
            (f"{first}.{last}", f"{first}{last}{self.digits(2)}", f"{first[0]}{last}", first)
        )
        return f"{local}@{self.choice(EMAIL_DOMAINS)}"

    def relay_email(self, person: Person, domain: str) -> str:
        """An OTA relay address such as ``anna-x7k2q9@guest.airbnb.com``."""
        tag = self.code(6, string.ascii_lowercase + string.digits)
        return f"{ascii_slug(person.first)}-{tag}@{domain}"

    def phone(self, city: City) -> str:
        return f"{city.phone_prefix}{self.rng.randint(2, 9)}{self.digits(8)}"

    # -- places
    def city(self) -> City:
        return self.choice(CITIES)

    def postcode(self, city: City) -> str:
        return "".join(
            self.choice(string.digits) if ch == "#" else ch for ch in city.postcode_pattern
        )

    def street_address(self, city: City) -> str:
        street, number = self.choice(city.streets), self.rng.randint(1, 180)
        return f"{number} {street}" if city.number_first else f"{street} {number}"

    def near(self, city: City, spread: float = 0.05) -> tuple[float, float]:
        """Coordinates within roughly ``spread`` degrees of the city centre."""
        return (
            round(city.lat + self.rng.uniform(-spread, spread), 6),
            round(city.lng + self.rng.uniform(-spread, spread), 6),
        )

    def listing_name(self, city: City) -> str:
        tail = self.choice(_NAME_TAILS).format(city=city.name)
        return f"{self.choice(_NAME_ADJECTIVES)} {self.choice(_NAME_KINDS)} {tail}"
