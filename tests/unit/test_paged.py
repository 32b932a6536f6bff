"""Aggregates over pages equal those over all rows at once; compact results keep what aggregation needs only."""

from llama_stack_judge.core.aggregate import Statistics, aggregate
from llama_stack_judge.core.definitions import Aggregation
from llama_stack_judge.core.outcomes import Outcome, RowResult, compact_result
from llama_stack_judge.core.paged import PagedScores

ROWS = [
    RowResult(Outcome.scored, score=float(i % 7), verdict=str(i % 7), judge_output="x" * 500) for i in range(23)
] + [RowResult(Outcome.parse_error, judge_output="no verdict", error="no match")]
FUNCTIONS = [Aggregation.average, Aggregation.median, Aggregation.categorical_count]


def test_pages_aggregate_like_one_call() -> None:
    groups = ["a" if i % 3 else "b" for i in range(len(ROWS))]
    plan = {"functions": [f.value for f in FUNCTIONS], "failed_score": 0.0}
    paged = PagedScores()
    for start in range(0, len(ROWS), 5):
        page = ROWS[start : start + 5]
        paged.add_aggregates({"aggregation": plan, "usage": {"inference_calls": len(page)}})
        paged.add_rows([r.as_score_row() for r in page], {"category": groups[start : start + 5]})
    merged = paged.aggregated(bootstrap_resamples=200, seed=4)
    whole = aggregate(ROWS, FUNCTIONS, Statistics(0.0, bootstrap_resamples=200, seed=4), groups={"category": groups})
    assert {k: v for k, v in merged.items() if k not in ("aggregation", "usage")} == whole
    assert merged["usage"] == {"inference_calls": 24} and merged["aggregation"] == plan


def test_pages_judged_apart_merge_plan_usage_judges_and_card() -> None:
    merged_pages = PagedScores()
    card = {"headline": "this judge: ...", "card_id": "c1"}
    plan = {"functions": ["median"], "failed_score": None}
    for page in (  # each page as its worker's scoring call reported it, in any order
        {"aggregation": plan, "usage": {"retries": 2}, "judges": {"j::x": {"judge_model": "m"}}, "judge_card": card},
        {"aggregation": plan, "usage": {"retries": 1}},  # a page whose scoring found no card keeps the one found
    ):
        merged_pages.add_aggregates(page)
    merged_pages.add_rows([{"score": 3.0, "status": "scored"}, {"score": 5.0, "status": "scored"}], {})
    merged = merged_pages.aggregated(bootstrap_resamples=0, seed=0)
    assert merged["median"] == {"median": 4.0} and merged["judge_card"] == card
    assert merged["judges"] == {"j::x": {"judge_model": "m"}}
    assert merged_pages.usage == {"retries": 3}


def test_other_providers_functions_are_averaged_and_counted() -> None:
    paged = PagedScores()
    paged.add_rows([{"score": 1.0}, {"score": 0.0}, {"score": None}], {})
    merged = paged.aggregated(bootstrap_resamples=0, seed=0)
    assert merged["average"]["average"] == 0.5 and (merged["n_scored"], merged["n_parse_error"]) == (2, 1)


def test_compact_results_drop_texts_but_keep_orders_and_turns() -> None:
    row = {
        "score": 1.0, "status": "scored", "verdict": "model_a", "judge_feedback": "long text", "error": None,
        "winner": "model_a", "judge": "pair-v2", "verdict_in_input": ["response_a"],
        "orders": [{"order": "AB", "verdict": "A", "status": "scored", "judge_feedback": "why", "error": None}],
    }  # fmt: skip
    compact = compact_result(row)
    assert compact.outcome is Outcome.scored and compact.score == 1.0 and compact.judge_output is None
    assert compact.details == {"orders": [{"order": "AB", "verdict": "A", "status": "scored"}], "winner": "model_a"}
