"""Re-record vcrpy cassettes for a provider, scrubbing every secret before it reaches disk.

    uv run python scripts/record_cassettes.py hostaway           # from the built-in sandbox
    uv run python scripts/record_cassettes.py hostaway --live    # from the real API, using the
                                                                 # provider's env credentials

Sandbox recordings are made against the provider's production base URL (the sandbox answers
through an in-process transport), so replayed cassettes look exactly like live traffic.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import vcr
from pydantic import SecretStr

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pms_cli.config import load_settings  # noqa: E402
from pms_cli.http.tokens import MemoryTokenCache  # noqa: E402
from pms_cli.providers import get_provider  # noqa: E402
from pms_cli.redact import SECRET_KEYS  # noqa: E402
from pms_cli.sandbox.server import SandboxOptions  # noqa: E402
from pms_cli.sync.session import Runtime, open_adapter  # noqa: E402

REDACTED = "REDACTED"
SECRET_BODY_KEYS = {"access_token", "refresh_token", "refreshToken", "token", "client_secret"}


def scrub_request(request: Any) -> Any:
    for name in list(request.headers):
        if name.lower() in SECRET_KEYS:
            request.headers[name] = REDACTED
    if request.body:
        body = request.body.decode() if isinstance(request.body, bytes) else request.body
        pairs = [p.split("=", 1) for p in body.split("&") if "=" in p]
        if pairs and all(len(p) == 2 for p in pairs):
            request.body = "&".join(
                f"{k}={REDACTED if k in SECRET_BODY_KEYS else v}" for k, v in pairs
            ).encode()
    return request


def _scrub_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: (REDACTED if k in SECRET_BODY_KEYS else _scrub_json(v)) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_scrub_json(v) for v in value]
    return value


def scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    body = response.get("body", {}).get("string")
    if body:
        try:
            data = json.loads(body)
        except ValueError:
            return response
        response["body"]["string"] = json.dumps(_scrub_json(data)).encode()
    for name in list(response.get("headers", {})):
        if name.lower() == "set-cookie":
            response["headers"][name] = [REDACTED]
        elif name.lower() == "content-length":  # stale once the body is scrubbed
            del response["headers"][name]
    return response


def recorder(cassette_dir: Path, mode: str) -> vcr.VCR:
    return vcr.VCR(
        cassette_library_dir=str(cassette_dir),
        record_mode=mode,
        match_on=["method", "scheme", "host", "port", "path", "query"],
        before_record_request=scrub_request,
        before_record_response=scrub_response,
        decode_compressed_response=True,
    )


async def record(provider: str, live: bool) -> None:
    import importlib

    cls = get_provider(provider)
    settings = load_settings()
    transport: httpx.AsyncBaseTransport | None = None
    if live:
        values = {
            f.name: os.environ[f.env]
            for f in cls.credential_fields
            if f.env and f.env in os.environ
        }
    else:
        mounted = importlib.import_module(f"pms_cli.sandbox.{provider}").build_sandbox(
            SandboxOptions(listings=3, reservations=5, relaxed=True)
        )
        values = mounted.credentials
        transport = httpx.ASGITransport(
            app=_rebase(mounted.app, cls.default_base_url, mounted.api_path)
        )
    public = {f.name: values[f.name] for f in cls.public_fields() if f.name in values}
    secrets = {f.name: SecretStr(values[f.name]) for f in cls.secret_fields() if f.name in values}
    runtime = Runtime(settings, transport=transport, token_cache=MemoryTokenCache())
    cassettes = recorder(ROOT / "cassettes" / provider, "all")
    with cassettes.use_cassette("check.yaml"):
        async with open_adapter(
            runtime,
            provider,
            connection_id="rec",
            public=public,
            secrets=secrets,
            conn_settings={"base_url": cls.default_base_url},
            token_store=None,
        ) as adapter:
            await adapter.check()
    for resource in cls.resources:
        # A fresh token cache per cassette keeps each cassette self-contained.
        runtime.token_cache = MemoryTokenCache()
        with cassettes.use_cassette(f"{resource.name}.yaml"):
            async with open_adapter(
                runtime,
                provider,
                connection_id="rec",
                public=public,
                secrets=secrets,
                conn_settings={"base_url": cls.default_base_url},
                token_store=None,
            ) as adapter:
                async for _ in adapter.pages(resource, None):
                    pass


def _rebase(app: Any, base_url: str, api_path: str) -> Any:
    """Serve the sandbox under the production path prefix (e.g. /v1 → /v1, /api → /api)."""
    from urllib.parse import urlsplit

    prefix = urlsplit(base_url).path.rstrip("/")
    if prefix.endswith(api_path.rstrip("/")):
        strip = prefix[: len(prefix) - len(api_path.rstrip("/"))]
    else:
        strip = ""

    async def rebased(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and strip and scope["path"].startswith(strip):
            scope = {**scope, "path": scope["path"][len(strip) :], "raw_path": None}
        await app(scope, receive, send)

    return rebased


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("provider")
    parser.add_argument(
        "--live", action="store_true", help="record the real API (needs env credentials)"
    )
    args = parser.parse_args()
    os.environ.setdefault("PMS_CONFIG_DIR", str(ROOT / ".record-config"))
    asyncio.run(record(args.provider, args.live))
    print(f"recorded cassettes/{args.provider}/")


if __name__ == "__main__":
    main()
