"""The `pms` command. Heavy imports happen inside commands so `pms --help` starts fast."""

from __future__ import annotations

import os
import sys

import typer

from pms_cli.cli import (
    config_cmd,
    connect_cmd,
    db_cmd,
    demo_cmd,
    map_cmd,
    providers_cmd,
    sandbox_cmd,
    status_cmd,
    sync_cmd,
    webhook_cmd,
    worker_cmd,
)

app = typer.Typer(
    name="pms",
    help="Sync properties, bookings and guests from Hostaway, Smoobu, Lodgify, Guesty and Beds24 "
    "into Supabase, Postgres or a local SQLite file.\n\n"
    "Start with `pms demo` (no account needed), then `pms connect hostaway`.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # --install-completion / --show-completion for bash, zsh, fish and PowerShell.
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,  # plain help: importing rich markdown would triple start-up time
)

providers_cmd.register(app)
connect_cmd.register(app)
sync_cmd.register(app)
status_cmd.register(app)
map_cmd.register(app)
demo_cmd.register(app)
worker_cmd.register(app)
app.add_typer(sandbox_cmd.sandbox_app, name="sandbox")
app.add_typer(db_cmd.db_app, name="db")
app.add_typer(webhook_cmd.webhook_app, name="webhook")
app.add_typer(config_cmd.config_app, name="config")


@app.callback(invoke_without_command=True)
def _root(
    version: bool = typer.Option(
        False, "--version", help="Print the version, Python and platform, and exit."
    ),
    verbose: int = typer.Option(
        0,
        "--verbose",
        "-v",
        count=True,
        show_default=False,
        help="Log every HTTP request, retry, rate-limit wait and token renewal to stderr "
        "(-vv: debug). Same as PMS_LOG_LEVEL=info.",
    ),
) -> None:
    if version:
        import platform

        from pms_cli import __version__

        typer.echo(
            f"pms {__version__} (Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()} {platform.machine()})"
        )
        raise typer.Exit()
    from pms_cli.cli.verbose import configure

    configure(verbose)


def check_argv(args: list[str]) -> None:
    """A usage error (exit 2) for an argument that is not UTF-8: it would otherwise fail deep
    inside a lookup or a request, reported as a bug."""
    from pms_cli.errors import ConfigError

    for position, arg in enumerate(args, 1):
        if not arg.isascii() and any("\udc80" <= ch <= "\udcff" for ch in arg):
            # Never the value itself: it may be a secret (--client-secret …).
            after = args[position - 2] if position > 1 else ""
            where = f" (the value after {after})" if after.startswith("-") else ""
            raise ConfigError(
                f"argument {position}{where} is not valid UTF-8",
                hint="Pass connection ids, names and dates as UTF-8 text (check the terminal's "
                "or the script's encoding).",
                code="usage",
            )


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become `Error:` + `Hint:` on stderr and a documented exit code.

    Typer runs in standalone mode, so usage errors (unknown option, missing argument) are
    printed by it and exit 2; our own errors propagate here as ``PmsError``.
    """
    from pms_cli.errors import EXIT_FAILED, PmsError

    try:
        try:
            check_argv(sys.argv[1:] if argv is None else argv)
            from pms_cli.cli.metavars import readable

            # What `app()` does, with readable placeholders in every `--help`.
            readable(typer.main.get_command(app))(args=argv, prog_name="pms")
        finally:
            common = sys.modules.get("pms_cli.cli.common")  # only loaded if a store was opened
            if common is not None:
                common.close_stores()
            verbose = sys.modules.get("pms_cli.cli.verbose")
            if verbose is not None:  # `main()` called in-process (tests, embedding) leaves no trace
                verbose.reset()
    except PmsError as exc:
        from pms_cli.cli.output import print_error

        print_error(exc)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted.\n")
        sys.exit(130)
    except Exception as exc:  # a bug: say so plainly, traceback only on request
        if os.environ.get("PMS_DEBUG"):
            raise
        from pms_cli.cli.output import safe
        from pms_cli.redact import redact_text

        message = safe(redact_text(str(exc)))  # may quote data: no terminal control sequences
        sys.stderr.write(f"Error: unexpected {type(exc).__name__}: {message}\n")
        sys.stderr.write(
            "Hint: this is a bug in pms; rerun with PMS_DEBUG=1 for a traceback and report it.\n"
        )
        sys.exit(EXIT_FAILED)
