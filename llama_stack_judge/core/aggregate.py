"""Aggregations over row results: pure functions over scored rows, with failures counted, never averaged in."""

import statistics
from collections import Counter
from collections.abc import Callable, Sequence

from llama_stack_judge.core.definitions import Aggregation
from llama_stack_judge.core.outcomes import Outcome, RowResult

AggregateValue = dict[str, object]


def _scores(results: Sequence[RowResult]) -> list[float]:
    return [r.score for r in results if r.outcome is Outcome.scored and r.score is not None]


def average(results: Sequence[RowResult]) -> AggregateValue:
    """Mean score of the scored rows; ``None`` when no row was scored."""
    scores = _scores(results)
    return {"average": statistics.fmean(scores) if scores else None}


def median(results: Sequence[RowResult]) -> AggregateValue:
    """Median score of the scored rows; ``None`` when no row was scored."""
    scores = _scores(results)
    return {"median": statistics.median(scores) if scores else None}


def accuracy(results: Sequence[RowResult]) -> AggregateValue:
    """Share of correct rows, for 0/1 scores: the mean score over scored rows."""
    scores = _scores(results)
    return {
        "accuracy": statistics.fmean(scores) if scores else None,
        "num_correct": sum(scores),
        "num_total": len(scores),
    }


def categorical_count(results: Sequence[RowResult]) -> AggregateValue:
    """How often each verdict (or score, for scorers without verdict labels) occurs among scored rows."""
    labels = Counter(
        r.verdict if r.verdict is not None else str(r.score) for r in results if r.outcome is Outcome.scored
    )
    return {"categorical_count": dict(sorted(labels.items()))}


AGGREGATIONS: dict[Aggregation, Callable[[Sequence[RowResult]], AggregateValue]] = {
    Aggregation.average: average,
    Aggregation.median: median,
    Aggregation.accuracy: accuracy,
    Aggregation.categorical_count: categorical_count,
}


def outcome_counts(results: Sequence[RowResult]) -> dict[str, int]:
    """``n_scored``, ``n_parse_error``, ``n_inference_error`` and ``n_total``."""
    counts = Counter(r.outcome for r in results)
    return {f"n_{outcome.value}": counts[outcome] for outcome in Outcome} | {"n_total": len(results)}


def aggregate(results: Sequence[RowResult], functions: Sequence[Aggregation]) -> dict[str, object]:
    """Every requested aggregation, keyed by name, plus the outcome counts."""
    aggregated: dict[str, object] = {name.value: AGGREGATIONS[name](results) for name in functions}
    return aggregated | outcome_counts(results)
