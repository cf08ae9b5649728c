"""Per-connection webhook secrets, kept beside the connection's API secrets (never in a table).

Names start with ``webhook_`` inside the same keyring entry / 0600 file as the API credentials
(``credentials.update_secret`` / ``load_stored_secrets``, location from the connection row).
A connection whose credentials come from environment variables has no place pms may write to:
its webhook secrets come from ``PMS_WEBHOOK_SECRETS_<CONNECTION ID>`` (a JSON object), and
generating or storing one is a ConfigError naming that variable.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from pydantic import SecretStr

from pms_cli import credentials
from pms_cli.errors import ConfigError
from pms_cli.stores.base import Connection
from pms_cli.webhooks.base import WebhookSpec, new_token

PREFIX = "webhook_"


def env_var(conn: Connection) -> str:
    return "PMS_WEBHOOK_SECRETS_" + conn.id.upper().replace("-", "_")


def load(conn: Connection, env: Mapping[str, str] | None = None) -> dict[str, SecretStr]:
    """The connection's webhook secrets (empty when none are stored yet)."""
    env = os.environ if env is None else env
    values: dict[str, str] = {}
    raw_env = env.get(env_var(conn))
    if raw_env:
        try:
            parsed = json.loads(raw_env)
        except ValueError:
            raise ConfigError(
                f"{env_var(conn)} is not a JSON object",
                hint='Set it to e.g. {"webhook_token": "<long random value>"}.',
                code="config_invalid",
            ) from None
        if isinstance(parsed, dict):
            values.update({str(k): str(v) for k, v in parsed.items() if v})
    elif conn.secret_location in ("keyring", "file"):
        stored = credentials.load_stored_secrets(conn.id, conn.secret_location)
        values.update({k: v for k, v in stored.items() if k.startswith(PREFIX) and v})
    return {k: SecretStr(v) for k, v in values.items()}


def save(conn: Connection, values: Mapping[str, str]) -> None:
    """Store webhook secrets where the connection's secrets live."""
    if conn.secret_location not in ("keyring", "file"):
        raise ConfigError(
            f"connection {conn.id} reads its credentials from environment variables, so pms "
            "has nowhere to keep its webhook secret",
            hint=f"Set {env_var(conn)} to a JSON object such as "
            '{"webhook_token": "<long random value>"} (names: see `pms webhook url`), or '
            "reconnect with the keyring or --insecure-storage.",
            code="webhook_secret_location",
        )
    for name, value in values.items():
        if not name.startswith(PREFIX):
            raise ValueError(f"webhook secret names start with {PREFIX!r}: {name!r}")
        credentials.update_secret(conn.id, conn.secret_location, name, value)


def ensure(
    conn: Connection,
    spec: WebhookSpec,
    *,
    rotate: bool = False,
    env: Mapping[str, str] | None = None,
) -> dict[str, SecretStr]:
    """Load the secrets, generating the ones pms owns (tokens, Basic auth) when missing."""
    current = load(conn, env)
    missing = {
        name: (f"pms-{new_token()[:10]}" if name.endswith("_login") else new_token())
        for name in spec.generated
        if rotate or name not in current
    }
    if missing:
        save(conn, missing)
        current.update({k: SecretStr(v) for k, v in missing.items()})
    return current
