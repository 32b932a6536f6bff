"""MT-bench through the Eval API: the questions as a dataset and an ``mt-bench`` benchmark over them.

``run_eval("mt-bench", {eval_candidate, scoring_params})`` then has the candidate answer both turns of every question
(the second with its own first answer in the conversation) and judges each turn with the right MT-bench judge.
"""

from collections.abc import Sequence
from typing import Any

from llama_stack_judge.core.mtbench import NEED_REFERENCE, Question, data_file, load_questions, load_turn_answers
from llama_stack_judge.core.tasks import RATING_TASK
from llama_stack_judge.scoring.functions import PREFIX

BENCHMARK_ID = "mt-bench"
DATASET_ID = "mt-bench-questions"


def mt_bench_rows(questions: Sequence[Question] | None = None) -> list[dict[str, Any]]:
    """Dataset rows: ``question_id``, ``category``, the user ``turns`` and, where MT-bench uses one, ``reference``."""
    references = load_turn_answers(data_file("reference_answer_gpt-4.jsonl"))
    if questions is None:
        questions = sorted(load_questions(data_file("question.jsonl")).values(), key=lambda q: q.question_id)
    rows = []
    for question in questions:
        row: dict[str, Any] = {
            "question_id": question.question_id,
            "category": question.category,
            "turns": list(question.turns),
        }
        if question.category in NEED_REFERENCE:
            row["reference"] = list(references[question.question_id])
        rows.append(row)
    return rows


def register_mt_bench(
    client: Any,
    *,
    rows: list[dict[str, Any]] | None = None,
    benchmark_id: str = BENCHMARK_ID,
    dataset_id: str = DATASET_ID,
    provider_id: str = "judge-eval",
) -> str:
    """Register the questions as a dataset and the benchmark that judges them; returns the benchmark id."""
    client.beta.datasets.register(
        purpose="eval/messages-answer",
        source={"type": "rows", "rows": rows if rows is not None else mt_bench_rows()},
        dataset_id=dataset_id,
    )
    client.alpha.benchmarks.register(
        benchmark_id=benchmark_id,
        dataset_id=dataset_id,
        scoring_functions=[f"{PREFIX}::{RATING_TASK}"],
        provider_id=provider_id,
        metadata={"judge_options": {"group_by": ["category"]}},
    )
    return benchmark_id
