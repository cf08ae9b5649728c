"""`pms connect PROVIDER` and `pms disconnect ID`."""

from __future__ import annotations

import os
import sys

import typer

EPILOG = (
    "Credential flags per provider (see `pms providers`): each credential field is a flag, e.g. "
    "`--account-id`, `--client-id`, `--client-secret`. Flags end up in shell history; prefer the "
    "hidden prompt or --from-env.\n\n"
    "Example: `HOSTAWAY_ACCOUNT_ID=10450 HOSTAWAY_CLIENT_SECRET=... pms connect hostaway "
    "--from-env --json`"
)


def _parse_flags(args: list[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise typer.BadParameter(f"unexpected argument {arg!r}")
        key, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 >= len(args):
                raise typer.BadParameter(f"{arg} needs a value")
            value = args[i + 1]
            i += 1
        values[key.replace("-", "_")] = value
        i += 1
    return values


def register(app: typer.Typer) -> None:
    @app.command(
        "connect",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        epilog=EPILOG,
    )
    def connect(
        ctx: typer.Context,
        provider: str = typer.Argument(..., help="hostaway, smoobu, lodgify, guesty or beds24"),
        from_env: bool = typer.Option(
            False,
            "--from-env",
            help="Read credentials from the provider's env vars and keep "
            "reading them there at run time (nothing is stored).",
        ),
        org: str | None = typer.Option(None, "--org", help="Organization id (default: config)."),
        name: str | None = typer.Option(None, "--name", help="Display name for the connection."),
        base_url: str | None = typer.Option(
            None, "--base-url", help="Talk to another server (sandbox, proxy) for this connection."
        ),
        insecure_storage: bool = typer.Option(
            False,
            "--insecure-storage",
            help="Store secrets in a 0600 file in the config dir instead of the OS keyring.",
        ),
        as_json: bool = typer.Option(False, "--json", help="Print the new connection as JSON."),
    ) -> None:
        """Connect an account: ask for credentials, verify them live, store the secret safely.

        Secrets go to the OS keyring (or, with --insecure-storage, a 0600 file); only the
        non-secret account reference is written to the database. Never prompts without a TTY.
        """
        from pydantic import SecretStr

        from pms_cli import connections
        from pms_cli.cli.common import settings_and_store
        from pms_cli.cli.output import out, print_json
        from pms_cli.errors import ConfigError
        from pms_cli.providers import get_provider
        from pms_cli.sync.session import Runtime

        cls = get_provider(provider)
        flags = _parse_flags(list(ctx.args))
        known = {f.name for f in cls.credential_fields}
        unknown = sorted(set(flags) - known)
        if unknown:
            raise ConfigError(
                f"{cls.title} has no credential {unknown[0]!r}",
                hint="Use: " + ", ".join("--" + n.replace("_", "-") for n in sorted(known)),
                code="usage",
            )
        interactive = sys.stdin.isatty() and not from_env
        values: dict[str, str] = {}
        for f in cls.credential_fields:
            value = flags.get(f.name) or (os.environ.get(f.env, "") if from_env and f.env else "")
            if not value and interactive:
                suffix = "" if f.required else " (optional, Enter to skip)"
                value = typer.prompt(
                    f"{cls.title} {f.label}{suffix}",
                    hide_input=f.secret,
                    default="" if not f.required else None,
                    show_default=False,
                )
            if value:
                values[f.name] = value.strip()
        problem = cls.credential_problem(values)
        if problem is not None:
            raise problem
        missing = [f for f in cls.credential_fields if f.required and f.name not in values]
        if missing:
            names = ", ".join(f"--{f.name.replace('_', '-')} or {f.env}" for f in missing)
            raise ConfigError(
                f"missing {cls.title} credentials: {', '.join(f.label for f in missing)}",
                hint=f"Pass {names} (with --from-env for env vars); prompts appear only on a TTY.",
                code="credentials_missing",
            )
        settings, store = settings_and_store()
        public = {f.name: values[f.name] for f in cls.public_fields() if f.name in values}
        secrets = {
            f.name: SecretStr(values[f.name]) for f in cls.secret_fields() if f.name in values
        }
        mode = "env" if from_env else ("file" if insecure_storage else "keyring")
        if mode == "env" and any(f in values for f in cls.setup_fields):
            # A one-time code is exchanged for a long-lived secret that env cannot hold.
            mode = "file" if insecure_storage else "keyring"
        if mode == "keyring":
            from pms_cli.credentials import keyring_available, no_keyring_error

            if not keyring_available():
                raise no_keyring_error()
        conn = connections.connect(
            store,
            Runtime(settings),
            cls.name,
            public,
            secrets,
            organization_id=org or settings.organization_id,
            display_name=name,
            base_url=base_url,
            secret_mode=mode,
        )
        payload = {
            "connection_id": conn.id,
            "provider": conn.provider,
            "display_name": conn.display_name,
            "account_ref": conn.account_ref,
            "organization_id": conn.organization_id,
            "secret_location": conn.secret_location,
        }
        if as_json:
            print_json(payload)
            return
        out.print(
            f"[green]Connected[/] {conn.display_name} ({cls.title}), secrets in "
            f"{conn.secret_location}."
        )
        out.print(f"Connection ID: [bold]{conn.id}[/]")
        out.print(f"Next: pms sync --connection {conn.id}")

    @app.command("disconnect")
    def disconnect(
        connection_id: str = typer.Argument(..., help="Connection ID (or a unique prefix)."),
        purge: bool = typer.Option(False, "--purge", help="Also delete its synced rows."),
        as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    ) -> None:
        """Mark a connection disconnected and delete its stored secrets.

        Example:

        \b
          pms disconnect 3f2a --purge
        """
        from pms_cli import connections
        from pms_cli.cli.common import find_connection, settings_and_store
        from pms_cli.cli.output import out, print_json

        _, store = settings_and_store()
        conn = find_connection(store, connection_id, allow_disconnected=True)
        removed = connections.disconnect(store, conn, purge=purge)
        if as_json:
            print_json({"connection_id": conn.id, "status": "disconnected", "purged": removed})
            return
        out.print(f"Disconnected {conn.id} ({conn.provider}); secrets removed.")
        if purge:
            out.print("Purged rows: " + ", ".join(f"{k}={v}" for k, v in removed.items()))
