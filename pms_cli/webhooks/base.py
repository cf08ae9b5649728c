"""The per-provider webhook extension surface: verify a delivery, then name what changed.

A provider module (``pms_cli/webhooks/<provider>.py``) defines one ``WebhookSpec`` subclass:

* ``verify(delivery, secrets, now)`` runs on the raw bytes *before* anything is parsed and raises
  ``Rejected`` (→ 401, counted, no detail in the response) unless the delivery proves it comes
  from the provider: a signature, HTTP Basic auth, or an unguessable per-connection token;
* ``parse(body, delivery)`` turns the JSON body into ``Change``s — "booking 123 changed" —
  because webhook payloads differ from REST shapes: the receiver refetches every named record
  through the provider adapter and writes it with the same engine code as ``pms sync``;
* ``dedupe_key`` is the provider's event identity, so a redelivery is stored once;
* ``url`` / ``setup_steps`` / ``subscribe`` serve ``pms webhook url`` and ``pms webhook subscribe``.

Secrets (tokens, passwords, signing keys) arrive as ``SecretStr`` and are compared in constant
time; nothing here logs, and ``Rejected`` carries only a reason code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets as pysecrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import SecretStr

from pms_cli.providers.base import Provider
from pms_cli.stores.base import Connection

TOKEN_HEADER = "X-Pms-Webhook-Token"
"""Header carrying the per-connection token where the provider lets us set one (Beds24)."""


class Rejected(Exception):
    """The delivery is not proven to come from the provider; ``reason`` is counted, not shown."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Delivery:
    """One HTTP request as received: the raw body and lower-cased headers and query."""

    body: bytes
    headers: Mapping[str, str]
    query: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Change:
    """ "This record changed upstream": the receiver refetches it (``resource`` is the
    provider adapter's resource name: properties / bookings / guests)."""

    resource: str
    external_id: str
    action: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"resource": self.resource, "external_id": self.external_id, "action": self.action}


@dataclass(frozen=True)
class Parsed:
    """What one delivery means: the changes to apply, or why there is nothing to apply."""

    changes: Sequence[Change]
    ignored: str | None = None  # e.g. "message.received": acknowledged, never applied


@dataclass(frozen=True)
class SetupInfo:
    """What `pms webhook url` prints: the URL, values to paste, and the steps."""

    url: str
    fields: Mapping[str, str]
    steps: Sequence[str]
    note: str = ""


def constant_time_equal(given: str | bytes | None, expected: str | bytes) -> bool:
    """``hmac.compare_digest`` for str or bytes; a missing value never matches."""
    if given is None:
        return False
    a = given.encode() if isinstance(given, str) else given
    b = expected.encode() if isinstance(expected, str) else expected
    return hmac.compare_digest(a, b)


def new_token() -> str:
    """An unguessable URL-safe token (256 bits)."""
    return pysecrets.token_urlsafe(32)


def content_key(body: Any, drop: Sequence[str] = ()) -> str:
    """A dedupe key from the body's content: identical state descriptions are one event.

    Used where the provider sends no event id. Keys are sorted so re-serialisation does not
    matter; ``drop`` removes delivery counters (Beds24 ``retries``) that change per attempt.
    """
    if isinstance(body, dict) and drop:
        body = {k: v for k, v in body.items() if k not in drop}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def valid_id(provider: type[Provider], external_id: str) -> bool:
    """Whether ``external_id`` has the provider's id format (``Provider.id_pattern``).

    The one check for ids that arrive in webhooks: they reach API paths, so ``../me`` must be
    refused before a request is built (the HTTP layer quotes every segment as well)."""
    return re.fullmatch(provider.id_pattern, external_id) is not None


def check_ids(provider: type[Provider], parsed: Parsed) -> None:
    """ValueError (→ 400, kept as ``invalid``) when a change names an id of the wrong format."""
    for change in parsed.changes:
        if not valid_id(provider, change.external_id):
            raise ValueError(f"{change.resource} id is not a {provider.title} id")


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def text_id(value: object) -> str | None:
    """An id as text (ints and non-empty strings; never bools)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int) or (isinstance(value, str) and value.strip()):
        return str(value).strip()
    return None


class WebhookSpec:
    """Base of every provider's webhook handling; subclasses fill the class variables."""

    provider: ClassVar[str]
    verification: ClassVar[str]
    """One line for `pms providers` and the closing note: how deliveries are verified."""
    secret_names: ClassVar[tuple[str, ...]]
    """Names under which this provider's webhook secrets sit beside the connection's secrets."""
    generated: ClassVar[tuple[str, ...]] = ()
    """Secrets pms generates itself (tokens, passwords); the others come from the provider."""
    subscribe_api: ClassVar[bool] = False

    def verify(self, delivery: Delivery, secrets: Mapping[str, SecretStr], now: float) -> None:
        """Raise ``Rejected`` unless the delivery is authentic. Runs before any parsing."""
        raise NotImplementedError

    def parse(self, body: Any, delivery: Delivery) -> Parsed:
        """The changes one verified, JSON-decoded delivery announces."""
        raise NotImplementedError

    def dedupe_key(self, body: Any, delivery: Delivery) -> str:
        """The provider's event identity (a redelivery gives the same key)."""
        return content_key(body)

    def url(self, base: str, conn: Connection, secrets: Mapping[str, SecretStr]) -> str:
        return f"{base.rstrip('/')}/webhooks/{self.provider}/{conn.id}"

    def setup(self, base: str, conn: Connection, secrets: Mapping[str, SecretStr]) -> SetupInfo:
        """URL, values to paste and dashboard steps for `pms webhook url`."""
        raise NotImplementedError

    async def subscribe(
        self, adapter: Provider, url: str, secrets: Mapping[str, SecretStr]
    ) -> dict[str, str]:
        """Register ``url`` with the provider's API; returns secrets to keep (may be empty)."""
        raise NotImplementedError(f"{self.provider} has no webhook subscription API")

    def json_body(self, delivery: Delivery) -> Any:
        """Decode the body (ValueError when it is not JSON)."""
        return json.loads(delivery.body)
