"""Errors by action: every error carries a code, a message, a hint and an exit code.

Exit codes (documented in the README): 0 ok, 1 failed, 2 usage/config/store, 3 auth rejected,
4 partial sync, 5 another sync of the same connection is running.
"""

from __future__ import annotations

from typing import ClassVar

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_AUTH = 3
EXIT_PARTIAL = 4
EXIT_LOCKED = 5


class PmsError(Exception):
    """Base of every error pms reports to a user. Messages never contain secrets."""

    exit_code: ClassVar[int] = EXIT_FAILED
    default_code: ClassVar[str] = "failed"

    def __init__(
        self,
        message: str,
        *,
        hint: str = "",
        code: str | None = None,
        provider: str | None = None,
        status: int | None = None,
        body_excerpt: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.code = code or self.default_code
        self.provider = provider
        self.status = status
        self.body_excerpt = body_excerpt

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"code": self.code, "message": self.message, "hint": self.hint}
        if self.provider:
            out["provider"] = self.provider
        if self.status is not None:
            out["status"] = self.status
        if self.body_excerpt:
            out["body_excerpt"] = self.body_excerpt
        return out


class ConfigError(PmsError):
    """The user must fix configuration or input (bad TOML, unknown connection, no credential)."""

    exit_code = EXIT_CONFIG
    default_code = "config"


class StoreError(PmsError):
    """The database is unreachable, misconfigured or lacks the schema."""

    exit_code = EXIT_CONFIG
    default_code = "store"


class AuthError(PmsError):
    """The provider rejected the credentials (after one token renewal where that applies)."""

    exit_code = EXIT_AUTH
    default_code = "auth_rejected"


class ProviderError(PmsError):
    """The provider failed or answered something we cannot use, after retries."""

    default_code = "provider_error"


class RateLimitedError(ProviderError):
    """The provider kept answering 429 after every retry we were allowed."""

    default_code = "rate_limited"


class LockedError(PmsError):
    """Another sync of the same connection holds the lock (cron overlap)."""

    exit_code = EXIT_LOCKED
    default_code = "locked"


class RecordError(PmsError):
    """One provider record could not be mapped; it is logged with its id and skipped."""

    default_code = "bad_record"
