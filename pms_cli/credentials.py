"""Where secrets live: environment → OS keyring → opt-in insecure file → a clear error.

Secrets never touch the store. A connection row records only *where* its secrets are
(``keyring`` or ``file``); environment variables, when set, win at run time so cron and CI can
inject credentials without a keyring.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from pms_cli.config import config_dir
from pms_cli.errors import ConfigError
from pms_cli.redact import register_secret

KEYRING_SERVICE = "pms"


def keyring_available() -> bool:
    """False on headless machines whose keyring is the ``fail`` backend (or a chainer of none)."""
    try:
        import keyring
        from keyring.backends import chainer, fail
    except ImportError:  # pragma: no cover - keyring is a hard dependency
        return False
    backend = keyring.get_keyring()
    if isinstance(backend, fail.Keyring):
        return False
    return not (isinstance(backend, chainer.ChainerBackend) and not backend.backends)


def no_keyring_error() -> ConfigError:
    return ConfigError(
        "no OS keyring backend is available on this machine",
        hint="Set the provider's credential environment variables (see `pms providers`), or "
        "re-run with --insecure-storage to keep them in a 0600 file in the config dir.",
        code="no_keyring",
    )


def insecure_file() -> Path:
    return config_dir() / "credentials.json"


def _read_file() -> dict[str, dict[str, str]]:
    path = insecure_file()
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise ConfigError(
            f"{path} is not valid JSON",
            hint="Delete it and run `pms connect` again.",
            code="credentials_corrupt",
        ) from exc
    return data if isinstance(data, dict) else {}


def _write_file(data: Mapping[str, Mapping[str, str]]) -> None:
    path = insecure_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


@dataclass(frozen=True)
class SecretLocation:
    """``keyring`` or ``file``: recorded on the connection row (never the secret itself)."""

    kind: str


def save_secrets(
    connection_id: str, secrets: Mapping[str, SecretStr], *, insecure_storage: bool
) -> SecretLocation:
    """Persist a connection's secrets; raises ConfigError when no safe place exists."""
    payload = {k: v.get_secret_value() for k, v in secrets.items()}
    if insecure_storage:
        data = _read_file()
        data[connection_id] = payload
        _write_file(data)
        return SecretLocation("file")
    if not keyring_available():
        raise no_keyring_error()
    import keyring
    from keyring.errors import KeyringError

    try:
        keyring.set_password(KEYRING_SERVICE, connection_id, json.dumps(payload))
    except KeyringError as exc:
        raise ConfigError(
            f"the OS keyring refused to store the secret ({type(exc).__name__})",
            hint="Unlock the keyring, or use environment variables / --insecure-storage.",
            code="keyring_locked",
        ) from None
    return SecretLocation("keyring")


def update_secret(connection_id: str, location: str, name: str, value: str) -> None:
    """Write back one rotated secret (e.g. a refresh token) where the connection keeps them."""
    if location not in ("keyring", "file"):
        return
    current = {k: SecretStr(v) for k, v in load_stored_secrets(connection_id, location).items()}
    current[name] = SecretStr(value)
    save_secrets(connection_id, current, insecure_storage=location == "file")


def load_stored_secrets(connection_id: str, location: str) -> dict[str, str]:
    if location == "file":
        return dict(_read_file().get(connection_id, {}))
    if location == "keyring" and keyring_available():
        import keyring
        from keyring.errors import KeyringError

        try:
            raw = keyring.get_password(KEYRING_SERVICE, connection_id)
        except KeyringError:
            raise ConfigError(
                "the OS keyring could not be read (locked?)",
                hint="Unlock the keyring or provide the credentials as environment variables.",
                code="keyring_locked",
            ) from None
        return dict(json.loads(raw)) if raw else {}
    return {}


def delete_secrets(connection_id: str, location: str) -> None:
    if location == "file":
        data = _read_file()
        if data.pop(connection_id, None) is not None:
            _write_file(data)
    elif location == "keyring" and keyring_available():
        import keyring
        from keyring.errors import PasswordDeleteError

        with contextlib.suppress(PasswordDeleteError):
            keyring.delete_password(KEYRING_SERVICE, connection_id)


# Control characters (a pasted line break, a tab, NUL) never belong in a key, token or id, and
# in an HTTP header they make every request fail before it is sent (looking like an outage).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_value(label: str, value: str, where: str = "") -> None:
    """ConfigError (exit 2) when a credential holds a control character: the one check for
    values typed at `pms connect`, passed as flags, or read from env / keyring / file."""
    from pms_cli.config import undecodable

    if undecodable(value):
        raise ConfigError(
            f"{label} is not valid UTF-8" + (f" ({where})" if where else ""),
            hint="Set it again as plain text; keys and secrets are ASCII.",
            code="credentials_invalid",
        )
    match = _CONTROL.search(value)
    if match is None:
        return
    what = {"\n": "a line break", "\r": "a line break", "\t": "a tab"}.get(
        match.group(), f"the control character U+{ord(match.group()):04X}"
    )
    raise ConfigError(
        f"{label} contains {what}" + (f" ({where})" if where else ""),
        hint="Copy the value again without surrounding lines or spaces (in a shell, quote it); "
        "keys, secrets and account ids never contain control characters.",
        code="credentials_invalid",
    )


def check_values(values: Mapping[str, str | SecretStr], where: str = "") -> None:
    """``check_value`` for every field (SecretStr or plain; the message never shows a value)."""
    for name, value in values.items():
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        check_value(name, text, where)


def resolve(
    connection_id: str,
    location: str,
    fields: Mapping[str, str | None],
    env: Mapping[str, str] | None = None,
    required: frozenset[str] | None = None,
) -> tuple[dict[str, SecretStr], str]:
    """Secrets for a connection and where they came from (``env``/``keyring``/``file``/``missing``).

    ``fields`` maps secret field name → environment variable name (or None); only ``required``
    fields (default: all) make the result ``missing`` when absent.
    """
    env = os.environ if env is None else env
    stored: dict[str, str] | None = None
    out: dict[str, SecretStr] = {}
    sources: set[str] = set()
    for name, env_var in fields.items():
        value = env.get(env_var) if env_var else None
        source = "env"
        if not value:
            if stored is None:
                stored = load_stored_secrets(connection_id, location)
            value = stored.get(name)
            source = location
        if value:
            register_secret(value)
            check_value(name, value, f"from {env_var}" if source == "env" else f"from {source}")
            out[name] = SecretStr(value)
            sources.add(source)
    needed = set(fields) if required is None else required
    if not needed <= set(out):
        return out, "missing"
    return out, "+".join(sorted(sources)) or "none"
