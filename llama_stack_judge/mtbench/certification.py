"""Judge certification: the labelled work a judge is measured on, and the card its judgments make.

Labels are pairwise votes (experts, authors, GPT-4) and reference ratings. The shipped ones, ``mt-bench-dev``, are
the MT-bench development split: the votes and GPT-4's single ratings for the odd question ids, with the seven
models' answers. Shared by the ``certify`` command and the eval provider's certification benchmarks, which name
their rows by key (question, model or model pair, turn) and have them filled in from the shipped data.
"""

import csv
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from llama_stack_judge.core.agreement import Key, keyed_vote
from llama_stack_judge.core.card import SOURCES, AnswerKey, pairwise_card, rating_card
from llama_stack_judge.core.jsonl import read_jsonl
from llama_stack_judge.errors import JudgeInputError
from llama_stack_judge.mtbench.questions import data_file, load_questions, load_turn_answers
from llama_stack_judge.mtbench.work import Answers, Work, add_pair, add_single, pairwise_judgment, single_judgment

SHIPPED_LABELS = "mt-bench-dev"
DEV = data_file("dev")
DEV_QUESTION_IDS = tuple(range(81, 161, 2))  # the labelled (odd) questions
Kind = Literal["single", "pairwise"]


@dataclass(frozen=True, slots=True)
class Labels:
    """What a judge is measured against: pairwise votes, and reference ratings by answer."""

    name: str  # "mt-bench-dev", or the votes file
    votes: list[dict[str, Any]]
    ratings: dict[AnswerKey, float]


def load_labels(labels: str, ratings_file: str | None = None) -> Labels:
    """The shipped labels (``mt-bench-dev``), or a JSONL of votes and an optional CSV of reference ratings."""
    if labels == SHIPPED_LABELS:
        return _shipped_labels()
    return Labels(labels, read_jsonl(Path(labels)), _read_ratings(ratings_file) if ratings_file else {})


@functools.cache
def _shipped_labels() -> Labels:
    votes = read_jsonl(DEV / "human_judgments_dev.jsonl") + read_jsonl(DEV / "gpt4_pair_judgments_dev.jsonl")
    return Labels(SHIPPED_LABELS, votes, _read_ratings(str(DEV / "gpt4_single_scores_dev.csv")))


def _read_ratings(path: str) -> dict[AnswerKey, float]:
    ratings: dict[AnswerKey, float] = {}
    with Path(path).open(encoding="utf-8", newline="") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            try:
                ratings[(row["model"], int(row["question_id"]), int(row["turn"]))] = float(row["score"])
            except (KeyError, TypeError, ValueError) as exc:
                raise JudgeInputError(f"{path}:{line}: needs model, question_id, turn, score ({exc})") from None
    return ratings


def shipped_answer_files() -> list[str]:
    """The seven models' answer files of the shipped labels."""
    return [str(path) for path in sorted((DEV / "answers").glob("*.jsonl"))]


def answer_lengths(answers: Answers) -> dict[AnswerKey, int]:
    """Every answer's length in characters, by model, question and turn."""
    return {
        (model, question_id, turn): len(text)
        for model, by_question in answers.items()
        for question_id, turns in by_question.items()
        for turn, text in enumerate(turns, start=1)
    }


def labelled_pairs(votes: Iterable[Mapping[str, Any]], *, voted_by: str | None = None) -> list[Key]:
    """The keys (turn, question, sorted model pair) that have votes; with ``voted_by``, votes of that source only."""
    prefix = SOURCES[voted_by] if voted_by else ""
    return sorted(
        {
            keyed_vote(vote, where=f"vote {index}")[0]
            for index, vote in enumerate(votes)
            if str(vote.get("judge", "")).startswith(prefix)
        }
    )


def judge_card(
    kind: Kind,
    judgments: Sequence[Mapping[str, Any]],
    labels: Labels,
    lengths: Mapping[AnswerKey, int],
    *,
    seed: int,
    complete: bool,
    usage: Mapping[str, int],
    seconds: float,
    run: Mapping[str, Any],
) -> dict[str, Any]:
    """The card of a rating (``single``) or ``pairwise`` judge's judgments against ``labels``, with the run's cost.

    ``run`` says what produced the judgments (date, judges, ...); it keys the card (see ``cardbook.card_key``).
    """
    figures = (
        pairwise_card(judgments, labels.votes, lengths, seed=seed)
        if kind == "pairwise"
        else rating_card(judgments, labels.ratings, labels.votes, lengths, seed=seed)
    )
    return figures | {
        "labels": labels.name,
        "complete": complete,
        "n_judgments": len(judgments),
        "speed": _speed(len(judgments), usage, seconds),
        "run": dict(run),
    }


def _speed(n_judgments: int, usage: Mapping[str, int], seconds: float) -> dict[str, Any]:
    """Seconds and tokens per judgment; cache hits count as judgments, so seconds per inference call too."""
    calls = usage.get("inference_calls", 0)
    per_judgment = (lambda total: total / n_judgments) if n_judgments else (lambda total: None)
    return {
        "seconds_per_judgment": per_judgment(seconds),
        "seconds_per_inference_call": seconds / calls if calls else None,
        "prompt_tokens_per_judgment": per_judgment(usage.get("prompt_tokens", 0)),
        "completion_tokens_per_judgment": per_judgment(usage.get("completion_tokens", 0)),
        "inference_calls": calls,
        "cache_hits": usage.get("cache_hits", 0),
    }


# Certification benchmarks: their dataset rows are keys into the shipped labels' data.


@functools.cache
def shipped_data() -> tuple[dict[int, Any], dict[int, tuple[str, ...]], dict[str, dict[int, tuple[str, ...]]]]:
    """The questions, GPT-4's reference answers and the seven models' answers, read once per process."""
    answers = {Path(path).stem: load_turn_answers(Path(path)) for path in shipped_answer_files()}
    return (
        load_questions(data_file("question.jsonl")),
        load_turn_answers(data_file("reference_answer_gpt-4.jsonl")),
        answers,
    )


def certification_rows(
    kind: Kind,
    *,
    question_ids: Iterable[int] | None = None,
    turns: Iterable[int] = (1,),
    voted_by: str | None = None,
) -> list[dict[str, Any]]:
    """Dataset rows of a certification benchmark on the shipped labels: one per answer (single) or labelled pair."""
    wanted, turns = set(question_ids or DEV_QUESTION_IDS), set(turns)
    if unlabelled := sorted(wanted - set(DEV_QUESTION_IDS)):
        raise JudgeInputError(f"questions {unlabelled} have no {SHIPPED_LABELS} labels: those are the odd ids 81-159")
    if kind == "pairwise":
        return [
            {"question_id": question_id, "model_a": model_a, "model_b": model_b, "turn": turn}
            for turn, question_id, model_a, model_b in labelled_pairs(_shipped_labels().votes, voted_by=voted_by)
            if question_id in wanted and turn in turns
        ]
    _, _, answers = shipped_data()
    # Question-major, as the command line's rows: a llama.cpp judge reuses the instructions and question of the
    # previous prompt.
    return [
        {"question_id": question_id, "model": model, "turn": turn}
        for question_id in sorted(wanted)
        for turn in sorted(turns)
        for model in sorted(answers)
    ]


def _key_field(row: Mapping[str, Any], name: str, expected: type, *, where: str) -> Any:
    value = row.get(name)
    if not isinstance(value, expected) or isinstance(value, bool):
        described = "an integer" if expected is int else "a string"
        raise JudgeInputError(f"{where}: '{name}' must be {described}, got {value!r}")
    return value


def certification_work(kind: Kind, rows: Sequence[Mapping[str, Any]], *, first_index: int = 0) -> Work:
    """The MT-bench task rows of a certification benchmark's key rows, filled in from the shipped data.

    Raises:
        JudgeInputError: naming the row, for a key without a question or an answer in the shipped data.
    """
    questions, references, answers = shipped_data()
    work = Work([], [], [])
    for index, row in enumerate(rows, start=first_index):
        where = f"row {index}"
        question_id = _key_field(row, "question_id", int, where=where)
        turn = _key_field(row, "turn", int, where=where)
        question = questions.get(question_id)
        if question is None:
            raise JudgeInputError(f"{where}: no MT-bench question {question_id}")
        if kind == "pairwise":
            models = (_key_field(row, "model_a", str, where=where), _key_field(row, "model_b", str, where=where))
            add_pair(work, question, references, answers, models, turn)
        else:
            add_single(work, question, references, answers, _key_field(row, "model", str, where=where), turn)
        if work.skipped:
            raise JudgeInputError(f"{where}: {work.skipped[0]} in the shipped answers (models: {sorted(answers)})")
    return work


def judgments_of(
    kind: Kind, about: Sequence[Mapping[str, Any]], scored: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Judgment records of score rows, each with what its row is about."""
    to_judgment = pairwise_judgment if kind == "pairwise" else single_judgment
    return [to_judgment(what, score_row) for what, score_row in zip(about, scored, strict=True)]
