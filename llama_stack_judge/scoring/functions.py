"""The scoring-function registry: built-ins, shipped definitions, and the mapping to llama-stack's ScoringFn."""

from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

from llama_stack_api import (
    AggregationFunctionType,
    BasicScoringFnParams,
    LLMAsJudgeScoringFnParams,
    NumberType,
    ScoringFn,
)

from llama_stack_judge.core.builtin import BuiltinScorer, builtin_scorers
from llama_stack_judge.core.definition_panel import DefinitionPanel
from llama_stack_judge.core.definitions import (
    Aggregation,
    JudgeDefinition,
    load_definitions,
    validate_definition,
)
from llama_stack_judge.core.panel import MEMBER_SEPARATOR
from llama_stack_judge.errors import JudgeDefinitionError
from llama_stack_judge.mtbench.tasks import MT_BENCH_JUDGES, AssessmentTask, build_tasks
from llama_stack_judge.names import PREFIX

SHIPPED_MARK = "llama_stack_judge.shipped"

Shipped = JudgeDefinition | BuiltinScorer | AssessmentTask
Scorer = Shipped | DefinitionPanel  # panels of definitions are registered through the API only
_STACK_AGGREGATIONS = {a.value for a in AggregationFunctionType}


def _aggregations(names: list[AggregationFunctionType], *, where: str) -> tuple[Aggregation, ...]:
    supported = [a.value for a in Aggregation]
    unknown = [str(getattr(n, "value", n)) for n in names if getattr(n, "value", n) not in supported]
    if unknown:
        raise JudgeDefinitionError(f"{where}: unsupported aggregation functions {unknown}; supported: {supported}")
    return tuple(Aggregation(getattr(n, "value", n)) for n in names)


def to_scoring_fn(scorer: Shipped, provider_id: str) -> ScoringFn:
    """The ScoringFn this provider advertises for a built-in or shipped scorer."""
    # Our own aggregations (win_rate, position_bias) are not in the stack's enum: they travel in the metadata.
    aggregations = [AggregationFunctionType(a.value) for a in scorer.aggregation_functions if a in _STACK_AGGREGATIONS]
    if isinstance(scorer, BuiltinScorer):
        params: LLMAsJudgeScoringFnParams | BasicScoringFnParams = BasicScoringFnParams(
            aggregation_functions=aggregations
        )
        metadata: dict[str, Any] = {SHIPPED_MARK: True, "columns": list(scorer.columns)}
    elif isinstance(scorer, AssessmentTask):
        params = LLMAsJudgeScoringFnParams(judge_model="", aggregation_functions=aggregations)
        metadata = {
            SHIPPED_MARK: True,
            "task": {
                "kind": scorer.kind,
                "judges": {name: d.identifier for name, d in scorer.judges.items()},
                "aggregation_functions": [a.value for a in scorer.aggregation_functions],
            },
        }
    else:
        params = LLMAsJudgeScoringFnParams(
            judge_model=scorer.judge_model,
            prompt_template=scorer.prompt_template,
            judge_score_regexes=list(scorer.verdict.patterns),
            aggregation_functions=aggregations,
        )
        # The richer fields travel in metadata; any change to them changes the advertised function,
        # which is why shipped ids carry a version (see docs/usage.md, "Upgrading shipped definitions"). Only the fields
        # the definition sets: a field this package adds later, with a default, must not change a stored function.
        metadata = {SHIPPED_MARK: True, "definition": scorer.model_dump(mode="json", exclude_unset=True)}
    return ScoringFn(
        identifier=scorer.identifier,
        description=scorer.description,
        return_type=NumberType(),
        provider_id=provider_id,
        provider_resource_id=scorer.identifier,
        params=params,
        metadata=metadata,
    )


def _judge_params(params: object, *, where: str) -> LLMAsJudgeScoringFnParams | None:
    if params is None or isinstance(params, LLMAsJudgeScoringFnParams):
        return params
    kind = getattr(params, "type", type(params).__name__)
    raise JudgeDefinitionError(f"{where}: a judge takes llm_as_judge params, got {kind!r}")


def apply_params(definition: JudgeDefinition, params: object, *, where: str) -> JudgeDefinition:
    """A copy of ``definition`` with llm_as_judge params laid over it; empty fields keep the definition's values."""
    judge_params = _judge_params(params, where=where)
    if judge_params is None:
        return definition
    changes: dict[str, Any] = {}
    if judge_params.judge_model:
        changes["judge_model"] = judge_params.judge_model
    if judge_params.prompt_template is not None:
        changes["prompt_template"] = judge_params.prompt_template
        changes["inputs"] = None  # a caller's own template names its own columns
    if judge_params.judge_score_regexes:
        changes["verdict"] = {**definition.verdict.model_dump(), "patterns": judge_params.judge_score_regexes}
    if judge_params.aggregation_functions:
        changes["aggregation_functions"] = _aggregations(judge_params.aggregation_functions, where=where)
    if not changes:
        return definition
    # Re-validated: new templates and patterns are checked exactly as at registration.
    return validate_definition({**definition.model_dump(), **changes}, source=where)


def task_judge_model(params: object, *, where: str) -> str | None:
    """The judge model of a per-call override for a task; a task's templates and patterns are its judges'."""
    judge_params = _judge_params(params, where=where)
    if judge_params is None:
        return None
    if judge_params.prompt_template is not None or judge_params.judge_score_regexes:
        raise JudgeDefinitionError(
            f"{where}: a task routes rows to its own judges; only judge_model can be set per call"
        )
    return judge_params.judge_model or None


def panel_params(panel: DefinitionPanel, params: object, *, where: str) -> DefinitionPanel:
    """A panel of definitions with a per-call aggregation override; its members are fixed at registration."""
    judge_params = _judge_params(params, where=where)
    if judge_params is None:
        return panel
    if judge_params.judge_model or judge_params.prompt_template is not None or judge_params.judge_score_regexes:
        raise JudgeDefinitionError(
            f"{where}: a panel of definitions judges with the members it was registered with; only "
            "aggregation_functions can be set per call (register another panel for other members)"
        )
    if not judge_params.aggregation_functions:
        return panel
    return replace(panel, aggregation_functions=_aggregations(judge_params.aggregation_functions, where=where))


def apply_builtin_params(scorer: BuiltinScorer, params: object, *, where: str) -> BuiltinScorer:
    """A built-in with a per-call aggregation override."""
    if params is None:
        return scorer
    if not isinstance(params, BasicScoringFnParams):
        kind = getattr(params, "type", type(params).__name__)
        raise JudgeDefinitionError(f"{where}: a built-in scorer takes basic params, got {kind!r}")
    if not params.aggregation_functions:
        return scorer
    return replace(scorer, aggregation_functions=_aggregations(params.aggregation_functions, where=where))


# The package's own judges, and MT-bench's eight (which its two tasks route rows to).
SHIPPED_DEFINITIONS = (Path(str(resources.files("llama_stack_judge") / "fn_defs")), MT_BENCH_JUDGES)


class ScoringFunctionRegistry:
    """Built-in scorers and the definitions shipped with the package or found in configured directories."""

    def __init__(self, definition_dirs: list[str]) -> None:
        self._scorers: dict[str, Shipped] = {s.identifier: s for s in builtin_scorers(PREFIX)}
        for directory in [*SHIPPED_DEFINITIONS, *map(Path, definition_dirs)]:
            for definition in load_definitions(directory, prefix=PREFIX):
                if definition.identifier in self._scorers:
                    raise JudgeDefinitionError(
                        f"{directory}: {definition.identifier} is already defined by the package or an earlier one"
                    )
                self._scorers[definition.identifier] = definition
        judges = {i: s for i, s in self._scorers.items() if isinstance(s, JudgeDefinition)}
        for task in build_tasks(judges, prefix=PREFIX):
            self._scorers[task.identifier] = task

    def shipped(self) -> list[Shipped]:
        """Every built-in and shipped scorer."""
        return list(self._scorers.values())

    def get(self, identifier: str) -> Shipped | None:
        """The shipped scorer with this id, if any."""
        return self._scorers.get(identifier)

    def shipped_named(self, name: str) -> Shipped | None:
        """The shipped scorer ``name`` names, its ``judge::`` prefix optional."""
        return self._scorers.get(name) or self._scorers.get(f"{PREFIX}::{name}")

    def definition_from_registration(self, fn: ScoringFn) -> JudgeDefinition | DefinitionPanel:
        """Build the judge a client registered at run time.

        ``provider_scoring_fn_id`` may name a shipped judge to start from (its system prompt, verdict range and
        sampling are kept); the llm_as_judge params are laid over it. Without a prompt template, a ``judge_model``
        naming several scoring functions makes a panel of definitions (its members are checked by the provider,
        which knows the functions registered through the API).

        Raises:
            JudgeDefinitionError: for an id that collides with a shipped one, an unknown base, or invalid params.
        """
        where = f"scoring function {fn.identifier}"
        if fn.identifier in self._scorers:
            raise JudgeDefinitionError(f"{where}: the id is taken by a shipped scoring function; choose another id")
        base_id = fn.provider_resource_id or fn.identifier
        if base_id != fn.identifier:
            base = self.shipped_named(base_id)
            if not isinstance(base, JudgeDefinition):
                judges = sorted(i for i, s in self._scorers.items() if isinstance(s, JudgeDefinition))
                raise JudgeDefinitionError(
                    f"{where}: provider_scoring_fn_id {base_id!r} is not a shipped judge; shipped judges: {judges}"
                )
            return apply_params(
                base.with_changes(identifier=fn.identifier, description=fn.description or ""), fn.params, where=where
            )
        params = _judge_params(fn.params, where=where)
        if params is not None and params.prompt_template is None and MEMBER_SEPARATOR in params.judge_model:
            if params.judge_score_regexes:
                raise JudgeDefinitionError(f"{where}: a panel of definitions reads verdicts with its members' patterns")
            aggregations = _aggregations(params.aggregation_functions, where=where)
            return DefinitionPanel.named(fn.identifier, fn.description or "", params.judge_model, aggregations)
        if params is None or params.prompt_template is None:
            raise JudgeDefinitionError(
                f"{where}: needs llm_as_judge params with a prompt_template, a shipped judge as "
                "provider_scoring_fn_id, or a judge_model naming a panel of scoring functions "
                "('<function>@<model>, <function>@<model>')"
            )
        data: dict[str, Any] = {
            "identifier": fn.identifier,
            "description": fn.description or "",
            "judge_model": params.judge_model,
            "prompt_template": params.prompt_template,
            "verdict": {
                "type": "rating",
                **({"patterns": params.judge_score_regexes} if params.judge_score_regexes else {}),
            },
            "aggregation_functions": _aggregations(params.aggregation_functions, where=where) or (Aggregation.average,),
        }
        return validate_definition(data, source=where)
