"""The required literal that lets verdict patterns skip RE2: what it finds, and that skipping never changes a result."""

import dataclasses
import random

import pytest

from llama_stack_judge.core.literals import required_literal
from llama_stack_judge.core.patterns import VerdictPattern


@pytest.mark.parametrize(
    ("source", "literal"),
    [
        (r"Rating: \[\[(\d+)\]\]", "Rating: [["),
        (r"\[\[(\d+\.?\d*)\]\]", "[["),
        (r"Verdict:\s*(\w+)", "Verdict:"),
        (r"ab?c(x)", "a"),  # b is optional: a and c are not side by side in every match
        (r"(a|b)zz", "zz"),  # a choice inside a group leaves the rest alone
        (r"[]x](y)abc", "abc"),  # a leading ']' belongs to its class
        (r"(?P<v>\d)\.\d", "."),
        (r"(\d+)", None),  # nothing literal
        (r"a|b(c)", None),  # a top-level choice: nothing is in every match
        (r"(?i)rating: (\d)", None),  # flags change what a literal matches
        (r"\x41(b)", None),  # an escape that reads further characters
        (r"\Qa.b\E(c)", None),
        (r"[[:alpha:]](x)", None),  # RE2 reads a POSIX class where a plain reading would find a literal ']'
        (r"a{3}(b)", None),  # RE2 reads {3} as a count, or as text where it is not one
        (r"é+(x)ü", "ü"),
    ],
)
def test_required_literal_of_plain_patterns_and_none_where_unsure(source: str, literal: str | None) -> None:
    assert required_literal(source) == literal


SOURCES = [
    r"Rating: \[\[(\d+)\]\]",
    r"\[\[(\d+\.?\d*)\]\]",
    r"\[\[([ABC])\]\]",
    r"x(y*)x",  # matches that can share their literal's characters
    r"ab?(c)a",
    r"(a|ab)b",
]


@pytest.mark.parametrize("source", SOURCES)
def test_skipping_re2_never_changes_what_a_pattern_finds(source: str) -> None:
    pattern = VerdictPattern.compile(source)
    assert pattern._literal is not None
    plain = dataclasses.replace(pattern, _literal=None)  # every text to RE2
    pieces = ["Rating: ", "[[", "]]", "[", "]", "7", "8.5", "A", "C", "x", "y", "a", "b", "c", " ", "é"]
    pieces += ["Rating: [[7]]", "[[8.5]]", "[[B]]", "xyx", "xx", "abca", "aca", "abb"]  # whole matches, often twice
    rng = random.Random(source)
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        assert pattern.captures(text) == plain.captures(text), text
        assert pattern.found_in(text) == plain.found_in(text), text
