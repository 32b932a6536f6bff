"""Panels of judge definitions: several scoring functions, each with its judge model, judge every row as one.

A panel of models asks one definition through several models; a panel of definitions asks several definitions
(different prompts, different rubrics), each through its own model. It is registered as a scoring function whose
``judge_model`` names the members as ``<scoring function>@<model>`` separated by commas (``<scoring function>``
alone: that function's own judge model). Members' verdicts are combined only when they are on one scale: ratings
with the same bounds, or choices with the same labels and scores.
"""

from collections.abc import Mapping
from dataclasses import dataclass

from llama_stack_judge.core.definitions import Aggregation, ChoiceVerdict, FailurePolicy, JudgeDefinition
from llama_stack_judge.core.panel import panel_members
from llama_stack_judge.errors import JudgeDefinitionError

MODEL_MARK = "@"  # between a member's scoring function and its judge model


@dataclass(frozen=True, slots=True)
class PanelMember:
    """A scoring function of the panel and the judge model it judges with ('' for its own)."""

    function: str
    model: str = ""

    @classmethod
    def parse(cls, spec: str, *, where: str) -> "PanelMember":
        """A member from ``<scoring function>[@<model>]`` (the model may itself contain '@')."""
        function, _, model = spec.partition(MODEL_MARK)
        if not function.strip():
            raise JudgeDefinitionError(f"{where}: panel member {spec!r} names no scoring function before '@'")
        return cls(function.strip(), model.strip())


def member_label(definition: JudgeDefinition) -> str:
    """How a panel member is named in results: its scoring function and the model it judged with."""
    return f"{definition.identifier}{MODEL_MARK}{definition.judge_model}"


@dataclass(frozen=True, slots=True)
class DefinitionPanel:
    """A registered scoring function whose verdicts are a panel's, each member a judge definition and its model."""

    identifier: str
    description: str
    members: tuple[PanelMember, ...]
    aggregation_functions: tuple[Aggregation, ...] = ()  # none: the first member's

    @classmethod
    def named(
        cls, identifier: str, description: str, judge_model: str, aggregation_functions: tuple[Aggregation, ...]
    ) -> "DefinitionPanel":
        """The panel ``judge_model`` names, members separated by commas.

        Raises:
            JudgeInputError: for an empty member or one named twice.
            JudgeDefinitionError: for fewer than two members or a member without a scoring function.
        """
        where = f"scoring function {identifier}"
        specs = panel_members(judge_model)
        if len(specs) < 2:
            raise JudgeDefinitionError(f"{where}: a panel of definitions names at least two members")
        members = tuple(PanelMember.parse(spec, where=where) for spec in specs)
        return cls(identifier, description, members, aggregation_functions)


def verdict_scale(definition: JudgeDefinition) -> str:
    """What a definition's verdicts mean, in words: panels combine only verdicts on one scale."""
    verdict = definition.verdict
    if isinstance(verdict, ChoiceVerdict):
        return "choice of " + ", ".join(f"{label}={score:g}" for label, score in sorted(verdict.choices.items()))
    low = "unbounded" if verdict.min is None else f"{verdict.min:g}"
    high = "unbounded" if verdict.max is None else f"{verdict.max:g}"
    return f"rating from {low} to {high}"


def check_one_scale(definitions: Mapping[str, JudgeDefinition], *, where: str) -> None:
    """Refuse a panel whose members' verdicts are on different scales, naming each member's.

    Raises:
        JudgeDefinitionError: when two members' verdicts differ in kind, bounds or choices.
    """
    scales = {label: verdict_scale(definition) for label, definition in definitions.items()}
    if len(set(scales.values())) > 1:
        listed = "; ".join(f"{label}: {scale}" for label, scale in scales.items())
        raise JudgeDefinitionError(
            f"{where}: panel members give verdicts on different scales, which cannot be combined ({listed}); "
            "a judge registered with provider_scoring_fn_id naming a shipped judge keeps that judge's scale"
        )


def shared_failed_score(definitions: Mapping[str, JudgeDefinition]) -> float | None:
    """What a row no member judged counts as: the lowest score when every member's policy says so, else left out."""
    policies = {(d.failure_policy, d.minimum_score) for d in definitions.values()}
    if len(policies) != 1:
        return None
    policy, minimum = policies.pop()
    return minimum if policy is FailurePolicy.minimum else None
