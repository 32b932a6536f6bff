"""Time-outs on one shared timer: each overdue call still times out on time; calls that end leave no timers."""

import asyncio
import time

import pytest

from llama_stack_judge.core.deadlines import CallDeadlines


async def run_for(deadlines: CallDeadlines, timeout_s: float, work_s: float) -> str:
    try:
        async with deadlines.bound(timeout_s):
            await asyncio.sleep(work_s)
    except TimeoutError:
        return "timed out"
    return "done"


async def test_each_call_times_out_after_its_own_time_out_and_the_others_finish() -> None:
    deadlines = CallDeadlines()
    start = time.monotonic()
    slow_long = asyncio.create_task(run_for(deadlines, 0.3, 10))
    await asyncio.sleep(0.05)
    # Started later with a shorter time-out: its deadline comes first, and the shared timer moves up to it.
    slow_short = asyncio.create_task(run_for(deadlines, 0.1, 10))
    quick = asyncio.create_task(run_for(deadlines, 0.3, 0.01))
    assert await slow_short == "timed out"
    assert 0.13 <= time.monotonic() - start < 0.3
    assert await quick == "done"
    assert await slow_long == "timed out"
    assert 0.3 <= time.monotonic() - start < 0.6


async def test_calls_that_end_in_time_leave_at_most_one_timer() -> None:
    loop = asyncio.get_running_loop()
    before = len(loop._scheduled)  # type: ignore[attr-defined]  # the heap these time-outs used to fill
    deadlines = CallDeadlines()
    for _ in range(300):
        assert await run_for(deadlines, 120, 0) == "done"
    assert len(loop._scheduled) <= before + 1  # type: ignore[attr-defined]
    for _ in range(90):  # asyncio.timeout's own timers, for contrast: they stay until the loop sweeps 100 of them
        async with asyncio.timeout(120):
            await asyncio.sleep(0)
    assert len(loop._scheduled) > before + 80  # type: ignore[attr-defined]


async def test_a_time_out_is_the_callers_error_not_a_cancellation() -> None:
    deadlines = CallDeadlines()
    with pytest.raises(TimeoutError):
        async with deadlines.bound(0.02):
            await asyncio.sleep(10)
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
    assert await run_for(deadlines, 1.0, 0.01) == "done"  # and the next call is not cut short


def test_one_set_of_deadlines_serves_one_event_loop_after_another() -> None:
    deadlines = CallDeadlines()
    assert asyncio.run(run_for(deadlines, 0.05, 0)) == "done"  # leaves its timer set, on a loop now closed
    assert asyncio.run(run_for(deadlines, 0.2, 10)) == "timed out"  # a later deadline: the new loop needs a timer
