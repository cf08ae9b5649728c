"""Redaction of secrets from URLs, headers, bodies and free text.

Everything that reaches a log line, an error message, `--json` output or a table goes through
here. Two mechanisms: structural (known-secret header names and query/form keys) and by value
(every secret the process has loaded is registered, and any occurrence of it is masked).
"""

from __future__ import annotations

import re
import threading
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"

SECRET_KEYS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "api-key",
        "x-api-key",
        "x-apikey",
        "apikey",
        "api_key",
        "token",
        "access_token",
        "refresh_token",
        "refreshtoken",
        "client_secret",
        "secret",
        "password",
        "code",  # Beds24 sends its one-time invite code in a header named `code`
        "x-signature",
        "ms-signature",
        "cookie",
        "set-cookie",
        "apikey_secret",
        "svix-signature",
        "webhook-signature",
        "key",
    }
)

_registry_lock = threading.Lock()
_known_secrets: set[str] = set()

# JSON-ish "key": "value" pairs and key=value pairs whose key looks secret.
# In free text and query strings "code" is usually an error code, not a secret; the invite
# code value itself is masked through the registry of known secrets.
_TEXT_KEYS = SECRET_KEYS - {"code"}
_KEY_PATTERN = "|".join(sorted((re.escape(k) for k in _TEXT_KEYS), key=len, reverse=True))
_JSON_PAIR = re.compile(
    rf'(?i)("(?:{_KEY_PATTERN}|accessToken|refreshToken|clientSecret)"\s*:\s*)"[^"]*"'
)
_FORM_PAIR = re.compile(rf"(?i)\b((?:{_KEY_PATTERN})=)[^&\s\"']+")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")


def register_secret(value: str | None) -> None:
    """Remember a secret value so that any later text containing it is masked."""
    if value and len(value) >= 4:
        with _registry_lock:
            _known_secrets.add(value)


def known_secrets() -> frozenset[str]:
    with _registry_lock:
        return frozenset(_known_secrets)


def redact_text(text: str) -> str:
    """Mask registered secret values and secret-looking key/value pairs in free text."""
    for secret in sorted(known_secrets(), key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    text = _JSON_PAIR.sub(rf'\1"{MASK}"', text)
    text = _FORM_PAIR.sub(rf"\1{MASK}", text)
    return _BEARER.sub(rf"\1 {MASK}", text)


def redact_url(url: str) -> str:
    """Mask userinfo passwords and secret query parameters of a URL."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{host}" if ":" in userinfo else f"{MASK}@{host}"
    query = parts.query
    if query:
        pairs = [
            (k, MASK if k.lower() in _TEXT_KEYS else v)
            for k, v in parse_qsl(query, keep_blank_values=True)
        ]
        query = urlencode(pairs, safe="*[]:, ")
    return redact_text(urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment)))


def redact_headers(headers: dict[str, str]) -> dict[str, str]:
    return {k: (MASK if k.lower() in SECRET_KEYS else redact_text(v)) for k, v in headers.items()}


# Card data (PCI): a PAN is 13-19 digits, maybe grouped by spaces, dashes or a form's + / %20;
# only Luhn-valid runs are masked, so ids and timestamps mostly survive.
_PAN = re.compile(r"(?<![\d])\d(?:(?:[ +-]|%20)?\d){12,18}(?![\d])")
# Fields whose value is card data whatever it looks like: card*, cc*, cvv, cvc, cvv2, cid...
_CARD_KEY = r"(?:card[\w.\[\]-]*|cc[\w.\[\]-]*|cvv2?|cvc2?|csc|cid|pan|security[_-]?code)"
_CARD_FORM = re.compile(rf"(?i)(^|[&?;\s])({_CARD_KEY}=)[^&\s]*")
_CARD_JSON = re.compile(rf'(?i)("{_CARD_KEY}"\s*:\s*)("(?:[^"\\]|\\.)*"|-?[\d.eE+-]+)')


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _mask_pan(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0).replace("%20", ""))
    return MASK if 13 <= len(digits) <= 19 and _luhn(digits) else match.group(0)


def redact_card_data(text: str) -> str:
    """Mask card numbers (Luhn-valid PANs) and the values of card*/cc*/cvv/cvc fields, in form
    bodies and JSON alike: for bodies kept for inspection, which a provider may fill with card
    data (Beds24's version-1 webhook form)."""
    text = _CARD_FORM.sub(rf"\1\2{MASK}", text)
    text = _CARD_JSON.sub(rf'\1"{MASK}"', text)
    return _PAN.sub(_mask_pan, text)


def excerpt(body: str, limit: int = 300) -> str:
    """A redacted, single-line, bounded excerpt of a response body for error messages."""
    flat = " ".join(body.split())
    flat = redact_text(flat)
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
