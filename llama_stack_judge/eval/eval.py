"""JudgeEvalImpl: eval jobs that generate with a candidate model through the stack, then score."""

import asyncio
import time
import uuid
from dataclasses import dataclass, field

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
    IterRowsRequest,
    Job,
    JobCancelRequest,
    JobResultRequest,
    JobStatus,
    JobStatusRequest,
    RunEvalRequest,
    SamplingParams,
    ScoreRequest,
    Scoring,
)
from llama_stack_api.datasets.models import GetDatasetRequest

from llama_stack_judge.core.chat import ChatMessage, ChatRequest
from llama_stack_judge.core.generation import conversations
from llama_stack_judge.core.options import PROVIDER_DATA_KEY, JudgeOptions
from llama_stack_judge.core.runner import CallFailedError, RunSettings, call_with_retries, map_bounded
from llama_stack_judge.errors import GenerationError, JobNotFoundError, JudgeInputError
from llama_stack_judge.eval.config import JudgeEvalConfig
from llama_stack_judge.scoring.inference import StackChat
from llama_stack_judge.scoring.options import passing_options, request_options
from llama_stack_judge.stored import from_registry

logger = get_logger(name=__name__, category="eval")

_FINISHED = {JobStatus.completed, JobStatus.failed, JobStatus.cancelled}


@dataclass
class EvalJob:
    """One run_eval job of this process."""

    job_id: str
    benchmark_id: str
    status: JobStatus = JobStatus.scheduled
    created_at: float = field(default_factory=time.time)
    task: asyncio.Task[None] | None = None
    result: EvaluateResponse | None = None
    error: str | None = None


def _sampling(params: SamplingParams, default_max_tokens: int) -> dict[str, float | int | None]:
    strategy = params.strategy
    kind = getattr(strategy, "type", "greedy")
    temperature = 0.0 if kind == "greedy" else getattr(strategy, "temperature", None)
    top_p = getattr(strategy, "top_p", None) if kind == "top_p" else None
    return {"temperature": temperature, "top_p": top_p, "max_tokens": params.max_tokens or default_max_tokens}


def _options(benchmark: Benchmark) -> JudgeOptions:
    """Judge options of a run: the benchmark's ``judge_options`` metadata, overlaid by the request's."""
    defaults = benchmark.metadata.get(PROVIDER_DATA_KEY) if benchmark.metadata else None
    if defaults is not None and not isinstance(defaults, dict):
        raise JudgeInputError(f"benchmark {benchmark.identifier}: metadata.{PROVIDER_DATA_KEY} must be an object")
    return request_options(where=f"benchmark {benchmark.identifier}", defaults=defaults)


class JudgeEvalImpl(Eval, BenchmarksProtocolPrivate):
    """Runs benchmarks as background jobs with bounded concurrency and real cancellation."""

    __provider_id__: str

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
        self._chat = StackChat(inference_api)
        self._scoring = scoring_api
        self._datasetio = datasetio_api
        self._datasets = datasets_api
        self._settings = RunSettings(
            max_concurrency=config.max_concurrency, max_retries=config.max_retries, timeout_s=config.timeout_s
        )
        self._benchmarks: dict[str, Benchmark] = {}
        self._jobs: dict[str, EvalJob] = {}

    async def initialize(self) -> None:
        """Nothing to load."""

    async def shutdown(self) -> None:
        """Cancel jobs still running."""
        for job in self._jobs.values():
            if job.task is not None and not job.task.done():
                job.task.cancel()

    async def register_benchmark(self, benchmark: Benchmark) -> None:
        """Remember a benchmark (the stack's registry persists it)."""
        self._benchmarks[benchmark.identifier] = benchmark

    async def unregister_benchmark(self, benchmark_id: str) -> None:
        """Forget a benchmark."""
        self._benchmarks.pop(benchmark_id, None)

    async def _benchmark(self, benchmark_id: str) -> Benchmark:
        if benchmark_id in self._benchmarks:
            return self._benchmarks[benchmark_id]
        benchmark: Benchmark = await from_registry(
            self,
            "benchmark_store",
            lambda store: store.get_benchmark(GetBenchmarkRequest(benchmark_id=benchmark_id)),
            JudgeInputError(f"benchmark {benchmark_id} is not registered"),
        )
        self._benchmarks[benchmark_id] = benchmark
        return benchmark

    async def run_eval(self, request: RunEvalRequest) -> Job:
        """Start a job in the background and return its id at once."""
        benchmark = await self._benchmark(request.benchmark_id)
        try:
            await self._datasets.get_dataset(GetDatasetRequest(dataset_id=benchmark.dataset_id))
        except ValueError as exc:
            raise JudgeInputError(f"benchmark {benchmark.identifier}: dataset {benchmark.dataset_id}: {exc}") from None
        options = _options(benchmark)
        job = EvalJob(job_id=uuid.uuid4().hex, benchmark_id=benchmark.identifier)
        job.task = asyncio.create_task(self._run_job(job, benchmark, request.benchmark_config, options))
        self._jobs[job.job_id] = job
        logger.info("Eval job started", job_id=job.job_id, benchmark_id=benchmark.identifier)
        return Job(job_id=job.job_id, status=job.status)

    async def _run_job(
        self, job: EvalJob, benchmark: Benchmark, config: BenchmarkConfig, options: JudgeOptions
    ) -> None:
        job.status = JobStatus.in_progress
        try:
            limit = config.num_examples if config.num_examples is not None else -1
            rows = await self._datasetio.iterrows(IterRowsRequest(dataset_id=benchmark.dataset_id, limit=limit))
            job.result = await self._evaluate(rows.data, benchmark.scoring_functions, config, options)
        except asyncio.CancelledError:
            job.status = JobStatus.cancelled
            raise
        except Exception as exc:  # the job fails with its reason, reported by job_status/job_result
            job.status = JobStatus.failed
            job.error = f"{type(exc).__name__}: {exc}"
            logger.warning("Eval job failed", job_id=job.job_id, error=job.error)
            return
        job.status = JobStatus.completed

    async def evaluate_rows(self, request: EvaluateRowsRequest) -> EvaluateResponse:
        """Generate and score the given rows, in the request."""
        benchmark = await self._benchmark(request.benchmark_id)
        return await self._evaluate(
            request.input_rows, request.scoring_functions, request.benchmark_config, _options(benchmark)
        )

    async def _evaluate(
        self,
        rows: list[dict[str, object]],
        scoring_functions: list[str],
        config: BenchmarkConfig,
        options: JudgeOptions,
    ) -> EvaluateResponse:
        candidate = config.eval_candidate
        system = candidate.system_message.content if candidate.system_message is not None else None
        prompts = conversations(rows, system_message=system if isinstance(system, str) else None)
        sampling = _sampling(candidate.sampling_params, self.config.default_max_tokens)

        async def generate(indexed: tuple[int, tuple[ChatMessage, ...]]) -> str:
            index, messages = indexed
            request = ChatRequest(model=candidate.model, messages=messages, **sampling)  # type: ignore[arg-type]
            try:
                reply, _ = await call_with_retries(self._chat, request, self._settings)
            except CallFailedError as failed:
                raise GenerationError(
                    f"row {index}: generation with {candidate.model} failed after {failed.attempts} attempt(s): "
                    f"{failed.reason}"
                ) from None
            return reply.text

        concurrency = options.max_concurrency or self._settings.max_concurrency
        answers = await map_bounded(list(enumerate(prompts)), generate, concurrency)
        generations = [{"generated_answer": answer} for answer in answers]
        scored_rows = [row | generation for row, generation in zip(rows, generations, strict=True)]
        functions = {fn: config.scoring_params.get(fn) for fn in scoring_functions}
        with passing_options(options):  # the scoring API's params cannot carry them
            scores = await self._scoring.score(ScoreRequest(input_rows=scored_rows, scoring_functions=functions))
        return EvaluateResponse(generations=generations, scores=scores.results)

    def _job(self, benchmark_id: str, job_id: str) -> EvalJob:
        job = self._jobs.get(job_id)
        if job is None or job.benchmark_id != benchmark_id:
            raise JobNotFoundError(f"no eval job {job_id} for benchmark {benchmark_id}")
        return job

    async def job_status(self, request: JobStatusRequest) -> Job:
        """The job's current status."""
        job = self._job(request.benchmark_id, request.job_id)
        return Job(job_id=job.job_id, status=job.status)

    async def job_cancel(self, request: JobCancelRequest) -> None:
        """Stop a running job; its status becomes ``cancelled``. Cancelling a finished job changes nothing."""
        job = self._job(request.benchmark_id, request.job_id)
        if job.status in _FINISHED or job.task is None:
            return
        job.task.cancel()
        await asyncio.wait({job.task}, timeout=5)
        job.status = JobStatus.cancelled
        logger.info("Eval job cancelled", job_id=job.job_id)

    async def job_result(self, request: JobResultRequest) -> EvaluateResponse:
        """Generations and scores of a completed job."""
        job = self._job(request.benchmark_id, request.job_id)
        if job.status is JobStatus.failed:
            raise JudgeInputError(f"eval job {job.job_id} failed: {job.error}")
        if job.status is not JobStatus.completed or job.result is None:
            raise JudgeInputError(f"eval job {job.job_id} is {job.status.value}; its result is ready once completed")
        return job.result
