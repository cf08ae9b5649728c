"""`pms sandbox serve`: local emulators of the provider APIs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from pms_cli.sandbox.faults import Fault
    from pms_cli.sandbox.server import MountedSandbox, SandboxServer

sandbox_app = typer.Typer(
    help="Local emulators of the provider APIs (no account needed).", no_args_is_help=True
)


@sandbox_app.command("serve")
def serve(
    host: str = typer.Option(
        "127.0.0.1", "--host", metavar="ADDRESS", help="Bind address (loopback by default)."
    ),
    port: int = typer.Option(
        8900, "--port", min=0, max=65535, metavar="PORT", help="Port (0 = any free port)."
    ),
    provider: list[str] = typer.Option(
        [], "--provider", "-p", metavar="PROVIDER", help="Only these providers (repeatable)."
    ),
    listings: int = typer.Option(
        10, "--listings", min=0, metavar="N", help="Generated properties per provider."
    ),
    reservations: int = typer.Option(
        200, "--reservations", min=0, metavar="N", help="Generated bookings per provider."
    ),
    seed: int = typer.Option(
        42, "--seed", metavar="N", help="Data generator seed (same seed, same data)."
    ),
    relaxed: bool = typer.Option(False, "--relaxed", help="Disable rate limits and token delays."),
    fault: list[str] = typer.Option(
        [],
        "--fault",
        metavar="SPEC",
        help="Inject a fault, KIND[:name=value,...] (repeatable); `--fault help` lists kinds.",
    ),
    fault_seed: int = typer.Option(
        0, "--fault-seed", metavar="N", help="Seed for probability= faults."
    ),
    as_json: bool = typer.Option(
        False,
        "--json",
        help="Print the base URLs and credentials as one JSON object (then serve).",
    ),
) -> None:
    """Serve the sandboxes until Ctrl-C, printing each base URL and its fake credentials.

    Example: `pms sandbox serve --reservations 2000`, then in another shell
    `PMS_HOSTAWAY_BASE_URL=http://127.0.0.1:8900/hostaway/v1 pms connect hostaway ...`

    Faults (each provider gets its own schedule): `--fault 429:every=5,burst=3`
    `--fault 5xx:status=502,probability=0.1` `--fault reset:start=4,times=1`
    `--fault mutate:path=reservations,records=5` `--fault slow:delay=0.5`.
    Names: start, every, burst, times, probability, path, status, retry_after, delay,
    records, mode, field.
    """
    import time

    from pms_cli.cli.output import err
    from pms_cli.sandbox.server import SandboxOptions, build

    faults = _parse_faults(fault)
    options = SandboxOptions(
        seed=seed, listings=listings, reservations=reservations, relaxed=relaxed
    )
    app, mounted = build(options, provider or None)
    if faults:
        app, mounted = _with_faults(mounted, faults, fault_seed)
        err.print("Faults: " + "; ".join(f.describe() for f in faults))
    with _listening(app, host, port) as server:
        _announce(server, mounted, as_json)
        err.print("Press Ctrl-C to stop.")
        try:
            while True:
                time.sleep(0.5)
        except KeyboardInterrupt:
            err.print("Stopping.")


@contextlib.contextmanager
def _listening(app: Starlette, host: str, port: int) -> Iterator[SandboxServer]:
    """The sandboxes served in the background; a busy port or a bad address is the user's to
    fix, not a crash."""
    import errno

    from pms_cli.errors import ConfigError
    from pms_cli.sandbox.server import SandboxServer

    try:
        server = SandboxServer(app, host, port)  # binds the socket
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"port {port} on {host} is in use",
                hint="Pass another --port (or --port 0 for any free port), or stop the other "
                "server.",
                code="usage",
            ) from None
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            hint="Check --host (an address of this machine, e.g. 127.0.0.1) and --port.",
            code="usage",
        ) from None
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _announce(server: SandboxServer, mounted: list[MountedSandbox], as_json: bool) -> None:
    """What the user copies: each base URL, the credentials the sandbox accepts, the command."""
    from rich.table import Table

    from pms_cli.cli.tabular import print_table

    rows = []
    for m in mounted:
        creds = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in m.credentials.items())
        extra = {k: v for k, v in m.extra.items() if k in ANNOUNCED_EXTRAS}
        rows.append(
            {
                "provider": m.provider,
                "base_url": server.base_url(m),
                "credentials": dict(m.credentials),
                **extra,
                "connect": f"pms connect {m.provider} --base-url {server.base_url(m)} {creds}",
            }
        )
    if as_json:
        import json
        import sys

        # Not print_json: it masks anything secret-shaped, and these fake sandbox credentials
        # are printed to be copied.
        sys.stdout.write(json.dumps({"url": server.url, "sandboxes": rows}, indent=2) + "\n")
        sys.stdout.flush()
        return
    table = Table(title=f"Sandboxes on {server.url}")
    for col in ("provider", "base URL", "connect with", "also accepted"):
        table.add_column(col, overflow="fold")
    for row in rows:
        also = [f"{k.replace('_', ' ')}: {row[k]}" for k in ANNOUNCED_EXTRAS if k in row]
        table.add_row(row["provider"], row["base_url"], row["connect"], "\n".join(also))
    print_table(table)


ANNOUNCED_EXTRAS = ("invite_code", "long_life_token")
"""Other credentials a sandbox accepts (Beds24: an invite code, a long-life token)."""


def _parse_faults(specs: list[str]) -> list[Fault]:
    from pms_cli.errors import ConfigError
    from pms_cli.sandbox.faults import KINDS, FaultSpecError, parse_fault

    if "help" in specs:
        from pms_cli.cli.output import out

        for kind, what in KINDS.items():
            out.print(f"{kind:14} {what}", markup=False, highlight=False)
        raise typer.Exit(0)
    try:
        return [parse_fault(spec) for spec in specs]
    except FaultSpecError as exc:
        raise ConfigError(
            f"--fault: {exc}",
            hint="Write KIND[:name=value,...], e.g. --fault 429:every=5,burst=3; "
            "`pms sandbox serve --fault help` lists the kinds.",
            code="usage",
        ) from None


def _with_faults(
    mounted: list[MountedSandbox], faults: list[Fault], seed: int
) -> tuple[Starlette, list[MountedSandbox]]:
    """The same routes as ``server.build``, each provider's app behind its own injector."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Mount, Route

    from pms_cli.sandbox.faults import quiet_injected_errors, with_faults

    quiet_injected_errors()
    wrapped = [with_faults(m, faults, seed=seed + i) for i, m in enumerate(mounted)]

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True, "providers": [m.provider for m in wrapped]})

    routes: list[Any] = [Route("/healthz", healthz)]
    routes += [Mount(f"/{m.provider}", app=m.app) for m in wrapped]
    return Starlette(routes=routes), wrapped
