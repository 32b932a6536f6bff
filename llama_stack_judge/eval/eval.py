"""JudgeEvalImpl, the Eval API: benchmarks checked, rows evaluated in the request, eval jobs started, read, cancelled.

A job runs in the background (``job_runner.py``: its pages, their workers, the leases that let replicas share jobs,
resume after a restart); jobs and every row's generation and scores are kept in the stack's SQL store as they
happen (``store.py``), so a job resumed generates and judges only what is missing.
"""

import os
import socket
import time
import uuid
from typing import Any

from llama_stack.core.access_control.datatypes import AccessRule, Action
from llama_stack.log import get_logger
from llama_stack_api import (
    Benchmark,
    BenchmarkConfig,
    BenchmarksProtocolPrivate,
    DatasetIO,
    Datasets,
    Eval,
    EvaluateResponse,
    EvaluateRowsRequest,
    GetBenchmarkRequest,
    Inference,
    Job,
    JobCancelRequest,
    JobResultRequest,
    JobStatus,
    JobStatusRequest,
    RunEvalRequest,
    ScoreRequest,
    Scoring,
    ScoringResult,
)

from llama_stack_judge.core.aggregate import as_reported
from llama_stack_judge.core.options import PROVIDER_DATA_KEY, JudgeOptions
from llama_stack_judge.core.paged import PagedScores
from llama_stack_judge.errors import (
    JobNotFoundError,
    JudgeInputError,
    JudgeNotFoundError,
)
from llama_stack_judge.eval.access import JobUser, may
from llama_stack_judge.eval.candidate import Candidate, Generation
from llama_stack_judge.eval.certifier import Certifier, certification_spec, judge_params
from llama_stack_judge.eval.config import JudgeEvalConfig
from llama_stack_judge.eval.job_runner import JobRunner, checked_groups, detailed
from llama_stack_judge.eval.pages import DONE
from llama_stack_judge.eval.row_expanders import expanded, expander_named_in
from llama_stack_judge.eval.store import JobRecord, JobStore, RowOutcome
from llama_stack_judge.refusals import answers_refusals
from llama_stack_judge.stack.card_store import SqlCardBook
from llama_stack_judge.stack.provider_data import passing_options, request_options
from llama_stack_judge.stack.registry import RoutingTableSlot, check_readable, from_registry

logger = get_logger(name=__name__, category="eval")

_SAVED = ("score", "status")  # the columns of each function in a saved results dataset
_FINISHED = {JobStatus.completed.value, JobStatus.failed.value, JobStatus.cancelled.value}
DatasetRow = dict[str, Any]


def _benchmark_options(benchmark: Benchmark) -> dict[str, Any] | None:
    """The benchmark's ``judge_options`` metadata, checked."""
    where = f"benchmark {benchmark.identifier}: metadata.{PROVIDER_DATA_KEY}"
    defaults = benchmark.metadata.get(PROVIDER_DATA_KEY) if benchmark.metadata else None
    if defaults is not None and not isinstance(defaults, dict):
        raise JudgeInputError(f"{where} must be an object")
    JudgeOptions.parse(defaults, where=where)
    return defaults


def _options(benchmark: Benchmark) -> JudgeOptions:
    """Judge options of a run: the benchmark's ``judge_options`` metadata, overlaid by the request's."""
    return request_options(where=f"benchmark {benchmark.identifier}", defaults=_benchmark_options(benchmark))


class JudgeEvalImpl(Eval, BenchmarksProtocolPrivate):
    """Runs benchmarks as persistent background jobs with bounded concurrency and real cancellation."""

    __provider_id__: str
    benchmark_store = RoutingTableSlot("benchmark")

    def __init__(
        self,
        config: JudgeEvalConfig,
        *,
        inference_api: Inference,
        scoring_api: Scoring,
        datasetio_api: DatasetIO,
        datasets_api: Datasets,
    ) -> None:
        self.config = config
        self._scoring = scoring_api
        self._datasets = datasets_api
        self._candidate = Candidate(inference_api, config)
        self._certifier = Certifier(self._score_rows)
        replica_id = config.replica_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._runner = JobRunner(
            config,
            replica_id=replica_id,
            candidate=self._candidate,
            certifier=self._certifier,
            score=self._score,
            datasetio_api=datasetio_api,
            datasets_api=datasets_api,
        )

    async def initialize(self) -> None:
        """Open the job store and the card store (their tables are created on first use)."""
        await self._runner.open()
        if self._certifier.cards is None and self.config.card_store is not None:
            self._certifier.cards = await SqlCardBook.open(self.config.card_store)

    async def shutdown(self) -> None:
        """Stop running jobs and give up their leases: they stay unfinished, and a replica or a restart resumes them."""
        await self._runner.shutdown()

    @property
    def store(self) -> JobStore:
        """The job store (opened by ``initialize``)."""
        return self._runner.store

    @answers_refusals
    async def register_benchmark(self, benchmark: Benchmark) -> None:
        """Check a benchmark's judge options and certification; the stack's registry keeps the benchmark."""
        _benchmark_options(benchmark)
        certification_spec(benchmark)

    async def unregister_benchmark(self, benchmark_id: str) -> None:
        """Nothing to forget: benchmarks are always read from the stack's registry."""

    @property
    def _policy(self) -> list[AccessRule]:
        """The stack's access policy, as its routing tables apply it."""
        return list(getattr(getattr(self, "benchmark_store", None), "policy", None) or [])

    async def _benchmark(self, benchmark_id: str) -> Benchmark:
        """The benchmark, read through the stack's registry, which hides it from users the policy does not allow.

        Never from a cache of this process: what one user may read another may not.
        """
        benchmark: Benchmark = await from_registry(
            self,
            "benchmark_store",
            lambda store: store.get_benchmark(GetBenchmarkRequest(benchmark_id=benchmark_id)),
            JudgeNotFoundError(f"benchmark {benchmark_id} is not registered"),
        )
        return benchmark

    @answers_refusals
    async def run_eval(self, request: RunEvalRequest) -> Job:
        """Record a job and start it in the background; returns its id at once."""
        await self._runner.resume_unfinished()
        benchmark = await self._benchmark(request.benchmark_id)
        await check_readable(self._datasets, benchmark.dataset_id, where=f"benchmark {benchmark.identifier}")
        certification = certification_spec(benchmark)
        if certification is not None:  # refused before a job exists, as other bad requests are
            judge_params(request.benchmark_config, benchmark.scoring_functions[0])
        job = JobRecord(
            job_id=uuid.uuid4().hex,
            benchmark_id=benchmark.identifier,
            dataset_id=benchmark.dataset_id,
            scoring_functions=list(benchmark.scoring_functions),
            benchmark_config=request.benchmark_config.model_dump(mode="json"),
            options=_options(benchmark).provider_data()[PROVIDER_DATA_KEY],
            user=JobUser.current(),
            save_results_dataset=bool((benchmark.metadata or {}).get("save_results_dataset", False)),
            row_expander=expander_named_in(benchmark.metadata, where=f"benchmark {benchmark.identifier}"),
            certification=certification,
        )
        await self._runner.create(job)
        logger.info("Eval job started", job_id=job.job_id, benchmark_id=benchmark.identifier)
        return Job(job_id=job.job_id, status=JobStatus(job.status))

    @answers_refusals
    async def evaluate_rows(self, request: EvaluateRowsRequest) -> EvaluateResponse:
        """Generate and score the given rows, in the request."""
        await self._runner.resume_unfinished()
        benchmark = await self._benchmark(request.benchmark_id)
        options, config, rows = _options(benchmark), request.benchmark_config, request.input_rows
        certification = certification_spec(benchmark)
        if certification is not None:
            return await self._certifier.evaluate_rows(benchmark, certification, request, options)
        rows = expanded(rows, expander_named_in(benchmark.metadata, where=f"benchmark {benchmark.identifier}"))
        checked_groups(rows, options, where=f"benchmark {benchmark.identifier}")
        generations = await self._candidate.answers(rows, config, options)
        response = await self._score(rows, generations, request.scoring_functions, config, options)
        for result in response.scores.values():
            result.aggregated_results = as_reported(result.aggregated_results, details=options.details)
        return response

    async def _score(
        self,
        rows: list[dict[str, object]],
        generations: list[Generation],
        scoring_functions: list[str],
        config: BenchmarkConfig,
        options: JudgeOptions,
    ) -> EvaluateResponse:
        """Score the rows with their generations, each function with its params from the benchmark config."""
        scored_rows = [row | generation for row, generation in zip(rows, generations, strict=True)]
        functions = {fn: config.scoring_params.get(fn) for fn in scoring_functions}
        return EvaluateResponse(generations=generations, scores=await self._score_rows(scored_rows, functions, options))

    async def _score_rows(
        self, rows: list[DatasetRow], functions: dict[str, Any], options: JudgeOptions
    ) -> dict[str, ScoringResult]:
        """Each function's result on ``rows``, through the stack's scoring API with these options."""
        # Options reach the scoring provider as provider data (the scoring API's params cannot carry them); the
        # details (plan, usage, judges, card) are what the job's aggregates over all its pages are made from.
        with passing_options(options.model_copy(update={"details": True})):
            scores = await self._scoring.score(ScoreRequest(input_rows=rows, scoring_functions=functions))
        return scores.results

    async def _job(self, benchmark_id: str, job_id: str, action: Action) -> JobRecord:
        """The job, if the caller may ``action`` it; a job of someone else is as unknown as a job that is not."""
        await self._runner.resume_unfinished()
        job = self._runner.live(job_id) or await self.store.get(job_id)
        if job is None or job.benchmark_id != benchmark_id or not may(self._policy, action, job_id, job.user):
            raise JobNotFoundError(f"no eval job {job_id} for benchmark {benchmark_id}")
        return job

    @answers_refusals
    async def job_status(self, request: JobStatusRequest) -> Job:
        """The job's current status."""
        job = await self._job(request.benchmark_id, request.job_id, Action.READ)
        return Job(job_id=job.job_id, status=JobStatus(job.status))

    @answers_refusals
    async def job_cancel(self, request: JobCancelRequest) -> None:
        """Stop a running job; it becomes ``cancelled`` and keeps the generations made so far."""
        job = await self._job(request.benchmark_id, request.job_id, Action.DELETE)
        if job.status in _FINISHED or not await self.store.cancel(job.job_id):
            return
        # The replica running it (this one, or another that sees it when it next renews its lease) stops it.
        job.status, job.finished_at = JobStatus.cancelled.value, time.time()
        await self._runner.stop(job.job_id)
        logger.info("Eval job cancelled", job_id=job.job_id)

    @answers_refusals
    async def job_result(self, request: JobResultRequest) -> EvaluateResponse:
        """Generations and scores of a completed job; of a cancelled one, what it judged, marked partial."""
        job = await self._job(request.benchmark_id, request.job_id, Action.READ)
        if job.status == JobStatus.failed.value:
            raise JudgeInputError(f"eval job {job.job_id} failed: {job.error} ({job.describe()})")
        if job.status == JobStatus.cancelled.value:
            return await self._partial_result(job)
        if job.status != JobStatus.completed.value or job.result is None:
            raise JudgeInputError(f"eval job {job.job_id} is {job.describe()}; its result is ready once completed")
        if "generations" in job.result:  # a job finished before results were kept per row
            return EvaluateResponse.model_validate(job.result)
        outcomes = await self.store.results(job.job_id)
        aggregated = job.result["aggregated_results"]
        return _response(job, outcomes, aggregated)

    async def _partial_result(self, job: JobRecord) -> EvaluateResponse:
        """What a cancelled job judged (whole pages), aggregated as the job would have, and marked ``partial``.

        Rows answered but not yet judged when it stopped are counted, not returned; per-group means are left out
        (they need the dataset's rows).
        """
        outcomes = await self.store.results(job.job_id)
        options = JudgeOptions.parse(job.options, where=job.job_id)
        answered, _ = await self.store.count(job.job_id)
        partial = {
            "status": job.status,
            "rows_judged": len(outcomes),
            "rows_answered": answered,
            "rows": None if job.progress is None else job.progress.rows,
        }
        done = [page for page in await (await self.store.pages).of_job(job.job_id) if page.status == DONE]
        aggregated = {}
        for fn in job.scoring_functions:
            paged = PagedScores()
            # Before any page is judged, how a function aggregates is unknown: its (empty) scores are then averaged.
            for page in done:
                paged.add_aggregates(page.aggregates.get(fn) or {})
            paged.add_rows([outcome.scores[fn] for outcome in outcomes], {})
            results = paged.aggregated(bootstrap_resamples=options.bootstrap_resamples, seed=options.seed)
            aggregated[fn] = as_reported(results | {"partial": partial}, details=detailed(job, options))
        return _response(job, outcomes, aggregated)


def _response(job: JobRecord, outcomes: list[RowOutcome], aggregated: dict[str, Any]) -> EvaluateResponse:
    """A job's judged rows and each function's aggregates as the Eval API returns them."""
    return EvaluateResponse(
        generations=[outcome.generation for outcome in outcomes],
        scores={
            fn: ScoringResult(score_rows=[o.scores[fn] for o in outcomes], aggregated_results=aggregated[fn])
            for fn in job.scoring_functions
        },
    )
