"""The pages of running jobs, claimed one at a time by whichever replica of the stack has room for one.

A job's coordinator (the replica holding the job's lease) lists its pages here, the first ones already leased to
itself; every replica's page workers claim the other pending pages, or pages whose worker stopped renewing its
lease, with an atomic conditional update. A page is worked under a lease like a job: its worker renews it, and a
worker that lost it (the job was cancelled, or another replica took the page over) stops. A finished page keeps
what its scoring calls reported (plan, usage, judges, card), which the coordinator merges once every page is done.
"""

import time
from dataclasses import dataclass
from typing import Any

from llama_stack.core.storage.sqlstore.sqlalchemy_sqlstore import SqlAlchemySqlStoreImpl
from llama_stack_api.internal.sqlstore import ColumnDefinition, ColumnType
from sqlalchemy import ColumnElement, Table, and_, or_, select, update

from llama_stack_judge.stack.sql import changed, session

PENDING, CLAIMED, DONE, FAILED = "pending", "claimed", "done", "failed"
COLUMNS = {
    "key": ColumnDefinition(type=ColumnType.STRING, primary_key=True),
    "job_id": ColumnType.STRING,
    "page_index": ColumnType.INTEGER,
    "start": ColumnType.INTEGER,
    "size": ColumnType.INTEGER,
    "status": ColumnType.STRING,
    "leased_by": ColumnType.STRING,
    "lease_until": ColumnType.FLOAT,
    "outcome": ColumnType.JSON,  # a done page: its scoring calls' aggregates; a failed one: the error
}


@dataclass(frozen=True, slots=True)
class Page:
    """A slice of a job's dataset rows: ``size`` rows from ``start``."""

    job_id: str
    index: int
    start: int
    size: int
    status: str = PENDING
    leased_by: str | None = None
    outcome: dict[str, Any] | None = None

    @property
    def aggregates(self) -> dict[str, Any]:
        """A done page's aggregates, by scoring function (what its scoring calls reported)."""
        return (self.outcome or {}).get("aggregates") or {}

    @property
    def key(self) -> str:
        """The page's key in the table."""
        return f"{self.job_id}:{self.index}"

    @classmethod
    def from_row(cls, row: Any) -> "Page":
        """A page read back from the table."""
        return cls(
            job_id=row["job_id"],
            index=int(row["page_index"]),
            start=int(row["start"]),
            size=int(row["size"]),
            status=row["status"],
            leased_by=row["leased_by"],
            outcome=row["outcome"],
        )


class PageBoard:
    """The pages table of a job store, next to its jobs table."""

    def __init__(self, store: SqlAlchemySqlStoreImpl, table: str, jobs_table: str, unfinished: tuple[str, ...]) -> None:
        self._store = store
        self._name = table
        self._jobs_name = jobs_table
        self._unfinished = unfinished

    @property
    def _table(self) -> Table:
        return self._store.metadata.tables[self._name]

    def _job_unfinished(self) -> ColumnElement[bool]:
        jobs = self._store.metadata.tables[self._jobs_name]
        return self._table.c.job_id.in_(select(jobs.c.job_id).where(jobs.c.status.in_(self._unfinished)))

    async def add(self, pages: list[Page], *, replica_id: str, lease_s: float, take: int) -> list[Page]:
        """List a job's pages, the first ``take`` new ones already leased to ``replica_id``; returns those.

        Leased in the same insert, so an idle replica cannot claim a page between its listing and its coordinator's
        claim. Pages listed before (by an earlier coordinator of the job) are kept as they are.
        """
        if not pages:
            return []
        listed = {page.index for page in await self.of_job(pages[0].job_id)}
        new = [page for page in pages if page.index not in listed]
        taken = [Page(p.job_id, p.index, p.start, p.size, CLAIMED, replica_id) for p in new[: max(take, 0)]]
        lease_until = time.time() + lease_s
        rows = [
            {"key": p.key, "job_id": p.job_id, "page_index": p.index, "start": p.start, "size": p.size}
            | {"status": p.status, "leased_by": p.leased_by, "outcome": None}
            | {"lease_until": lease_until if p.status == CLAIMED else None}
            for p in taken + new[len(taken) :]
        ]
        if rows:
            async with session(self._store) as transaction:
                await transaction.execute(self._table.insert(), rows)
                await transaction.commit()
        return taken

    async def of_job(self, job_id: str) -> list[Page]:
        """A job's pages, in order."""
        table = self._table
        async with session(self._store) as reading:
            rows = await reading.execute(select(table).where(table.c.job_id == job_id).order_by(table.c.page_index))
        return [Page.from_row(row._mapping) for row in rows]

    async def claim(self, replica_id: str, lease_s: float, *, skip: set[str]) -> Page | None:
        """Take the oldest job's first page that is pending, or whose worker stopped renewing it.

        ``None`` when there is none; ``skip``: the pages this replica works already.
        """
        table, now = self._table, time.time()
        claimable = and_(
            or_(table.c.status == PENDING, and_(table.c.status == CLAIMED, table.c.lease_until < now)),
            self._job_unfinished(),
        )
        jobs = self._store.metadata.tables[self._jobs_name]
        oldest_first = (
            select(table)
            .join(jobs, jobs.c.job_id == table.c.job_id)
            .where(claimable)
            .order_by(jobs.c.created_at, table.c.page_index)
            .limit(len(skip) + 8)
        )
        async with session(self._store) as reading:
            candidates = [Page.from_row(row._mapping) for row in await reading.execute(oldest_first)]
        for page in candidates:
            if page.key in skip:
                continue
            taken = await self._update(
                page.key,
                {"status": CLAIMED, "leased_by": replica_id, "lease_until": now + lease_s},
                claimable,
            )
            if taken:
                return Page(page.job_id, page.index, page.start, page.size, CLAIMED, replica_id)
        return None

    async def renew(self, page: Page, replica_id: str, lease_s: float) -> bool:
        """Extend this replica's lease of a page; false when it lost the page or the job has ended."""
        values = {"lease_until": time.time() + lease_s}
        return await self._update(page.key, values, self._held(replica_id))

    async def finish(self, page: Page, replica_id: str, outcome: dict[str, Any], *, failed: bool = False) -> bool:
        """Mark a page this replica worked done (with its aggregates) or failed (with the error)."""
        values = {"status": FAILED if failed else DONE, "outcome": outcome, "lease_until": None}
        return await self._update(page.key, values, self._held(replica_id))

    async def release(self, replica_id: str) -> None:
        """Let the pages a stopping replica works be taken over at once."""
        table = self._table
        held = and_(table.c.leased_by == replica_id, table.c.status == CLAIMED)
        await changed(self._store, update(table).where(held).values(lease_until=0.0))

    def _held(self, replica_id: str) -> ColumnElement[bool]:
        table = self._table
        return and_(table.c.leased_by == replica_id, table.c.status == CLAIMED, self._job_unfinished())

    async def _update(self, key: str, values: dict[str, Any], condition: ColumnElement[bool]) -> bool:
        table = self._table
        return await changed(self._store, update(table).where(table.c.key == key, condition).values(**values)) == 1
