"""Agreement of pairwise verdicts with other votes (e.g. human), as the MT-bench paper defines it.

Per turn, votes are keyed by (question_id, unordered model pair) with winners flipped to the sorted pair's order.
Every other vote on a key is compared with our verdict on that key: "with ties" counts every comparison (any tie
equals any tie), "without ties" skips comparisons where either side is a tie. Votes are also compared among
themselves: every pair of votes from different judges on the same key.
"""

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from itertools import combinations
from typing import Any

from llama_stack_judge.core.pairwise import INCONSISTENT
from llama_stack_judge.errors import JudgeInputError

Key = tuple[int, int, str, str]  # turn, question_id, first model, second model (sorted)
_WINNERS = {"model_a", "model_b", "tie", INCONSISTENT}
_FLIP = {"model_a": "model_b", "model_b": "model_a"}


def _category(winner: str) -> str:
    return "tie" if winner.startswith("tie") else winner


def keyed_vote(row: Mapping[str, Any], *, where: str) -> tuple[Key, str]:
    """A vote's key and its winner in the sorted pair's order (``model_a``, ``model_b`` or ``tie``)."""
    try:
        question_id, turn = int(row["question_id"]), int(row["turn"])
        model_a, model_b, winner = str(row["model_a"]), str(row["model_b"]), str(row["winner"])
    except (KeyError, TypeError, ValueError) as exc:
        raise JudgeInputError(f"{where}: a vote needs question_id, model_a, model_b, turn and winner ({exc})") from None
    if winner not in _WINNERS:
        raise JudgeInputError(f"{where}: winner must be one of {sorted(_WINNERS)}, got {winner!r}")
    winner = _category(winner)
    if model_a > model_b:
        model_a, model_b, winner = model_b, model_a, _FLIP.get(winner, winner)
    return (turn, question_id, model_a, model_b), winner


def _rate(pairs: Sequence[tuple[str, str]], *, ties: bool) -> dict[str, Any]:
    counted = [(x, y) for x, y in pairs if ties or ("tie" not in (x, y))]
    agree = sum(1 for x, y in counted if x == y)
    return {"agreement": agree / len(counted) if counted else None, "n": len(counted)}


def cohen_kappa(pairs: Sequence[tuple[str, str]]) -> float | None:
    """Cohen's kappa of two raters over paired labels; ``None`` when it is undefined."""
    if not pairs:
        return None
    n = len(pairs)
    observed = sum(1 for x, y in pairs if x == y) / n
    first, second = Counter(x for x, _ in pairs), Counter(y for _, y in pairs)
    expected = sum(first[c] * second[c] for c in first | second) / (n * n)
    return None if expected == 1 else (observed - expected) / (1 - expected)


def fleiss_kappa(table: Sequence[Sequence[int]]) -> float | None:
    """Fleiss' kappa: agreement of several raters beyond chance.

    ``table[i][j]`` is how many raters put item ``i`` in category ``j``; every item has the same number of raters (at
    least two). ``None`` when it is undefined (no items, or every rating in one category).
    """
    if not table:
        return None
    raters = sum(table[0])
    if raters < 2 or any(sum(row) != raters for row in table):
        raise ValueError("Fleiss' kappa needs the same number (at least two) of ratings of every item")
    items = len(table)
    observed = math.fsum((sum(n * n for n in row) - raters) / (raters * (raters - 1)) for row in table) / items
    shares = [sum(row[j] for row in table) / (items * raters) for j in range(len(table[0]))]
    expected = math.fsum(p * p for p in shares)
    return None if expected == 1 else (observed - expected) / (1 - expected)


def _report(ours: Mapping[Key, str], votes: Mapping[Key, list[tuple[str, str]]]) -> dict[str, Any]:
    with_ours = [(ours[key], winner) for key, keyed in votes.items() if key in ours for _, winner in keyed]
    among_votes = [
        (first[1], second[1])
        for keyed in votes.values()
        for first, second in combinations(keyed, 2)
        if first[0] != second[0]
    ]
    no_ties = [(x, y) for x, y in with_ours if "tie" not in (x, y)]
    return {
        "ours_vs_votes": {
            "with_ties": _rate(with_ours, ties=True),
            "without_ties": _rate(with_ours, ties=False),
            "kappa_with_ties": cohen_kappa(with_ours),
            "kappa_without_ties": cohen_kappa(no_ties),
        },
        "votes_vs_votes": {
            "with_ties": _rate(among_votes, ties=True),
            "without_ties": _rate(among_votes, ties=False),
        },
    }


def agreement(
    ours: Iterable[Mapping[str, Any]], votes: Iterable[Mapping[str, Any]], *, judge: str | None = None
) -> dict[str, Any]:
    """Agreement per turn and over both turns. ``judge`` keeps only the votes whose judge name starts with it.

    Our judgments that failed (no winner) are left out; the first of several verdicts on one key is ours.
    """
    our_votes: dict[Key, str] = {}
    for index, row in enumerate(ours):
        if row.get("winner") is None:
            continue
        key, winner = keyed_vote(row, where=f"judgment {index}")
        our_votes.setdefault(key, winner)
    their_votes: dict[Key, list[tuple[str, str]]] = defaultdict(list)
    for index, row in enumerate(votes):
        name = str(row.get("judge", ""))
        if judge is not None and not name.startswith(judge):
            continue
        key, winner = keyed_vote(row, where=f"vote {index}")
        their_votes[key].append((name, winner))
    report = {
        f"turn_{turn}": _report(
            {k: v for k, v in our_votes.items() if k[0] == turn}, {k: v for k, v in their_votes.items() if k[0] == turn}
        )
        for turn in (1, 2)
    }
    return report | {"all": _report(our_votes, their_votes)}
