"""Time-outs of many concurrent calls on one event-loop timer.

``asyncio.timeout`` schedules a timer per call. A call that ends in time cancels it, but a cancelled timer stays in
the event loop's heap until it reaches the heap's head: with 120 s time-outs and calls of a few milliseconds, ~45
dead timers on average (up to 100, when the loop sweeps them). Every other timer of the process, such as the HTTP
client's several per call, is then pushed and popped past them: ~100 more function calls per judged row at zero
latency (benchmarks/judge_throughput.py). Here the calls of one ``CallDeadlines`` share one timer, set for the
earliest deadline; when it fires, each overdue call's own time-out fires at once.
"""

import asyncio
from types import TracebackType


class CallDeadlines:
    """Deadlines of the calls in flight, and the one timer that enforces them."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._open: dict[asyncio.Timeout, float] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    def bound(self, timeout_s: float) -> "Bound":
        """An ``async with`` block that raises ``TimeoutError`` once it has run ``timeout_s`` seconds."""
        return Bound(self, timeout_s)

    def _add(self, scope: asyncio.Timeout, timeout_s: float) -> None:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop (each asyncio.run): the old one's timer is gone with it
            self._loop, self._open, self._timer = loop, {}, None
        deadline = loop.time() + timeout_s
        self._open[scope] = deadline
        if self._timer is None or deadline < self._timer_at:
            self._arm(loop, deadline)

    def _remove(self, scope: asyncio.Timeout) -> None:
        # The timer stays set: if it was this call's, it fires for nothing once, then moves to the next deadline.
        self._open.pop(scope, None)

    def _arm(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = loop.call_at(deadline, self._expire, loop), deadline

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        now = loop.time()
        overdue = [scope for scope, deadline in self._open.items() if deadline <= now]
        for scope in overdue:
            del self._open[scope]
            scope.reschedule(now)  # its own handler runs next: the task is cancelled and TimeoutError raised
        if self._open:
            self._arm(loop, min(self._open.values()))


class Bound:
    """One call's time-out: an ``asyncio.timeout`` without a timer of its own."""

    def __init__(self, deadlines: CallDeadlines, timeout_s: float) -> None:
        self._deadlines = deadlines
        self._timeout_s = timeout_s
        self._scope = asyncio.timeout(None)

    async def __aenter__(self) -> None:
        await self._scope.__aenter__()
        self._deadlines._add(self._scope, self._timeout_s)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._deadlines._remove(self._scope)
        # Turns the cancellation of an overdue call into TimeoutError.
        await self._scope.__aexit__(exc_type, exc, traceback)
