"""Row expanders: the hook a benchmark's metadata names, looked up among installed entry points only."""

from unittest.mock import patch

import pytest

from llama_stack_judge.errors import JudgeInputError
from llama_stack_judge.eval import row_expanders
from llama_stack_judge.eval.access import JobUser
from llama_stack_judge.eval.row_expanders import expanded, expander_named_in, row_expander
from llama_stack_judge.eval.store import JobProgress, JobRecord
from llama_stack_judge.mtbench.benchmark import BENCHMARK_METADATA


def test_the_mt_bench_benchmark_turns_on_its_installed_expander() -> None:
    name = expander_named_in(BENCHMARK_METADATA, where="benchmark mt-bench")
    assert name == "mt_bench_questions"
    (row,) = expanded([{"question_id": 111}], name)
    assert row["category"] == "math" and len(row["turns"]) == 2 and len(row["reference"]) == 2
    with pytest.raises(JudgeInputError, match=r"row 1: no MT-bench question with question_id 7"):
        expanded([{"question_id": 111}, {"question_id": 7}], name)


def test_metadata_turns_on_an_expander_only_by_an_installed_name_set_to_true() -> None:
    assert expander_named_in(None, where="b") is None
    assert expander_named_in({"mt_bench_questions": "yes", "os.system": True}, where="b") is None
    assert expanded([{"a": 1}], None) == [{"a": 1}]
    with pytest.raises(JudgeInputError, match=r"no row expander 'os:system' is installed .* \['mt_bench_questions'\]"):
        row_expander("os:system")


def test_two_expanders_turned_on_are_refused() -> None:
    installed = row_expanders._installed() | {"other_rows": row_expanders._installed()["mt_bench_questions"]}
    with (
        patch.object(row_expanders, "_installed", return_value=installed),
        pytest.raises(JudgeInputError, match=r"benchmark b: metadata turns on more than one row expander"),
    ):
        expander_named_in({"mt_bench_questions": True, "other_rows": True}, where="benchmark b")


def _job(job_id: str, **more: object) -> JobRecord:
    fields = {"benchmark_id": "b", "dataset_id": "ds", "scoring_functions": ["judge::x"]}
    return JobRecord.model_validate({"job_id": job_id, "benchmark_config": {}, "options": {}} | fields | more)


def test_a_job_record_comes_back_from_its_table_row_as_it_was_without_its_lease() -> None:
    job = _job(
        "j",
        user=JobUser("alice", {"roles": ["admin"]}),
        progress=JobProgress(phase="judging", rows=10, generated=10, judged=4),
        status="in_progress",
        started_at=5.0,
        leased_by="replica-1",
    )
    row = job.row()
    assert set(row) == {"job_id", "benchmark_id", "status", "created_at", "started_at", "finished_at", "error",
                        "result", "spec"}  # fmt: skip
    assert "leased_by" not in row["spec"] and row["spec"]["user"] == {
        "principal": "alice",
        "attributes": {"roles": ["admin"]},
    }
    back = JobRecord.from_row(row | {"leased_by": "replica-2"})
    assert back.model_dump(exclude={"leased_by"}) == job.model_dump(exclude={"leased_by"})
    assert back.leased_by == "replica-2" and back.user == JobUser("alice", {"roles": ["admin"]})


def test_a_job_record_keeps_its_expander_and_reads_one_stored_as_a_flag() -> None:
    job = _job("j", benchmark_id="mt-bench", row_expander="mt_bench_questions")
    assert JobRecord.from_row(job.row()).row_expander == "mt_bench_questions"
    older = job.row()
    older["spec"] = {k: v for k, v in older["spec"].items() if k != "row_expander"} | {"mt_bench_questions": True}
    assert JobRecord.from_row(older).row_expander == "mt_bench_questions"
    plain = _job("k")
    assert JobRecord.from_row(plain.row()).row_expander is None
