"""Provider registry: every module in this package that defines a ``Provider`` subclass.

``get_provider(name)`` imports only ``pms_cli/providers/<name>.py`` (each module is named after
its provider, which tests/cli/test_lazy_imports.py checks), so `pms status` with one Hostaway
connection does not import the other adapters. ``registry()`` imports them all; it is also the
fallback when a name has no module of its own, so the result never differs from it.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from typing import TYPE_CHECKING

from pms_cli.errors import ConfigError

if TYPE_CHECKING:
    from pms_cli.providers.base import Provider

_SKIP = {"base"}


@cache
def module_names() -> tuple[str, ...]:
    """Provider module names, from the package directory (nothing is imported)."""
    return tuple(
        sorted(
            info.name
            for info in pkgutil.iter_modules(__path__)
            if info.name not in _SKIP and not info.name.startswith("_")
        )
    )


def _provider_in(module_name: str) -> type[Provider] | None:
    from pms_cli.providers.base import Provider

    module = importlib.import_module(f"{__name__}.{module_name}")
    cls = getattr(module, "PROVIDER", None)
    if isinstance(cls, type) and issubclass(cls, Provider):
        return cls
    return None


@cache
def registry() -> dict[str, type[Provider]]:
    """Every provider by name (imports every provider module)."""
    found: dict[str, type[Provider]] = {}
    for name in module_names():
        cls = _provider_in(name)
        if cls is not None:
            found[cls.name] = cls
    return dict(sorted(found.items()))


def get_provider(name: str) -> type[Provider]:
    """The provider called ``name``, importing only its own module when it has one."""
    cls = _named(name.lower())
    if cls is None:
        raise ConfigError(
            f"unknown provider {name!r}",
            hint=f"Choose one of: {', '.join(registry())} (see `pms providers`).",
            code="unknown_provider",
        )
    return cls


@cache
def _named(key: str) -> type[Provider] | None:
    cls = _provider_in(key) if key in module_names() else None
    if cls is None or cls.name != key:
        cls = registry().get(key)
    return cls
