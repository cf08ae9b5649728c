"""Readable placeholders in `--help` (`ID`, `N`, `URL`), set in one place for every command.

Typer shows a parameter without an explicit ``metavar`` as its Python type (``<str>``,
``<int range>``), which tells a user nothing about what to type. Commands may still set their
own; this fills in the rest by parameter name, then by type.
"""

from __future__ import annotations

from typing import Any

BY_NAME = {
    "connection": "ID",
    "connection_id": "ID",
    "provider": "PROVIDER",
    "resource": "RESOURCE",
    "event": "EVENT",
    "from_env": "VAR",
    "host": "ADDRESS",
    "port": "PORT",
    "public_base": "URL",
    "base_url": "URL",
    "max_body": "BYTES",
    "every": "MINUTES",
    "lease": "SECONDS",
    "poll_interval": "SECONDS",
    "grace": "SECONDS",
    "external_property_id": "EXTERNAL_ID",
    "property_id": "PROPERTY_ID",
}
BY_TYPE = {"int": "N", "float": "NUMBER"}


def readable(command: Any) -> Any:
    """Give every parameter of ``command`` and its subcommands a readable metavar; returns
    ``command``. Flags and choices keep what Typer shows (nothing, and the choices)."""
    for sub in getattr(command, "commands", {}).values():
        readable(sub)
    for param in getattr(command, "params", ()):
        if param.metavar is not None or getattr(param, "is_flag", False):
            continue
        if getattr(param, "count", False) or param.type_descriptor.is_choice:
            continue
        name = param.name or ""
        param.metavar = BY_NAME.get(name) or BY_TYPE.get(param.bare_type(), name.upper())
    return command
