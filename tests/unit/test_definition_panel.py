"""Panels of definitions: naming members, and refusing verdicts that are not on one scale."""

import pytest

from llama_stack_judge.core.definition_panel import (
    DefinitionPanel,
    PanelMember,
    check_one_scale,
    member_label,
    shared_failed_score,
)
from llama_stack_judge.core.definitions import Aggregation, JudgeDefinition, validate_definition
from llama_stack_judge.errors import JudgeDefinitionError, JudgeInputError

RATING_1_10 = {"type": "rating", "min": 1, "max": 10}
CORRECT = {"type": "choice", "patterns": [r"\[\[(\w+)\]\]"], "choices": {"CORRECT": 1.0, "INCORRECT": 0.0}}


def definition(identifier: str, verdict: dict[str, object], **fields: object) -> JudgeDefinition:
    data = {"identifier": identifier, "prompt_template": "{generated_answer}", "verdict": verdict, **fields}
    return validate_definition(data, source=identifier)


def test_members_name_a_function_and_optionally_its_model_which_may_hold_an_at_sign() -> None:
    panel = DefinitionPanel.named(
        "team::panel", "", "judge::helpfulness-v1@vertex/claude@20240620, team::strict", (Aggregation.median,)
    )
    assert panel.members == (
        PanelMember("judge::helpfulness-v1", "vertex/claude@20240620"),
        PanelMember("team::strict", ""),
    )
    assert member_label(definition("team::strict", RATING_1_10, judge_model="m")) == "team::strict@m"


@pytest.mark.parametrize(
    ("judge_model", "error", "fragment"),
    [
        ("team::a@m", JudgeDefinitionError, "at least two members"),
        ("team::a@m, @m2", JudgeDefinitionError, "names no scoring function"),
        ("team::a@m, team::a@m", JudgeInputError, "each member once"),
        ("team::a@m, ", JudgeInputError, "none empty"),
    ],
)
def test_a_badly_named_panel_is_refused_naming_the_function(
    judge_model: str, error: type[Exception], fragment: str
) -> None:
    with pytest.raises(error, match=fragment):
        DefinitionPanel.named("team::panel", "", judge_model, ())


def test_verdicts_combine_only_on_one_scale() -> None:
    check_one_scale({"a": definition("a", RATING_1_10), "b": definition("b", RATING_1_10)}, where="p")
    check_one_scale({"a": definition("a", CORRECT), "b": definition("b", CORRECT)}, where="p")
    mixed = [
        (RATING_1_10, {"type": "rating", "min": 1, "max": 5}, "rating from 1 to 5"),
        (RATING_1_10, {"type": "rating"}, "rating from unbounded to unbounded"),
        (RATING_1_10, CORRECT, "choice of CORRECT=1, INCORRECT=0"),
        (CORRECT, {**CORRECT, "choices": {"CORRECT": 1.0, "INCORRECT": -1.0}}, "choice of CORRECT=1, INCORRECT=-1"),
    ]
    for first, second, shown in mixed:
        with pytest.raises(JudgeDefinitionError, match=f"different scales.*b: {shown}"):
            check_one_scale({"a": definition("a", first), "b": definition("b", second)}, where="p")


def test_a_row_no_member_judged_counts_as_the_lowest_score_only_when_every_member_says_so() -> None:
    strict = definition("a", RATING_1_10, failure_policy="minimum")
    assert shared_failed_score({"a": strict, "b": strict.with_changes(identifier="b")}) == 1
    assert shared_failed_score({"a": strict, "b": definition("b", RATING_1_10)}) is None
    assert shared_failed_score({"a": definition("a", RATING_1_10), "b": definition("b", RATING_1_10)}) is None
