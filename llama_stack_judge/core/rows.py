"""Checking rows before any work is done: every missing or mistyped column is reported up front."""

from collections.abc import Mapping, Sequence

from llama_stack_judge.errors import JudgeInputError

Row = Mapping[str, object]

_MAX_REPORTED = 5


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
    if problems:
        more = f" (and {len(problems) - _MAX_REPORTED} more)" if len(problems) > _MAX_REPORTED else ""
        raise JudgeInputError(f"{user}: " + "; ".join(problems[:_MAX_REPORTED]) + more)
    return picked


def check_size(rows: Sequence[Row], *, max_rows: int, max_text_chars: int, user: str) -> None:
    """Refuse a call with more rows, or longer texts, than the provider takes (a 400 that names the limit).

    Raises:
        JudgeInputError: naming the row count or the rows and columns over the limit.
    """
    if len(rows) > max_rows:
        raise JudgeInputError(
            f"{user}: {len(rows)} rows in one call; the limit is {max_rows} (max_rows in the provider config): "
            "split them, or run an eval job"
        )
    problems = []
    for index, row in enumerate(rows):
        for column, value in row.items():
            texts = value if isinstance(value, list) else [value]
            longest = max((len(text) for text in texts if isinstance(text, str)), default=0)
            if longest > max_text_chars:
                problems.append(f"row {index}: column '{column}' has {longest} characters")
    if problems:
        more = f" (and {len(problems) - _MAX_REPORTED} more)" if len(problems) > _MAX_REPORTED else ""
        raise JudgeInputError(
            f"{user}: "
            + "; ".join(problems[:_MAX_REPORTED])
            + more
            + f"; the limit is {max_text_chars} (max_text_chars in the provider config)"
        )
