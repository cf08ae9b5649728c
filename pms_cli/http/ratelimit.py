"""Client-side rate limiting that matches how providers count.

Providers enforce sliding windows ("15 requests per 10 s"), so a leaky bucket with a burst equal
to the limit would overshoot at the window edge; we keep the send times of the last N requests
per window instead. Limiters are shared by key, so two connections of one Hostaway account, or
all connections behind one IP, draw from the same budget.

Credit budgets (Beds24) are paced from the provider's own response headers via ``observe``.

Per-IP budgets (Hostaway's 15 requests / 10 s) are shared by every pms process of a host —
a cron `pms sync`, workers and the webhook receiver leave by the same address — through a small
log file per window under the data dir, read and written under an ``fcntl`` lock
(``SharedWindow``). Account budgets stay per process: a fleet's machines share those through
the queue, which syncs a connection in one place at a time.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import re
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

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

    def __init__(self, sent: float, done: float | None = None) -> None:
        self.sent = sent
        self.done = done

    def settle(self, now: float) -> None:
        self.done = now


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

    def record(self, now: float) -> Slot | None:
        slot = Slot(now)
        self.slots.append(slot)
        return slot


class Budget(Protocol):
    """A window a request must fit in: ``SlidingWindow`` (this process) or ``SharedWindow``."""

    def wait_needed(self, now: float) -> float: ...

    def record(self, now: float) -> Slot | None:
        """Take a slot, or None when the budget filled up since ``wait_needed`` (another
        process took the room)."""
        ...


SHARED_IN_FLIGHT_MAX = 120.0
"""Seconds after which another process's unanswered request stops counting: longer than any
request timeout, so only a process that died mid-request leaves such an entry."""


class SharedSlot(Slot):
    __slots__ = ("key", "owner")

    def __init__(self, owner: SharedWindow, key: str, sent: float) -> None:
        super().__init__(sent)
        self.owner = owner
        self.key = key

    def settle(self, now: float) -> None:
        super().settle(now)
        self.owner.settle(self.key, now)

    def cancel(self) -> None:
        self.owner.settle(self.key, None)


class SharedWindow:
    """``SlidingWindow`` whose log is a file, so all processes of a host draw from one budget.

    Each call locks the file (``fcntl.flock``), reads the few entries, decides, and writes
    back only when it changes something; the file holds at most ``limit`` live entries, so a
    call costs a few microseconds of I/O. Times come from the clock's ``monotonic()``, which on
    Linux and macOS counts from boot for every process on the machine (containers included).
    A torn or unreadable file is treated as empty rather than failing a sync.
    """

    def __init__(self, window: Window, path: Path, slack: float = 0.05) -> None:
        self.window = window
        self.path = path
        self._local = SlidingWindow(window, slack)
        self._tag = uuid.uuid4().hex[:8]
        self._count = itertools.count()
        self._fd: int | None = None
        self._pid = os.getpid()

    def _open(self) -> int:
        # One descriptor for the life of the window: flock works between the processes that
        # open the file, and opening it per request cost more than the rest of the call.
        # A forked child reopens: an inherited descriptor would share its parent's flock.
        if self._fd is None or self._pid != os.getpid():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            weakref.finalize(self, os.close, fd)
            self._fd, self._pid = fd, os.getpid()
        return self._fd

    @contextlib.contextmanager
    def _locked(self, exclusive: bool) -> Iterator[list[list[Any]]]:
        import fcntl

        fd = self._open()
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            raw = os.pread(fd, 1 << 20, 0)
            try:
                entries = json.loads(raw) if raw else []
            except ValueError:
                entries = []
            yield entries if isinstance(entries, list) else []
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _write(self, entries: list[list[Any]]) -> None:
        data = json.dumps(entries, separators=(",", ":")).encode()
        fd = self._open()
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))

    def _live(self, entries: list[list[Any]], now: float) -> list[list[Any]]:
        span = self._local.span
        live = []
        for entry in entries:
            with contextlib.suppress(ValueError, TypeError):
                _key, sent, done = entry[0], float(entry[1]), entry[2]
                if done is None:
                    if sent + span + SHARED_IN_FLIGHT_MAX > now:
                        live.append(entry)
                elif float(done) + span > now:
                    live.append(entry)
        return live

    def _wait(self, entries: list[list[Any]], now: float) -> float:
        slots = sorted(
            (Slot(float(e[1]), None if e[2] is None else float(e[2])) for e in entries),
            key=lambda s: s.sent,
        )
        self._local.slots = deque(slots)
        return self._local.wait_needed(now)

    def wait_needed(self, now: float) -> float:
        with self._locked(exclusive=False) as entries:
            return self._wait(self._live(entries, now), now)

    def record(self, now: float) -> SharedSlot | None:
        with self._locked(exclusive=True) as entries:
            live = self._live(entries, now)
            if self._wait(live, now) > 0:
                return None
            key = f"{os.getpid()}-{self._tag}-{next(self._count)}"
            live.append([key, now, None])
            self._write(live)
        return SharedSlot(self, key, now)

    def settle(self, key: str, now: float | None) -> None:
        """Mark our request answered at ``now`` (None: never sent, forget it)."""
        with self._locked(exclusive=True) as entries:
            kept = []
            for entry in entries:
                if entry and entry[0] == key:
                    if now is None:
                        continue
                    entry = [key, entry[1], now]
                kept.append(entry)
            self._write(kept)


@dataclass
class Permit:
    """Leave to send one request; ``settle`` it when the answer (or failure) arrives."""

    waited: float
    slots: list[Slot]

    def settle(self, now: float) -> None:
        for slot in self.slots:
            slot.settle(now)


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
    windows: Sequence[Budget] = ()
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
                if (slots := self._record_all(now)) is not None:
                    return Permit(waited, slots)
                wait = IN_FLIGHT_POLL  # another process took the room in between: look again
            reason = "credits" if credit_wait > wait else "rate limit"
            # Round up to the millisecond so float error cannot make us spin.
            wait = math.ceil(max(wait, credit_wait) * 1000) / 1000
            waited += wait
            if on_wait is not None:
                on_wait(wait, reason)
            await self.clock.sleep(wait)

    def _record_all(self, now: float) -> list[Slot] | None:
        """A slot in every window, or in none (a shared window may have filled up meanwhile:
        those go first, so only their slots ever need taking back)."""
        slots: list[Slot] = []
        for window in sorted(self.windows, key=lambda w: not isinstance(w, SharedWindow)):
            slot = window.record(now)
            if slot is None:
                for taken in slots:
                    if isinstance(taken, SharedSlot):
                        taken.cancel()
                return None
            slots.append(slot)
        return slots

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
    """Shares budgets by key across connections within a process, and per-IP budgets across
    the processes of a host when ``shared_dir`` names where their window files live."""

    def __init__(self, shared_dir: Path | Callable[[], Path] | None = None) -> None:
        self._windows: dict[tuple[str, Window], Budget] = {}
        self._credits: dict[str, CreditBudget] = {}
        self._shared_dir = shared_dir

    def window(self, key: str, window: Window) -> SlidingWindow:
        budget = self._windows.setdefault((key, window), SlidingWindow(window))
        assert isinstance(budget, SlidingWindow)
        return budget

    def ip_window(self, key: str, window: Window) -> Budget:
        """The budget of every request leaving this host for ``key`` (e.g. ``hostaway:ip``)."""
        found = self._windows.get((key, window))
        if found is None:
            directory = self._shared_dir() if callable(self._shared_dir) else self._shared_dir
            if directory is None or os.name == "nt":  # no fcntl: budgets stay per process
                found = SlidingWindow(window)
            else:
                name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{key}-{window.limit}-{window.seconds:g}")
                found = SharedWindow(window, directory / f"{name}.json")
            self._windows[(key, window)] = found
        return found

    def credits(self, key: str) -> CreditBudget:
        return self._credits.setdefault(key, CreditBudget())


def _state_dir() -> Path:
    from pms_cli.config import data_dir

    return data_dir() / "ratelimit"


GLOBAL_LIMITERS = LimiterRegistry(shared_dir=_state_dir)
