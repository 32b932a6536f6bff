"""The eval job runner: a job's coordinator, the page workers, and the leases that let replicas share jobs.

A job is cut into pages listed in the job store; page workers of any replica claim pages, generate and judge them,
and store every row as it is made. The job's coordinator (the replica holding the job's lease) waits until every
page is judged, then aggregates once. A replica that stops leaves leases that run out: another replica, or this
one after a restart, takes the job and its pages over and judges only what is missing (see ``store``).
"""

import asyncio
import contextlib
import contextvars
import time
from collections.abc import Awaitable, Callable
from typing import Any

from llama_stack.log import get_logger
from llama_stack_api import BenchmarkConfig, DatasetIO, Datasets, IterRowsRequest, JobStatus
from llama_stack_api.datasets.models import DatasetPurpose, RegisterDatasetRequest, RowsDataSource

from llama_stack_judge.core.aggregate import as_reported, group_keys
from llama_stack_judge.core.options import JudgeOptions
from llama_stack_judge.core.paged import PagedScores
from llama_stack_judge.core.rows import check_rows
from llama_stack_judge.errors import JobPageError
from llama_stack_judge.eval.access import context_of
from llama_stack_judge.eval.candidate import Candidate, Generation
from llama_stack_judge.eval.certifier import Certifier
from llama_stack_judge.eval.config import JudgeEvalConfig
from llama_stack_judge.eval.pages import DONE, FAILED, Page
from llama_stack_judge.eval.rounds import Rounds
from llama_stack_judge.eval.row_expanders import expanded
from llama_stack_judge.eval.store import JobProgress, JobRecord, JobStore, LeaseLostError, RowOutcome
from llama_stack_judge.stack.registry import check_readable, read_rows

logger = get_logger(name=__name__, category="eval")

_SAVED = ("score", "status")  # the columns of each function in a saved results dataset
DatasetRow = dict[str, Any]
Score = Callable[
    [list[DatasetRow], list[Generation], list[str], BenchmarkConfig, JudgeOptions], Awaitable[Any]
]  # rows, their generations, functions, config, options -> an EvaluateResponse


def checked_groups(rows: list[DatasetRow], options: JudgeOptions, *, where: str) -> dict[str, list[object]]:
    """The rows' ``group_by`` keys, once their text is checked: before any of them is generated or judged."""
    check_rows(rows, user=where)
    return group_keys(rows, options.group_by)


class JobRunner:
    """Runs this replica's jobs and page workers, and keeps their leases in the job store."""

    def __init__(
        self,
        config: JudgeEvalConfig,
        *,
        replica_id: str,
        candidate: Candidate,
        certifier: Certifier,
        score: Score,
        datasetio_api: DatasetIO,
        datasets_api: Datasets,
    ) -> None:
        self.config = config
        self._replica_id = replica_id
        self._candidate = candidate
        self._certifier = certifier
        self._score = score
        self._datasetio = datasetio_api
        self._datasets = datasets_api
        self._store: JobStore | None = None
        # This process's running jobs: their live records (fresher than the store's) and tasks.
        self._running: dict[str, tuple[JobRecord, asyncio.Task[None]]] = {}
        # Jobs whose end the store refused to record: their record here is the truth until the process ends.
        self._unrecorded: dict[str, JobRecord] = {}
        self._rounds: Rounds | None = None  # the lease keeping, from the first eval call on
        # Pages this replica works, of its own jobs or of other replicas' (their keys: "<job id>:<page index>").
        self._working: dict[str, tuple[Page, asyncio.Task[None]]] = {}
        self._claiming = asyncio.Lock()  # one page claim at a time, or slots could be overfilled
        self._page_finished = asyncio.Event()  # wakes this replica's coordinators
        # Why a page of this replica failed, where the store could not record it, by job: its coordinator here fails
        # the job (a coordinator elsewhere sees the page's lease run out and has it judged again).
        self._unrecorded_page_errors: dict[str, str] = {}

    @property
    def store(self) -> JobStore:
        """The job store (opened by ``open``)."""
        if self._store is None:
            raise RuntimeError("the eval provider is not initialized")
        return self._store

    async def open(self) -> None:
        """Open the job store (its tables are created on first use)."""
        if self._store is None:
            self._store = await JobStore.open(self.config.job_store)

    def live(self, job_id: str) -> JobRecord | None:
        """This process's record of a job it runs, or whose end the store refused: fresher than the store's."""
        running = self._running.get(job_id)
        return running[0] if running is not None else self._unrecorded.get(job_id)

    async def stop(self, job_id: str) -> None:
        """Stop this replica's coordinator and page workers of a job (cancelled: the store already says so)."""
        stopping = [task for page, task in self._working.values() if page.job_id == job_id]
        if (running := self._running.get(job_id)) is not None:
            stopping.append(running[1])
        for task in stopping:
            task.cancel()
        if stopping:
            await asyncio.wait(stopping, timeout=5)

    async def create(self, job: JobRecord) -> None:
        """Record a new job, leased to this replica, and start it in the request's own context (its user, options)."""
        await self.store.create(job, self._replica_id, self.config.lease_s)
        self.start(job, context=contextvars.copy_context())

    async def resume_unfinished(self) -> None:
        """On the first eval call of this process: take over jobs left unfinished, then keep leases from then on.

        Not in ``initialize``: ``llama stack run`` initializes providers in an event loop of its own that ends before
        the server's starts, and tasks started there would never run.
        """
        if self._rounds is not None:
            return
        self._rounds = Rounds(self._keep_leases, every_s=self.config.lease_renewal_s)
        await self._claim_expired()
        await self._fill_page_slots()

    async def _keep_leases(self) -> None:
        """One round: renew this replica's leases, stop what it lost, take over jobs and pages whose lease ran out."""
        try:
            await self._renew_leases()
            await self._claim_expired()
            await self._fill_page_slots()
        except Exception as exc:  # the store is away for a while: try again at the next round
            logger.warning("Eval job leases not kept this round", error=f"{type(exc).__name__}: {exc}")

    async def _renew_leases(self) -> None:
        for job_id, (_, task) in list(self._running.items()):
            if not await self.store.renew(job_id, self._replica_id, self.config.lease_s):
                logger.info("Eval job stopped here: cancelled, or taken over by another replica", job_id=job_id)
                task.cancel()
        board = await self.store.pages
        for key, (page, task) in list(self._working.items()):
            if not await board.renew(page, self._replica_id, self.config.lease_s):
                logger.info("Eval job page stopped here: the job ended, or another replica took it", page=key)
                task.cancel()

    async def _claim_expired(self) -> None:
        for job in await self.store.claimable():
            if job.job_id not in self._running and await self.store.claim(
                job.job_id, self._replica_id, self.config.lease_s
            ):
                logger.info("Resuming eval job", job_id=job.job_id, replica_id=self._replica_id)
                self.start(job, context=context_of(job.user))  # as its user, not as whoever called first

    async def shutdown(self) -> None:
        """Stop running jobs and give up their leases: they stay unfinished, and a replica or a restart resumes them."""
        if self._rounds is not None:
            self._rounds.stop()
        for _, task in [*self._running.values(), *self._working.values()]:
            task.cancel()
        if self._store is not None and self._rounds is not None:
            try:
                await asyncio.wait_for(self._store.release(self._replica_id), timeout=5)
            except Exception as exc:  # they are taken over when their leases run out instead
                logger.warning("Eval job leases not released", error=f"{type(exc).__name__}: {exc}")

    async def _save(self, job: JobRecord) -> None:
        """Record where a job of this replica stands; ``LeaseLostError`` when it is no longer this replica's."""
        await self.store.save(job, self._replica_id)

    def start(self, job: JobRecord, *, context: contextvars.Context) -> None:
        """Coordinate ``job`` in the background, in ``context`` (whose user and provider data the job's calls carry)."""
        self._unrecorded.pop(job.job_id, None)  # a job whose end the store refused runs again once its lease ran out
        self._running[job.job_id] = (job, asyncio.create_task(self._run_job(job), context=context))

    async def _run_job(self, job: JobRecord) -> None:
        """Coordinate a job: list its pages, wait while page workers (of any replica) judge them, aggregate once."""
        job.status, job.started_at = JobStatus.in_progress.value, job.started_at or time.time()
        try:
            await self._save(job)
            config = BenchmarkConfig.model_validate(job.benchmark_config)
            options = JudgeOptions.parse(job.options, where=job.job_id)
            await check_readable(self._datasets, job.dataset_id, where=f"eval job {job.job_id}")
            job.progress = JobProgress(rows=config.num_examples)
            await self._save(job)
            pages = await self._list_pages(job, config)
            await self._save(job)
            await self._fill_page_slots()
            pages = await self._wait_for_pages(job, len(pages))
            aggregated = await self._aggregate(job, pages, options)
            if job.certification is not None:
                outcomes = await self.store.results(job.job_id)
                await self._certifier.add_card(job, outcomes, aggregated, seed=options.seed)
            # Inside the try: a job whose results dataset cannot be saved fails with the reason, never hangs.
            results_dataset = await self._save_results(job, pages) if job.save_results_dataset else None
        except asyncio.CancelledError:  # job_cancel has recorded the cancel; at shutdown the job resumes later
            self._running.pop(job.job_id, None)
            raise
        except LeaseLostError:  # cancelled through another replica, or taken over: this replica has nothing to record
            logger.info("Eval job stopped here: it is no longer this replica's", job_id=job.job_id)
            self._running.pop(job.job_id, None)
            return
        except Exception as exc:  # the job fails with its reason, reported by job_status/job_result
            job.status, job.error = JobStatus.failed.value, f"{type(exc).__name__}: {exc}"
            logger.warning("Eval job failed", job_id=job.job_id, error=job.error)
        else:
            reported = {fn: as_reported(a, details=detailed(job, options)) for fn, a in aggregated.items()}
            job.status, job.result = JobStatus.completed.value, {"aggregated_results": reported}
            job.progress = _progress_of(job).model_copy(update={"phase": "done", "results_dataset": results_dataset})
        job.finished_at = time.time()
        try:
            await self._save(job)
        except LeaseLostError:
            logger.info("Eval job's end not recorded here: it is no longer this replica's", job_id=job.job_id)
        except Exception as exc:
            # The store refuses the record (its disk is full, say): there the job stays unfinished and is taken up
            # again once its lease has run out; until then this process reports why it stopped.
            reason = f"the job store could not record the job's end: {type(exc).__name__}: {exc}"
            job.status, job.error = JobStatus.failed.value, "; ".join(filter(None, (job.error, reason)))
            self._unrecorded[job.job_id] = job
            logger.error("Eval job not recorded", job_id=job.job_id, error=job.error)
        finally:
            # Only once its end is recorded: until then readers get this live record, not the store's older one
            # (a status of "completed" followed by a result refused as "in_progress").
            self._running.pop(job.job_id, None)

    async def _list_pages(self, job: JobRecord, config: BenchmarkConfig) -> list[Page]:
        """Read the dataset once to cut the job into pages, and list them for the page workers.

        This replica starts working the first new pages at once (as many as it has room for). A resumed job keeps the
        pages it listed before, and their states.
        """
        pages: list[Page] = []
        limit, start = config.num_examples, 0
        while limit is None or start < limit:
            size = self.config.page_rows if limit is None else min(self.config.page_rows, limit - start)
            request = IterRowsRequest(dataset_id=job.dataset_id, start_index=start, limit=size)
            page = await read_rows(self._datasetio, self._datasets, request)
            if page.data:
                pages.append(Page(job.job_id, len(pages), start, len(page.data)))
            start += len(page.data)
            if not page.has_more or not page.data:
                break
        job.progress = _progress_of(job).model_copy(update={"rows": start})
        board = await self.store.pages
        async with self._claiming:  # this replica starts on its job's first pages as it lists them
            room = self.config.pages_in_flight - len(self._working)
            for page in await board.add(pages, replica_id=self._replica_id, lease_s=self.config.lease_s, take=room):
                self._start_page(job, page)
        return await board.of_job(job.job_id)

    async def _wait_for_pages(self, job: JobRecord, count: int) -> list[Page]:
        """Report progress until every page is judged; a page that failed fails the job with its reason."""
        board = await self.store.pages
        while True:
            self._page_finished.clear()  # before reading: a page finished after the read wakes the wait below
            pages = await board.of_job(job.job_id)
            failures = ((page.outcome or {}).get("error", "unknown error") for page in pages if page.status == FAILED)
            error = self._unrecorded_page_errors.pop(job.job_id, None) or next(failures, None)
            if error is not None:
                raise JobPageError(error)
            generated, judged = await self.store.count(job.job_id)
            generated = max(generated, judged)  # a certification generates nothing
            progress = _progress_of(job)
            phase = "judging" if generated >= (progress.rows or 0) else "generating"
            done = sum(page.status == DONE for page in pages)
            job.progress = progress.model_copy(
                update={"phase": phase, "generated": generated, "judged": judged, "pages_done": done}
            )
            await self._save(job)
            if done == count:
                return pages
            # A page of this replica wakes it at once; pages of other replicas are seen at the next look.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._page_finished.wait(), timeout=min(1.0, self.config.lease_renewal_s))

    async def _aggregate(self, job: JobRecord, pages: list[Page], options: JudgeOptions) -> dict[str, Any]:
        """Each function's aggregates over every page, as one scoring call over all rows would make them."""
        scores = {fn: PagedScores() for fn in job.scoring_functions}
        for page in pages:
            # The rows are read again only for their group_by values (their worker checked them).
            groups = group_keys(await self._page_rows(job, page), options.group_by) if options.group_by else {}
            outcomes = await self.store.results(job.job_id, page.start, page.start + page.size)
            for fn, paged in scores.items():
                paged.add_aggregates(page.aggregates.get(fn) or {})
                paged.add_rows([outcome.scores[fn] for outcome in outcomes], groups)
        return {
            fn: paged.aggregated(bootstrap_resamples=options.bootstrap_resamples, seed=options.seed)
            for fn, paged in scores.items()
        }

    async def _page_rows(self, job: JobRecord, page: Page) -> list[DatasetRow]:
        """The dataset rows of one page, filled in by the benchmark's row expander if it has one."""
        request = IterRowsRequest(dataset_id=job.dataset_id, start_index=page.start, limit=page.size)
        rows = (await read_rows(self._datasetio, self._datasets, request)).data
        return expanded(rows, job.row_expander)

    async def _fill_page_slots(self) -> None:
        """Take pages of unfinished jobs (this replica's or others') while this replica has room for more."""
        async with self._claiming:
            board = await self.store.pages
            while len(self._working) < self.config.pages_in_flight:
                page = await board.claim(self._replica_id, self.config.lease_s, skip=set(self._working))
                if page is None:
                    return
                job = await self.store.get(page.job_id)
                if job is not None:
                    self._start_page(job, page)

    def _start_page(self, job: JobRecord, page: Page) -> None:
        """Work a page this replica holds the lease of, as the job's user."""
        task = asyncio.create_task(self._work_page(job, page), context=context_of(job.user))
        self._working[page.key] = (page, task)

    async def _work_page(self, job: JobRecord, page: Page) -> None:
        """Judge one claimed page and store its rows; then take the next page, if any."""
        board = await self.store.pages
        try:
            config = BenchmarkConfig.model_validate(job.benchmark_config)
            # Each judgment is stored as it is made, so a page taken over judges only what is missing.
            options = JudgeOptions.parse(job.options, where=job.job_id).model_copy(update={"durable": True})
            rows = await self._page_rows(job, page)
            checked_groups(rows, options, where=f"eval job {job.job_id}: rows from {page.start}")
            judge_page = self._judge_page if job.certification is None else self._certifier.judge_page
            outcomes, aggregated = await judge_page(job, page.start, rows, config, options)
            await self.store.add_results(job.job_id, outcomes)
            await board.finish(page, self._replica_id, {"aggregates": aggregated})
            self._page_finished.set()
        except asyncio.CancelledError:  # the job was cancelled, or this replica stops: the page's lease runs out
            raise
        except Exception as exc:  # the coordinator fails the job with this reason
            error = f"rows {page.start} to {page.start + page.size - 1}: {type(exc).__name__}: {exc}"
            logger.warning("Eval job page failed", job_id=job.job_id, page=page.index, error=error)
            try:
                await board.finish(page, self._replica_id, {"error": error}, failed=True)
            except Exception:  # the store refuses even that (its disk is full, say): tell this replica's coordinator
                self._unrecorded_page_errors[page.job_id] = error
            self._page_finished.set()
        finally:
            self._working.pop(page.key, None)
        await self._fill_page_slots()

    async def _judge_page(
        self, job: JobRecord, start: int, rows: list[DatasetRow], config: BenchmarkConfig, options: JudgeOptions
    ) -> tuple[list[RowOutcome], dict[str, dict[str, Any]]]:
        """Generate (what is not stored yet) and score one page: its rows, and each function's page aggregates.

        ``options`` are the job's, made durable: each judgment is stored the moment it is made.
        """
        done = await self.store.generations(job.job_id, start, start + len(rows))

        async def keep(index: int, generation: Generation) -> None:
            await self.store.add_generation(job.job_id, start + index, generation)

        local_done = {index - start: generation for index, generation in done.items()}
        generations = await self._candidate.answers(rows, config, options, local_done, keep)
        result = await self._score(rows, generations, job.scoring_functions, config, options)
        outcomes = [
            RowOutcome(start + i, generation, {fn: r.score_rows[i] for fn, r in result.scores.items()})
            for i, generation in enumerate(generations)
        ]
        return outcomes, {fn: r.aggregated_results for fn, r in result.scores.items()}

    async def _save_results(self, job: JobRecord, pages: list[Page]) -> str:
        """Register the job's rows with their generations and scores as a dataset; returns its id.

        The dataset API takes every row at once, so this holds them all: only for benchmarks that ask for it.
        """
        dataset_id = f"{job.benchmark_id}-results-{job.job_id[:12]}"
        scored: list[DatasetRow] = []
        for page in pages:
            rows = await self._page_rows(job, page)
            outcomes = await self.store.results(job.job_id, page.start, page.start + page.size)
            scored.extend(
                row
                | outcome.generation
                | {f"{fn}.{key}": score_row.get(key) for fn, score_row in outcome.scores.items() for key in _SAVED}
                for row, outcome in zip(rows, outcomes, strict=True)
            )
        await self._datasets.register_dataset(
            RegisterDatasetRequest(
                purpose=DatasetPurpose.eval_messages_answer,
                source=RowsDataSource(rows=scored),
                dataset_id=dataset_id,
                metadata={"eval_job": job.job_id, "benchmark_id": job.benchmark_id},
            )
        )
        logger.info("Eval job results saved as a dataset", job_id=job.job_id, dataset_id=dataset_id)
        return dataset_id


def _progress_of(job: JobRecord) -> JobProgress:
    """A job's progress (set when it starts; none made before)."""
    return job.progress or JobProgress()


def detailed(job: JobRecord, options: JudgeOptions) -> bool:
    """Whether a job reports details beside its aggregations: when asked, and always for a certification (its card)."""
    return options.details or job.certification is not None
