"""config.example.toml documents every key and loads as-is."""

from __future__ import annotations

import shutil
from pathlib import Path

from pms_cli.config import Settings, config_file, load_settings

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.toml"


def test_example_config_loads_without_errors() -> None:
    config_file().parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(EXAMPLE, config_file())
    settings = load_settings()
    assert settings.sync.lag_minutes == 10


def test_example_config_mentions_every_setting() -> None:
    text = EXAMPLE.read_text()
    for name, field in Settings.model_fields.items():
        assert name in text, name
        sub = field.annotation
        for sub_name in getattr(sub, "model_fields", {}):
            assert sub_name in text, f"{name}.{sub_name}"


def test_env_overrides_nested_settings(monkeypatch: object) -> None:
    import pytest

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    monkeypatch.setenv("PMS_SYNC__LAG_MINUTES", "3")
    assert load_settings().sync.lag_minutes == 3
