"""What ``remote::openai``'s second registry look-up costs the stack a judge call, at zero latency.

llama-stack 0.7.3's inference router resolves ``fast/judge`` and hands ``remote::openai`` the provider's own model id,
``judge``. The provider looks that id up in the registry again, misses (only ``fast/judge`` is registered) and reads
the kvstore with a new sqlite connection, and its thread, on every call. Upstream later removed the second look-up
(ogx-ai/ogx#6324: the router's resolution is enough). This script scores the same kind of batches at zero latency
through one stack, with the look-up as 0.7.3 ships it and with it answered by the router's resolution, for ours and
the built-in alike, in turn; it prints rows/s and CPU a row of each, and the paired ratios. It measures the stack,
not a change to this package: a stack without the look-up serves both providers faster, by about the same amount.

Run: ``LLAMA_STACK_LOG_FORMAT=json .venv/bin/python benchmarks/upstream_lookup.py [--pairs 14]``
"""

import argparse
import contextlib
import os
import statistics
import tempfile
from pathlib import Path
from unittest import mock

from judge_throughput import BUILTIN, OURS, bench_rows, fake_judge, geometric_mean, open_stack, score_batch, settle
from llama_stack.providers.utils.inference.openai_mixin import OpenAIMixin

MODEL = "fast/judge"
AS_SHIPPED, WITHOUT = "as shipped", "without the second look-up"


async def _as_resolved(self: OpenAIMixin, model: str) -> str:
    return model


def second_lookup(present: bool) -> contextlib.AbstractContextManager[object]:
    """With ``present`` false, remote::openai takes the model id the router hands it as the provider's own."""
    if present:
        return contextlib.nullcontext()
    return mock.patch.object(OpenAIMixin, "_get_provider_model_id", _as_resolved)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=500, help="rows per batch")
    parser.add_argument(
        "--pairs", type=int, default=14, help="rounds of batches: each provider with and without the look-up, in turn"
    )
    parser.add_argument("--concurrency", type=int, default=16, help="our provider's max_concurrency")
    args = parser.parse_args()
    os.environ.setdefault("LLAMA_STACK_LOG_FORMAT", "json")

    rates: dict[tuple[str, str], list[float]] = {(fn, v): [] for fn in (OURS, BUILTIN) for v in (AS_SHIPPED, WITHOUT)}
    cpu_ms = {key: list[float]() for key in rates}
    with (
        fake_judge(0.0) as fast,
        tempfile.TemporaryDirectory() as tmp,
        open_stack(Path(tmp), {"fast": fast}, args.concurrency) as client,
    ):
        for fn_id in (OURS, BUILTIN):  # the first calls pay for imports and table creation
            score_batch(client, fn_id, MODEL, bench_rows(50, f"warm-up-{fn_id}"))
        settle(client, MODEL, args.rows)  # our adaptive limit comes down to where it stays at zero latency
        for pair in range(args.pairs):
            first = pair % 2 == 0  # each order goes first in half the rounds, so drift favours neither
            for present in (True, False) if first else (False, True):
                variant = AS_SHIPPED if present else WITHOUT
                with second_lookup(present):
                    for fn_id in (OURS, BUILTIN) if first else (BUILTIN, OURS):
                        batch = bench_rows(args.rows, f"{pair}-{variant}-{fn_id}")
                        seconds, cpu, _ = score_batch(client, fn_id, MODEL, batch)
                        rates[fn_id, variant].append(args.rows / seconds)
                        cpu_ms[fn_id, variant].append(cpu / args.rows * 1000)

    print(f"zero latency, {args.pairs} rounds of {args.rows}-row batches, each provider with and without the look-up")
    for fn_id in (OURS, BUILTIN):
        for variant in (AS_SHIPPED, WITHOUT):
            print(
                f"  {fn_id}, {variant}: {statistics.median(rates[fn_id, variant]):.1f} rows/s,"
                f" {statistics.median(cpu_ms[fn_id, variant]):.2f} ms of stack CPU a row (medians)"
            )
        ratios = [w / s for s, w in zip(rates[fn_id, AS_SHIPPED], rates[fn_id, WITHOUT], strict=True)]
        cpu_ratios = [w / s for s, w in zip(cpu_ms[fn_id, AS_SHIPPED], cpu_ms[fn_id, WITHOUT], strict=True)]
        (rate_mean, rate_ci), (cpu_mean, _) = geometric_mean(ratios), geometric_mean(cpu_ratios)
        interval = f" (95 % interval {rate_ci[0]:.3f}-{rate_ci[1]:.3f})" if rate_ci else ""
        print(f"  {fn_id}: without / as shipped: rows/s {rate_mean:.3f}x{interval}, CPU a row {cpu_mean:.3f}x")


if __name__ == "__main__":
    main()
