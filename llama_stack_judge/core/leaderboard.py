"""Bradley-Terry leaderboards: model ratings from pairwise battles, with bootstrap intervals and separable ranks.

As Arena-Hard-Auto counts them: every judged order of a pair is a battle and a tie is half a win for each side. The
ratings are the maximum-likelihood Bradley-Terry strengths on an Elo-like scale (400 points: 10-to-1 odds), with the
anchor model at 1000; a tiny L2 penalty keeps a model that won every battle at a finite rating. Intervals come from
refitting on battles drawn with replacement (seeded). A model's rank is one more than the number of models rated
above it in at least 97.5 % of the refits, so models that cannot be told apart share a rank.
"""

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy.optimize import minimize

ANCHOR_RATING = 1000.0
SCALE = 400.0 / math.log(10)  # rating points per unit of log-odds
L2 = 1e-6  # per squared log-odds unit: negligible, except that it keeps perfect records finite
Winner = Literal["model_a", "model_b", "tie"]


@dataclass(frozen=True, slots=True)
class Battle:
    """One judged comparison: the two models and who won it."""

    model_a: str
    model_b: str
    winner: Winner


_SCORE_A = {"model_a": 1.0, "model_b": 0.0, "tie": 0.5}


@dataclass(frozen=True, slots=True)
class _Battles:
    """Battles as arrays: each one's models (by index) and model_a's share of the win."""

    a: np.ndarray
    b: np.ndarray
    score_a: np.ndarray

    def wins(self, n_models: int, weights: np.ndarray | None = None) -> np.ndarray:
        """``wins[i, j]``: battles (or their weights) model i won against model j, a tie counting half to each."""
        weights = np.ones(len(self.a)) if weights is None else weights
        wins = np.zeros((n_models, n_models))
        np.add.at(wins, (self.a, self.b), weights * self.score_a)
        np.add.at(wins, (self.b, self.a), weights * (1.0 - self.score_a))
        return wins


def fit_strengths(wins: np.ndarray, anchor: int) -> np.ndarray:
    """Bradley-Terry log-strengths maximising the likelihood of ``wins``, with ``anchor``'s fixed at 0."""
    free = [i for i in range(len(wins)) if i != anchor]

    def strengths(x: np.ndarray) -> np.ndarray:
        beta = np.zeros(len(wins))
        beta[free] = x
        return beta

    def loss(x: np.ndarray) -> tuple[float, np.ndarray]:
        beta = strengths(x)
        diff = beta[:, None] - beta[None, :]  # log-odds of i beating j
        nll = float(np.sum(wins * np.logaddexp(0.0, -diff))) + L2 * float(x @ x)
        p_lose = 1.0 / (1.0 + np.exp(diff))  # P(i loses to j) = sigmoid(-diff)
        grad_beta = -np.sum(wins * p_lose, axis=1) + np.sum(wins * p_lose, axis=0)
        return nll, grad_beta[free] + 2 * L2 * x

    result = minimize(loss, np.zeros(len(free)), jac=True, method="L-BFGS-B")
    return strengths(result.x)


def _ratings(beta: np.ndarray) -> np.ndarray:
    return ANCHOR_RATING + SCALE * beta


def leaderboard(
    battles: Iterable[Battle], *, anchor: str | None = None, resamples: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """Ratings, 95 % intervals, predicted win rate against the anchor, raw win rate and rank of every model.

    ``anchor``: the model rated 1000 (default: the one with the most battles, then by name).
    """
    battles = list(battles)
    if not battles:
        raise ValueError("a leaderboard needs at least one battle")
    counts = Counter(model for b in battles for model in (b.model_a, b.model_b))
    models = sorted(counts)
    anchor = anchor or min(models, key=lambda m: (-counts[m], m))
    if anchor not in counts:
        raise ValueError(f"anchor {anchor!r} has no battle; the models are {models}")
    index = {model: i for i, model in enumerate(models)}
    arrays = _Battles(
        np.array([index[b.model_a] for b in battles]),
        np.array([index[b.model_b] for b in battles]),
        np.array([_SCORE_A[b.winner] for b in battles]),
    )
    wins, anchor_at = arrays.wins(len(models)), index[anchor]
    ratings = _ratings(fit_strengths(wins, anchor_at))
    draws = np.empty((0, len(models)))
    if resamples > 0:
        rng = np.random.default_rng(seed)
        draws = np.array(
            [
                _ratings(fit_strengths(arrays.wins(len(models), np.bincount(drawn, minlength=len(battles))), anchor_at))
                for drawn in rng.integers(0, len(battles), size=(resamples, len(battles)))
            ]
        )
    standings = []
    for model, i in index.items():
        played = wins[i].sum() + wins[:, i].sum()
        standing: dict[str, Any] = {
            "model": model,
            "rating": float(ratings[i]),
            "ci95": None,
            "rank": None,
            "win_rate_vs_anchor": 1.0 / (1.0 + 10 ** ((ratings[anchor_at] - ratings[i]) / 400.0)),
            "raw_win_rate": float(wins[i].sum() / played),
            "battles": counts[model],
        }
        if resamples > 0:
            low, high = np.percentile(draws[:, i], [2.5, 97.5])
            # Ranked below every model rated higher in at least 97.5 % of the refits: a difference, not a position
            # on the anchor's scale, so the anchor's own fixed rating does not make it look more certain.
            above = sum(1 for j in range(len(models)) if j != i and np.mean(draws[:, j] > draws[:, i]) >= 0.975)
            standing |= {"ci95": [float(low), float(high)], "rank": above + 1}
        standings.append(standing)
    standings.sort(key=lambda row: -row["rating"])
    return {"anchor": anchor, "n_battles": len(battles), "resamples": resamples, "seed": seed, "models": standings}
