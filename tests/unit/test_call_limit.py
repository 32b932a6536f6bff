"""The adaptive in-flight limit: as many calls as keep this process busy, all of them when the model is slow.

Its decisions are driven window by window with modelled workloads (seeded noise), so they do not depend on how
loaded the test machine is; the places it hands out, and where real calls settle it, are checked with asyncio calls.
"""

import asyncio
import math
import random
import time
from dataclasses import dataclass

import pytest

from llama_stack_judge.core.limits import CallLimit, Move, Window, calls_to_keep_busy, probe_paid


@dataclass(frozen=True)
class Workload:
    """Calls that cost ``cpu_s`` of the event loop each and wait ``latency_s`` on a model, on a loop that spends
    ``other`` of its time on other work. ``outside_s`` of each call's loop work falls outside its timed span (the
    reply parsed, the row stored), so a call alone takes ``cpu_s - outside_s + latency_s``: on this project's machine
    at zero latency the quickest call took 5-7 ms against 6-9 ms of loop CPU per call.

    Calls queue on the loop: with ``limit`` in flight each worker's turn takes max(alone + outside, limit x cpu);
    the quickest call of a window takes under half the mean (as measured: 0.41 to 0.55 of it at 1 to 10 calls in
    flight)."""

    cpu_s: float
    latency_s: float
    other: float = 0.0
    outside_s: float = 0.002

    def window(self, limit: int) -> tuple[float, float, float, float]:
        """(share of the time the loop was busy, its CPU per call, the quickest call, the calls' mean time)."""
        cpu = self.cpu_s * (1 + 0.03 * (limit - 1))  # more calls in flight cost a little more each, as measured
        alone = self.cpu_s - self.outside_s + self.latency_s
        turn = max(alone + self.outside_s, limit * cpu / (1 - self.other))
        throughput = limit / turn
        used = self.other + throughput * cpu
        mean = turn - self.outside_s
        return used, used / throughput, max(alone, 0.45 * mean), mean

    def throughput(self, limit: int) -> float:
        """Calls finished per second at ``limit``."""
        return limit / (self.window(limit)[3] + self.outside_s)


INSTANT = Workload(cpu_s=0.008, latency_s=0.0005)  # a fake judge that answers at once
SLOW = Workload(cpu_s=0.007, latency_s=0.2)
SLOW_ON_A_BUSY_LOOP = Workload(cpu_s=0.007, latency_s=0.2, other=0.5)
FAST = Workload(cpu_s=0.008, latency_s=0.020)  # 3 calls keep the loop 91 % busy, 4 all of it


def run_windows(limit: CallLimit, workload: Workload, windows: int, *, steal: float = 0.3, seed: int = 0) -> list[int]:
    """``windows`` windows of ``workload`` at the limit as it moves; returns the limit after each.

    The machine gives part of its time to others now and then: calls take up to ``steal`` longer, and CPU per call
    is off by up to 3 %.
    """
    jitter, levels = random.Random(seed), []
    for _ in range(windows):
        used, cpu, fastest, mean = workload.window(limit.limit)
        slower = 1 + jitter.uniform(0, steal)
        limit.window_ended(
            used=used / slower,
            cpu_per_call_s=cpu * (1 + jitter.uniform(-0.03, 0.03)),
            fastest_s=fastest * (1 + jitter.uniform(0, steal)),
            mean_s=mean * slower,
        )
        levels.append(limit.limit)
    return levels


@pytest.mark.parametrize("seed", range(20))
def test_a_model_that_answers_at_once_gets_one_call_at_a_time(seed: int) -> None:
    levels = run_windows(CallLimit(16), INSTANT, 80, seed=seed)
    assert levels[:4] == sorted(levels[:4], reverse=True) and levels[3] <= 4  # Little's bound: down at once
    assert max(levels[30:]) <= 2 and levels[30:].count(1) >= 40, levels  # probes bring it to 1, probes aside


@pytest.mark.parametrize("seed", range(20))
def test_a_slow_model_keeps_the_ceiling(seed: int) -> None:
    levels = run_windows(CallLimit(16), SLOW, 80, seed=seed)
    assert min(levels) >= 15 and sum(levels) / len(levels) >= 15.8, levels  # a busy process probes now and then


@pytest.mark.parametrize("seed", range(20))
def test_a_slow_model_on_a_loop_busy_with_other_work_gets_fewer_calls_and_no_less_done(seed: int) -> None:
    """Half the loop goes to other work: 16 calls in flight queue on it. The limit comes down to the calls the rest of
    the loop works on, and they get as much done as 16 did."""
    workload, limit = SLOW_ON_A_BUSY_LOOP, CallLimit(16)
    levels = run_windows(limit, workload, 120, seed=seed)
    settled = levels[20:]
    assert max(settled) < 16, levels
    done = sum(workload.throughput(level) for level in settled) / len(settled)
    assert done >= 0.95 * workload.throughput(16), levels


@pytest.mark.parametrize("seed", range(20))
def test_a_fast_model_gets_the_calls_that_keep_the_process_busy(seed: int) -> None:
    levels = run_windows(CallLimit(16), FAST, 80, seed=seed)
    assert set(levels[20:]) <= {2, 3, 4}, levels  # the loop is 91 % busy at 3, saturated at 4; 2 in probes
    done = sum(FAST.throughput(level) for level in levels[20:]) / 60
    assert done >= 0.9 * max(FAST.throughput(level) for level in range(1, 17)), levels


def test_an_idle_process_gets_the_ceiling_back_in_one_window() -> None:
    limit = CallLimit(16)
    run_windows(limit, INSTANT, 40)
    assert limit.limit == 1
    assert run_windows(limit, Workload(cpu_s=0.007, latency_s=0.2), 1) == [16]  # 1 call: the loop 3 % busy
    assert run_windows(limit, Workload(cpu_s=0.007, latency_s=2.0), 20) == [16] * 20


def test_a_model_that_slows_down_in_a_busy_process_is_followed_once_its_quick_calls_are_forgotten() -> None:
    limit = CallLimit(16, memory=10)
    run_windows(limit, INSTANT, 40, steal=0)
    assert limit.limit == 1
    levels = run_windows(limit, Workload(cpu_s=0.007, latency_s=0.2, other=0.3), 16, steal=0)  # not idle
    assert levels[:8] == [1] * 8 and levels[-1] >= 12, levels


def test_a_window_with_no_successful_call_moves_on_what_is_remembered() -> None:
    limit = CallLimit(16)
    limit.window_ended(used=1.0, cpu_per_call_s=0.01, fastest_s=math.inf, mean_s=math.inf)
    assert limit.limit == 16  # nothing known
    run_windows(limit, INSTANT, 40, steal=0)
    limit.window_ended(used=1.0, cpu_per_call_s=0.01, fastest_s=math.inf, mean_s=math.inf)
    assert limit.limit == 1


def test_a_limit_of_one_stays_one() -> None:
    limit = CallLimit(1)
    assert set(run_windows(limit, INSTANT, 20)) | set(run_windows(limit, SLOW, 20)) == {1}


def test_the_calls_that_keep_the_loop_busy() -> None:
    assert calls_to_keep_busy(fastest_s=0.006, cpu_per_call_s=0.008, ceiling=16) == 1  # 0.75: one call is enough
    assert calls_to_keep_busy(fastest_s=0.011, cpu_per_call_s=0.008, ceiling=16) == 1  # 1.375, rounded
    assert calls_to_keep_busy(fastest_s=0.012, cpu_per_call_s=0.008, ceiling=16) == 2  # 1.5
    assert calls_to_keep_busy(fastest_s=0.028, cpu_per_call_s=0.008, ceiling=16) == 4  # 3.5
    assert calls_to_keep_busy(fastest_s=0.1, cpu_per_call_s=0.007, ceiling=16) == 14  # 14.3
    assert calls_to_keep_busy(fastest_s=0.2, cpu_per_call_s=0.007, ceiling=16) == 16  # 28.6
    assert calls_to_keep_busy(fastest_s=0.2, cpu_per_call_s=0.0, ceiling=16) == 16
    assert calls_to_keep_busy(fastest_s=math.inf, cpu_per_call_s=0.01, ceiling=16) == 16


def test_a_probe_pays_when_the_calls_get_quicker_with_fewer_in_flight() -> None:
    def window(limit: int, mean_s: float) -> Window:
        return Window(limit, limit, Move.HELD, 1.0, 0.01, mean_s / 2, mean_s)

    assert probe_paid(window(4, 0.040), limit=3, mean_s=0.030)  # a quarter fewer calls, a quarter quicker: queueing
    assert probe_paid(window(4, 0.040), limit=3, mean_s=0.035)  # an eighth quicker: half the share, still queueing
    assert not probe_paid(window(4, 0.040), limit=3, mean_s=0.036)
    assert not probe_paid(window(16, 0.2), limit=15, mean_s=0.2)  # as slow as before: the calls wait on the model


def test_a_fixed_limit_does_not_move() -> None:
    limit = CallLimit(4, adaptive=False, window_s=0.0)
    most = asyncio.run(run_calls(limit, 200))
    assert limit.limit == 4 and most == 4 and limit.history == []


class OneCore:
    """A process with one core: each call works ``work_s`` on it (one call at a time), then waits ``latency_s`` on
    a model. Its CPU clock counts the time the core was held."""

    def __init__(self, work_s: float, latency_s: float) -> None:
        self.work_s, self.latency_s, self.held = work_s, latency_s, 0.0
        self._core = asyncio.Lock()

    def cpu_clock(self) -> float:
        return self.held

    async def call(self) -> None:
        async with self._core:
            began = time.monotonic()
            await asyncio.sleep(self.work_s)
            self.held += time.monotonic() - began
        await asyncio.sleep(self.latency_s)


@pytest.mark.parametrize(("latency_s", "settled"), [(0.0, {1}), (0.06, {8})])
def test_real_calls_settle_where_the_core_is_kept_busy(latency_s: float, settled: set[int]) -> None:
    """Real asyncio calls on a modelled core of 4 ms per call: a model that answers at once gets one call in flight,
    one that takes 60 ms all 8 (64 / 4 = 16)."""
    core = OneCore(0.004, latency_s)
    limit = CallLimit(8, window_s=0.05, cpu_clock=core.cpu_clock)

    async def calls(count: int) -> list[int]:
        levels = []

        async def one() -> None:
            async with limit.slot():
                await core.call()
            levels.append(limit.limit)

        await asyncio.gather(*(one() for _ in range(count)))
        return levels

    levels = asyncio.run(calls(300))
    assert set(levels[-100:]) == settled, levels[::20]


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
