"""`pms sandbox serve`: local emulators of the provider APIs."""

from __future__ import annotations

import typer

sandbox_app = typer.Typer(
    help="Local emulators of the provider APIs (no account needed).", no_args_is_help=True
)


@sandbox_app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Bind address (loopback by default)."),
    port: int = typer.Option(8900, "--port", help="Port (0 = any free port)."),
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
) -> None:
    """Serve the sandboxes until Ctrl-C, printing each base URL and its fake credentials.

    Example: `pms sandbox serve --reservations 2000`, then in another shell
    `PMS_HOSTAWAY_BASE_URL=http://127.0.0.1:8900/hostaway/v1 pms connect hostaway ...`
    """
    import time

    from rich.table import Table

    from pms_cli.cli.output import err, out
    from pms_cli.sandbox.server import SandboxOptions, build, running

    app, mounted = build(
        SandboxOptions(seed=seed, listings=listings, reservations=reservations, relaxed=relaxed),
        provider or None,
    )
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
