"""Bradley-Terry leaderboards on hand-made battles with known answers, and the judgment formats they are read from."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from llama_stack_judge.cli.mt_bench_leaderboard import battles_of, read_battles
from llama_stack_judge.core.leaderboard import Battle, leaderboard, style_differences, style_features
from llama_stack_judge.errors import JudgeInputError
from llama_stack_judge.mtbench.questions import data_file


def _by_model(board: dict) -> dict:  # type: ignore[type-arg]
    return {row["model"]: row for row in board["models"]}


def test_three_wins_in_four_is_log_odds_ln3_and_a_tie_counts_half() -> None:
    board = leaderboard([Battle("a", "b", "model_a")] * 3 + [Battle("a", "b", "model_b")], anchor="b", resamples=0)
    rows = _by_model(board)
    assert rows["b"]["rating"] == 1000.0
    assert rows["a"]["rating"] == pytest.approx(1000 + 400 * math.log10(3), abs=0.01)  # MLE odds 3:1
    assert rows["a"]["win_rate_vs_anchor"] == pytest.approx(0.75, abs=1e-4) and rows["a"]["raw_win_rate"] == 0.75
    ties = leaderboard([Battle("a", "b", "model_a"), Battle("b", "a", "tie"), Battle("a", "b", "tie")], anchor="b",
                       resamples=0)  # fmt: skip
    assert _by_model(ties)["a"]["rating"] == pytest.approx(1000 + 400 * math.log10(2), abs=0.01)  # 2 of 3


def test_symmetric_results_give_equal_ratings() -> None:
    cycle = [Battle("a", "b", "model_a"), Battle("b", "c", "model_a"), Battle("c", "a", "model_a")]
    ratings = [row["rating"] for row in leaderboard(cycle * 2, resamples=0)["models"]]
    assert max(ratings) - min(ratings) < 1e-3


def test_a_model_that_wins_every_battle_ranks_first_at_a_finite_rating() -> None:
    battles = [Battle("best", other, "model_a") for other in ("x", "y")] * 5
    battles += [Battle("x", "y", "model_a"), Battle("x", "y", "model_b")] * 5
    board = leaderboard(battles, anchor="x", resamples=200, seed=1)
    best, *rest = board["models"]
    assert best["model"] == "best" and math.isfinite(best["rating"]) and best["rank"] == 1
    assert {row["model"]: row["rank"] for row in rest} == {"x": 2, "y": 2}  # x and y cannot be told apart
    low, high = best["ci95"]
    assert low <= best["rating"] <= high


def test_intervals_are_reproducible_with_a_seed() -> None:
    battles = [Battle("a", "b", "model_a"), Battle("a", "b", "model_b"), Battle("a", "b", "model_a")] * 4
    first, again = (leaderboard(battles, resamples=100, seed=7) for _ in range(2))
    assert first == again
    assert leaderboard(battles, resamples=100, seed=8)["models"] != first["models"]


def test_an_anchor_without_battles_is_refused() -> None:
    with pytest.raises(ValueError, match="anchor 'z' has no battle"):
        leaderboard([Battle("a", "b", "tie")], anchor="z", resamples=0)


def test_the_dev_labels_gpt4_verdicts_rank_the_six_models_as_their_raw_win_rates() -> None:
    battles = read_battles([str(data_file("dev") / "gpt4_pair_judgments_dev.jsonl")])
    board = leaderboard(battles, anchor="gpt-3.5-turbo", resamples=200)
    order = ["gpt-4", "claude-v1", "gpt-3.5-turbo", "vicuna-13b-v1.2", "alpaca-13b", "llama-13b"]
    assert [row["model"] for row in board["models"]] == order
    assert [row["raw_win_rate"] for row in board["models"]] == sorted((r["raw_win_rate"] for r in board["models"]),
                                                                        reverse=True)  # fmt: skip
    assert [row["rank"] for row in board["models"]] == [1, 2, 3, 4, 5, 6]  # every neighbour separable on 1,200


def test_each_judgment_format_gives_its_battles() -> None:
    ours = {"model_a": "m1", "model_b": "m2", "verdict_ab": "A", "verdict_ba": "A", "winner": "tie (inconsistent)"}
    # In the swapped order m2 was shown first: its "A" is a win for m2.
    assert list(battles_of(ours, where="x")) == [Battle("m1", "m2", "model_a"), Battle("m2", "m1", "model_a")]
    unparsed = ours | {"verdict_ab": None, "verdict_ba": "C"}
    assert list(battles_of(unparsed, where="x")) == [Battle("m2", "m1", "tie")]
    fastchat = {"model_1": "m1", "model_2": "m2", "g1_winner": "model_2", "g2_winner": "error"}
    assert list(battles_of(fastchat, where="x")) == [Battle("m1", "m2", "model_b")]
    vote = {"model_a": "m1", "model_b": "m2", "winner": "tie (inconsistent)", "judge": "expert_3"}
    assert list(battles_of(vote, where="x")) == [Battle("m1", "m2", "tie")]
    with pytest.raises(JudgeInputError, match=r"f\.jsonl:3: not a pairwise judgment"):
        list(battles_of({"model": "m1", "score": 5}, where="f.jsonl:3"))


def test_files_and_folders_are_read_and_a_judge_prefix_filters_them(tmp_path: Path) -> None:
    votes = [{"model_a": "a", "model_b": "b", "winner": "model_a", "judge": j} for j in ("expert_1", "gpt4_pair")]
    (tmp_path / "votes.jsonl").write_text("".join(json.dumps(v) + "\n" for v in votes))
    assert len(read_battles([str(tmp_path)])) == 2 and len(read_battles([str(tmp_path)], judge="expert")) == 1
    with pytest.raises(JudgeInputError, match="no such file or folder"):
        read_battles([str(tmp_path / "missing.jsonl")])


def test_style_control_removes_a_judges_taste_for_long_answers() -> None:
    """Two equally good models; one writes longer answers, and the judge prefers longer answers by construction."""
    rng = np.random.default_rng(5)
    battles, style = [], []
    for _ in range(3000):
        first, second = ("long", "short") if rng.random() < 0.5 else ("short", "long")
        lengths = {"long": rng.integers(800, 1600), "short": rng.integers(200, 1000)}
        texts = {model: "x" * int(lengths[model]) for model in lengths}
        gap = style_differences(texts[first], texts[second])["length"]
        first_wins = rng.random() < 1 / (1 + math.exp(-2.0 * gap))  # only length decides
        battles.append(Battle(first, second, "model_a" if first_wins else "model_b"))
        style.append(style_differences(texts[first], texts[second]))
    plain = _by_model(leaderboard(battles, anchor="short", resamples=0))
    controlled = leaderboard(battles, anchor="short", resamples=100, style=style)
    assert plain["long"]["rating"] > 1080  # plain Bradley-Terry credits the model with the judge's taste
    long_rating = _by_model(controlled)["long"]
    low, high = long_rating["ci95"]
    assert low < 1000 < high and abs(long_rating["rating"] - 1000) < 25  # style-controlled: no real difference
    coefficients = controlled["style_coefficients"]
    assert set(coefficients) == {"length", "headers", "list_items", "bold"}
    assert coefficients["length"]["value"] > 0.5 and coefficients["length"]["ci95"][0] > 0
    assert coefficients["bold"]["value"] == pytest.approx(0.0, abs=1e-3)  # no bold anywhere: nothing to fit


def test_style_features_count_length_and_markdown() -> None:
    text = "# Title\n\nSome **bold** text and __more__.\n\n- one\n- two\n1. three\n"
    assert style_features(text) == {"length": float(len(text)), "headers": 1.0, "list_items": 3.0, "bold": 2.0}
    assert style_differences("abc", "a") == {"length": 0.5, "headers": 0.0, "list_items": 0.0, "bold": 0.0}
