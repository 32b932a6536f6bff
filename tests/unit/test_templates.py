import pytest

from llama_stack_judge.core.templates import PromptTemplate
from llama_stack_judge.errors import JudgeDefinitionError


def test_renders_placeholders_and_keeps_literal_brackets() -> None:
    template = PromptTemplate.parse('Rate it "[[rating]]", e.g. "Rating: [[5]]".\n{question}\n{answer}')
    assert template.placeholders == ("question", "answer")
    assert template.render({"question": "Q?", "answer": "A."}) == 'Rate it "[[rating]]", e.g. "Rating: [[5]]".\nQ?\nA.'


def test_braces_in_row_data_are_left_alone() -> None:
    template = PromptTemplate.parse("Answer: {answer}")
    value = "{0.__class__} {row.__init__} {{x}} {"
    assert template.render({"answer": value}) == "Answer: " + value


def test_escaped_braces_are_literal() -> None:
    assert PromptTemplate.parse('{{"score": {n}}}').render({"n": "3"}) == '{"score": 3}'


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("{0.__class__}", "{0.__class__}"),
        ("{row.__init__}", "{row.__init__}"),
        ("{row.__globals__}", "{row.__globals__}"),
        ("{x[0]}", "{x[0]}"),
        ("{0}", "{0}"),
        ("{}", "{}"),
        ("{x!r}", "{x!r}"),
        ("{x:>10}", "{x:>10}"),
        ("open {", "malformed template"),
        ("close }", "malformed template"),
    ],
)
def test_rejects_anything_but_plain_names(source: str, fragment: str) -> None:
    with pytest.raises(JudgeDefinitionError) as error:
        PromptTemplate.parse(source)
    assert fragment in str(error.value)
