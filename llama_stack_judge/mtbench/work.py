"""MT-bench work: the tasks' rows built from questions, references and answers, and the judgments made of them.

Judgments are the lines of ``judgments.jsonl``, and the input of judge cards.

Shared by the command line, which judges answer files, and the eval provider, which certifies judges.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llama_stack_judge.core.panel import majority_of
from llama_stack_judge.errors import JudgeInputError
from llama_stack_judge.mtbench.questions import NEED_REFERENCE, Question, load_turn_answers

Answers = Mapping[str, Mapping[int, tuple[str, ...]]]  # answer turns by model and question id


def answer_files(paths: Sequence[str]) -> dict[str, dict[int, tuple[str, ...]]]:
    """Answers by model (the file stem) and question id."""
    answers: dict[str, dict[int, tuple[str, ...]]] = {}
    for path in map(Path, paths):
        if path.stem in answers:
            raise JudgeInputError(f"{path}: two answer files for model {path.stem!r}")
        answers[path.stem] = load_turn_answers(path)
    return answers


@dataclass(frozen=True, slots=True)
class Work:
    """Rows for the scoring task and, for each, what it is about (written into judgments.jsonl)."""

    rows: list[dict[str, Any]]
    about: list[dict[str, Any]]
    skipped: list[str]


def conversation_row(question: Question, references: Mapping[int, tuple[str, ...]], turn: int) -> dict[str, Any]:
    """A task row's question side up to ``turn``: its turns, category and, where the judge needs it, the reference."""
    row: dict[str, Any] = {"question": list(question.turns[:turn]), "category": question.category, "turn": turn}
    if question.category in NEED_REFERENCE:
        row["reference"] = list(references[question.question_id][:turn])
    return row


def add_single(
    work: Work, question: Question, references: Mapping[int, tuple[str, ...]], answers: Answers, model: str, turn: int
) -> None:
    """The rating row of one model's answer to ``question`` up to ``turn``; a note in ``skipped`` if it lacks one."""
    turns = answers.get(model, {}).get(question.question_id)
    if turns is None or len(turns) < turn:
        work.skipped.append(f"{model}: no answer to question {question.question_id} turn {turn}")
        return
    work.rows.append(conversation_row(question, references, turn) | {"response": list(turns[:turn])})
    about = {"question_id": question.question_id, "model": model, "turn": turn}
    work.about.append(about | {"category": question.category})


def add_pair(
    work: Work,
    question: Question,
    references: Mapping[int, tuple[str, ...]],
    answers: Answers,
    models: tuple[str, str],
    turn: int,
) -> None:
    """The pairwise row of two models' answers to ``question`` up to ``turn``; a note in ``skipped`` if one lacks it."""
    model_a, model_b = models
    a, b = answers.get(model_a, {}).get(question.question_id), answers.get(model_b, {}).get(question.question_id)
    if a is None or b is None or len(a) < turn or len(b) < turn:
        work.skipped.append(f"{model_a} vs {model_b}: question {question.question_id} turn {turn}")
        return
    row = conversation_row(question, references, turn)
    work.rows.append(row | {"response_a": list(a[:turn]), "response_b": list(b[:turn])})
    about = {"question_id": question.question_id, "model_a": model_a, "model_b": model_b, "turn": turn}
    work.about.append(about | {"category": question.category})


_WEIGHTING_FIELDS = ("verdict_distribution", "verdict_distribution_fallback", "winner_probabilities")


def _weighting(scored: Mapping[str, Any]) -> dict[str, Any]:
    """An expected verdict's distribution (or why there is none), where the judge was asked for one."""
    return {key: scored[key] for key in _WEIGHTING_FIELDS if key in scored}


def single_judgment(about: Mapping[str, Any], scored: Mapping[str, Any]) -> dict[str, Any]:
    """A judgments.jsonl line of a single-answer judgment."""
    return (
        dict(about)
        | {
            "judge": scored.get("judge"),
            "score": scored["score"],
            "verdict": scored.get("verdict"),
            "status": scored["status"],
            "judge_output": scored.get("judge_feedback"),
            "error": scored.get("error"),
            "verdict_in_response": bool(scored.get("verdict_in_input")),
        }
        | _weighting(scored)
        | _panel(scored, ("score", "verdict", "status"))
    )


def _panel(scored: Mapping[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """A panel's members as a judgments.jsonl line shows them: each one's model and ``fields``."""
    if "panel" not in scored:
        return {}
    return {"panel": [{"judge_model": m.get("judge_model")} | {f: m.get(f) for f in fields} for m in scored["panel"]]}


def _panel_orders(members: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A panel's verdict in each order: its members' majority there ("C", a tie, when none has one)."""
    orders = []
    for index in (0, 1):
        verdicts = [m["orders"][index].get("verdict") for m in members if len(m.get("orders") or []) == 2]
        orders.append({"verdict": majority_of(verdicts, "C"), "judge_feedback": None})
    return orders[0], orders[1]


def pairwise_judgment(about: Mapping[str, Any], scored: Mapping[str, Any]) -> dict[str, Any]:
    """A judgments.jsonl line of a pairwise judgment, with both orders' verdicts and outputs.

    A panel's line holds each member's winner; its own verdict in each order is its members' majority there, and its
    winner the scoring row's (the members' majority winner).
    """
    ab, ba = scored["orders"] if "orders" in scored else _panel_orders(scored["panel"])
    return (
        dict(about)
        | {
            "judge": scored.get("judge"),
            "winner": scored.get("winner"),
            "status": scored["status"],
            "verdict_ab": ab["verdict"],
            "verdict_ba": ba["verdict"],
            "judge_output_ab": ab["judge_feedback"],
            "judge_output_ba": ba["judge_feedback"],
            "error": scored.get("error"),
            "verdict_in_response": bool(scored.get("verdict_in_input")),
        }
        | _weighting(scored)
        | _panel(scored, ("winner", "status"))
    )
