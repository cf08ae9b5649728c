"""Every `--help` names what to type (`ID`, `N`, `URL`), never a Python type."""

from __future__ import annotations

import re
from typing import Any

import pytest
import typer.main

from pms_cli.cli.app import app
from tests.test_readme import command_paths

PYTHON_TYPE = re.compile(r"--[a-z-]+ <(str|int|float|list|int range|float range)")


@pytest.mark.parametrize("path", command_paths(typer.main.get_command(app)))
def test_every_option_shows_a_readable_placeholder(path: str, pms: Any) -> None:
    result = pms(*path.split()[1:], "--help")
    assert result.code == 0, result.stderr
    assert not PYTHON_TYPE.findall(result.stdout), result.stdout


def test_the_connection_option_reads_id_and_counts_read_n(pms: Any) -> None:
    out = pms("logs", "--help").stdout
    assert "--connection ID" in out
    assert "--limit N" in out
