"""Replicas of one stack on one PostgreSQL: leased jobs, a shared registry and a shared judgment cache.

Every replica is a real ``llama stack run`` on the same run.yaml; the scripted models log each call to one file, so
the log shows whether any row was asked twice. Leases are short here (3 s, renewed every 0.5 s).
"""

import subprocess
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests import postgres
from tests.integration.test_jobs import CANDIDATE, _calls, _kept_generations, _kill_once, _stack
from tests.stacks import (
    DETAILS,
    Backends,
    register_benchmark,
    register_judge,
    start_server,
    start_servers,
    stop_server,
    stored_values,
    wait_for_job,
)

pytestmark = pytest.mark.integration

JOBS_TABLE = "llama_stack_judge_eval_jobs"


@pytest.fixture
def shared_store(postgres_cluster: postgres.Postgres, tmp_path: Path) -> Backends:
    """A fresh PostgreSQL database for the registry, jobs and judgments of every replica."""
    return postgres_cluster.backends(postgres_cluster.database(), None)


def _start_on_a_fresh_store(run_yaml: Path, logs: list[Path]) -> list[tuple[subprocess.Popen[bytes], Any]]:
    """The first replica alone, then the others at once.

    On a fresh database the first one creates the stack's tables: llama-stack 0.7.3's ``kv_postgres`` creates its
    table without a lock, and a replica racing another there exits at start (a unique violation in ``pg_type``).
    """
    return start_servers(run_yaml, logs[:1]) + start_servers(run_yaml, logs[1:])


def _rows(job: str, count: int) -> list[dict[str, Any]]:
    return [{"input_query": f"SLOW {job} question {i}", "expected_answer": "slow"} for i in range(count)]


def _asked(log: Path, since: int = 0) -> Counter[str]:
    """How often the candidate was asked each question, from call ``since`` on."""
    return Counter(call["messages"][-1]["content"] for call in _calls(log, "candidate")[since:])


def _stored_status(state: Path, store: Backends, job_id: str) -> str | None:
    found = stored_values(state, store, f"SELECT status FROM {JOBS_TABLE} WHERE job_id = %s", (job_id,))
    return found[0] if found else None


def _until_completed(state: Path, store: Backends, job_id: str, *, seconds: float, why: str) -> None:
    """Wait until the store records the job completed (read directly: no replica is asked)."""
    since = time.monotonic()
    while _stored_status(state, store, job_id) != "completed":
        assert time.monotonic() - since < seconds, why
        time.sleep(0.2)


def _first_eval_call(client: Any, benchmark_id: str) -> None:
    """A replica's first eval call (a 404 here): from then on it keeps leases and takes pages."""
    with pytest.raises(Exception, match="no eval job"):
        client.alpha.eval.jobs.status("no-such-job", benchmark_id=benchmark_id)


def _resumed_by(logs: list[Path], job_id: str) -> list[int]:
    """Which replicas (by log) took the job over."""
    return [
        index
        for index, log in enumerate(logs)
        for line in log.read_text().splitlines()
        if "Resuming eval job" in line and job_id in line
    ]


def _stop_all(replicas: list[tuple[subprocess.Popen[bytes], Any]]) -> None:
    for process, _ in replicas:
        if process.poll() is None:
            stop_server(process)


def test_replicas_started_at_once_run_each_unfinished_job_exactly_once(tmp_path: Path, shared_store: Backends) -> None:
    run_yaml, log = _stack(tmp_path, shared_store)
    state = tmp_path / "state"
    process, client = start_server(run_yaml, log=tmp_path / "first.log")
    try:
        benchmarks = {name: register_benchmark(client, _rows(name, 8), ["judge::subset_of"]) for name in ("j1", "j2")}
        jobs = {
            name: client.alpha.eval.run_eval(b, benchmark_config=CANDIDATE).job_id for name, b in benchmarks.items()
        }
        # The two jobs share 4 generation slots, 2 s a row: kill once 4 rows are answered.
        answered = lambda: sum(len(_kept_generations(state, job_id, shared_store)) for job_id in jobs.values())  # noqa: E731
        _kill_once(process, lambda: answered() >= 4)
    finally:
        if process.poll() is None:
            process.kill()
    kept = {name: _kept_generations(state, job_id, shared_store) for name, job_id in jobs.items()}
    calls_before = len(_calls(log, "candidate"))
    logs = [tmp_path / f"replica-{index}.log" for index in range(3)]
    replicas = start_servers(run_yaml, logs)
    try:
        with ThreadPoolExecutor(3) as pool:  # each replica's first eval call, together: all three try to take over
            list(pool.map(lambda r: r[1].alpha.eval.jobs.status(jobs["j1"], benchmark_id=benchmarks["j1"]), replicas))
        for name, job_id in jobs.items():
            _until_completed(state, shared_store, job_id, seconds=90, why=f"job {name} did not finish")
        results = {
            name: replicas[2][1].alpha.eval.jobs.retrieve(job_id, benchmark_id=benchmarks[name])
            for name, job_id in jobs.items()
        }
    finally:
        _stop_all(replicas)
    asked_after = _asked(log, calls_before)
    assert max(asked_after.values()) == 1, "a row was asked twice: two replicas ran one job"
    for name, job_id in jobs.items():
        assert len(_resumed_by(logs, job_id)) == 1  # taken over by exactly one replica
        questions = {f"SLOW {name} question {i}" for i in range(8)}
        answered_before = {f"SLOW {name} question {i}" for i in kept[name]}
        assert not answered_before & set(asked_after)  # no row answered before the kill was asked again
        assert answered_before | (set(asked_after) & questions) == questions
        assert [g["generated_answer"] for g in results[name].generations] == ["A slow answer."] * 8
        assert [r["score"] for r in results[name].scores["judge::subset_of"].score_rows] == [1.0] * 8


def test_a_live_replica_takes_over_cancels_and_shares_registry_and_cache(
    tmp_path: Path, shared_store: Backends
) -> None:
    run_yaml, log = _stack(tmp_path, shared_store)
    state = tmp_path / "state"
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    replicas = _start_on_a_fresh_store(run_yaml, logs)
    (process_a, a), (_, b) = replicas
    try:
        # A function registered through A is scored through B, and a row judged through A is a cache hit through B.
        params = {
            "type": "llm_as_judge",
            "judge_model": "scripted/judge",
            "prompt_template": "Answer: {generated_answer}",
        }
        register_judge(a, "team::shared", params, description="")
        row = {"input_query": "What is the capital of France?", "generated_answer": "Paris", "expected_answer": "Paris"}
        judged_by_b = b.scoring.score(input_rows=[row], scoring_functions={"team::shared": None}).results
        assert judged_by_b["team::shared"].score_rows[0]["score"] == 9.0
        a.scoring.score(input_rows=[row], scoring_functions={"judge::helpfulness-v1": None})
        again = b.scoring.score(
            input_rows=[row], scoring_functions={"judge::helpfulness-v1": None}, extra_headers=DETAILS
        )
        usage = again.results["judge::helpfulness-v1"].aggregated_results["usage"]
        assert (usage["cache_hits"], usage["inference_calls"]) == (1, 0)

        # A cancel sent through B stops the job that A runs, within a lease renewal.
        cancelled = register_benchmark(a, _rows("cancelled", 12), ["judge::subset_of"])
        doomed = a.alpha.eval.run_eval(cancelled, benchmark_config=CANDIDATE).job_id
        while len(_kept_generations(state, doomed, shared_store)) < 4:
            time.sleep(0.1)
        b.alpha.eval.jobs.cancel(doomed, benchmark_id=cancelled)
        assert str(a.alpha.eval.jobs.status(doomed, benchmark_id=cancelled).status) in {"in_progress", "cancelled"}
        time.sleep(1.5)  # A notices at its next renewal (0.5 s) and stops its in-flight calls
        asked = sum(_asked(log).values())
        time.sleep(3)
        assert sum(_asked(log).values()) == asked, "A kept answering a job cancelled through B"
        assert str(a.alpha.eval.jobs.status(doomed, benchmark_id=cancelled).status) == "cancelled"
        assert len(_kept_generations(state, doomed, shared_store)) < 12

        # kill -9 of A while it runs a job: B takes it over once the lease runs out, with no further call to B.
        benchmark_id = register_benchmark(a, _rows("orphan", 8), ["judge::subset_of"])
        job_id = a.alpha.eval.run_eval(benchmark_id, benchmark_config=CANDIDATE).job_id
        _kill_once(process_a, lambda: len(_kept_generations(state, job_id, shared_store)) >= 4)
        kept = _kept_generations(state, job_id, shared_store)
        calls_before = len(_calls(log, "candidate"))
        _until_completed(state, shared_store, job_id, seconds=60, why="B did not take the job over")
        result = b.alpha.eval.jobs.retrieve(job_id, benchmark_id=benchmark_id)
    finally:
        _stop_all(replicas)
    assert _resumed_by(logs, job_id) == [1]
    asked_after = _asked(log, calls_before)
    assert max(asked_after.values()) == 1
    assert not {f"SLOW orphan question {i}" for i in kept} & set(asked_after)
    assert [g["generated_answer"] for g in result.generations] == ["A slow answer."] * 8
    assert [r["score"] for r in result.scores["judge::subset_of"].score_rows] == [1.0] * 8


def test_a_drained_replica_hands_its_job_over_at_once(tmp_path: Path, shared_store: Backends) -> None:
    # A lease far longer than a hand-over.
    run_yaml, log = _stack(tmp_path, shared_store, lease_s=60.0, lease_renewal_s=0.5)
    state = tmp_path / "state"
    replicas = _start_on_a_fresh_store(run_yaml, [tmp_path / "a.log", tmp_path / "b.log"])
    (process_a, a), (_, b) = replicas
    try:
        benchmark_id = register_benchmark(a, _rows("drained", 8), ["judge::subset_of"])
        _first_eval_call(b, benchmark_id)
        job_id = a.alpha.eval.run_eval(benchmark_id, benchmark_config=CANDIDATE).job_id
        while len(_kept_generations(state, job_id, shared_store)) < 4:
            time.sleep(0.1)
        stop_server(process_a)  # SIGTERM: A releases its lease on the way out
        kept = {f"SLOW drained question {i}" for i in _kept_generations(state, job_id, shared_store)}
        why = "B waited for the lease instead of taking the job over"
        _until_completed(state, shared_store, job_id, seconds=30, why=why)
        result = b.alpha.eval.jobs.retrieve(job_id, benchmark_id=benchmark_id)
    finally:
        _stop_all(replicas)
    assert _resumed_by([tmp_path / "a.log", tmp_path / "b.log"], job_id) == [1]
    asked = _asked(log)
    assert len(kept) >= 4 and all(
        asked[question] == 1 for question in kept
    )  # rows in flight at the stop are asked again
    assert [r["score"] for r in result.scores["judge::subset_of"].score_rows] == [1.0] * 8


def test_two_replicas_share_the_pages_of_a_large_job(tmp_path: Path, shared_store: Backends) -> None:
    run_yaml, log = _stack(tmp_path, shared_store, page_rows=100)
    state = tmp_path / "state"
    rows = [{"input_query": f"Question {i}: What is 2+2?", "expected_answer": "4"} for i in range(2000)]
    functions = ["judge::subset_of", "judge::helpfulness-v1"]
    replicas = _start_on_a_fresh_store(run_yaml, [tmp_path / "a.log", tmp_path / "b.log"])
    (_, a), (process_b, b) = replicas
    try:
        benchmark_id = register_benchmark(a, rows, functions)
        _first_eval_call(b, benchmark_id)
        shared = a.alpha.eval.run_eval(benchmark_id, benchmark_config=CANDIDATE).job_id
        assert wait_for_job(a, benchmark_id, shared, {"completed", "failed"}, seconds=600) == "completed"
        on_two = a.alpha.eval.jobs.retrieve(shared, benchmark_id=benchmark_id)
        asked = _asked(log)
        judged = Counter(call["messages"][-1]["content"] for call in _calls(log, "judge"))
        stop_server(process_b)
        alone = a.alpha.eval.run_eval(benchmark_id, benchmark_config=CANDIDATE).job_id  # the same job on one replica
        assert wait_for_job(a, benchmark_id, alone, {"completed", "failed"}, seconds=600) == "completed"
        on_one = a.alpha.eval.jobs.retrieve(alone, benchmark_id=benchmark_id)
    finally:
        _stop_all(replicas)
    workers = stored_values(
        state, shared_store, "SELECT leased_by FROM llama_stack_judge_eval_pages WHERE job_id = %s", (shared,)
    )
    assert len(workers) == 20 and len(set(workers)) == 2, Counter(workers)  # both replicas judged pages
    assert len(asked) == 2000 and set(asked.values()) == {1}  # every row answered once
    assert len(judged) == 2000 and set(judged.values()) == {1}  # and judged once
    assert on_two.generations == on_one.generations
    for fn in functions:
        assert on_two.scores[fn].score_rows == on_one.scores[fn].score_rows, fn
        assert on_two.scores[fn].aggregated_results == on_one.scores[fn].aggregated_results, fn
