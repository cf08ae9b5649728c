"""Start and stop a throwaway PostgreSQL server (used by tests/stores and bench/store_write.py).

The server lives in a fresh temp directory, listens on 127.0.0.1 on a free port (plus a unix
socket inside that directory), requires a password over TCP, and is removed on ``stop()``.
``initdb`` refuses to run as root, so when we are root the binaries run as the ``postgres``
system user via ``runuser`` and the directory is handed to that user.

Binaries: ``$PMS_TEST_PG_BINDIR``, else the newest ``/usr/lib/postgresql/*/bin`` (Debian/Ubuntu
``postgresql-NN`` packages), else ``initdb`` on ``PATH``.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

DEFAULT_BINDIRS = "/usr/lib/postgresql"


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries are missing or the server did not start."""


def find_bindir() -> Path:
    env = os.environ.get("PMS_TEST_PG_BINDIR")
    if env:
        if (Path(env) / "initdb").exists():
            return Path(env)
        raise PostgresUnavailable(f"PMS_TEST_PG_BINDIR={env} has no initdb")
    root = Path(DEFAULT_BINDIRS)
    if root.is_dir():
        versions = sorted(
            (p for p in root.iterdir() if (p / "bin" / "initdb").exists()),
            key=lambda p: int(p.name) if p.name.isdigit() else 0,
            reverse=True,
        )
        if versions:
            return versions[0] / "bin"
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise PostgresUnavailable(
        "PostgreSQL server binaries not found (looked in $PMS_TEST_PG_BINDIR, "
        f"{DEFAULT_BINDIRS}/*/bin and PATH). Install them, e.g. "
        "`apt-get install -y postgresql-15` on Debian, or point PMS_TEST_PG_BINDIR at a bin dir."
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TempPostgres:
    """A private PostgreSQL cluster: ``start()``, use ``url()``, ``stop()``."""

    user = "postgres"

    def __init__(self, durable: bool = False, bindir: Path | None = None) -> None:
        self.bindir = bindir or find_bindir()
        self.durable = durable  # False: fsync off etc. (tests); True: default durability (bench)
        self.password = secrets.token_urlsafe(16)
        self.port = 0
        self.root: Path | None = None
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable(
                    "running as root, and there is no `postgres` user to run initdb as "
                    "(the Debian postgresql-15 package creates it; or run as a non-root user)"
                ) from None

    # -- lifecycle ---------------------------------------------------------------------------

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)

    def start(self) -> TempPostgres:
        # Directly under the system temp dir: pytest's own tmp dirs are 0700 root, which the
        # postgres user could not traverse.
        self.root = Path(tempfile.mkdtemp(prefix="pms-pg-"))
        data = self.root / "data"
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(pwfile, "postgres", "postgres")
        pwfile.chmod(0o600)
        init = self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            self.user,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            f"--pwfile={pwfile}",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        )
        if init.returncode != 0:
            self._cleanup()
            raise PostgresUnavailable(f"initdb failed:\n{init.stdout}\n{init.stderr}")
        options = [
            "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories={self.root}",
            "-c max_connections=40",
            "-c shared_buffers=64MB",
        ]
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        for _ in range(3):  # the free port may be taken between probing and binding
            self.port = free_port()
            started = self._run(
                str(self.bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(self.root / "server.log"),
                "-o",
                " ".join([f"-p {self.port}", *options]),
                "-w",
                "-t",
                "30",
                "start",
            )
            if started.returncode == 0:
                return self
            time.sleep(0.2)
        log = (self.root / "server.log").read_text(errors="replace")[-2000:]
        self._cleanup()
        raise PostgresUnavailable(f"pg_ctl start failed:\n{started.stderr}\n{log}")

    def stop(self) -> None:
        if self.root is None:
            return
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "fast", "-w", "stop"
        )
        self._cleanup()

    def _cleanup(self) -> None:
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> TempPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses ---------------------------------------------------------------------------

    def url(self, dbname: str = "postgres", user: str | None = None, password: str = "") -> str:
        user = user or self.user
        password = password or (self.password if user == self.user else "")
        auth = f"{user}:{password}" if password else user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        """Create an empty database (dropping one of that name) and return its URL."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)
