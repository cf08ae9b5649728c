"""The README documents every command and the two set-up commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer.main

from pms_cli.cli.app import app

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def command_paths(group: Any, prefix: str = "pms") -> list[str]:
    paths = []
    for name, command in group.commands.items():
        path = f"{prefix} {name}"
        if hasattr(command, "commands"):  # a group (typer may ship its own click)
            paths.extend(command_paths(command, path))
        else:
            paths.append(path)
    return paths


def test_every_command_appears_in_the_readme() -> None:
    group = typer.main.get_command(app)
    missing = [p for p in command_paths(group) if f"`{p}" not in README]
    assert missing == []


def test_readme_has_the_two_setup_commands() -> None:
    assert "pip install uv && uv run pms demo" in README
    assert "uv run pytest" in README


def test_ci_runs_exactly_the_readme_test_command() -> None:
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    assert "uv run pytest" in ci
