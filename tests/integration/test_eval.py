"""Eval through the real stack: benchmarks, background jobs, evaluate_rows, cancel."""

import asyncio
import time
from typing import Any

import pytest

from llama_stack_judge.core.options import JudgeOptions
from tests.stacks import DETAILS, bad_request, not_found, register_benchmark, wait_for_job

pytestmark = pytest.mark.integration

QUESTIONS = [
    {"input_query": "What is the capital of France?", "expected_answer": "Paris"},
    {"input_query": "What is 2+2?", "expected_answer": "4"},
]
FUNCTIONS = ["judge::subset_of", "judge::helpfulness-v1"]
CANDIDATE = {
    "eval_candidate": {"type": "model", "model": "scripted/candidate", "sampling_params": {"max_tokens": 64}},
    "scoring_params": {},
}


def _check_scores(result: Any) -> None:
    assert [g["generated_answer"] for g in result.generations] == ["The capital of France is Paris.", "2+2 is 5."]
    judged = result.scores["judge::helpfulness-v1"]
    assert [row["score"] for row in judged.score_rows] == [9.0, 2.0]
    assert [row["score"] for row in result.scores["judge::subset_of"].score_rows] == [1.0, 0.0]


def test_run_eval_job_status_and_result(client: Any) -> None:
    benchmark_id = register_benchmark(client, QUESTIONS, FUNCTIONS)
    job = client.alpha.eval.run_eval(benchmark_id, benchmark_config=CANDIDATE)
    assert len(job.job_id) == 32  # a uuid, not a counter
    assert wait_for_job(client, benchmark_id, job.job_id, {"completed", "failed"}) == "completed"
    _check_scores(client.alpha.eval.jobs.retrieve(job.job_id, benchmark_id=benchmark_id))


def test_evaluate_rows(client: Any) -> None:
    benchmark_id = register_benchmark(client, QUESTIONS, FUNCTIONS)
    result = client.alpha.eval.evaluate_rows(
        benchmark_id, input_rows=QUESTIONS, scoring_functions=FUNCTIONS, benchmark_config=CANDIDATE
    )
    _check_scores(result)


def test_scoring_params_override_per_function(client: Any) -> None:
    benchmark_id = register_benchmark(client, QUESTIONS, FUNCTIONS)
    config = {
        **CANDIDATE,
        "scoring_params": {
            "judge::helpfulness-v1": {"type": "llm_as_judge", "judge_model": "", "aggregation_functions": ["median"]}
        },
    }
    result = client.alpha.eval.evaluate_rows(
        benchmark_id, input_rows=QUESTIONS, scoring_functions=FUNCTIONS, benchmark_config=config
    )
    assert "average" not in result.scores["judge::helpfulness-v1"].aggregated_results
    counts = {"n_scored": 2, "n_parse_error": 0, "n_inference_error": 0, "n_total": 2}
    assert result.scores["judge::helpfulness-v1"].aggregated_results == {"median": {"median": 5.5} | counts}


def test_judge_options_from_benchmark_metadata_and_request(client: Any) -> None:
    rows = [q | {"category": c} for q, c in zip(QUESTIONS, ["geo", "math"], strict=True)]
    benchmark_id = register_benchmark(
        client, rows, FUNCTIONS, judge_options={"group_by": ["category"], "use_cache": False}
    )
    result = client.alpha.eval.evaluate_rows(
        benchmark_id, input_rows=rows, scoring_functions=FUNCTIONS, benchmark_config=CANDIDATE
    )
    helpfulness = result.scores["judge::helpfulness-v1"].aggregated_results
    assert set(helpfulness) == {"average", "median"}  # one entry per aggregation, each with the group means
    assert set(helpfulness["average"]["by_group"]["category"]) == {"geo", "math"}
    detailed = client.alpha.eval.evaluate_rows(
        benchmark_id, input_rows=rows, scoring_functions=FUNCTIONS, benchmark_config=CANDIDATE, extra_headers=DETAILS
    ).scores["judge::helpfulness-v1"]
    assert detailed.aggregated_results["usage"]["cache_hits"] == 0  # the benchmark's options: no cache
    overlaid = client.alpha.eval.evaluate_rows(
        benchmark_id,
        input_rows=rows,
        scoring_functions=FUNCTIONS,
        benchmark_config=CANDIDATE,
        extra_headers=JudgeOptions(use_cache=True, group_by=("category",), details=True).headers(),
    )
    assert overlaid.scores["judge::helpfulness-v1"].aggregated_results["usage"]["cache_hits"] == 2
    with bad_request("num_samples"):
        client.alpha.eval.evaluate_rows(
            benchmark_id,
            input_rows=rows,
            scoring_functions=FUNCTIONS,
            benchmark_config=CANDIDATE,
            extra_headers={"X-LlamaStack-Provider-Data": '{"judge_options": {"num_samples": 0}}'},
        )


def _skip_if_sync_library(client: Any) -> None:
    from llama_stack.core.library_client import LlamaStackAsLibraryClient

    if isinstance(client, LlamaStackAsLibraryClient):
        pytest.skip(
            "the sync library client waits for every background task after each call (its design); "
            "the async library client covers background jobs in-process"
        )


def test_cancel_stops_a_long_job(client: Any) -> None:
    _skip_if_sync_library(client)
    slow = [{"input_query": f"SLOW question {i}", "expected_answer": "x"} for i in range(12)]
    benchmark_id = register_benchmark(client, slow, ["judge::subset_of"])
    job = client.alpha.eval.run_eval(benchmark_id, benchmark_config=CANDIDATE)
    wait_for_job(client, benchmark_id, job.job_id, {"in_progress"})
    started = time.monotonic()
    client.alpha.eval.jobs.cancel(job.job_id, benchmark_id=benchmark_id)
    assert wait_for_job(client, benchmark_id, job.job_id, {"cancelled", "completed", "failed"}) == "cancelled"
    assert time.monotonic() - started < 5
    partial = client.alpha.eval.jobs.retrieve(job.job_id, benchmark_id=benchmark_id)  # what it judged: nothing yet
    assert (
        partial.generations == []
        and partial.scores["judge::subset_of"].aggregated_results["average"]["partial"]["rows_judged"] == 0
    )
    client.alpha.eval.jobs.cancel(job.job_id, benchmark_id=benchmark_id)  # twice is harmless
    assert client.alpha.eval.jobs.status(job.job_id, benchmark_id=benchmark_id).status == "cancelled"


def test_unknown_job_and_unfinished_result(client: Any) -> None:
    benchmark_id = register_benchmark(client, QUESTIONS, FUNCTIONS)
    with not_found("no-such-job"):
        client.alpha.eval.jobs.status("no-such-job", benchmark_id=benchmark_id)
    _skip_if_sync_library(client)
    slow = [{"input_query": "SLOW single", "expected_answer": "x"}]
    slow_id = register_benchmark(client, slow, ["judge::subset_of"])
    job = client.alpha.eval.run_eval(slow_id, benchmark_config=CANDIDATE)
    with bad_request("result is ready once completed"):
        client.alpha.eval.jobs.retrieve(job.job_id, benchmark_id=slow_id)
    assert wait_for_job(client, slow_id, job.job_id, {"completed", "failed"}) == "completed"


def test_bad_eval_row_is_a_clear_error(client: Any) -> None:
    benchmark_id = register_benchmark(client, QUESTIONS, FUNCTIONS)
    with bad_request("row 1", "input_query"):
        client.alpha.eval.evaluate_rows(
            benchmark_id,
            input_rows=[QUESTIONS[0], {"question": "?"}],
            scoring_functions=FUNCTIONS,
            benchmark_config=CANDIDATE,
        )


async def test_cancel_in_process_with_the_async_library_client(tmp_path: Any) -> None:
    from llama_stack.core.library_client import AsyncLlamaStackAsLibraryClient

    from tests.stacks import reset_model_listing, run_config_file

    reset_model_listing()
    client = AsyncLlamaStackAsLibraryClient(str(run_config_file(tmp_path / "state")))
    await client.initialize()
    try:
        slow = [{"input_query": f"SLOW question {i}", "expected_answer": "x"} for i in range(12)]
        await client.beta.datasets.register(
            purpose="eval/question-answer", source={"type": "rows", "rows": slow}, dataset_id="slow"
        )
        await client.alpha.benchmarks.register(
            benchmark_id="slow", dataset_id="slow", scoring_functions=["judge::subset_of"], provider_id="judge-eval"
        )
        job = await client.alpha.eval.run_eval("slow", benchmark_config=CANDIDATE)
        await asyncio.sleep(0.5)
        assert (await client.alpha.eval.jobs.status(job.job_id, benchmark_id="slow")).status == "in_progress"
        started = time.monotonic()
        await client.alpha.eval.jobs.cancel(job.job_id, benchmark_id="slow")
        assert (await client.alpha.eval.jobs.status(job.job_id, benchmark_id="slow")).status == "cancelled"
        assert time.monotonic() - started < 5
    finally:
        await client.shutdown()


def test_failed_job_reports_its_reason(client: Any) -> None:
    benchmark_id = register_benchmark(
        client, [{"input_query": "BREAK-THE-JUDGE now", "expected_answer": "x"}], FUNCTIONS
    )
    job = client.alpha.eval.run_eval(benchmark_id, benchmark_config=CANDIDATE)
    assert wait_for_job(client, benchmark_id, job.job_id, {"completed", "failed"}) == "failed"
    with bad_request("failed", "scripted failure"):
        client.alpha.eval.jobs.retrieve(job.job_id, benchmark_id=benchmark_id)
