"""Judge cards: how well a judge agrees with labels, every figure with its n and a seeded 95 % interval.

Intervals come from a bootstrap over *questions* (all judgments and votes of a question are drawn together), since
judgments of one question are not independent. Pairwise votes are compared as the MT-bench paper does (see
``agreement``): per turn, keyed by question and unordered model pair.
"""

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as scipy_stats

from llama_stack_judge.core.agreement import Key, cohen_kappa, keyed_vote
from llama_stack_judge.core.pairwise import first_position_win_rate, position_consistency

RESAMPLES = 1000
# Label sources of the MT-bench votes, by the prefix of their judge names.
SOURCES = {"experts": "expert", "authors": "author", "gpt4": "gpt4"}
AnswerKey = tuple[str, int, int]  # model, question_id, turn


@dataclass(frozen=True, slots=True)
class Comparison:
    """One label vote next to the judge's verdict (or a rule's) on the same key."""

    question_id: int
    ours: str
    theirs: str


def _estimate[T](
    by_question: Mapping[int, Sequence[T]], statistic: Callable[[list[T]], float | None], *, seed: int
) -> dict[str, Any]:
    """``statistic`` over every item, its n, and its bootstrap interval with questions resampled."""
    questions = sorted(q for q, items in by_question.items() if items)
    items = [item for q in questions for item in by_question[q]]
    value = statistic(items) if items else None
    interval = None
    if value is not None and len(questions) > 1:
        draws = np.random.default_rng(seed).integers(0, len(questions), size=(RESAMPLES, len(questions)))
        values = [statistic([item for i in draw for item in by_question[questions[i]]]) for draw in draws]
        finite = [v for v in values if v is not None and math.isfinite(v)]
        if finite:
            low, high = np.percentile(finite, [2.5, 97.5])
            interval = [float(low), float(high)]
    return {"value": value, "ci95": interval, "n": len(items)}


def _grouped[T](items: Iterable[T], question: Callable[[T], int]) -> dict[int, list[T]]:
    grouped: dict[int, list[T]] = defaultdict(list)
    for item in items:
        grouped[question(item)].append(item)
    return grouped


def _share(comparisons: list[Comparison]) -> float | None:
    return sum(c.ours == c.theirs for c in comparisons) / len(comparisons) if comparisons else None


def _without_ties(comparisons: list[Comparison]) -> list[Comparison]:
    return [c for c in comparisons if "tie" not in (c.ours, c.theirs)]


def agreement_figures(comparisons: Sequence[Comparison], *, seed: int) -> dict[str, Any]:
    """Agreement with and without ties and Cohen's kappa, each with its n and interval."""
    grouped = _grouped(comparisons, lambda c: c.question_id)

    def kappa(items: list[Comparison]) -> float | None:
        return cohen_kappa([(c.ours, c.theirs) for c in items])

    return {
        "with_ties": _estimate(grouped, _share, seed=seed),
        "without_ties": _estimate(grouped, lambda items: _share(_without_ties(items)), seed=seed)
        | {"n": len(_without_ties(list(comparisons)))},
        "kappa": _estimate(grouped, kappa, seed=seed),
    }


def keyed_votes(votes: Iterable[Mapping[str, Any]]) -> dict[str, dict[Key, list[str]]]:
    """Label votes by source (experts, authors, gpt4) and key; winners in the sorted pair's order."""
    by_source: dict[str, dict[Key, list[str]]] = {source: defaultdict(list) for source in SOURCES}
    for index, vote in enumerate(votes):
        name = str(vote.get("judge", ""))
        source = next((s for s, prefix in SOURCES.items() if name.startswith(prefix)), None)
        if source is not None:
            key, winner = keyed_vote(vote, where=f"vote {index}")
            by_source[source][key].append(winner)
    return by_source


def _comparisons(ours: Mapping[Key, str], theirs: Mapping[Key, list[str]], turn: int | None) -> list[Comparison]:
    return [
        Comparison(key[1], ours[key], winner)
        for key, winners in theirs.items()
        if key in ours and (turn is None or key[0] == turn)
        for winner in winners
    ]


def agreement_by_source(
    ours: Mapping[Key, str], votes: Mapping[str, Mapping[Key, list[str]]], *, seed: int
) -> dict[str, Any]:
    """Per label source, turn 1 and both turns: agreement figures of ``ours`` (winners by key)."""
    return {
        source: {
            scope: agreement_figures(_comparisons(ours, keyed, turn), seed=seed)
            for scope, turn in (("turn_1", 1), ("all_turns", None))
        }
        for source, keyed in votes.items()
        if keyed
    }


def higher_wins(values: Mapping[AnswerKey, float], keys: Iterable[Key]) -> dict[Key, str]:
    """Votes by a number per answer: the higher one wins, equal ones tie; on every key with both numbers.

    With lengths this is the rule "the longer answer wins"; with ratings, the votes a rating judge implies.
    """
    winners = {}
    for key in keys:
        turn, question_id, model_a, model_b = key
        a, b = values.get((model_a, question_id, turn)), values.get((model_b, question_id, turn))
        if a is not None and b is not None:
            winners[key] = "model_a" if a > b else "model_b" if b > a else "tie"
    return winners


def _longer_share(winners: Iterable[tuple[Key, str]], longer: Mapping[Key, str], *, seed: int) -> dict[str, Any]:
    """How often a decided verdict picks the longer answer."""
    decided = [(key, winner) for key, winner in winners if winner != "tie" and longer.get(key, "tie") != "tie"]
    picks = _grouped(((key[1], winner == longer[key]) for key, winner in decided), lambda item: item[0])
    return _estimate(picks, lambda items: sum(hit for _, hit in items) / len(items), seed=seed)


Votes = Mapping[str, Mapping[Key, list[str]]]


def length_bias(
    ours: Mapping[Key, str], votes: Votes, lengths: Mapping[AnswerKey, int], *, seed: int
) -> dict[str, Any]:
    """The judge's preference for the longer answer next to each label source's, and the longer-answer rule.

    All on the keys the judge decided, so that the rule's agreement is comparable with the judge's: a judge that
    does not beat "the longer answer wins" is measuring length.
    """
    longer = higher_wins(lengths, ours)
    figures: dict[str, Any] = {"judge_picks_longer": _longer_share(ours.items(), longer, seed=seed)}
    for source, keyed in votes.items():
        labelled = [(key, winner) for key, winners in keyed.items() if key in ours for winner in winners]
        if labelled:
            figures[f"{source}_pick_longer"] = _longer_share(labelled, longer, seed=seed)
    figures["longer_answer_rule"] = agreement_by_source(longer, votes, seed=seed)
    return figures


def pairwise_winners(judgments: Iterable[Mapping[str, Any]]) -> dict[Key, str]:
    """Our scored pairwise judgments as winners by key (an inconsistent pair is a tie)."""
    winners: dict[Key, str] = {}
    for index, judgment in enumerate(judgments):
        if judgment.get("status") == "scored" and judgment.get("winner") is not None:
            key, winner = keyed_vote(judgment, where=f"judgment {index}")
            winners.setdefault(key, winner)
    return winners


def _correlation(method: Callable[..., Any]) -> Callable[[list[tuple[float, float]]], float | None]:
    def statistic(pairs: list[tuple[float, float]]) -> float | None:
        if len(pairs) < 3:
            return None
        ours, theirs = zip(*pairs, strict=True)
        if len(set(ours)) < 2 or len(set(theirs)) < 2:
            return None  # a constant side has no correlation
        return float(method(ours, theirs).statistic)

    return statistic


def rating_correlations(
    ours: Mapping[AnswerKey, float], reference: Mapping[AnswerKey, float], *, seed: int
) -> dict[str, Any]:
    """Spearman, Kendall's tau-b and Pearson against reference ratings of the same answers; ranking Spearman.

    The last is the Spearman of the two rankings of models by mean rating (over the answers both rated).
    """
    shared = sorted(set(ours) & set(reference))
    by_question = _grouped(((key, ours[key], reference[key]) for key in shared), lambda item: item[0][1])
    pairs = {q: [(o, r) for _, o, r in items] for q, items in by_question.items()}
    figures = {
        name: _estimate(pairs, _correlation(method), seed=seed)
        for name, method in (
            ("spearman", scipy_stats.spearmanr),
            ("kendall_tau", scipy_stats.kendalltau),
            ("pearson", scipy_stats.pearsonr),
        )
    }

    def ranking(items: list[tuple[AnswerKey, float, float]]) -> float | None:
        per_model: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for (model, _, _), o, r in items:
            per_model[model].append((o, r))
        means = [(float(np.mean([o for o, _ in v])), float(np.mean([r for _, r in v]))) for v in per_model.values()]
        return _correlation(scipy_stats.spearmanr)(means)

    figures["model_ranking_spearman"] = _estimate(by_question, ranking, seed=seed) | {
        "models": len({key[0] for key in shared})
    }
    return figures


def rating_length_slope(ratings: Mapping[AnswerKey, float], lengths: Mapping[AnswerKey, int]) -> float | None:
    """Least-squares slope of rating against answer length, in points per 1,000 characters."""
    pairs = [(lengths[key] / 1000, score) for key, score in ratings.items() if key in lengths]
    if len(pairs) < 3 or len({x for x, _ in pairs}) < 2:
        return None
    x, y = np.array(pairs).T
    return float(np.polyfit(x, y, 1)[0])


def failures(judgments: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Shares of judgments that ended without a verdict, by kind, over every judgment."""
    n = len(judgments)
    counts = {
        status: sum(j.get("status") == status for j in judgments) for status in ("parse_error", "inference_error")
    }
    return {f"{status}_rate": count / n if n else None for status, count in counts.items()} | {"n": n}


def _position(judgments: Sequence[Mapping[str, Any]], *, seed: int) -> dict[str, Any]:
    """Position consistency (the winner survives the swap) and how often the first position wins a verdict."""
    scored = _grouped((j for j in judgments if j.get("status") == "scored"), lambda j: int(j["question_id"]))
    verdicts = _grouped(
        (
            (int(j["question_id"]), verdict)
            for j in judgments
            for verdict in (j.get("verdict_ab"), j.get("verdict_ba"))
            if verdict in ("A", "B", "C")
        ),
        lambda item: item[0],
    )
    return {
        "consistency": _estimate(
            scored,
            lambda items: position_consistency((j.get("verdict_ab"), j.get("verdict_ba")) for j in items),
            seed=seed,
        ),
        "first_position_wins": _estimate(
            verdicts, lambda items: first_position_win_rate([v for _, v in items]), seed=seed
        ),
    }


def pairwise_card(
    judgments: Sequence[Mapping[str, Any]],
    votes: Iterable[Mapping[str, Any]],
    lengths: Mapping[AnswerKey, int],
    *,
    seed: int = 0,
) -> dict[str, Any]:
    """A pairwise judge's card: agreement per label source, position bias, length bias, failures."""
    ours, keyed = pairwise_winners(judgments), keyed_votes(votes)
    return {
        "kind": "pairwise",
        "agreement": agreement_by_source(ours, keyed, seed=seed),
        "position": _position(judgments, seed=seed),
        "length_bias": length_bias(ours, keyed, lengths, seed=seed),
        "failures": failures(judgments),
    }


def rating_card(
    judgments: Sequence[Mapping[str, Any]],
    reference: Mapping[AnswerKey, float],
    votes: Iterable[Mapping[str, Any]],
    lengths: Mapping[AnswerKey, int],
    *,
    seed: int = 0,
) -> dict[str, Any]:
    """A rating judge's card: correlation with reference ratings, agreement of the votes its ratings imply, length."""
    ours = {
        (str(j["model"]), int(j["question_id"]), int(j["turn"])): float(j["score"])
        for j in judgments
        if j.get("status") == "scored" and j.get("score") is not None
    }
    keyed = keyed_votes(votes)
    derived = higher_wins(ours, {key for source in keyed.values() for key in source})
    return {
        "kind": "rating",
        "reference": rating_correlations(ours, reference, seed=seed),
        "agreement": agreement_by_source(derived, keyed, seed=seed),
        "length_bias": length_bias(derived, keyed, lengths, seed=seed)
        | {
            "rating_per_1000_chars": rating_length_slope(ours, lengths),
            "reference_per_1000_chars": rating_length_slope(reference, lengths),
        },
        "failures": failures(judgments),
    }


def _shown(estimate: Mapping[str, Any]) -> str:
    value, interval = estimate["value"], estimate["ci95"]
    if value is None:
        return "-"
    return f"{value:.2f}" + (f" [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else "")


def headline(card: Mapping[str, Any]) -> str:
    """One line: agreement with experts (turn 1, without ties) and kappa, and for ratings the Spearman with GPT-4.

    A card of second turns only has no turn-1 votes: its line gives the votes of the turns it judged.
    """
    by_scope = card["agreement"].get("experts", {})
    scope, turns = (
        ("turn_1", "turn 1") if by_scope.get("turn_1", {}).get("with_ties", {}).get("n") else ("all_turns", "its turns")
    )
    experts = by_scope.get(scope)
    parts = []
    if experts:
        parts.append(
            f"agreement {_shown(experts['without_ties'])} without ties, κ {_shown(experts['kappa'])} vs experts "
            f"({turns}, {experts['with_ties']['n']:,} votes)"
        )
    if card["kind"] == "rating":
        spearman = card["reference"]["spearman"]
        parts.append(f"Spearman {_shown(spearman)} vs reference ratings ({spearman['n']:,} answers)")
    return "this judge: " + ("; ".join(parts) or "no labelled judgment")
