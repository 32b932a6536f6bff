"""``mt-bench leaderboard``: a Bradley-Terry leaderboard from pairwise judgment files.

Three record forms are read, each line by its fields:
- ours (``mt-bench pairwise``'s judgments.jsonl): ``model_a``, ``model_b``, ``verdict_ab``, ``verdict_ba`` — each
  order judged is a battle;
- FastChat's ``gpt-4_pair.jsonl``: ``model_1``, ``model_2``, ``g1_winner``, ``g2_winner`` — each order is a battle;
- votes (``model_a``, ``model_b``, ``winner``), such as the MT-bench human and GPT-4 judgments — one battle each.
"""

import argparse
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from llama_stack_judge.core.jsonl import read_numbered
from llama_stack_judge.core.leaderboard import Battle, leaderboard, style_differences
from llama_stack_judge.core.length_control import LengthBattle
from llama_stack_judge.core.pairwise import WINNER_OF_FIRST_ORDER, Decisive
from llama_stack_judge.errors import JudgeInputError
from llama_stack_judge.mtbench.work import Answers, answer_files
from llama_stack_judge.outputs import output_file

_FASTCHAT_WINNERS: dict[str, Decisive] = {"model_1": "model_a", "model_2": "model_b", "tie": "tie"}


def _vote_winner(winner: object, *, where: str) -> Decisive:
    if winner in ("model_a", "model_b"):
        return winner  # type: ignore[return-value]
    if isinstance(winner, str) and winner.startswith("tie"):
        return "tie"
    raise JudgeInputError(f"{where}: winner must be model_a, model_b or a tie, got {winner!r}")


def battles_of(record: Mapping[str, Any], *, where: str) -> Iterator[Battle]:
    """The battles one judgment record holds (none for a judgment without a verdict in any order)."""
    if "verdict_ab" in record:  # ours: the swapped order's "A" is model_b
        a, b = str(record["model_a"]), str(record["model_b"])
        if (ab := WINNER_OF_FIRST_ORDER.get(str(record.get("verdict_ab")))) is not None:
            yield Battle(a, b, ab)
        if (ba := WINNER_OF_FIRST_ORDER.get(str(record.get("verdict_ba")))) is not None:
            yield Battle(b, a, ba)
    elif "g1_winner" in record:  # FastChat: both orders' winners already named by model_1 / model_2
        a, b = str(record["model_1"]), str(record["model_2"])
        for key in ("g1_winner", "g2_winner"):
            if (winner := _FASTCHAT_WINNERS.get(str(record.get(key)))) is not None:
                yield Battle(a, b, winner)
    elif "winner" in record and "model_a" in record and "model_b" in record:
        yield Battle(str(record["model_a"]), str(record["model_b"]), _vote_winner(record["winner"], where=where))
    else:
        raise JudgeInputError(
            f"{where}: not a pairwise judgment: expected verdict_ab/verdict_ba (ours), g1_winner/g2_winner "
            "(FastChat) or model_a/model_b/winner (votes)"
        )


def boards_of(judgments: Sequence[Mapping[str, Any]], anchor: str | None, answers: Answers) -> dict[str, Any]:
    """A pairwise run's leaderboards, plain and style-controlled (anchored on its baseline, if any)."""
    battles, style = styled_battles([(f"judgment {i}", j) for i, j in enumerate(judgments)], answers)
    if not battles:
        return {"leaderboard": None, "leaderboard_style_controlled": None}
    return {
        "leaderboard": leaderboard(battles, anchor=anchor),
        "leaderboard_style_controlled": leaderboard(battles, anchor=anchor, style=style),
    }


def styled_battles(
    records: Sequence[tuple[str, Mapping[str, Any]]], answers: Answers
) -> tuple[list[Battle], list[dict[str, float]]]:
    """The battles of ``(where, record)`` pairs, each with the style differences of its two answers at its turn.

    Raises:
        JudgeInputError: naming the record, when the answers lack one of its models' answers.
    """
    battles, style = [], []
    for where, record in records:
        question, turn = int(record["question_id"]), int(record.get("turn", 1))
        for battle in battles_of(record, where=where):
            texts = [
                answers.get(model, {}).get(question, ())[turn - 1 : turn] for model in (battle.model_a, battle.model_b)
            ]
            if not all(texts):
                raise JudgeInputError(
                    f"{where}: --answers hold no answer of {battle.model_a} or {battle.model_b} to question {question} "
                    f"turn {turn}"
                )
            battles.append(battle)
            style.append(style_differences(texts[0][0], texts[1][0]))
    return battles, style


def length_battles(
    judgments: Sequence[Mapping[str, Any]], baseline: str, lengths: Mapping[tuple[str, int, int], int]
) -> list[LengthBattle]:
    """Each judged order against ``baseline`` as the other model's share of the win and the answers' length gap."""
    found = []
    for index, judgment in enumerate(judgments):
        models = (str(judgment["model_a"]), str(judgment["model_b"]))
        if baseline not in models or models[0] == models[1]:
            continue
        other = models[1] if models[0] == baseline else models[0]
        question, turn = int(judgment["question_id"]), int(judgment["turn"])
        gap = lengths[(other, question, turn)] - lengths[(baseline, question, turn)]
        for battle in battles_of(judgment, where=f"judgment {index}"):
            winner = None if battle.winner == "tie" else getattr(battle, battle.winner)
            score = 0.5 if winner is None else float(winner == other)
            found.append(LengthBattle(other, score, float(gap)))
    return found


def _files(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files.extend(sorted(path.glob("*.jsonl")))
        elif path.is_file():
            files.append(path)
        else:
            raise JudgeInputError(f"{path}: no such file or folder")
    return files


def read_records(paths: list[str], *, judge: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    """Every record of the files (folders: their ``*.jsonl``) with where it is; with ``judge``, by judge name."""
    return [
        (f"{path}:{line}", record)
        for path in _files(paths)
        for line, record in read_numbered(path)
        if judge is None or str(record.get("judge", "")).startswith(judge)
    ]


def battles_in(records: Sequence[tuple[str, Mapping[str, Any]]]) -> list[Battle]:
    """Every battle of ``(where, record)`` pairs."""
    return [battle for where, record in records for battle in battles_of(record, where=where)]


def read_battles(paths: list[str], *, judge: str | None = None) -> list[Battle]:
    """Every battle in the files (folders: their ``*.jsonl``); with ``judge``, records whose judge starts with it."""
    return battles_in(read_records(paths, judge=judge))


def run_leaderboard(args: argparse.Namespace) -> int:
    """Fit the leaderboard (style-controlled with ``--answers``), print it, and write it as JSON when asked."""
    from llama_stack_judge.mtbench.report import print_leaderboard

    output = output_file(args.output) if args.output else None
    records = read_records(args.judgments, judge=args.judge)
    style = None
    if args.answers:
        battles, style = styled_battles(records, answer_files(args.answers))
    else:
        battles = battles_in(records)
    if not battles:
        raise JudgeInputError(
            "no battle in the judgment files" + (f" by a judge named {args.judge}*" if args.judge else "")
        )
    try:
        board = leaderboard(battles, anchor=args.anchor, resamples=args.resamples, seed=args.seed, style=style)
    except ValueError as exc:
        raise JudgeInputError(str(exc)) from None
    if output is not None:
        output.write_text(json.dumps(board, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {output}", file=sys.stderr)
    print_leaderboard(board)
    return 0


def add_parser(kinds: Any) -> None:
    """``mt-bench leaderboard``."""
    board = kinds.add_parser("leaderboard", help="Bradley-Terry ratings with intervals from pairwise judgments")
    board.add_argument("--judgments", nargs="+", required=True, help="judgment files or folders (ours, FastChat's)")
    board.add_argument(
        "--answers",
        nargs="+",
        help="the models' answer files: style-controlled ratings (length, markdown) and coefficients",
    )
    board.add_argument("--anchor", help="the model rated 1000 (default: the one with the most battles)")
    board.add_argument("--judge", help="only records whose judge name starts with this (e.g. 'gpt4', 'expert')")
    board.add_argument("--resamples", type=int, default=1000, help="bootstrap refits for the intervals (0: none)")
    board.add_argument("--seed", type=int, default=0, help="of the bootstrap")
    board.add_argument("--output", help="write the leaderboard as JSON")
    board.set_defaults(run=run_leaderboard)
