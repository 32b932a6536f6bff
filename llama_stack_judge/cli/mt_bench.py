"""The ``mt-bench`` command: judge MT-bench answers (single, pairwise), compare verdicts with votes, register."""

import argparse
import sys
from pathlib import Path
from typing import Any

from llama_stack_judge.cardbook import best_card, card_book, card_summary
from llama_stack_judge.cli import mt_bench_leaderboard
from llama_stack_judge.cli.judging import INTERRUPTED, Judged, Judging, judge_into, run_record, write_json
from llama_stack_judge.cli.selection import Selection, pairwise_work, single_work
from llama_stack_judge.core.agreement import agreement
from llama_stack_judge.core.jsonl import read_jsonl
from llama_stack_judge.core.length_control import length_controlled
from llama_stack_judge.errors import JudgeInputError
from llama_stack_judge.mtbench.certification import answer_lengths
from llama_stack_judge.mtbench.questions import data_file
from llama_stack_judge.mtbench.summary import summarize_pairwise, summarize_single
from llama_stack_judge.mtbench.work import answer_files
from llama_stack_judge.outputs import output_dir, output_file

SAMPLE_DIR = data_file("sample")  # two models' answers to the first two questions of each category
SAMPLE_TURNS = (1,)  # with the embedded judge on 2 cores: ~32 judgments, a few minutes


def selection_of(args: argparse.Namespace) -> Selection:
    """What ``mt-bench single|pairwise`` judges: without ``--answers``, the shipped sample on its questions, turn 1."""
    if args.answers is not None:
        return Selection.from_args(args)
    sample = tuple(str(path) for path in sorted(SAMPLE_DIR.glob("*.jsonl")))
    print(f"no --answers: judging the shipped sample ({', '.join(Path(a).stem for a in sample)})", file=sys.stderr)
    return Selection.from_args(args, answers=sample, turns=SAMPLE_TURNS, only_answered=True)


def _shown_card(judging: Judging, turns: tuple[int, ...], judged: Judged) -> dict[str, Any] | None:
    """The judges' card for this run's turns: filed by the CLI's certify, or in the stack's card store."""
    book = card_book(judging.judge.state_dir)
    filed = card_summary(book.find(judged.judges, turns=turns) if judged.judges else None)
    return best_card([card for card in (filed, judged.stack_card) if card], turns=turns)


def run_judging(args: argparse.Namespace, kind: str) -> int:
    """``mt-bench single`` and ``mt-bench pairwise``: judge, then write judgments, summary, plot and report."""
    from llama_stack_judge.mtbench.report import print_summary, write_report

    selection, judging = selection_of(args), Judging.from_args(args)
    answers = answer_files(selection.answers)  # read once: for the rows and, pairwise, for lengths and style
    work = single_work(selection, answers) if kind == "single" else pairwise_work(selection, answers, args.baseline)
    if not work.rows:
        raise JudgeInputError("nothing to judge: check --answers, --question-ids, --categories and --turns")
    output = output_dir(args.output)
    for line in work.skipped:
        print(f"skipped: {line}", file=sys.stderr)
    function_id, judged = judge_into(judging, work, output, pairwise=kind != "single")
    judgments, complete = judged.judgments, judged.complete
    summary: dict[str, Any] = {
        "kind": kind,
        "complete": complete,
        "n_judgments": len(judgments),
        "n_planned": len(work.rows),
        "skipped": work.skipped,
        "usage": judged.usage,
        "run": run_record(judging, selection, function_id=function_id, judges=judged.judges),
        "card": _shown_card(judging, selection.turns, judged),
    }
    if kind == "single":
        summary["models"] = summarize_single(judgments)
    else:
        summary |= summarize_pairwise(judgments) | mt_bench_leaderboard.boards_of(judgments, args.baseline, answers)
        if args.baseline is not None:
            battles = mt_bench_leaderboard.length_battles(judgments, args.baseline, answer_lengths(answers))
            summary["length_controlled"] = length_controlled(battles) | {"baseline": args.baseline}
    write_json(output / "summary.json", summary)
    print_summary(summary)
    write_report(output, summary, judgments)
    print(f"wrote {output / 'judgments.jsonl'}, summary.json, scores.png and report.html", file=sys.stderr)
    if not complete:
        return INTERRUPTED
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
        write_json(output, report)
    print_agreement(report)
    return 0


def run_register(args: argparse.Namespace) -> int:
    """``mt-bench register``: the questions as a dataset and the ``mt-bench`` benchmark, on a served stack."""
    from llama_stack_client import LlamaStackClient

    from llama_stack_judge.mtbench.benchmark import register_mt_bench

    benchmark_id = register_mt_bench(LlamaStackClient(base_url=args.url), provider_id=args.provider_id)
    print(f"registered benchmark {benchmark_id}: run it with client.alpha.eval.run_eval({benchmark_id!r}, ...)")
    return 0


def add_parser(commands: Any) -> None:
    """The ``mt-bench`` command and its subcommands."""
    mtbench = commands.add_parser("mt-bench", help="judge MT-bench answers (single, pairwise) and compare with votes")
    kinds = mtbench.add_subparsers(dest="mtbench", required=True)
    for kind, help_text in (
        ("single", "rate each model's answers 1-10"),
        ("pairwise", "compare models' answers, in both orders"),
    ):
        sub = kinds.add_parser(kind, help=help_text)
        Selection.add_arguments(
            sub,
            answers="FastChat answer files; the model is the stem (default: the shipped sample)",
            question_ids="comma-separated question ids",
            turns="1, 2 or 1,2 (default; 1 for the shipped sample)",
        )
        if kind == "pairwise":
            sub.add_argument("--baseline", help="compare each model with this one instead of all pairs")
        sub.add_argument("--output", default="out/mt-bench", help="directory for judgments, summary, plot and report")
        Judging.add_arguments(sub)
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
    mt_bench_leaderboard.add_parser(kinds)
