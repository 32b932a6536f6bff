"""A stack whose storage fills up during an eval job: a clear failure, the server keeps serving, nothing is lost."""

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from llama_stack_client import BadRequestError

from tests.integration.test_jobs import CANDIDATE
from tests.stacks import (
    SHORT_LEASES,
    register_benchmark,
    run_config_file,
    start_server,
    stop_server,
    wait_for_job,
    with_eval_config,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB tmpfs for the stack's state (needs root, as on the CI machine)."""
    mount_point = tmp_path / "state"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount_point)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(directory: Path) -> Path:
    """Write a file until the disk is full; returns it (delete it to free the space).

    Unbuffered: a buffered file would fail again when closed, flushing what the full disk refused.
    """
    filler = directory / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        while True:
            os.write(descriptor, b"\0" * (1 << 16))
    except OSError:
        return filler
    finally:
        os.close(descriptor)


def test_a_full_disk_fails_the_job_clearly_and_a_restart_finishes_it(small_disk: Path, tmp_path: Path) -> None:
    run_yaml = run_config_file(small_disk, with_eval_config(**SHORT_LEASES))
    log = tmp_path / "server.log"  # not on the disk that fills up
    rows = [{"input_query": f"SLOW question {i}", "expected_answer": "slow"} for i in range(8)]
    process, client = start_server(run_yaml, log=log)
    try:
        benchmark_id = register_benchmark(client, rows, ["judge::subset_of"])
        job = client.alpha.eval.run_eval(benchmark_id, benchmark_config=CANDIDATE)
        time.sleep(0.5)  # the job has started: its rows are being answered (2 s each, 4 at a time)
        filler = _fill(small_disk)
        assert wait_for_job(client, benchmark_id, job.job_id, {"failed", "completed"}, seconds=60) == "failed"
        with pytest.raises(BadRequestError, match="database or disk is full"):
            client.alpha.eval.jobs.retrieve(job.job_id, benchmark_id=benchmark_id)
        # The server keeps serving what needs no new storage.
        score = client.scoring.score(
            input_rows=[{"generated_answer": "Paris", "expected_answer": "Paris"}],
            scoring_functions={"judge::subset_of": None},
        )
        assert score.results["judge::subset_of"].score_rows[0]["score"] == 1.0
    finally:
        stop_server(process)
    filler.unlink()
    process, client = start_server(run_yaml, log=log)
    try:
        # The store never recorded the job's end: the new process resumes it and finishes it.
        assert wait_for_job(client, benchmark_id, job.job_id, {"failed", "completed"}, seconds=60) == "completed"
        result = client.alpha.eval.jobs.retrieve(job.job_id, benchmark_id=benchmark_id)
    finally:
        stop_server(process)
    assert [g["generated_answer"] for g in result.generations] == ["A slow answer."] * 8
    assert [r["score"] for r in result.scores["judge::subset_of"].score_rows] == [1.0] * 8
