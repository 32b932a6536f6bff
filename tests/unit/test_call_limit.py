"""The adaptive in-flight limit: fewer calls when this process is the bottleneck, all of them when the model is.

Its decisions are driven window by window with modelled workloads (seeded noise), so they do not depend on how
loaded the test machine is; the places it hands out are checked with real asyncio calls.
"""

import asyncio
import random
from collections.abc import Callable

import pytest

from llama_stack_judge.core.limits import CallLimit, Step, Window, next_step

Workload = Callable[[int], tuple[float, float]]  # the limit -> (share of a core used, calls finished per second)


def process_bound(limit: int) -> tuple[float, float]:
    """The process is the bottleneck: busy, and more calls in flight only wait (a little slower, as measured)."""
    return 1.0, 450.0 * (1 - 0.01 * (limit - 1))


def model_bound_busy(limit: int) -> tuple[float, float]:
    """Busy for other reasons while the model is slow: every call more in flight is served."""
    return 1.0, 100.0 * limit


def model_bound_idle(limit: int) -> tuple[float, float]:
    return 0.1, 100.0 * limit


def run_windows(limit: CallLimit, workload: Workload, windows: int, *, noise: float = 0.03, seed: int = 0) -> None:
    """``windows`` windows of ``workload`` at the limit as it moves, throughput off by up to ``noise`` each."""
    jitter = random.Random(seed)
    for _ in range(windows):
        used, throughput = workload(limit.limit)
        limit.window_ended(used, throughput * (1 + jitter.uniform(-noise, noise)))


@pytest.mark.parametrize("seed", range(20))
def test_a_process_bound_workload_brings_the_limit_down_and_keeps_it_there(seed: int) -> None:
    limit = CallLimit(16)
    run_windows(limit, process_bound, 8, seed=seed)
    assert limit.limit <= 2
    levels = []
    for _ in range(60):
        run_windows(limit, process_bound, 1, seed=seed + len(levels))
        levels.append(limit.limit)
    assert sum(levels) / len(levels) <= 1.5  # at the floor, but for the probes


@pytest.mark.parametrize("seed", range(20))
def test_a_model_bound_workload_keeps_the_calls_that_pay_even_in_a_busy_process(seed: int) -> None:
    limit = CallLimit(16)
    levels = []
    for window in range(80):
        run_windows(limit, model_bound_busy, 1, noise=0.03, seed=seed * 100 + window)
        levels.append(limit.limit)
    assert sum(levels[20:]) / 60 >= 13  # the first window halves it (nothing known yet); it climbs back and stays


def test_an_idle_process_gets_the_ceiling_back_in_one_window() -> None:
    limit = CallLimit(16)
    run_windows(limit, process_bound, 10)
    assert limit.limit <= 2
    run_windows(limit, model_bound_idle, 1)
    assert limit.limit == 16
    run_windows(limit, model_bound_idle, 20)
    assert limit.limit == 16


def test_at_the_floor_it_probes_one_more_now_and_then() -> None:
    limit = CallLimit(4, probe_every=3)
    run_windows(limit, process_bound, 30, noise=0)
    moves_at_floor = [window.move for window in limit.history if window.limit == 1]
    assert Step.HOLD in moves_at_floor and Step.GROW in moves_at_floor


def test_a_limit_of_one_stays_one() -> None:
    limit = CallLimit(1, probe_every=1)
    run_windows(limit, model_bound_busy, 20)
    assert {window.limit for window in limit.history} == {1} and limit.limit == 1


def test_a_fixed_limit_does_not_move() -> None:
    limit = CallLimit(4, adaptive=False, window_s=0.0)
    most = asyncio.run(run_calls(limit, 200))
    assert limit.limit == 4 and most == 4 and limit.history == []


def test_the_next_step() -> None:
    assert next_step(False, 10.0, None, gain=0.05) is Step.GROW  # the model is the bottleneck
    assert next_step(True, 10.0, None, gain=0.05) is Step.DOWN  # this process is: fewer calls
    idle = Window(16, Step.HOLD, 0, 10.0, busy=False)
    assert next_step(True, 10.0, idle, gain=0.05) is Step.DOWN  # it just became the bottleneck
    up, down = Window(4, Step.GROW, +1, 100.0), Window(8, Step.DOWN, -4, 100.0)
    assert next_step(True, 110.0, up, gain=0.05) is Step.GROW  # more calls paid: keep going
    assert next_step(True, 102.0, up, gain=0.05) is Step.UNDO  # within noise: one fewer is as good
    assert next_step(True, 97.0, down, gain=0.05) is Step.DOWN  # fewer lost nothing measurable
    assert next_step(True, 90.0, down, gain=0.05) is Step.GROW  # fewer lost throughput: back up
    assert next_step(True, 90.0, Window(5, Step.UNDO, -1, 100.0), gain=0.05) is Step.HOLD  # after an undo: stay
    assert next_step(True, 90.0, Window(1, Step.HOLD, 0, 100.0), gain=0.05) is Step.HOLD  # held at a bound


async def run_calls(limit: CallLimit, calls: int, *, wait_s: float = 0.001) -> int:
    """``calls`` calls through ``limit`` from as many tasks at once; returns the most seen in flight."""
    most = 0

    async def one() -> None:
        nonlocal most
        async with limit.slot():
            # A place is taken only below the limit as it stands then (a shrink lets calls in flight finish).
            assert limit.in_flight <= limit.limit
            most = max(most, limit.in_flight)
            await asyncio.sleep(wait_s)

    await asyncio.gather(*(one() for _ in range(calls)))
    return most


def test_places_follow_the_limit_as_it_moves() -> None:
    """Real calls while the limit halves and grows under them: never more in flight than the limit allows."""
    limit = CallLimit(8, adaptive=False)  # moved by hand below, as window_ended moves it

    async def moving() -> int:
        async def move() -> None:
            for target in (4, 2, 1, 3, 8):
                await asyncio.sleep(0.02)
                limit.limit = target

        mover = asyncio.create_task(move())
        most = await run_calls(limit, 400, wait_s=0.002)
        await mover
        return most

    assert asyncio.run(moving()) == 8


def test_a_failed_call_frees_its_place() -> None:
    limit = CallLimit(2)

    async def failing() -> None:
        async with limit.slot():
            raise RuntimeError("judge down")

    with pytest.raises(RuntimeError):
        asyncio.run(failing())
    assert limit.in_flight == 0


def test_the_ceiling_must_be_positive() -> None:
    with pytest.raises(ValueError, match="ceiling"):
        CallLimit(0)
