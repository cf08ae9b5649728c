"""`pms -v` / `PMS_LOG_LEVEL`: what pms does on the wire, as log lines on stderr.

Every HTTP request (method, redacted URL, status, duration, attempt), retries and their
back-off, rate-limit waits and token renewals are logged by ``pms_cli.http.client`` under the
``pms`` logger at INFO; nothing is shown unless asked for. Each line passes through
``redact_text`` once more, so a secret that reached a message by mistake is still masked.
"""

from __future__ import annotations

import logging
import os
import sys

from pms_cli.redact import redact_text

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}


class _Redacting(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))


class _CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is now (tests swap it between commands)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def reset() -> logging.Logger:
    """Undo ``configure``: logging as the embedding application (or a test) set it up."""
    logger = logging.getLogger("pms")
    for handler in [h for h in logger.handlers if isinstance(h, _CurrentStderr)]:
        logger.removeHandler(handler)
    logger.setLevel(logging.NOTSET)
    logger.propagate = True
    return logger


def configure(verbosity: int, env_level: str | None = None) -> None:
    """``-v`` is INFO (every request), ``-vv`` DEBUG; ``PMS_LOG_LEVEL`` sets it by name.

    Without either, pms logs warnings only (the webhook receiver's), as before.
    """
    from pms_cli.errors import ConfigError

    logger = reset()  # first: a bad PMS_LOG_LEVEL must not leave the last setup in place
    level = logging.WARNING
    name = (env_level if env_level is not None else os.environ.get("PMS_LOG_LEVEL", "")).strip()
    if name:
        if name.lower() not in LEVELS:
            raise ConfigError(
                f"PMS_LOG_LEVEL={name!r} is not a log level",
                hint=f"Use one of: {', '.join(LEVELS)}.",
                code="usage",
            )
        level = LEVELS[name.lower()]
    if verbosity:
        level = min(level, logging.INFO if verbosity == 1 else logging.DEBUG)
    if level >= logging.WARNING:
        return
    logger.setLevel(level)
    handler = _CurrentStderr()
    handler.setFormatter(_Redacting("%(asctime)s %(name)s %(message)s", "%H:%M:%S"))
    logger.addHandler(handler)
    logger.propagate = False
