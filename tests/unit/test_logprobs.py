"""Expected verdicts from hand-made log probabilities: every expected value below is worked out by hand."""

import hashlib
import json
import math
from dataclasses import replace

import pytest

from llama_stack_judge.core.cache import MemoryCache, cache_key, decode_reply, encode_reply
from llama_stack_judge.core.chat import ChatReply, ChatRequest, TokenLogprob, token_offsets
from llama_stack_judge.core.definitions import validate_definition
from llama_stack_judge.core.logprobs import NoDistributionError, verdict_distribution
from llama_stack_judge.core.outcomes import Outcome
from llama_stack_judge.core.pairwise import position_consistency, winner_probabilities
from llama_stack_judge.core.runner import VERDICT_FIRST_INSTRUCTION, Judge, RunSettings, Usage, render_request
from llama_stack_judge.errors import JudgeDefinitionError
from llama_stack_judge.mtbench.tasks import combine_pair

ONE_TO_TEN = [str(v) for v in range(1, 11)]


def reply(tokens: list[str], alternatives: dict[int, dict[str, float]]) -> ChatReply:
    """A reply of ``tokens``; token ``i`` has the probabilities ``alternatives[i]`` (else it is certain)."""
    text = "".join(tokens)
    logprobs = []
    for index, (token, offset) in enumerate(zip(tokens, token_offsets(text, tokens), strict=True)):
        top = {t: math.log(p) for t, p in alternatives.get(index, {token: 1.0}).items()}
        logprobs.append(TokenLogprob(token, top.get(token, 0.0), offset, tuple(top.items())))
    return ChatReply(text=text, logprobs=tuple(logprobs))


def distribution(tokens: list[str], alternatives: dict[int, dict[str, float]], values: list[str] = ONE_TO_TEN):
    made = reply(tokens, alternatives)
    assert made.logprobs is not None
    start = made.text.rindex("[[") + 2
    return verdict_distribution(made.text, made.logprobs, start, values)


def test_one_token_rating_is_the_probability_weighted_mean() -> None:
    found = distribution(["Rating", ":", " [[", "8", "]]"], {3: {"8": 0.6, "7": 0.3, "9": 0.1}})
    assert found.probabilities == pytest.approx({"8": 0.6, "7": 0.3, "9": 0.1})
    # 0.6·8 + 0.3·7 + 0.1·9 = 4.8 + 2.1 + 0.9
    assert found.expected({v: float(v) for v in ONE_TO_TEN}) == pytest.approx(7.8)
    assert found.mass == pytest.approx(1.0)


def test_a_two_token_ten_is_followed_along_the_reply() -> None:
    # "1" (0.5) then "0" (0.8) or "]]" (0.2): P(10) = 0.4, P(1) = 0.1; P(9) = 0.5.
    found = distribution(["[[", "1", "0", "]]"], {1: {"1": 0.5, "9": 0.5}, 2: {"0": 0.8, "]]": 0.2}})
    assert found.probabilities == pytest.approx({"10": 0.4, "1": 0.1, "9": 0.5})
    assert found.expected({v: float(v) for v in ONE_TO_TEN}) == pytest.approx(4.0 + 0.1 + 4.5)


def test_an_ambiguous_alternative_off_the_path_is_left_out_and_reported() -> None:
    # The judge wrote 8; its "1" (0.2) may be a 1 or the start of a 10: unresolved, not counted as either.
    found = distribution(["[[", "8", "]]"], {1: {"8": 0.7, "1": 0.2, "7": 0.1}})
    assert found.probabilities == pytest.approx({"8": 0.7 / 0.8, "7": 0.1 / 0.8})
    assert found.unresolved == pytest.approx(0.2)
    assert found.mass == pytest.approx(0.8)


def test_alternatives_that_are_no_verdict_are_renormalised_away() -> None:
    found = distribution(["[[", "6", "]]"], {1: {"6": 0.5, "5": 0.25, "x": 0.25}})
    assert found.probabilities == pytest.approx({"6": 2 / 3, "5": 1 / 3})
    assert found.mass == pytest.approx(0.75)


def test_a_lead_fused_to_the_verdict_token_is_matched_on_every_alternative() -> None:
    # One token "[[8" holds the brackets and the verdict: alternatives without the brackets are no verdict here.
    found = distribution(["Rating: ", "[[8", "]]"], {1: {"[[8": 0.5, "[[9": 0.25, "Hello": 0.25}})
    assert found.probabilities == pytest.approx({"8": 2 / 3, "9": 1 / 3})


def test_no_distribution_when_tokens_do_not_line_up_or_hold_no_verdict() -> None:
    made = reply(["[[", "8", "]]"], {})
    assert made.logprobs is not None
    shifted = tuple(TokenLogprob(t.token, t.logprob, t.offset + 1, t.top) for t in made.logprobs)
    with pytest.raises(NoDistributionError, match="line up"):
        verdict_distribution("x[[8]]", shifted[:1] + made.logprobs[1:], 3, ONE_TO_TEN)
    with pytest.raises(NoDistributionError, match="covers"):
        verdict_distribution(made.text, made.logprobs, 99, ONE_TO_TEN)
    with pytest.raises(NoDistributionError, match="allowed"):
        distribution(["[[", "x", "]]"], {1: {"x": 0.9, "y": 0.1}})


def test_pairwise_orders_combine_over_the_swap() -> None:
    # In B/A "A" is model_b: model_a = (0.7 + 0.5) / 2 = 0.6, model_b = (0.2 + 0.4) / 2 = 0.3, tie = 0.1.
    chances = winner_probabilities({"A": 0.7, "B": 0.2, "C": 0.1}, {"A": 0.4, "B": 0.5, "C": 0.1})
    assert chances == pytest.approx({"model_a": 0.6, "model_b": 0.3, "tie": 0.1})


def test_position_consistency_reads_the_written_verdicts_not_the_combined_winner() -> None:
    # Expected verdicts give every pair a winner; a judge that wrote "B" in both orders still followed the position.
    pairs = [("B", "B"), ("A", "B"), ("C", "C"), ("A", "C"), ("B", None)]  # the last lacks a verdict: left out
    assert position_consistency(pairs) == pytest.approx(2 / 4)
    assert position_consistency([]) is None


PAIR = validate_definition(
    {
        "identifier": "t::pair",
        "prompt_template": "{a} vs {b}",
        "verdict": {"type": "choice", "patterns": [r"\[\[([ABC])\]\]"], "choices": {"A": 1, "B": 0, "C": 0.5}},
        "verdict_weighting": "expected",
    },
    source="test",
)
RATING = validate_definition(
    {
        "identifier": "t::rating",
        "prompt_template": "Answer: {answer}",
        "verdict": {"type": "rating", "min": 1, "max": 10},
        "verdict_weighting": "expected",
    },
    source="test",
)


async def test_a_pair_judged_in_expected_mode_scores_its_win_probability() -> None:
    replies = iter(
        [
            reply(["[[", "A", "]]"], {1: {"A": 0.7, "B": 0.2, "C": 0.1}}),
            reply(["[[", "B", "]]"], {1: {"A": 0.4, "B": 0.5, "C": 0.1}}),
        ]
    )

    async def chat(request: ChatRequest) -> ChatReply:
        assert request.top_logprobs == 20
        return next(replies)

    orders = [render_request(PAIR, {"a": a, "b": b}, judge_model="judge") for a, b in (("x", "y"), ("y", "x"))]
    ab, ba = await Judge(chat).judge_requests([(PAIR, request) for request in orders])
    pair = combine_pair("pair-v2", 1, ab, ba)
    assert pair.score == pytest.approx(0.6 + 0.5 * 0.1)
    assert pair.verdict == "model_a"
    assert pair.as_score_row()["orders"][0]["verdict_distribution"]["probabilities"] == {"A": 0.7, "B": 0.2, "C": 0.1}


class LogprobChat:
    """Rates every answer 8 (P 0.5) with 9 (P 0.5), with log probabilities only when ``gives_logprobs``."""

    def __init__(self, *, gives_logprobs: bool) -> None:
        self.gives_logprobs = gives_logprobs
        self.calls = 0

    async def __call__(self, request: ChatRequest) -> ChatReply:
        self.calls += 1
        made = reply(["Fine", ".", " Rating", ": [[", "8", "]]"], {4: {"8": 0.5, "9": 0.5}})
        return made if self.gives_logprobs else ChatReply(text=made.text)


async def test_expected_ratings_are_scored_kept_in_the_row_and_cached_with_their_tokens_only() -> None:
    cache, usage = MemoryCache(), Usage()
    judge = Judge(LogprobChat(gives_logprobs=True), RunSettings(), cache=cache)
    [first] = await judge.judge_rows(RATING, [{"answer": "x"}], judge_model="judge", usage=usage)
    assert first.outcome is Outcome.scored and first.score == pytest.approx(8.5)
    assert first.verdict == "8"
    assert first.as_score_row()["verdict_distribution"] == {"probabilities": {"8": 0.5, "9": 0.5}, "mass": 1.0}
    [stored] = cache.replies.values()
    assert [token.token for token in stored.logprobs or ()] == ["8", "]]"]  # the explanation's tokens are dropped
    assert decode_reply(encode_reply(stored)) == stored
    [again] = await judge.judge_rows(RATING, [{"answer": "x"}], judge_model="judge", usage=usage)
    assert again.score == pytest.approx(8.5) and usage.cache_hits == 1


async def test_without_logprobs_the_written_verdict_stands_and_the_fallback_is_counted() -> None:
    usage = Usage()
    [row] = await Judge(LogprobChat(gives_logprobs=False)).judge_rows(
        RATING, [{"answer": "x"}], judge_model="judge", usage=usage
    )
    assert row.score == 8.0
    assert row.as_score_row()["verdict_distribution_fallback"] == "the inference provider returned no log probabilities"
    assert usage.expected_verdict_fallbacks == 1


def test_expected_requests_have_their_own_cache_keys_and_old_keys_hold() -> None:
    plain = ChatRequest("judge", (), temperature=0.0)
    assert cache_key(plain, 0) != cache_key(replace(plain, top_logprobs=20), 0)
    # The key as it was made before grammar and top_logprobs existed: stored replies are still found.
    before = {"v": 1, "sample": 0, "model": "judge", "messages": [], "temperature": 0.0, "max_tokens": None}
    before |= {"top_p": None, "response_schema": None}
    assert cache_key(plain, 0) == hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"structured_output": True}, "no structured_output"),
        ({"verdict": {"type": "rating"}}, "integer rating scale"),
        ({"verdict": {"type": "rating", "min": 0, "max": 1000}}, "at most 101"),
    ],
)
def test_expected_weighting_needs_a_short_list_of_verdicts_read_from_text(changes: dict, message: str) -> None:
    with pytest.raises(JudgeDefinitionError, match=message):
        RATING.with_changes(**changes)


def test_the_definition_hash_of_a_sampled_judge_is_unchanged_by_the_new_fields() -> None:
    sampled = RATING.with_changes(verdict_weighting="sampled")
    new_fields = {"verdict_weighting", "verdict_first", "max_explanation_chars"}  # at defaults: hashes as before
    data = sampled.model_dump(mode="json", exclude={"identifier", "description", *new_fields})
    assert sampled.content_hash == hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    assert RATING.content_hash != sampled.content_hash


async def test_a_verdict_first_judge_is_asked_for_it_and_its_first_verdict_counts_even_when_cut() -> None:
    first = RATING.with_changes(verdict_first=True, verdict_grammar=True, sampling={"max_tokens": 8})
    request = render_request(first, {"answer": "x"}, judge_model="judge")
    assert request.messages[-1].content.endswith(VERDICT_FIRST_INSTRUCTION)
    assert request.grammar is not None and request.grammar.startswith('root ::= "[[" verdict "]]" explanation')

    async def chat(request: ChatRequest) -> ChatReply:  # the verdict, then an explanation cut by max_tokens
        made = reply(["[[", "7", "]]", " It", " restates", " [[", "9"], {1: {"7": 0.5, "6": 0.5}})
        return replace(made, finish_reason="length")

    [row] = await Judge(chat).judge_rows(first, [{"answer": "x"}], judge_model="judge")
    assert row.outcome is Outcome.scored and row.verdict == "7" and row.score == pytest.approx(6.5)
    [cut] = await Judge(chat).judge_rows(RATING, [{"answer": "x"}], judge_model="judge")
    assert cut.outcome is Outcome.parse_error and cut.error is not None and cut.error.startswith("truncated")
