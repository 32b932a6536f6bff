"""Judge panels through the real stack: a panel registered with the SDK, its members' verdicts and agreement.

The scripted judges agree on every answer but one: judge-plain rates answers marked DISSENT 1 where the others say 5.
"""

import uuid
from pathlib import Path
from typing import Any

import pytest

from llama_stack_judge.core.options import JudgeOptions
from tests.stacks import (
    bad_request,
    library_client,
    register_benchmark,
    register_judge,
    run_config_file,
    wait_for_job,
    with_eval_config,
)

pytestmark = pytest.mark.integration

TEMPLATE = "Question: {input_query}\nAnswer: {generated_answer}\nRate it 1-10 as Rating: [[n]]."
ROWS = [
    {"input_query": "What is the capital of France?", "generated_answer": "Paris"},  # all rate 9
    {"input_query": "Why is the sky blue?", "generated_answer": "DISSENT: light scatters"},  # 5, 1, 5
    {"input_query": "What is 2+2?", "generated_answer": "2+2 is 5"},  # all rate 2
]
PANEL = "scripted/judge, scripted/judge-plain, scripted/candidate"


def register_panel(client: Any, judge_model: str) -> str:
    params = {"judge_model": judge_model, "prompt_template": TEMPLATE}
    return register_judge(client, f"test::panel-{uuid.uuid4().hex[:8]}", params, description="a judge panel")


def score(client: Any, fn_id: str, **options: Any) -> Any:
    headers = JudgeOptions(bootstrap_resamples=0, **options).headers()
    return client.scoring.score(input_rows=ROWS, scoring_functions={fn_id: None}, extra_headers=headers).results[fn_id]


def test_a_registered_panel_keeps_every_members_verdict_and_reports_its_agreement(client: Any) -> None:
    fn_id = register_panel(client, PANEL)
    result = score(client, fn_id, details=True)
    assert [row["score"] for row in result.score_rows] == pytest.approx([9, 11 / 3, 2])
    members = result.score_rows[1]["panel"]
    assert [(m["judge_model"], m["score"]) for m in members] == [
        ("scripted/judge", 5),
        ("scripted/judge-plain", 1),
        ("scripted/candidate", 5),
    ]
    panel = result.aggregated_results["panel"]
    assert panel["members"] == ["scripted/judge", "scripted/judge-plain", "scripted/candidate"]
    assert panel["combine"] == "mean"
    assert panel["by_member"]["scripted/judge-plain"]["average"]["average"] == pytest.approx(4)
    agreement = panel["agreement"]
    # By hand: categories 1, 2, 5, 9; rows {9,9,9}, {5,1,5}, {2,2,2}: P = 7/9, P_e = 23/81, kappa = 0.6897.
    assert agreement["fleiss_kappa"] == pytest.approx(0.6897, abs=1e-4)
    # judge and judge-plain agree on 2 of 3 rows, by chance on 2/9: kappa = (2/3 - 2/9) / (7/9) = 4/7.
    assert agreement["cohen_kappa"]["scripted/judge | scripted/judge-plain"] == pytest.approx(4 / 7, abs=1e-4)
    assert agreement["cohen_kappa"]["scripted/judge | scripted/candidate"] == 1.0
    assert agreement["unanimous"] == pytest.approx(2 / 3, abs=1e-4)
    assert set(result.aggregated_results["judges"][fn_id]["panel"]) == set(panel["members"])
    client.scoring_functions.unregister(fn_id)


def test_the_median_and_the_stack_contract(client: Any) -> None:
    """Without details, aggregated results hold one entry per aggregation, and the panel travels inside it."""
    fn_id = register_panel(client, PANEL)
    result = score(client, fn_id, panel_combine="median")
    assert [row["score"] for row in result.score_rows] == [9, 5, 2]
    assert list(result.aggregated_results) == ["average"]
    assert result.aggregated_results["average"]["panel"]["combine"] == "median"
    client.scoring_functions.unregister(fn_id)


def test_escalation_asks_the_stronger_judge_only_where_the_panel_disagrees(client: Any) -> None:
    fn_id = register_panel(client, "scripted/judge, scripted/judge-plain")
    result = score(client, fn_id, details=True, escalate_to="scripted/candidate", escalate_spread=2)
    assert [row["score"] for row in result.score_rows] == [9, 5, 2]  # the DISSENT row: the candidate's 5
    assert [("escalated_to" in row) for row in result.score_rows] == [False, True, False]
    escalation = result.aggregated_results["panel"]["escalation"]
    assert escalation["judge_model"] == "scripted/candidate"
    assert (escalation["rows"], escalation["rows_not_escalated"]) == (1, 2)
    assert escalation["share"] == pytest.approx(1 / 3, abs=1e-4)
    client.scoring_functions.unregister(fn_id)


def test_a_panel_member_the_stack_does_not_serve_is_refused_by_name(client: Any) -> None:
    with bad_request("nowhere/model"):
        register_panel(client, "scripted/judge, nowhere/model")


# A panel of definitions: the shipped helpfulness judge through two models, and a registered variant of it with a
# template the scripted judge has no rule for (it rates every answer 5). Ratings: 9/5/2, 9/1/2 and 5/5/5.
STRICT = "Strict review.\nQuestion: {input_query}\nResponse: {generated_answer}\nRate it 1-10 as [[n]]."


def register_definition_panel(client: Any, strict_id: str, *extra_members: str) -> str:
    members = [
        "judge::helpfulness-v1@scripted/judge",
        "helpfulness-v1@scripted/judge-plain",
        f"{strict_id}@scripted/judge",
    ]
    params = {"judge_model": ", ".join([*members, *extra_members])}
    return register_judge(
        client, f"test::definitions-{uuid.uuid4().hex[:8]}", params, description="a panel of definitions"
    )


def register_strict(client: Any) -> str:
    return register_judge(
        client,
        f"test::strict-{uuid.uuid4().hex[:8]}",
        {"judge_model": "", "prompt_template": STRICT},
        provider_scoring_fn_id="judge::helpfulness-v1",  # keeps its 1-10 scale
    )


def test_a_panel_of_definitions_judges_each_row_with_every_definition_and_its_model(client: Any) -> None:
    strict_id = register_strict(client)
    fn_id = register_definition_panel(client, strict_id)
    result = score(client, fn_id, details=True)
    assert [row["score"] for row in result.score_rows] == pytest.approx([23 / 3, 11 / 3, 3])
    labels = [
        "judge::helpfulness-v1@scripted/judge",
        "judge::helpfulness-v1@scripted/judge-plain",
        f"{strict_id}@scripted/judge",
    ]
    first_row = result.score_rows[0]["panel"]
    assert [(m["judge_model"], m["score"]) for m in first_row] == [(labels[0], 9), (labels[1], 9), (labels[2], 5)]
    panel = result.aggregated_results["panel"]
    assert panel["members"] == labels
    assert panel["by_member"][labels[2]]["average"]["average"] == pytest.approx(5)
    # The strict definition rates every answer 5: no agreement beyond chance with the helpfulness judge.
    assert panel["agreement"]["cohen_kappa"][f"{labels[0]} | {labels[2]}"] == pytest.approx(0)
    assert {"average", "median", "panel", "judges"} <= set(result.aggregated_results)  # the helpfulness judge's
    provenance = result.aggregated_results["judges"][fn_id]["panel"]
    assert list(provenance) == labels
    assert provenance[labels[0]]["content_hash"] != provenance[labels[2]]["content_hash"]
    # Escalation names a definition and its model too; the rows spread by 4 (9/9/5, 5/1/5) go to it, not 2/2/5.
    escalated = score(client, fn_id, details=True, escalate_to=f"{strict_id}@scripted/candidate", escalate_spread=3)
    assert [("escalated_to" in row) for row in escalated.score_rows] == [True, True, False]
    assert [row["score"] for row in escalated.score_rows] == pytest.approx([5, 5, 3])  # the candidate rates 5
    assert escalated.aggregated_results["panel"]["escalation"]["judge_model"] == f"{strict_id}@scripted/candidate"
    with bad_request("only aggregation_functions can be set per call"):
        client.scoring.score(
            input_rows=ROWS, scoring_functions={fn_id: {"type": "llm_as_judge", "judge_model": "scripted/judge"}}
        )
    for registered in (fn_id, strict_id):
        client.scoring_functions.unregister(registered)


@pytest.mark.parametrize(
    ("member", "refusal"),
    [
        ("judge::correctness-v1@scripted/judge", "different scales"),  # choices among ratings
        ("test::unknown@scripted/judge", "no such scoring function"),
        ("judge::helpfulness-v1@nowhere/model", "nowhere/model"),
        ("response_assessment.rating@scripted/judge", "not an LLM judge definition"),
    ],
)
def test_a_panel_of_definitions_is_refused_at_registration_naming_the_bad_member(
    client: Any, member: str, refusal: str
) -> None:
    strict_id = register_strict(client)
    with bad_request(refusal):
        register_definition_panel(client, strict_id, member)
    client.scoring_functions.unregister(strict_id)


def test_an_eval_job_scores_with_a_panel_of_definitions(client: Any) -> None:
    strict_id = register_strict(client)
    fn_id = register_judge(
        client, f"test::definitions-{uuid.uuid4().hex[:8]}", {"judge_model": f"helpfulness-v1, {strict_id}"}
    )
    questions = [{"input_query": "What is the capital of France?"}, {"input_query": "What is 2+2?"}]
    benchmark_id = register_benchmark(client, questions, [fn_id])
    candidate = {"type": "model", "model": "scripted/candidate", "sampling_params": {"max_tokens": 64}}
    job = client.alpha.eval.run_eval(benchmark_id, benchmark_config={"eval_candidate": candidate, "scoring_params": {}})
    assert wait_for_job(client, benchmark_id, job.job_id, {"completed", "failed"}) == "completed"
    rows = client.alpha.eval.jobs.retrieve(job.job_id, benchmark_id=benchmark_id).scores[fn_id].score_rows
    # Both members judge with the provider's default judge model: helpfulness 9 and 2, the strict variant 5 and 5.
    assert [[m["score"] for m in row["panel"]] for row in rows] == [[9, 5], [2, 5]]
    assert [row["score"] for row in rows] == [7, 3.5]
    assert rows[0]["panel"][1]["judge_model"] == f"{strict_id}@scripted/judge"


def test_an_eval_job_in_pages_reports_its_panel_over_every_page(tmp_path: Path) -> None:
    """Pages of 2 rows: the panel report (members' aggregates, agreement, escalation) is made over all 5 rows."""
    with library_client(run_config_file(tmp_path / "state", with_eval_config(page_rows=2))) as client:
        fn_id = register_panel(client, "scripted/judge, scripted/judge-plain")
        questions = [
            {"input_query": "What is the capital of France?"},  # candidate: "...Paris." -> 9 and 9
            {"input_query": "What is 2+2?"},  # "2+2 is 5." -> 2 and 2
            {"input_query": "DISSENT one"},  # "Fine..." -> 5, judge-plain 1
            {"input_query": "DISSENT two"},
            {"input_query": "Anything else"},  # 5 and 5
        ]
        benchmark_id = register_benchmark(client, questions, [fn_id])
        candidate = {"type": "model", "model": "scripted/candidate", "sampling_params": {"max_tokens": 64}}
        config = {"eval_candidate": candidate, "scoring_params": {}}
        options = JudgeOptions(details=True, escalate_to="scripted/candidate", bootstrap_resamples=0)
        job = client.alpha.eval.run_eval(benchmark_id, benchmark_config=config, extra_headers=options.headers())
        assert wait_for_job(client, benchmark_id, job.job_id, {"completed", "failed"}) == "completed"
        result = client.alpha.eval.jobs.retrieve(job.job_id, benchmark_id=benchmark_id).scores[fn_id]
    assert [row["score"] for row in result.score_rows] == [9, 2, 5, 5, 5]  # the DISSENT rows: the candidate's 5
    panel = result.aggregated_results["panel"]
    assert panel["by_member"]["scripted/judge-plain"]["average"]["average"] == pytest.approx((9 + 2 + 1 + 1 + 5) / 5)
    assert panel["agreement"]["n_rows_all_members"] == 5
    assert panel["agreement"]["unanimous"] == pytest.approx(3 / 5)
    escalation = panel["escalation"]
    assert (escalation["rows"], escalation["calls"], escalation["calls_saved"]) == (2, 2, 3)
