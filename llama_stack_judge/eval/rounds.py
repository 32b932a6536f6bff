"""Work repeated every few seconds for the life of a process, without a task that never ends.

llama-stack's synchronous library client waits, after every call, for every task of its event loop to finish; a
keeper written as a ``while True`` task would never let a call return. A timer is not a task: each round runs as a
short task when its timer fires, and the next timer is set when the round ends.
"""

import asyncio
from collections.abc import Awaitable, Callable

from llama_stack_judge.eval.access import context_of


class Rounds:
    """Runs ``work`` every ``every_s`` seconds (after the previous round ended) on the running event loop."""

    def __init__(self, work: Callable[[], Awaitable[None]], *, every_s: float) -> None:
        self._work = work
        self._every_s = every_s
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._round: asyncio.Task[None] | None = None
        self._stopped = False
        self._schedule()

    def _schedule(self) -> None:
        if not self._stopped:
            self._timer = self._loop.call_later(self._every_s, self._start_round)

    def _start_round(self) -> None:
        # As no user: a round acts for the jobs' users itself (a job runs as the user who started it).
        self._round = self._loop.create_task(self._run(), context=context_of(None))

    async def _run(self) -> None:
        try:
            await self._work()
        finally:
            self._schedule()

    def stop(self) -> None:
        """No round after this one; a round under way is cancelled."""
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
        if self._round is not None:
            self._round.cancel()
