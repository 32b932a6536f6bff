"""Scoring through the real stack: our provider loaded from YAML, called with llama_stack_client."""

import uuid
from typing import Any

import pytest

from tests.stacks import DETAILS, bad_request, register_judge

pytestmark = pytest.mark.integration

PARIS = {"input_query": "What is the capital of France?", "generated_answer": "Paris", "expected_answer": "Paris"}
WRONG = {"input_query": "What is 2+2?", "generated_answer": "2+2 is 5", "expected_answer": "4"}


def _unique(name: str) -> str:
    return f"test::{name}-{uuid.uuid4().hex[:8]}"


def test_lists_builtin_and_shipped_functions(client: Any) -> None:
    functions = {fn.identifier: fn for fn in client.scoring_functions.list()}
    assert {"judge::subset_of", "judge::helpfulness-v1", "judge::correctness-v1"} <= set(functions)
    helpfulness = functions["judge::helpfulness-v1"]
    assert helpfulness.params.type == "llm_as_judge"
    assert "{generated_answer}" in helpfulness.params.prompt_template
    assert helpfulness.metadata["definition"]["verdict"] == {
        "type": "rating",
        "patterns": [r"\[\[\s*(\d+(?:\.\d+)?)\s*\]\]"],
        "min": 1.0,
        "max": 10.0,
    }
    assert functions["judge::subset_of"].params.type == "basic"


def test_subset_of_scores_containment(client: Any) -> None:
    rows = [PARIS, {"expected_answer": "4", "generated_answer": "It is 5"}]
    result = client.scoring.score(input_rows=rows, scoring_functions={"judge::subset_of": None}).results
    subset = result["judge::subset_of"]
    assert [row["score"] for row in subset.score_rows] == [1.0, 0.0]
    counts = {"n_scored": 2, "n_parse_error": 0, "n_inference_error": 0, "n_total": 2}
    assert subset.aggregated_results == {"accuracy": {"accuracy": 0.5, "num_correct": 1.0, "num_total": 2} | counts}


def test_judge_scores_are_numbers_with_feedback(client: Any) -> None:
    result = client.scoring.score(input_rows=[PARIS, WRONG], scoring_functions={"judge::helpfulness-v1": None})
    judged = result.results["judge::helpfulness-v1"]
    assert [row["score"] for row in judged.score_rows] == [9.0, 2.0]
    assert [row["status"] for row in judged.score_rows] == ["scored", "scored"]
    assert judged.score_rows[0]["judge_feedback"] == "The answer names Paris, which is correct. Rating: [[9]]"
    counts = {"n_scored": 2, "n_parse_error": 0, "n_inference_error": 0, "n_total": 2}
    assert judged.aggregated_results["average"] == {"average": 5.5, "ci95": [2.0, 9.0]} | counts
    assert judged.aggregated_results["median"] == {"median": 5.5} | counts


def test_failures_are_counted_not_scored(client: Any) -> None:
    rows = [
        PARIS,
        {"input_query": "q", "generated_answer": "UNPARSEABLE"},
        {"input_query": "q", "generated_answer": "BREAK-THE-JUDGE"},
    ]
    judged = client.scoring.score(input_rows=rows, scoring_functions={"judge::helpfulness-v1": None}).results[
        "judge::helpfulness-v1"
    ]
    statuses = [row["status"] for row in judged.score_rows]
    assert statuses == ["scored", "parse_error", "inference_error"]
    assert judged.score_rows[1]["score"] is None and judged.score_rows[1]["judge_feedback"] == "I cannot decide."
    assert "scripted failure" in judged.score_rows[2]["error"]
    # One entry per aggregation (the Scoring API's shape), each with the row counts it was made over.
    counts = {"n_scored": 1, "n_parse_error": 1, "n_inference_error": 1, "n_total": 3}
    assert judged.aggregated_results == {
        "average": {"average": 9.0, "ci95": None} | counts,
        "median": {"median": 9.0} | counts,
    }


def test_choice_judge_maps_labels_to_scores(client: Any) -> None:
    correctness = "judge::correctness-v1"
    override = {
        "type": "llm_as_judge",
        "judge_model": "",
        "prompt_template": "Answer: {generated_answer}\nReference: {expected_answer}",
    }
    client_rows = [PARIS, WRONG]
    # The scripted judge says "Rating: [[9]]" / "[[2]]": neither is a CORRECT/INCORRECT label.
    result = client.scoring.score(input_rows=client_rows, scoring_functions={correctness: override})
    rows = result.results[correctness].score_rows
    assert [row["status"] for row in rows] == ["parse_error", "parse_error"]
    assert result.results[correctness].aggregated_results["accuracy"]["accuracy"] is None


def test_register_score_unregister(client: Any) -> None:
    fn_id = _unique("strict")
    register_judge(
        client,
        fn_id,
        {
            "judge_model": "scripted/judge",
            "prompt_template": "Question: {input_query}\nAnswer: {generated_answer}",
            "judge_score_regexes": [r"Rating: \[\[(\d+)\]\]"],
            "aggregation_functions": ["average"],
        },
    )
    assert client.scoring_functions.retrieve(fn_id).params.judge_model == "scripted/judge"
    judged = client.scoring.score(input_rows=[PARIS, WRONG], scoring_functions={fn_id: None}).results[fn_id]
    assert [row["score"] for row in judged.score_rows] == [9.0, 2.0]
    client.scoring_functions.unregister(fn_id)
    assert fn_id not in {fn.identifier for fn in client.scoring_functions.list()}
    with bad_request(fn_id):
        client.scoring.score(input_rows=[PARIS], scoring_functions={fn_id: None})


def test_register_on_a_shipped_base_keeps_its_range(client: Any) -> None:
    fn_id = _unique("based")
    register_judge(client, fn_id, {"judge_model": "scripted/judge"}, provider_scoring_fn_id="judge::helpfulness-v1")
    judged = client.scoring.score(input_rows=[PARIS], scoring_functions={fn_id: None}).results[fn_id]
    assert judged.score_rows[0]["score"] == 9.0
    assert set(judged.aggregated_results) >= {"average", "median"}  # the base's aggregations
    client.scoring_functions.unregister(fn_id)


def test_per_call_override_leaves_registered_definition(client: Any) -> None:
    fn_id = "judge::helpfulness-v1"
    before = client.scoring_functions.retrieve(fn_id)
    override = {
        "type": "llm_as_judge",
        "judge_model": "scripted/judge",
        "prompt_template": "Just say something about {generated_answer}",
        "judge_score_regexes": [r"Rating: \[\[(\d+)\]\]"],
        "aggregation_functions": ["median"],
    }
    overridden = client.scoring.score(
        input_rows=[PARIS], scoring_functions={fn_id: override}, extra_headers=DETAILS
    ).results[fn_id]
    # Without "Answer: " in the prompt no verdict rule matches: the default reply rates 5.
    assert overridden.score_rows[0]["score"] == 5.0
    assert set(overridden.aggregated_results) == {
        *("median", "n_scored", "n_parse_error", "n_inference_error", "n_total", "usage", "aggregation", "judges")
    }
    assert overridden.aggregated_results["aggregation"] == {"functions": ["median"], "failed_score": None}
    after = client.scoring_functions.retrieve(fn_id)
    assert after.params == before.params
    again = client.scoring.score(input_rows=[PARIS], scoring_functions={fn_id: None}, extra_headers=DETAILS).results[
        fn_id
    ]
    assert again.score_rows[0]["score"] == 9.0
    # What produced each result is stated: the override is another judge (another content hash), same model.
    judged_by, overridden_by = again.aggregated_results["judges"][fn_id], overridden.aggregated_results["judges"][fn_id]
    assert judged_by["content_hash"] != overridden_by["content_hash"]
    assert judged_by["judge_model"] == overridden_by["judge_model"] == "scripted/judge"


def test_score_batch_on_registered_dataset(client: Any) -> None:
    dataset_id = f"ds-{uuid.uuid4().hex[:8]}"
    client.beta.datasets.register(
        purpose="eval/question-answer",
        source={"type": "rows", "rows": [PARIS, WRONG, PARIS]},
        dataset_id=dataset_id,
    )
    response = client.scoring.score_batch(
        dataset_id=dataset_id,
        scoring_functions={"judge::helpfulness-v1": None, "judge::subset_of": None},
        save_results_dataset=False,
    )
    assert [row["score"] for row in response.results["judge::helpfulness-v1"].score_rows] == [9.0, 2.0, 9.0]
    assert response.results["judge::subset_of"].aggregated_results["accuracy"]["num_correct"] == 2.0


def test_unknown_function_is_a_clear_error(client: Any) -> None:
    with bad_request("judge::no-such-fn"):
        client.scoring.score(input_rows=[PARIS], scoring_functions={"judge::no-such-fn": None})
    assert client.scoring.score(input_rows=[PARIS], scoring_functions={"judge::subset_of": None}).results


def test_missing_column_names_row_and_column(client: Any) -> None:
    rows = [PARIS, {"input_query": "only a question"}]
    with bad_request("row 1", "generated_answer"):
        client.scoring.score(input_rows=rows, scoring_functions={"judge::helpfulness-v1": None})
    with bad_request("row 1", "expected_answer"):
        client.scoring.score(
            input_rows=[PARIS, {"generated_answer": "x"}], scoring_functions={"judge::subset_of": None}
        )


def test_unknown_judge_model_is_a_clear_error(client: Any) -> None:
    override = {"type": "llm_as_judge", "judge_model": "nowhere/model"}
    with bad_request("nowhere/model"):
        client.scoring.score(input_rows=[PARIS], scoring_functions={"judge::helpfulness-v1": override})
    with bad_request("nowhere/model"):
        register_judge(
            client, _unique("ghost"), {"judge_model": "nowhere/model", "prompt_template": "{generated_answer}"}
        )


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"prompt_template": "{row.__class__}"}, "{row.__class__}"),
        ({"prompt_template": "{0}"}, "{0}"),
        ({"prompt_template": "unclosed {"}, "malformed template"),
        ({"prompt_template": "{x}", "judge_score_regexes": ["(unclosed"]}, "does not compile"),
        ({"prompt_template": "{x}", "judge_score_regexes": [r"\d+"]}, "exactly one capture group"),
        ({"prompt_template": "{x}", "aggregation_functions": ["weighted_average"]}, "weighted_average"),
    ],
)
def test_invalid_registrations_are_refused(client: Any, params: dict[str, Any], fragment: str) -> None:
    fn_id = _unique("invalid")
    with bad_request(fragment):
        register_judge(client, fn_id, {"judge_model": "scripted/judge", **params})
    assert fn_id not in {fn.identifier for fn in client.scoring_functions.list()}


def test_shipped_id_cannot_be_taken(client: Any) -> None:
    with bad_request("judge::helpfulness-v1"):
        register_judge(
            client, "judge::helpfulness-v1", {"judge_model": "scripted/judge", "prompt_template": "{x} [[10]]"}
        )
    assert client.scoring_functions.retrieve("judge::helpfulness-v1").description.startswith("Rates how helpful")
