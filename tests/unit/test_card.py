"""Judge cards on hand-made labels; every expected value below is worked out by hand in the comments."""

import pytest

from llama_stack_judge.core.card import headline, pairwise_card, rating_card

# Two questions, turn 1, models a, b, c. Our pairwise judgments (the last one failed):
JUDGMENTS = [
    {"question_id": 81, "turn": 1, "model_a": "a", "model_b": "b", "winner": "model_a", "status": "scored",
     "verdict_ab": "A", "verdict_ba": "B"},
    {"question_id": 81, "turn": 1, "model_a": "a", "model_b": "c", "winner": "tie (inconsistent)", "status": "scored",
     "verdict_ab": "A", "verdict_ba": "A"},
    {"question_id": 83, "turn": 1, "model_a": "a", "model_b": "b", "winner": "model_b", "status": "scored",
     "verdict_ab": "B", "verdict_ba": "A"},
    {"question_id": 83, "turn": 1, "model_a": "b", "model_b": "c", "winner": None, "status": "parse_error",
     "verdict_ab": None, "verdict_ba": None},
]  # fmt: skip
VOTES = [
    {"judge": "expert_1", "question_id": 81, "turn": 1, "model_a": "a", "model_b": "b", "winner": "model_a"},
    {"judge": "expert_2", "question_id": 81, "turn": 1, "model_a": "b", "model_b": "a", "winner": "model_a"},  # b
    {"judge": "expert_1", "question_id": 81, "turn": 1, "model_a": "a", "model_b": "c", "winner": "tie"},
    {"judge": "expert_1", "question_id": 83, "turn": 1, "model_a": "a", "model_b": "b", "winner": "model_b"},
    {"judge": "expert_1", "question_id": 83, "turn": 1, "model_a": "b", "model_b": "c", "winner": "model_b"},  # c
    {"judge": "gpt4_pair", "question_id": 83, "turn": 1, "model_a": "a", "model_b": "b", "winner": "model_a"},
]
LENGTHS = {("a", 81, 1): 100, ("b", 81, 1): 50, ("c", 81, 1): 100, ("a", 83, 1): 10, ("b", 83, 1): 20, ("c", 83, 1): 5}


def test_pairwise_card_figures() -> None:
    card = pairwise_card(JUDGMENTS, VOTES, LENGTHS)
    experts = card["agreement"]["experts"]["turn_1"]
    # Comparisons with expert votes: (81 a-b) a vs a, a vs b; (81 a-c) tie vs tie; (83 a-b) b vs b; 83 b-c has no
    # verdict of ours. With ties 3 of 4; without ties 2 of the 3 that have no tie.
    assert (experts["with_ties"]["value"], experts["with_ties"]["n"]) == (0.75, 4)
    assert (experts["without_ties"]["value"], experts["without_ties"]["n"]) == (pytest.approx(2 / 3), 3)
    # kappa: observed 0.75; ours a:2 tie:1 b:1, theirs a:1 b:2 tie:1 -> expected 5/16; (0.75 - 5/16) / (11/16)
    assert experts["kappa"]["value"] == pytest.approx(7 / 11)
    assert card["agreement"]["gpt4"]["turn_1"]["with_ties"]["value"] == 0.0  # gpt4 says a on 83, we say b
    assert "authors" not in card["agreement"]
    # Position: 2 of the 3 scored judgments keep their winner across the swap; first position wins 4 of 6 verdicts.
    assert card["position"]["consistency"]["value"] == pytest.approx(2 / 3)
    assert card["position"]["first_position_wins"]["value"] == pytest.approx(4 / 6)
    # On the keys we decided: longer answers (81 a-b) a, (81 a-c) equal, (83 a-b) b. Our two decided verdicts both
    # pick the longer; of the experts' three decided votes on keys with a longer answer, two do.
    bias = card["length_bias"]
    assert bias["judge_picks_longer"]["value"] == 1.0 and bias["experts_pick_longer"]["value"] == pytest.approx(2 / 3)
    # The longer-answer rule against experts on those keys: a/a, a/b, tie/tie, b/b -> 3 of 4; without ties 2 of 3.
    rule = bias["longer_answer_rule"]["experts"]["turn_1"]
    assert rule["with_ties"]["value"] == 0.75 and rule["without_ties"]["value"] == pytest.approx(2 / 3)
    assert card["failures"] == {"parse_error_rate": 0.25, "inference_error_rate": 0.0, "n": 4}


def test_intervals_are_seeded_resample_questions_and_bracket_the_value() -> None:
    first, again = pairwise_card(JUDGMENTS, VOTES, LENGTHS), pairwise_card(JUDGMENTS, VOTES, LENGTHS)
    with_ties = first["agreement"]["experts"]["turn_1"]["with_ties"]
    assert with_ties == again["agreement"]["experts"]["turn_1"]["with_ties"]
    low, high = with_ties["ci95"]
    # Resampling 2 questions: q81 alone gives 2/3, q83 alone 1, both 3/4.
    assert low == pytest.approx(2 / 3) and high == 1.0


def test_rating_card_figures() -> None:
    judgments = [
        {"question_id": q, "turn": 1, "model": m, "score": s, "status": "scored"}
        for (m, q), s in {("a", 81): 8, ("b", 81): 5, ("c", 81): 8, ("a", 83): 3, ("b", 83): 6}.items()
    ] + [{"question_id": 83, "turn": 1, "model": "c", "score": None, "status": "parse_error"}]
    reference = {("a", 81, 1): 9.0, ("b", 81, 1): 4.0, ("c", 81, 1): 7.0, ("a", 83, 1): 2.0, ("b", 83, 1): 7.0}
    card = rating_card(judgments, reference, VOTES, LENGTHS)
    # Ranks (average for ties): ours [4.5, 2, 4.5, 1, 3], reference [5, 2, 3.5, 1, 3.5]; Pearson of ranks 8.75 / 9.5
    assert card["reference"]["spearman"]["value"] == pytest.approx(8.75 / 9.5)
    assert card["reference"]["spearman"]["n"] == 5
    # Model means: ours a 5.5, b 5.5, c 8; reference a 5.5, b 5.5, c 7: the same ranking.
    assert card["reference"]["model_ranking_spearman"]["value"] == pytest.approx(1.0)
    # Votes implied by the ratings equal our pairwise verdicts above (83 b-c has no rating of c): 3 of 4.
    assert card["agreement"]["experts"]["turn_1"]["with_ties"]["value"] == 0.75
    # Rating against length (thousands of characters): x mean 0.056, y mean 6, Sxy 0.32, Sxx 0.00732.
    assert card["length_bias"]["rating_per_1000_chars"] == pytest.approx(0.32 / 0.00732)
    assert card["failures"]["parse_error_rate"] == pytest.approx(1 / 6)
    assert headline(card).startswith("this judge: agreement 0.67 [") and "Spearman 0.92" in headline(card)


def test_the_headline_of_a_second_turn_card_gives_the_votes_it_was_measured_on() -> None:
    figure = {"value": 0.7, "ci95": [0.6, 0.8], "n": 256}
    none = {"value": None, "ci95": None, "n": 0}
    scopes = {
        "turn_1": {"with_ties": none, "without_ties": none, "kappa": none},
        "all_turns": {"with_ties": figure, "without_ties": figure, "kappa": figure | {"value": 0.28}},
    }
    card = {"kind": "pairwise", "agreement": {"experts": scopes}}
    assert (
        headline(card)
        == "this judge: agreement 0.70 [0.60, 0.80] without ties, κ 0.28 [0.60, 0.80] vs experts (its turns, 256 votes)"
    )
