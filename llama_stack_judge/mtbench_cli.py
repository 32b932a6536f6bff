"""The ``mt-bench`` command: judge FastChat answer files with the MT-bench judges through a llama-stack."""

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TimeRemainingColumn
from rich.text import Text

from llama_stack_judge import leaderboard_cli
from llama_stack_judge.cardbook import best_card, card_book, card_summary
from llama_stack_judge.core.aggregate import JUDGE_CARD_KEY, JUDGES_KEY
from llama_stack_judge.core.agreement import agreement
from llama_stack_judge.core.jsonl import read_jsonl
from llama_stack_judge.core.length_control import length_controlled
from llama_stack_judge.errors import JudgeInputError
from llama_stack_judge.mtbench.certification import answer_lengths
from llama_stack_judge.mtbench.questions import NEED_REFERENCE, Question, data_file, load_questions, load_turn_answers
from llama_stack_judge.mtbench.summary import summarize_pairwise, summarize_single
from llama_stack_judge.mtbench.tasks import PAIRWISE_TASK, RATING_TASK
from llama_stack_judge.mtbench.work import (
    Answers,
    Work,
    add_pair,
    add_single,
    answer_files,
    pairwise_judgment,
    single_judgment,
)
from llama_stack_judge.outputs import output_dir, output_file
from llama_stack_judge.run_info import run_metadata
from llama_stack_judge.scoring.functions import PREFIX

if TYPE_CHECKING:  # cli imports this module
    from llama_stack_judge.cli import OpenedStack

DEFAULT_CHUNK_PER_SLOT = 4  # rows per score call = 4 x max_concurrency: keeps every slot busy, progress fine-grained
SAMPLE_DIR = data_file("sample")  # two models' answers to the first two questions of each category
SAMPLE_TURNS = (1,)  # with the embedded judge on 2 cores: ~32 judgments, a few minutes


def use_sample_by_default(args: argparse.Namespace) -> None:
    """Without ``--answers``: the shipped sample's answers and questions, turn 1 unless ``--turns`` says otherwise."""
    if args.answers is None:
        args.answers = [str(path) for path in sorted(SAMPLE_DIR.glob("*.jsonl"))]
        args.sample = True
        print(f"no --answers: judging the shipped sample ({', '.join(Path(a).stem for a in args.answers)})",
              file=sys.stderr)  # fmt: skip
    if args.turns is None:
        args.turns = SAMPLE_TURNS if getattr(args, "sample", False) else (1, 2)


def selected_questions(args: argparse.Namespace) -> list[Question]:
    """The questions to judge, in id order, after --question-ids, --categories and --limit (the sample's only)."""
    questions = sorted(load_questions(Path(args.questions)).values(), key=lambda q: q.question_id)
    if getattr(args, "sample", False):
        answered = set().union(*(load_turn_answers(Path(path)) for path in args.answers))
        questions = [q for q in questions if q.question_id in answered]
    if args.question_ids:
        wanted = {int(part) for part in args.question_ids.split(",")}
        unknown = wanted - {q.question_id for q in questions}
        if unknown:
            raise JudgeInputError(f"--question-ids: no such questions {sorted(unknown)} in {args.questions}")
        questions = [q for q in questions if q.question_id in wanted]
    if args.categories:
        categories = set(args.categories.split(","))
        known = {q.category for q in questions}
        if strays := sorted(categories - known):
            raise JudgeInputError(f"--categories: no question is in {strays}; the categories are {sorted(known)}")
        questions = [q for q in questions if q.category in categories]
    return questions[: args.limit] if args.limit else questions


def reference_answers(args: argparse.Namespace, questions: Sequence[Question]) -> dict[int, tuple[str, ...]]:
    """The reference answers by question id; every math, reasoning and coding question must have one."""
    references = load_turn_answers(Path(args.references))
    lacking = [q.question_id for q in questions if q.category in NEED_REFERENCE and q.question_id not in references]
    if lacking:
        raise JudgeInputError(
            f"{args.references}: no reference answers for questions {lacking} (math/reasoning/coding)"
        )
    return references


def single_work(args: argparse.Namespace, answers: Answers) -> Work:
    """One row per question, turn and model.

    In that order: consecutive prompts then share the judge's instructions and the question (and reference), which
    a llama.cpp server does not evaluate again (it keeps the previous prompt's cache and reuses the common prefix).
    """
    questions = selected_questions(args)
    references = reference_answers(args, questions)
    work = Work([], [], [])
    for question in questions:
        for turn in args.turns:
            for model in answers:
                add_single(work, question, references, answers, model, turn)
    return work


def pairwise_work(args: argparse.Namespace, answers: Answers) -> Work:
    """One row per model pair (all pairs, or each model against --baseline), question and turn."""
    questions = selected_questions(args)
    references = reference_answers(args, questions)
    if args.baseline is not None and args.baseline not in answers:
        raise JudgeInputError(f"--baseline {args.baseline!r} is not one of the answer files' models {sorted(answers)}")
    if args.baseline is None:
        pairs = list(combinations(sorted(answers), 2))
    else:
        pairs = [(model, args.baseline) for model in sorted(answers) if model != args.baseline]
    if not pairs:
        raise JudgeInputError("pairwise judging needs answers of at least two models")
    work = Work([], [], [])
    for question in questions:  # question-major, as in single_work: consecutive prompts share their start
        for turn in args.turns:
            for model_a, model_b in pairs:
                add_pair(work, question, references, answers, (model_a, model_b), turn)
    return work


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
    stack: "OpenedStack",
    args: argparse.Namespace,
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
    from llama_stack_judge.cli import judge_model_param, judge_options

    options = judge_options(args, max_concurrency=args.max_concurrency, use_cache=not args.no_cache)
    judge_model = judge_model_param(args)
    params = None if judge_model is None else {"type": "llm_as_judge", "judge_model": judge_model}
    chunk = stack.rows_per_call or (args.max_concurrency or 16) * DEFAULT_CHUNK_PER_SLOT
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


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def judge_into(args: argparse.Namespace, work: Work, output: Path, *, pairwise: bool) -> tuple[str, Judged]:
    """Judge ``work`` with the MT-bench task through the stack ``args`` choose, into ``output/judgments.jsonl``.

    Returns the task's function id and what judging produced.
    """
    from llama_stack_judge.cli import open_stack

    function_id = f"{PREFIX}::{PAIRWISE_TASK if pairwise else RATING_TASK}"
    to_judgment = pairwise_judgment if pairwise else single_judgment
    started = time.monotonic()
    with open_stack(args) as stack, (output / "judgments.jsonl").open("w", encoding="utf-8") as out:
        judged = judge_work(stack, args, work, function_id=function_id, to_judgment=to_judgment, out=out)
    judged.seconds = time.monotonic() - started
    return function_id, judged


def _shown_card(args: argparse.Namespace, judged: Judged) -> dict[str, Any] | None:
    """The judges' card for this run's turns: filed by the CLI's certify, or in the stack's card store."""
    filed = card_summary(card_book(args).find(judged.judges, turns=args.turns) if judged.judges else None)
    return best_card([card for card in (filed, judged.stack_card) if card], turns=args.turns)


def run_judging(args: argparse.Namespace, kind: str) -> int:
    """``mt-bench single`` and ``mt-bench pairwise``: judge, then write judgments, summary, plot and report."""
    from llama_stack_judge.mtbench.report import print_summary, write_report

    use_sample_by_default(args)
    answers = answer_files(args.answers)  # read once: for the rows and, pairwise, for the answers' lengths and style
    work = single_work(args, answers) if kind == "single" else pairwise_work(args, answers)
    if not work.rows:
        raise JudgeInputError("nothing to judge: check --answers, --question-ids, --categories and --turns")
    output = output_dir(args.output)
    for line in work.skipped:
        print(f"skipped: {line}", file=sys.stderr)
    function_id, judged = judge_into(args, work, output, pairwise=kind != "single")
    judgments, complete = judged.judgments, judged.complete
    summary: dict[str, Any] = {
        "kind": kind,
        "complete": complete,
        "n_judgments": len(judgments),
        "n_planned": len(work.rows),
        "skipped": work.skipped,
        "usage": judged.usage,
        "run": run_metadata(args, function_id=function_id, judges=judged.judges),
        "card": _shown_card(args, judged),
    }
    if kind == "single":
        summary["models"] = summarize_single(judgments)
    else:
        summary |= summarize_pairwise(judgments) | leaderboard_cli.boards_of(judgments, args.baseline, answers)
        if args.baseline is not None:
            battles = leaderboard_cli.length_battles(judgments, args.baseline, answer_lengths(answers))
            summary["length_controlled"] = length_controlled(battles) | {"baseline": args.baseline}
    _write_json(output / "summary.json", summary)
    print_summary(summary)
    write_report(output, summary, judgments)
    print(f"wrote {output / 'judgments.jsonl'}, summary.json, scores.png and report.html", file=sys.stderr)
    if not complete:
        return 130
    if not any(judgment["status"] == "scored" for judgment in judgments):
        first = next((judgment["error"] for judgment in judgments if judgment.get("error")), None)
        print(f"llama-stack-judge: error: no judgment was scored; the first error: {first}", file=sys.stderr)
        return 1
    return 0


def run_agreement(args: argparse.Namespace) -> int:
    """``mt-bench agreement``: our pairwise verdicts against other votes."""
    from llama_stack_judge.mtbench.report import print_agreement

    output = output_file(args.output) if args.output else None
    report = agreement(read_jsonl(Path(args.judgments)), read_jsonl(Path(args.labels)), judge=args.judge)
    if output is not None:
        _write_json(output, report)
    print_agreement(report)
    return 0


def run_register(args: argparse.Namespace) -> int:
    """``mt-bench register``: the questions as a dataset and the ``mt-bench`` benchmark, on a served stack."""
    from llama_stack_client import LlamaStackClient

    from llama_stack_judge.mtbench.benchmark import register_mt_bench

    benchmark_id = register_mt_bench(LlamaStackClient(base_url=args.url), provider_id=args.provider_id)
    print(f"registered benchmark {benchmark_id}: run it with client.alpha.eval.run_eval({benchmark_id!r}, ...)")
    return 0


def parse_turns(value: str) -> tuple[int, ...]:
    """``--turns``: 1, 2 or 1,2."""
    turns = tuple(sorted({int(part) for part in value.split(",")}))
    if not turns or not set(turns) <= {1, 2}:
        raise argparse.ArgumentTypeError("turns are 1, 2 or 1,2")
    return turns


def add_parser(commands: Any, add_judge_options: Callable[[argparse.ArgumentParser], None]) -> None:
    """The ``mt-bench`` command and its three subcommands."""
    mtbench = commands.add_parser("mt-bench", help="judge MT-bench answers (single, pairwise) and compare with votes")
    kinds = mtbench.add_subparsers(dest="mtbench", required=True)
    for kind, help_text in (
        ("single", "rate each model's answers 1-10"),
        ("pairwise", "compare models' answers, in both orders"),
    ):
        sub = kinds.add_parser(kind, help=help_text)
        sub.add_argument(
            "--answers", nargs="+", help="FastChat answer files; the model is the stem (default: the shipped sample)"
        )
        if kind == "pairwise":
            sub.add_argument("--baseline", help="compare each model with this one instead of all pairs")
        sub.add_argument("--questions", default=str(data_file("question.jsonl")), help="default: the shipped file")
        sub.add_argument(
            "--references", default=str(data_file("reference_answer_gpt-4.jsonl")), help="default: GPT-4's"
        )
        sub.add_argument("--question-ids", help="comma-separated question ids")
        sub.add_argument("--categories", help="comma-separated categories")
        sub.add_argument("--turns", type=parse_turns, help="1, 2 or 1,2 (default; 1 for the shipped sample)")
        sub.add_argument("--limit", type=int, help="only the first N questions")
        sub.add_argument("--max-concurrency", type=int, help="judge calls in flight (default: the provider's)")
        sub.add_argument("--output", default="out/mt-bench", help="directory for judgments, summary, plot and report")
        sub.add_argument("--no-cache", action="store_true", help="judge afresh instead of reusing stored replies")
        add_judge_options(sub)
        sub.set_defaults(run=lambda args, kind=kind: run_judging(args, kind))
    register = kinds.add_parser("register", help="register the MT-bench questions and the 'mt-bench' benchmark")
    register.add_argument("--url", default="http://127.0.0.1:8321", help="the served stack")
    register.add_argument("--provider-id", default="judge-eval", help="our eval provider's id in the stack")
    register.set_defaults(run=run_register)
    agree = kinds.add_parser("agreement", help="agreement of pairwise judgments with other votes")
    agree.add_argument("--judgments", required=True, help="judgments.jsonl of an `mt-bench pairwise` run")
    agree.add_argument("--labels", required=True, help="votes: question_id, model_a, model_b, turn, winner, judge")
    agree.add_argument("--judge", help="only votes whose judge name starts with this (e.g. 'expert')")
    agree.add_argument("--output", help="write the agreement report as JSON")
    agree.set_defaults(run=run_agreement)
    leaderboard_cli.add_parser(kinds)
