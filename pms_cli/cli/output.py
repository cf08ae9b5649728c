"""Rendering helpers: stdout for data, stderr for progress and errors, `--json` envelopes."""

from __future__ import annotations

import json
import re
import sys
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pms_cli.errors import PmsError
from pms_cli.redact import redact_text

if TYPE_CHECKING:
    from rich.console import Console

    out: Console
    err: Console


_consoles: dict[str, Console] = {}


def _console(name: str) -> Console:
    console = _consoles.get(name)
    if console is None:
        from rich.console import Console

        console = _consoles[name] = Console(stderr=name == "err", soft_wrap=True)
        globals()[name] = console
    return console


def __getattr__(name: str) -> Console:
    """``out`` (stdout) and ``err`` (stderr): rich consoles created on first use, so a command
    that prints only JSON never imports rich."""
    if name in ("out", "err"):
        return _console(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(type(value).__name__)


# C0 controls (ESC starts terminal escape sequences; CR and BS overwrite what was printed),
# DEL and C1 controls (0x9b is a one-byte CSI on some terminals).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def safe(value: object) -> str:
    """Text from a provider, a user or the database, ready for a Rich table cell or line:
    control characters shown as ``\\xNN`` (a name cannot clear the screen, retitle the
    terminal or forge a line) and Rich markup escaped (``[red]`` is shown, not applied).

    Every value the CLI renders that it did not write itself goes through here."""
    from rich.markup import escape

    text = "" if value is None else str(value)
    if _CONTROL.search(text):
        text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    return escape(text)


def print_json(payload: Any) -> None:
    """Exactly one JSON document on stdout, redacted, nothing else."""
    text = json.dumps(payload, default=_default, indent=2, sort_keys=False)
    sys.stdout.write(redact_text(text) + "\n")
    sys.stdout.flush()


def print_error(exc: PmsError) -> None:
    err = _console("err")
    err.print(f"[bold red]Error:[/] {safe(redact_text(exc.message))}", highlight=False)
    if exc.body_excerpt:
        err.print(f"[dim]Provider said: {safe(redact_text(exc.body_excerpt))}[/]", highlight=False)
    if exc.hint:
        err.print(f"[bold]Hint:[/] {safe(redact_text(exc.hint))}", highlight=False)


def when(value: datetime | None) -> str:
    if value is None:
        return "never"
    return value.strftime("%Y-%m-%d %H:%M:%SZ")
