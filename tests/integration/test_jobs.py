"""Eval jobs on a served stack: persistence across kill -9, resume without repeated work, multi-turn generation."""

import json
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from llama_stack_client import APIStatusError, BadRequestError

from llama_stack_judge.core.options import JudgeOptions
from llama_stack_judge.embedded.server import free_port
from llama_stack_judge.mtbench.benchmark import register_mt_bench
from llama_stack_judge.mtbench.questions import data_file, load_questions
from tests.fake_openai import Fault, fake_openai
from tests.integration.test_cli import _run
from tests.stacks import (
    SHORT_LEASES,
    Backends,
    bad_request,
    not_found,
    register_benchmark,
    run_config_file,
    start_server,
    stop_server,
    stored_values,
    wait_for_job,
    with_endpoint,
    with_eval_config,
)

pytestmark = pytest.mark.integration

CANDIDATE = {
    "eval_candidate": {
        "type": "model",
        "model": "scripted/candidate",
        "sampling_params": {"max_tokens": 64},
        "system_message": {"role": "system", "content": "Answer briefly."},
    },
    "scoring_params": {},
}


def _stack(tmp_path: Path, backends: Backends = None, **eval_config: Any) -> tuple[Path, Path]:
    """A run config whose scripted models log every call (storage: ``backends``); returns it and the log."""
    providers = with_eval_config(**(SHORT_LEASES | eval_config))
    log = tmp_path / "calls.jsonl"
    providers["inference"][0]["config"]["call_log"] = str(log)
    return run_config_file(tmp_path / "state", providers, backends=backends), log


def _calls(log: Path, model: str) -> list[dict[str, Any]]:
    lines = log.read_text().splitlines() if log.exists() else []
    return [call for call in map(json.loads, lines) if call["model"] == model]


def _kill_once(process: subprocess.Popen[bytes], ready: Callable[[], bool], seconds: float = 60) -> None:
    """``kill -9`` the server as soon as ``ready()`` holds."""
    deadline = time.monotonic() + seconds
    while not ready():
        assert time.monotonic() < deadline, "the job did not get that far"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)


def _restart_and_finish(run_yaml: Path, benchmark_id: str, job_id: str) -> Any:
    """Start the stack again on the same storage and return the result of the job it resumes."""
    process, client = start_server(run_yaml)
    try:
        assert wait_for_job(client, benchmark_id, job_id, {"completed", "failed"}) == "completed"
        return client.alpha.eval.jobs.retrieve(job_id, benchmark_id=benchmark_id)
    finally:
        stop_server(process)


def _progress(client: Any, benchmark_id: str, job_id: str) -> dict[str, int]:
    """Rows generated and judged so far, from the progress that job_result reports for an unfinished job."""
    try:
        client.alpha.eval.jobs.retrieve(job_id, benchmark_id=benchmark_id)
    except BadRequestError as error:
        if "phase" not in str(error):  # not started yet
            return {"generated": 0, "judged": 0}
        found = re.search(r"generated (\d+)/\S+ rows, judged (\d+)/", str(error))
        assert found, str(error)
        return {"generated": int(found.group(1)), "judged": int(found.group(2))}
    raise AssertionError("the job finished")


def _generated(client: Any, benchmark_id: str, job_id: str) -> int:
    return _progress(client, benchmark_id, job_id)["generated"]


def _kept_generations(state: Path, job_id: str, backends: Backends = None) -> set[int]:
    sql = "SELECT row_index FROM llama_stack_judge_eval_generations WHERE job_id = %s"
    return {int(index) for index in stored_values(state, backends, sql, (job_id,))}


@pytest.mark.parametrize("page_rows", [1000, 3], ids=["one-page", "pages-of-3"])
def test_a_killed_job_resumes_without_repeating_finished_rows(
    tmp_path: Path, page_rows: int, storage: Backends
) -> None:
    run_yaml, log = _stack(tmp_path, storage, page_rows=page_rows)
    rows = [{"input_query": f"SLOW question {i}", "expected_answer": "slow"} for i in range(8)]
    process, client = start_server(run_yaml)
    try:
        benchmark_id = register_benchmark(client, rows, ["judge::subset_of", "judge::helpfulness-v1"])
        job = client.alpha.eval.run_eval(benchmark_id, benchmark_config=CANDIDATE)
        # 4 at a time, 2 s each
        _kill_once(process, lambda: len(_kept_generations(tmp_path / "state", job.job_id, storage)) >= 4)
    finally:
        if process.poll() is None:
            process.kill()
    finished_before = _kept_generations(tmp_path / "state", job.job_id, storage)
    calls_before = len(_calls(log, "candidate"))
    assert 4 <= len(finished_before) < 8
    result = _restart_and_finish(run_yaml, benchmark_id, job.job_id)
    after = _calls(log, "candidate")[calls_before:]
    asked_again = {int(call["messages"][-1]["content"].rsplit(" ", 1)[-1]) for call in after}
    assert asked_again and not asked_again & finished_before  # no finished row was generated again
    assert asked_again | finished_before == set(range(8))  # and every row has its answer
    assert [g["generated_answer"] for g in result.generations] == ["A slow answer."] * 8
    assert [r["score"] for r in result.scores["judge::subset_of"].score_rows] == [1.0] * 8
    assert result.scores["judge::helpfulness-v1"].aggregated_results["average"]["n_total"] == 8


def test_multi_turn_rows_cancel_and_two_jobs(tmp_path: Path) -> None:
    run_yaml, log = _stack(tmp_path)
    process, client = start_server(run_yaml)
    try:
        chat = [{"turns": ["What is the capital of France?", "What is 2+2?"], "expected_answer": "5"}]
        multi = register_benchmark(client, chat, ["judge::subset_of"])
        plain = register_benchmark(
            client,
            [{"input_query": "What is 2+2?", "expected_answer": "5"}],
            ["judge::subset_of"],
            save_results_dataset=True,
        )
        slow = register_benchmark(
            client, [{"input_query": f"SLOW {i}", "expected_answer": "x"} for i in range(12)], ["judge::subset_of"]
        )
        jobs = {b: client.alpha.eval.run_eval(b, benchmark_config=CANDIDATE).job_id for b in (multi, plain, slow)}
        assert len(set(jobs.values())) == 3
        for benchmark_id in (multi, plain):
            assert wait_for_job(client, benchmark_id, jobs[benchmark_id], {"completed", "failed"}) == "completed"
        (generation,) = client.alpha.eval.jobs.retrieve(jobs[multi], benchmark_id=multi).generations
        assert generation == {
            "generated_answer": "2+2 is 5.",
            "generated_turns": ["The capital of France is Paris.", "2+2 is 5."],
        }
        (second_turn,) = [c for c in _calls(log, "candidate") if len(c["messages"]) == 4]
        assert [(m["role"], m["content"]) for m in second_turn["messages"]] == [
            ("system", "Answer briefly."),
            ("user", "What is the capital of France?"),
            ("assistant", "The capital of France is Paris."),
            ("user", "What is 2+2?"),
        ]
        (plain_generation,) = client.alpha.eval.jobs.retrieve(jobs[plain], benchmark_id=plain).generations
        assert plain_generation == {"generated_answer": "2+2 is 5."}  # the jobs did not mix
        saved = client.beta.datasets.iterrows(f"{plain}-results-{jobs[plain][:12]}").data
        assert saved == [
            {"input_query": "What is 2+2?", "expected_answer": "5", "generated_answer": "2+2 is 5."}
            | {"judge::subset_of.score": 1.0, "judge::subset_of.status": "scored"}
        ]
        with bad_request("is in_progress; phase generating, generated ", "/12 rows, judged 0/12; created "):
            client.alpha.eval.jobs.retrieve(jobs[slow], benchmark_id=slow)
        while _generated(client, slow, jobs[slow]) < 4:  # the first four slow rows, answered together
            time.sleep(0.1)
        client.alpha.eval.jobs.cancel(jobs[slow], benchmark_id=slow)
        assert wait_for_job(client, slow, jobs[slow], {"cancelled"}, seconds=10) == "cancelled"
        partial = client.alpha.eval.jobs.retrieve(jobs[slow], benchmark_id=slow)  # cancelled while answering
        (aggregation,) = partial.scores["judge::subset_of"].aggregated_results.values()  # before any page: an average
        marker = aggregation["partial"]
        assert marker["status"] == "cancelled" and marker["rows_judged"] == 0 == len(partial.generations)
        assert 4 <= marker["rows_answered"] < 12
        url = ["--url", str(client.base_url).rstrip("/"), "--benchmark-id", multi]
        assert _run("jobs", "status", jobs[multi], *url).stdout.strip() == "completed"
        assert json.loads(_run("jobs", "result", jobs[multi], *url).stdout) == {
            "judge::subset_of": {
                "accuracy": {"accuracy": 1.0, "num_correct": 1.0, "num_total": 1}
                | {"n_scored": 1, "n_parse_error": 0, "n_inference_error": 0, "n_total": 1}
            }
        }
        exported = tmp_path / "export.jsonl"
        assert _run("jobs", "export", jobs[multi], *url, "--output", str(exported)).returncode == 0
        (line,) = [json.loads(text) for text in exported.read_text().splitlines()]
        assert (
            line["generation"]["generated_turns"][1] == "2+2 is 5."
            and line["scores"]["judge::subset_of"]["score"] == 1.0
        )
        missing = _run("jobs", "status", "no-such-job", *url)
        assert missing.returncode == 2 and "no eval job no-such-job" in missing.stderr
        # Cancelling a job that has ended cancels nothing, and says so.
        ended = _run("jobs", "cancel", jobs[multi], *url)
        assert (
            ended.returncode == 2 and f"eval job {jobs[multi]} is already completed; nothing to cancel" in ended.stderr
        )
        assert _run("jobs", "status", jobs[multi], *url).stdout.strip() == "completed"
        folder = _run("jobs", "export", jobs[multi], *url, "--output", str(tmp_path))
        assert folder.returncode == 2 and f"--output {tmp_path}: is a folder" in folder.stderr
    finally:
        stop_server(process)
    process, client = start_server(run_yaml)  # a cancelled job stays cancelled after a restart
    try:
        time.sleep(1)
        assert str(client.alpha.eval.jobs.status(jobs[slow], benchmark_id=slow).status) == "cancelled"
        assert str(client.alpha.eval.jobs.status(jobs[multi], benchmark_id=multi).status) == "completed"
    finally:
        stop_server(process)
    listed = _run("jobs", "list", "--stack-config", str(run_yaml))
    assert listed.returncode == 0, listed.stderr
    statuses = {line.split()[0]: line.split()[3].rstrip(";") for line in listed.stdout.splitlines()}
    assert statuses == {jobs[multi]: "completed", jobs[plain]: "completed", jobs[slow]: "cancelled"}


def test_a_cancelled_job_returns_and_exports_what_it_judged(tmp_path: Path) -> None:
    run_yaml, _ = _stack(tmp_path, page_rows=2)
    rows = [{"input_query": f"SLOW question {i}", "expected_answer": "slow"} for i in range(12)]
    process, client = start_server(run_yaml)
    try:
        benchmark_id = register_benchmark(client, rows, ["judge::subset_of"])
        job = client.alpha.eval.run_eval(benchmark_id, benchmark_config=CANDIDATE)
        deadline = time.monotonic() + 60
        while _progress(client, benchmark_id, job.job_id)["judged"] < 4:  # two pages of 2, each 2 s to answer
            assert time.monotonic() < deadline
            time.sleep(0.1)
        client.alpha.eval.jobs.cancel(job.job_id, benchmark_id=benchmark_id)
        result = client.alpha.eval.jobs.retrieve(job.job_id, benchmark_id=benchmark_id)
        scores = result.scores["judge::subset_of"]
        judged = len(result.generations)
        assert 4 <= judged < 12 and [row["score"] for row in scores.score_rows] == [1.0] * judged
        aggregated = scores.aggregated_results["accuracy"]  # the one aggregation, with its counts and the marker
        assert aggregated["partial"] | {"rows_answered": None} == {
            "status": "cancelled",
            "rows_judged": judged,
            "rows_answered": None,
            "rows": 12,  # the job listed its pages before judging any
        }
        assert aggregated["partial"]["rows_answered"] >= judged
        assert aggregated["num_total"] == judged == aggregated["n_total"]
        exported = tmp_path / "partial.jsonl"
        url = ("--url", str(client.base_url).rstrip("/"), "--benchmark-id", benchmark_id)
        done = _run("jobs", "export", job.job_id, *url, "--output", str(exported))
        assert done.returncode == 0 and f"partial: the job was cancelled; {judged} judged rows" in done.stderr
        assert len(exported.read_text().splitlines()) == judged
    finally:
        stop_server(process)


def test_mt_bench_through_eval(tmp_path: Path) -> None:
    run_yaml, log = _stack(tmp_path)
    questions = load_questions(data_file("question.jsonl"))
    process, client = start_server(run_yaml)
    try:
        benchmark_id = register_mt_bench(  # writing; math with its reference answers
            client, question_ids=[81, 111], benchmark_id="mt-bench-2", dataset_id="mt-bench-2"
        )
        job = client.alpha.eval.run_eval(benchmark_id, benchmark_config=CANDIDATE)
        assert wait_for_job(client, benchmark_id, job.job_id, {"completed", "failed"}) == "completed"
        result = client.alpha.eval.jobs.retrieve(job.job_id, benchmark_id=benchmark_id)
        # the generated run config ships the whole benchmark: the first 31 questions reach 111 (math)
        shipped = client.alpha.eval.run_eval("mt-bench", benchmark_config=CANDIDATE | {"num_examples": 31})
        assert wait_for_job(client, "mt-bench", shipped.job_id, {"completed", "failed"}) == "completed"
        full = client.alpha.eval.jobs.retrieve(shipped.job_id, benchmark_id="mt-bench")
    finally:
        stop_server(process)
    shipped_rows = full.scores["judge::response_assessment.rating"].score_rows
    assert len(shipped_rows) == 31 and [t["judge"] for t in shipped_rows[30]["turns"]] == [
        "single-math-v1",
        "single-math-v1-multi-turn",
    ]
    assert [len(g["generated_turns"]) for g in result.generations] == [2, 2]
    judged = result.scores["judge::response_assessment.rating"]
    assert [[t["judge"] for t in row["turns"]] for row in judged.score_rows] == [
        ["single-v1", "single-v1-multi-turn"],
        ["single-math-v1", "single-math-v1-multi-turn"],
    ]
    assert judged.aggregated_results["turn_average"]["turn_average"] == {
        "1": {"average": 5.0, "n": 2, "n_total": 2},
        "2": {"average": 5.0, "n": 2, "n_total": 2},
    }
    assert set(judged.aggregated_results["turn_average"]["by_group"]["category"]) == {"writing", "math"}
    judge_calls = _calls(log, "judge")
    (prompt,) = [  # judged once: the shipped benchmark's identical judgment came from the cache
        c["messages"][-1]["content"]
        for c in judge_calls
        if "### Reference answer:" in c["messages"][-1]["content"]
        and questions[111].turns[1] in c["messages"][-1]["content"]
    ]
    assert result.generations[1]["generated_turns"][1] in prompt


def test_jobs_share_the_generation_limit(tmp_path: Path) -> None:
    run_yaml, log = _stack(tmp_path)  # the eval provider's max_concurrency is 4
    process, client = start_server(run_yaml)
    try:
        benchmarks = [
            register_benchmark(client, [{"input_query": f"SLOW {b}-{i}", "expected_answer": "x"} for i in range(4)], [])
            for b in range(2)
        ]
        jobs = [client.alpha.eval.run_eval(b, benchmark_config=CANDIDATE).job_id for b in benchmarks]
        for benchmark_id, job_id in zip(benchmarks, jobs, strict=True):
            assert wait_for_job(client, benchmark_id, job_id, {"completed", "failed"}) == "completed"
    finally:
        stop_server(process)
    starts = sorted(call["time"] for call in _calls(log, "candidate"))
    assert len(starts) == 8
    assert starts[3] - starts[0] < 1.0 and starts[4] - starts[0] >= 1.8  # four at a time across both jobs


def _stored_judgments(state: Path, backends: Backends = None) -> int:
    return len(stored_values(state, backends, "SELECT key FROM llama_stack_judge_replies"))


def test_a_job_killed_while_judging_makes_no_judgment_twice(tmp_path: Path, storage: Backends) -> None:
    run_yaml, log = _stack(tmp_path, storage)
    state = tmp_path / "state"
    rows = [{"input_query": f"JUDGE-SLOW question {i}", "expected_answer": "x"} for i in range(16)]
    process, client = start_server(run_yaml)
    try:
        benchmark_id = register_benchmark(client, rows, ["judge::helpfulness-v1"])
        job = client.alpha.eval.run_eval(benchmark_id, benchmark_config=CANDIDATE)
        _kill_once(process, lambda: _stored_judgments(state, storage) >= 8)  # the judge answers 8 at a time, 1 s each
    finally:
        if process.poll() is None:
            process.kill()
    stored = _stored_judgments(state, storage)
    judged_before, generated_before = len(_calls(log, "judge")), len(_calls(log, "candidate"))
    assert 8 <= stored < 16 and generated_before == 16
    result = _restart_and_finish(run_yaml, benchmark_id, job.job_id)
    assert len(_calls(log, "candidate")) == generated_before  # every answer was kept
    assert len(_calls(log, "judge")) - judged_before == 16 - stored  # no stored judgment was made again
    assert [row["score"] for row in result.scores["judge::helpfulness-v1"].score_rows] == [6.0] * 16


def test_job_requests_that_cannot_be_served_are_clear_4xx(tmp_path: Path) -> None:
    run_yaml, _ = _stack(tmp_path)
    process, client = start_server(run_yaml)
    try:
        client.alpha.benchmarks.register(
            benchmark_id="no-data",
            dataset_id="missing-ds",
            scoring_functions=["judge::subset_of"],
            provider_id="judge-eval",
        )
        with pytest.raises(APIStatusError) as missing:
            client.alpha.eval.run_eval("no-data", benchmark_config=CANDIDATE)
        assert 400 <= missing.value.status_code < 500 and "missing-ds" in str(missing.value)
        with not_found("no eval job nope for benchmark mt-bench"):
            client.alpha.eval.jobs.status("nope", benchmark_id="mt-bench")
        benchmark_id = register_benchmark(
            client, [{"input_query": "What is 2+2?", "expected_answer": "5"}], ["judge::subset_of"]
        )
        job = client.alpha.eval.run_eval(benchmark_id, benchmark_config=CANDIDATE)
        assert wait_for_job(client, benchmark_id, job.job_id, {"completed"}) == "completed"
        for _ in range(2):  # cancelling a finished job, twice, changes nothing
            client.alpha.eval.jobs.cancel(job.job_id, benchmark_id=benchmark_id)
        assert str(client.alpha.eval.jobs.status(job.job_id, benchmark_id=benchmark_id).status) == "completed"
        assert client.models.list()  # and the server keeps serving
    finally:
        stop_server(process)


def test_a_job_judged_in_pages_reports_what_one_call_over_all_rows_would(tmp_path: Path) -> None:
    run_yaml, log = _stack(tmp_path, page_rows=3)
    questions = ["What is the capital of France?", "What is 2+2?", "Name a colour."]
    rows = [
        {"input_query": questions[i % 3], "expected_answer": "Paris", "category": "abc"[i % 2 + i // 7]}
        for i in range(10)
    ]
    functions = ["judge::subset_of", "judge::helpfulness-v1", "judge::response_assessment.rating"]
    options = {"group_by": ["category"], "seed": 3}
    process, client = start_server(run_yaml)
    try:
        benchmark_id = register_benchmark(client, rows, functions, judge_options=options)
        job = client.alpha.eval.run_eval(benchmark_id, benchmark_config=CANDIDATE)
        assert wait_for_job(client, benchmark_id, job.job_id, {"completed", "failed"}) == "completed"
        result = client.alpha.eval.jobs.retrieve(job.job_id, benchmark_id=benchmark_id)
        one_call = client.scoring.score(
            input_rows=[row | generation for row, generation in zip(rows, result.generations, strict=True)],
            scoring_functions=dict.fromkeys(functions),
            extra_headers=JudgeOptions(**options).headers(),
        ).results
    finally:
        stop_server(process)
    assert len(_calls(log, "candidate")) == 10  # every row answered once, in four pages
    assert [g["generated_answer"] for g in result.generations[:3]] == [
        "The capital of France is Paris.", "2+2 is 5.", "Fine. Rating: [[5]]"
    ]  # fmt: skip
    for fn in functions:
        paged = {k: v for k, v in result.scores[fn].aggregated_results.items() if k != "usage"}
        whole = {k: v for k, v in one_call[fn].aggregated_results.items() if k != "usage"}
        assert paged == whole, fn
        assert result.scores[fn].score_rows == one_call[fn].score_rows, fn
    assert result.scores["judge::helpfulness-v1"].aggregated_results["average"]["by_group"]["category"].keys() == {
        "a",
        "b",
        "c",
    }


def test_a_job_waits_out_a_judge_that_is_gone_for_30_s(tmp_path: Path) -> None:
    port = free_port()
    providers = with_endpoint(f"http://127.0.0.1:{port}/v1")
    providers["scoring"][0]["config"] |= {"default_judge_model": "endpoint/judge", "max_retries": 3}
    rows = [{"input_query": f"What is the capital of France? ({i})", "expected_answer": "Paris"} for i in range(12)]
    function = "judge::helpfulness-v1"
    process = None
    try:
        # Slow enough (0.5 s a judgment, 2 at a time) that the 12 rows cannot all be judged before it goes away.
        with fake_openai("judge", lambda messages: Fault(delay_s=0.5, then="Rating: [[7]]"), port=port) as first:
            process, client = start_server(run_config_file(tmp_path / "state", providers))
            benchmark_id = register_benchmark(client, rows, [function], judge_options={"max_concurrency": 2})
            job = client.alpha.eval.run_eval(benchmark_id, benchmark_config=CANDIDATE)
            deadline = time.monotonic() + 60
            while len(first.log) < 3:
                assert time.monotonic() < deadline, "the judge was never asked"
                time.sleep(0.05)
        # The judge is gone (connections refused) for 30 s, then back on the same port.
        gone = time.monotonic()
        time.sleep(30)
        assert str(client.alpha.eval.jobs.status(job.job_id, benchmark_id=benchmark_id).status) == "in_progress"
        with fake_openai("judge", lambda messages: "Rating: [[7]]", port=port) as second:
            assert wait_for_job(client, benchmark_id, job.job_id, {"completed", "failed"}) == "completed"
            result = client.alpha.eval.jobs.retrieve(job.job_id, benchmark_id=benchmark_id)
    finally:
        if process is not None:
            stop_server(process)
    assert time.monotonic() - gone >= 30
    scored = result.scores[function].score_rows
    assert [(row["status"], row["score"]) for row in scored] == [("scored", 7.0)] * 12
    assert second.log  # the rest was judged once the judge was back
