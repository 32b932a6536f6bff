"""The job store's leases on a real sqlite store: one replica at a time writes a job, and the rules for taking over."""

import asyncio
from pathlib import Path

import pytest
from llama_stack.core.storage.datatypes import SqliteSqlStoreConfig, SqlStoreReference
from llama_stack.core.storage.sqlstore.sqlstore import register_sqlstore_backends

from llama_stack_judge.eval.pages import Page
from llama_stack_judge.eval.store import JobProgress, JobRecord, JobStore, LeaseLostError


def _job(job_id: str) -> JobRecord:
    return JobRecord(
        job_id=job_id,
        benchmark_id="bench",
        dataset_id="ds",
        scoring_functions=["judge::subset_of"],
        benchmark_config={},
        options={},
    )


async def _store(tmp_path: Path) -> JobStore:
    register_sqlstore_backends({"sql_leases": SqliteSqlStoreConfig(db_path=str(tmp_path / "jobs.db"))})
    return await JobStore.open(SqlStoreReference(backend="sql_leases", table_name="jobs"))


def test_only_the_lease_holder_writes_and_a_lapsed_lease_is_taken_over_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await _store(tmp_path)
        job = _job("j1")
        await store.create(job, "replica-a", lease_s=0.3)
        assert not await store.claim("j1", "replica-b", lease_s=0.3)  # a live lease is not taken
        assert await store.claimable() == []
        job.progress = JobProgress(rows=4, generated=1)
        await store.save(job, "replica-a")
        with pytest.raises(LeaseLostError):
            await store.save(job, "replica-b")
        assert await store.renew("j1", "replica-a", lease_s=0.3)
        await asyncio.sleep(0.4)  # replica-a stops renewing
        assert [j.job_id for j in await store.claimable()] == ["j1"]
        claims = await asyncio.gather(*(store.claim("j1", f"replica-{n}", lease_s=5) for n in "bcd"))
        assert sorted(claims) == [False, False, True]  # exactly one replica takes it over
        (taker,) = [f"replica-{n}" for n, won in zip("bcd", claims, strict=True) if won]
        stored = await store.get("j1")
        assert stored is not None and stored.leased_by == taker and stored.progress == JobProgress(rows=4, generated=1)
        assert "phase generating, generated 1/4 rows, judged 0/4" in stored.describe()
        assert f"running on replica {taker}" in stored.describe()
        with pytest.raises(LeaseLostError):  # the replica that lost it can no longer write it
            await store.save(job, "replica-a")
        assert not await store.renew("j1", "replica-a", lease_s=5)

    asyncio.run(scenario())


def test_a_cancel_from_any_replica_ends_the_lease_and_a_release_frees_a_job_at_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await _store(tmp_path)
        for job_id in ("cancelled", "released"):
            await store.create(_job(job_id), "replica-a", lease_s=60)
        assert await store.cancel("cancelled")  # sent through another replica: no lease needed
        assert not await store.cancel("cancelled")  # it has ended already
        assert not await store.renew("cancelled", "replica-a", lease_s=60)  # so its holder stops
        cancelled = await store.get("cancelled")
        assert cancelled is not None and cancelled.status == "cancelled"
        await store.release("replica-a")  # replica-a shuts down cleanly
        assert [j.job_id for j in await store.claimable()] == ["released"]
        assert await store.claim("released", "replica-b", lease_s=60)

    asyncio.run(scenario())


def test_a_coordinator_lists_its_job_with_its_first_pages_leased_to_itself(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await _store(tmp_path)
        await store.create(_job("j1"), "replica-a", lease_s=60)
        board = await store.pages
        pages = [Page("j1", index, index * 10, 10) for index in range(3)]
        taken = await board.add(pages, replica_id="replica-a", lease_s=60, take=2)
        assert [(p.index, p.leased_by) for p in taken] == [(0, "replica-a"), (1, "replica-a")]
        # An idle replica claiming right after the listing gets the page the coordinator had no room for.
        other = await board.claim("replica-b", lease_s=60, skip=set())
        assert other is not None and other.index == 2
        assert await board.claim("replica-b", lease_s=60, skip={other.key}) is None
        assert [(p.status, p.leased_by) for p in await board.of_job("j1")] == [
            ("claimed", "replica-a"),
            ("claimed", "replica-a"),
            ("claimed", "replica-b"),
        ]
        # A coordinator taking the job over keeps the pages as they stand and takes no listed page.
        assert await board.add(pages, replica_id="replica-c", lease_s=60, take=2) == []
        assert [p.leased_by for p in await board.of_job("j1")] == ["replica-a", "replica-a", "replica-b"]

    asyncio.run(scenario())
