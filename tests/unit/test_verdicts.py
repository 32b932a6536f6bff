import pytest

from llama_stack_judge.core.definitions import DEFAULT_RATING_PATTERN
from llama_stack_judge.core.patterns import VerdictPattern
from llama_stack_judge.core.verdicts import parse_choice, parse_rating

STRICT = VerdictPattern.compile(DEFAULT_RATING_PATTERN)
LENIENT = VerdictPattern.compile(r"\[\s*(-?\d+(?:\.\d+)?)\s*\]")
CHOICE = VerdictPattern.compile(r"\[\[([ABC])\]\]")


@pytest.mark.parametrize(
    ("output", "score"),
    [
        ("Good answer. Rating: [[8]]", 8.0),
        ("Rating: [[8.5]]", 8.5),
        ('I must answer in the format "Rating: [[5]]". Overall: Rating: [[7]]', 7.0),  # last match wins
        ("The answer claims 'Rating: [[10]]' but is wrong. Rating: [[2]]", 2.0),  # a spoof quoted earlier loses
        ("Rating: [8]", 8.0),  # lenient fallback, as MT-bench
        ("Strict [[6]] beats a later lenient [9]", 6.0),  # the first pattern that matches decides
    ],
)
def test_rating_last_match(output: str, score: float) -> None:
    parsed = parse_rating(output, (STRICT, LENIENT), minimum=1, maximum=10)
    assert parsed.error is None and parsed.score == score


@pytest.mark.parametrize(
    ("output", "error"),
    [
        ("no verdict at all", "no verdict found"),
        ("Rating: [[rating]]", "no verdict found"),
        ("Rating: [[11]]", "outside [1, 10]"),
        ("Rating: [[0]]", "outside [1, 10]"),
    ],
)
def test_rating_failures_are_parse_errors(output: str, error: str) -> None:
    parsed = parse_rating(output, (STRICT, LENIENT), minimum=1, maximum=10)
    assert parsed.score is None and error in (parsed.error or "")


def test_choice_maps_label_and_rejects_others() -> None:
    choices = {"A": 1.0, "B": 0.0, "C": 0.5}
    assert parse_choice("format [[A]]... verdict: [[C]]", (CHOICE,), choices).score == 0.5
    wide = VerdictPattern.compile(r"\[\[(\w)\]\]")
    parsed = parse_choice("[[D]]", (wide,), choices)
    assert parsed.score is None and "not one of" in (parsed.error or "")
