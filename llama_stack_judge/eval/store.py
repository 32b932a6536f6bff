"""Eval jobs and their generations, kept in one of the stack's SQL stores so they outlive the process.

Several replicas of a stack can share the store. An unfinished job is leased to the replica that runs it: the
replica renews the lease while it works, and every write of the job's record is conditional on the lease still being
its own and the job still being unfinished, so a job cancelled through another replica, or taken over after its lease
ran out, stops being written by the replica that lost it. The stack's SQL store API cannot express these conditional
updates (its ``update`` takes equalities only and does not say how many rows it changed), so they are plain
SQLAlchemy statements on the store's own engine and table.
"""

import time
from dataclasses import dataclass
from typing import Any, Literal

from llama_stack.core.storage.datatypes import SqlStoreReference
from llama_stack.core.storage.sqlstore.sqlalchemy_sqlstore import SqlAlchemySqlStoreImpl
from llama_stack.core.storage.sqlstore.sqlstore import sqlstore_impl
from llama_stack_api.internal.sqlstore import ColumnDefinition, ColumnType
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, Table, and_, delete, func, or_, select, update

from llama_stack_judge.eval.access import JobUser
from llama_stack_judge.eval.pages import COLUMNS as PAGE_COLUMNS
from llama_stack_judge.eval.pages import PageBoard
from llama_stack_judge.eval.row_expanders import expander_named_in
from llama_stack_judge.stack.registry import FirstUseGuard
from llama_stack_judge.stack.sql import changed, session

UNFINISHED = ("scheduled", "in_progress")


class JobProgress(BaseModel):
    """Where a started job stands: its phase, and how many of its rows are answered and judged."""

    phase: Literal["generating", "judging", "done"] = "generating"
    rows: int | None = None  # from num_examples, then counted once the dataset is read into pages
    generated: int = 0
    judged: int = 0
    pages_done: int = 0
    results_dataset: str | None = None  # the dataset a finished job's rows were saved as, if asked for

    def describe(self) -> str:
        """The phase and the counts, in words."""
        rows = self.rows or "?"
        return f"phase {self.phase}, generated {self.generated}/{rows} rows, judged {self.judged}/{rows}"


class LeaseLostError(Exception):
    """The job is no longer this replica's to write: it was cancelled, or another replica took it over."""


# The job table's own columns; the rest of a record is kept in its JSON column ``spec``.
_RECORD_COLUMNS = ("job_id", "benchmark_id", "status", "created_at", "started_at", "finished_at", "error", "result")


class JobRecord(BaseModel):
    """What a job is and where it stands; everything needed to resume it after a restart."""

    job_id: str
    benchmark_id: str
    dataset_id: str
    scoring_functions: list[str]
    benchmark_config: dict[str, Any]
    options: dict[str, Any]
    save_results_dataset: bool = False
    row_expander: str | None = None  # the installed hook that fills in the dataset's rows (eval/row_expanders.py)
    certification: dict[str, Any] | None = None  # rows are keys of labelled answers; the candidate is the judge
    user: JobUser | None = None  # who started the job (with the stack's authentication on)
    status: str = "scheduled"
    created_at: float = Field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    result: dict[str, Any] | None = None
    progress: JobProgress | None = None  # once started
    # The replica running the job: read from the store, written by lease operations only, never with the record.
    leased_by: str | None = Field(default=None, exclude=True)

    def describe(self) -> str:
        """Status, progress and times in one line, for messages and logs."""
        parts = [self.status]
        if self.progress is not None:
            parts.append(self.progress.describe())
        for label, stamp in (
            ("created", self.created_at),
            ("started", self.started_at),
            ("finished", self.finished_at),
        ):
            if stamp is not None:
                parts.append(f"{label} {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(stamp))}")
        if self.leased_by is not None and self.status in UNFINISHED:
            parts.append(f"running on replica {self.leased_by}")
        return "; ".join(parts)

    def row(self) -> dict[str, Any]:
        """The record as a table row."""
        fields = self.model_dump(mode="json")
        return {column: fields.pop(column) for column in _RECORD_COLUMNS} | {"spec": fields}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "JobRecord":
        """A record read back from the table."""
        spec = dict(row["spec"])
        # A record stored before hooks had names kept the flag under its hook's name, as metadata does.
        spec["row_expander"] = spec.get("row_expander") or expander_named_in(spec, where=f"job {row['job_id']}")
        columns = {column: row[column] for column in _RECORD_COLUMNS}
        return cls.model_validate(spec | columns | {"leased_by": row.get("leased_by")})


_LEASE_COLUMNS = {"leased_by": ColumnType.STRING, "lease_until": ColumnType.FLOAT}


def _lease(replica_id: str, lease_s: float) -> dict[str, Any]:
    return {"leased_by": replica_id, "lease_until": time.time() + lease_s}


@dataclass(frozen=True, slots=True)
class RowOutcome:
    """One row of a job, judged: its generation and each scoring function's score row."""

    index: int
    generation: dict[str, Any]
    scores: dict[str, dict[str, Any]]


class JobStore:
    """Job records, per-row generations and per-row results in three tables of a stack SQL store."""

    def __init__(self, store: SqlAlchemySqlStoreImpl, prefix: str) -> None:
        self._store = store
        self._jobs = f"{prefix}_jobs"
        self._generations = f"{prefix}_generations"
        self._results = f"{prefix}_results"
        self._ready = FirstUseGuard(lambda: store.fetch_all(self._jobs, limit=1))
        self._pages = PageBoard(store, f"{prefix}_pages", self._jobs, UNFINISHED)

    @property
    async def pages(self) -> PageBoard:
        """The pages of the jobs (once the store's tables exist)."""
        await self._ready()
        return self._pages

    @classmethod
    async def open(cls, reference: SqlStoreReference) -> "JobStore":
        """The store in ``reference``'s backend; its table name is the prefix of the three tables."""
        store = sqlstore_impl(reference)
        if not isinstance(store, SqlAlchemySqlStoreImpl):
            raise TypeError(f"job_store: backend {reference.backend} is not a SQL database (sqlite or postgres)")
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
            }
            | _LEASE_COLUMNS,
        )
        for name, kind in _LEASE_COLUMNS.items():  # a store written before leases existed
            await store.add_column_if_not_exists(jobs._jobs, name, kind)
        # One row per dataset row of a job: its generation, then (once judged) with its scores.
        per_row = {
            "key": ColumnDefinition(type=ColumnType.STRING, primary_key=True),
            "job_id": ColumnType.STRING,
            "row_index": ColumnType.INTEGER,
            "generation": ColumnType.JSON,
        }
        await store.create_table(jobs._generations, per_row)
        await store.create_table(jobs._results, per_row | {"scores": ColumnType.JSON})
        await store.create_table(f"{reference.table_name}_pages", PAGE_COLUMNS)
        return jobs

    async def create(self, job: JobRecord, replica_id: str, lease_s: float) -> None:
        """Record a new job, leased to the replica that starts it."""
        await self._ready()
        await self._store.insert(self._jobs, job.row() | _lease(replica_id, lease_s))
        job.leased_by = replica_id

    async def save(self, job: JobRecord, replica_id: str) -> None:
        """Update the record of a job this replica runs; ``LeaseLostError`` if it no longer does."""
        fields = job.row()
        del fields["job_id"]
        if not await self._update(job.job_id, fields, self._held_by(replica_id)):
            raise LeaseLostError(f"eval job {job.job_id} is no longer run by replica {replica_id}")

    async def renew(self, job_id: str, replica_id: str, lease_s: float) -> bool:
        """Extend this replica's lease of an unfinished job; false when the lease or the job is gone."""
        return await self._update(job_id, _lease(replica_id, lease_s), self._held_by(replica_id))

    async def claim(self, job_id: str, replica_id: str, lease_s: float) -> bool:
        """Take over an unfinished job whose lease has run out; false when another replica was first."""
        table = self._table
        expired = or_(table.c.lease_until.is_(None), table.c.lease_until < time.time())
        return await self._update(job_id, _lease(replica_id, lease_s), expired)

    async def release(self, replica_id: str) -> None:
        """Let the unfinished jobs (and pages) of a replica that stops be taken over at once, without waiting."""
        await self._ready()
        await self._pages.release(replica_id)
        table = self._table
        held = and_(table.c.leased_by == replica_id, table.c.status.in_(UNFINISHED))
        await changed(self._store, update(table).where(held).values(lease_until=0.0))

    async def cancel(self, job_id: str) -> bool:
        """Mark an unfinished job cancelled, whichever replica runs it; false when it had already ended."""
        return await self._update(job_id, {"status": "cancelled", "finished_at": time.time()}, None)

    @property
    def _table(self) -> Table:
        return self._store.metadata.tables[self._jobs]

    def _held_by(self, replica_id: str) -> ColumnElement[bool]:
        return self._table.c.leased_by == replica_id

    async def _update(self, job_id: str, values: dict[str, Any], condition: ColumnElement[bool] | None) -> bool:
        """Update one unfinished job when ``condition`` holds, atomically; whether it did."""
        await self._ready()
        table = self._table
        statement = update(table).where(table.c.job_id == job_id, table.c.status.in_(UNFINISHED))
        if condition is not None:
            statement = statement.where(condition)
        return await changed(self._store, statement.values(**values)) == 1

    async def get(self, job_id: str) -> JobRecord | None:
        """The job with this id, if any."""
        await self._ready()
        row = await self._store.fetch_one(self._jobs, where={"job_id": job_id})
        return None if row is None else JobRecord.from_row(row)

    async def all(self) -> list[JobRecord]:
        """Every job, oldest first."""
        return await self._jobs_where(None)

    async def claimable(self) -> list[JobRecord]:
        """Unfinished jobs whose lease has run out (their replica stopped or died), oldest first."""
        statuses = ", ".join(f"'{status}'" for status in UNFINISHED)
        expired = "(lease_until IS NULL OR lease_until < :now)"
        return await self._jobs_where(f"status IN ({statuses}) AND {expired}", {"now": time.time()})

    async def _jobs_where(self, where_sql: str | None, params: dict[str, Any] | None = None) -> list[JobRecord]:
        await self._ready()
        rows = await self._store.fetch_all(
            self._jobs, where_sql=where_sql, where_sql_params=params, order_by=[("created_at", "asc")]
        )
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
        """Keep judged rows (one page of a job), replacing what a worker that lost the page may have stored."""
        if not outcomes:
            return
        await self._ready()
        table = self._store.metadata.tables[self._results]
        first, last = outcomes[0].index, outcomes[-1].index
        rows = [
            {
                "key": f"{job_id}:{outcome.index}",
                "job_id": job_id,
                "row_index": outcome.index,
                "generation": outcome.generation,
                "scores": outcome.scores,
            }
            for outcome in outcomes
        ]
        async with session(self._store) as transaction:
            await transaction.execute(
                delete(table).where(table.c.job_id == job_id, table.c.row_index.between(first, last))
            )
            await transaction.execute(table.insert(), rows)
            await transaction.commit()

    async def count(self, job_id: str) -> tuple[int, int]:
        """How many of a job's rows are answered and how many judged."""
        await self._ready()
        counted = []
        for name in (self._generations, self._results):
            table = self._store.metadata.tables[name]
            async with session(self._store) as reading:
                found = await reading.execute(select(func.count()).where(table.c.job_id == job_id))
            counted.append(int(found.scalar_one()))
        return counted[0], counted[1]

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
