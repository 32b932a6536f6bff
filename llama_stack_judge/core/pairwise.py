"""A pair judged in both orders: the swap's reconciliation and the position statistics.

A pairwise judge sees the two answers as A and B, then again as B and A. Its verdict labels are "A", "B" and "C"
(a tie). Swapping the answers swaps what "A" and "B" mean, so a winner that survives the swap is the answer's, and
one that follows the position is the judge's bias.
"""

from collections.abc import Iterable, Mapping, Sequence
from typing import Final, Literal

INCONSISTENT: Final = "tie (inconsistent)"  # the winner of a pair whose two orders disagree
Winner = Literal["model_a", "model_b", "tie", "tie (inconsistent)"]
Decisive = Literal["model_a", "model_b", "tie"]  # a winner named by one verdict, or by a vote
WINNER_OF_FIRST_ORDER: Final[dict[str, Decisive]] = {"A": "model_a", "B": "model_b", "C": "tie"}
WINNER_OF_SECOND_ORDER: Final[dict[str, Decisive]] = {"A": "model_b", "B": "model_a", "C": "tie"}
WINNER_SCORE: Final[dict[Winner, float]] = {"model_a": 1.0, "model_b": 0.0, "tie": 0.5, INCONSISTENT: 0.5}


def combine_orders(verdict_ab: str, verdict_ba: str) -> Winner:
    """The winner of a pair judged in both orders: the same winner twice, else a tie marked inconsistent."""
    first, second = WINNER_OF_FIRST_ORDER[verdict_ab], WINNER_OF_SECOND_ORDER[verdict_ba]
    return first if first == second else INCONSISTENT


def winner_probabilities(ab: Mapping[str, float], ba: Mapping[str, float]) -> dict[Winner, float]:
    """P(model_a wins), P(model_b wins) and P(tie) of a pair, averaged over its two orders.

    ``ab`` and ``ba`` are the judge's probabilities of "A", "B" and "C" in each order; the average cancels the
    judge's preference for a position.
    """
    chances: dict[Winner, float] = {"model_a": 0.0, "model_b": 0.0, "tie": 0.0}
    for probabilities, winners in ((ab, WINNER_OF_FIRST_ORDER), (ba, WINNER_OF_SECOND_ORDER)):
        for label, probability in probabilities.items():
            chances[winners[label]] += probability / 2
    return chances


def position_consistency(verdict_pairs: Iterable[tuple[object, object]]) -> float | None:
    """The share of pairs whose two written verdicts name the same winner; ``None`` without a pair verdicted twice.

    From the verdicts, not the pair's winner: an expected-verdict pair always has a winner (the orders' probabilities
    are averaged), though both of its verdicts may have said "B".
    """
    labels = WINNER_OF_FIRST_ORDER.keys()
    winners = [combine_orders(ab, ba) for ab, ba in verdict_pairs if ab in labels and ba in labels]
    return sum(winner != INCONSISTENT for winner in winners) / len(winners) if winners else None


def first_position_win_rate(verdicts: Sequence[object]) -> float | None:
    """How often a single order's verdict is "A", the answer shown first; ``None`` without verdicts."""
    return sum(verdict == "A" for verdict in verdicts) / len(verdicts) if verdicts else None
