"""Summaries of MT-bench judgments, as MT-bench reports them: failures excluded from means and counted."""

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from llama_stack_judge.core.pairwise import INCONSISTENT, WINNER_SCORE, first_position_win_rate, position_consistency
from llama_stack_judge.core.stats import LOSS, TIE, WIN, bootstrap_ci, mean

Judgment = Mapping[str, Any]


def _interval(values: Sequence[float], seed: int) -> list[float] | None:
    interval = bootstrap_ci(values, seed=seed)
    return None if interval is None else list(interval)


def summarize_single(judgments: Iterable[Judgment], *, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Per model: first-turn, second-turn and overall means with a 95 % interval, per-category means, counts."""
    by_model: dict[str, list[Judgment]] = defaultdict(list)
    for judgment in judgments:
        by_model[str(judgment["model"])].append(judgment)
    summary = {}
    for model in sorted(by_model):
        rows = by_model[model]
        scored = [r for r in rows if r["status"] == "scored" and r["score"] is not None]
        categories: dict[str, list[float]] = defaultdict(list)
        for r in scored:
            categories[str(r.get("category"))].append(float(r["score"]))
        overall = [float(r["score"]) for r in scored]
        summary[model] = {
            "turn_1": mean([float(r["score"]) for r in scored if r["turn"] == 1]),
            "turn_2": mean([float(r["score"]) for r in scored if r["turn"] == 2]),
            "overall": mean(overall),
            "ci95": _interval(overall, seed),
            "categories": {category: mean(scores) for category, scores in sorted(categories.items())},
            "n_scored": len(scored),
            "n_failed": len(rows) - len(scored),
            "n_total": len(rows),
        }
    return summary


def _model_scores(judgments: Iterable[Judgment]) -> dict[str, list[float]]:
    """Each model's game results (1 win, ½ tie, 0 loss) over the scored pairwise judgments it took part in."""
    results: dict[str, list[float]] = defaultdict(list)
    for j in judgments:
        if j["status"] != "scored" or j["winner"] is None:
            continue
        a, b = str(j["model_a"]), str(j["model_b"])
        score_a = WINNER_SCORE[j["winner"]]
        results[a].append(score_a)
        results[b].append(1.0 - score_a)
    return results


def summarize_pairwise(judgments: Sequence[Judgment], *, seed: int = 0) -> dict[str, Any]:
    """Per model: wins, losses, ties, win rate (ties = ½) with a 95 % interval; overall position consistency."""
    models: dict[str, Any] = {}
    for model, scores in sorted(_model_scores(judgments).items()):
        models[model] = {
            "wins": scores.count(WIN),
            "losses": scores.count(LOSS),
            "ties": scores.count(TIE),
            "win_rate": mean(scores),
            "ci95": _interval(scores, seed),
            "n_games": len(scores),
        }
    both_orders = [j for j in judgments if j["status"] == "scored"]
    winners = [j["winner"] for j in both_orders]
    verdicts = [v for j in judgments for v in (j.get("verdict_ab"), j.get("verdict_ba")) if v in ("A", "B", "C")]
    return {
        "models": models,
        "position_consistency": position_consistency([(j.get("verdict_ab"), j.get("verdict_ba")) for j in both_orders]),
        "first_position_win_rate": first_position_win_rate(verdicts),
        "inconsistent_ties": winners.count(INCONSISTENT),
        "n_scored": len(both_orders),
        "n_failed": len(judgments) - len(both_orders),
        "n_total": len(judgments),
    }
