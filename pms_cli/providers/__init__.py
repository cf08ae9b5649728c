"""Provider registry: every module in this package that defines a ``Provider`` subclass."""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from pms_cli.errors import ConfigError
from pms_cli.providers.base import Provider

_SKIP = {"base"}


@cache
def registry() -> dict[str, type[Provider]]:
    found: dict[str, type[Provider]] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name in _SKIP or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        cls = getattr(module, "PROVIDER", None)
        if isinstance(cls, type) and issubclass(cls, Provider):
            found[cls.name] = cls
    return dict(sorted(found.items()))


def get_provider(name: str) -> type[Provider]:
    try:
        return registry()[name.lower()]
    except KeyError:
        raise ConfigError(
            f"unknown provider {name!r}",
            hint=f"Choose one of: {', '.join(registry())} (see `pms providers`).",
            code="unknown_provider",
        ) from None
