"""SIGINT (Ctrl-C) and SIGTERM (systemd, docker, CI) as a request to stop cleanly.

The first signal sets an ``asyncio.Event`` the running command watches (the sync engine then
cancels its runs, which commit or roll back the batch in flight, log themselves
``interrupted`` and release their locks); the command then prints what it did and exits
``128 + signal`` (130 for SIGINT, 143 for SIGTERM), as shells report a process killed by it.
A second signal stops waiting for that clean-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """What the handlers saw: the first signal's number, and the event they set."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.signum: int | None = None

    @property
    def name(self) -> str | None:
        return signal.Signals(self.signum).name if self.signum is not None else None

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or signal.SIGINT)


def run_stoppable(work: Callable[[StopRequest], Awaitable[T]]) -> tuple[T, StopRequest]:
    """Run ``work(stop)`` on a new event loop with SIGINT/SIGTERM setting ``stop.event``."""

    async def main() -> tuple[T, StopRequest]:
        stop = StopRequest()
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()

        def received(signum: int) -> None:
            if stop.signum is None:
                stop.signum = signum
                stop.event.set()
                return
            # A second signal: the user does not want to wait for the clean-up.
            sys.stderr.write("Stopping without waiting for the clean-up.\n")
            if task is not None:
                task.cancel()

        installed = []
        for sig in STOP_SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, received, int(sig))
                installed.append(sig)
        try:
            return await work(stop), stop
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    try:
        return asyncio.run(main())
    except asyncio.CancelledError:  # the second signal
        raise SystemExit(128 + int(signal.SIGINT)) from None
