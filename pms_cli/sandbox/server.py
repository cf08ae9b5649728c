"""Run every provider sandbox on one loopback port, each mounted under ``/<provider>``.

Each ``pms_cli/sandbox/<provider>.py`` exposes ``build_sandbox(options) -> MountedSandbox``;
this module discovers them, so adding a provider sandbox needs no change here.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

from pms_cli.sandbox.common import Clock
from pms_cli.serving import BackgroundServer

_NOT_SANDBOXES = {"common", "server"}


@dataclass
class SandboxOptions:
    """Shared knobs; documented rate limits unless ``relaxed`` (tests)."""

    seed: int = 42
    listings: int = 10
    reservations: int = 200
    clock: Clock | None = None
    relaxed: bool = False


@dataclass
class MountedSandbox:
    provider: str
    app: ASGIApp
    credentials: dict[str, str]
    """Values for `pms connect <provider> --<field> <value>` (fake, sandbox-only)."""
    api_path: str
    """Path under the mount that is the provider's API base (e.g. ``/v1``)."""
    state: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


def available() -> list[str]:
    import pms_cli.sandbox as pkg

    names = []
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name in _NOT_SANDBOXES or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"pms_cli.sandbox.{info.name}")
        if hasattr(module, "build_sandbox"):
            names.append(info.name)
    return sorted(names)


def build(
    options: SandboxOptions, providers: Sequence[str] | None = None
) -> tuple[Starlette, list[MountedSandbox]]:
    mounted = []
    for name in providers or available():
        module = importlib.import_module(f"pms_cli.sandbox.{name}")
        mounted.append(module.build_sandbox(options))

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True, "providers": [m.provider for m in mounted]})

    routes: list[Any] = [Route("/healthz", healthz)]
    routes += [Mount(f"/{m.provider}", app=m.app) for m in mounted]
    return Starlette(routes=routes), mounted


class SandboxServer(BackgroundServer):
    """The sandboxes on 127.0.0.1 in a daemon thread (port 0 = any free port)."""

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> None:
        # Plain ASGI callables (test doubles) may not speak the lifespan protocol.
        super().__init__(app, host, port, lifespan="off")

    def base_url(self, sandbox: MountedSandbox) -> str:
        return f"{self.url}/{sandbox.provider}{sandbox.api_path}"


@contextmanager
def running(app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> Iterator[SandboxServer]:
    server = SandboxServer(app, host, port)
    server.start()
    try:
        yield server
    finally:
        server.stop()
