"""The ``jobs`` command: eval jobs of a served stack (status, result, cancel, export) and of its store (list)."""

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from llama_stack_judge.errors import JudgeInputError
from llama_stack_judge.eval.config import JudgeEvalConfig
from llama_stack_judge.eval.store import JobRecord, JobStore
from llama_stack_judge.names import EVAL_PROVIDER_TYPE
from llama_stack_judge.outputs import output_file
from llama_stack_judge.stack_config import stored_provider_config

ENDED = {"completed", "failed", "cancelled"}


def _client(args: argparse.Namespace) -> Any:
    from llama_stack_client import LlamaStackClient

    # Without --api-key the client takes $LLAMA_STACK_CLIENT_API_KEY, as the SDK does everywhere.
    return LlamaStackClient(base_url=args.url, timeout=args.timeout, api_key=args.api_key)


async def _stored_jobs(run_yaml: Path) -> list[JobRecord]:
    """Every job in the job store of the stack that ``run_yaml`` describes (read directly, the stack need not run).

    It reads the store as its operator: every user's jobs, which is why it takes a run config and not a server URL.
    """
    config = stored_provider_config(run_yaml, EVAL_PROVIDER_TYPE, JudgeEvalConfig)
    store = await JobStore.open(config.job_store)
    return await store.all()


def list_command(args: argparse.Namespace) -> int:
    """One line per job: id, benchmark, the user it belongs to, status, progress and times."""
    jobs = asyncio.run(_stored_jobs(Path(args.stack_config)))
    for job in jobs:
        user = job.user.principal if job.user is not None else "-"  # "-": started with authentication off
        print(f"{job.job_id}  {job.benchmark_id}  user={user}  {job.describe()}")
    if not jobs:
        print("no eval jobs", file=sys.stderr)
    return 0


def status_command(args: argparse.Namespace) -> int:
    """The job's status."""
    print(_client(args).alpha.eval.jobs.status(args.job_id, benchmark_id=args.benchmark_id).status)
    return 0


def cancel_command(args: argparse.Namespace) -> int:
    """Cancel the job; what it generated so far is kept. A job that had already ended is not cancelled: exit 2."""
    jobs = _client(args).alpha.eval.jobs
    before = str(jobs.status(args.job_id, benchmark_id=args.benchmark_id).status)
    if before in ENDED:
        raise JudgeInputError(f"eval job {args.job_id} is already {before}; nothing to cancel")
    jobs.cancel(args.job_id, benchmark_id=args.benchmark_id)
    after = str(jobs.status(args.job_id, benchmark_id=args.benchmark_id).status)
    if after != "cancelled":
        raise JudgeInputError(f"eval job {args.job_id} ended as {after} before it could be cancelled")
    print("cancelled")
    return 0


def _result(args: argparse.Namespace) -> Any:
    return _client(args).alpha.eval.jobs.retrieve(args.job_id, benchmark_id=args.benchmark_id)


def _partial_marker(result: Any) -> dict[str, Any] | None:
    """A cancelled job's marker: beside the aggregations (with details), else in each of them."""
    for scores in result.scores.values():
        aggregated = scores.aggregated_results
        for place in (aggregated, *(value for value in aggregated.values() if isinstance(value, dict))):
            if place.get("partial"):
                return dict(place["partial"])
    return None


def _say_if_partial(result: Any) -> None:
    """A cancelled job's result holds only what it judged: say so."""
    marker = _partial_marker(result)
    if marker:
        print(
            f"partial: the job was {marker['status']}; {marker['rows_judged']} judged rows "
            f"({marker['rows_answered']} answered)",
            file=sys.stderr,
        )


def result_command(args: argparse.Namespace) -> int:
    """The aggregated scores of a completed job (of a cancelled one: what it judged), as JSON."""
    result = _result(args)
    print(json.dumps({fn: scores.aggregated_results for fn, scores in result.scores.items()}, indent=2))
    _say_if_partial(result)
    return 0


def export_command(args: argparse.Namespace) -> int:
    """Write a completed (or cancelled) job's judged rows as JSONL: each generation with every function's score row."""
    output = output_file(args.output)
    result = _result(args)
    with output.open("w", encoding="utf-8") as out:
        for index, generation in enumerate(result.generations):
            scores = {fn: scores.score_rows[index] for fn, scores in result.scores.items()}
            out.write(json.dumps({"row": index, "generation": generation, "scores": scores}) + "\n")
    print(f"wrote {len(result.generations)} rows to {output}", file=sys.stderr)
    _say_if_partial(result)
    return 0


def add_parser(commands: Any) -> None:
    """The ``jobs`` command and its subcommands."""
    jobs = commands.add_parser("jobs", help="eval jobs: list, status, result, cancel, export")
    actions = jobs.add_subparsers(dest="jobs", required=True)
    listing = actions.add_parser("list", help="every job in a stack's job store")
    listing.add_argument("--stack-config", required=True, help="the run.yaml of the stack")
    listing.set_defaults(run=list_command)
    for name, run, help_text in (
        ("status", status_command, "a job's status"),
        ("result", result_command, "a completed job's aggregated scores"),
        ("cancel", cancel_command, "cancel a running job"),
        ("export", export_command, "write a completed job's rows as JSONL"),
    ):
        action = actions.add_parser(name, help=help_text)
        action.add_argument("job_id")
        action.add_argument("--benchmark-id", required=True)
        action.add_argument("--url", default="http://127.0.0.1:8321", help="the served stack")
        action.add_argument("--timeout", type=float, default=60.0)
        action.add_argument(
            "--api-key", help="token for a stack with authentication on (default: $LLAMA_STACK_CLIENT_API_KEY)"
        )
        if name == "export":
            action.add_argument("--output", required=True, help="JSONL file to write")
        action.set_defaults(run=run)
