"""`pms map`: link a provider property to the product's own property id."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("map")
    def map_(
        external_property_id: str | None = typer.Argument(None, help="The provider's property id."),
        property_id: str | None = typer.Argument(None, help="Your product's property id."),
        connection: str | None = typer.Option(None, "--connection", "-c", help="Connection ID."),
        list_: bool = typer.Option(False, "--list", help="List mappings instead."),
        yes: bool = typer.Option(
            False, "--yes", "-y", help="Replace an existing mapping without asking (scripts)."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """Link a synced property to your own property id (`pms_property_mappings`).

        Examples:

        \b
          pms map --connection 3f2a 40160 prop_123
          pms map --list
        """
        from rich.table import Table

        from pms_cli.cli.common import find_connection, settings_and_store
        from pms_cli.cli.output import out, print_json, safe
        from pms_cli.cli.tabular import print_table
        from pms_cli.errors import ConfigError

        _, store = settings_and_store()
        conn_id = (
            find_connection(store, connection, allow_disconnected=True).id if connection else None
        )
        if list_ or external_property_id is None:
            rows = store.list_mappings(conn_id)
            if as_json:
                print_json(rows)
                return
            table = Table()
            for col in ("connection", "external property", "name", "property id"):
                table.add_column(col)
            for m in rows:
                table.add_row(
                    safe(m["connection_id"][:8]),
                    safe(m["external_property_id"]),
                    safe(m["name"]),
                    safe(m["property_id"]) if m["property_id"] else "[yellow]unmapped[/]",
                )
            print_table(table)
            return
        if conn_id is None or property_id is None:
            raise ConfigError(
                "map needs --connection ID, the provider's property id and your property id",
                hint="Example: pms map --connection 3f2a 40160 prop_123 (see `pms map --list`).",
                code="usage",
            )
        current = next(
            (
                m["property_id"]
                for m in store.list_mappings(conn_id)
                if m["external_property_id"] == external_property_id
            ),
            None,
        )
        if current and current != property_id and not yes:
            _confirm_overwrite(external_property_id, current, property_id)
        try:
            store.set_mapping(conn_id, external_property_id, property_id)
        except KeyError:
            raise ConfigError(
                f"property {external_property_id!r} has not been synced for this connection",
                hint="Run `pms sync` first, then pick an id from `pms map --list`.",
                code="unknown_property",
            ) from None
        if as_json:
            print_json(
                {
                    "connection_id": conn_id,
                    "external_property_id": external_property_id,
                    "property_id": property_id,
                }
            )
        else:
            out.print(f"Mapped {safe(external_property_id)} → {safe(property_id)}.")


def _confirm_overwrite(external: str, current: str, new: str) -> None:
    """Replacing a link re-points every booking of that property: ask, or require --yes."""
    import sys

    from pms_cli.errors import ConfigError

    what = f"{external} is mapped to {current}; replacing it with {new}"
    if not sys.stdin.isatty():
        raise ConfigError(
            f"{what} needs confirmation",
            hint="Add --yes to replace the mapping.",
            code="confirmation_needed",
        )
    if not typer.confirm(f"{what[0].upper()}{what[1:]}. Continue?", default=False, err=True):
        raise ConfigError("the mapping was not changed", hint="Run it again to confirm.")
