"""The ``certify`` command: judge a labelled set with a judge and write its card (how well it agrees, with intervals).

The shipped labels (``mt-bench-dev``) are the MT-bench development split: pairwise votes of experts, authors and
GPT-4, and GPT-4's single ratings, for the odd question ids; the answers are the seven models' of the release.
"""

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

from llama_stack_judge.cardbook import card_book
from llama_stack_judge.core.agreement import keyed_vote
from llama_stack_judge.core.card import AnswerKey, headline, pairwise_card, rating_card
from llama_stack_judge.core.jsonl import read_jsonl
from llama_stack_judge.core.mtbench import data_file
from llama_stack_judge.errors import JudgeInputError
from llama_stack_judge.mtbench_cli import (
    Work,
    add_pair,
    answer_files,
    judge_into,
    parse_turns,
    reference_answers,
    selected_questions,
    single_work,
)
from llama_stack_judge.outputs import DEFAULT_CLI_STATE, output_dir
from llama_stack_judge.run_info import run_metadata

DEV = data_file("dev")
SHIPPED_LABELS = "mt-bench-dev"


def _labels(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[AnswerKey, float]]:
    """The votes and the reference ratings to measure against."""
    if args.labels == SHIPPED_LABELS:
        votes = read_jsonl(DEV / "human_judgments_dev.jsonl") + read_jsonl(DEV / "gpt4_pair_judgments_dev.jsonl")
        ratings_file: str | None = str(DEV / "gpt4_single_scores_dev.csv")
    else:
        votes, ratings_file = read_jsonl(Path(args.labels)), args.ratings
    ratings: dict[AnswerKey, float] = {}
    if ratings_file:
        with Path(ratings_file).open(encoding="utf-8", newline="") as handle:
            for line, row in enumerate(csv.DictReader(handle), start=2):
                try:
                    ratings[(row["model"], int(row["question_id"]), int(row["turn"]))] = float(row["score"])
                except (KeyError, TypeError, ValueError) as exc:
                    raise JudgeInputError(
                        f"{ratings_file}:{line}: needs model, question_id, turn, score ({exc})"
                    ) from None
    return votes, ratings


def _lengths(answers: dict[str, dict[int, tuple[str, ...]]]) -> dict[AnswerKey, int]:
    return {
        (model, question_id, turn): len(text)
        for model, by_question in answers.items()
        for question_id, turns in by_question.items()
        for turn, text in enumerate(turns, start=1)
    }


def _pairwise_work(args: argparse.Namespace, votes: list[dict[str, Any]]) -> Work:
    """One row per labelled pair (question, turn, unordered model pair) whose answers are at hand."""
    questions = {q.question_id: q for q in selected_questions(args)}
    references = reference_answers(args, list(questions.values()))
    answers = answer_files(args.answers)
    keys = sorted({keyed_vote(vote, where=f"vote {i}")[0] for i, vote in enumerate(votes)})
    work = Work([], [], [])
    for turn, question_id, model_a, model_b in keys:
        question = questions.get(question_id)
        if question is not None and turn in args.turns:
            add_pair(work, question, references, answers, (model_a, model_b), turn)
    return work


def run_cards(args: argparse.Namespace) -> int:
    """``cards``: every filed judge card, newest first."""
    from llama_stack_judge.report import print_cards

    print_cards(card_book(args).cards())
    return 0


def run_certify(args: argparse.Namespace) -> int:
    """Judge the labelled set, then write the judgments and the card, and print the card's headline."""
    if args.answers is None:
        args.answers = [str(path) for path in sorted((DEV / "answers").glob("*.jsonl"))]
    if args.labels == SHIPPED_LABELS and args.question_ids is None:
        args.question_ids = ",".join(str(q) for q in range(81, 161, 2))  # the labelled (odd) questions
    votes, ratings = _labels(args)
    pairwise = args.kind == "pairwise"
    work = _pairwise_work(args, votes) if pairwise else single_work(args)
    if not work.rows:
        raise JudgeInputError("nothing to certify: check --answers, --labels, --question-ids, --categories, --turns")
    output = output_dir(args.output)
    function_id, judged = judge_into(args, work, output, pairwise=pairwise)
    lengths = _lengths(answer_files(args.answers))
    judgments = judged.judgments
    card = (
        pairwise_card(judgments, votes, lengths, seed=args.seed)
        if pairwise
        else rating_card(judgments, ratings, votes, lengths, seed=args.seed)
    )
    n, calls, seconds = len(judgments), judged.usage.get("inference_calls", 0), judged.seconds
    card |= {
        "labels": args.labels,
        "complete": judged.complete,
        "n_judgments": n,
        "speed": {
            "seconds_per_judgment": seconds / n if n else None,  # cache hits included: see the two below
            "seconds_per_inference_call": seconds / calls if calls else None,
            "prompt_tokens_per_judgment": judged.usage.get("prompt_tokens", 0) / n if n else None,
            "completion_tokens_per_judgment": judged.usage.get("completion_tokens", 0) / n if n else None,
            "inference_calls": calls,
            "cache_hits": judged.usage.get("cache_hits", 0),
        },
        "run": run_metadata(args, function_id=function_id, judges=judged.judges),
    }
    (output / "card.json").write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    filed = card_book(args).save(card) if judged.complete else None
    print(headline(card))
    print(f"wrote {output / 'card.json'} and judgments.jsonl ({n} judgments)", file=sys.stderr)
    if filed is not None:
        print(f"filed the card as {filed}: runs with this judge will show it", file=sys.stderr)
    return 0 if judged.complete else 130


def add_parser(commands: Any, add_judge_options: Any) -> None:
    """The ``certify`` command."""
    certify = commands.add_parser("certify", help="measure a judge against labels and write its judge card")
    certify.add_argument("kind", choices=["single", "pairwise"], help="the MT-bench rating or pairwise judges")
    certify.add_argument(
        "--labels",
        default=SHIPPED_LABELS,
        help=f"'{SHIPPED_LABELS}' (shipped) or a JSONL of votes: question_id, model_a, model_b, turn, winner, judge",
    )
    certify.add_argument(
        "--ratings", help="with your own --labels: a CSV of reference ratings (model,question_id,turn,score)"
    )
    certify.add_argument("--answers", nargs="+", help="FastChat answer files (default: the seven shipped models')")
    certify.add_argument("--questions", default=str(data_file("question.jsonl")), help="default: the shipped file")
    certify.add_argument(
        "--references", default=str(data_file("reference_answer_gpt-4.jsonl")), help="default: GPT-4's"
    )
    certify.add_argument("--question-ids", help="comma-separated (default with the shipped labels: the odd ids)")
    certify.add_argument("--categories", help="comma-separated categories")
    certify.add_argument("--turns", type=parse_turns, default=(1,), help="1 (default), 2 or 1,2")
    certify.add_argument("--limit", type=int, help="only the first N questions")
    certify.add_argument("--max-concurrency", type=int, help="judge calls in flight (default: the provider's)")
    certify.add_argument("--no-cache", action="store_true", help="judge afresh instead of reusing stored replies")
    certify.add_argument("--seed", type=int, default=0, help="of the bootstrap intervals")
    certify.add_argument("--output", default="out/certify", help="folder for card.json and judgments.jsonl")
    add_judge_options(certify)
    certify.set_defaults(run=run_certify)
    cards = commands.add_parser("cards", help="list the judge cards filed by certify")
    cards.add_argument("--state-dir", default=str(DEFAULT_CLI_STATE), help="the CLI's state directory")
    cards.set_defaults(run=run_cards)
