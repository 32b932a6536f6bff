"""The ``certify`` command: judge a labelled set with a judge and write its card (how well it agrees, with intervals).

The shipped labels (``mt-bench-dev``) are the MT-bench development split: pairwise votes of experts, authors and
GPT-4, and GPT-4's single ratings, for the odd question ids; the answers are the seven models' of the release.
"""

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from llama_stack_judge.cardbook import card_book
from llama_stack_judge.cli.judging import INTERRUPTED, Judging, judge_into, run_record, write_json
from llama_stack_judge.cli.selection import Selection, labelled_pair_work, single_work
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
from llama_stack_judge.mtbench.work import answer_files
from llama_stack_judge.names import SCORING_PROVIDER_TYPE
from llama_stack_judge.outputs import DEFAULT_CLI_STATE, output_dir
from llama_stack_judge.stack_config import stored_provider_config


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

    stored = asyncio.run(_stack_cards(Path(args.stack_config))) if args.stack_config else None
    print_cards(stored if stored is not None else card_book(Path(args.state_dir)).cards())
    return 0


def run_certify(args: argparse.Namespace) -> int:
    """Judge the labelled set, then write the judgments and the card, and print the card's headline."""
    shipped = args.labels == SHIPPED_LABELS
    selection = Selection.from_args(
        args,
        answers=tuple(shipped_answer_files()),
        turns=(1,),
        **({"question_ids": ",".join(map(str, DEV_QUESTION_IDS))} if shipped else {}),
    )
    judging = Judging.from_args(args)
    labels = load_labels(args.labels, args.ratings)
    pairwise = args.kind == "pairwise"
    answers = answer_files(selection.answers)  # read once: for the rows and for the answers' lengths
    if pairwise:
        work = labelled_pair_work(selection, answers, labelled_pairs(labels.votes, voted_by=args.voted_by))
    else:
        work = single_work(selection, answers)
    if not work.rows:
        raise JudgeInputError("nothing to certify: check --answers, --labels, --question-ids, --categories, --turns")
    output = output_dir(args.output)
    function_id, judged = judge_into(judging, work, output, pairwise=pairwise)
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
        run=run_record(judging, selection, function_id=function_id, judges=judged.judges),
    )
    write_json(output / "card.json", card)
    filed = card_book(judging.judge.state_dir).save(card) if judged.complete else None
    print(headline(card))
    print(f"wrote {output / 'card.json'} and judgments.jsonl ({len(judgments)} judgments)", file=sys.stderr)
    if filed is not None:
        print(f"filed the card as {filed}: runs with this judge will show it", file=sys.stderr)
    return 0 if judged.complete else INTERRUPTED


def add_parser(commands: Any) -> None:
    """The ``certify`` and ``cards`` commands."""
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
    Selection.add_arguments(
        certify,
        answers="FastChat answer files (default: the seven shipped models')",
        question_ids="comma-separated (default with the shipped labels: the odd ids)",
        turns="1 (default), 2 or 1,2",
    )
    certify.add_argument(
        "--voted-by", choices=sorted(SOURCES), help="pairwise: judge only the pairs this label source voted on"
    )
    certify.add_argument("--seed", type=int, default=0, help="of the bootstrap intervals")
    certify.add_argument("--output", default="out/certify", help="folder for card.json and judgments.jsonl")
    Judging.add_arguments(certify)
    certify.set_defaults(run=run_certify)
    cards = commands.add_parser("cards", help="list the judge cards filed by certify")
    cards.add_argument("--state-dir", default=str(DEFAULT_CLI_STATE), help="the CLI's state directory")
    cards.add_argument("--stack-config", help="list the cards in this stack's card store instead (its run.yaml)")
    cards.set_defaults(run=run_cards)
