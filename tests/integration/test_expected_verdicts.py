"""Expected verdicts through the stack: the scripted judge returns log probabilities at its verdict, and the
stack's inference router carries them from the provider to our scoring provider."""

import json
import time
from pathlib import Path
from typing import Any

import pytest

from llama_stack_judge.core.options import JudgeOptions
from tests.fake_openai import fake_openai
from tests.stacks import run_config_file, served_client, with_endpoint

pytestmark = pytest.mark.integration

HELPFULNESS = "judge::helpfulness-v1"
PAIRWISE = "judge::response_assessment.pairwise_comparison"
HESITANT = {"input_query": "Which?", "generated_answer": "HESITANT"}
PARIS = {"input_query": "What is the capital of France?", "generated_answer": "Paris"}


def _score(client: Any, function: str, rows: list[dict[str, Any]], params: Any = None, **options: Any) -> Any:
    headers = JudgeOptions(details=True, **options).headers()  # the tests read usage and judges
    result = client.scoring.score(input_rows=rows, scoring_functions={function: params}, extra_headers=headers)
    return result.results[function]


def test_a_rating_is_weighted_by_the_judges_probabilities(client: Any) -> None:
    expected = _score(client, HELPFULNESS, [HESITANT, PARIS], verdict_weighting="expected", use_cache=False)
    hesitant, paris = expected.score_rows
    # ln 0.5 on "8" and on "9": 0.5·8 + 0.5·9
    assert hesitant["score"] == pytest.approx(8.5) and hesitant["verdict"] == "8"
    assert hesitant["verdict_distribution"] == {"probabilities": {"8": 0.5, "9": 0.5}, "mass": 1.0}
    # A judge sure of its verdict (no alternatives) scores it as written.
    assert paris["score"] == 9.0 and paris["verdict_distribution"]["probabilities"] == {"9": 1.0}
    assert expected.aggregated_results["usage"]["expected_verdict_fallbacks"] == 0
    assert expected.aggregated_results["judges"][HELPFULNESS]["verdict_weighting"] == "expected"

    sampled = _score(client, HELPFULNESS, [HESITANT], use_cache=False)
    assert sampled.score_rows[0]["score"] == 8.0 and "verdict_distribution" not in sampled.score_rows[0]


def test_a_model_without_logprobs_falls_back_to_the_written_verdict_and_says_so(client: Any) -> None:
    params = {"type": "llm_as_judge", "judge_model": "scripted/judge-plain"}
    result = _score(client, HELPFULNESS, [HESITANT, PARIS], params, verdict_weighting="expected", use_cache=False)
    assert [row["score"] for row in result.score_rows] == [8.0, 9.0]
    assert {row["verdict_distribution_fallback"] for row in result.score_rows} == {
        "the inference provider returned no log probabilities"
    }
    assert result.aggregated_results["usage"]["expected_verdict_fallbacks"] == 2


def test_pairwise_probabilities_are_combined_over_both_orders(client: Any) -> None:
    rows = [{"question": "Which is better?", "response_a": "GOOD answer", "response_b": "weak answer"}]
    [row] = _score(client, PAIRWISE, rows, verdict_weighting="expected", use_cache=False).score_rows
    # Each order: the GOOD side 0.8, the other 0.1, tie 0.1. model_a wins with (0.8 + 0.8) / 2.
    assert row["winner_probabilities"] == {"model_a": 0.8, "model_b": 0.1, "tie": 0.1}
    assert row["score"] == pytest.approx(0.8 + 0.5 * 0.1)
    assert row["winner"] == "model_a"
    assert [order["verdict_distribution"]["probabilities"] for order in row["orders"]] == [
        {"A": 0.8, "B": 0.1, "C": 0.1},
        {"B": 0.8, "A": 0.1, "C": 0.1},
    ]


def test_expected_weighting_of_a_judge_that_cannot_have_it_is_refused(client: Any) -> None:
    from tests.stacks import bad_request

    with bad_request("verdict_weighting 'expected'"):
        _score(client, HELPFULNESS, [PARIS], verdict_weighting="expected", structured_output=True)


def test_mt_bench_judgments_keep_the_written_verdict_and_the_distribution(tmp_path: Path) -> None:
    from llama_stack_judge.mtbench.questions import data_file
    from tests.integration.test_cli import _run

    state = tmp_path / "state"
    run_yaml = run_config_file(state)
    answers = tmp_path / "answers.jsonl"
    answers.write_text(
        json.dumps({"question_id": 81, "model_id": "m", "choices": [{"turns": ["HESITANT SCORE=8"]}]}) + "\n"
    )
    done = _run(
        "mt-bench", "single", "--answers", str(answers), "--question-ids", "81", "--turns", "1",
        "--questions", str(data_file("question.jsonl")), "--stack-config", str(run_yaml),
        "--verdict-weighting", "expected", "--output", str(tmp_path / "out"), "--state-dir", str(state),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [judgment] = [json.loads(line) for line in (tmp_path / "out" / "judgments.jsonl").read_text().splitlines()]
    assert judgment["verdict"] == "8" and judgment["score"] == 8.0
    # The scripted MT-bench rule gives no alternatives: the distribution is all on the written verdict.
    assert judgment["verdict_distribution"] == {"probabilities": {"8": 1.0}, "mass": 1.0}


def test_a_judge_that_refuses_log_probabilities_is_asked_once_then_read_as_written(tmp_path: Path) -> None:
    """llama-cpp-python's server without logits_all answers 500 to logprobs: not a transient fault to retry for a
    minute, but a reason to ask without them, with the written verdict counted as a fallback."""
    refusal = "logprobs is not supported for models created with logits_all=False"
    rows = [PARIS | {"input_query": f"What is the capital of France? ({i})"} for i in range(4)]
    with fake_openai("judge", lambda messages: "Rating: [[7]]", refuse_logprobs=refusal) as judge:
        providers = with_endpoint(judge.url)
        providers["scoring"][0]["config"] |= {"default_judge_model": "endpoint/judge", "retry_for_s": 60}
        with served_client(run_config_file(tmp_path / "state", providers)) as client:
            started = time.monotonic()
            result = _score(client, HELPFULNESS, rows, verdict_weighting="expected", max_concurrency=1)
            took = time.monotonic() - started
    assert [(row["status"], row["score"]) for row in result.score_rows] == [("scored", 7.0)] * 4
    assert {row["verdict_distribution_fallback"] for row in result.score_rows} == {
        "the judge model endpoint/judge refuses log probabilities"
    }
    usage = result.aggregated_results["usage"]
    assert usage["expected_verdict_fallbacks"] == 4 and usage["inference_calls"] == 5 and usage["retries"] == 0
    # One of our calls asked for them (the stack's OpenAI client itself retries a 500 twice), then none did.
    asked = [bool(request.get("logprobs")) for request in judge.log]
    assert asked == [True] * (len(asked) - 4) + [False] * 4 and len(asked) <= 7
    assert took < 10  # retried as a transient 500, the first row alone took the whole 60 s budget
