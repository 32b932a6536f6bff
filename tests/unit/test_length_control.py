"""Length-controlled win rates on synthetic battles whose judge prefers longer answers by construction."""

import math

import numpy as np
import pytest

from llama_stack_judge.core.length_control import LengthBattle, length_controlled


def _battles(model: str, theta: float, phi: float, differences: np.ndarray, seed: int) -> list[LengthBattle]:
    """Battles drawn from logit P(win) = theta + phi * tanh(difference / 1000)."""
    rng = np.random.default_rng(seed)
    wins = rng.random(len(differences)) < 1 / (1 + np.exp(-(theta + phi * np.tanh(differences / 1000))))
    return [LengthBattle(model, float(won), float(d)) for won, d in zip(wins, differences, strict=True)]


def test_the_controlled_rate_recovers_the_true_rate_of_a_model_that_writes_longer() -> None:
    rng = np.random.default_rng(3)
    # "verbose" is truly a little worse than the baseline (θ = -0.2) but writes longer answers, which this judge
    # likes (φ = 2): its raw win rate is flattered. "terse" is truly better (θ = 0.5) but writes shorter ones.
    verbose = _battles("verbose", -0.2, 2.0, rng.uniform(-300, 2500, 6000), seed=1)
    terse = _battles("terse", 0.5, 2.0, rng.uniform(-2500, 300, 6000), seed=2)
    result = length_controlled(verbose + terse, resamples=50, seed=0)
    scale = result["length_scale"]
    assert scale == pytest.approx(float(np.std([b.length_difference for b in verbose + terse])))
    for model, theta in (("verbose", -0.2), ("terse", 0.5)):
        figures = result["models"][model]
        assert figures["length_controlled_win_rate"] == pytest.approx(1 / (1 + math.exp(-theta)), abs=0.03)
        low, high = figures["length_controlled_ci95"]
        assert low < figures["length_controlled_win_rate"] < high
        assert figures["n"] == 6000
    verbose_rates, terse_rates = result["models"]["verbose"], result["models"]["terse"]
    assert verbose_rates["win_rate"] > 0.6 and terse_rates["win_rate"] < 0.4  # the raw rates are led by length
    assert verbose_rates["length_coefficient"] > 0 and terse_rates["length_coefficient"] > 0


def test_without_length_differences_the_controlled_rate_is_the_raw_rate() -> None:
    battles = [LengthBattle("m", score, 0.0) for score in (1.0, 1.0, 0.5, 0.0)]  # 2.5 of 4
    figures = length_controlled(battles, resamples=0)["models"]["m"]
    assert figures["win_rate"] == 0.625
    assert figures["length_controlled_win_rate"] == pytest.approx(0.625, abs=1e-3)
    assert figures["length_controlled_ci95"] is None


def test_a_model_that_wins_every_battle_stays_finite() -> None:
    figures = length_controlled([LengthBattle("m", 1.0, d) for d in (-10.0, 5.0, 20.0)], resamples=20)["models"]["m"]
    assert 0.9 < figures["length_controlled_win_rate"] < 1.0 and figures["win_rate"] == 1.0
