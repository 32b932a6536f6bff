"""Judging a run's rows through the stack, in chunks, with a progress bar; what Ctrl-C leaves is kept."""

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TimeRemainingColumn
from rich.text import Text

from llama_stack_judge.cli.judge_choice import JudgeChoice
from llama_stack_judge.cli.selection import Selection
from llama_stack_judge.cli.stack import OpenedStack, open_stack
from llama_stack_judge.core.aggregate import JUDGE_CARD_KEY, JUDGES_KEY
from llama_stack_judge.mtbench.tasks import PAIRWISE_TASK, RATING_TASK
from llama_stack_judge.mtbench.work import Work, pairwise_judgment, single_judgment
from llama_stack_judge.names import PREFIX
from llama_stack_judge.run_info import run_metadata

DEFAULT_CHUNK_PER_SLOT = 4  # rows per score call = 4 x max_concurrency: keeps every slot busy, progress fine-grained
INTERRUPTED = 130  # the exit code of a command stopped by Ctrl-C


@dataclass(frozen=True)
class Judging:
    """How a command judges: the judge chosen, the calls in flight and whether stored replies are reused."""

    judge: JudgeChoice = field(default_factory=JudgeChoice)
    max_concurrency: int | None = None  # None: the provider's
    use_cache: bool = True

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        """The options of ``Judging``, the judge's among them."""
        parser.add_argument("--max-concurrency", type=int, help="judge calls in flight (default: the provider's)")
        parser.add_argument("--no-cache", action="store_true", help="judge afresh instead of reusing stored replies")
        JudgeChoice.add_arguments(parser)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "Judging":
        """The judging ``add_arguments``' options chose."""
        return cls(JudgeChoice.from_args(args), max_concurrency=args.max_concurrency, use_cache=not args.no_cache)


class RateColumn(ProgressColumn):
    """Rows judged per second."""

    def render(self, task: Task) -> Text:
        """The task's current speed."""
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} rows/s" if speed else "- rows/s")


@contextmanager
def progress_bar(total: int, description: str) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr with rate and ETA; yields the function that advances it."""
    columns = (description, BarColumn(), MofNCompleteColumn(), RateColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True)) as progress:
        task = progress.add_task(description, total=total)
        yield lambda done: progress.advance(task, done)


@dataclass
class Judged:
    """What judging produced: the judgments, the usage summed over calls, the judges that made them, completeness."""

    judgments: list[dict[str, Any]]
    usage: dict[str, int]
    judges: dict[str, Any]
    complete: bool
    seconds: float = 0.0  # wall time, the stack's start included
    stack_card: dict[str, Any] | None = None  # the judges' card as the stack found it (its store, or shipped)


def judge_work(
    stack: OpenedStack,
    judging: Judging,
    work: Work,
    *,
    function_id: str,
    to_judgment: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]],
    out: IO[str],
) -> Judged:
    """Score the rows in chunks, writing each judgment as it comes.

    Ctrl-C stops after keeping what was judged; the same command run again takes the rest (judged rows come back
    from the judgment cache without an inference call).
    """
    options = judging.judge.options(max_concurrency=judging.max_concurrency, use_cache=judging.use_cache)
    judge_model = judging.judge.judge_model_param()
    params = None if judge_model is None else {"type": "llm_as_judge", "judge_model": judge_model}
    chunk = stack.rows_per_call or (judging.max_concurrency or 16) * DEFAULT_CHUNK_PER_SLOT
    judged = Judged([], {}, {}, complete=False)
    try:
        with progress_bar(len(work.rows), f"judging ({function_id})") as advance:
            for start in range(0, len(work.rows), chunk):
                rows = work.rows[start : start + chunk]
                result = stack.client.scoring.score(
                    input_rows=rows, scoring_functions={function_id: params}, extra_headers=options.headers()
                ).results[function_id]
                for about, scored in zip(work.about[start : start + chunk], result.score_rows, strict=True):
                    judgment = to_judgment(about, scored)
                    judged.judgments.append(judgment)
                    out.write(json.dumps(judgment, ensure_ascii=False) + "\n")
                out.flush()
                for key, value in result.aggregated_results.get("usage", {}).items():
                    judged.usage[key] = judged.usage.get(key, 0) + value
                judged.judges |= result.aggregated_results.get(JUDGES_KEY) or {}
                judged.stack_card = result.aggregated_results.get(JUDGE_CARD_KEY) or judged.stack_card
                advance(len(rows))
    except KeyboardInterrupt:
        threading.excepthook = _quiet_after_interrupt
        sys.unraisablehook = _quiet_unraisable_after_interrupt
        print(
            f"interrupted: {len(judged.judgments)} of {len(work.rows)} judged and kept; run the same command again "
            "to judge the rest",
            file=sys.stderr,
        )
        return judged
    judged.complete = True
    return judged


def _quiet_after_interrupt(args: threading.ExceptHookArgs) -> None:
    """After Ctrl-C the stack's sqlite worker threads report that the event loop has closed: expected, so quiet."""
    if isinstance(args.exc_value, RuntimeError) and "Event loop is closed" in str(args.exc_value):
        return
    threading.__excepthook__(args)


def _quiet_unraisable_after_interrupt(args: "sys.UnraisableHookArgs") -> None:
    """Quiet the expected unraisable errors of the stack's pending background writes after Ctrl-C.

    They are its inference-store log of the calls that were in flight, dropped with the event loop.
    """
    if isinstance(args.exc_value, RuntimeError | GeneratorExit):
        return
    sys.__unraisablehook__(args)


def judge_into(judging: Judging, work: Work, output: Path, *, pairwise: bool) -> tuple[str, Judged]:
    """Judge ``work`` with an MT-bench task through the stack ``judging`` chooses, into ``output/judgments.jsonl``.

    Returns the task's function id and what judging produced.
    """
    function_id = f"{PREFIX}::{PAIRWISE_TASK if pairwise else RATING_TASK}"
    to_judgment = pairwise_judgment if pairwise else single_judgment
    started = time.monotonic()
    with open_stack(judging.judge) as stack, (output / "judgments.jsonl").open("w", encoding="utf-8") as out:
        judged = judge_work(stack, judging, work, function_id=function_id, to_judgment=to_judgment, out=out)
    judged.seconds = time.monotonic() - started
    return function_id, judged


def write_json(path: Path, data: Any) -> None:
    """``data`` as indented JSON, one file."""
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def run_record(judging: Judging, selection: Selection, *, function_id: str, judges: dict[str, Any]) -> dict[str, Any]:
    """What produced a run: the command, versions, judge and the selection with its files, kept with its results."""
    inputs = selection.record()
    inputs["selection"]["use_cache"] = judging.use_cache
    return run_metadata(judge_source=judging.judge.source, function_id=function_id, judges=judges, inputs=inputs)
