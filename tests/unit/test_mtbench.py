"""MT-bench core: shipped judges, routing, the position swap, summaries and agreement."""

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from llama_stack_judge.core.aggregate import aggregate
from llama_stack_judge.core.agreement import agreement, cohen_kappa
from llama_stack_judge.core.definitions import Aggregation, load_definition_file
from llama_stack_judge.core.outcomes import Outcome, RowResult
from llama_stack_judge.core.pairwise import combine_orders
from llama_stack_judge.errors import JudgeInputError
from llama_stack_judge.mtbench.benchmark import expand_question_rows, question_rows
from llama_stack_judge.mtbench.questions import data_file, load_questions, load_turn_answers
from llama_stack_judge.mtbench.routing import judge_name, pairwise_inputs, rating_inputs
from llama_stack_judge.mtbench.summary import summarize_pairwise, summarize_single
from llama_stack_judge.mtbench.tasks import combine_pair, combine_turns

MT_BENCH_JUDGES = Path(__file__).resolve().parents[2] / "llama_stack_judge" / "mtbench" / "judges"
ORIGINAL_NAMES = {
    "response": "answer",
    "response_1": "answer_1",
    "response_2": "answer_2",
    "response_a": "answer_a",
    "response_b": "answer_b",
    "response_a_1": "answer_a_1",
    "response_a_2": "answer_a_2",
    "response_b_1": "answer_b_1",
    "response_b_2": "answer_b_2",
    "reference": "ref_answer_1",
    "reference_1": "ref_answer_1",
    "reference_2": "ref_answer_2",
}


def _original(text: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: "{" + ORIGINAL_NAMES.get(m.group(1), m.group(1)) + "}", text)


@pytest.mark.parametrize("line", data_file("judge_prompts.jsonl").read_text().splitlines())
def test_shipped_judges_carry_the_exact_mt_bench_prompts(line: str) -> None:
    prompt = json.loads(line)
    definition = load_definition_file(MT_BENCH_JUDGES / f"mt-bench-{prompt['name']}.json", prefix="judge")
    assert _original(definition.system_prompt or "") == prompt["system_prompt"]
    assert _original(definition.prompt_template) == prompt["prompt_template"]
    if prompt["type"] == "single":
        assert definition.parse_verdict('format "[[rating]]", e.g. "Rating: [[5]]". Rating: [[8.5]]').score == 8.5
        assert definition.parse_verdict("Rating: [7]").score == 7.0  # FastChat's backup pattern
        assert definition.parse_verdict("Rating: [[11]]").error is not None
    else:
        assert definition.parse_verdict('"[[A]]" if A is better... verdict: [[C]]').label == "C"


def test_shipped_data_loads() -> None:
    questions = load_questions(data_file("question.jsonl"))
    references = load_turn_answers(data_file("reference_answer_gpt-4.jsonl"))
    assert len(questions) == 80 and {q.category for q in questions.values()} >= {"math", "reasoning", "coding"}
    needing = [q.question_id for q in questions.values() if q.category in {"math", "reasoning", "coding"}]
    assert set(needing) <= set(references) and all(len(references[q]) == 2 for q in needing)


@pytest.mark.parametrize(
    ("row", "judgments"),
    [
        ({"question": "Q", "response": "R"}, [(1, "single-v1", {"question": "Q", "response": "R"})]),
        (
            {"question": ["Q1", "Q2"], "response": ["R1", "R2"], "category": "writing", "turn": 2},
            [
                (
                    2,
                    "single-v1-multi-turn",
                    {"question_1": "Q1", "question_2": "Q2", "response_1": "R1", "response_2": "R2"},
                )
            ],
        ),
        (
            {
                "question": ["Q1", "Q2"],
                "response": ["R1", "R2"],
                "turn": 1,
                "category": "math",
                "reference": ["A", "B"],
            },
            [(1, "single-math-v1", {"question": "Q1", "response": "R1", "reference": "A"})],
        ),
        (  # without 'turn' every turn is judged, as MT-bench does
            {"question": ["Q1", "Q2"], "response": ["R1", "R2"], "category": "coding", "reference": ["A", "B"]},
            [
                (1, "single-math-v1", {"question": "Q1", "response": "R1", "reference": "A"}),
                (
                    2,
                    "single-math-v1-multi-turn",
                    {"question_1": "Q1", "question_2": "Q2", "response_1": "R1", "response_2": "R2"}
                    | {"reference_1": "A", "reference_2": "B"},
                ),
            ],
        ),
        (  # an eval row: the candidate's generated turns
            {"turns": ["Q1", "Q2"], "generated_turns": ["R1", "R2"], "turn": 1},
            [(1, "single-v1", {"question": "Q1", "response": "R1"})],
        ),
        ({"input_query": "Q", "generated_answer": "R"}, [(1, "single-v1", {"question": "Q", "response": "R"})]),
        (  # a dataset read through pandas has NaN where a row has no reference
            {"question": "Q", "response": "R", "reference": float("nan"), "category": float("nan")},
            [(1, "single-v1", {"question": "Q", "response": "R"})],
        ),
        # a reference for a category MT-bench judges without one is not used
        (
            {"question": "Q", "response": "R", "category": "writing", "reference": "X"},
            [(1, "single-v1", {"question": "Q", "response": "R"})],
        ),
    ],
)
def test_rating_routing(row: dict[str, object], judgments: list[tuple[int, str, dict[str, str]]]) -> None:
    assert rating_inputs(row, where="row 0") == judgments


def test_pairwise_routing_swaps_sides() -> None:
    row = {
        "question": ["Q1", "Q2"],
        "response_a": ["a1", "a2"],
        "response_b": ["b1", "b2"],
        "category": "reasoning",
        "reference": ["r1", "r2"],
    }
    turn, judge, ab, ba = pairwise_inputs(row, where="row 0")
    assert turn == 2 and judge == "pair-math-v1-multi-turn" == judge_name("pair", turn=2, with_reference=True)
    assert ab["response_a_2"] == "a2" and ab["response_b_1"] == "b1" and ab["reference_2"] == "r2"
    assert ba["response_a_2"] == "b2" and ba["response_b_1"] == "a1" and ba["question_1"] == "Q1"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"response": "R"}, "row 3: missing field 'question'"),
        ({"question": "Q", "response": 5}, "row 3: 'response' must be text or a non-empty list of texts"),
        ({"question": "Q", "response": "R", "turn": 3}, "row 3: 'turn' must be 1 or 2"),
        (
            {"question": ["Q"], "response": ["R"], "turn": 2},
            "row 3: turn 2 needs 2 entries in ['question', 'response']",
        ),
        (
            {"question": "Q", "response": "R", "category": "math"},
            "row 3: category 'math' is judged against a reference",
        ),
    ],
)
def test_bad_rows_name_the_row_and_field(row: dict[str, object], message: str) -> None:
    with pytest.raises(JudgeInputError, match=re.escape(message)):
        rating_inputs(row, where="row 3")


def test_swap_logic() -> None:
    assert combine_orders("A", "B") == "model_a"  # A first, then A's answer (now B) wins again
    assert combine_orders("B", "A") == "model_b"
    assert combine_orders("C", "C") == "tie"
    assert combine_orders("A", "A") == "tie (inconsistent)"  # whichever answer is first wins: position bias
    assert combine_orders("A", "C") == "tie (inconsistent)"
    failed = combine_pair(
        "pair-v2",
        1,
        RowResult.scored_value(1.0, verdict="A", judge_output="[[A]]"),
        RowResult(Outcome.parse_error, judge_output="no verdict", error="no verdict found in the judge output"),
    )
    assert failed.outcome is Outcome.parse_error and failed.score is None
    assert failed.error == "B/A order: no verdict found in the judge output"
    assert failed.details is not None and failed.details["winner"] is None


def test_turns_combine_into_one_row() -> None:
    first = RowResult.scored_value(8.0, verdict="8", judge_output="[[8]]", attempts=1)
    second = RowResult.scored_value(5.0, verdict="5", judge_output="[[5]]", attempts=1)
    both = combine_turns([replace(first, details={"turn": 1}), replace(second, details={"turn": 2})])
    assert both.outcome is Outcome.scored and both.score == 6.5 and both.attempts == 2
    assert both.details is not None and [t["score"] for t in both.details["turns"]] == [8.0, 5.0]
    failed = RowResult(Outcome.parse_error, error="no verdict found in the judge output", details={"turn": 2})
    half = combine_turns([replace(first, details={"turn": 1}), failed])
    assert half.outcome is Outcome.parse_error and half.score is None
    assert half.error == "turn 2: no verdict found in the judge output"
    per_turn = aggregate([both, half], [Aggregation.turn_average])["turn_average"]["turn_average"]  # type: ignore[index]
    assert per_turn == {"1": {"average": 8.0, "n": 2, "n_total": 2}, "2": {"average": 5.0, "n": 1, "n_total": 2}}


def test_single_summary_excludes_failures_per_turn() -> None:
    judgments = [
        {"model": "m", "turn": 1, "category": "math", "score": 8.0, "status": "scored"},
        {"model": "m", "turn": 1, "category": "writing", "score": 6.0, "status": "scored"},
        {"model": "m", "turn": 2, "category": "math", "score": 3.0, "status": "scored"},
        {"model": "m", "turn": 2, "category": "writing", "score": None, "status": "parse_error"},
    ]
    summary = summarize_single(judgments)["m"]
    assert (summary["turn_1"], summary["turn_2"], summary["overall"]) == (7.0, 3.0, pytest.approx(17 / 3))
    assert summary["categories"] == {"math": 5.5, "writing": 6.0}
    assert (summary["n_scored"], summary["n_failed"], summary["n_total"]) == (3, 1, 4)


def test_pairwise_summary_counts_ties_as_half() -> None:
    def judgment(a: str, b: str, winner: str | None, ab: str, ba: str) -> dict[str, object]:
        status = "scored" if winner else "parse_error"
        return {"model_a": a, "model_b": b, "winner": winner, "status": status, "verdict_ab": ab, "verdict_ba": ba}

    judgments = [
        judgment("x", "y", "model_a", "A", "B"),
        judgment("x", "y", "tie (inconsistent)", "A", "A"),
        judgment("x", "y", "model_b", "B", "A"),
        judgment("x", "y", None, "A", None),
    ]
    summary = summarize_pairwise(judgments)
    assert summary["models"]["x"] | {"ci95": None} == {
        "wins": 1,
        "losses": 1,
        "ties": 1,
        "win_rate": 0.5,
        "ci95": None,
        "n_games": 3,
    }
    assert summary["position_consistency"] == pytest.approx(2 / 3)
    assert summary["first_position_win_rate"] == pytest.approx(5 / 7)  # A in 5 of the 7 verdicts given
    assert (summary["n_scored"], summary["n_failed"]) == (3, 1)


def test_agreement_on_a_hand_made_vote_set() -> None:
    ours = [
        {"question_id": 1, "model_a": "x", "model_b": "y", "turn": 1, "winner": "model_a"},
        {"question_id": 2, "model_a": "y", "model_b": "x", "turn": 1, "winner": "model_a"},  # y wins
        {"question_id": 3, "model_a": "x", "model_b": "y", "turn": 1, "winner": "tie (inconsistent)"},
        {"question_id": 1, "model_a": "x", "model_b": "y", "turn": 2, "winner": "model_b"},
    ]
    votes = [
        {"question_id": 1, "model_a": "y", "model_b": "x", "turn": 1, "winner": "model_b", "judge": "h1"},  # x wins
        {"question_id": 1, "model_a": "x", "model_b": "y", "turn": 1, "winner": "model_b", "judge": "h2"},
        {"question_id": 2, "model_a": "x", "model_b": "y", "turn": 1, "winner": "model_b", "judge": "h1"},  # y wins
        {"question_id": 3, "model_a": "x", "model_b": "y", "turn": 1, "winner": "tie", "judge": "h1"},
        {"question_id": 3, "model_a": "x", "model_b": "y", "turn": 1, "winner": "model_a", "judge": "h2"},
        {"question_id": 1, "model_a": "x", "model_b": "y", "turn": 2, "winner": "model_b", "judge": "h1"},
        {"question_id": 1, "model_a": "x", "model_b": "y", "turn": 2, "winner": "model_b", "judge": "bot"},
    ]
    report = agreement(ours, votes)
    turn_1 = report["turn_1"]["ours_vs_votes"]
    # turn 1 comparisons (sorted pair x<y): q1 x/x ✓, q1 x/y ✗, q2 y/y ✓, q3 tie/tie ✓, q3 tie/x ✗
    assert turn_1["with_ties"] == {"agreement": 3 / 5, "n": 5}
    assert turn_1["without_ties"] == {"agreement": 2 / 3, "n": 3}
    # kappa with ties over (x,x),(x,y),(y,y),(tie,tie),(tie,x): po=3/5, pe=(2*2+2*1+1*2)/25=8/25
    assert turn_1["kappa_with_ties"] == pytest.approx((3 / 5 - 8 / 25) / (1 - 8 / 25))
    # votes among themselves, turn 1: q1 h1 x vs h2 y ✗; q3 h1 tie vs h2 x ✗ (skipped without ties)
    assert report["turn_1"]["votes_vs_votes"]["with_ties"] == {"agreement": 0.0, "n": 2}
    assert report["turn_1"]["votes_vs_votes"]["without_ties"] == {"agreement": 0.0, "n": 1}
    assert report["turn_2"]["ours_vs_votes"]["with_ties"] == {"agreement": 1.0, "n": 2}
    assert report["all"]["ours_vs_votes"]["with_ties"] == {"agreement": 5 / 7, "n": 7}
    only_h = agreement(ours, votes, judge="h")
    assert only_h["turn_2"]["ours_vs_votes"]["with_ties"]["n"] == 1
    with pytest.raises(JudgeInputError, match="vote 0: winner must be one of"):
        agreement(ours, [{"question_id": 1, "model_a": "x", "model_b": "y", "turn": 1, "winner": "x"}])


def test_cohen_kappa() -> None:
    assert cohen_kappa([("a", "a"), ("b", "b")]) == 1.0
    assert cohen_kappa([("a", "b"), ("b", "a")]) == -1.0
    assert cohen_kappa([("a", "a")]) is None and cohen_kappa([]) is None


def test_question_rows_expand_from_the_package() -> None:
    rows = expand_question_rows([*question_rows([81, 111]), {"question_id": 81, "keep": "me"}])
    assert rows[0]["category"] == "writing" and len(rows[0]["turns"]) == 2 and "reference" not in rows[0]
    assert rows[1]["category"] == "math" and len(rows[1]["reference"]) == 2 and rows[2]["keep"] == "me"
    assert len(question_rows()) == 80
    with pytest.raises(JudgeInputError, match="row 0: no MT-bench question with question_id 7"):
        expand_question_rows([{"question_id": 7}])
