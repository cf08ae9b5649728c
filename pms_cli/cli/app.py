"""The `pms` command. Heavy imports happen inside commands so `pms --help` starts fast."""

from __future__ import annotations

import os
import sys

import click
import typer

from pms_cli.cli import (
    connect_cmd,
    db_cmd,
    demo_cmd,
    map_cmd,
    providers_cmd,
    sandbox_cmd,
    status_cmd,
    sync_cmd,
)

app = typer.Typer(
    name="pms",
    help="Sync properties, bookings and guests from Hostaway, Smoobu, Lodgify, Guesty and Beds24 "
    "into Supabase, Postgres or a local SQLite file.\n\n"
    "Start with `pms demo` (no account needed), then `pms connect hostaway`.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # plain help: importing rich markdown would triple start-up time
)

providers_cmd.register(app)
connect_cmd.register(app)
sync_cmd.register(app)
status_cmd.register(app)
map_cmd.register(app)
demo_cmd.register(app)
app.add_typer(sandbox_cmd.sandbox_app, name="sandbox")
app.add_typer(db_cmd.db_app, name="db")


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    if version:
        from pms_cli import __version__

        typer.echo(__version__)
        raise typer.Exit()


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become `Error:` + `Hint:` on stderr and a documented exit code."""
    from pms_cli.errors import EXIT_CONFIG, EXIT_FAILED, PmsError

    try:
        try:
            rv = app(args=argv, standalone_mode=False, prog_name="pms")
        finally:
            common = sys.modules.get("pms_cli.cli.common")  # only loaded if a store was opened
            if common is not None:
                common.close_stores()
    except PmsError as exc:
        from pms_cli.cli.output import print_error

        print_error(exc)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        sys.stderr.write("Aborted.\n")
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_CONFIG)
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted.\n")
        sys.exit(130)
    except Exception as exc:  # a bug: say so plainly, traceback only on request
        if os.environ.get("PMS_DEBUG"):
            raise
        from pms_cli.redact import redact_text

        sys.stderr.write(f"Error: unexpected {type(exc).__name__}: {redact_text(str(exc))}\n")
        sys.stderr.write(
            "Hint: this is a bug in pms; rerun with PMS_DEBUG=1 for a traceback and report it.\n"
        )
        sys.exit(EXIT_FAILED)
    sys.exit(rv if isinstance(rv, int) else 0)
