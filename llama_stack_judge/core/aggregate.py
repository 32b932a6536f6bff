"""Aggregations over row results: failures are counted, and averaged in only as the policy says."""

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llama_stack_judge.core.definitions import Aggregation
from llama_stack_judge.core.outcomes import Outcome, RowResult
from llama_stack_judge.core.pairwise import first_position_win_rate, position_consistency
from llama_stack_judge.core.rows import Row
from llama_stack_judge.core.stats import bootstrap_ci, group_means, mean, win_rate
from llama_stack_judge.core.stats import median as median_of
from llama_stack_judge.errors import input_problems

AggregateValue = dict[str, object]
AGGREGATION_KEY = "aggregation"  # of aggregated results: the aggregations made and what a failed row counted as
JUDGE_CARD_KEY = "judge_card"  # of aggregated results: the filed card of the judges that made them, if any
JUDGES_KEY = "judges"  # of aggregated results: each judge's model, definition hash, verdict mode and sampling
PANEL_KEY = "panel"  # of aggregated results: a judge panel's members, their own aggregates and agreement


@dataclass(frozen=True, slots=True)
class Statistics:
    """How to aggregate: what a failed row counts as, and the bootstrap settings."""

    failed_score: float | None = None  # None: failures are left out (and counted); else they count as this score
    bootstrap_resamples: int = 1000
    seed: int = 0

    def scores(self, results: Sequence[RowResult]) -> list[float | None]:
        """Each row's score for statistics: its score, the failed score, or ``None`` when it is left out."""
        return [r.score if r.outcome is Outcome.scored else self.failed_score for r in results]

    def ci95(self, values: Sequence[float]) -> list[float] | None:
        """The seeded bootstrap 95 % interval of the mean, as ``[low, high]``."""
        interval = bootstrap_ci(values, resamples=self.bootstrap_resamples, seed=self.seed)
        return None if interval is None else list(interval)


def _present(scores: Sequence[float | None]) -> list[float]:
    return [s for s in scores if s is not None]


def average(results: Sequence[RowResult], stats: Statistics) -> AggregateValue:
    """Mean score and its bootstrap 95 % interval; ``None`` when no row counts."""
    scores = _present(stats.scores(results))
    return {"average": mean(scores), "ci95": stats.ci95(scores)}


def median(results: Sequence[RowResult], stats: Statistics) -> AggregateValue:
    """Median score; ``None`` when no row counts."""
    scores = _present(stats.scores(results))
    return {"median": median_of(scores)}


def _total(scores: Sequence[float]) -> float | None:
    try:
        return math.fsum(scores)
    except OverflowError:  # only scores far from 0/1 can get here; no count to report
        return None


def accuracy(results: Sequence[RowResult], stats: Statistics) -> AggregateValue:
    """Share of correct rows, for 0/1 scores."""
    scores = _present(stats.scores(results))
    return {
        "accuracy": mean(scores),
        "num_correct": _total(scores),
        "num_total": len(scores),
    }


def categorical_count(results: Sequence[RowResult], stats: Statistics) -> AggregateValue:
    """How often each verdict (or score, for scorers without verdict labels) occurs among scored rows."""
    labels = Counter(
        r.verdict if r.verdict is not None else str(r.score) for r in results if r.outcome is Outcome.scored
    )
    return {"categorical_count": dict(sorted(labels.items()))}


def win_rate_of(results: Sequence[RowResult], stats: Statistics) -> AggregateValue:
    """Wins, losses, ties and the win rate (ties count half) with its bootstrap 95 % interval."""
    scores = _present(stats.scores(results))
    return win_rate(scores) | {"ci95": stats.ci95(scores)}


def position_bias(results: Sequence[RowResult], stats: Statistics | None = None) -> dict[str, object]:
    """Position consistency (share of pairs whose winner survives the swap) and how often the first position wins.

    Both are over judgments that produced a verdict; ``None`` when there are none.
    """
    orders = [r.details.get("orders") for r in results if r.details]
    pairs = [o for o in orders if isinstance(o, list) and all(order["status"] == "scored" for order in o)]
    verdicts = [order["verdict"] for o in orders if isinstance(o, list) for order in o if order["status"] == "scored"]
    return {
        "position_consistency": position_consistency((o[0]["verdict"], o[1]["verdict"]) for o in pairs if len(o) == 2),
        "first_position_win_rate": first_position_win_rate(verdicts),
        "n_pairs_both_orders": len(pairs),
    }


def turn_average(results: Sequence[RowResult], stats: Statistics) -> AggregateValue:
    """Mean score per turn over every turn judgment (a row judged turn by turn counts once per turn).

    Failed turn judgments are counted in ``n_total`` and left out of the mean.
    """
    by_turn: dict[str, list[float | None]] = {}
    for result in results:
        details = result.details or {}
        turns = details.get("turns")
        entries = turns if isinstance(turns, list) else [{"turn": details.get("turn"), "score": result.score}]
        for entry in entries:
            score = entry.get("score")
            by_turn.setdefault(str(entry.get("turn")), []).append(score if isinstance(score, float) else None)
    keys = [turn for turn, scores in by_turn.items() for _ in scores]
    scores = [score for turn_scores in by_turn.values() for score in turn_scores]
    return {"turn_average": group_means(keys, scores)}


AGGREGATIONS: dict[Aggregation, Callable[[Sequence[RowResult], Statistics], AggregateValue]] = {
    Aggregation.average: average,
    Aggregation.median: median,
    Aggregation.accuracy: accuracy,
    Aggregation.categorical_count: categorical_count,
    Aggregation.win_rate: win_rate_of,
    Aggregation.position_bias: position_bias,
    Aggregation.turn_average: turn_average,
}


def outcome_counts(results: Sequence[RowResult]) -> dict[str, int]:
    """``n_scored``, ``n_parse_error``, ``n_inference_error`` and ``n_total``."""
    counts = Counter(r.outcome for r in results)
    return {f"n_{outcome.value}": counts[outcome] for outcome in Outcome} | {"n_total": len(results)}


def group_keys(rows: Sequence[Row], fields: Sequence[str]) -> dict[str, list[object]]:
    """Each ``group_by`` field's value in every row; raises ``JudgeInputError`` naming rows that lack one."""
    missing = [
        f"row {i}: missing group_by field '{name}'" for name in fields for i, row in enumerate(rows) if name not in row
    ]
    if missing:
        raise input_problems(missing)
    return {name: [row[name] for row in rows] for name in fields}


def aggregate(
    results: Sequence[RowResult],
    functions: Sequence[Aggregation],
    stats: Statistics | None = None,
    *,
    groups: Mapping[str, Sequence[object]] | None = None,
) -> dict[str, object]:
    """Every requested aggregation keyed by name, the outcome counts, and per-group means when asked."""
    stats = stats or Statistics()
    aggregated: dict[str, object] = {name.value: AGGREGATIONS[name](results, stats) for name in functions}
    if groups:
        scores = stats.scores(results)
        aggregated["by_group"] = {name: group_means(keys, scores) for name, keys in groups.items()}
    return aggregated | outcome_counts(results)


# What every aggregation's value carries in the Scoring API's shape: the counts it was computed over, per-group means
# (with group_by), a panel's members and agreement and, for a cancelled job, how much of it was judged.
_CARRIED = ("n_scored", "n_parse_error", "n_inference_error", "n_total", "by_group", PANEL_KEY, "partial")


def as_reported(aggregated: Mapping[str, Any], *, details: bool) -> dict[str, Any]:
    """Aggregated results as a scoring call returns them.

    The Scoring API's clients (and llama-stack's own tests) expect exactly one entry per aggregation function, so by
    default each aggregation's value carries the counts instead of standing beside them; ``details`` keeps everything
    (usage, judges, judge card, plan) at the top level.
    """
    if details:
        return dict(aggregated)
    carried = {key: aggregated[key] for key in _CARRIED if key in aggregated}
    plan = aggregated.get(AGGREGATION_KEY)
    names = plan["functions"] if isinstance(plan, Mapping) else [k for k in aggregated if k in _AGGREGATION_NAMES]
    return {name: _with(aggregated.get(name), name, carried) for name in names}


_AGGREGATION_NAMES = {aggregation.value for aggregation in Aggregation}


def _with(value: object, name: str, carried: Mapping[str, Any]) -> dict[str, Any]:
    own: dict[str, Any] = dict(value) if isinstance(value, Mapping) else {name: value}
    return own | dict(carried)
