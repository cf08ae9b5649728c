"""Client-side rate limiting that matches how providers count.

Providers enforce sliding windows ("15 requests per 10 s"), so a leaky bucket with a burst equal
to the limit would overshoot at the window edge; we keep the send times of the last N requests
per window instead. Limiters are shared by key, so two connections of one Hostaway account, or
all connections behind one IP, draw from the same budget.

Credit budgets (Beds24) are paced from the provider's own response headers via ``observe``.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from pms_cli.http.clock import Clock


@dataclass(frozen=True)
class Window:
    """``limit`` requests per ``seconds``; parsed from ``"15/10"``."""

    limit: int
    seconds: float

    @classmethod
    def parse(cls, spec: str) -> Window:
        count, _, seconds = spec.partition("/")
        return cls(int(count), float(seconds or 1))

    def __str__(self) -> str:
        return f"{self.limit} requests / {self.seconds:g} s"


IN_FLIGHT_POLL = 0.01
"""Seconds between checks while the slot that would free up belongs to a request in flight."""


class Slot:
    """One request in a window: sent at ``sent``, answered at ``done`` (None while in flight)."""

    __slots__ = ("done", "sent")

    def __init__(self, sent: float) -> None:
        self.sent = sent
        self.done: float | None = None


class SlidingWindow:
    """Exact sliding-window log for one budget (one key, one window).

    A request counts from when it is sent until ``span`` after its *answer*: the server stamps
    it somewhere in between, so counting from the send time alone lets a delayed request and a
    quick later one land in the same server-side window (several requests in flight at once
    made that happen). For sequential requests this costs one latency per window.
    """

    def __init__(self, window: Window, slack: float = 0.05) -> None:
        self.window = window
        # Slack covers clock and stamping differences between us and the server.
        self.span = window.seconds + slack
        self.slots: deque[Slot] = deque()

    def wait_needed(self, now: float) -> float:
        # Same arithmetic for "expired" and for the wait, so float rounding cannot make the
        # wait zero while the oldest send still counts (that once let a 16th request through).
        while self.slots and (done := self.slots[0].done) is not None and done + self.span <= now:
            self.slots.popleft()
        excess = len(self.slots) - self.window.limit + 1
        if excess <= 0:
            return 0.0
        # The oldest `excess` slots must all expire (answers arrive out of order).
        wait = 0.0
        for slot in itertools.islice(self.slots, excess):
            if slot.done is None:
                wait = max(wait, slot.sent + self.span - now, IN_FLIGHT_POLL)
            else:
                wait = max(wait, slot.done + self.span - now)
        return wait

    def record(self, now: float) -> Slot:
        slot = Slot(now)
        self.slots.append(slot)
        return slot


@dataclass
class Permit:
    """Leave to send one request; ``settle`` it when the answer (or failure) arrives."""

    waited: float
    slots: list[Slot]

    def settle(self, now: float) -> None:
        for slot in self.slots:
            slot.done = now


@dataclass
class CreditBudget:
    """A budget the provider reports in headers (remaining credits, seconds until reset)."""

    reserve: float = 2.0
    remaining: float | None = None
    resets_at: float | None = None

    def wait_needed(self, now: float) -> float:
        if self.remaining is None or self.resets_at is None:
            return 0.0
        if now >= self.resets_at:
            self.remaining = None
            return 0.0
        return 0.0 if self.remaining > self.reserve else self.resets_at - now


HeaderReader = Callable[[Mapping[str, str]], tuple[float, float] | None]


@dataclass
class RateLimiter:
    """Waits until every budget that applies to a request has room, then records the request.

    ``budgets`` are shared objects (see ``LimiterRegistry``); compute-and-record happens without
    an ``await`` in between, so concurrent tasks on one event loop cannot overshoot.
    """

    clock: Clock
    windows: Sequence[SlidingWindow] = ()
    credits: CreditBudget | None = None
    read_credits: HeaderReader | None = None

    async def acquire(self, on_wait: Callable[[float, str], None] | None = None) -> Permit:
        """Block until a request may be sent; the permit says how long that took.

        ``on_wait(seconds, reason)`` is told before each wait (reason ``credits`` or
        ``rate limit``), so a progress view can say what it is waiting for."""
        waited = 0.0
        while True:
            now = self.clock.monotonic()
            wait = max((w.wait_needed(now) for w in self.windows), default=0.0)
            credit_wait = self.credits.wait_needed(now) if self.credits is not None else 0.0
            if wait <= 0 and credit_wait <= 0:
                return Permit(waited, [w.record(now) for w in self.windows])
            reason = "credits" if credit_wait > wait else "rate limit"
            # Round up to the millisecond so float error cannot make us spin.
            wait = math.ceil(max(wait, credit_wait) * 1000) / 1000
            waited += wait
            if on_wait is not None:
                on_wait(wait, reason)
            await self.clock.sleep(wait)

    def observe(self, headers: Mapping[str, str]) -> None:
        """Feed response headers to a credit budget (no-op for pure window limits)."""
        if self.credits is None or self.read_credits is None:
            return
        reading = self.read_credits(headers)
        if reading is not None:
            remaining, resets_in = reading
            self.credits.remaining = remaining
            self.credits.resets_at = self.clock.monotonic() + resets_in


class LimiterRegistry:
    """Shares budgets by key across connections within a process."""

    def __init__(self) -> None:
        self._windows: dict[tuple[str, Window], SlidingWindow] = {}
        self._credits: dict[str, CreditBudget] = {}

    def window(self, key: str, window: Window) -> SlidingWindow:
        return self._windows.setdefault((key, window), SlidingWindow(window))

    def credits(self, key: str) -> CreditBudget:
        return self._credits.setdefault(key, CreditBudget())


GLOBAL_LIMITERS = LimiterRegistry()
