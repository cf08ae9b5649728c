"""`pms webhook serve | url | subscribe | secret`: the receiver and its setup per provider."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from pms_cli.config import Settings
    from pms_cli.stores.base import Connection, Store
    from pms_cli.webhooks.base import WebhookSpec

webhook_app = typer.Typer(
    name="webhook",
    help="Receive provider webhooks: run the receiver, print the URL and setup steps, "
    "subscribe through the provider's API.",
    no_args_is_help=True,
)

DEFAULT_BASE = "http://127.0.0.1:8787"


def _connection_for(
    provider: str, connection: str
) -> tuple[WebhookSpec, Settings, Store, Connection]:
    from pms_cli.cli.common import find_connection, settings_and_store
    from pms_cli.errors import ConfigError
    from pms_cli.webhooks import get_spec

    spec = get_spec(provider)
    settings, store = settings_and_store()
    conn = find_connection(store, connection)
    if conn.provider != spec.provider:
        raise ConfigError(
            f"connection {conn.id} is a {conn.provider} connection, not {spec.provider}",
            hint=f"Run `pms webhook url {conn.provider} --connection {conn.id}`.",
            code="provider_mismatch",
        )
    return spec, settings, store, conn


def _write_unredacted(text: str) -> None:
    # The URL / password must reach the user intact (they paste it into the provider's
    # dashboard); print_json would mask it. Nothing else goes through here.
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


@webhook_app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8787, "--port", min=0, max=65535, help="TCP port."),
    max_body: int = typer.Option(
        1_048_576, "--max-body-bytes", min=1024, help="Larger deliveries get 413."
    ),
    concurrency: int = typer.Option(
        8, "--concurrency", min=1, max=64, help="Records refetched at once."
    ),
    apply: bool = typer.Option(
        True, "--apply/--no-apply", help="Also apply inbox events here (one applier per store)."
    ),
) -> None:
    """Run the webhook receiver: POST /webhooks/{provider}/{connection_id}, GET /healthz.

    Every accepted delivery is written to the inbox before the 2xx answer, then applied by
    refetching the named record. Ctrl-C / SIGTERM stop gracefully; unapplied events are
    replayed on the next start. Put it behind HTTPS (a reverse proxy or tunnel).

    Example: `pms webhook serve --host 0.0.0.0 --port 8787`
    """
    import logging

    from pms_cli.cli.common import settings_and_store
    from pms_cli.cli.output import err
    from pms_cli.sync.session import Runtime
    from pms_cli.webhooks.applier import ApplierOptions
    from pms_cli.webhooks.receiver import ReceiverOptions, create_app
    from pms_cli.webhooks.server import run

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings, store = settings_and_store()
    options = ReceiverOptions(
        max_body_bytes=max_body, apply=apply, applier=ApplierOptions(concurrency=concurrency)
    )
    app = create_app(store, Runtime(settings), options)
    err.print(
        f"Receiving webhooks on http://{host}:{port}/webhooks/PROVIDER/CONNECTION_ID "
        f"(store: {store.description}). Ctrl-C stops.",
        highlight=False,
    )
    try:
        run(app, host, port)
    except OSError as exc:
        import errno

        from pms_cli.errors import ConfigError

        if exc.errno != errno.EADDRINUSE:
            raise
        raise ConfigError(
            f"port {port} on {host} is in use",
            hint="Pass another --port, or stop the other server.",
            code="usage",
        ) from None


@webhook_app.command("url")
def url(
    provider: str = typer.Argument(..., help="hostaway, smoobu, lodgify, guesty or beds24"),
    connection: str = typer.Option(..., "--connection", "-c", help="Connection ID (or prefix)."),
    public_base: str = typer.Option(
        DEFAULT_BASE,
        "--public-base",
        help="The receiver's public HTTPS origin, e.g. https://hooks.example.com.",
    ),
    rotate: bool = typer.Option(
        False, "--rotate", help="Issue a new token/password (the old one stops working)."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="With --rotate: do not ask (scripts)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Print the exact webhook URL and the setup steps for the provider's dashboard or API.

    Generates the per-connection token (Smoobu, Beds24) or Basic-auth password (Hostaway) on
    first use and keeps it with the connection's secrets. The output contains that secret.

    Example: `pms webhook url smoobu --connection 3f2a --public-base https://hooks.example.com`
    """
    from pms_cli.cli.connect_cmd import check_url
    from pms_cli.cli.output import out, safe
    from pms_cli.webhooks import secrets as webhook_secrets

    check_url(public_base, "--public-base")
    spec, _, _, conn = _connection_for(provider, connection)
    if rotate and not yes:
        _confirm_rotation(spec.provider, conn.id)
    secrets = webhook_secrets.ensure(conn, spec, rotate=rotate)
    info = spec.setup(public_base, conn, secrets)
    if as_json:
        payload = {
            "provider": spec.provider,
            "connection_id": conn.id,
            "url": info.url,
            "fields": dict(info.fields),
            "steps": list(info.steps),
            "verification": spec.verification,
            "note": info.note,
        }
        import json

        _write_unredacted(json.dumps(payload, indent=2))
        return
    out.print(f"[bold]{safe(conn.display_name)}[/] ({spec.provider}, connection {conn.id})")
    for name, value in info.fields.items():
        out.print(f"[bold]{name}:[/] ", end="")
        _write_unredacted(value)
    out.print("\n[bold]Setup[/]")
    for i, step in enumerate(info.steps, 1):
        out.print(f"  {i}. {step}", highlight=False)
    out.print(f"\nVerification: {spec.verification}.", highlight=False)
    if info.note:
        out.print(info.note, highlight=False)
    if public_base == DEFAULT_BASE:
        out.print(
            "[yellow]The URL uses the local receiver address; providers need a public HTTPS "
            "one: pass --public-base.[/]"
        )


def _confirm_rotation(provider: str, connection_id: str) -> None:
    """A new token breaks the URL pasted in the provider until it is replaced: ask first."""
    from pms_cli.errors import ConfigError

    what = (
        f"--rotate replaces the {provider} webhook token of {connection_id}; deliveries to the "
        "current URL are refused until the new one is pasted in the provider"
    )
    if not sys.stdin.isatty():
        raise ConfigError(
            f"{what}: not confirmed",
            hint="Add --yes to rotate it.",
            code="confirmation_needed",
        )
    question = (
        f"Rotate the {provider} webhook token of {connection_id}? Deliveries to the current URL "
        "are refused until the new one is pasted in the provider."
    )
    if not typer.confirm(question, default=False, err=True):
        raise ConfigError("nothing was rotated", hint="Run it again to confirm.")


@webhook_app.command("subscribe")
def subscribe(
    provider: str = typer.Argument(..., help="hostaway, lodgify, guesty or beds24"),
    connection: str = typer.Option(..., "--connection", "-c", help="Connection ID (or prefix)."),
    public_base: str = typer.Option(
        ..., "--public-base", help="The receiver's public HTTPS origin."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Register the webhook through the provider's API and keep the secret it returns.

    Lodgify: one subscription per booking event, each with its signing secret; Guesty: the
    webhook plus its Svix signing secret; Hostaway: a unified webhook with Basic auth;
    Beds24: the booking webhook of every property. Smoobu has no API for it (use `url`).

    Example: `pms webhook subscribe lodgify --connection 3f2a --public-base https://hooks.example.com`
    """
    from pms_cli.cli.connect_cmd import check_url

    check_url(public_base, "--public-base")
    import asyncio

    from pms_cli.cli.output import out, print_json
    from pms_cli.errors import ConfigError
    from pms_cli.providers import get_provider
    from pms_cli.sync.session import Runtime, connection_credentials, open_adapter
    from pms_cli.webhooks import secrets as webhook_secrets

    spec, settings, store, conn = _connection_for(provider, connection)
    if not spec.subscribe_api:
        raise ConfigError(
            f"{get_provider(spec.provider).title} has no API to subscribe webhooks",
            hint=f"Run `pms webhook url {spec.provider} --connection {conn.id} --public-base "
            f"{public_base}` and follow its dashboard steps.",
            code="no_subscribe_api",
        )
    secrets = webhook_secrets.ensure(conn, spec)
    target = spec.url(public_base, conn, secrets)
    runtime = Runtime(settings)
    api_secrets, _ = connection_credentials(get_provider(conn.provider), conn, runtime.env)

    async def go() -> dict[str, str]:
        async with open_adapter(
            runtime,
            conn.provider,
            connection_id=conn.id,
            public=conn.settings.get("public", {}),
            secrets=api_secrets,
            conn_settings=conn.settings,
            token_store=store,
            account_ref=conn.account_ref,
        ) as adapter:
            return await spec.subscribe(adapter, target, secrets)

    kept = asyncio.run(go())
    if kept:
        webhook_secrets.save(conn, kept)
    result = {
        "provider": spec.provider,
        "connection_id": conn.id,
        "subscribed": True,
        "secrets_stored": sorted(kept),
        "verification": spec.verification,
    }
    if as_json:
        print_json(result)
        return
    out.print(f"Subscribed {spec.provider} webhooks for connection {conn.id}.")
    if kept:
        out.print(f"Stored {len(kept)} signing secret(s) with the connection's credentials.")
    out.print(f"Verification: {spec.verification}.", highlight=False)


@webhook_app.command("secret")
def secret(
    provider: str = typer.Argument(..., help="guesty (or lodgify with --event)"),
    connection: str = typer.Option(..., "--connection", "-c", help="Connection ID (or prefix)."),
    event: str | None = typer.Option(None, "--event", help="Lodgify: the subscribed event."),
    from_env: str | None = typer.Option(
        None, "--from-env", help="Read the secret from this environment variable."
    ),
) -> None:
    """Store a signing secret copied from the provider's dashboard (hidden input).

    Example: `pms webhook secret guesty --connection 3f2a` (paste the whsec_… value)
    """
    import os

    from pms_cli.cli.output import out
    from pms_cli.errors import ConfigError
    from pms_cli.webhooks import secrets as webhook_secrets

    spec, _, _, conn = _connection_for(provider, connection)
    if spec.provider == "guesty":
        name = "webhook_secret"
    elif spec.provider == "lodgify" and event:
        name = f"webhook_secret.{event}"
    else:
        raise ConfigError(
            f"{spec.provider} webhook secrets are generated by pms or by `pms webhook subscribe`",
            hint=f"Run `pms webhook url {spec.provider} --connection {conn.id}` (Lodgify: "
            "`pms webhook subscribe lodgify`, or this command with --event).",
            code="usage",
        )
    if from_env:
        value = os.environ.get(from_env, "")
    elif sys.stdin.isatty():
        value = typer.prompt("Signing secret", hide_input=True)
    else:
        raise ConfigError(
            "no TTY to ask for the secret",
            hint="Pass --from-env VAR with the secret in that environment variable.",
            code="no_tty",
        )
    value = value.strip()
    if not value or (spec.provider == "guesty" and not value.startswith("whsec_")):
        raise ConfigError(
            "that does not look like a signing secret",
            hint="Guesty's signing secrets start with whsec_ (Integrations → Webhooks).",
            code="bad_secret",
        )
    webhook_secrets.save(conn, {name: value})
    out.print(f"Stored the {spec.provider} signing secret for connection {conn.id}.")
