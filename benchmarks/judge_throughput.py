"""Throughput of our judge against llama-stack's built-in ``inline::llm-as-judge``, through the same stack.

Two fake OpenAI-compatible judges run in their own processes (one with ``--latency`` seconds per request, one
with none); one in-process stack has both scoring providers and reaches the judges through ``remote::openai``.
The same rows and template are scored with ``client.scoring.score`` by each provider, then the script prints
rows/s, the ratios and the targets of issue #4, the core's own cost per row (in-process judge, no HTTP), and a
cache-hit re-run. Our figures are the median of ``--repeats`` batches. Before the zero-latency batches, ours are
scored a few times so that the adaptive in-flight limit settles (each batch's rate and limit are printed). At zero
latency the two run ``--pairs`` pairs of the same batches, taking turns to go first; the ratio shown is the geometric
mean of the paired ratios with a 95 % bootstrap interval, since single batches swing with this VM's drift. Two more
stacks measure ours with the starts of its calls not spaced (``call_spacing_s: 0``) and, at zero latency, with the
in-flight limit fixed (``adaptive_concurrency: false``), to show what each is worth. A last stack measures each
provider's own CPU per row with the inference router answering at once: the part of the zero-latency gap that is
the providers' own work rather than the stack's. Last, the function calls each provider's rows take on the event
loop's thread, by layer: a count of work that, unlike times, does not drift with the machine.

Run: ``LLAMA_STACK_LOG_FORMAT=json .venv/bin/python benchmarks/judge_throughput.py [--rows 200]``
"""

import argparse
import asyncio
import collections
import contextlib
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any, NamedTuple

import httpx
import yaml
from llama_stack.core.datatypes import Api

from llama_stack_judge.core.chat import ChatReply, ChatRequest
from llama_stack_judge.core.definitions import validate_definition
from llama_stack_judge.core.options import JudgeOptions
from llama_stack_judge.core.runner import Judge, RunSettings
from llama_stack_judge.core.stats import bootstrap_ci
from llama_stack_judge.embedded.server import free_port
from llama_stack_judge.health import serving
from llama_stack_judge.scoring.config import JudgeScoringConfig
from llama_stack_judge.stack_config import build_run_config

HERE = Path(__file__).resolve().parent
TEMPLATE = (
    "Question: {input_query}\nReference answer: {expected_answer}\nAnswer: {generated_answer}\n"
    'Rate the answer from 1 to 10 in the format "Rating: [[n]]".'
)
REGEX = r"Rating: \[\[(\d+)\]\]"
OURS, BUILTIN = "bench::ours", "llm-as-judge::base"
FRESH = {"extra_headers": JudgeOptions(use_cache=False).headers()}  # our provider judges afresh, as the built-in does
# … and sends the built-in's request: no temperature or max_tokens
SERVER_SAMPLING = {"extra_headers": JudgeOptions(use_cache=False, temperature="server", max_tokens="server").headers()}
OURS_SERVER_SAMPLING = "ours, sampling left to the server"


@contextlib.contextmanager
def fake_judge(latency_s: float) -> Iterator[str]:
    """A fake judge server in a subprocess; yields its base URL (…/v1)."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_openai", "--port", str(port), "--latency", str(latency_s)], cwd=HERE.parent
    )
    base = f"http://127.0.0.1:{port}"
    with serving(f"{base}/stats", server, what="the fake judge", within_s=60):
        yield f"{base}/v1"


def server_stats(url: str) -> dict[str, Any]:
    """The fake judge's counters at ``url``: requests served, CPU seconds of its process, …"""
    return dict(httpx.get(url.removesuffix("/v1") + "/stats").json())


def server_requests(url: str) -> int:
    """Requests the fake judge at ``url`` has served."""
    return int(server_stats(url)["requests"])


def run_config(state: Path, urls: dict[str, str], concurrency: int, **ours_config: Any) -> Path:
    """A stack with our scoring provider and the built-in one, judging through remote::openai.

    ``ours_config`` is laid over our provider's config (e.g. ``call_spacing_s``).
    """
    ours = {"max_concurrency": concurrency, "max_retries": 0} | ours_config
    providers: dict[str, list[dict[str, Any]]] = {
        "inference": [
            {"provider_id": name, "provider_type": "remote::openai", "config": {"base_url": url, "api_key": "none"}}
            for name, url in urls.items()
        ],
        "scoring": [
            {
                "provider_id": "judge",
                "provider_type": "inline::judge-scoring",
                "module": "llama_stack_judge",
                "config": ours,
            },
            {"provider_id": "builtin", "provider_type": "inline::llm-as-judge", "config": {}},
        ],
    }
    path = state / "run.yaml"
    path.write_text(yaml.safe_dump(build_run_config(providers, state_dir=str(state))), encoding="utf-8")
    return path


def bench_rows(count: int, tag: str) -> list[dict[str, str]]:
    """Distinct QA rows (``tag`` keeps one run's rows apart from another's)."""
    return [
        {
            "input_query": f"[{tag}] What is {n} + {n}?",
            "expected_answer": str(2 * n),
            "generated_answer": f"It is {2 * n if n % 3 else 2 * n + 1}.",
        }
        for n in range(count)
    ]


def params(model: str, aggregation: str) -> dict[str, Any]:
    return {
        "type": "llm_as_judge",
        "judge_model": model,
        "prompt_template": TEMPLATE,
        "judge_score_regexes": [REGEX],
        "aggregation_functions": [aggregation],
    }


def timed_score(
    client: Any, fn_id: str, fn_params: dict[str, Any], rows: list[dict[str, str]], **extra: Any
) -> tuple[float, float, Any]:
    """Wall seconds, CPU seconds of this process (all threads) and the result of one score call."""
    start, cpu = time.perf_counter(), time.process_time()
    result = client.scoring.score(input_rows=rows, scoring_functions={fn_id: fn_params}, **extra).results[fn_id]
    return time.perf_counter() - start, time.process_time() - cpu, result


def score_batch(
    client: Any, fn_id: str, model: str, rows: list[dict[str, str]], ours_options: dict[str, Any] = FRESH
) -> tuple[float, float, Any]:
    """Wall seconds, CPU seconds and result of one fresh batch by ``fn_id`` (ours, with ``ours_options``, or the
    built-in)."""
    if fn_id == OURS:
        return timed_score(client, OURS, params(model, "average"), rows, **ours_options)
    return timed_score(client, BUILTIN, params(model, "categorical_count"), rows)


def bare_client_rate(url: str, rows: int, concurrency: int) -> float:
    """Rows/s of one shared AsyncOpenAI client at ``concurrency``, no stack: what this machine allows at best."""
    from openai import AsyncOpenAI

    async def run() -> float:
        limit = asyncio.Semaphore(concurrency)
        # Closed on this loop: left to the garbage collector, its close would be scheduled on a loop that has ended.
        async with AsyncOpenAI(base_url=url, api_key="none") as client:

            async def one(n: int) -> None:
                async with limit:
                    await client.chat.completions.create(model="judge", messages=[{"role": "user", "content": f"{n}"}])

            start = time.perf_counter()
            await asyncio.gather(*(one(n) for n in range(rows)))
            return rows / (time.perf_counter() - start)

    return asyncio.run(run())


def core_cost_per_row(rows: int) -> float:
    """Seconds per row of the core alone: render, call an in-process judge, parse, aggregate."""

    async def instant(request: ChatRequest) -> ChatReply:
        return ChatReply(text="Fine. Rating: [[7]]")

    definition = validate_definition(
        {
            "identifier": "bench::core",
            "prompt_template": TEMPLATE,
            "verdict": {"patterns": [REGEX], "min": 1, "max": 10},
        },
        source="benchmark",
    )
    data = bench_rows(rows, "core")
    judge = Judge(instant, RunSettings(max_concurrency=16))
    asyncio.run(judge.judge_rows(definition, data[:50], judge_model="m"))  # warm-up
    start = time.perf_counter()
    asyncio.run(judge.judge_rows(definition, data, judge_model="m"))
    return (time.perf_counter() - start) / rows


def own_cost_per_row(client: Any, model: str, rows: int, repeats: int) -> tuple[float, float]:
    """Each provider's own CPU per row on the stack's event loop, with the inference router answering at once.

    What is left is what each provider does around its judge calls (rendering, parsing, results, our cache writes and
    limits) plus the score call's trip through the library client: the part of the zero-latency gap that is ours.
    Medians over ``repeats`` batches in turn, in microseconds.
    """
    from llama_stack_api import OpenAIChatCompletion

    reply = OpenAIChatCompletion.model_validate(
        {
            "id": "instant",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [
                {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Rating: [[7]]"}}
            ],
        }
    )

    async def instant(params: Any) -> OpenAIChatCompletion:
        return reply

    router = client.async_client.impls[Api.inference]
    router.openai_chat_completion = instant  # an instance attribute: the stack's own method is untouched
    try:
        costs: dict[str, list[float]] = {OURS: [], BUILTIN: []}
        for repeat in range(repeats + 1):  # the first round warms up
            for fn_id in (OURS, BUILTIN):
                cpu = time.thread_time()  # the library client runs the stack's event loop on this thread
                _, _, result = score_batch(client, fn_id, model, bench_rows(rows, f"own-{repeat}"))
                if float(result.score_rows[-1]["score"]) != 7:
                    raise SystemExit(f"{fn_id} did not read the instant reply's verdict: {result.score_rows[-1]}")
                if repeat:
                    costs[fn_id].append((time.thread_time() - cpu) / rows * 1e6)
        return statistics.median(costs[OURS]), statistics.median(costs[BUILTIN])
    finally:
        del router.openai_chat_completion


SDK_LAYER = "OpenAI SDK (request and reply)"
# Where a call made on the event loop's thread belongs: the innermost frame whose file names a layer decides.
LAYERS = (
    ("llama_stack_judge", "our provider"),
    ("llm_as_judge", "built-in provider"),
    ("scoring/base_scoring_fn", "built-in provider"),
    ("library_client", "library client (stack side)"),
    ("eval_scoring", "scoring route"),
    ("fastapi_routes", "scoring route"),
    ("llama_stack_client", "client SDK (results to objects)"),
    ("routers/inference", "inference router"),
    ("inference_store", "inference store"),
    ("routing_tables", "registry"),
    ("store/registry", "registry"),
    ("kvstore", "registry"),
    ("openai_mixin", "remote::openai"),
    ("openai_compat", "remote::openai"),
    ("openai/", SDK_LAYER),
    ("sqlalchemy", "SQL (stores)"),
    ("aiosqlite", "SQL (stores)"),
    ("httpx", "HTTP"),
    ("httpcore", "HTTP"),
    ("anyio", "HTTP"),
    ("h11", "HTTP"),
    ("asyncio", "event loop"),
    ("selectors", "event loop"),
)


def layer_of(frame: FrameType | None) -> str:
    while frame is not None:
        filename = frame.f_code.co_filename
        for marker, layer in LAYERS:
            if marker in filename:
                return layer
        frame = frame.f_back
    return "other"


def counting_into(counter: collections.Counter[str]) -> Any:
    """A profile function that counts each call into ``counter`` under its layer."""

    def count(frame: FrameType, event: str, arg: object) -> None:
        if event in ("call", "c_call"):
            counter[layer_of(frame)] += 1

    return count


CALL_COUNT_ROWS = 200  # one batch each: the counts are the same to within a few calls from batch to batch


def calls_per_row(
    client: Any, model: str, rows: int = CALL_COUNT_ROWS, tag: str = "calls"
) -> dict[str, collections.Counter[str]]:
    """Function calls per row on the event loop's thread, by layer, for ours and the built-in: a count of work.

    Ours is also counted sending the built-in's request (sampling left to the server), to show what its temperature
    and token bound cost.

    Unlike times, counts do not drift with this VM's speed: the same batch gives the same counts to within a few
    calls, so they show where one provider's rows take more work than the other's. Python and C calls alike count
    one; each resumption of a coroutine counts one for every frame on its await chain. The stack's threads (sqlite)
    are not counted.
    """
    counts: dict[str, collections.Counter[str]] = {}
    for name, fn_id, options in (
        (OURS, OURS, FRESH),
        (BUILTIN, BUILTIN, FRESH),
        (OURS_SERVER_SAMPLING, OURS, SERVER_SAMPLING),
    ):
        counter: collections.Counter[str] = collections.Counter()
        sys.setprofile(counting_into(counter))
        try:
            score_batch(client, fn_id, model, bench_rows(rows, f"{tag}-{name}"), options)
        finally:
            sys.setprofile(None)
        counts[name] = collections.Counter({layer: round(n / rows) for layer, n in counter.items()})
    return counts


@contextlib.contextmanager
def open_stack(state: Path, urls: dict[str, str], concurrency: int, **ours_config: Any) -> Iterator[Any]:
    """A library client of a new stack (its config dump kept off stdout), with the benchmark judge registered."""
    from llama_stack.core.library_client import LlamaStackAsLibraryClient

    state.mkdir(parents=True, exist_ok=True)
    with contextlib.redirect_stdout(sys.stderr):
        client = LlamaStackAsLibraryClient(str(run_config(state, urls, concurrency, **ours_config)))
    with client:
        client.scoring_functions.register(
            scoring_fn_id=OURS,
            description="benchmark judge",
            return_type={"type": "number"},
            provider_id="judge",
            params=params(next(iter(urls)) + "/judge", "average"),
        )
        yield client


class Batches(NamedTuple):
    """One provider's figures over repeated batches, and the last batch's rows and result."""

    median_rate: float
    rates: list[float]
    median_cpu_ms: float  # the stack process's, all threads, a row
    last_rows: list[dict[str, str]]
    last_result: Any
    median_loop_cpu_ms: float = math.nan  # the event loop's thread's, a row
    median_server_cpu_ms: float = math.nan  # the fake judge's process's, a row


def batches(
    rows: list[dict[str, str]],
    result: Any,
    rates: list[float],
    cpu_ms: list[float],
    loop_cpu_ms: list[float] | None = None,
    server_cpu_ms: list[float] | None = None,
) -> Batches:
    def median(values: list[float] | None) -> float:
        return statistics.median(values) if values else math.nan

    return Batches(
        median_rate=statistics.median(rates),
        rates=rates,
        median_cpu_ms=statistics.median(cpu_ms),
        last_rows=rows,
        last_result=result,
        median_loop_cpu_ms=median(loop_cpu_ms),
        median_server_cpu_ms=median(server_cpu_ms),
    )


def repeated_batches(client: Any, model: str, rows: int, tag: str, repeats: int) -> Batches:
    """Score ``repeats`` fresh batches of ``rows`` with our provider: its rows/s and CPU ms/row."""
    rates, cpu_ms, result, batch = [], [], None, []
    for repeat in range(repeats):
        batch = bench_rows(rows, f"{tag}-{repeat}")
        seconds, cpu, result = score_batch(client, OURS, model, batch)
        rates.append(rows / seconds)
        cpu_ms.append(cpu / rows * 1000)
    return batches(batch, result, rates, cpu_ms)


class Pairs(NamedTuple):
    """Ours and the built-in on the same batches in turn, and the ratio of each pair's rates."""

    ours: Batches
    builtin: Batches
    ratios: list[float]


def geometric_mean(ratios: list[float]) -> tuple[float, tuple[float, float] | None]:
    """The geometric mean of paired ratios and its 95 % bootstrap interval (seeded)."""
    logs = [math.log(ratio) for ratio in ratios]
    interval = bootstrap_ci(logs, resamples=10_000, seed=0)
    mean_ratio = math.exp(statistics.fmean(logs))
    if interval is None:
        return mean_ratio, None
    return mean_ratio, (math.exp(interval[0]), math.exp(interval[1]))


def paired_batches(client: Any, model: str, rows: int, tag: str, pairs: int, server: str) -> Pairs:
    """Score ``pairs`` fresh batches of ``rows`` with ours and with the built-in, one right after the other.

    The two take turns going first, so that a drift of the machine's speed within a pair favours neither. Besides
    rows/s, each batch's CPU a row is kept: the stack process's, its event loop's thread's (the library client runs
    the loop on this thread) and that of the fake judge at ``server``.
    """
    figures: dict[str, tuple[list[float], ...]] = {fn_id: ([], [], [], []) for fn_id in (OURS, BUILTIN)}
    last: dict[str, Any] = {}
    batch: list[dict[str, str]] = []
    for pair in range(pairs):
        batch = bench_rows(rows, f"{tag}-{pair}")
        for fn_id in (OURS, BUILTIN) if pair % 2 == 0 else (BUILTIN, OURS):
            # The judge's counters are read outside the loop thread's window: their HTTP calls are not a row's work.
            server_cpu = server_stats(server)["cpu_s"]
            loop_cpu = time.thread_time()
            seconds, cpu, last[fn_id] = score_batch(client, fn_id, model, batch)
            loop_cpu = time.thread_time() - loop_cpu
            server_cpu = server_stats(server)["cpu_s"] - server_cpu
            rate, process_ms, loop_ms, server_ms = figures[fn_id]
            rate.append(rows / seconds)
            process_ms.append(cpu / rows * 1000)
            loop_ms.append(loop_cpu / rows * 1000)
            server_ms.append(server_cpu / rows * 1000)
    ours, builtin = (batches(batch, last[fn_id], *figures[fn_id]) for fn_id in (OURS, BUILTIN))
    return Pairs(ours, builtin, [o / b for o, b in zip(ours.rates, builtin.rates, strict=True)])


def settle(client: Any, model: str, rows: int, batches: int = 4) -> list[tuple[float, float]]:
    """Score ``batches`` batches with ours so that its limit settles; each batch's rows/s and the limit after it."""
    path = []
    for n in range(batches):
        seconds, _, _ = score_batch(client, OURS, model, bench_rows(rows, f"settle-{n}"))
        path.append((rows / seconds, judge_limit(client)))
    return path


def same_scores(ours: Any, builtin: Any, where: str) -> None:
    """Refuse to report the speed of two providers that did not read the same verdicts."""
    if [r["score"] for r in ours.score_rows] != [float(r["score"]) for r in builtin.score_rows]:
        raise SystemExit(f"{where}: the two providers disagree on the scores")


def judge_limit(client: Any) -> float:
    """Where our scoring provider's adaptive in-flight limit stands (the in-process stack's provider)."""
    return float(client.async_client.impls[Api.scoring].routing_table.impls_by_provider_id["judge"]._judge.slots.limit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per judge request of the slow server")
    parser.add_argument("--concurrency", type=int, default=16, help="our provider's max_concurrency")
    parser.add_argument("--repeats", type=int, default=5, help="batches of ours per figure (the median is shown)")
    parser.add_argument(
        "--zero-rows",
        type=int,
        default=500,
        help="rows per batch at zero latency (~4 s each): long enough for the adaptive limit, which moves once a"
        " second, to hold its place; short enough for many pairs",
    )
    parser.add_argument(
        "--pairs",
        type=int,
        default=16,
        help="pairs of batches (ours and the built-in in turn) behind each zero-latency ratio: single batches vary"
        " by up to 30 %% with this machine's drift, so a ratio needs many",
    )
    args = parser.parse_args()
    os.environ.setdefault("LLAMA_STACK_LOG_FORMAT", "json")

    f: dict[str, Any] = {}
    with fake_judge(args.latency) as slow, fake_judge(0.0) as fast, tempfile.TemporaryDirectory() as tmp:
        with open_stack(Path(tmp), {"slow": slow, "fast": fast}, args.concurrency) as client:
            warm = bench_rows(8, "warm-up")
            for model in ("slow/judge", "fast/judge"):  # first calls pay for imports and table creation
                score_batch(client, OURS, model, warm)
                score_batch(client, BUILTIN, model, warm)
            ours = repeated_batches(client, "slow/judge", args.rows, "latency", args.repeats)
            f["ours_latency"], f["ours_latency_all"] = ours.median_rate, ours.rates
            f["ours_latency_cpu_ms"] = ours.median_cpu_ms
            # The built-in once: it takes ~40 s.
            seconds, cpu, result = score_batch(client, BUILTIN, "slow/judge", ours.last_rows)
            f["builtin_latency"], f["builtin_latency_cpu_ms"] = args.rows / seconds, cpu / args.rows * 1000
            same_scores(ours.last_result, result, "at latency")
            f["limit_latency"] = judge_limit(client)
            # The adaptive limit comes down over a few windows of busy work: time it settled.
            f["settling"] = settle(client, "fast/judge", args.zero_rows)
            f["zero"] = paired_batches(client, "fast/judge", args.zero_rows, "zero", args.pairs, fast)
            same_scores(f["zero"].ours.last_result, f["zero"].builtin.last_result, "at zero latency")
            f["limit_zero"] = judge_limit(client)
            f["calls"] = calls_per_row(client, "fast/judge")
            before = server_requests(fast)
            rows = bench_rows(args.rows, "cache")
            timed_score(client, OURS, params("fast/judge", "average"), rows)  # fills the cache
            details = {"extra_headers": JudgeOptions(details=True).headers()}
            seconds, _, cached = timed_score(client, OURS, params("fast/judge", "average"), rows, **details)
            f["cached_seconds"] = seconds
            f["cached_calls"] = cached.aggregated_results["usage"]["inference_calls"]
            f["cached_server_requests"] = server_requests(fast) - before - args.rows
        # A provider id of its own: llama-stack 0.7.3 keeps the provider ids it has listed models of on a class, so a
        # second stack in this process would list no models for "slow".
        with open_stack(Path(tmp) / "unspaced", {"unspaced": slow}, args.concurrency, call_spacing_s=0.0) as client:
            score_batch(client, OURS, "unspaced/judge", warm)
            unspaced = repeated_batches(client, "unspaced/judge", args.rows, "unspaced", args.repeats)
            f["unspaced_latency"], f["unspaced_latency_all"] = unspaced.median_rate, unspaced.rates
        # The zero-latency figure with the limit fixed at max_concurrency, as before the limit adapted; the built-in
        # again in turn with it, since this machine's speed drifts between minutes.
        with open_stack(Path(tmp) / "fixed", {"fixed": fast}, args.concurrency, adaptive_concurrency=False) as client:
            score_batch(client, OURS, "fixed/judge", warm)
            f["fixed"] = paired_batches(client, "fixed/judge", args.zero_rows, "fixed", args.pairs // 2, fast)
        # Instant calls would all wait on the call spacing (and its timer wake-ups would count as our cost).
        with open_stack(Path(tmp) / "own", {"own": fast}, args.concurrency, call_spacing_s=0.0) as client:
            score_batch(client, OURS, "own/judge", warm)
            f["own_us_ours"], f["own_us_builtin"] = own_cost_per_row(client, "own/judge", 2000, args.repeats)
        f["bare_latency"] = bare_client_rate(slow, args.rows, args.concurrency)
    f["core_ms_per_row"] = core_cost_per_row(max(2000, args.rows)) * 1000
    report(f, args)


def rates(values: list[float]) -> str:
    return "/".join(f"{value:.1f}" for value in values)


def ratio_line(pairs: Pairs) -> str:
    """The geometric mean of paired ratios, its interval, what it rules out, and the ratios themselves."""
    mean_ratio, interval = geometric_mean(pairs.ratios)
    low, high = interval or (math.nan, math.nan)
    verdict = (
        "ours faster" if low > 1 else "ours slower" if high < 1 else "no difference shown"
    ) + f"; slower by more than 2 %: {'ruled out' if low >= 0.98 else 'not ruled out'}"
    return (
        f"geometric mean {mean_ratio:.3f}x (95 % interval {low:.3f}-{high:.3f}): {verdict}"
        f" [{', '.join(f'{ratio:.2f}' for ratio in pairs.ratios)}]"
    )


def cpu_lines(pairs: Pairs) -> list[str]:
    """Where the CPU of a zero-latency row goes, and how busy each process and the event loop's thread were."""
    ours, builtin = pairs.ours, pairs.builtin
    cpu_ms = {
        "stack process": (ours.median_cpu_ms, builtin.median_cpu_ms),
        "its event loop's thread": (ours.median_loop_cpu_ms, builtin.median_loop_cpu_ms),
        "the judge server": (ours.median_server_cpu_ms, builtin.median_server_cpu_ms),
    }
    per_row = ", ".join(f"{where} {o:.2f} / {b:.2f} ms" for where, (o, b) in cpu_ms.items())
    busy = ", ".join(
        f"{where} {o * ours.median_rate / 1000:.2f} / {b * builtin.median_rate / 1000:.2f}"
        for where, (o, b) in cpu_ms.items()
    )
    return [
        f"  CPU per row (medians), ours / built-in: {per_row}",
        f"  share of wall time busy, ours / built-in: {busy} (a process at 1.00 is using one core, all that its"
        " interpreter lock allows)",
    ]


def calls_lines(calls: dict[str, collections.Counter[str]]) -> list[str]:
    """The per-layer call counts as a small table, largest differences first."""
    ours, builtin = calls[OURS], calls[BUILTIN]
    total_ours, total_builtin = sum(ours.values()), sum(builtin.values())
    lines = [
        f"  function calls per row on the event loop's thread (zero latency, {CALL_COUNT_ROWS} rows):"
        f" ours {total_ours}, built-in {total_builtin} ({total_ours / total_builtin - 1:+.1%});"
        " by layer, ours / built-in / difference:"
    ]
    for layer in sorted(ours.keys() | builtin.keys(), key=lambda name: -abs(ours[name] - builtin[name])):
        if ours[layer] or builtin[layer]:
            lines.append(f"    {ours[layer]:6d} {builtin[layer]:6d} {ours[layer] - builtin[layer]:+6d}  {layer}")
    bare = calls[OURS_SERVER_SAMPLING]
    lines.append(
        f"  {OURS_SERVER_SAMPLING} (the built-in's request): {sum(bare.values())}"
        f" ({sum(bare.values()) / total_builtin - 1:+.1%} against the built-in); {SDK_LAYER}: {bare[SDK_LAYER]}"
    )
    return lines


def report(f: dict[str, Any], args: argparse.Namespace) -> None:
    target = 0.8 * args.concurrency / args.latency
    spacing = JudgeScoringConfig().call_spacing_s * 1000
    zero, fixed = f["zero"], f["fixed"]
    lines = [
        f"rows: {args.rows}, judge latency: {args.latency} s, our max_concurrency: {args.concurrency},"
        f" ours: median of {args.repeats} batches",
        f"at {args.latency} s latency: ours {f['ours_latency']:.1f} rows/s ({rates(f['ours_latency_all'])}),"
        f" built-in {f['builtin_latency']:.2f} rows/s, ratio {f['ours_latency'] / f['builtin_latency']:.1f}x"
        f" (target >= {target:.0f} rows/s: {'met' if f['ours_latency'] >= target else 'MISSED'})",
        f"  ours with call starts not spaced (call_spacing_s 0 instead of {spacing:g} ms):"
        f" {f['unspaced_latency']:.1f} rows/s ({rates(f['unspaced_latency_all'])})",
        f"  reference: one shared AsyncOpenAI client, no stack, concurrency {args.concurrency}:"
        f" {f['bare_latency']:.1f} rows/s",
        f"  CPU per row in the stack process: ours {f['ours_latency_cpu_ms']:.1f} ms,"
        f" built-in {f['builtin_latency_cpu_ms']:.1f} ms",
        f"  our adaptive in-flight limit after these batches: {f['limit_latency']:.1f}",
        "at zero latency, settling batches of ours (rows/s, limit after): "
        + ", ".join(f"{rate:.0f} ({limit:.0f})" for rate, limit in f["settling"]),
        f"at zero latency, {args.pairs} pairs of batches of {args.zero_rows} rows, ours and the built-in in turn:",
        f"  ours {zero.ours.median_rate:.1f} rows/s ({rates(zero.ours.rates)})",
        f"  built-in {zero.builtin.median_rate:.1f} rows/s ({rates(zero.builtin.rates)})",
        f"  ours / built-in, paired: {ratio_line(zero)}",
        f"  our adaptive in-flight limit after these batches: {f['limit_zero']:.1f}",
        f"  ours with the limit fixed at {args.concurrency} (adaptive_concurrency false), {len(fixed.ratios)} pairs:"
        f" {fixed.ours.median_rate:.1f} rows/s against the built-in's {fixed.builtin.median_rate:.1f};"
        f" {ratio_line(fixed)}",
        *cpu_lines(zero),
        f"  each provider's own CPU per row in the stack (the inference router answering at once, call spacing off):"
        f" ours {f['own_us_ours']:.0f} us, built-in {f['own_us_builtin']:.0f} us",
        *calls_lines(f["calls"]),
        f"core cost: {f['core_ms_per_row']:.3f} ms/row"
        f" (target <= 1 ms: {'met' if f['core_ms_per_row'] <= 1 else 'MISSED'})",
        f"cache-hit re-run of {args.rows} rows: {f['cached_seconds']:.2f} s, {f['cached_calls']:.0f} inference calls,"
        f" {f['cached_server_requests']:.0f} requests reached the judge server",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
