"""Reading a verdict from a judge's output: last match of the first pattern that matches, range-checked."""

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from llama_stack_judge.core.patterns import VerdictPattern

# The largest rating magnitude any judge may give: a rating judge without a range still gets one, so a garbled reply
# ("[[1e308]]") is a parse error instead of a score that swamps (or overflows) every average.
RATING_LIMIT = 1e6


@dataclass(frozen=True, slots=True)
class ParsedVerdict:
    """A verdict read from judge output: ``score`` and ``label`` on success, else ``error``."""

    score: float | None = None
    label: str | None = None
    error: str | None = None
    start: int | None = None  # where the verdict starts in the judge output, when read by a pattern


def verdict_match(patterns: Sequence[VerdictPattern], text: str, *, first: bool = False) -> tuple[str, int] | None:
    """The capture (and its start) of the last (or ``first``) match of the first pattern that matches in ``text``.

    Patterns are tried in order (a strict one such as ``[[n]]`` before a lenient fallback such as ``[n]``);
    within a pattern the *last* match wins, because judges restate the format before giving their verdict — or the
    ``first``, for a judge asked to give its verdict first.
    """
    for pattern in patterns:
        captures = pattern.captures(text)
        if captures:
            captured, start = captures[0 if first else -1]
            return captured, start + len(captured) - len(captured.lstrip())  # where the verdict itself starts
    return None


def parse_rating(
    text: str, patterns: Sequence[VerdictPattern], *, minimum: float | None, maximum: float | None, first: bool = False
) -> ParsedVerdict:
    """Read a numeric rating (the last, or the ``first``) and check it against the allowed range."""
    found = verdict_match(patterns, text, first=first)
    if found is None:
        return ParsedVerdict(error="no verdict found in the judge output")
    return replace(check_rating(found[0], minimum=minimum, maximum=maximum), start=found[1])


def check_rating(captured: str, *, minimum: float | None, maximum: float | None) -> ParsedVerdict:
    """A rating as written, checked to be a finite number within the allowed range."""
    try:
        value = float(captured.strip())
    except ValueError:
        return ParsedVerdict(label=captured, error=f"verdict {captured!r} is not a number")
    if not math.isfinite(value):
        return ParsedVerdict(label=captured, error=f"verdict {captured!r} is not a finite number")
    if abs(value) > RATING_LIMIT:
        return ParsedVerdict(
            label=captured, error=f"rating {captured!r} is beyond ±{RATING_LIMIT:g}, the limit of any rating"
        )
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        return ParsedVerdict(label=captured, error=f"rating {captured!r} is outside [{minimum}, {maximum}]")
    return ParsedVerdict(score=value, label=captured.strip())


def parse_choice(
    text: str, patterns: Sequence[VerdictPattern], choices: Mapping[str, float], *, first: bool = False
) -> ParsedVerdict:
    """Read a categorical verdict (the last, or the ``first``) and map it to its score."""
    found = verdict_match(patterns, text, first=first)
    if found is None:
        return ParsedVerdict(error="no verdict found in the judge output")
    return replace(check_choice(found[0], choices), start=found[1])


def check_choice(captured: str, choices: Mapping[str, float]) -> ParsedVerdict:
    """A categorical verdict as written, checked to be one of the allowed labels."""
    label = captured.strip()
    if label not in choices:
        return ParsedVerdict(label=label, error=f"verdict {label!r} is not one of {sorted(choices)}")
    return ParsedVerdict(score=choices[label], label=label)


def json_verdict(text: str) -> str | None:
    """The ``verdict`` field of a JSON object reply (structured output), as text; ``None`` if it is not one."""
    stripped = text.strip()
    if not stripped.startswith("{"):
        return None
    try:
        data = json.loads(stripped)
    # ValueError: an integer of more digits than Python converts; RecursionError: arrays nested thousands deep.
    except (ValueError, RecursionError):
        return None
    verdict = data.get("verdict") if isinstance(data, dict) else None
    if isinstance(verdict, bool) or not isinstance(verdict, str | int | float):
        return None
    return str(verdict)
