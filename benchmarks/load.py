"""Load on one served stack: many concurrent callers scoring through our provider against a fake judge.

A fake OpenAI-compatible judge (``tests/fake_openai.py``, fixed latency) runs in its own process; ``llama stack run``
serves our scoring provider with ``remote::openai`` pointed at it; ``--clients`` threads each score ``--rows`` rows
with their own ``LlamaStackClient``. Prints request latency (p50/p99), rows/s, and the judge's peak in-flight count
against the provider's limit.

Run: ``.venv/bin/python benchmarks/load.py [--clients 32 --rows 50 --latency 0.1 --limit 16 --spacing 0.003]``
"""

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import yaml
from judge_throughput import fake_judge, free_port
from llama_stack_client import LlamaStackClient

from llama_stack_judge.cli.stack import endpoint_providers
from llama_stack_judge.health import serving
from llama_stack_judge.stack_config import build_run_config

TEMPLATE = "Question: {input_query}\nAnswer: {generated_answer}\nRate 1-10 as Rating: [[n]]."
PARAMS = {
    "type": "llm_as_judge",
    "judge_model": "",
    "prompt_template": TEMPLATE,
    "judge_score_regexes": [r"\[\[(\d+)\]\]"],
    "aggregation_functions": ["average"],
}
FUNCTION = "judge::helpfulness-v1"


@contextlib.contextmanager
def served_stack(judge_url: str, limit: int, state: Path, spacing: float | None = None) -> "contextlib.Generator[str]":
    """``llama stack run`` with our scoring provider judging at ``judge_url``; yields its base URL.

    ``spacing`` sets the provider's ``call_spacing_s`` (None: its default).
    """
    providers = endpoint_providers(judge_url, "judge", "none")
    providers["scoring"][0]["config"] |= {"max_concurrency": limit, "judgment_cache": None}
    if spacing is not None:
        providers["scoring"][0]["config"]["call_spacing_s"] = spacing
    run_yaml = state / "run.yaml"
    run_yaml.write_text(yaml.safe_dump(build_run_config(providers, state_dir=str(state))), encoding="utf-8")
    port = free_port()
    llama = Path(sys.executable).parent / "llama"
    env = {**os.environ, "LLAMA_STACK_LOG_FORMAT": "json"}
    with (state / "server.log").open("ab") as log:
        server = subprocess.Popen(
            [str(llama), "stack", "run", str(run_yaml), "--port", str(port)], stdout=log, stderr=log, env=env
        )
    url = f"http://127.0.0.1:{port}"
    with serving(f"{url}/v1/health", server, what="llama stack run", within_s=60, log=state / "server.log"):
        yield url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rows", type=int, default=50, help="rows per client request")
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per judge request")
    parser.add_argument("--limit", type=int, default=16, help="the provider's max_concurrency")
    parser.add_argument("--spacing", type=float, help="the provider's call_spacing_s (default: its own default)")
    args = parser.parse_args()
    with (
        fake_judge(args.latency) as judge_url,
        tempfile.TemporaryDirectory() as tmp,
        served_stack(judge_url, args.limit, Path(tmp), args.spacing) as url,
    ):
        stats_url = judge_url.removesuffix("/v1") + "/stats"
        client = LlamaStackClient(base_url=url, timeout=600)
        client.scoring.score(  # warm-up
            input_rows=[{"input_query": "q", "generated_answer": "warm"}], scoring_functions={FUNCTION: PARAMS}
        )
        httpx.post(stats_url + "/reset")

        def caller(number: int) -> tuple[float, bool]:
            rows = [
                {"input_query": f"caller {number} q {i}", "generated_answer": f"answer {number}-{i}"}
                for i in range(args.rows)
            ]
            own = LlamaStackClient(base_url=url, timeout=600)
            start = time.perf_counter()
            result = own.scoring.score(input_rows=rows, scoring_functions={FUNCTION: PARAMS}).results[FUNCTION]
            ok = len(result.score_rows) == args.rows and all(r["status"] == "scored" for r in result.score_rows)
            return time.perf_counter() - start, ok

        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.clients) as pool:
            outcomes = list(pool.map(caller, range(args.clients)))
        wall = time.perf_counter() - start
        peak = httpx.get(stats_url).json()["max_in_flight"]
    latencies = sorted(seconds for seconds, _ in outcomes)
    p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
    total = args.clients * args.rows
    spacing = "default" if args.spacing is None else f"{args.spacing:g} s"
    print(
        f"{args.clients} clients x {args.rows} rows, judge latency {args.latency} s, provider limit {args.limit},"
        f" call spacing {spacing}"
    )
    print(f"all requests complete and every row scored: {all(ok for _, ok in outcomes)}")
    print(f"request latency p50 {statistics.median(latencies):.2f} s, p99 {p99:.2f} s; wall {wall:.1f} s")
    print(f"throughput {total / wall:.1f} rows/s (ideal {args.limit / args.latency:.0f} rows/s at this limit)")
    print(
        f"judge's peak in-flight requests: {peak} (limit {args.limit}: {'held' if peak <= args.limit else 'EXCEEDED'})"
    )


if __name__ == "__main__":
    main()
