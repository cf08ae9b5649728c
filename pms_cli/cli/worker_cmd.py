"""`pms worker`: pull connection syncs from the shared job queue (one of a fleet, or alone)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from pms_cli.worker import JobOutcome


def _line(outcome: JobOutcome) -> str:
    res = outcome.result or {}
    parts = [
        f"{name} {sum(r.get('written', {}).values())}"
        for name, r in (res.get("resources") or {}).items()
    ]
    detail = ", ".join(parts)
    if res:
        detail += f"{', ' if detail else ''}{res.get('requests', 0)} requests"
    if outcome.error and outcome.status not in ("succeeded", "partial"):
        detail = str(outcome.error.get("message", ""))
    return (
        f"{outcome.provider or '?'} {outcome.connection_id[:8]}  {outcome.status}"
        f" (attempt {outcome.attempt}){'  ' + detail if detail else ''}"
    )


def register(app: typer.Typer) -> None:
    @app.command("worker")
    def worker(
        once: bool = typer.Option(
            False, "--once", help="Queue what is due, run until the queue is drained, then exit."
        ),
        concurrency: int = typer.Option(
            4, "--concurrency", min=1, help="Connections this worker syncs at once."
        ),
        poll_interval: float = typer.Option(
            5.0, "--poll-interval", min=0.1, help="Seconds between polls of an empty queue."
        ),
        every: float = typer.Option(
            60.0,
            "--every",
            min=0,
            help="Minutes between syncs of a connection (0: queue nothing, only run queued jobs).",
        ),
        provider: str | None = typer.Option(
            None, "--provider", help="Only queue and run this provider's connections."
        ),
        lease: float = typer.Option(
            60.0,
            "--lease",
            min=5,
            help="Seconds without a heartbeat after which another worker takes a job over.",
        ),
        max_jobs: int | None = typer.Option(
            None, "--max-jobs", min=1, help="Exit after claiming this many jobs."
        ),
        full: bool = typer.Option(
            False, "--full", help="Queue full refreshes instead of incremental syncs."
        ),
        as_json: bool = typer.Option(
            False,
            "--json",
            help="With --once: one JSON summary. Otherwise: one JSON object per job and line.",
        ),
    ) -> None:
        """Run connection syncs from the job queue; start several (on several machines) to share
        the work. Each connection is synced by at most one worker at a time; a worker that dies
        leaves its job to the others once its lease expires.

        Needs PMS_DATABASE_URL (PostgreSQL, after `pms db migrate`) for a fleet; with the local
        SQLite store, workers on one machine share the file. SIGTERM: finish running jobs, exit.

        Examples: `pms worker --concurrency 8`  ·  cron: `pms worker --once --every 15 --json`
        """
        import asyncio
        import contextlib
        import json
        import signal
        import sys

        from pms_cli.cli.common import settings_and_store
        from pms_cli.cli.output import out, print_json
        from pms_cli.providers import get_provider
        from pms_cli.redact import redact_text
        from pms_cli.sync.session import Runtime
        from pms_cli.worker import Worker, WorkerOptions

        if provider is not None:
            provider = get_provider(provider).name  # unknown names: a ConfigError with a hint
        settings, store = settings_and_store()
        options = WorkerOptions(
            concurrency=concurrency,
            poll_interval=poll_interval,
            lease_seconds=lease,
            every_seconds=every * 60 if every > 0 else None,
            provider=provider,
            once=once,
            max_jobs=max_jobs,
            kind="full" if full else "sync",
        )

        def report(outcome: JobOutcome) -> None:
            if once and as_json:
                return
            if as_json:
                sys.stdout.write(redact_text(json.dumps(outcome.to_dict(), default=str)) + "\n")
                sys.stdout.flush()
            else:
                out.print(_line(outcome), highlight=False, markup=False)

        async def main() -> list[JobOutcome]:
            w = Worker(store, Runtime(settings), options, on_outcome=report)
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.add_signal_handler(sig, w.stop)
            try:
                return await w.run()
            finally:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                        loop.remove_signal_handler(sig)

        outcomes = asyncio.run(main())
        failed = [o for o in outcomes if o.status == "failed"]
        if once and as_json:
            print_json(
                {
                    "status": "failed" if failed else "ok",
                    "jobs": [o.to_dict() for o in outcomes],
                }
            )
        elif once and not outcomes:
            out.print("Nothing to do: no connection is due and the queue is empty.")
        if failed:
            raise typer.Exit(1)
