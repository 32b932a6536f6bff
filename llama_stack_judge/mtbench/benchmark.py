"""MT-bench through the Eval API: the questions as a dataset and an ``mt-bench`` benchmark over them.

``run_eval("mt-bench", {eval_candidate, scoring_params})`` then has the candidate answer both turns of every question
(the second with its own first answer in the conversation) and judges each turn with the right MT-bench judge.
The dataset's rows hold only question ids, which keeps run configs small: the benchmark's metadata turns on the row
expander ``mt_bench_questions`` (``expand_question_rows``, offered as an entry point in ``pyproject.toml``), through
which the eval provider reads each question's category, turns and reference answers from the package.
"""

from collections.abc import Iterable, Sequence
from typing import Any

from llama_stack_judge.errors import JudgeInputError
from llama_stack_judge.mtbench.certification import Kind, certification_rows
from llama_stack_judge.mtbench.questions import NEED_REFERENCE, data_file, load_questions, load_turn_answers
from llama_stack_judge.mtbench.tasks import PAIRWISE_TASK, RATING_TASK
from llama_stack_judge.names import PREFIX

BENCHMARK_ID = "mt-bench"
DATASET_ID = "mt-bench-questions"
QUESTIONS_FLAG = "mt_bench_questions"  # the row expander's entry-point name
BENCHMARK_METADATA = {"judge_options": {"group_by": ["category"]}, QUESTIONS_FLAG: True}


def question_rows(question_ids: Iterable[int] | None = None) -> list[dict[str, Any]]:
    """Dataset rows for the MT-bench questions (all 80 by default): just their ids."""
    ids = sorted(load_questions(data_file("question.jsonl"))) if question_ids is None else list(question_ids)
    return [{"question_id": qid} for qid in ids]


def expand_question_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each row with the category, user ``turns`` and (for math/reasoning/coding) ``reference`` of its question."""
    questions = load_questions(data_file("question.jsonl"))
    references = load_turn_answers(data_file("reference_answer_gpt-4.jsonl"))
    expanded = []
    for index, row in enumerate(rows):
        question = questions.get(row.get("question_id"))  # type: ignore[arg-type]
        if question is None:
            raise JudgeInputError(f"row {index}: no MT-bench question with question_id {row.get('question_id')!r}")
        full: dict[str, Any] = {"category": question.category, "turns": list(question.turns)}
        if question.category in NEED_REFERENCE:
            full["reference"] = list(references[question.question_id])
        expanded.append(dict(row) | full)
    return expanded


def registered_resources(eval_provider_id: str) -> dict[str, list[dict[str, Any]]]:
    """The ``registered_resources`` of a run config that ships the dataset and the ``mt-bench`` benchmark."""
    return {
        "datasets": [
            {
                "dataset_id": DATASET_ID,
                "purpose": "eval/messages-answer",
                "source": {"type": "rows", "rows": question_rows()},
            }
        ],
        "benchmarks": [
            {
                "benchmark_id": BENCHMARK_ID,
                "dataset_id": DATASET_ID,
                "scoring_functions": [f"{PREFIX}::{RATING_TASK}"],
                "provider_id": eval_provider_id,
                "metadata": BENCHMARK_METADATA,
            }
        ],
    }


def register_mt_bench(
    client: Any,
    *,
    question_ids: Iterable[int] | None = None,
    benchmark_id: str = BENCHMARK_ID,
    dataset_id: str = DATASET_ID,
    provider_id: str = "judge-eval",
) -> str:
    """Register the questions (all, or ``question_ids``) as a dataset and the benchmark; returns its id."""
    client.beta.datasets.register(
        purpose="eval/messages-answer",
        source={"type": "rows", "rows": question_rows(question_ids)},
        dataset_id=dataset_id,
    )
    client.alpha.benchmarks.register(
        benchmark_id=benchmark_id,
        dataset_id=dataset_id,
        scoring_functions=[f"{PREFIX}::{RATING_TASK}"],
        provider_id=provider_id,
        metadata=BENCHMARK_METADATA,
    )
    return benchmark_id


def register_certification(
    client: Any,
    kind: Kind,
    *,
    question_ids: Iterable[int] | None = None,
    turns: Iterable[int] = (1,),
    voted_by: str | None = None,
    benchmark_id: str | None = None,
    provider_id: str = "judge-eval",
) -> str:
    """Register a certification benchmark of the MT-bench judges on the shipped dev labels; returns its id.

    ``run_eval(benchmark_id, {"eval_candidate": {"type": "model", "model": <judge model>, ...}})`` then judges the
    labelled answers (all odd questions, or ``question_ids``; ``turns``; pairwise: the pairs ``voted_by`` a label
    source voted on, or all labelled pairs) with that model as judge, and files the judge card.
    """
    benchmark_id = benchmark_id or f"certify-{kind}"
    dataset_id = f"{benchmark_id}-answers"
    rows = certification_rows(kind, question_ids=question_ids, turns=turns, voted_by=voted_by)
    if not rows:
        raise JudgeInputError(f"no labelled {kind} rows for questions {question_ids}, turns {list(turns)}")
    client.beta.datasets.register(
        purpose="eval/messages-answer", source={"type": "rows", "rows": rows}, dataset_id=dataset_id
    )
    client.alpha.benchmarks.register(
        benchmark_id=benchmark_id,
        dataset_id=dataset_id,
        scoring_functions=[f"{PREFIX}::{PAIRWISE_TASK if kind == 'pairwise' else RATING_TASK}"],
        provider_id=provider_id,
        metadata={"certification": {"kind": kind}},
    )
    return benchmark_id
