"""Length-controlled win rates against a baseline, as AlpacaEval 2 computes them in spirit.

Judges like long answers. Per model, a logistic regression of its battles against the baseline,
``logit P(win) = θ + φ·tanh(Δ/s)``, with Δ the model's answer length minus the baseline's and s the standard deviation
of Δ over every battle, separates the preference for the answer from the preference for its length. The raw win rate
is the share of battles won (a tie counts half); the length-controlled win rate is ``sigmoid(θ)``, the predicted win
rate at equal lengths; φ says how much length sways the judge. Intervals: refits on each model's battles drawn with
replacement (seeded).
"""

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize

L2 = 1e-4  # keeps a model that won (or lost) every battle at a finite θ


@dataclass(frozen=True, slots=True)
class LengthBattle:
    """One battle of ``model`` against the baseline: its share of the win (1, ½, 0) and the length difference."""

    model: str
    score: float
    length_difference: float


def _fit(scores: np.ndarray, lengths: np.ndarray) -> tuple[float, float]:
    """θ and φ of the logistic regression (fractional outcomes: a tie is half a win and half a loss)."""

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        theta, phi = params
        z = theta + phi * lengths
        nll = float(np.sum(scores * np.logaddexp(0.0, -z) + (1 - scores) * np.logaddexp(0.0, z)))
        residual = 1.0 / (1.0 + np.exp(-z)) - scores  # d nll / d z
        grad = np.array([residual.sum(), (residual * lengths).sum()]) + 2 * L2 * params
        return nll + L2 * float(params @ params), grad

    theta, phi = minimize(loss, np.zeros(2), jac=True, method="L-BFGS-B").x
    return float(theta), float(phi)


def _sigmoid(value: float) -> float:
    return 1.0 / (1.0 + math.exp(-value))


def length_controlled(battles: Iterable[LengthBattle], *, resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Per model: raw and length-controlled win rates against the baseline, with intervals, φ and n."""
    battles = list(battles)
    if not battles:
        return {"models": {}, "length_scale": None}
    sigma = float(np.std([b.length_difference for b in battles]))
    by_model: dict[str, list[LengthBattle]] = defaultdict(list)
    for battle in battles:
        by_model[battle.model].append(battle)
    rng = np.random.default_rng(seed)
    models = {}
    for model, own in sorted(by_model.items()):
        scores = np.array([b.score for b in own])
        # Without any length difference there is nothing to control for: the length term is left out.
        lengths = np.tanh(np.array([b.length_difference for b in own]) / sigma) if sigma > 0 else np.zeros(len(own))
        theta, phi = _fit(scores, lengths)
        figures: dict[str, Any] = {
            "win_rate": float(scores.mean()),
            "length_controlled_win_rate": _sigmoid(theta),
            "length_coefficient": phi,
            "n": len(own),
            "win_rate_ci95": None,
            "length_controlled_ci95": None,
        }
        if resamples > 0:
            draws = rng.integers(0, len(own), size=(resamples, len(own)))
            raw = scores[draws].mean(axis=1)
            controlled = [_sigmoid(_fit(scores[draw], lengths[draw])[0]) for draw in draws]
            figures["win_rate_ci95"] = [float(v) for v in np.percentile(raw, [2.5, 97.5])]
            figures["length_controlled_ci95"] = [float(v) for v in np.percentile(controlled, [2.5, 97.5])]
        models[model] = figures
    return {"models": models, "length_scale": sigma}
