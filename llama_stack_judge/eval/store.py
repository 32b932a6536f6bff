"""Eval jobs and their generations, kept in one of the stack's SQL stores so they outlive the process."""

import time
from dataclasses import dataclass, field
from typing import Any

from llama_stack.core.storage.datatypes import SqlStoreReference
from llama_stack.core.storage.sqlstore.sqlstore import sqlstore_impl
from llama_stack_api.internal.sqlstore import ColumnDefinition, ColumnType, SqlStore

from llama_stack_judge.eval.access import JobUser
from llama_stack_judge.stored import FirstUseGuard

UNFINISHED = ("scheduled", "in_progress")


@dataclass
class JobRecord:
    """What a job is and where it stands; everything needed to resume it after a restart."""

    job_id: str
    benchmark_id: str
    dataset_id: str
    scoring_functions: list[str]
    benchmark_config: dict[str, Any]
    options: dict[str, Any]
    save_results_dataset: bool = False
    mt_bench_questions: bool = False  # rows are MT-bench question ids, expanded from the package's data
    certification: dict[str, Any] | None = None  # rows are keys of labelled answers; the candidate is the judge
    user: JobUser | None = None  # who started the job (with the stack's authentication on)
    status: str = "scheduled"
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    result: dict[str, Any] | None = None
    progress: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """Status, progress and times in one line, for messages and logs."""
        parts = [self.status]
        if self.progress:
            rows = self.progress.get("rows") or "?"  # known once the last page is read, or from num_examples
            parts.append(
                f"phase {self.progress.get('phase', '?')}, generated {self.progress.get('generated', 0)}/{rows} rows"
                f", judged {self.progress.get('judged', 0)}/{rows}"
            )
        for label, stamp in (
            ("created", self.created_at),
            ("started", self.started_at),
            ("finished", self.finished_at),
        ):
            if stamp is not None:
                parts.append(f"{label} {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(stamp))}")
        return "; ".join(parts)

    def row(self) -> dict[str, Any]:
        """The record as a table row."""
        return {
            "job_id": self.job_id,
            "benchmark_id": self.benchmark_id,
            "status": self.status,
            "spec": {
                "dataset_id": self.dataset_id,
                "scoring_functions": self.scoring_functions,
                "benchmark_config": self.benchmark_config,
                "options": self.options,
                "save_results_dataset": self.save_results_dataset,
                "mt_bench_questions": self.mt_bench_questions,
                "certification": self.certification,
                "user": None if self.user is None else self.user.as_dict(),
                "progress": self.progress,
            },
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "error": self.error,
            "result": self.result,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "JobRecord":
        """A record read back from the table."""
        spec = row["spec"]
        return cls(
            job_id=row["job_id"],
            benchmark_id=row["benchmark_id"],
            dataset_id=spec["dataset_id"],
            scoring_functions=spec["scoring_functions"],
            benchmark_config=spec["benchmark_config"],
            options=spec["options"],
            save_results_dataset=spec.get("save_results_dataset", False),
            mt_bench_questions=spec.get("mt_bench_questions", False),
            certification=spec.get("certification"),
            user=JobUser.from_dict(spec.get("user")),
            status=row["status"],
            created_at=row["created_at"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            error=row["error"],
            result=row["result"],
            progress=spec.get("progress", {}),
        )


@dataclass(frozen=True, slots=True)
class RowOutcome:
    """One row of a job, judged: its generation and each scoring function's score row."""

    index: int
    generation: dict[str, Any]
    scores: dict[str, dict[str, Any]]


class JobStore:
    """Job records, per-row generations and per-row results in three tables of a stack SQL store."""

    def __init__(self, store: SqlStore, prefix: str) -> None:
        self._store = store
        self._jobs = f"{prefix}_jobs"
        self._generations = f"{prefix}_generations"
        self._results = f"{prefix}_results"
        self._ready = FirstUseGuard(lambda: store.fetch_all(self._jobs, limit=1))

    @classmethod
    async def open(cls, reference: SqlStoreReference) -> "JobStore":
        """The store in ``reference``'s backend; its table name is the prefix of the three tables."""
        store = sqlstore_impl(reference)
        jobs = cls(store, reference.table_name)
        await store.create_table(
            jobs._jobs,
            {
                "job_id": ColumnDefinition(type=ColumnType.STRING, primary_key=True),
                "benchmark_id": ColumnType.STRING,
                "status": ColumnType.STRING,
                "spec": ColumnType.JSON,
                "created_at": ColumnType.FLOAT,
                "started_at": ColumnType.FLOAT,
                "finished_at": ColumnType.FLOAT,
                "error": ColumnType.TEXT,
                "result": ColumnType.JSON,
            },
        )
        # One row per dataset row of a job: its generation, then (once judged) with its scores.
        per_row = {
            "key": ColumnDefinition(type=ColumnType.STRING, primary_key=True),
            "job_id": ColumnType.STRING,
            "row_index": ColumnType.INTEGER,
            "generation": ColumnType.JSON,
        }
        await store.create_table(jobs._generations, per_row)
        await store.create_table(jobs._results, per_row | {"scores": ColumnType.JSON})
        return jobs

    async def save(self, job: JobRecord) -> None:
        """Insert or update a job record."""
        await self._ready()
        await self._store.upsert(self._jobs, job.row(), conflict_columns=["job_id"])

    async def get(self, job_id: str) -> JobRecord | None:
        """The job with this id, if any."""
        await self._ready()
        row = await self._store.fetch_one(self._jobs, where={"job_id": job_id})
        return None if row is None else JobRecord.from_row(row)

    async def all(self) -> list[JobRecord]:
        """Every job, oldest first."""
        return await self._jobs_where(None)

    async def unfinished(self) -> list[JobRecord]:
        """Jobs that were scheduled or running when the process stopped, oldest first."""
        statuses = ", ".join(f"'{status}'" for status in UNFINISHED)
        return await self._jobs_where(f"status IN ({statuses})")

    async def _jobs_where(self, where_sql: str | None) -> list[JobRecord]:
        await self._ready()
        rows = await self._store.fetch_all(self._jobs, where_sql=where_sql, order_by=[("created_at", "asc")])
        return [JobRecord.from_row(row) for row in rows.data]

    async def add_generation(self, job_id: str, row_index: int, generation: dict[str, Any]) -> None:
        """Keep one row's generation."""
        await self._ready()
        await self._store.upsert(
            self._generations,
            {"key": f"{job_id}:{row_index}", "job_id": job_id, "row_index": row_index, "generation": generation},
            conflict_columns=["key"],
        )

    async def generations(self, job_id: str, start: int = 0, end: int | None = None) -> dict[int, dict[str, Any]]:
        """The generations kept for a job's rows ``start`` to ``end`` (exclusive), by row index."""
        rows = await self._rows_between(self._generations, job_id, start, end)
        return {int(row["row_index"]): row["generation"] for row in rows}

    async def add_results(self, job_id: str, outcomes: list[RowOutcome]) -> None:
        """Keep judged rows (one page of a job)."""
        await self._ready()
        await self._store.insert(
            self._results,
            [
                {
                    "key": f"{job_id}:{outcome.index}",
                    "job_id": job_id,
                    "row_index": outcome.index,
                    "generation": outcome.generation,
                    "scores": outcome.scores,
                }
                for outcome in outcomes
            ],
        )

    async def results(self, job_id: str, start: int = 0, end: int | None = None) -> list[RowOutcome]:
        """The judged rows of a job (from ``start`` to ``end``, exclusive), in row order."""
        rows = await self._rows_between(self._results, job_id, start, end)
        return [RowOutcome(int(r["row_index"]), r["generation"], r["scores"]) for r in rows]

    async def _rows_between(self, table: str, job_id: str, start: int, end: int | None) -> list[dict[str, Any]]:
        await self._ready()
        bounds = "row_index >= :start" + ("" if end is None else " AND row_index < :end")
        rows = await self._store.fetch_all(
            table,
            where={"job_id": job_id},
            where_sql=bounds,
            where_sql_params={"start": start} | ({} if end is None else {"end": end}),
            order_by=[("row_index", "asc")],
        )
        return rows.data
