"""`pms sandbox serve`: local emulators of the provider APIs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from pms_cli.sandbox.faults import Fault
    from pms_cli.sandbox.server import MountedSandbox

sandbox_app = typer.Typer(
    help="Local emulators of the provider APIs (no account needed).", no_args_is_help=True
)


@sandbox_app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Bind address (loopback by default)."),
    port: int = typer.Option(8900, "--port", min=0, max=65535, help="Port (0 = any free port)."),
    provider: list[str] = typer.Option(
        [], "--provider", "-p", help="Only these providers (repeatable)."
    ),
    listings: int = typer.Option(
        10, "--listings", min=0, help="Generated properties per provider."
    ),
    reservations: int = typer.Option(
        200, "--reservations", min=0, help="Generated bookings per provider."
    ),
    seed: int = typer.Option(42, "--seed", help="Data generator seed (same seed, same data)."),
    relaxed: bool = typer.Option(False, "--relaxed", help="Disable rate limits and token delays."),
    fault: list[str] = typer.Option(
        [],
        "--fault",
        help="Inject a fault, KIND[:name=value,...] (repeatable); `--fault help` lists kinds.",
    ),
    fault_seed: int = typer.Option(0, "--fault-seed", help="Seed for probability= faults."),
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

    from rich.table import Table

    from pms_cli.cli.output import err, out
    from pms_cli.sandbox.server import SandboxOptions, build, running

    faults = _parse_faults(fault)
    options = SandboxOptions(
        seed=seed, listings=listings, reservations=reservations, relaxed=relaxed
    )
    app, mounted = build(options, provider or None)
    if faults:
        app, mounted = _with_faults(mounted, faults, fault_seed)
        err.print("Faults: " + "; ".join(f.describe() for f in faults))
    with running(app, host, port) as server:
        table = Table(title=f"Sandboxes on {server.url}")
        table.add_column("provider")
        table.add_column("base URL")
        table.add_column("connect with")
        for m in mounted:
            creds = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in m.credentials.items())
            table.add_row(
                m.provider,
                server.base_url(m),
                f"pms connect {m.provider} --base-url {server.base_url(m)} {creds}",
            )
        out.print(table)
        err.print("Press Ctrl-C to stop.")
        try:
            while True:
                time.sleep(0.5)
        except KeyboardInterrupt:
            err.print("Stopping.")


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
