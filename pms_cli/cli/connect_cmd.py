"""`pms connect PROVIDER` and `pms disconnect ID`."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import typer
from typer import _click
from typer.core import TyperCommand

if TYPE_CHECKING:
    from pms_cli.config import Settings
    from pms_cli.errors import PmsError
    from pms_cli.providers.base import CredentialField, Provider
    from pms_cli.stores.base import Connection

EPILOG = (
    "Credential flags per provider (see `pms providers`): each credential field is a flag, e.g. "
    "`--account-id`, `--client-id`, `--client-secret`. Flags end up in shell history; prefer the "
    "hidden prompt or --from-env.\n\n"
    "Example: `HOSTAWAY_ACCOUNT_ID=10450 HOSTAWAY_CLIENT_SECRET=... pms connect hostaway "
    "--from-env --json`"
)


class ConnectCommand(TyperCommand):
    """`pms connect PROVIDER --help` lists that provider's own credential flags."""

    def parse_args(self, ctx: _click.Context, args: list[str]) -> list[str]:
        # --help is handled while parsing, before PROVIDER is: note it from the raw args.
        ctx.meta["pms.provider"] = next((a for a in args if not a.startswith("-")), None)
        return super().parse_args(ctx, args)

    def format_epilog(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        from pms_cli.errors import ConfigError
        from pms_cli.providers import get_provider

        name = ctx.meta.get("pms.provider")
        try:
            cls = get_provider(name) if name else None
        except (ConfigError, KeyError):
            cls = None
        if cls is not None:
            rows = []
            for f in cls.credential_fields:
                what = [f.label, "secret" if f.secret else "", "" if f.required else "optional"]
                if f.env:
                    what.append(f"env {f.env}")
                rows.append(
                    ("--" + f.name.replace("_", "-") + " TEXT", "; ".join(w for w in what if w))
                )
            with formatter.section(f"{cls.title} credentials"):
                formatter.write_dl(rows)
        super().format_epilog(ctx, formatter)


def check_url(value: str, option: str) -> None:
    """Reject a URL without a scheme or host at once (not after the prompts, as a bug)."""
    from urllib.parse import urlsplit

    from pms_cli.errors import ConfigError

    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"{option} {value!r} is not an http(s) URL",
            hint=f"Give the scheme and host, e.g. {option} https://api.example.com/v1.",
            code="usage",
        )


def choose_storage(cls: type[Provider]) -> str:
    """No keyring on a TTY: offer the 0600 file, or env variables (as `gh auth login` does)."""
    from pms_cli.cli.output import err
    from pms_cli.credentials import insecure_file
    from pms_cli.errors import ConfigError

    err.print(
        "No OS keyring backend is available on this machine. Keep the secrets in:\n"
        f"  [bold]f[/]  a file only you can read ({insecure_file()}, mode 0600)\n"
        f"  [bold]e[/]  environment variables you set yourself (nothing stored)"
    )
    choice = typer.prompt("Choose f or e", default="f", err=True).strip().lower()
    if choice.startswith("f"):
        return "file"
    names = " ".join(f"{f.env}=…" for f in cls.credential_fields if f.env and f.required)
    raise ConfigError(
        "nothing was stored: connect from environment variables instead",
        hint=f"Set {names or 'the provider variables (see `pms providers`)'} and run "
        f"`pms connect {cls.name} --from-env`.",
        code="no_keyring",
    )


def alternatives(cls: type[Provider]) -> list[CredentialField]:
    """Secret fields of which one is enough (Beds24: invite code, refresh token, token)."""
    secret = [f for f in cls.credential_fields if f.secret]
    return secret if len(secret) > 1 and not any(f.required for f in secret) else []


def ask_credentials(
    cls: type[Provider], flags: dict[str, str], *, from_env: bool, interactive: bool
) -> dict[str, str]:
    """Flags, then env (with --from-env), then hidden prompts on a TTY; one question for
    providers with alternative credentials instead of a prompt per optional field."""
    values: dict[str, str] = {}
    for f in cls.credential_fields:
        value = flags.get(f.name) or (os.environ.get(f.env, "") if from_env and f.env else "")
        if value:
            values[f.name] = value.strip()
    if not interactive:
        return values
    choices = alternatives(cls)
    skip: set[str] = set()
    if choices and not any(f.name in values for f in choices):
        lines = "\n".join(f"  {i}  {f.label}" for i, f in enumerate(choices, 1))
        typer.echo(f"How do you connect to {cls.title}?\n{lines}", err=True)
        picked = typer.prompt("Choose", default="1", err=True).strip()
        index = int(picked) - 1 if picked.isdigit() and 0 < int(picked) <= len(choices) else 0
        skip = {f.name for i, f in enumerate(choices) if i != index}
    elif choices:
        skip = {f.name for f in choices}  # one was given as a flag: ask for no other
    for f in cls.credential_fields:
        if f.name in values or f.name in skip:
            continue
        optional = not f.required and f not in choices
        suffix = " (optional, Enter to skip)" if optional else ""
        value = typer.prompt(
            f"{cls.title} {f.label}{suffix}",
            hide_input=f.secret,
            default="" if optional else None,
            show_default=False,
            err=True,
        )
        if value:
            values[f.name] = value.strip()
    return values


def connect_error(
    exc: PmsError, cls: type[Provider], base_url: str | None, settings: Settings
) -> PmsError:
    """A failed connect names the host it tried; no advice about resuming syncs."""
    from urllib.parse import urlsplit

    url = cls.resolve_base_url(base_url, settings.provider(cls.name).base_url)
    host = urlsplit(url).netloc or url
    if host not in exc.message:
        exc.message = f"{exc.message} (while connecting to {host})"
    if exc.hint and "resume" in exc.hint:
        exc.hint = (
            f"Check that {host} is reachable (network, proxy, --base-url) and run "
            f"`pms connect {cls.name}` again; nothing was stored."
        )
    return exc


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
        cls=ConnectCommand,
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        epilog=EPILOG,
    )
    def connect(
        ctx: typer.Context,
        provider: str = typer.Argument(
            ..., metavar="PROVIDER", help="hostaway, smoobu, lodgify, guesty or beds24"
        ),
        from_env: bool = typer.Option(
            False,
            "--from-env",
            help="Read credentials from the provider's env vars and keep "
            "reading them there at run time (nothing is stored).",
        ),
        org: str | None = typer.Option(
            None, "--org", metavar="ORG", help="Organization id (default: config)."
        ),
        name: str | None = typer.Option(
            None, "--name", metavar="NAME", help="Display name for the connection."
        ),
        base_url: str | None = typer.Option(
            None,
            "--base-url",
            metavar="URL",
            help="Talk to another server (sandbox, proxy) for this connection.",
        ),
        insecure_storage: bool = typer.Option(
            False,
            "--insecure-storage",
            help="Store secrets in a 0600 file in the config dir instead of the OS keyring.",
        ),
        new: bool = typer.Option(
            False,
            "--new",
            help="Add a second connection even if this account is already connected.",
        ),
        connection: str | None = typer.Option(
            None,
            "--connection",
            "-c",
            metavar="ID",
            help="Re-key this connection: replace its credentials, keep its rows and cursors.",
        ),
        as_json: bool = typer.Option(False, "--json", help="Print the new connection as JSON."),
    ) -> None:
        """Connect an account: ask for credentials, verify them live, store the secret safely.

        Secrets go to the OS keyring (or, with --insecure-storage, a 0600 file); only the
        non-secret account reference is written to the database. Never prompts without a TTY.
        Connecting an account that is already connected updates that connection (asks first on
        a TTY); `--new` adds a second one, `--connection ID` re-keys a given one.
        `pms connect PROVIDER --help` lists the provider's credential flags.
        """
        from pydantic import SecretStr

        from pms_cli import connections
        from pms_cli.cli.common import find_connection, settings_and_store
        from pms_cli.cli.output import out, print_json
        from pms_cli.errors import ConfigError, PmsError
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
        if base_url is not None:
            check_url(base_url, "--base-url")
        if new and connection:
            raise ConfigError(
                "--new and --connection exclude each other",
                hint="--new adds a connection; --connection ID replaces one's credentials.",
                code="usage",
            )
        interactive = sys.stdin.isatty() and not from_env
        mode = "env" if from_env else ("file" if insecure_storage else "keyring")
        from pms_cli.credentials import keyring_available, no_keyring_error

        if mode == "keyring" and interactive and not keyring_available():
            # Before any prompt: nobody should type every secret only to hear there is no keyring.
            mode = choose_storage(cls)
        values = ask_credentials(cls, flags, from_env=from_env, interactive=interactive)
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
        existing = None
        if connection is not None:
            existing = find_connection(store, connection, allow_disconnected=True)
            if existing.provider != cls.name:
                raise ConfigError(
                    f"connection {existing.id} is a {existing.provider} connection",
                    hint=f"Run `pms connect {existing.provider} --connection {connection}`.",
                    code="usage",
                )
        public = {f.name: values[f.name] for f in cls.public_fields() if f.name in values}
        secrets = {
            f.name: SecretStr(values[f.name]) for f in cls.secret_fields() if f.name in values
        }
        if mode == "env" and any(f in values for f in cls.setup_fields):
            # A one-time code is exchanged for a long-lived secret that env cannot hold.
            mode = "file" if insecure_storage else "keyring"
        if mode == "keyring" and not keyring_available():
            raise no_keyring_error()

        def reuse(same: Connection) -> bool:
            if new:
                return False
            if not interactive:
                return True  # a script re-running connect means: these are the new credentials
            return typer.confirm(
                f"{cls.title} account {same.account_ref} is already connected as {same.id} "
                f"({same.display_name}). Update its credentials?",
                default=True,
                err=True,
            )

        try:
            conn, updated = connections.connect(
                store,
                Runtime(settings),
                cls.name,
                public,
                secrets,
                organization_id=org or settings.organization_id,
                display_name=name,
                base_url=base_url,
                secret_mode=mode,
                existing=existing,
                reuse=reuse,
            )
        except PmsError as exc:
            raise connect_error(exc, cls, base_url, settings) from None
        payload = {
            "connection_id": conn.id,
            "provider": conn.provider,
            "display_name": conn.display_name,
            "account_ref": conn.account_ref,
            "organization_id": conn.organization_id,
            "secret_location": conn.secret_location,
            "updated": updated,
        }
        if as_json:
            print_json(payload)
            return
        verb = "Updated the credentials of" if updated else "Connected"
        out.print(
            f"[green]{verb}[/] {conn.display_name} ({cls.title}), secrets in "
            f"{conn.secret_location}."
        )
        out.print(f"Connection ID: [bold]{conn.id}[/]")
        out.print(f"Next: pms sync --connection {conn.id}")

    @app.command("disconnect")
    def disconnect(
        connection_id: str = typer.Argument(
            ..., metavar="ID", help="Connection ID (or a unique prefix)."
        ),
        purge: bool = typer.Option(False, "--purge", help="Also delete its synced rows."),
        yes: bool = typer.Option(
            False, "--yes", "-y", help="Do not ask before --purge deletes rows (scripts)."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    ) -> None:
        """Mark a connection disconnected and delete its stored secrets.

        `--purge` also deletes its synced rows: on a terminal it asks first, showing how many;
        without one it needs `--yes`.

        Example:

        \b
          pms disconnect 3f2a --purge --yes
        """
        from pms_cli import connections
        from pms_cli.cli.common import find_connection, settings_and_store
        from pms_cli.cli.output import out, print_json

        _, store = settings_and_store()
        conn = find_connection(store, connection_id, allow_disconnected=True)
        if purge and not yes:
            confirm_purge(conn, store.counts(conn.id))
        removed = connections.disconnect(store, conn, purge=purge)
        if as_json:
            print_json({"connection_id": conn.id, "status": "disconnected", "purged": removed})
            return
        out.print(f"Disconnected {conn.id} ({conn.provider}); secrets removed.")
        if purge:
            out.print("Purged rows: " + ", ".join(f"{k}={v}" for k, v in removed.items()))


def confirm_purge(conn: Connection, counts: dict[str, int]) -> None:
    """Ask on a TTY, showing what goes; refuse without one (a script must say --yes)."""
    from pms_cli.errors import ConfigError

    plural = {"property": "properties"}
    rows = ", ".join(
        f"{n} {plural.get(kind, kind + 's')}" for kind, n in sorted(counts.items()) if n
    )
    rows = rows or "no rows"
    what = f"{rows} of {conn.provider} connection {conn.id}"
    if not sys.stdin.isatty():
        raise ConfigError(
            f"--purge would delete {what}; not confirmed",
            hint=f"Add --yes to delete them: `pms disconnect {conn.id} --purge --yes`.",
            code="confirmation_needed",
        )
    if not typer.confirm(f"Delete {what}?", default=False, err=True):
        raise ConfigError(
            "nothing was deleted or disconnected", hint="Run it again to confirm.", code="usage"
        )
