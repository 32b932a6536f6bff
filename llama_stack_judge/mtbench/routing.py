"""Which of the eight MT-bench judges sees which row, with which template fields.

Routing follows the MT-bench paper and FastChat's llm_judge: math, reasoning and coding are judged against a
reference answer; the second turn is judged by the multi-turn judges, which are shown the whole conversation.
"""

import math
from collections.abc import Mapping, Sequence
from typing import Literal

from llama_stack_judge.errors import JudgeInputError
from llama_stack_judge.mtbench.questions import NEED_REFERENCE

JUDGE_PREFIX = "mt-bench-"  # shipped definition files are mt-bench-<MT-bench judge name>.json
Kind = Literal["single", "pair"]


def judge_name(kind: Kind, *, turn: int, with_reference: bool) -> str:
    """The MT-bench judge for a kind of judgment, turn and reference (e.g. ``single-math-v1-multi-turn``)."""
    bases = {
        ("single", False): "single-v1",
        ("single", True): "single-math-v1",
        ("pair", False): "pair-v2",
        ("pair", True): "pair-math-v1",
    }
    base = bases[(kind, with_reference)]
    return f"{base}-multi-turn" if turn == 2 else base


def _missing(value: object) -> bool:
    # Datasets read through pandas (llama-stack's localfs datasetio) fill absent cells with NaN.
    return value is None or (isinstance(value, float) and math.isnan(value))


def _turns(row: Mapping[str, object], key: str, *, where: str, required: bool = True) -> tuple[str, ...] | None:
    value = row.get(key)
    if _missing(value):
        if required:
            raise JudgeInputError(f"{where}: missing field '{key}'")
        return None
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not value or not all(isinstance(turn, str) for turn in value):
        raise JudgeInputError(f"{where}: '{key}' must be text or a non-empty list of texts")
    return tuple(value)


def _turn(row: Mapping[str, object], responses: Sequence[str], *, where: str) -> int:
    turn = row.get("turn", len(responses))
    if turn not in (1, 2) or isinstance(turn, bool):
        raise JudgeInputError(f"{where}: 'turn' must be 1 or 2, got {turn!r}")
    return int(turn)  # type: ignore[call-overload]


# Row fields, in order of preference: an eval row's own names come after the task's.
QUESTION_FIELDS = ("question", "turns", "input_query")
RESPONSE_FIELDS = ("response", "generated_turns", "generated_answer")


def _field(row: Mapping[str, object], names: Sequence[str]) -> str:
    return next((name for name in names if name in row), names[0])


def _conversation_fields(
    row: Mapping[str, object], response_keys: Mapping[str, str], *, where: str, turn: int | None = None
) -> tuple[int, bool, dict[str, str]]:
    """The turn, whether a reference is used, and the template fields of one row.

    ``response_keys`` maps row fields to template names (``{"response": "response"}`` or, for pairwise,
    ``{"response_a": "response_a", "response_b": "response_b"}``). ``turn`` overrides the row's.
    """
    questions = _turns(row, _field(row, QUESTION_FIELDS), where=where)
    responses = {name: _turns(row, key, where=where) for key, name in response_keys.items()}
    reference = _turns(row, "reference", where=where, required=False)
    category = None if _missing(row.get("category")) else row.get("category")
    if category is not None and not isinstance(category, str):
        raise JudgeInputError(f"{where}: 'category' must be text")
    if category in NEED_REFERENCE and reference is None:
        raise JudgeInputError(f"{where}: category '{category}' is judged against a reference answer: add 'reference'")
    with_reference = reference is not None and (category is None or category in NEED_REFERENCE)
    first = next(iter(responses.values()))
    turn = turn or _turn(row, first or (), where=where)
    sources = {"question": questions, **responses, **({"reference": reference} if with_reference else {})}
    short = [key for key, turns in sources.items() if turns is not None and len(turns) < turn]
    if short:
        raise JudgeInputError(f"{where}: turn {turn} needs {turn} entries in {short}")
    fields: dict[str, str] = {}
    for name, turns in sources.items():
        assert turns is not None
        if turn == 1:
            fields[name] = turns[0]
        else:
            fields[f"{name}_1"], fields[f"{name}_2"] = turns[0], turns[1]
    return turn, with_reference, fields


def rating_inputs(row: Mapping[str, object], *, where: str) -> list[tuple[int, str, dict[str, str]]]:
    """The judgments of a single-answer row: for each turn to judge, its judge and template fields.

    A row has ``question`` and ``response`` (text, or a list with one entry per turn; an eval row's ``turns`` /
    ``input_query`` and ``generated_turns`` / ``generated_answer`` are read too), optionally ``reference`` and
    ``category``. ``turn`` (1 or 2) judges that turn only; without it every turn is judged, as MT-bench does.
    """
    response_field = _field(row, RESPONSE_FIELDS)
    keys = {response_field: "response"}
    turns: list[int | None] = [None]  # the row's own turn
    if "turn" not in row:
        responses = _turns(row, response_field, where=where) or ()
        turns = list(range(1, min(len(responses), 2) + 1))
    judgments = []
    for wanted in turns:
        turn, with_reference, fields = _conversation_fields(row, keys, where=where, turn=wanted)
        judgments.append((turn, judge_name("single", turn=turn, with_reference=with_reference), fields))
    return judgments


def _swap_sides(key: str) -> str:
    """``response_a…`` ↔ ``response_b…``; other fields stay."""
    for side, other in (("response_a", "response_b"), ("response_b", "response_a")):
        if key.startswith(side):
            return other + key.removeprefix(side)
    return key


def pairwise_inputs(row: Mapping[str, object], *, where: str) -> tuple[int, str, dict[str, str], dict[str, str]]:
    """The turn, judge and template fields in both orders (A/B, then B/A) of a pairwise row.

    ``turn`` says which turn is compared (default: the last).
    """
    keys = {"response_a": "response_a", "response_b": "response_b"}
    turn, with_reference, fields = _conversation_fields(row, keys, where=where)
    swapped = {_swap_sides(key): value for key, value in fields.items()}
    return turn, judge_name("pair", turn=turn, with_reference=with_reference), fields, swapped
