"""Aggregated results in the Scoring API's shape: one entry per aggregation, each with its counts."""

from llama_stack_judge.core.aggregate import AGGREGATION_KEY, Statistics, aggregate, as_reported
from llama_stack_judge.core.definitions import Aggregation
from llama_stack_judge.core.outcomes import Outcome, RowResult

COUNTS = {"n_scored": 2, "n_parse_error": 1, "n_inference_error": 0, "n_total": 3}


def _aggregated() -> dict[str, object]:
    results = [
        RowResult(score=8.0, outcome=Outcome.scored),
        RowResult(score=None, outcome=Outcome.parse_error),
        RowResult(score=6.0, outcome=Outcome.scored),
    ]
    functions = [Aggregation.average, Aggregation.median]
    made = aggregate(results, functions, Statistics(bootstrap_resamples=0), groups={"topic": ["a", "a", "b"]})
    plan = {"functions": ["average", "median"], "failed_score": None}
    return made | {AGGREGATION_KEY: plan, "usage": {"inference_calls": 3}, "judges": {"j": {}}}


def test_each_aggregation_carries_the_counts_and_nothing_stands_beside_them() -> None:
    by_group = {"topic": {"a": {"average": 8.0, "n": 1, "n_total": 2}, "b": {"average": 6.0, "n": 1, "n_total": 1}}}
    assert as_reported(_aggregated(), details=False) == {
        "average": {"average": 7.0, "ci95": None} | COUNTS | {"by_group": by_group},
        "median": {"median": 7.0} | COUNTS | {"by_group": by_group},
    }


def test_details_keep_everything_beside_the_aggregations() -> None:
    aggregated = _aggregated()
    assert as_reported(aggregated, details=True) == aggregated
    assert as_reported({"average": 5.0, "partial": {"rows_judged": 1}} | COUNTS, details=False) == {
        "average": {"average": 5.0, "partial": {"rows_judged": 1}} | COUNTS  # another provider's bare value, no plan
    }
