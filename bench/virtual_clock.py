"""Virtual time for the simulated benchmarks: concurrent sleeps overlap, as they do for real.

Why this exists: ``tests/conftest.SharedClock`` advances one shared time by the full length of
every sleep, at the moment the sleep starts. With one connection that is exact. With many
connections asleep at once (each paced by its own per-account limiter) it is not: whenever one
task sleeps, time jumps for every other task too, even for those that were busy (mapping,
writing to SQLite in a worker thread) and would have sent their next request long before. Their
pacing then restarts from the later time, so the connections' schedules are pushed apart and the
run's simulated wall time becomes a *sum* of sleeps (measured: Guesty 200 × 2,000 took 4.2 s of
simulated time against a 2.0 s per-account floor; see bench/README.md).

Here the event loop's own clock is virtual instead (the same idea as the ``looptime`` library):
``asyncio.sleep`` schedules a timer at its deadline, and the loop moves its time straight to the
earliest timer only when nothing can make progress: no callback is ready, no I/O is ready, and
no ``run_in_executor``/``asyncio.to_thread`` call (the store writes) is still running. While a
worker thread runs, the loop waits for it in real time and virtual time stands still, so store
writes cost zero simulated time, as with ``SharedClock``. ``looptime`` 0.9 was tried first and
does not fit: while an executor call is outstanding it lets its time run on towards the next
timer, so with other connections' timers pending, a 0.2 s ``to_thread`` call was charged 0.17 s
of loop time (0.0 s here), i.e. SQLite's real speed, and the machine's load, would leak into the
rate-limit figures.

Use it through ``run(coro, clock)`` with a ``VirtualClock``, whose ``now``/``time``/
``monotonic``/``sleep`` are what the client (``pms_cli.http.clock.Clock``) and the sandboxes
(``pms_cli.sandbox.common.Clock``) expect.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import selectors
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose ``time()`` only moves when the loop would otherwise idle."""

    def __init__(self) -> None:
        super().__init__(selectors.DefaultSelector())
        self._virtual_now = 0.0  # small numbers keep float steps exact; VirtualClock adds an epoch
        self._in_threads: set[asyncio.Future[Any]] = set()
        self._real_select = self._selector.select  # type: ignore[attr-defined]
        self._selector.select = self._select  # type: ignore[attr-defined]

    def time(self) -> float:
        return self._virtual_now

    def run_in_executor(  # type: ignore[override]
        self,
        executor: concurrent.futures.Executor | None,
        func: Callable[..., T],
        *args: Any,
    ) -> asyncio.Future[T]:
        future = super().run_in_executor(executor, func, *args)
        self._in_threads.add(future)
        future.add_done_callback(self._in_threads.discard)
        return future

    def _select(self, timeout: float | None = None) -> list[tuple[Any, int]]:
        ready: list[tuple[Any, int]] = self._real_select(0)
        if ready or timeout == 0:
            return ready  # something to do now, or asyncio only polls
        if self._in_threads or timeout is None:
            # A worker thread can still make progress (it wakes us through the self-pipe), or
            # nothing is scheduled at all: wait in real time, virtual time stands still.
            return self._real_select(None)
        # Nothing can make progress before the earliest timer: jump to it.
        before = self._virtual_now
        self._virtual_now += timeout
        if self._virtual_now == before:  # a step below float resolution would spin forever
            self._virtual_now = math.nextafter(before, math.inf)
        return []


class VirtualClock:
    """The bench's clock on a ``VirtualTimeLoop``: Unix-like seconds = epoch + loop time.

    ``slept``/``sleeps`` record every sleep by the task that slept (for attributing waits).
    """

    def __init__(self, loop: VirtualTimeLoop, start: float = 1_780_000_000.0) -> None:
        self.loop = loop
        self._epoch = start  # 2026-05-28 like SharedClock: after the generated data
        self.slept = 0.0
        self.sleeps = 0
        self.by_task: dict[int, float] = {}

    def now(self) -> float:
        return self._epoch + self.loop.time()

    def time(self) -> float:
        return self.now()

    def monotonic(self) -> float:
        return self.now()

    def advance(self, seconds: float) -> None:
        """Move time by hand (between runs, with the loop idle), like ``SharedClock.advance``."""
        self._epoch += seconds

    async def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.slept += seconds
            self.sleeps += 1
            key = id(asyncio.current_task())
            self.by_task[key] = self.by_task.get(key, 0.0) + seconds
        await asyncio.sleep(max(0.0, seconds))


def new_clock() -> VirtualClock:
    return VirtualClock(VirtualTimeLoop())


def run(coro: Coroutine[Any, Any, T], clock: VirtualClock) -> T:
    """``asyncio.run`` on the clock's virtual-time loop; the loop stays open for further runs."""
    asyncio.set_event_loop(clock.loop)
    try:
        return clock.loop.run_until_complete(coro)
    finally:
        asyncio.set_event_loop(None)


def close(clock: VirtualClock) -> None:
    loop = clock.loop
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()
