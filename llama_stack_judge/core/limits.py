"""An in-flight limit on model calls: as many calls as keep this process busy, and no more.

Every call costs the process that makes it a few ms of CPU (the stack's routing, HTTP, its inference store). Against
a model that answers at once the process itself is the bottleneck: calls beyond the one it is working on only wait
on its event loop, and on this project's machine they cost more CPU per call besides (docs/benchmarks.md). Against a
model that takes its time, every call in flight is one more the model works on.

The calls queue on one thing: the thread that runs the event loop (their routing, HTTP and replies all run there).
So the limit watches that thread's CPU, ``cpu`` per call, measured over each window.

**Little's law** bounds the calls worth having in flight. A call takes at least ``fastest`` from start to end (the
quickest call of the last ``memory`` windows: the model's latency plus this process's own work). While one call
waits, the loop can work on ``fastest / cpu`` others, so that many keep it busy; the limit is at most that, rounded,
between 1 and the ceiling. A model that takes 0.2 s against ~7 ms of the loop per call: 28, the ceiling. A window in
which the loop was busy less than ``idle`` of the time gets the ceiling at once: it was no bottleneck, whatever the
last calls measured.

**Probes.** The bound errs high: with calls queueing, even the quickest waited. So a loop busy ``busy`` of the time
or more, that the bound does not bring down, tries one call fewer now and then. The probe is kept when the calls got
quicker with it (their mean time fell by at least half the share the limit fell): they had been queueing on the
loop. It is undone when they did not: they wait on the model, and the next probe waits twice as long.

These signals hold up on a machine whose speed drifts between minutes, where throughput did not (a hill-climb on it
followed the machine's noise, docs/benchmarks.md): CPU time does not count the time the machine gives to others, the
quickest of many calls is the one that lost least to it, and a probe's tolerance is wide.

What it cannot tell: on a loop kept busy by other work, that work's CPU counts against these calls, and the limit
sits lower than the model could serve. It grows again once the loop is less busy than ``busy``.
"""

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from enum import Enum

IDLE_GAP_S = 0.05  # no call in flight for longer than this: the process was idle, not busy between two calls
MAX_PROBE_WAIT = 64  # windows between probes, at most, after probes that were undone


class Move(Enum):
    """What set the limit after a window."""

    CEILING = "ceiling"  # the loop was mostly idle
    BOUND = "bound"  # Little's law
    PROBE = "probe"  # one call fewer, to see whether the calls get quicker
    KEPT = "kept"  # they did: the probe stays
    UNDONE = "undone"  # they did not: back up by one
    HELD = "held"


@dataclass(frozen=True, slots=True)
class Window:
    """One measured window of a call limit: the limit during it and after it, what it measured and why it moved."""

    limit: int
    next_limit: int
    move: Move
    used: float  # the share of the window the loop's thread was on a core
    cpu_per_call_s: float
    fastest_s: float  # the quickest successful call that finished in it
    mean_s: float  # the successful calls' mean time


def calls_to_keep_busy(*, fastest_s: float, cpu_per_call_s: float, ceiling: int) -> int:
    """Little's law: the calls in flight that keep the loop busy, rounded, between 1 and ``ceiling``.

    Rounded, not up: the quickest call measured with others in flight waited on them a little, so the ratio runs high
    (at zero latency, 1.3 to 1.5 with two calls in flight where one keeps the loop as busy).
    """
    if cpu_per_call_s <= 0 or math.isinf(fastest_s):
        return ceiling
    return max(1, min(ceiling, math.floor(fastest_s / cpu_per_call_s + 0.5)))


def probe_paid(before: Window, *, limit: int, mean_s: float) -> bool:
    """Whether the calls got quicker with one fewer in flight than ``before``: by at least half the share it fell.

    ``limit`` and ``mean_s``: the probe window's limit and its calls' mean time.
    """
    fell = 1 - limit / before.limit
    return mean_s <= before.mean_s * (1 - fell / 2)


@dataclass
class CallLimit:
    """At most ``limit`` calls at once; with ``adaptive`` on, the limit moves between 1 and ``ceiling``."""

    ceiling: int
    adaptive: bool = True
    window_s: float = 1.0
    idle: float = 0.25  # of the time: a loop busy less is no bottleneck, and the limit is the ceiling
    busy: float = 0.9  # of the time: a loop busy this much or more may be the bottleneck, and probes
    memory: int = 10  # windows over which the quickest call is remembered (a model that slows down is followed)
    probe_every: int = 4  # busy windows between probes, doubled after each undone one
    cpu_clock: Callable[[], float] = time.thread_time  # read on the loop's thread, where calls finish
    limit: int = field(init=False)
    in_flight: int = field(init=False, default=0)
    history: list[Window] = field(init=False, default_factory=list)  # the last ``memory`` windows, newest last
    _started: tuple[float, float, int] | None = field(init=False, default=None)  # (wall, cpu, thread) at its start
    _finished: int = field(init=False, default=0)
    _times: list[float] = field(init=False, default_factory=list)  # of the window's successful calls
    _held: int = field(init=False, default=0)
    _probe_wait: int = field(init=False, default=0)
    _last_done: float = field(init=False, default=0.0)
    _changed: asyncio.Condition = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.ceiling < 1:
            raise ValueError(f"the ceiling of a call limit must be >= 1, got {self.ceiling}")
        self.limit = self.ceiling
        self._probe_wait = self.probe_every
        self._changed = asyncio.Condition()

    def _finish_call(self, took_s: float | None) -> None:
        """Count a finished call (``took_s`` None: it failed); at a window's end, set the limit."""
        if not self.adaptive:
            return
        now, cpu, thread = time.monotonic(), self.cpu_clock(), threading.get_ident()
        self._last_done = now
        if took_s is not None:
            self._times.append(took_s)
        if self._started is None or self._started[2] != thread:  # a thread's CPU clock is its own
            self._started, self._finished, self._times = (now, cpu, thread), 0, []
            return
        self._finished += 1
        wall = now - self._started[0]
        if wall < self.window_s:
            return
        cpu_used, times = cpu - self._started[1], self._times
        self.window_ended(
            used=cpu_used / wall,
            cpu_per_call_s=cpu_used / self._finished,
            fastest_s=min(times, default=math.inf),
            mean_s=sum(times) / len(times) if times else math.inf,
        )
        self._started, self._finished, self._times = (now, cpu, thread), 0, []

    def window_ended(self, *, used: float, cpu_per_call_s: float, fastest_s: float, mean_s: float) -> None:
        """Set the limit after a window from what it measured (see the module's docstring)."""
        fastest = min([fastest_s, *(window.fastest_s for window in self.history)])
        bound = calls_to_keep_busy(fastest_s=fastest, cpu_per_call_s=cpu_per_call_s, ceiling=self.ceiling)
        previous = self.history[-1] if self.history else None
        new_limit, move = self.limit, Move.HELD
        if used < self.idle:
            new_limit, move = self.ceiling, Move.CEILING
        elif previous is not None and previous.move is Move.PROBE and previous.limit > self.limit:
            self._held = 0
            if probe_paid(previous, limit=self.limit, mean_s=mean_s):
                move, self._probe_wait = Move.KEPT, self.probe_every
            else:
                new_limit, move = previous.limit, Move.UNDONE
                self._probe_wait = min(2 * self._probe_wait, MAX_PROBE_WAIT)
        elif bound < self.limit or (bound > self.limit and used < self.busy):
            new_limit, move = bound, Move.BOUND  # a busy loop gains nothing from more calls
        elif used >= self.busy and self.limit > 1:
            self._held += 1
            if self._held >= self._probe_wait:
                new_limit, move = self.limit - 1, Move.PROBE
        if new_limit != self.limit:
            self._held = 0
        window = Window(self.limit, new_limit, move, used, cpu_per_call_s, fastest_s, mean_s)
        self.history = [*self.history[-(self.memory - 1) :], window] if self.memory > 1 else [window]
        self.limit = new_limit

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one place for the body (a call with its retries)."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.in_flight < self.limit)
            if self.in_flight == 0 and time.monotonic() - self._last_done > IDLE_GAP_S:
                self._started = None  # the process was idle (between batches): that time is no window's
            self.in_flight += 1
        began, took = time.monotonic(), None  # a failed call says nothing of how quick a call can be
        try:
            yield
            took = time.monotonic() - began
        finally:
            async with self._changed:
                self.in_flight -= 1
                self._finish_call(took)
                if (room := self.limit - self.in_flight) > 0:
                    self._changed.notify(room)
