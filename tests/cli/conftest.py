"""CLI tests run `pms` in-process against a sandbox on a real 127.0.0.1 socket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from pms_cli.cli.app import main
from pms_cli.sandbox.server import MountedSandbox, SandboxOptions, SandboxServer, build


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@pytest.fixture
def pms(capsys: pytest.CaptureFixture[str]) -> Any:
    def run(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@dataclass
class LiveSandbox:
    server: SandboxServer
    mounted: dict[str, MountedSandbox]

    def base_url(self, provider: str) -> str:
        return self.server.base_url(self.mounted[provider])

    def connect_args(self, provider: str) -> list[str]:
        m = self.mounted[provider]
        args = ["connect", provider, "--base-url", self.base_url(provider)]
        for key, value in m.credentials.items():
            args += [f"--{key.replace('_', '-')}", value]
        return args


@pytest.fixture(scope="session")
def live_sandbox() -> Iterator[LiveSandbox]:
    app, mounted = build(
        SandboxOptions(listings=4, reservations=60, relaxed=True), providers=["hostaway"]
    )
    server = SandboxServer(app)
    server.start()
    yield LiveSandbox(server, {m.provider: m for m in mounted})
    server.stop()
