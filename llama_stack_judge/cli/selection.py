"""What an MT-bench command judges: answer files, questions and turns, read once into a typed selection.

The rows are built question-major: consecutive prompts then share the judge's instructions and the question (and
reference), which a llama.cpp server does not evaluate again (it reuses the previous prompt's common prefix).
"""

import argparse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

from llama_stack_judge.errors import JudgeInputError
from llama_stack_judge.mtbench.questions import NEED_REFERENCE, Question, data_file, load_questions, load_turn_answers
from llama_stack_judge.mtbench.work import Answers, Work, add_pair, add_single
from llama_stack_judge.run_info import file_record


def parse_turns(value: str) -> tuple[int, ...]:
    """``--turns``: 1, 2 or 1,2."""
    turns = tuple(sorted({int(part) for part in value.split(",")}))
    if not turns or not set(turns) <= {1, 2}:
        raise argparse.ArgumentTypeError("turns are 1, 2 or 1,2")
    return turns


@dataclass(frozen=True)
class Selection:
    """The answer files, the question and reference files, and which of their questions and turns to judge."""

    answers: tuple[str, ...]
    questions: str = str(data_file("question.jsonl"))
    references: str = str(data_file("reference_answer_gpt-4.jsonl"))
    question_ids: str | None = None  # comma-separated
    categories: str | None = None  # comma-separated
    turns: tuple[int, ...] = (1, 2)
    limit: int | None = None  # the first N questions
    only_answered: bool = False  # only the questions the answer files answer (the shipped sample's few)

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser, *, answers: str, question_ids: str, turns: str) -> None:
        """The selection's options; the help of the three whose defaults differ between commands is given."""
        parser.add_argument("--answers", nargs="+", help=answers)
        parser.add_argument("--questions", default=Selection.questions, help="default: the shipped file")
        parser.add_argument("--references", default=Selection.references, help="default: GPT-4's")
        parser.add_argument("--question-ids", help=question_ids)
        parser.add_argument("--categories", help="comma-separated categories")
        parser.add_argument("--turns", type=parse_turns, help=turns)
        parser.add_argument("--limit", type=int, help="only the first N questions")

    @classmethod
    def from_args(cls, args: argparse.Namespace, **defaults: Any) -> "Selection":
        """The selection the options made; ``defaults``: the command's own, for options left out."""
        given = {
            "answers": tuple(args.answers) if args.answers else None,
            "questions": args.questions,
            "references": args.references,
            "question_ids": args.question_ids,
            "categories": args.categories,
            "turns": args.turns,
            "limit": args.limit,
        }
        return cls(**(defaults | {key: value for key, value in given.items() if value is not None}))

    def chosen_questions(self) -> list[Question]:
        """The questions to judge, in id order, after the question ids, categories and limit.

        Raises:
            JudgeInputError: naming a question id or category that no question has.
        """
        questions = sorted(load_questions(Path(self.questions)).values(), key=lambda q: q.question_id)
        if self.only_answered:
            answered = set().union(*(load_turn_answers(Path(path)) for path in self.answers))
            questions = [q for q in questions if q.question_id in answered]
        if self.question_ids:
            wanted = {int(part) for part in self.question_ids.split(",")}
            unknown = wanted - {q.question_id for q in questions}
            if unknown:
                raise JudgeInputError(f"--question-ids: no such questions {sorted(unknown)} in {self.questions}")
            questions = [q for q in questions if q.question_id in wanted]
        if self.categories:
            categories = set(self.categories.split(","))
            known = {q.category for q in questions}
            if strays := sorted(categories - known):
                raise JudgeInputError(f"--categories: no question is in {strays}; the categories are {sorted(known)}")
            questions = [q for q in questions if q.category in categories]
        return questions[: self.limit] if self.limit else questions

    def reference_answers(self, questions: Sequence[Question]) -> dict[int, tuple[str, ...]]:
        """The reference answers by question id; every math, reasoning and coding question must have one."""
        references = load_turn_answers(Path(self.references))
        lacking = [q.question_id for q in questions if q.category in NEED_REFERENCE and q.question_id not in references]
        if lacking:
            raise JudgeInputError(
                f"{self.references}: no reference answers for questions {lacking} (math/reasoning/coding)"
            )
        return references

    def record(self) -> dict[str, Any]:
        """The selection as a run's metadata keeps it: the choices, and each file by path and sha256."""
        return {
            "selection": {
                "question_ids": self.question_ids,
                "categories": self.categories,
                "turns": list(self.turns),
                "limit": self.limit,
            },
            "files": {
                "answers": [file_record(path) for path in self.answers],
                "questions": file_record(self.questions),
                "references": file_record(self.references),
            },
        }


def _questions(selection: Selection) -> tuple[list[Question], dict[int, tuple[str, ...]]]:
    questions = selection.chosen_questions()
    return questions, selection.reference_answers(questions)


def single_work(selection: Selection, answers: Answers) -> Work:
    """One row per question, turn and model, in that order."""
    questions, references = _questions(selection)
    work = Work([], [], [])
    for question in questions:
        for turn in selection.turns:
            for model in answers:
                add_single(work, question, references, answers, model, turn)
    return work


def pairwise_work(selection: Selection, answers: Answers, baseline: str | None) -> Work:
    """One row per model pair (all pairs, or each model against ``baseline``), question and turn, question-major."""
    if baseline is not None and baseline not in answers:
        raise JudgeInputError(f"--baseline {baseline!r} is not one of the answer files' models {sorted(answers)}")
    if baseline is None:
        pairs = list(combinations(sorted(answers), 2))
    else:
        pairs = [(model, baseline) for model in sorted(answers) if model != baseline]
    if not pairs:
        raise JudgeInputError("pairwise judging needs answers of at least two models")
    questions, references = _questions(selection)
    work = Work([], [], [])
    for question in questions:
        for turn in selection.turns:
            for pair in pairs:
                add_pair(work, question, references, answers, pair, turn)
    return work


def labelled_pair_work(selection: Selection, answers: Answers, pairs: Iterable[tuple[int, int, str, str]]) -> Work:
    """One row per labelled pair (turn, question id, model a, model b) whose question and turn are selected."""
    questions, references = _questions(selection)
    by_id = {question.question_id: question for question in questions}
    work = Work([], [], [])
    for turn, question_id, model_a, model_b in pairs:
        question = by_id.get(question_id)
        if question is not None and turn in selection.turns:
            add_pair(work, question, references, answers, (model_a, model_b), turn)
    return work
