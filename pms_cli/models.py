"""Canonical models every provider maps into, and the normalisers they share.

All datetimes are timezone-aware UTC; money is Decimal with an ISO 4217 currency; countries are
ISO 3166-1 alpha-2. Each model keeps the provider's raw payload in ``raw``.
"""

from __future__ import annotations

import functools
import math
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator


class BookingStatus(StrEnum):
    CONFIRMED = "confirmed"
    PENDING = "pending"
    CANCELLED = "cancelled"
    BLOCKED = "blocked"
    INQUIRY = "inquiry"


Kind = Literal["property", "booking", "guest"]


def aware_utc(value: datetime | None) -> datetime | None:
    """Model validator: an aware datetime as UTC; a naive one is rejected (its zone is unknown)."""
    if value is not None and value.tzinfo is None:
        raise ValueError("datetime must be timezone-aware")
    return value.astimezone(UTC) if value is not None else None


class Record(BaseModel):
    """Fields common to every synced row; keyed ``(connection_id, external_id)`` in the store."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    external_id: str = Field(min_length=1)
    raw: dict[str, Any] = Field(default_factory=dict, repr=False)

    @field_validator("external_id", mode="before")
    @classmethod
    def _id_to_str(cls, value: object) -> object:
        return str(value) if isinstance(value, int) else value


class Property(Record):
    kind: Literal["property"] = "property"
    name: str | None = None
    address: str | None = None
    city: str | None = None
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    latitude: float | None = None
    longitude: float | None = None
    timezone: str | None = None
    max_guests: int | None = None
    bedrooms: int | None = None
    bathrooms: float | None = None
    check_in_time: str | None = None
    check_out_time: str | None = None
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    active: bool = True
    updated_at: datetime | None = None

    @field_validator("updated_at")
    @classmethod
    def _aware_utc(cls, value: datetime | None) -> datetime | None:
        return aware_utc(value)


class Guest(Record):
    kind: Literal["guest"] = "guest"
    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None
    language: str | None = None
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")


class Booking(Record):
    kind: Literal["booking"] = "booking"
    property_external_id: str | None = None
    guest_external_id: str | None = None
    status: BookingStatus
    check_in: date | None = None
    check_out: date | None = None
    adults: int | None = None
    children: int | None = None
    guests: int | None = None
    """Everyone staying (adults, children, infants), as the provider counts it; may be known
    when ``adults`` is not (Hostaway ``numberOfGuests`` with ``adults`` null)."""
    channel: str | None = None
    confirmation_code: str | None = None
    total_price: Decimal | None = None
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    guest_name: str | None = None
    guest_email: str | None = None
    guest_phone: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @field_validator("created_at", "updated_at")
    @classmethod
    def _aware_utc(cls, value: datetime | None) -> datetime | None:
        return aware_utc(value)


AnyRecord = Property | Booking | Guest


# --- normalisers shared by provider mappers -------------------------------------------------


def text(value: object) -> str | None:
    """A stripped string, or None for null/empty."""
    if value is None:
        return None
    s = str(value).strip()
    return s or None


def number(value: object) -> float | None:
    """A finite float, or None (NaN, infinities and junk are not numbers worth keeping)."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        result = float(str(value))
    except (ValueError, OverflowError):
        return None
    return result if math.isfinite(result) else None


def integer(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value if abs(value) < 2**63 else None
    result = number(value)
    return int(result) if result is not None and abs(result) < 2**63 else None


def money(value: object) -> Decimal | None:
    """Decimal from a float/str amount; floats go through str() so 696.67 stays 696.67."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


def currency_code(value: object) -> str | None:
    s = text(value)
    return s.upper() if s and len(s) == 3 and s.isascii() and s.isalpha() else None


# Codes ISO 3166 reserves "exceptionally" for other bodies' use (UK: the UPU, EL: the EU);
# guests and channels type them as if they were the country's alpha-2 code.
_EXCEPTIONAL_ALPHA_2 = {"UK": "GB", "EL": "GR"}
# Languages whose country names guests and hosts type most (pycountry ships the translations).
_NAME_LANGUAGES = (
    "de", "fr", "es", "it", "nl", "pt", "pl", "cs", "sk", "sl", "hr", "da", "sv", "nb", "fi",
    "hu", "ro", "tr", "el", "ru", "uk", "bg", "ca", "et", "lv", "lt", "ja", "zh_CN", "ko",
)  # fmt: skip


@functools.cache
def _translated_country_names() -> dict[str, str]:
    """Casefolded country names in ``_NAME_LANGUAGES`` → alpha-2, from pycountry's gettext
    catalogues (``Deutschland`` → DE). Built once, on the first name pycountry's English
    lookup does not know."""
    import gettext

    import pycountry

    index: dict[str, str] = {}
    for language in _NAME_LANGUAGES:
        try:
            catalogue = gettext.translation(
                "iso3166-1", pycountry.LOCALES_DIR, languages=[language]
            )
        except OSError:
            continue
        for country in pycountry.countries:
            for attr in ("name", "official_name", "common_name"):
                name = getattr(country, attr, None)
                if name:
                    index.setdefault(catalogue.gettext(name).casefold(), country.alpha_2)
    return index


@functools.lru_cache(maxsize=4096)
def _country_alpha_2(value: str) -> str | None:
    import pycountry

    upper = value.upper()
    if upper in _EXCEPTIONAL_ALPHA_2:
        return _EXCEPTIONAL_ALPHA_2[upper]
    try:
        # alpha-2, alpha-3, numeric, English name, official and common name
        return str(pycountry.countries.lookup(value).alpha_2)
    except LookupError:
        pass
    if len(value) <= 3:
        return None  # an unknown code: a guess from the fuzzy search would be wrong
    translated = _translated_country_names().get(value.casefold())
    if translated:
        return translated
    try:
        matches = pycountry.countries.search_fuzzy(value)
    except LookupError:
        return None
    # Fuzzy search also matches subdivisions and parts of names: only an unambiguous answer.
    return str(matches[0].alpha_2) if len(matches) == 1 else None


def country_code(value: object) -> str | None:
    """ISO 3166-1 alpha-2 from a code (alpha-2, alpha-3) or a country name in English or a
    common guest language (``"Deutschland"``), via pycountry; None when it is no country."""
    s = text(value)
    if s is None or len(s) > 80:
        return None
    return _country_alpha_2(s)


def utc_datetime(value: object, naive_zone: tzinfo = UTC) -> datetime | None:
    """Parse ISO-8601 or ``YYYY-MM-DD HH:MM:SS`` into an aware UTC datetime; a value without
    offset is wall time in ``naive_zone`` (the repeated hour at a DST fall-back reads as its
    first occurrence)."""
    s = text(value)
    if s is None:
        return None
    try:
        parsed = datetime.fromisoformat(s.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=naive_zone)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # e.g. year 1 with a positive offset
        return None


def local_datetime(value: object, zone: str | None) -> datetime | None:
    """``utc_datetime`` with values without offset read as wall time in ``zone`` (an IANA
    name); an unknown or missing zone falls back to UTC."""
    try:
        naive_zone: tzinfo = ZoneInfo(zone) if zone else UTC
    except (ZoneInfoNotFoundError, ValueError):
        naive_zone = UTC
    return utc_datetime(value, naive_zone)


def iso_date(value: object) -> date | None:
    s = text(value)
    if s is None:
        return None
    try:
        return date.fromisoformat(s[:10])
    except ValueError:
        return None


def hour_to_time(value: object) -> str | None:
    """Providers that give check-in/out as an integer hour (0-23) → ``HH:00``."""
    hour = integer(value)
    return f"{hour:02d}:00" if hour is not None and 0 <= hour <= 23 else None


def e164_phone(phone: str | None, region: str | None = None) -> str | None:
    """A phone number in E.164 (``+4917012345678``) via the ``phonenumbers`` library.

    ``region`` (ISO alpha-2: the guest's or the property's country) reads numbers written
    without ``+``/``00`` (``0170 1234567``); a number that cannot be read as a possible number
    gives None."""
    import phonenumbers

    s = text(phone)
    if s is None:
        return None
    if s.startswith("00"):
        s = "+" + s[2:]
    try:
        parsed = phonenumbers.parse(s, region.upper() if region else None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


def guest_key(
    email: str | None,
    phone: str | None,
    fallback: str,
    *,
    region: str | None = None,
    account: str | None = None,
) -> str:
    """Stable key for guests that live inside bookings: email → phone (E.164; ``region`` reads
    numbers without country code) → the channel's guest ``account`` (e.g.
    ``"2018:84497323"``) → ``fallback`` (the booking itself)."""
    if email:
        return "email:" + email.strip().lower()
    if phone:
        normalised = e164_phone(phone, region)
        if normalised:
            return "phone:" + normalised
        digits = "".join(ch for ch in phone if ch.isdigit())
        if digits:
            # Not a readable number (no country code and no region): its digits still tell
            # the same guest's bookings apart from others'.
            return "phone:" + digits
    if account:
        return "account:" + account
    return fallback
