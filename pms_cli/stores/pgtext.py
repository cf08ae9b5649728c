"""Text PostgreSQL cannot store: U+0000, in ``text`` columns and in ``jsonb`` strings and keys.

Providers send it (a guest name pasted with a NUL is valid JSON: ``"Ana\\u0000"``); SQLite
stores it, PostgreSQL refuses the whole statement, so one such record used to stop every
Postgres sync of the connection for good. The policy, in this one place for every PostgreSQL
write path (the Postgres store's parameters and binary COPY, the Supabase store's REST bodies,
the webhook inbox, the sync log): **replace U+0000 with U+FFFD** (the Unicode replacement
character) and write the record. Replacing rather than stripping keeps the alteration visible
and the length unchanged (``\\u0000`` and ``\\ufffd`` are both six bytes of JSON, so REST batch
byte budgets stay exact), and makes two keys that differ only by a NUL less likely to collide.
The raw JSON keeps every other character as the provider sent it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

NUL = "\x00"
REPLACEMENT = "\ufffd"

# A JSON ``\u0000`` escape, i.e. preceded by an even number of backslashes (``\\u0000`` is a
# backslash followed by the text "u0000", which PostgreSQL stores fine).
_JSON_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def clean_text(value: str) -> str:
    """``value`` with every U+0000 replaced (unchanged, not copied, when it has none)."""
    return value.replace(NUL, REPLACEMENT) if NUL in value else value


def clean_json(text: str) -> str:
    """Serialized JSON with every ``\\u0000`` escape replaced by ``\\ufffd``.

    ``json.dumps`` always escapes control characters, so a serialized document holds NUL only
    as that escape: one pass over the text covers strings and keys at any depth.
    """
    if "\\u0000" not in text:
        return text
    return _JSON_NUL.sub(r"\1\\ufffd", text)


def install(conn: psycopg.Connection[Any]) -> None:
    """Make every ``str`` this connection sends NUL-free: query parameters (text format) and
    binary COPY (``set_types`` looks dumpers up by the ``text`` oid registered here).

    These run once per value written, so they do the work inline (a C-speed ``in`` test, the
    copy only when needed) rather than calling up to psycopg's dumpers."""
    from psycopg.types.string import StrBinaryDumper, StrDumperUnknown

    class NulSafeStrDumper(StrDumperUnknown):
        def dump(self, obj: str) -> bytes:
            return (obj.replace(NUL, REPLACEMENT) if NUL in obj else obj).encode(self._encoding)

    class NulSafeStrBinaryDumper(StrBinaryDumper):
        def dump(self, obj: str) -> bytes:
            return (obj.replace(NUL, REPLACEMENT) if NUL in obj else obj).encode(self._encoding)

    conn.adapters.register_dumper(str, NulSafeStrBinaryDumper)
    conn.adapters.register_dumper(str, NulSafeStrDumper)
