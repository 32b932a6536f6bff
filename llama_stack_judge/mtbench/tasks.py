"""Response-assessment tasks: one scoring function that routes each row to the right MT-bench judge.

``response_assessment.rating`` rates a single response; ``response_assessment.pairwise_comparison`` compares two,
judged in both orders (A/B, then B/A) so that position bias shows up as inconsistency instead of as a winner.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

from llama_stack_judge.core.chat import ChatRequest
from llama_stack_judge.core.definitions import Aggregation, FailurePolicy, JudgeDefinition
from llama_stack_judge.core.options import JudgeOptions
from llama_stack_judge.core.outcomes import Outcome, RowResult, failure_outcome
from llama_stack_judge.core.pairwise import WINNER_SCORE, combine_orders, winner_probabilities
from llama_stack_judge.core.rows import Row
from llama_stack_judge.core.runner import Judge, Usage, flag_verdict_like, render_request
from llama_stack_judge.core.stats import mean
from llama_stack_judge.errors import JudgeDefinitionError, JudgeInputError, input_problems
from llama_stack_judge.mtbench.routing import JUDGE_PREFIX, Kind, judge_name, pairwise_inputs, rating_inputs

# The eight MT-bench judges, shipped as definition files (mt-bench-<MT-bench judge name>.json).
MT_BENCH_JUDGES = Path(str(resources.files("llama_stack_judge.mtbench") / "judges"))
RATING_TASK = "response_assessment.rating"
PAIRWISE_TASK = "response_assessment.pairwise_comparison"
Routed = tuple[int, str, list[dict[str, str]]]  # turn, judge name, template fields of each order


@dataclass(frozen=True, slots=True)
class AssessmentTask:
    """A task scoring function over the MT-bench judges of one kind."""

    identifier: str
    kind: Kind
    description: str
    judges: Mapping[str, JudgeDefinition]  # MT-bench judge name -> definition
    aggregation_functions: tuple[Aggregation, ...]

    def adjusted(self, *, judge_model: str | None, options: JudgeOptions) -> "AssessmentTask":
        """This task with a judge model and per-call options applied to every judge."""
        changes = {"judge_model": judge_model} if judge_model else {}
        judges = {
            name: options.apply(definition.with_changes(**changes) if changes else definition)
            for name, definition in self.judges.items()
        }
        return replace(self, judges=judges)

    @property
    def failed_score(self) -> float | None:
        """What a row that could not be judged counts as: left out (``None``), or the lowest score.

        The lowest score, under the ``minimum`` failure policy, is a rating of 1, or a loss for model A.
        """
        first = next(iter(self.judges.values()))
        if first.failure_policy is not FailurePolicy.minimum:
            return None
        return min(WINNER_SCORE.values()) if self.kind == "pair" else first.minimum_score

    @property
    def judge_model(self) -> str:
        """The judges' model ('' for the provider's default); they share one."""
        return next(iter(self.judges.values())).judge_model

    def route(self, rows: Sequence[Row]) -> list[list[Routed]]:
        """Each row's judgments: turn, judge name and template fields (both orders for pairwise rows).

        Raises:
            JudgeInputError: naming every bad row, before any judge call is made.
        """
        if not rows:
            raise JudgeInputError(f"{self.identifier}: no rows to score")
        routed: list[list[Routed]] = []
        problems = []
        for index, row in enumerate(rows):
            where = f"row {index}"
            try:
                if self.kind == "single":
                    routed.append([(turn, name, [fields]) for turn, name, fields in rating_inputs(row, where=where)])
                else:
                    turn, name, ab, ba = pairwise_inputs(row, where=where)
                    routed.append([(turn, name, [ab, ba])])
            except JudgeInputError as exc:
                problems.append(str(exc))
        if problems:
            raise input_problems(problems, where=self.identifier)
        return routed

    async def score_rows(self, rows: Sequence[Row], judge: Judge, *, judge_model: str, usage: Usage) -> list[RowResult]:
        """Judge every row with its judges (each turn; pairwise rows in both orders), one result per row."""
        routed = self.route(rows)
        items: list[tuple[JudgeDefinition, ChatRequest]] = [
            (self.judges[name], render_request(self.judges[name], fields, judge_model=judge_model))
            for judgments in routed
            for _, name, orders in judgments
            for fields in orders
        ]
        results = iter(await judge.judge_requests(items, usage=usage))
        combined = []
        for judgments in routed:
            per_turn = []
            for turn, name, orders in judgments:
                definition = self.judges[name]
                if self.kind == "single":
                    result = replace(next(results), details={"judge": name, "turn": turn})
                else:
                    ab, ba = next(results), next(results)
                    result = combine_pair(name, turn, ab, ba)
                per_turn.append(flag_verdict_like(definition, orders[0], result))
            combined.append(per_turn[0] if len(per_turn) == 1 else combine_turns(per_turn))
        return combined


def combine_turns(turns: Sequence[RowResult]) -> RowResult:
    """One row judged turn by turn: the mean of its turn scores when every turn was scored, each turn kept."""
    entries = [{**(r.details or {}), **r.as_score_row()} for r in turns]
    attempts = sum(r.attempts for r in turns)
    details: dict[str, object] = {"turns": entries}
    failed = [r for r in turns if r.outcome is not Outcome.scored or r.score is None]
    if not failed:
        return RowResult(
            Outcome.scored, score=mean([r.score or 0.0 for r in turns]), attempts=attempts, details=details
        )
    outcome = failure_outcome(failed)
    error = "; ".join(f"turn {(r.details or {}).get('turn')}: {r.error}" for r in failed)
    return RowResult(outcome, error=error, attempts=attempts, details=details)


def _order(label: str, result: RowResult) -> dict[str, object]:
    shown = result.as_score_row()
    return {"order": label} | {
        key: shown[key]
        for key in ("verdict", "status", "judge_feedback", "error", "finish_reason", "verdict_distribution",
                    "verdict_distribution_fallback")
        if key in shown
    }  # fmt: skip


def combine_pair(name: str, turn: int, ab: RowResult, ba: RowResult) -> RowResult:
    """One pairwise judgment from its two orders; its score is model A's: 1 win, ½ tie, 0 loss."""
    details: dict[str, object] = {"judge": name, "turn": turn, "orders": [_order("AB", ab), _order("BA", ba)]}
    attempts = ab.attempts + ba.attempts
    if ab.outcome is Outcome.scored and ba.outcome is Outcome.scored and ab.verdict and ba.verdict:
        if ab.distribution is not None and ba.distribution is not None:
            chances = winner_probabilities(ab.distribution.probabilities, ba.distribution.probabilities)
            winner = max(chances, key=lambda w: chances[w])
            score = math.fsum(p * WINNER_SCORE[w] for w, p in chances.items())
            details |= {"winner_probabilities": {w: round(p, 4) for w, p in chances.items()}}
        else:
            winner = combine_orders(ab.verdict, ba.verdict)
            score = WINNER_SCORE[winner]
        return RowResult(
            Outcome.scored,
            score=score,
            verdict=winner,
            judge_output=ab.judge_output,
            attempts=attempts,
            details=details | {"winner": winner},
        )
    failed = [(label, r) for label, r in (("A/B", ab), ("B/A", ba)) if r.outcome is not Outcome.scored]
    outcome = failure_outcome([r for _, r in failed])
    error = "; ".join(f"{label} order: {r.error}" for label, r in failed)
    return RowResult(
        outcome, judge_output=ab.judge_output, error=error, attempts=attempts, details=details | {"winner": None}
    )


def build_tasks(definitions: Mapping[str, JudgeDefinition], *, prefix: str) -> list[AssessmentTask]:
    """The two tasks over the shipped MT-bench definitions (``<prefix>::mt-bench-<name>``)."""
    tasks = []
    for identifier, kind, aggregations, what in (
        (RATING_TASK, "single", (Aggregation.average, Aggregation.turn_average), "Rates a response 1-10"),
        (PAIRWISE_TASK, "pair", (Aggregation.win_rate, Aggregation.position_bias), "Compares two responses"),
    ):
        names = [judge_name(kind, turn=t, with_reference=r) for t in (1, 2) for r in (False, True)]  # type: ignore[arg-type]
        missing = [n for n in names if f"{prefix}::{JUDGE_PREFIX}{n}" not in definitions]
        if missing:
            raise JudgeDefinitionError(f"{identifier}: the MT-bench judges {missing} are not defined")
        tasks.append(
            AssessmentTask(
                identifier=f"{prefix}::{identifier}",
                kind=kind,  # type: ignore[arg-type]
                description=f"{what} with the MT-bench judges, routed by category (reference-guided for math, "
                "reasoning and coding) and turn (multi-turn judges for turn 2).",
                judges={n: definitions[f"{prefix}::{JUDGE_PREFIX}{n}"] for n in names},
                aggregation_functions=aggregations,
            )
        )
    return tasks
