"""MT-bench's data: the questions, reference answers and model answers shipped in ``data/`` or given as files."""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from llama_stack_judge.core.jsonl import read_numbered
from llama_stack_judge.errors import JudgeInputError

NEED_REFERENCE = frozenset({"math", "reasoning", "coding"})


def data_file(name: str) -> Path:
    """A file of the MT-bench data shipped with the package."""
    return Path(str(resources.files("llama_stack_judge.mtbench") / "data" / name))


@dataclass(frozen=True, slots=True)
class Question:
    """One MT-bench question: its id, category and user turns."""

    question_id: int
    category: str
    turns: tuple[str, ...]


def _text_list(value: object, *, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(turn, str) for turn in value):
        raise JudgeInputError(f"{where}: expected a non-empty list of strings")
    return tuple(value)


def _question_id(record: Mapping[str, object], *, where: str) -> int:
    value = record.get("question_id")
    if not isinstance(value, int) or isinstance(value, bool):
        raise JudgeInputError(f"{where}: 'question_id' must be an integer, got {value!r}")
    return value


def _by_question_id(path: Path) -> Iterator[tuple[str, int, Mapping[str, object]]]:
    """Each record of a JSONL file with where it is and its question id; a second record of an id is refused.

    Raises:
        JudgeInputError: naming the file, both lines and the id, since which of two answers counts is anyone's guess.
    """
    first_line: dict[int, int] = {}
    for line, record in read_numbered(path):
        where = f"{path}:{line}"
        qid = _question_id(record, where=where)
        if qid in first_line:
            raise JudgeInputError(
                f"{where}: question_id {qid} again (first at line {first_line[qid]}); keep one record per question"
            )
        first_line[qid] = line
        yield where, qid, record


def load_questions(path: Path) -> dict[int, Question]:
    """Questions by id, from a FastChat ``question.jsonl``."""
    questions = {}
    for where, qid, record in _by_question_id(path):
        category = record.get("category")
        if not isinstance(category, str):
            raise JudgeInputError(f"{where}: 'category' must be a string")
        questions[qid] = Question(qid, category, _text_list(record.get("turns"), where=f"{where}: 'turns'"))
    return questions


def load_turn_answers(path: Path) -> dict[int, tuple[str, ...]]:
    """Answer turns by question id, from a FastChat answer file (``choices[0].turns``); also reference answers."""
    answers = {}
    for where, qid, record in _by_question_id(path):
        choices = record.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise JudgeInputError(f"{where}: expected 'choices': [{{'turns': [...]}}]")
        answers[qid] = _text_list(choices[0].get("turns"), where=f"{where}: 'turns'")
    return answers
