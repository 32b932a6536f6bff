"""An in-flight limit on model calls that keeps no more calls in flight than this process can work on.

Every call costs the process that makes it a few ms of CPU (the stack's routing, HTTP, its inference store). Against
a model that answers at once, the process itself is the bottleneck: a fixed limit of 16 keeps 16 calls in flight
that only wait on its event loop, and on this project's machine they cost more CPU per call than one at a time does
(measured in docs/benchmarks.md). Against a model that takes its time, the process idles and every call in flight
is one more the model works on.

So the limit looks at each window of time (``window_s``) it had calls in: when the process used less than ``busy``
of a core, calls wait on the model, and the limit grows by one, up to its ceiling (at once when it used less than
``idle``: a model that slowed down gets all of the calls again in one window). When the process was busy, it is
the bottleneck, and the limit moves towards fewer calls unless more were measurably faster: a step up is kept only
if throughput grew by more than ``gain`` (else it is undone), a step down is reversed only if it fell by more than
that (else the limit halves again). Steps up add one call; a step up undone is held. While held and busy, every
``probe_every`` windows it tries one call fewer (one more at the floor), so it notices when that pays.
"""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from enum import IntEnum

IDLE_GAP_S = 0.05  # no call in flight for longer than this: the process was idle, not busy between two calls


class Step(IntEnum):
    """How the limit moves after a window."""

    DOWN = -2  # fewer calls: half as many, or one fewer as a probe; continued while nothing is lost
    UNDO = -1  # one call more gained nothing: back by one, then hold
    HOLD = 0  # stay (after an undo, or at a bound) until the next probe
    GROW = +1  # one call more; continued while it pays


@dataclass(frozen=True, slots=True)
class Window:
    """One measured window of a call limit.

    Holds the limit during it, the move made after it (and by how much the limit changed), the calls it finished per
    second, and whether the process was busy (the bottleneck) during it.
    """

    limit: int
    move: Step
    step: int
    throughput: float
    busy: bool = True


def next_step(busy: bool, throughput: float, previous: Window | None, *, gain: float) -> Step:
    """How the limit moves after a window, from whether the process was busy and what the last move did."""
    if not busy:
        return Step.GROW  # calls wait on the model, not on this process
    if previous is None or not previous.busy:
        return Step.DOWN  # newly the bottleneck: try fewer
    change = throughput / previous.throughput - 1 if previous.throughput > 0 else 0.0
    if previous.move is Step.GROW:
        return Step.GROW if change > gain else Step.UNDO
    if previous.move is Step.DOWN:
        return Step.DOWN if change > -gain else Step.GROW
    return Step.HOLD


@dataclass
class CallLimit:
    """At most ``limit`` calls at once; with ``adaptive`` on, the limit moves between 1 and ``ceiling``."""

    ceiling: int
    adaptive: bool = True
    window_s: float = 1.0
    busy: float = 0.9  # share of one core: at or above it, this process is the bottleneck
    idle: float = 0.5  # below it, calls wait on the model: the limit goes back to its ceiling at once
    gain: float = 0.05
    probe_every: int = 8  # windows held at the floor before trying one call more
    cpu_clock: Callable[[], float] = time.process_time  # every thread of this process
    limit: int = field(init=False)
    in_flight: int = field(init=False, default=0)
    history: list[Window] = field(init=False, default_factory=list)  # the last windows, newest last
    _started: tuple[float, float] | None = field(init=False, default=None)  # (wall, cpu) at the window's start
    _finished: int = field(init=False, default=0)
    _held: int = field(init=False, default=0)
    _last_done: float = field(init=False, default=0.0)
    _changed: asyncio.Condition = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.ceiling < 1:
            raise ValueError(f"the ceiling of a call limit must be >= 1, got {self.ceiling}")
        self.limit = self.ceiling
        self._changed = asyncio.Condition()

    def _finish_call(self) -> None:
        """Count a finished call; at a window's end, move the limit."""
        if not self.adaptive:
            return
        now, cpu = time.monotonic(), self.cpu_clock()
        self._last_done = now
        if self._started is None:
            self._started, self._finished = (now, cpu), 0
            return
        self._finished += 1
        wall = now - self._started[0]
        if wall < self.window_s:
            return
        # Of one core, by every thread of this process; and calls finished per second.
        self.window_ended((cpu - self._started[1]) / wall, self._finished / wall)
        self._started, self._finished = (now, cpu), 0

    def window_ended(self, used: float, throughput: float) -> None:
        """Move the limit after a window.

        ``used``: the share of one core the process used in it; ``throughput``: the calls it finished per second.
        """
        busy = used >= self.busy
        move = next_step(busy, throughput, self.history[-1] if self.history else None, gain=self.gain)
        if used < self.idle:  # a mostly idle process waited on the model: all of the ceiling at once
            move, new_limit = (Step.GROW if self.limit < self.ceiling else Step.HOLD), self.ceiling
        else:  # up one call at a time, down by half: a process that is the bottleneck is relieved in a few windows
            targets = {Step.GROW: self.limit + 1, Step.UNDO: self.limit - 1, Step.DOWN: self.limit // 2}
            new_limit = targets.get(move, self.limit)
        if not 1 <= new_limit <= self.ceiling or move is Step.HOLD:
            # Held; while busy, now and then a probe: one call more at the floor, else one fewer (a step up gained
            # nothing here, so whether fewer cost anything is what there is to learn).
            self._held += int(busy)
            move, new_limit = Step.HOLD, self.limit
            if self._held >= self.probe_every and self.ceiling > 1:
                move = Step.GROW if self.limit == 1 else Step.DOWN
                new_limit = self.limit + (1 if move is Step.GROW else -1)
        if new_limit != self.limit:
            self._held = 0
        self.history = [*self.history[-9:], Window(self.limit, move, new_limit - self.limit, throughput, busy)]
        self.limit = new_limit

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one place for the body (a call with its retries)."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.in_flight < self.limit)
            if self.in_flight == 0 and time.monotonic() - self._last_done > IDLE_GAP_S:
                self._started = None  # the process was idle (between batches): that time is no window's
            self.in_flight += 1
        try:
            yield
        finally:
            async with self._changed:
                self.in_flight -= 1
                self._finish_call()
                if (room := self.limit - self.in_flight) > 0:
                    self._changed.notify(room)
