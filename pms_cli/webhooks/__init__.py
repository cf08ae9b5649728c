"""The webhook receiver: verify → write to the inbox → 2xx → refetch through the engine.

* ``base`` — the per-provider extension surface (``WebhookSpec``), one module per provider;
* ``secrets`` — per-connection webhook tokens/keys, kept where the connection's secrets live;
* ``receiver`` — the Starlette app: ``POST /webhooks/{provider}/{connection_id}``, ``/healthz``;
* ``applier`` — the worker that leases inbox rows, refetches the named records through the
  provider adapter and writes them with ``SyncEngine.write_raw`` (the one write path).

A crash between the 2xx and the apply loses nothing: rows stay in ``pms_webhook_events`` and are
replayed when the receiver starts again.
"""

from __future__ import annotations

import importlib
from functools import cache

from pms_cli.errors import ConfigError
from pms_cli.webhooks.base import WebhookSpec

PROVIDERS = ("beds24", "guesty", "hostaway", "lodgify", "smoobu")


@cache
def specs() -> dict[str, WebhookSpec]:
    """Every provider's webhook handling, by provider name."""
    out: dict[str, WebhookSpec] = {}
    for name in PROVIDERS:
        spec = importlib.import_module(f"pms_cli.webhooks.{name}").SPEC
        out[spec.provider] = spec
    return out


def get_spec(provider: str) -> WebhookSpec:
    try:
        return specs()[provider.lower()]
    except KeyError:
        raise ConfigError(
            f"no webhook support for provider {provider!r}",
            hint=f"Choose one of: {', '.join(specs())}.",
            code="unknown_provider",
        ) from None
