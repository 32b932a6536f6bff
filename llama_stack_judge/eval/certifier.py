"""Certification benchmarks: an eval job whose candidate is a judge, measured against the shipped labels.

A benchmark with ``metadata.certification = {"kind": "single" | "pairwise"}`` has rows that are keys into the
shipped MT-bench development data (question, model or model pair, turn; see ``certification_rows``). Its job judges
those answers with the benchmark's one scoring function, the eval candidate's model as judge, and nothing is
generated. The judgments make a judge card (``certification``), which the job returns with its aggregates and
files in the stack's card store, where every later score call by the same judges finds it.
"""

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast, get_args

from llama_stack.log import get_logger
from llama_stack_api import (
    Benchmark,
    BenchmarkConfig,
    EvaluateResponse,
    EvaluateRowsRequest,
    LLMAsJudgeScoringFnParams,
    ScoringFnParams,
    ScoringResult,
)

from llama_stack_judge.core.options import JudgeOptions
from llama_stack_judge.errors import JudgeInputError
from llama_stack_judge.eval.store import JobRecord, RowOutcome
from llama_stack_judge.mtbench.certification import (
    SHIPPED_LABELS,
    Kind,
    answer_lengths,
    certification_work,
    judge_card,
    judgments_of,
    load_labels,
    shipped_data,
)
from llama_stack_judge.run_info import versions
from llama_stack_judge.stack.card_store import SqlCardBook

logger = get_logger(name=__name__, category="eval")
ScoreRows = Callable[[list[dict[str, Any]], dict[str, Any], JudgeOptions], Awaitable[dict[str, ScoringResult]]]

METADATA_KEY = "certification"
CERTIFICATION_KEY = "certification"  # of the job's aggregated results: the card it made
KINDS = get_args(Kind)


def certification_spec(benchmark: Benchmark) -> dict[str, Any] | None:
    """The benchmark's ``certification`` metadata, checked; ``None`` for other benchmarks."""
    spec = (benchmark.metadata or {}).get(METADATA_KEY)
    if spec is None:
        return None
    where = f"benchmark {benchmark.identifier}: metadata.{METADATA_KEY}"
    if not isinstance(spec, dict) or spec.get("kind") not in KINDS:
        raise JudgeInputError(f"{where} must be an object with kind 'single' or 'pairwise', got {spec!r}")
    if spec.get("labels", SHIPPED_LABELS) != SHIPPED_LABELS:
        raise JudgeInputError(f"{where}.labels: only the shipped {SHIPPED_LABELS!r} labels, got {spec['labels']!r}")
    if len(benchmark.scoring_functions) != 1:
        raise JudgeInputError(
            f"{where}: a certification benchmark has one scoring function (the judge certified), "
            f"got {len(benchmark.scoring_functions)}"
        )
    return {"kind": spec["kind"], "labels": SHIPPED_LABELS}


def judge_params(config: BenchmarkConfig, function_id: str) -> ScoringFnParams:
    """The function's params with the eval candidate's model as judge: the candidate is the judge certified."""
    judge = config.eval_candidate.model
    params = config.scoring_params.get(function_id)
    if params is None:
        return LLMAsJudgeScoringFnParams(judge_model=judge)
    if not isinstance(params, LLMAsJudgeScoringFnParams):
        raise JudgeInputError(f"scoring_params.{function_id}: a certified judge takes llm_as_judge params")
    if params.judge_model not in ("", judge):
        raise JudgeInputError(
            f"scoring_params.{function_id}.judge_model is {params.judge_model!r}, but the judge certified is the eval "
            f"candidate {judge!r}; leave judge_model out"
        )
    return params.model_copy(update={"judge_model": judge})


def certification_card(
    spec: Mapping[str, Any],
    about: Sequence[Mapping[str, Any]],
    score_rows: Sequence[Mapping[str, Any]],
    aggregated: Mapping[str, Any],
    *,
    started_at: float,
    seed: int,
    run: Mapping[str, Any],
) -> dict[str, Any]:
    """The judge card of a certification's judgments (``about`` each row, its score row) and what made them."""
    kind = cast(Kind, spec["kind"])
    _, _, answers = shipped_data()
    return judge_card(
        kind,
        judgments_of(kind, about, score_rows),
        load_labels(spec["labels"]),
        answer_lengths(answers),
        seed=seed,
        complete=True,
        usage=aggregated.get("usage") or {},
        seconds=time.time() - started_at,
        run={
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "versions": versions(),
            "judges": aggregated.get("judges") or {},
            "selection": {"turns": sorted({int(what["turn"]) for what in about})},
            **run,
        },
    )


class Certifier:
    """The eval provider's certifications: judging labelled answers with the candidate as judge, and their cards."""

    def __init__(self, score_rows: ScoreRows, cards: SqlCardBook | None = None) -> None:
        self._score_rows = score_rows
        self.cards = cards  # opened by the provider's initialize; None files no card

    async def _judge(
        self, spec: Mapping[str, Any], function_id: str, rows: Sequence[Mapping[str, Any]], first_index: int,
        config: BenchmarkConfig, options: JudgeOptions,
    ) -> tuple[list[dict[str, Any]], ScoringResult]:  # fmt: skip
        """What each key row is about, and the function's result on the answers it names."""
        work = certification_work(spec["kind"], rows, first_index=first_index)
        params = {function_id: judge_params(config, function_id)}
        return work.about, (await self._score_rows(work.rows, params, options))[function_id]

    async def judge_page(
        self, job: JobRecord, start: int, rows: list[dict[str, Any]], config: BenchmarkConfig, options: JudgeOptions
    ) -> tuple[list[RowOutcome], dict[str, dict[str, Any]]]:
        """One page of a certification job, judged; each row keeps what it is about as its generation."""
        assert job.certification is not None
        (function_id,) = job.scoring_functions
        about, result = await self._judge(job.certification, function_id, rows, start, config, options)
        outcomes = [
            RowOutcome(start + i, what, {function_id: score_row})
            for i, (what, score_row) in enumerate(zip(about, result.score_rows, strict=True))
        ]
        return outcomes, {function_id: result.aggregated_results}

    async def add_card(
        self, job: JobRecord, outcomes: Sequence[RowOutcome], aggregated: dict[str, dict[str, Any]], *, seed: int
    ) -> None:
        """Make the card of a finished certification job, file it, and add it to the job's aggregates."""
        assert job.certification is not None
        (function_id,) = job.scoring_functions
        card = certification_card(
            job.certification,
            [outcome.generation for outcome in outcomes],
            [outcome.scores[function_id] for outcome in outcomes],
            aggregated[function_id],
            started_at=job.started_at or job.created_at,
            seed=seed,
            run={"benchmark_id": job.benchmark_id, "job_id": job.job_id, "scoring_function": function_id},
        )
        aggregated[function_id][CERTIFICATION_KEY] = await self._filed(card)

    async def evaluate_rows(
        self, benchmark: Benchmark, spec: Mapping[str, Any], request: EvaluateRowsRequest, options: JudgeOptions
    ) -> EvaluateResponse:
        """A certification of the key rows in the request: their judgments, and the card (filed too)."""
        started = time.time()
        (function_id,) = benchmark.scoring_functions
        if request.scoring_functions not in ([], [function_id]):
            raise JudgeInputError(
                f"benchmark {benchmark.identifier} certifies {function_id}, not {request.scoring_functions}"
            )
        about, result = await self._judge(spec, function_id, request.input_rows, 0, request.benchmark_config, options)
        card = certification_card(
            spec,
            about,
            result.score_rows,
            result.aggregated_results,
            started_at=started,
            seed=options.seed,
            run={"benchmark_id": benchmark.identifier, "scoring_function": function_id},
        )
        aggregated = result.aggregated_results | {CERTIFICATION_KEY: await self._filed(card)}
        scores = {function_id: ScoringResult(score_rows=result.score_rows, aggregated_results=aggregated)}
        return EvaluateResponse(generations=about, scores=scores)

    async def _filed(self, card: dict[str, Any]) -> dict[str, Any]:
        """The card, filed in the card store (with its id) when there is one."""
        if self.cards is None:
            return card
        card_id = await self.cards.save(card)
        logger.info("Judge card filed", card_id=card_id, n_judgments=card["n_judgments"])
        return card | {"card_id": card_id}
