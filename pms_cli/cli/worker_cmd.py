"""`pms worker`: run connection syncs as Procrastinate jobs (one of a fleet, or alone)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from pms_cli.worker import JobOutcome, WorkerOptions

FLEET_NOTE = (
    "Note: a fleet of workers needs PostgreSQL (PMS_DATABASE_URL, then `pms db migrate`); "
    "this worker runs the schedule in this process only."
)


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


def _totals(outcomes: list[JobOutcome]) -> str:
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    requests = sum(int((o.result or {}).get("requests", 0)) for o in outcomes)
    by_status = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    return f"{len(outcomes)} job(s): {by_status}; {requests} requests"


def _banner(store: str, fleet: bool, options: WorkerOptions) -> str:
    every = (
        "runs queued jobs only (--every 0)"
        if options.every_seconds is None
        else f"every {options.every_seconds / 60:g} min{' (full)' if options.full else ''}"
    )
    queue = "Procrastinate queue (fleet)" if fleet else "in-process queue"
    scope = f", provider {options.provider}" if options.provider else ""
    mode = ", once" if options.once else ""
    return f"pms worker: {store}, {queue}, concurrency {options.concurrency}, {every}{scope}{mode}"


def register(app: typer.Typer) -> None:
    @app.command("worker")
    def worker(
        once: bool = typer.Option(
            False, "--once", help="Queue what is due, run what is runnable now, then exit."
        ),
        concurrency: int = typer.Option(
            4, "--concurrency", min=1, help="Connections this worker syncs at once."
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
        full: bool = typer.Option(
            False, "--full", help="Queue full refreshes instead of incremental syncs."
        ),
        stalled_after: float = typer.Option(
            30.0,
            "--stalled-after",
            min=0.5,
            metavar="SECONDS",
            help="Seconds without a heartbeat after which a worker counts as dead and its "
            "jobs go back to the queue.",
        ),
        poll_interval: float = typer.Option(
            5.0,
            "--poll-interval",
            min=0.1,
            help="Seconds between queue polls (new jobs also wake workers at once).",
        ),
        grace: float | None = typer.Option(
            None,
            "--grace",
            min=0,
            help="On SIGTERM, wait this many seconds for running jobs, then give them back "
            "to the queue (default: wait until they finish).",
        ),
        as_json: bool = typer.Option(
            False,
            "--json",
            help="With --once: one JSON summary. Otherwise: one JSON object per job and line.",
        ),
    ) -> None:
        """Run connection syncs from the job queue (Procrastinate on PostgreSQL); start several,
        on several machines, to share the work. A connection is queued at most once and synced
        by one worker at a time; a worker that dies (even SIGKILL) leaves its job to the others
        once its heartbeat is `--stalled-after` seconds old.

        Needs PMS_DATABASE_URL (after `pms db migrate`) for a fleet; with the local SQLite file
        it runs the same schedule in this process only. SIGTERM: finish running jobs, exit.

        Examples: `pms worker --concurrency 8 --every 15`  ·  cron: `pms worker --once --json`
        """
        import asyncio
        import contextlib
        import json
        import logging
        import signal
        import sys

        from pms_cli.cli.common import settings_and_store
        from pms_cli.cli.output import out, print_json
        from pms_cli.providers import get_provider
        from pms_cli.redact import redact_text
        from pms_cli.sync.session import Runtime
        from pms_cli.worker import Worker, WorkerOptions, memory_app, postgres_app

        if provider is not None:
            provider = get_provider(provider).name  # unknown names: a ConfigError with a hint
        settings, store = settings_and_store()
        options = WorkerOptions(
            concurrency=concurrency,
            every_seconds=every * 60 if every > 0 else None,
            provider=provider,
            once=once,
            full=full,
            stalled_seconds=stalled_after,
            poll_interval=poll_interval,
            grace_seconds=grace,
        )
        # Procrastinate logs each failed job with its traceback; the per-job lines say it all.
        logging.getLogger("procrastinate").addHandler(logging.NullHandler())
        logging.getLogger("procrastinate").propagate = False
        fleet = settings.database_url is not None
        if fleet:
            assert settings.database_url is not None
            app = postgres_app(settings.database_url.get_secret_value(), concurrency)
        else:
            app = memory_app()
        if not as_json:
            out.print(_banner(store.description, fleet, options), highlight=False, markup=False)
            if not fleet:
                out.print(FLEET_NOTE, highlight=False, markup=False)

        def report(outcome: JobOutcome) -> None:
            if once and as_json:
                return
            if as_json:
                sys.stdout.write(redact_text(json.dumps(outcome.to_dict(), default=str)) + "\n")
                sys.stdout.flush()
            else:
                out.print(_line(outcome), highlight=False, markup=False)

        async def main() -> list[JobOutcome]:
            w = Worker(store, Runtime(settings), app, options, on_outcome=report)
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
        elif not as_json:
            if once and not outcomes:
                out.print("Nothing to do: no connection is due and the queue is empty.")
            elif outcomes:
                out.print(_totals(outcomes), highlight=False, markup=False)
        if failed:
            raise typer.Exit(1)
