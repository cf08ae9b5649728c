"""`pms status` and `pms --help` import only what they need.

Each command runs in a fresh interpreter, which then reports ``sys.modules``: module sets, not
timings, so the tests are deterministic. Start-up figures are in bench/README.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from pms_cli import credentials
from pms_cli.config import load_settings
from pms_cli.providers import get_provider, module_names, registry
from pms_cli.stores import open_store
from pms_cli.stores.base import Connection

PROBE = """
import json, sys
from pms_cli.cli.app import main
try:
    main(sys.argv[2:])
except SystemExit as exc:
    code = exc.code or 0
else:
    code = 0
with open(sys.argv[1], "w") as fh:
    json.dump({"code": code, "modules": sorted(sys.modules)}, fh)
"""

PROVIDER_MODULES = {f"pms_cli.providers.{name}" for name in module_names()}


def run_pms(tmp_path: Path, *args: str) -> tuple[set[str], str]:
    """The modules loaded by `pms ARGS` in a fresh interpreter, and its stdout."""
    report = tmp_path / "modules.json"
    env = dict(os.environ, PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(report), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(report.read_text())
    assert data["code"] == 0, result.stderr
    return set(data["modules"]), result.stdout


def add_connection(
    provider: str, conn_id: str, location: str, *, status: str = "active", **secrets: str
) -> None:
    store = open_store(load_settings())
    try:
        store.add_connection(
            Connection(
                id=conn_id,
                organization_id="default",
                provider=provider,
                display_name=f"{provider} test",
                status=status,
                account_ref="acct",
                secret_location=location,
                settings={"public": {}},
            )
        )
    finally:
        store.close()
    if secrets:
        credentials.save_secrets(
            conn_id, {k: SecretStr(v) for k, v in secrets.items()}, insecure_storage=True
        )


def test_status_imports_only_the_provider_modules_of_its_connections(tmp_path: Path) -> None:
    add_connection("hostaway", "0a" * 16, "file", client_id="c", client_secret="s" * 20)
    add_connection("smoobu", "0b" * 16, "file", api_key="k" * 20, api_secret="s" * 20)
    add_connection("guesty", "0c" * 16, "keyring", status="disconnected")

    for args in (("status",), ("status", "--json")):
        modules, _ = run_pms(tmp_path, *args)
        assert modules & PROVIDER_MODULES == {
            "pms_cli.providers.hostaway",
            "pms_cli.providers.smoobu",
        }, args
        assert "httpx" not in modules
        assert "keyring" not in modules  # every active connection keeps its secrets in the file

    modules, stdout = run_pms(tmp_path, "status", "--json", "--all")  # --all: disconnected too
    assert "rich" not in modules
    rows = {r["provider"]: r["credentials"] for r in json.loads(stdout)["connections"]}
    assert rows == {
        "hostaway": "file (insecure storage)",
        "smoobu": "file (insecure storage)",
        "guesty": "n/a",
    }


def test_status_without_connections_imports_no_provider_or_http_code(tmp_path: Path) -> None:
    modules, stdout = run_pms(tmp_path, "status", "--json")
    assert json.loads(stdout)["connections"] == []
    assert not modules & PROVIDER_MODULES
    assert not {"httpx", "keyring", "pms_cli.providers.base", "pms_cli.http"} & modules


def test_help_imports_no_settings_store_or_provider_code(tmp_path: Path) -> None:
    modules, stdout = run_pms(tmp_path, "--help")
    assert "status" in stdout and "Usage" in stdout
    unneeded = {"httpx", "keyring", "pydantic_settings", "pms_cli.config", "pms_cli.stores"}
    assert not (unneeded | PROVIDER_MODULES | {"pms_cli.providers"}) & modules


def test_each_provider_module_is_named_after_its_provider() -> None:
    """What lets get_provider import one module by name, with the same result as registry()."""
    assert list(module_names()) == list(registry())
    for name, cls in registry().items():
        assert cls.__module__ == f"pms_cli.providers.{name}"
        assert get_provider(name) is cls
        assert get_provider(name.upper()) is cls
