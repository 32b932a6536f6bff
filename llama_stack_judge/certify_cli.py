"""The ``certify`` command: judge a labelled set with a judge and write its card (how well it agrees, with intervals).

The shipped labels (``mt-bench-dev``) are the MT-bench development split: pairwise votes of experts, authors and
GPT-4, and GPT-4's single ratings, for the odd question ids; the answers are the seven models' of the release.
"""

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from llama_stack_judge.cardbook import card_book
from llama_stack_judge.core.card import SOURCES, headline
from llama_stack_judge.errors import JudgeInputError
from llama_stack_judge.mtbench.certification import (
    DEV_QUESTION_IDS,
    SHIPPED_LABELS,
    answer_lengths,
    judge_card,
    labelled_pairs,
    load_labels,
    shipped_answer_files,
)
from llama_stack_judge.mtbench.questions import data_file
from llama_stack_judge.mtbench.work import Answers, Work, add_pair, answer_files
from llama_stack_judge.mtbench_cli import (
    judge_into,
    parse_turns,
    reference_answers,
    selected_questions,
    single_work,
)
from llama_stack_judge.outputs import DEFAULT_CLI_STATE, output_dir
from llama_stack_judge.provider import SCORING_PROVIDER_TYPE
from llama_stack_judge.run_info import run_metadata
from llama_stack_judge.stack_config import stored_provider_config


def _pairwise_work(args: argparse.Namespace, votes: list[dict[str, Any]], answers: Answers) -> Work:
    """One row per labelled pair (question, turn, unordered model pair) whose answers are at hand.

    With ``--voted-by``, only the pairs that source voted on: a slow judge spends its calls where people voted.
    """
    questions = {q.question_id: q for q in selected_questions(args)}
    references = reference_answers(args, list(questions.values()))
    work = Work([], [], [])
    for turn, question_id, model_a, model_b in labelled_pairs(votes, voted_by=args.voted_by):
        question = questions.get(question_id)
        if question is not None and turn in args.turns:
            add_pair(work, question, references, answers, (model_a, model_b), turn)
    return work


async def _stack_cards(run_yaml: Path) -> list[dict[str, Any]]:
    """The cards in the card store of the stack that ``run_yaml`` describes (read directly: it need not run)."""
    from llama_stack_judge.scoring.config import JudgeScoringConfig
    from llama_stack_judge.stack.card_store import SqlCardBook

    config = stored_provider_config(run_yaml, SCORING_PROVIDER_TYPE, JudgeScoringConfig)
    if config.card_store is None:
        raise JudgeInputError(f"{run_yaml}: the scoring provider keeps no cards (card_store: null)")
    return await (await SqlCardBook.open(config.card_store)).cards()


def run_cards(args: argparse.Namespace) -> int:
    """``cards``: every filed judge card, newest first: the CLI's, or with ``--stack-config`` a stack's."""
    from llama_stack_judge.mtbench.report import print_cards

    print_cards(asyncio.run(_stack_cards(Path(args.stack_config))) if args.stack_config else card_book(args).cards())
    return 0


def run_certify(args: argparse.Namespace) -> int:
    """Judge the labelled set, then write the judgments and the card, and print the card's headline."""
    if args.answers is None:
        args.answers = shipped_answer_files()
    if args.labels == SHIPPED_LABELS and args.question_ids is None:
        args.question_ids = ",".join(map(str, DEV_QUESTION_IDS))
    labels = load_labels(args.labels, args.ratings)
    pairwise = args.kind == "pairwise"
    answers = answer_files(args.answers)  # read once: for the rows and for the answers' lengths
    work = _pairwise_work(args, labels.votes, answers) if pairwise else single_work(args, answers)
    if not work.rows:
        raise JudgeInputError("nothing to certify: check --answers, --labels, --question-ids, --categories, --turns")
    output = output_dir(args.output)
    function_id, judged = judge_into(args, work, output, pairwise=pairwise)
    judgments = judged.judgments
    card = judge_card(
        args.kind,
        judgments,
        labels,
        answer_lengths(answers),
        seed=args.seed,
        complete=judged.complete,
        usage=judged.usage,
        seconds=judged.seconds,
        run=run_metadata(args, function_id=function_id, judges=judged.judges),
    )
    (output / "card.json").write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    filed = card_book(args).save(card) if judged.complete else None
    print(headline(card))
    print(f"wrote {output / 'card.json'} and judgments.jsonl ({len(judgments)} judgments)", file=sys.stderr)
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
    certify.add_argument(
        "--voted-by", choices=sorted(SOURCES), help="pairwise: judge only the pairs this label source voted on"
    )
    certify.add_argument("--max-concurrency", type=int, help="judge calls in flight (default: the provider's)")
    certify.add_argument("--no-cache", action="store_true", help="judge afresh instead of reusing stored replies")
    certify.add_argument("--seed", type=int, default=0, help="of the bootstrap intervals")
    certify.add_argument("--output", default="out/certify", help="folder for card.json and judgments.jsonl")
    add_judge_options(certify)
    certify.set_defaults(run=run_certify)
    cards = commands.add_parser("cards", help="list the judge cards filed by certify")
    cards.add_argument("--state-dir", default=str(DEFAULT_CLI_STATE), help="the CLI's state directory")
    cards.add_argument("--stack-config", help="list the cards in this stack's card store instead (its run.yaml)")
    cards.set_defaults(run=run_cards)
