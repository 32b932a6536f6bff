"""Judge panels through the real stack: a panel registered with the SDK, its members' verdicts and agreement.

The scripted judges agree on every answer but one: judge-plain rates answers marked DISSENT 1 where the others say 5.
"""

import uuid
from typing import Any

import pytest

from llama_stack_judge.core.options import JudgeOptions
from tests.stacks import bad_request, register_judge

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
