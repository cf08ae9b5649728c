"""`pms providers`."""

from __future__ import annotations

from typing import Any

import typer


def register(app: typer.Typer) -> None:
    @app.command("providers")
    def providers(
        as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    ) -> None:
        """List supported providers: auth, credentials asked for, rate limits, where to find keys.

        Example:

        \b
          pms providers --json
        """
        from rich.table import Table

        from pms_cli.cli.output import print_json
        from pms_cli.cli.tabular import print_table
        from pms_cli.providers import registry

        rows: list[dict[str, Any]] = []
        for cls in registry().values():
            rows.append(
                {
                    "name": cls.name,
                    "title": cls.title,
                    "auth": cls.auth_kind,
                    "credentials": [
                        {
                            "name": f.name,
                            "label": f.label,
                            "env": f.env,
                            "secret": f.secret,
                            "required": f.required,
                            "flag": "--" + f.name.replace("_", "-"),
                        }
                        for f in cls.credential_fields
                    ],
                    "rate_limits": [str(w) for w in cls.rate_limits],
                    "ip_rate_limits": [str(w) for w in cls.ip_rate_limits],
                    "rate_limit_note": cls.rate_limit_note,
                    "webhooks": cls.webhooks,
                    "keys_help": cls.keys_help,
                    "base_url": cls.default_base_url,
                    "base_url_env": cls.base_url_env(),
                }
            )
        if as_json:
            print_json(rows)
            return
        table = Table(title="Providers", show_lines=True)
        for col in ("provider", "auth", "credentials (flag / env)", "rate limit", "keys"):
            table.add_column(col, overflow="fold")
        for r in rows:
            creds = "\n".join(
                f"{c['label']}{'' if c['required'] else ' (optional)'}: "
                + " / ".join(x for x in (c["flag"], c["env"]) if x)  # no env var: flag only
                for c in r["credentials"]
            )
            limits = [f"{w} per account" for w in r["rate_limits"]]
            limits += [f"{w} per IP" for w in r["ip_rate_limits"]]
            limits += [r["rate_limit_note"]] if r["rate_limit_note"] else []
            table.add_row(r["name"], r["auth"], creds, "\n".join(limits), r["keys_help"] or "")
        print_table(table)
