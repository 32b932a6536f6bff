"""One replica against two, on one PostgreSQL: scoring throughput and a large eval job.

Every replica is a real ``llama stack run`` of the same run.yaml, all on one throw-away PostgreSQL cluster (registry,
jobs, judgment cache, and the stack's inference store).

- **Scoring**: a fake OpenAI-compatible judge (``tests/fake_openai.py``) at ``--latencies``; ``--requests`` score
  calls of ``--rows`` rows each, sent ``--clients`` at a time and spread round-robin over the replicas; the
  judgment cache is off, so every row is a judge call. Prints rows/s for 1 and 2 replicas and the ratio.
- **Job**: the scripted in-process models (no HTTP: the stack's own work is measured); one eval job of
  ``--job-rows`` rows in pages of ``--page-rows`` answers every row and judges it with ``judge::helpfulness-v1``;
  with 2 replicas the second one takes pages of the job. Prints the job's time and who worked its pages.

Run: ``LLAMA_STACK_LOG_FORMAT=json .venv/bin/python benchmarks/replicas.py``
"""

import argparse
import contextlib
import copy
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from judge_throughput import fake_judge
from llama_stack_client import LlamaStackClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the test helpers: a PostgreSQL cluster and served replicas

from llama_stack_judge.cli.stack import endpoint_providers  # noqa: E402
from tests import postgres  # noqa: E402
from tests.stacks import (  # noqa: E402
    register_benchmark,
    run_config_file,
    selected_providers,
    start_servers,
    stop_server,
    stored_values,
    wait_for_job,
)

FUNCTION = "judge::helpfulness-v1"
PARAMS = {"type": "llm_as_judge", "judge_model": ""}


@contextlib.contextmanager
def replicas(run_yaml: Path, count: int, logs: Path) -> Iterator[list[LlamaStackClient]]:
    """``count`` replicas of ``run_yaml``: the first alone (it creates the tables), then the others."""
    started = start_servers(run_yaml, [logs / "replica-0.log"])
    try:
        started += start_servers(run_yaml, [logs / f"replica-{n}.log" for n in range(1, count)])
        yield [client for _, client in started]
    finally:
        for process, _ in started:
            stop_server(process)


def scoring_rate(clients: list[LlamaStackClient], args: argparse.Namespace) -> float:
    """Rows per second over ``args.requests`` score calls spread over the replicas."""
    tag = uuid.uuid4().hex[:8]

    def call(number: int) -> int:
        rows = [{"input_query": f"{tag} q{number}-{i}", "generated_answer": f"a{i}"} for i in range(args.rows)]
        client = clients[number % len(clients)]
        result = client.scoring.score(input_rows=rows, scoring_functions={FUNCTION: PARAMS}).results[FUNCTION]
        return sum(row["status"] == "scored" for row in result.score_rows)

    for client in clients:  # warm-up
        client.scoring.score(
            input_rows=[{"input_query": "q", "generated_answer": "a"}], scoring_functions={FUNCTION: PARAMS}
        )
    started = time.perf_counter()
    with ThreadPoolExecutor(args.clients) as pool:
        scored = sum(pool.map(call, range(args.requests)))
    seconds = time.perf_counter() - started
    assert scored == args.requests * args.rows, f"only {scored} rows scored"
    return scored / seconds


def scoring(cluster: postgres.Postgres, latency: float, count: int, args: argparse.Namespace, tmp: Path) -> float:
    state = tmp / f"scoring-{latency}-{count}"
    with fake_judge(latency) as url:
        providers = endpoint_providers(url, "judge", "none")
        providers["scoring"][0]["config"] |= {"max_concurrency": args.limit, "judgment_cache": None}
        run_yaml = run_config_file(state, providers, backends=cluster.backends(cluster.database(), None))
        with replicas(run_yaml, count, state) as clients:
            return scoring_rate(clients, args)


def job(cluster: postgres.Postgres, count: int, args: argparse.Namespace, tmp: Path) -> tuple[float, Counter[str]]:
    state = tmp / f"job-{count}"
    providers = copy.deepcopy(selected_providers())  # the scripted models
    providers["eval"][0]["config"] = providers["eval"][0].get("config", {}) | {"page_rows": args.page_rows}
    backends = cluster.backends(cluster.database(), None)
    run_yaml = run_config_file(state, providers, backends=backends)
    rows = [{"input_query": f"Question {i}: What is 2+2?", "expected_answer": "4"} for i in range(args.job_rows)]
    with replicas(run_yaml, count, state) as clients:
        benchmark_id = register_benchmark(clients[0], rows, [FUNCTION])
        for client in clients[1:]:  # their first eval call: from then on they take pages
            with contextlib.suppress(Exception):
                client.alpha.eval.jobs.status("none", benchmark_id=benchmark_id)
        candidate: dict[str, Any] = {
            "eval_candidate": {"type": "model", "model": "scripted/candidate", "sampling_params": {"max_tokens": 64}},
            "scoring_params": {},
        }
        started = time.perf_counter()
        job_id = clients[0].alpha.eval.run_eval(benchmark_id, benchmark_config=candidate).job_id
        status = wait_for_job(clients[0], benchmark_id, job_id, {"completed", "failed"}, seconds=3600)
        seconds = time.perf_counter() - started
        assert status == "completed", status
    sql = "SELECT leased_by FROM llama_stack_judge_eval_pages WHERE job_id = %s"
    return seconds, Counter(stored_values(state, backends, sql, (job_id,)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latencies", type=float, nargs="+", default=[0.0, 0.2])
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--rows", type=int, default=100, help="rows per score call")
    parser.add_argument("--clients", type=int, default=8, help="score calls in flight")
    parser.add_argument("--limit", type=int, default=16, help="each replica's max_concurrency")
    parser.add_argument("--job-rows", type=int, default=20000)
    parser.add_argument("--page-rows", type=int, default=1000)
    parser.add_argument("--skip-job", action="store_true")
    args = parser.parse_args()
    with postgres.cluster() as cluster, tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        for latency in args.latencies:
            one, two = (scoring(cluster, latency, count, args, tmp) for count in (1, 2))
            print(
                f"scoring, judge latency {latency} s, {args.requests} x {args.rows} rows: "
                f"1 replica {one:.1f} rows/s, 2 replicas {two:.1f} rows/s, ratio {two / one:.2f}",
                flush=True,
            )
        if not args.skip_job:
            (one, _), (two, workers) = (job(cluster, count, args, tmp) for count in (1, 2))
            print(
                f"job of {args.job_rows} rows, pages of {args.page_rows}: 1 replica {one:.0f} s "
                f"({args.job_rows / one:.0f} rows/s), 2 replicas {two:.0f} s ({args.job_rows / two:.0f} rows/s), "
                f"ratio {one / two:.2f}; pages per replica with 2: {sorted(workers.values())}",
                flush=True,
            )


if __name__ == "__main__":
    main()
