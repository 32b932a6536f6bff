"""JudgeScoringImpl: the Scoring provider, a thin adapter between llama-stack and the judge core."""

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import singledispatchmethod
from typing import Any

from llama_stack.core.datatypes import ScoringFnWithOwner
from llama_stack.core.request_headers import get_authenticated_user
from llama_stack.log import get_logger
from llama_stack_api import (
    DatasetIO,
    Datasets,
    GetScoringFunctionRequest,
    Inference,
    IterRowsRequest,
    ScoreBatchRequest,
    ScoreBatchResponse,
    ScoreRequest,
    ScoreResponse,
    Scoring,
    ScoringFn,
    ScoringFunctionsProtocolPrivate,
    ScoringResult,
)

from llama_stack_judge.cardbook import card_summary
from llama_stack_judge.core.aggregate import (
    AGGREGATION_KEY,
    JUDGE_CARD_KEY,
    JUDGES_KEY,
    PANEL_KEY,
    Statistics,
    aggregate,
    as_reported,
    group_keys,
)
from llama_stack_judge.core.builtin import BuiltinScorer
from llama_stack_judge.core.definition_panel import (
    DefinitionPanel,
    shared_failed_score,
)
from llama_stack_judge.core.definitions import Aggregation, ChoiceVerdict, FailurePolicy, JudgeDefinition
from llama_stack_judge.core.limits import CallLimit
from llama_stack_judge.core.options import JudgeOptions
from llama_stack_judge.core.outcomes import RowResult
from llama_stack_judge.core.panel import panel_members
from llama_stack_judge.core.rows import Row, check_rows
from llama_stack_judge.core.runner import Judge, RunSettings, Usage
from llama_stack_judge.errors import (
    JudgeDefinitionError,
    JudgeInputError,
    UnknownScoringFunctionError,
)
from llama_stack_judge.mtbench.tasks import AssessmentTask
from llama_stack_judge.refusals import answers_refusals
from llama_stack_judge.scoring.config import JudgeScoringConfig
from llama_stack_judge.scoring.functions import (
    SHIPPED_MARK,
    Scorer,
    ScoringFunctionRegistry,
    apply_builtin_params,
    apply_params,
    panel_params,
    task_judge_model,
    to_scoring_fn,
)
from llama_stack_judge.scoring.panels import Judged, judged_by_definitions, judged_by_models, member_definitions
from llama_stack_judge.stack.card_store import SqlCardBook
from llama_stack_judge.stack.inference_api import StackChat
from llama_stack_judge.stack.provider_data import taking_options
from llama_stack_judge.stack.registry import RoutingTableSlot, check_readable, from_registry, read_rows
from llama_stack_judge.stack.reply_store import SqlReplyCache

logger = get_logger(name=__name__, category="scoring")


def _turns(rows: list[Row]) -> list[int] | None:
    """The conversation turns the rows judge (MT-bench rows say), to show a card measured on the same ones."""
    found: set[int] = set()
    for row in rows:
        turn = row.get("turn")
        if not isinstance(turn, int) or isinstance(turn, bool):
            return None
        found.add(turn)
    return sorted(found) or None


@dataclass(frozen=True, slots=True)
class _Call:
    """One score call of one function: how it is named in errors, its options, and its judge calls' usage."""

    where: str
    options: JudgeOptions
    usage: Usage


@dataclass(frozen=True, slots=True)
class Scored:
    """One function's results on the rows, how they aggregate, and what made them (judges only)."""

    results: list[RowResult]
    aggregations: tuple[Aggregation, ...]
    failed_score: float | None = None  # what a failed row counts as; None: left out
    judged: Judged | None = None
    judges: dict[str, Any] = field(default_factory=dict)  # provenance, by judge id


class JudgeScoringImpl(Scoring, ScoringFunctionsProtocolPrivate):
    """Scores rows with built-in scorers and LLM judges; judges call the stack's inference API."""

    __provider_id__: str
    scoring_function_store = RoutingTableSlot("scoring_function")

    def __init__(
        self,
        config: JudgeScoringConfig,
        *,
        inference_api: Inference,
        models_api: Any,
        datasetio_api: DatasetIO | None,
        datasets_api: Datasets | None = None,
    ) -> None:
        self.config = config
        self._models = models_api
        self._datasetio = datasetio_api
        self._datasets = datasets_api
        self._judge = Judge(
            StackChat(inference_api, spacing_s=config.call_spacing_s),
            RunSettings.of(config),
            # One limit for all callers of this provider.
            slots=CallLimit(config.max_concurrency, adaptive=config.adaptive_concurrency),
        )
        self.registry = ScoringFunctionRegistry(config.definition_dirs)
        # Judges registered through the API, compiled once; the stack's registry is their source of truth.
        self._registered: dict[str, tuple[ScoringFn, JudgeDefinition | DefinitionPanel]] = {}
        self._cards = SqlCardBook(None)  # the shipped cards, until initialize opens the card store

    async def initialize(self) -> None:
        """Open the judgment cache and the card store (definitions were loaded and checked in the constructor)."""
        if self.config.judgment_cache is not None:
            self._judge.cache = await SqlReplyCache.open(self.config.judgment_cache)
        if self.config.card_store is not None:
            self._cards = await SqlCardBook.open(self.config.card_store)
        logger.info("Judge scoring provider ready", functions=len(self.registry.shipped()))

    async def shutdown(self) -> None:
        """Nothing to release."""

    async def list_scoring_functions(self) -> list[ScoringFn]:
        """Built-in and shipped functions, advertised to the stack's registry at start-up."""
        return [to_scoring_fn(scorer, self.__provider_id__) for scorer in self.registry.shipped()]

    @answers_refusals
    async def register_scoring_function(self, scoring_fn: ScoringFn) -> None:
        """Validate and compile a judge registered through the API; invalid ones are refused with a 400."""
        definition = self.registry.definition_from_registration(scoring_fn)
        if isinstance(definition, DefinitionPanel):
            where = f"scoring function {definition.identifier}"
            await member_definitions(self, definition.members, JudgeOptions(), where=where)
        else:
            for member in panel_members(definition.judge_model) if definition.judge_model else ():
                await self.served_judge_model(member, where=definition.identifier)
        self._registered[scoring_fn.identifier] = (scoring_fn, definition)
        logger.info("Registered judge", identifier=scoring_fn.identifier)

    @answers_refusals
    async def unregister_scoring_function(self, scoring_fn_id: str) -> None:
        """Forget a judge registered through the API; current shipped functions cannot be removed.

        The stack deletes its registry entry before it asks the provider, so a refusal puts the entry back: the
        function stays listed and usable. (A retired shipped function, no longer served, is removed.)
        """
        shipped = self.registry.get(scoring_fn_id)
        if shipped is not None:
            store = getattr(self, "scoring_function_store", None)
            if store is not None:
                advertised = to_scoring_fn(shipped, self.__provider_id__)
                await store.dist_registry.register(ScoringFnWithOwner(**advertised.model_dump()))
            raise JudgeInputError(
                f"scoring function {scoring_fn_id} is shipped with the provider and cannot be removed"
            )
        self._registered.pop(scoring_fn_id, None)

    async def _resolve(self, identifier: str) -> Scorer:
        shipped = self.registry.get(identifier)
        if shipped is not None:
            return shipped
        return self._registered_scorer(identifier, await self._stored_function(identifier))

    def _registered_scorer(self, identifier: str, stored: ScoringFn) -> Scorer:
        """The scorer of a function registered through the API, compiled once per registration."""
        cached = self._registered.get(identifier)
        if cached is not None and cached[0] == stored:
            return cached[1]
        if stored.metadata.get(SHIPPED_MARK):  # known, but no longer served: a bad request, not a missing function
            raise JudgeInputError(
                f"scoring function {identifier} was shipped by an earlier version of llama-stack-judge and is retired; "
                "use its newer version (client.scoring_functions.list()) and unregister the old id"
            )
        # Registered before a restart: the stack keeps it but does not hand it back to providers.
        definition = self.registry.definition_from_registration(stored)
        self._registered[identifier] = (stored, definition)
        return definition

    async def _stored_function(self, identifier: str) -> ScoringFn:
        stored: ScoringFn = await from_registry(
            self,
            "scoring_function_store",
            lambda store: store.get_scoring_function(GetScoringFunctionRequest(scoring_fn_id=identifier)),
            UnknownScoringFunctionError(f"scoring function {identifier} is not served by this provider"),
        )
        return stored

    async def served_judge_model(self, named: str, *, where: str) -> str:
        """The model ``named`` names ('' for the provider's default), checked to be served by the stack."""
        model = named or self.config.default_judge_model
        if not model:
            raise JudgeDefinitionError(
                f"{where}: no judge model; pass judge_model in the params or set default_judge_model "
                "in the provider config"
            )
        if not await self._models.has_model(model):
            raise JudgeInputError(
                f"{where}: judge model {model!r} is not served by this stack (see client.models.list())"
            )
        return model

    def _judge_for(self, options: JudgeOptions) -> Judge:
        """The provider's judge, or a variant with this call's concurrency and cache choice."""
        judge = self._judge
        if options.max_concurrency is not None:
            judge = replace(judge, settings=replace(judge.settings, max_concurrency=options.max_concurrency))
        if not options.use_cache:
            judge = replace(judge, reuse_cached=False)
        if options.durable:
            judge = replace(judge, write_batch=1)
        user = get_authenticated_user()
        if user is not None and self.config.judgment_cache_scope == "per_user":
            judge = replace(judge, cache_scope=f"user:{user.principal}")
        return judge

    async def judge_definition(self, function: str, *, where: str) -> JudgeDefinition:
        """The judge definition a panel member names: shipped (its 'judge::' prefix optional) or registered."""
        scorer: Scorer | None = self.registry.shipped_named(function)
        if scorer is None:
            try:
                stored = await self._stored_function(function)
            except UnknownScoringFunctionError:
                raise JudgeDefinitionError(f"{where}: no such scoring function on this provider") from None
            if stored.provider_id != self.__provider_id__:
                raise JudgeDefinitionError(f"{where}: is served by provider {stored.provider_id!r}, not by this one")
            scorer = self._registered_scorer(function, stored)
        if not isinstance(scorer, JudgeDefinition):
            raise JudgeDefinitionError(
                f"{where}: is not an LLM judge definition; a panel of definitions combines judge definitions "
                "(a task or one definition takes a panel of models as its judge_model)"
            )
        return scorer

    @singledispatchmethod
    async def _scored(self, scorer: object, params: object, rows: list[Row], call: "_Call") -> Scored:
        """Rows scored by one kind of scorer, its params overlaid by ``params`` for this call only."""
        raise TypeError(f"no scoring for {type(scorer).__name__}")

    @_scored.register
    async def _by_builtin(self, scorer: BuiltinScorer, params: object, rows: list[Row], call: "_Call") -> Scored:
        builtin = apply_builtin_params(scorer, params, where=call.where)
        return Scored(builtin.score_rows(rows), builtin.aggregation_functions)

    @_scored.register
    async def _by_task(self, scorer: AssessmentTask, params: object, rows: list[Row], call: "_Call") -> Scored:
        task = scorer.adjusted(judge_model=task_judge_model(params, where=call.where), options=call.options)
        judge = self._judge_for(call.options)

        async def task_with(model: str, some: Sequence[Row]) -> list[RowResult]:
            return await task.score_rows(some, judge, judge_model=model, usage=call.usage)

        judged = await judged_by_models(
            self, task.judge_model, rows, task_with, call.options, where=call.where, choices=task.kind == "pair"
        )
        judges = {d.identifier: judged.provenance(d.provenance) for d in task.judges.values()}
        return Scored(judged.results, task.aggregation_functions, task.failed_score, judged, judges)

    @_scored.register
    async def _by_definition(self, scorer: JudgeDefinition, params: object, rows: list[Row], call: "_Call") -> Scored:
        definition = call.options.apply(apply_params(scorer, params, where=call.where))
        judge = self._judge_for(call.options)

        async def definition_with(model: str, some: Sequence[Row]) -> list[RowResult]:
            return await judge.judge_rows(definition, some, judge_model=model, usage=call.usage)

        choices = isinstance(definition.verdict, ChoiceVerdict)
        judged = await judged_by_models(
            self, definition.judge_model, rows, definition_with, call.options, where=call.where, choices=choices
        )
        failed_score = definition.minimum_score if definition.failure_policy is FailurePolicy.minimum else None
        judges = {definition.identifier: judged.provenance(definition.provenance)}
        return Scored(judged.results, definition.aggregation_functions, failed_score, judged, judges)

    @_scored.register
    async def _by_panel(self, scorer: DefinitionPanel, params: object, rows: list[Row], call: "_Call") -> Scored:
        panel = panel_params(scorer, params, where=call.where)
        judge = self._judge_for(call.options)
        judged, members = await judged_by_definitions(self, panel, rows, judge, call.options, call.usage)
        aggregations = panel.aggregation_functions or next(iter(members.values())).aggregation_functions
        failed_score = shared_failed_score({label: members[label] for label in judged.models})
        judges = {
            panel.identifier: judged.provenance(lambda label: members[label].provenance(members[label].judge_model))
        }
        return Scored(judged.results, aggregations, failed_score, judged, judges)

    async def score_function(
        self, identifier: str, params: object, rows: list[Row], options: JudgeOptions
    ) -> ScoringResult:
        """Score ``rows`` with one function, its registered params overlaid by ``params`` for this call only."""
        scorer = await self._resolve(identifier)
        call = _Call(where=f"scoring function {identifier}", options=options, usage=Usage())
        check_rows(rows, user=call.where, max_rows=self.config.max_rows, max_text_chars=self.config.max_text_chars)
        groups = group_keys(rows, options.group_by)
        scored = await self._scored(scorer, params, rows, call)
        stats = Statistics(scored.failed_score, bootstrap_resamples=options.bootstrap_resamples, seed=options.seed)
        aggregated = aggregate(scored.results, scored.aggregations, stats, groups=groups)
        # How the aggregates were made, so that a caller scoring in pages (eval jobs) can make them over all pages.
        plan: dict[str, object] = {
            "functions": [a.value for a in scored.aggregations],
            "failed_score": scored.failed_score,
        }
        judged = scored.judged
        if judged is not None and judged.panel is not None:
            aggregated[PANEL_KEY] = judged.panel.report(scored.aggregations, stats)
            plan[PANEL_KEY] = judged.panel.panel.settings()  # an eval job reports the panel over all its pages
        aggregated[AGGREGATION_KEY] = plan
        if judged is not None:
            aggregated["usage"] = call.usage.as_dict()
            aggregated[JUDGES_KEY] = scored.judges
            # Cards certify one judge model each; a panel's members are reported one by one instead.
            if judged.panel is None and (
                summary := card_summary(await self._cards.find(scored.judges, turns=_turns(rows)))
            ):
                aggregated[JUDGE_CARD_KEY] = summary
        return ScoringResult(
            score_rows=[result.as_score_row() for result in scored.results],
            aggregated_results=as_reported(aggregated, details=options.details),
        )

    @answers_refusals
    async def score(self, request: ScoreRequest) -> ScoreResponse:
        """Score inline rows; per-request options come from the ``judge_options`` provider data."""
        with taking_options(where="score", defaults=self.config.judge_options) as options:
            results = {
                identifier: await self.score_function(identifier, params, request.input_rows, options)
                for identifier, params in request.scoring_functions.items()
            }
        return ScoreResponse(results=results)

    @answers_refusals
    async def score_batch(self, request: ScoreBatchRequest) -> ScoreBatchResponse:
        """Score every row of a registered dataset."""
        if self._datasetio is None or self._datasets is None:
            raise JudgeInputError("score_batch needs the datasetio and datasets APIs in this stack's run config")
        await check_readable(self._datasets, request.dataset_id, where="score_batch")
        if request.save_results_dataset:
            raise JudgeInputError("save_results_dataset is not supported; results are returned in the response")
        rows = await read_rows(
            self._datasetio, self._datasets, IterRowsRequest(dataset_id=request.dataset_id, limit=-1)
        )
        response = await self.score(ScoreRequest(input_rows=rows.data, scoring_functions=request.scoring_functions))
        return ScoreBatchResponse(dataset_id=request.dataset_id, results=response.results)
