"""Verdict grammars: what they allow, how definitions use them, and that llama.cpp accepts them."""

from collections.abc import Iterator

import httpx
import pytest

from llama_stack_judge.core.cache import cache_key
from llama_stack_judge.core.definitions import validate_definition
from llama_stack_judge.core.grammar import json_verdict_grammar, text_verdict_grammar
from llama_stack_judge.core.options import JudgeOptions
from llama_stack_judge.core.runner import render_request
from llama_stack_judge.errors import JudgeDefinitionError
from tests.embedded_marks import needs_llama_server, needs_smollm2

RATING = {"identifier": "t::rating", "prompt_template": "Rate {answer}.", "verdict": {"min": 1, "max": 10}}
CHOICE = {
    "identifier": "t::choice",
    "prompt_template": "Compare {a} and {b}.",
    "verdict": {"type": "choice", "patterns": [r"\[\[([ABC])\]\]"], "choices": {"A": 1, "B": 0, "C": 0.5}},
}


def test_text_grammar_enumerates_an_integer_range_after_a_free_explanation() -> None:
    grammar = text_verdict_grammar(minimum=1, maximum=10, max_explanation_chars=900)
    assert 'root ::= explanation "[[" verdict "]]"' in grammar
    assert "{0,900}" in grammar
    assert 'verdict ::= "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9" | "10"' in grammar


def test_unbounded_or_fractional_ranges_take_any_number() -> None:
    assert 'verdict ::= "-"? [0-9]{1,6} ("." [0-9]{1,3})?' in text_verdict_grammar()
    assert 'verdict ::= [0-9]{1,6} ("." [0-9]{1,3})?' in text_verdict_grammar(minimum=0.0, maximum=0.5)


def test_json_grammar_quotes_choice_labels() -> None:
    grammar = json_verdict_grammar(choices=["A", "B"])
    assert r'verdict ::= "\"A\"" | "\"B\""' in grammar
    assert r'"\"explanation\""' in grammar


def test_definitions_send_a_grammar_only_when_asked_and_then_no_response_format() -> None:
    plain = validate_definition(RATING, source="test")
    assert render_request(plain, {"answer": "x"}, judge_model="m").grammar is None
    constrained = JudgeOptions(verdict_grammar=True, structured_output=True).apply(plain)
    request = render_request(constrained, {"answer": "x"}, judge_model="m")
    assert request.response_schema is None
    assert request.grammar == json_verdict_grammar(minimum=1, maximum=10)
    text = JudgeOptions(verdict_grammar=True).apply(plain)
    assert render_request(text, {"answer": "x"}, judge_model="m").grammar == text_verdict_grammar(minimum=1, maximum=10)
    choice = validate_definition({**CHOICE, "verdict_grammar": True}, source="test")
    assert 'verdict ::= "A" | "B" | "C"' in (choice.grammar or "")


def test_an_explanation_cap_shortens_the_grammars_explanation_and_is_another_judge() -> None:
    plain = validate_definition(RATING, source="test")
    default = JudgeOptions(verdict_grammar=True, structured_output=True).apply(plain)
    capped = JudgeOptions(verdict_grammar=True, structured_output=True, max_explanation_chars=250).apply(plain)
    assert 'string ::= "\\"" char{0,1500} "\\""' in (default.grammar or "")
    assert 'string ::= "\\"" char{0,250} "\\""' in (capped.grammar or "")
    assert capped.content_hash != default.content_hash  # another judge: another card and cache key
    assert default.content_hash == default.with_changes(max_explanation_chars=1500).content_hash
    with pytest.raises(JudgeDefinitionError, match="max_explanation_chars"):
        validate_definition({**RATING, "max_explanation_chars": -1}, source="test")


def test_the_grammar_is_part_of_the_cache_key() -> None:
    plain = validate_definition(RATING, source="test")
    constrained = JudgeOptions(verdict_grammar=True).apply(plain)
    keys = {cache_key(render_request(d, {"answer": "x"}, judge_model="m"), 0) for d in (plain, constrained)}
    assert len(keys) == 2


def test_a_grammar_the_patterns_cannot_read_is_refused_at_definition_time() -> None:
    data = {**RATING, "verdict_grammar": True, "verdict": {"patterns": [r"Score: (\d+)"], "min": 1, "max": 10}}
    with pytest.raises(
        JudgeDefinitionError, match=r"verdict_grammar writes verdicts as '\[\[1\]\]', which the verdict"
    ):
        validate_definition(data, source="test")
    # With structured output the grammar writes JSON, which is read without the patterns.
    validate_definition({**data, "structured_output": True}, source="test")


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """llama.cpp's own server with the small packaged model: its grammar parser is the one the judge meets."""
    from llama_stack_judge.embedded import embedded_server
    from llama_stack_judge.embedded.models import SMOLLM2_135M

    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with embedded_server(SMOLLM2_135M.name, log_path=log) as server:
        yield server.base_url.removesuffix("/v1")


def _parses(server: str, grammar: str) -> bool:
    """Whether llama-server accepts ``grammar``: it answers 400 to one it cannot parse."""
    response = httpx.post(f"{server}/completion", json={"prompt": "x", "n_predict": 1, "grammar": grammar}, timeout=60)
    if response.status_code == 400:
        assert "grammar" in response.text, response.text
        return False
    response.raise_for_status()
    return True


@pytest.mark.parametrize(
    "grammar",
    [
        text_verdict_grammar(minimum=1, maximum=10),
        text_verdict_grammar(choices=["A", "B", "C"]),
        text_verdict_grammar(),
        json_verdict_grammar(minimum=1, maximum=10),
        json_verdict_grammar(choices=["A", "B", "C"]),
    ],
)
@needs_llama_server
@needs_smollm2
def test_llama_server_parses_every_grammar(llama_server: str, grammar: str) -> None:
    assert _parses(llama_server, grammar)


@needs_llama_server
@needs_smollm2
def test_llama_server_refuses_a_broken_grammar(llama_server: str) -> None:
    assert not _parses(llama_server, "root ::= ( broken")
