"""Settings: `config.toml` in the config dir, overridden by `PMS_*` environment variables.

The config dir is `PMS_CONFIG_DIR` or the platform's user config dir; the SQLite file lives in
`PMS_DATA_DIR` or the platform's user data dir. Every key is documented in `config.example.toml`.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from pms_cli.errors import ConfigError

APP_NAME = "pms"


def config_dir() -> Path:
    return Path(os.environ.get("PMS_CONFIG_DIR") or platformdirs.user_config_dir(APP_NAME))


def data_dir() -> Path:
    return Path(os.environ.get("PMS_DATA_DIR") or platformdirs.user_data_dir(APP_NAME))


def config_file() -> Path:
    return config_dir() / "config.toml"


class SyncSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lag_minutes: int = Field(10, ge=0, description="re-read window for incremental syncs")
    batch_size: int = Field(500, ge=1, le=10_000)
    lock_ttl_seconds: int = Field(3600, ge=10)
    # Resources without a modified-since filter (Smoobu apartments/guests, Guesty listings/
    # guests, Beds24 properties) cost a whole walk per read. Between whole reads, records that
    # new bookings point at are fetched one by one, so only edits to existing ones wait.
    # 0 = re-read them whole on every run.
    refresh_hours: float = Field(
        6.0, ge=0, description="re-read resources without a modified-since filter this often"
    )


class HttpSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timeout_seconds: float = Field(30.0, gt=0)
    max_attempts: int = Field(5, ge=1, le=20)
    backoff_base_seconds: float = Field(1.0, ge=0)
    backoff_cap_seconds: float = Field(60.0, ge=0)
    max_in_flight: int = Field(16, ge=1, description="global cap on concurrent requests")


class ProviderSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str | None = None
    # "requests/seconds" overrides of the documented limits, e.g. sandboxes or raised quotas.
    rate_limits: list[str] | None = None


class _TomlSource(PydanticBaseSettingsSource):
    """Reads config.toml and turns a syntax error into a ConfigError with the line number."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        super().__init__(settings_cls)
        self.path = path

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        if not self.path.is_file():
            return {}
        try:
            with self.path.open("rb") as fh:
                return tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(
                f"{self.path} is not valid TOML: {exc}",
                hint="Fix the file (see config.example.toml) or move it away to use defaults.",
                code="config_syntax",
            ) from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"{self.path} is not UTF-8 text (byte {exc.start} cannot be decoded)",
                hint="TOML files are UTF-8: save it as UTF-8 (e.g. `iconv -f latin1 -t utf-8`).",
                code="config_syntax",
            ) from None


class Settings(BaseSettings):
    """Non-secret settings, plus the two store secrets that only ever come from env or TOML."""

    model_config = SettingsConfigDict(
        env_prefix="PMS_", env_nested_delimiter="__", extra="forbid", case_sensitive=False
    )

    organization_id: str = "default"
    database_url: SecretStr | None = None
    supabase_url: str | None = None
    supabase_service_key: SecretStr | None = None
    sqlite_path: Path | None = None
    sync: SyncSettings = SyncSettings()
    http: HttpSettings = HttpSettings()
    providers: dict[str, ProviderSettings] = Field(default_factory=dict)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlSource(settings_cls, config_file()))

    @cached_property
    def resolved_sqlite_path(self) -> Path:
        return self.sqlite_path or data_dir() / "pms.sqlite3"

    def provider(self, name: str) -> ProviderSettings:
        return self.providers.get(name, ProviderSettings())


# Paths may hold any bytes on POSIX (Python keeps them as surrogate escapes); values may not.
_PATH_VARIABLES = frozenset({"PMS_CONFIG_DIR", "PMS_DATA_DIR", "PMS_SQLITE_PATH"})


def undecodable(text: str) -> bool:
    """Whether ``text`` came from bytes that are not UTF-8 (argv and environ keep them as lone
    surrogates, which fail later, far from their source, when encoded)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def check_environment(environ: Mapping[str, str] | None = None) -> None:
    """ConfigError naming the first ``PMS_*`` variable whose value is not UTF-8."""
    environ = os.environ if environ is None else environ
    for name, value in environ.items():
        named = name.upper().startswith("PMS_") and name not in _PATH_VARIABLES
        if named and undecodable(value):
            raise ConfigError(
                f"the environment variable {name} is not valid UTF-8",
                hint=f"Set {name} again as UTF-8 text (check the terminal's or the cron "
                "file's encoding).",
                code="config_invalid",
            )


def load_settings(**overrides: Any) -> Settings:
    """Load settings; malformed TOML or unknown keys raise ConfigError with a hint."""
    check_environment()
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(
            f"invalid configuration: {problems}",
            hint=f"Check {config_file()} and PMS_* environment variables against "
            "config.example.toml.",
            code="config_invalid",
        ) from None
