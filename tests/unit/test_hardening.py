"""The pure core against hostile or careless input: patterns, truncated replies, extreme numbers, non-text."""

import math
import re
import time

import pytest

from llama_stack_judge.core.aggregate import Statistics, aggregate
from llama_stack_judge.core.chat import ChatReply, ChatRequest
from llama_stack_judge.core.definitions import Aggregation, validate_definition
from llama_stack_judge.core.options import JudgeOptions
from llama_stack_judge.core.outcomes import Outcome, RowResult, compact_result
from llama_stack_judge.core.patterns import MAX_SCANNED_CHARS, VerdictPattern
from llama_stack_judge.core.rows import check_rows
from llama_stack_judge.core.runner import Judge, RunSettings, Usage
from llama_stack_judge.core.stats import bootstrap_ci, group_means, mean, median
from llama_stack_judge.core.text import without_surrogates
from llama_stack_judge.core.verdicts import json_verdict
from llama_stack_judge.errors import JudgeDefinitionError, JudgeInputError

BASE = {"identifier": "t::x", "prompt_template": "A: {a}"}
EVIL = r"(?:a|aa)*(b)"  # exponential for a backtracking engine on "aaaa…c"


def test_a_pattern_with_catastrophic_backtracking_matches_in_linear_time() -> None:
    pattern = VerdictPattern.compile(EVIL)
    text = "a" * 50_000 + "c"
    started = time.perf_counter()
    assert pattern.captures(text) == []
    assert not pattern.found_in(text)
    assert time.perf_counter() - started < 1.0  # Python's re would not finish in a lifetime


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [
        (r"(\d)\1", "does not compile"),  # backreference
        (r"(?<=Rating: )(\d+)", "does not compile"),  # lookbehind
        (r"(\d)(?=\])", "does not compile"),  # lookahead
        (r"((a{100}){100})", "does not compile"),  # a program too large
        ("(x)" + "y" * 1000, "the limit is 1000"),
    ],
)
def test_patterns_re2_cannot_run_are_refused_naming_the_pattern(pattern: str, fragment: str) -> None:
    data = {**BASE, "verdict": {"patterns": [r"\[\[(\d+)\]\]", pattern]}}
    with pytest.raises(JudgeDefinitionError) as error:
        validate_definition(data, source="registration")
    message = str(error.value)
    assert "pattern 1" in message and fragment in message


@pytest.mark.parametrize(
    ("source", "reply"),
    [
        (r"\[\[(\d+)\]\]", "Rating: [[7]], then [[8]]"),  # ASCII: byte and character offsets agree
        (r"\[\[(\d+)\]\]", "Évaluation — très juste 😀. Note : [[7]], puis [[8]]"),  # 1-4 bytes a character
        (r"Verdict : \[\[(.+?)\]\]", "Déjà vu. Verdict : [[très bon]] … Verdict : [[égal]]"),  # non-ASCII capture
        (r"(x)?\[\[\d\]\]", "é [[1]] é x[[2]]"),  # a group that took no part captures ""
        (r"\[\[(\d+)\]\]", "\ud800 é [[7]]"),  # a lone surrogate is matched as one U+FFFD: offsets hold
    ],
)
def test_captures_and_their_offsets_are_those_of_pythons_re_in_any_text(source: str, reply: str) -> None:
    expected = [(m.group(1) or "", max(m.start(1), m.start())) for m in re.finditer(source, reply)]
    assert VerdictPattern.compile(source).captures(reply) == expected
    assert VerdictPattern.compile(source).found_in(reply)


def test_offsets_of_many_matches_in_non_ascii_text_take_linear_time() -> None:
    reply = "é" * MAX_SCANNED_CHARS  # a match at every character, two bytes each
    started = time.perf_counter()
    found = VerdictPattern.compile("(.)").captures(reply)
    assert time.perf_counter() - started < 2.0  # converting each offset from the start would take minutes
    assert found[-1] == ("é", MAX_SCANNED_CHARS - 1) and len(found) == MAX_SCANNED_CHARS


def test_a_very_long_reply_is_read_from_its_tail() -> None:
    pattern = VerdictPattern.compile(r"\[\[(\d+)\]\]")
    reply = "[[1]]" + "x" * (2 * MAX_SCANNED_CHARS) + "Rating: [[7]]"
    assert [captured for captured, _ in pattern.captures(reply)] == ["7"]
    # The check for verdict-like inputs looks at both ends of a long text.
    assert pattern.found_in("[[3]]" + "x" * (3 * MAX_SCANNED_CHARS))
    assert not pattern.found_in("x" * (3 * MAX_SCANNED_CHARS))


def test_a_group_that_takes_no_part_is_an_empty_verdict_not_a_crash() -> None:
    definition = validate_definition({**BASE, "verdict": {"patterns": [r"(\d)?!"]}}, source="t")
    parsed = definition.parse_verdict("no digit!")
    assert parsed.score is None and "not a number" in (parsed.error or "")


@pytest.mark.parametrize("structured", [False, True])
def test_a_truncated_reply_has_no_verdict(structured: bool) -> None:
    definition = validate_definition({**BASE, "structured_output": structured}, source="t")
    cut = 'The format is "Rating: [[9]]". My verdict: Rating: [['
    if structured:
        cut = '{"explanation": "the format is [[9]] and'
    assert definition.parse_verdict(cut, truncated=False).score == 9.0  # the example, read as if it were the verdict
    parsed = definition.parse_verdict(cut, truncated=True)
    assert parsed.score is None and parsed.error is not None and parsed.error.startswith("truncated")
    assert "max_tokens 1024" in parsed.error


def test_accept_truncated_scores_only_a_complete_verdict() -> None:
    first = validate_definition({**BASE, "accept_truncated": True}, source="t")
    assert first.parse_verdict("[[8]] because the answer is clear and", truncated=True).score == 8.0
    structured = validate_definition({**BASE, "accept_truncated": True, "structured_output": True}, source="t")
    assert structured.parse_verdict('{"verdict": 8, "explanation": "cl', truncated=True).error.startswith("truncated")
    assert structured.parse_verdict('{"verdict": 8, "explanation": "ok"}', truncated=True).score == 8.0


class ScriptedChat:
    """Replies with fixed text and finish reason; counts calls."""

    def __init__(self, text: str, finish_reason: str | None = "stop") -> None:
        self.reply = ChatReply(text, prompt_tokens=3, completion_tokens=2, finish_reason=finish_reason)
        self.calls = 0

    async def __call__(self, request: ChatRequest) -> ChatReply:
        self.calls += 1
        return self.reply


async def test_the_runner_keeps_the_finish_reason_and_ends_truncated_rows_as_parse_errors() -> None:
    definition = validate_definition(BASE, source="t")
    judge = Judge(ScriptedChat('e.g. "Rating: [[9]]" … Rating: [[', finish_reason="length"), RunSettings())
    (result,) = await judge.judge_rows(definition, [{"a": "x"}], judge_model="m")
    assert result.outcome is Outcome.parse_error and result.finish_reason == "length"
    row = result.as_score_row()
    assert row["finish_reason"] == "length" and str(row["error"]).startswith("truncated")
    judge = Judge(ScriptedChat("Rating: [[6]]"), RunSettings())
    (result,) = await judge.judge_rows(definition, [{"a": "x"}], judge_model="m")
    assert result.score == 6.0 and result.as_score_row()["finish_reason"] == "stop"


@pytest.mark.parametrize(
    "reply",
    [
        '{"explanation": "x", "verdict": ' + "9" * 5000 + "}",  # more digits than Python turns into an int
        "[" * 100_000,  # deeper than the JSON decoder recurses
        '{"verdict": 1e999}',
    ],
)
def test_json_verdicts_that_are_not_numbers_are_refused_quietly(reply: str) -> None:
    assert json_verdict(reply) is None or not math.isfinite(float(json_verdict(reply) or "nan"))
    definition = validate_definition({**BASE, "structured_output": True}, source="t")
    assert definition.parse_verdict(reply).score is None


def test_ratings_beyond_the_limit_are_parse_errors_and_ranges_are_bounded() -> None:
    definition = validate_definition({**BASE, "verdict": {"patterns": [r"\[\[([-+.e\d]+)\]\]"]}}, source="t")
    assert definition.parse_verdict("[[1.7e308]]").error == "rating '1.7e308' is beyond ±1e+06, the limit of any rating"
    assert definition.parse_verdict("[[-99]]").score == -99.0
    with pytest.raises(JudgeDefinitionError, match=r"verdict\.rating\.max"):
        validate_definition({**BASE, "verdict": {"max": 1e300}}, source="t")


def test_aggregates_of_extreme_finite_values_do_not_overflow() -> None:
    huge = [1.7e308, 1.7e308, 1.5e308]
    assert mean(huge) == pytest.approx(1.6333e308, rel=1e-4)
    assert median([1.7e308, 1.6e308]) == pytest.approx(1.65e308)
    low, high = bootstrap_ci(huge, seed=0) or (0.0, 0.0)
    assert 1.5e308 <= low <= high <= 1.7e308
    assert group_means(["a", "a"], [1.7e308, 1.7e308])["a"]["average"] == 1.7e308
    results = [RowResult.scored_value(v) for v in huge]
    aggregated = aggregate(results, (Aggregation.average, Aggregation.median, Aggregation.accuracy), Statistics())
    assert math.isfinite(aggregated["average"]["average"])  # type: ignore[index]
    # Ordinary values give exactly what they gave before.
    assert mean([7.0, 8.0, 9.0]) == 8.0 and median([1.0, 2.0]) == 1.5


def test_scores_of_other_providers_that_are_not_finite_count_as_unscored() -> None:
    assert compact_result({"score": 10**400}).outcome is Outcome.parse_error
    assert compact_result({"score": float("nan")}).outcome is Outcome.parse_error
    assert compact_result({"score": 3}).score == 3.0


def test_rows_with_lone_surrogates_are_refused_naming_row_and_column() -> None:
    rows = [{"a": "fine"}, {"a": "ok", "turns": ["fine", "bad \ud800"]}]
    with pytest.raises(JudgeInputError) as error:
        check_rows(rows, user="f")
    assert "row 1: column 'turns' holds a lone surrogate" in str(error.value)


async def test_a_reply_with_lone_surrogates_is_kept_as_text_and_counted() -> None:
    definition = validate_definition(BASE, source="t")
    usage = Usage()
    judge = Judge(ScriptedChat("odd \udc80\ud800 Rating: [[7]]"), RunSettings())
    (result,) = await judge.judge_rows(definition, [{"a": "x"}], judge_model="m", usage=usage)
    assert result.score == 7.0 and result.judge_output == "odd \ufffd\ufffd Rating: [[7]]"
    assert usage.replaced_characters == 2
    assert without_surrogates("a\ud800b") == "a\ufffdb"


def test_definitions_with_lone_surrogates_are_refused_naming_the_field() -> None:
    with pytest.raises(JudgeDefinitionError, match=r"defaults\.a: holds a lone surrogate"):
        validate_definition({**BASE, "defaults": {"a": "\ud800"}}, source="t")


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"seed": -1}, "seed"),
        ({"group_by": [""]}, "group_by"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"judge_option": 1}, "judge_option"),
        ([1, 2], "(top level)"),
    ],
)
def test_options_of_the_wrong_shape_or_bounds_name_the_option(options: object, field: str) -> None:
    with pytest.raises(JudgeInputError) as error:
        JudgeOptions.parse(options, where="score")
    assert field in str(error.value)


def test_a_cache_scope_keeps_tenants_keys_apart_and_leaves_unscoped_keys_as_they_were() -> None:
    from llama_stack_judge.core.cache import cache_key
    from llama_stack_judge.core.chat import ChatMessage

    request = ChatRequest(model="m", messages=(ChatMessage("user", "x"),))
    keys = {cache_key(request, 0), cache_key(request, 0, scope="user:alice"), cache_key(request, 0, scope="user:bob")}
    assert len(keys) == 3
    # The key of an unscoped request is the one stored before scopes existed (a pinned hash).
    assert cache_key(request, 0) == "fcec3358faefa375ad15d1d6a67ef0349debdbdd52071ebee42fb017bf52d5c9"
