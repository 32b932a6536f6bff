"""Bradley-Terry leaderboards: model ratings from pairwise battles, with bootstrap intervals and separable ranks.

As Arena-Hard-Auto counts them: every judged order of a pair is a battle and a tie is half a win for each side. The
ratings are the maximum-likelihood Bradley-Terry strengths on an Elo-like scale (400 points: 10-to-1 odds), with the
anchor model at 1000; a tiny L2 penalty keeps a model that won every battle at a finite rating. Intervals come from
refitting on battles drawn with replacement (seeded). A model's rank is one more than the number of models rated
above it in at least 97.5 % of the refits, so models that cannot be told apart share a rank.

Style control (as Arena-Hard's): per battle, differences in the two answers' style (length, headers, list items,
bold) enter the same regression as covariates, so the ratings are what is left once style is accounted for, and the
style coefficients say how much each feature sways the judge.
"""

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize

from llama_stack_judge.core.pairwise import WINNER_SCORE, Decisive

ANCHOR_RATING = 1000.0
SCALE = 400.0 / math.log(10)  # rating points per unit of log-odds
L2 = 1e-6  # per squared parameter: negligible, except that it keeps perfect records finite
_STYLE_PATTERNS = {
    "headers": re.compile(r"^#{1,6} ", re.MULTILINE),
    "list_items": re.compile(r"^\s*(?:[-*+]|\d+\.) ", re.MULTILINE),
    "bold": re.compile(r"\*\*[^*\n]+\*\*|__[^_\n]+__"),
}


@dataclass(frozen=True, slots=True)
class Battle:
    """One judged comparison: the two models and who won it."""

    model_a: str
    model_b: str
    winner: Decisive


def style_features(text: str) -> dict[str, float]:
    """An answer's style: its length in characters and its counts of markdown headers, list items and bold runs."""
    return {"length": float(len(text))} | {name: float(len(p.findall(text))) for name, p in _STYLE_PATTERNS.items()}


def style_differences(answer_a: str, answer_b: str) -> dict[str, float]:
    """Per style feature, (a - b) / (a + b): from -1 to 1, and 0 where neither answer has any."""
    a, b = style_features(answer_a), style_features(answer_b)
    return {name: (a[name] - b[name]) / (a[name] + b[name]) if a[name] + b[name] else 0.0 for name in a}


@dataclass(frozen=True, slots=True)
class _Battles:
    """Battles as arrays: each one's models (by index), model_a's share of the win, and its style differences."""

    a: np.ndarray
    b: np.ndarray
    score_a: np.ndarray
    style: np.ndarray  # battles x style features (no columns without style control)

    def wins(self, n_models: int) -> np.ndarray:
        """``wins[i, j]``: battles model i won against model j, a tie counting half to each."""
        wins = np.zeros((n_models, n_models))
        np.add.at(wins, (self.a, self.b), self.score_a)
        np.add.at(wins, (self.b, self.a), 1.0 - self.score_a)
        return wins


def _fit(battles: _Battles, n_models: int, anchor: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Log-strengths (``anchor``'s fixed at 0) then style coefficients, maximising the weighted likelihood.

    The model: ``logit P(a beats b) = strength[a] - strength[b] + coefficients . style``; a tie is half a win and
    half a loss.
    """
    free = np.array([i for i in range(n_models) if i != anchor], dtype=int)
    weights = np.ones(len(battles.a)) if weights is None else weights

    def strengths(x: np.ndarray) -> np.ndarray:
        beta = np.zeros(n_models)
        beta[free] = x[: len(free)]
        return beta

    def loss(x: np.ndarray) -> tuple[float, np.ndarray]:
        beta, gamma = strengths(x), x[len(free) :]
        z = beta[battles.a] - beta[battles.b] + battles.style @ gamma
        y = battles.score_a
        nll = float(np.sum(weights * (y * np.logaddexp(0.0, -z) + (1 - y) * np.logaddexp(0.0, z))))
        residual = weights * (1.0 / (1.0 + np.exp(-z)) - y)  # d nll / d z
        grad_beta = np.bincount(battles.a, residual, n_models) - np.bincount(battles.b, residual, n_models)
        grad = np.concatenate([grad_beta[free], battles.style.T @ residual])
        return nll + L2 * float(x @ x), grad + 2 * L2 * x

    x = minimize(loss, np.zeros(len(free) + battles.style.shape[1]), jac=True, method="L-BFGS-B").x
    return np.concatenate([strengths(x), x[len(free) :]])


def _style_columns(style: Sequence[Mapping[str, float]] | None, n_battles: int) -> tuple[list[str], np.ndarray]:
    """Feature names and the battles' style differences, each feature per standard deviation (so they compare)."""
    if not style:
        return [], np.zeros((n_battles, 0))
    if len(style) != n_battles:
        raise ValueError(f"{len(style)} style rows for {n_battles} battles")
    names = sorted(style[0])
    columns = np.array([[row[name] for name in names] for row in style])
    spread = columns.std(axis=0)
    return names, columns / np.where(spread > 0, spread, 1.0)


def leaderboard(
    battles: Iterable[Battle],
    *,
    anchor: str | None = None,
    resamples: int = 1000,
    seed: int = 0,
    style: Sequence[Mapping[str, float]] | None = None,
) -> dict[str, Any]:
    """Ratings, 95 % intervals, predicted win rate against the anchor, raw win rate and rank of every model.

    ``anchor``: the model rated 1000 (default: the one with the most battles, then by name). ``style``: per battle,
    ``style_differences`` of its two answers; the ratings are then style-controlled and the coefficients reported.
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
    names, columns = _style_columns(style, len(battles))
    arrays = _Battles(
        np.array([index[b.model_a] for b in battles]),
        np.array([index[b.model_b] for b in battles]),
        np.array([WINNER_SCORE[b.winner] for b in battles]),
        columns,
    )
    n, anchor_at = len(models), index[anchor]
    fitted = _fit(arrays, n, anchor_at)
    ratings, wins = ANCHOR_RATING + SCALE * fitted[:n], arrays.wins(n)
    draws = np.empty((0, n + len(names)))
    if resamples > 0:
        rng = np.random.default_rng(seed)
        draws = np.array(
            [
                _fit(arrays, n, anchor_at, np.bincount(drawn, minlength=len(battles)).astype(float))
                for drawn in rng.integers(0, len(battles), size=(resamples, len(battles)))
            ]
        )
        draws[:, :n] = ANCHOR_RATING + SCALE * draws[:, :n]
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
            above = sum(1 for j in range(n) if j != i and np.mean(draws[:, j] > draws[:, i]) >= 0.975)
            standing |= {"ci95": [float(low), float(high)], "rank": above + 1}
        standings.append(standing)
    standings.sort(key=lambda row: -row["rating"])
    board: dict[str, Any] = {
        "anchor": anchor, "n_battles": len(battles), "resamples": resamples, "seed": seed, "models": standings,
    }  # fmt: skip
    if names:
        board["style_coefficients"] = {
            name: {
                "value": float(fitted[n + k]),
                "ci95": [float(v) for v in np.percentile(draws[:, n + k], [2.5, 97.5])] if resamples > 0 else None,
            }
            for k, name in enumerate(names)
        }
    return board
