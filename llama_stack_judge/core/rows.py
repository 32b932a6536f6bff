"""Checking rows before any work is done: every missing or mistyped column is reported up front."""

from collections.abc import Mapping, Sequence

from llama_stack_judge.core.text import strings_in, surrogate_count
from llama_stack_judge.errors import JudgeInputError, input_problems

Row = Mapping[str, object]


def text_columns(
    rows: Sequence[Row], columns: Sequence[str], *, defaults: Mapping[str, str], user: str
) -> list[dict[str, str]]:
    """Pick the text ``columns`` of every row, falling back to ``defaults``.

    Raises:
        JudgeInputError: listing the rows and columns that are missing or not text, before anything is judged.
    """
    if not rows:
        raise JudgeInputError(f"{user}: no rows to score")
    picked: list[dict[str, str]] = []
    problems: list[str] = []
    for index, row in enumerate(rows):
        values: dict[str, str] = {}
        for column in columns:
            value = row.get(column, defaults.get(column))
            if value is None:
                problems.append(f"row {index}: missing column '{column}'")
            elif not isinstance(value, str):
                problems.append(f"row {index}: column '{column}' must be text, got {type(value).__name__}")
            else:
                values[column] = value
        picked.append(values)
    _refuse(problems, user=user)
    return picked


def _refuse(problems: list[str], *, user: str, limit: str = "") -> None:
    if problems:
        raise input_problems(problems, where=user, suffix=limit)


def check_rows(
    rows: Sequence[Row], *, user: str, max_rows: int | None = None, max_text_chars: int | None = None
) -> None:
    """Refuse a call with more rows or longer texts than the provider takes, or with text that is not text.

    A lone surrogate (valid as a JSON escape, but no character in UTF-8) could not be sent to a judge or stored.

    Raises:
        JudgeInputError: naming the row count, or the rows and columns at fault and the limit.
    """
    if max_rows is not None and len(rows) > max_rows:
        raise JudgeInputError(
            f"{user}: {len(rows)} rows in one call; the limit is {max_rows} (max_rows in the provider config): "
            "split them, or run an eval job"
        )
    too_long, not_text = [], []
    for index, row in enumerate(rows):
        for column, value in row.items():
            texts = [text for _, text in strings_in(value)]
            longest = max(map(len, texts), default=0)
            if max_text_chars is not None and longest > max_text_chars:
                too_long.append(f"row {index}: column '{column}' has {longest} characters")
            if any(surrogate_count(text) for text in texts):
                not_text.append(f"row {index}: column '{column}' holds a lone surrogate (\\ud800-\\udfff), not text")
    _refuse(not_text, user=user)
    _refuse(too_long, user=user, limit=f"; the limit is {max_text_chars} (max_text_chars in the provider config)")
