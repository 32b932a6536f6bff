"""The adaptive in-flight limit: fewer calls when this process is the bottleneck, all of them when the model is."""

import asyncio
import time

import pytest

from llama_stack_judge.core.limits import CallLimit, Window, next_step


async def run_calls(limit: CallLimit, calls: int, *, cpu_s: float = 0.0, wait_s: float = 0.0) -> int:
    """Make ``calls`` calls through ``limit`` from as many tasks at once; returns the most seen in flight.

    Each call spins this process's CPU for ``cpu_s`` (what the stack spends on a call) and waits ``wait_s`` on the
    "model" (time in which the process is free).
    """
    most = 0

    async def one() -> None:
        nonlocal most
        async with limit.slot():
            # A place is taken only below the limit as it stands then (a shrink lets calls in flight finish).
            assert limit.in_flight <= limit.limit
            most = max(most, limit.in_flight)
            await asyncio.sleep(wait_s)
            end = time.process_time() + cpu_s
            while time.process_time() < end:  # the event loop's own work: no other call progresses meanwhile
                pass

    await asyncio.gather(*(one() for _ in range(calls)))
    return most


def test_a_process_bound_workload_brings_the_limit_down() -> None:
    limit = CallLimit(16, window_s=0.1)
    asyncio.run(run_calls(limit, 600, cpu_s=0.002))
    assert limit.limit <= 3
    assert any(window.step < 0 for window in limit.history)


def test_a_slow_model_keeps_the_limit_at_its_ceiling() -> None:
    limit = CallLimit(16, window_s=0.1)
    most = asyncio.run(run_calls(limit, 320, wait_s=0.02, cpu_s=0.0001))
    assert limit.limit == 16
    assert most == 16


def test_the_limit_grows_back_when_the_model_becomes_the_bottleneck() -> None:
    limit = CallLimit(16, window_s=0.1)

    async def both() -> None:
        await run_calls(limit, 600, cpu_s=0.002)
        assert limit.limit <= 3
        await run_calls(limit, 60, wait_s=0.05, cpu_s=0.0001)  # an idle process: back to the ceiling in one window

    asyncio.run(both())
    assert limit.limit == 16


def test_a_busy_process_with_a_slow_model_keeps_the_calls_that_pay() -> None:
    """Busy for other reasons (its CPU clock says so) while the model is slow: more calls still mean more throughput."""
    fake_cpu = iter(range(10**9))  # a clock that runs as fast as the wall clock can only be outrun: always busy
    limit = CallLimit(16, window_s=0.1, cpu_clock=lambda: float(next(fake_cpu)))
    asyncio.run(run_calls(limit, 1600, wait_s=0.005))
    assert limit.limit >= 8


def test_a_fixed_limit_does_not_move_and_is_never_exceeded() -> None:
    limit = CallLimit(4, adaptive=False, window_s=0.05)
    most = asyncio.run(run_calls(limit, 200, cpu_s=0.001))
    assert limit.limit == 4
    assert most == 4
    assert limit.history == []


def test_the_next_step() -> None:
    assert next_step(False, 10.0, None, gain=0.05) == 1  # the model is the bottleneck: grow
    assert next_step(True, 10.0, None, gain=0.05) == -1  # this process is: fewer calls
    assert next_step(True, 10.0, Window(16, 0, 10.0, busy=False), gain=0.05) == -1  # it just became so
    up, down = Window(4, +1, 100.0), Window(4, -1, 100.0)
    assert next_step(True, 110.0, up, gain=0.05) == 1  # more calls paid: keep going
    assert next_step(True, 102.0, up, gain=0.05) == -1  # within noise: fewer is as good
    assert next_step(True, 97.0, down, gain=0.05) == -1  # fewer lost nothing measurable
    assert next_step(True, 90.0, down, gain=0.05) == 1  # fewer lost throughput: back up
    assert next_step(True, 90.0, Window(1, 0, 100.0), gain=0.05) == -1  # held at the floor: stay
    assert next_step(True, 90.0, Window(16, 0, 100.0), gain=0.05) == 1  # held at the ceiling: stay


def test_at_the_floor_it_probes_one_more_now_and_then() -> None:
    limit = CallLimit(4, window_s=0.05, probe_every=3)
    asyncio.run(run_calls(limit, 800, cpu_s=0.001))
    steps_at_floor = [window.step for window in limit.history if window.limit == 1]
    assert 0 in steps_at_floor and 1 in steps_at_floor


def test_a_limit_of_one_stays_one() -> None:
    limit = CallLimit(1, window_s=0.02, probe_every=1)
    most = asyncio.run(run_calls(limit, 200, cpu_s=0.001))
    assert most == 1
    assert {window.limit for window in limit.history} == {1}


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
