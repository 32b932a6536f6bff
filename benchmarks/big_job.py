"""A large eval job on one served stack: peak memory of the stack process, progress, and throughput.

``llama stack run`` serves our eval and scoring providers with the scripted in-process models (no HTTP judge, so
the stack's own work is what is measured); a dataset of ``--rows`` rows is registered, one job generates an answer
for each and judges it with ``judge::helpfulness-v1`` and ``judge::subset_of``. While it runs the script prints the
job's progress (as ``jobs.retrieve`` reports it) and the stack's resident memory; at the end, peak RSS (VmHWM)
before and during the job, rows/s, and the job's aggregates.

Run: ``.venv/bin/python benchmarks/big_job.py --rows 100000 [--page-rows 1000]``
"""

import argparse
import contextlib
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from llama_stack_client import BadRequestError, LlamaStackClient

from llama_stack_judge.embedded.server import free_port
from llama_stack_judge.health import serving
from llama_stack_judge.stack_config import build_run_config, load_provider_config, write_run_config

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ["judge::helpfulness-v1", "judge::subset_of"]
QUESTIONS = ["What is the capital of France?", "What is 2+2?"]


def memory_kb(pid: int) -> dict[str, int]:
    """Current (VmRSS) and peak (VmHWM) resident memory of a process, in kB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {key: int(fields[key].split()[0]) for key in ("VmRSS", "VmHWM")}


@contextlib.contextmanager
def served(page_rows: int, state: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    providers = load_provider_config(ROOT / "provider_configs" / "scripted.yaml")
    providers["eval"][0].setdefault("config", {})["page_rows"] = page_rows
    run_yaml = write_run_config(build_run_config(providers, state_dir=str(state)), state / "run.yaml")
    port = free_port()
    env = {**os.environ, "LLAMA_STACK_LOG_FORMAT": "json", "LLAMA_STACK_LOGGING": "all=warning"}
    with (state / "server.log").open("ab") as log:
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "llama"), "stack", "run", str(run_yaml), "--port", str(port)],
            stdout=log,
            stderr=log,
            env=env,
        )
    with serving(f"http://127.0.0.1:{port}/v1/health", server, what="llama stack run", within_s=120):
        yield server, f"http://127.0.0.1:{port}"


def progress(client: LlamaStackClient, benchmark_id: str, job_id: str) -> str | None:
    """The job's progress line, or None once it has finished (checked first: a finished job's result is every row)."""
    if str(client.alpha.eval.jobs.status(job_id, benchmark_id=benchmark_id).status) not in ("scheduled", "in_progress"):
        return None
    try:
        client.alpha.eval.jobs.retrieve(job_id, benchmark_id=benchmark_id)
    except BadRequestError as error:
        found = re.search(r"phase [^;]*", str(error))
        return found.group(0) if found else str(error)
    return "finished"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--page-rows", type=int, default=1000)
    parser.add_argument("--every", type=float, default=15.0, help="seconds between progress lines")
    args = parser.parse_args()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    rows = [
        {"input_query": QUESTIONS[i % 2], "expected_answer": "Paris", "category": f"c{i % 8}"} for i in range(args.rows)
    ]
    with tempfile.TemporaryDirectory() as state, served(args.page_rows, Path(state)) as (server, url):
        client = LlamaStackClient(base_url=url, timeout=600)
        client.beta.datasets.register(
            purpose="eval/question-answer", source={"type": "rows", "rows": rows}, dataset_id="big"
        )
        client.alpha.benchmarks.register(
            benchmark_id="big", dataset_id="big", scoring_functions=FUNCTIONS, provider_id="judge-eval",
            metadata={"judge_options": {"group_by": ["category"], "bootstrap_resamples": 200}},
        )  # fmt: skip
        before = memory_kb(server.pid)
        rss, peak = before["VmRSS"] / 1024, before["VmHWM"] / 1024
        print(f"{args.rows} rows registered; stack RSS {rss:.0f} MB, peak {peak:.0f} MB")
        candidate = {"type": "model", "model": "scripted/candidate", "sampling_params": {"max_tokens": 64}}
        started = time.perf_counter()
        job = client.alpha.eval.run_eval("big", benchmark_config={"eval_candidate": candidate, "scoring_params": {}})
        while (line := progress(client, "big", job.job_id)) is not None:
            now = memory_kb(server.pid)
            print(f"{time.perf_counter() - started:7.0f} s  {line}  RSS {now['VmRSS'] / 1024:.0f} MB", flush=True)
            time.sleep(args.every)
        elapsed = time.perf_counter() - started
        status = client.alpha.eval.jobs.status(job.job_id, benchmark_id="big").status
        after = memory_kb(server.pid)
        result = client.alpha.eval.jobs.retrieve(job.job_id, benchmark_id="big")
        retrieved = memory_kb(server.pid)
    aggregates = result.scores["judge::helpfulness-v1"].aggregated_results
    rate = args.rows / elapsed
    print(f"job {status} in {elapsed:.0f} s: {rate:.0f} rows/s (generation + judging, pages of {args.page_rows})")
    print(f"stack peak RSS: {before['VmHWM'] / 1024:.0f} MB before the job, {after['VmHWM'] / 1024:.0f} MB at its end "
          f"(+{(after['VmHWM'] - before['VmHWM']) / 1024:.0f} MB), {retrieved['VmHWM'] / 1024:.0f} MB after retrieving "
          f"all {len(result.generations)} rows")  # fmt: skip
    average = aggregates["average"]  # the aggregation, with the counts it was made over
    print(f"helpfulness: average {average['average']}, n_scored {average['n_scored']} of {average['n_total']}")


if __name__ == "__main__":
    main()
