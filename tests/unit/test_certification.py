"""Certification benchmarks' key rows and their filling-in from the shipped dev data."""

import pytest

from llama_stack_judge.core.jsonl import read_jsonl
from llama_stack_judge.errors import JudgeInputError
from llama_stack_judge.mtbench.certification import (
    DEV,
    certification_rows,
    certification_work,
    judgments_of,
    shipped_answer_files,
)


def test_rating_rows_are_every_models_answer_to_each_question_and_turn() -> None:
    rows = certification_rows("single", question_ids=[81, 111], turns=(1, 2))
    assert len(rows) == len(shipped_answer_files()) * 2 * 2 == 28
    assert rows[0] == {"question_id": 81, "model": "alpaca-13b", "turn": 1}


def test_pairwise_rows_are_the_pairs_a_source_voted_on() -> None:
    experts = {
        (v["question_id"], *sorted((v["model_a"], v["model_b"])))
        for v in read_jsonl(DEV / "human_judgments_dev.jsonl")
        if v["judge"].startswith("expert") and v["turn"] == 1 and v["question_id"] == 81
    }
    rows = certification_rows("pairwise", question_ids=[81], voted_by="experts")
    assert {(r["question_id"], r["model_a"], r["model_b"]) for r in rows} == experts and rows[0]["turn"] == 1
    assert len(certification_rows("pairwise", question_ids=[81])) == 15  # GPT-4 judged every pair of six models


def test_unlabelled_questions_are_refused() -> None:
    with pytest.raises(JudgeInputError, match=r"questions \[82\] have no mt-bench-dev labels"):
        certification_rows("single", question_ids=[81, 82])


def test_key_rows_are_filled_in_with_the_question_reference_and_answers() -> None:
    work = certification_work("single", [{"question_id": 111, "model": "gpt-4", "turn": 2}])  # math: a reference
    [row] = work.rows
    assert row["category"] == "math" and len(row["question"]) == len(row["reference"]) == len(row["response"]) == 2
    assert work.about == [{"question_id": 111, "model": "gpt-4", "turn": 2, "category": "math"}]
    pair = certification_work("pairwise", [{"question_id": 81, "model_a": "gpt-4", "model_b": "llama-13b", "turn": 1}])
    assert set(pair.rows[0]) == {"question", "category", "turn", "response_a", "response_b"}
    orders = [{"verdict": "A", "judge_feedback": "x"}, {"verdict": "B", "judge_feedback": "y"}]
    scored = {"score": 1.0, "status": "scored", "winner": "model_a", "orders": orders}
    [judgment] = judgments_of("pairwise", pair.about, [scored])
    assert judgment["winner"] == "model_a" and judgment["model_b"] == "llama-13b"
    assert (judgment["verdict_ab"], judgment["judge_output_ba"]) == ("A", "y")


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"question_id": "81", "model": "gpt-4", "turn": 1}, "row 5: 'question_id' must be an integer"),
        ({"question_id": 81, "model": "gpt-5", "turn": 1}, "row 5: gpt-5: no answer to question 81 turn 1"),
        ({"question_id": 81, "model": "gpt-4", "turn": 3}, "row 5: gpt-4: no answer to question 81 turn 3"),
        ({"question_id": 999, "model": "gpt-4", "turn": 1}, "row 5: no MT-bench question 999"),
    ],
)
def test_a_bad_key_row_is_refused_by_its_index(row: dict[str, object], message: str) -> None:
    with pytest.raises(JudgeInputError, match=message):
        certification_work("single", [row], first_index=5)
