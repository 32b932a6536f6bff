"""Spacing out the starts of calls, so that their replies do not all come back at once.

Calls that start together finish together when the server takes about as long for each, and the caller then
works through the replies one after another while the calls it starts next wait their turn. Through llama-stack
each inference call costs several ms of CPU on its event loop: 16 calls begun in one burst stay a burst for the
whole batch, and each call spends tens of ms queueing for the loop. Starts a few ms apart keep them spread.
"""

import asyncio
import time

from llama_stack_judge.errors import JudgeInputError


class StartSpacing:
    """Lets calls start at least ``interval_s`` apart, in the order they ask; 0 lets every call start at once.

    At most ``1 / interval_s`` calls start per second. The gap is measured from when the previous caller was let go,
    not from when it was due: a caller woken late (a busy loop) does not shorten the gap to the next one.
    """

    def __init__(self, interval_s: float) -> None:
        if interval_s < 0:
            raise JudgeInputError(f"call spacing must be >= 0 s, got {interval_s}")
        self.interval_s = interval_s
        self._last_start = -float("inf")  # time.monotonic() at which the last caller was let go
        self._turns = asyncio.Lock()  # first come, first served

    async def wait_turn(self) -> None:
        """Return when the caller may start its call."""
        if not self.interval_s:
            return
        async with self._turns:
            while (wait := self._last_start + self.interval_s - time.monotonic()) > 0:
                await asyncio.sleep(wait)  # again if the loop woke us a hair early
            self._last_start = time.monotonic()
