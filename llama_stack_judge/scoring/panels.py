"""Judging rows with a judge model or a panel: of judge models, or of judge definitions each with its model.

The provider supplies what only it knows (``MemberSource``): which models the stack serves and which judge
definition a scoring function id names; the panel's mechanics are ``core.panel``'s.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from llama_stack_judge.core.definition_panel import DefinitionPanel, PanelMember, check_one_scale, member_label
from llama_stack_judge.core.definitions import ChoiceVerdict, JudgeDefinition
from llama_stack_judge.core.options import JudgeOptions
from llama_stack_judge.core.outcomes import RowResult
from llama_stack_judge.core.panel import Combine, JudgeWith, Panel, PanelResults, judge_with_panel, panel_members
from llama_stack_judge.core.rows import Row
from llama_stack_judge.core.runner import Judge, Usage
from llama_stack_judge.errors import JudgeDefinitionError

Provenance = Callable[[str], dict[str, Any]]  # a judge model's (or panel member's) provenance, by its name


class MemberSource(Protocol):
    """What a provider knows about the judges a panel names."""

    async def served_judge_model(self, named: str, *, where: str) -> str:
        """The model ``named`` names ('' for the provider's default), checked to be served by the stack."""
        ...

    async def judge_definition(self, function: str, *, where: str) -> JudgeDefinition:
        """The judge definition of a scoring function this provider serves."""
        ...


@dataclass(frozen=True, slots=True)
class Judged:
    """Rows' results, the judge models (or panel members) that made them, and the panel's own results if a panel."""

    results: list[RowResult]
    models: tuple[str, ...]
    panel: PanelResults | None = None

    def provenance(self, of: Provenance) -> dict[str, Any]:
        """What made the judgments: the judge's provenance, or each member's and the panel's rule."""
        if self.panel is None:
            return of(self.models[0])
        panel = self.panel.panel
        return {
            "panel": {model: of(model) for model in self.models},
            "combine": panel.combine.value,
            "escalate_to": None if panel.escalate_to is None else of(panel.escalate_to),
        }


async def _by_panel(
    members: tuple[str, ...],
    rows: Sequence[Row],
    judge_with: JudgeWith,
    options: JudgeOptions,
    *,
    escalate_to: str | None,
    choices: bool,
) -> Judged:
    """Rows judged by a panel of these members (judge models, or definitions with theirs), as this call asks."""
    panel = Panel(
        members,
        options.panel_combine or (Combine.majority if choices else Combine.mean),
        escalate_to=escalate_to,
        escalate_spread=options.escalate_spread,
    )
    judged = await judge_with_panel(panel, rows, judge_with)
    return Judged(judged.combined, members, judged)


async def judged_by_models(
    source: MemberSource,
    named_model: str,
    rows: Sequence[Row],
    judge_with: JudgeWith,
    options: JudgeOptions,
    *,
    where: str,
    choices: bool,
) -> Judged:
    """Rows judged by the model ``named_model`` names (the provider's default if none), or by the panel it names."""
    members = panel_members(named_model) if named_model else ("",)
    if len(members) == 1:
        model = await source.served_judge_model(members[0], where=where)
        return Judged(await judge_with(model, rows), (model,))
    models = tuple([await source.served_judge_model(member, where=where) for member in members])
    escalate_to = await source.served_judge_model(options.escalate_to, where=where) if options.escalate_to else None
    return await _by_panel(models, rows, judge_with, options, escalate_to=escalate_to, choices=choices)


async def member_definitions(
    source: MemberSource, members: Sequence[PanelMember], options: JudgeOptions, *, where: str
) -> dict[str, JudgeDefinition]:
    """Each panel member's definition with its judge model and this call's options, by the member's label.

    Raises:
        JudgeDefinitionError: for a member that is not one of the provider's judge definitions, one whose model is
            a panel, a member named twice, or members whose verdicts are on different scales.
        JudgeInputError: for a judge model the stack does not serve.
    """
    definitions: dict[str, JudgeDefinition] = {}
    for member in members:
        at = f"{where}, panel member {member.function}"
        definition = await source.judge_definition(member.function, where=at)
        named = member.model or definition.judge_model
        if named and len(panel_members(named)) > 1:
            raise JudgeDefinitionError(f"{at}: its judge model {named!r} is a panel; name one with '@<model>'")
        judged_by = definition.with_changes(judge_model=await source.served_judge_model(named, where=at))
        label = member_label(judged_by)
        if label in definitions:
            raise JudgeDefinitionError(f"{where}: panel member {label} is named twice")
        definitions[label] = options.apply(judged_by)
    check_one_scale(definitions, where=where)
    return definitions


async def judged_by_definitions(
    source: MemberSource, panel: DefinitionPanel, rows: Sequence[Row], judge: Judge, options: JudgeOptions, usage: Usage
) -> tuple[Judged, dict[str, JudgeDefinition]]:
    """Rows judged by a panel of definitions (and its escalation member); the members' definitions by label."""
    where = f"scoring function {panel.identifier}"
    definitions = await member_definitions(source, panel.members, options, where=where)
    every = dict(definitions)  # and the escalation member's, if any
    escalate_to = None
    if options.escalate_to:
        escalation = PanelMember.parse(options.escalate_to, where=f"{where}, escalate_to")
        strong = await member_definitions(source, [escalation], options, where=f"{where}, escalate_to")
        escalate_to = next(iter(strong))
        every |= strong
        check_one_scale(every, where=where)

    async def member_with(label: str, some: Sequence[Row]) -> list[RowResult]:
        definition = every[label]
        return await judge.judge_rows(definition, some, judge_model=definition.judge_model, usage=usage)

    choices = isinstance(next(iter(definitions.values())).verdict, ChoiceVerdict)
    judged = await _by_panel(tuple(definitions), rows, member_with, options, escalate_to=escalate_to, choices=choices)
    return judged, every
