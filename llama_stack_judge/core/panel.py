"""Judge panels: several judge models judge every row; their verdicts are combined, each kept, and compared.

A panel is named where one judge model is (a definition's ``judge_model``, a call's params, the CLI's repeated
``--judge-model``): several model ids separated by commas. Rating verdicts are combined by their mean or median,
choice verdicts (pairwise winners among them) by majority, with a tie when no verdict has one. With escalation, a
stronger judge model judges only the rows on which the panel disagrees, and its verdict is the row's.

Members are named by label: judge model ids here, ``function@model`` for a panel of definitions
(``definition_panel``); this module only needs a way to judge rows with each.
"""

import asyncio
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from itertools import combinations
from typing import Any

from llama_stack_judge.core.aggregate import Statistics, aggregate
from llama_stack_judge.core.agreement import cohen_kappa, fleiss_kappa
from llama_stack_judge.core.definitions import Aggregation
from llama_stack_judge.core.outcomes import Outcome, RowResult, compact_result, failure_outcome
from llama_stack_judge.core.stats import mean, median
from llama_stack_judge.errors import JudgeInputError

MEMBER_SEPARATOR = ","
NO_MAJORITY = "tie"  # a choice panel's verdict when no verdict has more than half of the votes


class Combine(StrEnum):
    """How a panel's verdicts on a row become one."""

    mean = "mean"
    median = "median"
    majority = "majority"


def panel_members(judge_model: str) -> tuple[str, ...]:
    """The judge models named by ``judge_model``: one, or a panel's members separated by commas.

    Raises:
        JudgeInputError: for an empty member or a member named twice.
    """
    members = tuple(member.strip() for member in judge_model.split(MEMBER_SEPARATOR))
    if len(members) == 1:
        return members
    if not all(members):
        raise JudgeInputError(f"judge model {judge_model!r}: a panel names its members separated by commas, none empty")
    if len(set(members)) != len(members):
        raise JudgeInputError(f"judge model {judge_model!r}: a panel names each member once")
    return members


@dataclass(frozen=True, slots=True)
class Panel:
    """Judge models that judge every row, how their verdicts combine, and whom to ask when they disagree."""

    members: tuple[str, ...]
    combine: Combine
    escalate_to: str | None = None
    escalate_spread: float = 2.0  # rating panels disagree when their highest and lowest scores differ by more

    def __post_init__(self) -> None:
        if len(self.members) < 2:
            raise JudgeInputError(f"a panel needs at least two judge models, got {list(self.members)}")
        if self.escalate_to is not None and self.escalate_to in self.members:
            raise JudgeInputError(f"the escalation judge {self.escalate_to!r} is already a member of the panel")

    def settings(self) -> dict[str, object]:
        """The panel as plain data, for whoever aggregates its rows later (an eval job, over its pages)."""
        return {
            "members": list(self.members),
            "combine": self.combine.value,
            "escalate_to": self.escalate_to,
            "escalate_spread": self.escalate_spread,
        }

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> "Panel":
        """The panel ``settings`` describe."""
        return cls(
            tuple(settings["members"]),
            Combine(settings["combine"]),
            escalate_to=settings.get("escalate_to"),
            escalate_spread=float(settings.get("escalate_spread", 2.0)),
        )

    @property
    def choices(self) -> bool:
        """Whether the verdicts are choices (combined by majority) rather than ratings."""
        return self.combine is Combine.majority

    def combined(self, votes: Sequence[RowResult]) -> RowResult:
        """One row's verdict from its members' (in member order); every member's judgment is kept in ``details``."""
        details: dict[str, object] = {
            "panel": [
                {"judge_model": model} | vote.as_score_row() for model, vote in zip(self.members, votes, strict=True)
            ]
        }
        details |= _shared_details(votes)
        attempts = sum(vote.attempts for vote in votes)
        scored = _voted(votes)
        if not scored:
            outcome = failure_outcome(votes)
            error = "; ".join(f"{model}: {vote.error}" for model, vote in zip(self.members, votes, strict=True))
            return RowResult(
                outcome, error=f"no panel member judged the row ({error})", attempts=attempts, details=details
            )
        scores = [vote.score for vote in scored if vote.score is not None]
        if self.choices:
            verdict, score = _majority(scored)
        else:
            score = (mean if self.combine is Combine.mean else median)(scores) or 0.0
            verdict = f"{score:g}"
        if "turns" in details:
            details["turns"] = _combined_turns(votes, self.combine)
        if self.choices and all("winner" in (vote.details or {}) for vote in votes):
            details["winner"] = verdict  # a pairwise task's rows: the panel's winner
        return RowResult(Outcome.scored, score=score, verdict=verdict, attempts=attempts, details=details)

    def disagrees(self, votes: Sequence[RowResult]) -> bool:
        """Whether the members disagree on a row (fewer than two verdicts count as disagreement: none confirmed)."""
        scored = _voted(votes)
        if len(scored) < 2:
            return True
        if self.choices:
            return len({_label(vote) for vote in scored}) > 1
        scores = [vote.score for vote in scored if vote.score is not None]
        return max(scores) - min(scores) > self.escalate_spread


def _gave_verdict(vote: RowResult) -> bool:
    return vote.outcome is Outcome.scored and vote.score is not None


def _voted(votes: Sequence[RowResult]) -> list[RowResult]:
    """The votes that gave a verdict."""
    return [vote for vote in votes if _gave_verdict(vote)]


def _label(vote: RowResult) -> str:
    """A vote as a category: its verdict as written, else its score."""
    return vote.verdict if vote.verdict is not None else f"{vote.score:g}"


def majority_of[T, D](labels: Sequence[T], default: D) -> T | D:
    """The label more than half of ``labels`` share, else ``default``."""
    return next((label for label in dict.fromkeys(labels) if labels.count(label) * 2 > len(labels)), default)


def _majority(scored: Sequence[RowResult]) -> tuple[str, float]:
    """The verdict more than half of the votes share and its score; else a tie, scored as the votes' mean."""
    label = majority_of([_label(vote) for vote in scored], None)
    voters = scored if label is None else [vote for vote in scored if _label(vote) == label]
    return label or NO_MAJORITY, mean([vote.score for vote in voters if vote.score is not None]) or 0.0


def _shared_details(votes: Sequence[RowResult]) -> dict[str, object]:
    """What every member's details say alike (which judge, which turn): the aggregations read them."""
    first = votes[0].details or {}
    return {
        key: first[key]
        for key in ("judge", "turn", "turns")
        if key in first and all(key in (vote.details or {}) for vote in votes)
    }


def _turns_of(vote: RowResult) -> list[Any]:
    turns = (vote.details or {}).get("turns")
    return list(turns) if isinstance(turns, list) else []


def _combined_turns(votes: Sequence[RowResult], combine: Combine) -> list[dict[str, object]]:
    """Per-turn scores of a multi-turn row, combined across members turn by turn (mean or median; majority: mean)."""
    per_member = [_turns_of(vote) for vote in votes]
    combined = []
    for entries in zip(*per_member, strict=False):
        scores = [
            float(e["score"]) for e in entries if isinstance(e, Mapping) and isinstance(e.get("score"), int | float)
        ]
        turn = entries[0].get("turn") if isinstance(entries[0], Mapping) else None
        value = (median if combine is Combine.median else mean)(scores) if len(scores) == len(entries) else None
        combined.append({"turn": turn, "score": value})
    return combined


JudgeWith = Callable[[str, Sequence[Any]], Awaitable[list[RowResult]]]  # (judge model, rows) -> one result per row


async def judge_with_panel(panel: Panel, rows: Sequence[Any], judge_with: JudgeWith) -> "PanelResults":
    """Every member judges every row, at once (they share the provider's call limit).

    Then the escalation judge, if any, judges the rows the members disagree on.
    """
    by_member = await asyncio.gather(*(judge_with(model, rows) for model in panel.members))
    votes = [list(row_votes) for row_votes in zip(*by_member, strict=True)]
    combined = [panel.combined(row_votes) for row_votes in votes]
    escalated: list[int] = []
    escalation_calls = 0
    if panel.escalate_to is not None:
        escalated = [index for index, row_votes in enumerate(votes) if panel.disagrees(row_votes)]
        if escalated:
            strong = await judge_with(panel.escalate_to, [rows[index] for index in escalated])
            escalation_calls = sum(verdict.attempts for verdict in strong)
            for index, verdict in zip(escalated, strong, strict=True):
                combined[index] = _escalated(combined[index], verdict, panel.escalate_to)
    return PanelResults(panel, combined, [list(results) for results in by_member], escalated, escalation_calls)


def _escalated(panel_result: RowResult, strong: RowResult, model: str) -> RowResult:
    """The row's result after escalation: the stronger judge's verdict; if it failed, the panel's (the failure kept)."""
    details = dict(panel_result.details or {}) | {"escalated_to": {"judge_model": model} | strong.as_score_row()}
    if strong.outcome is not Outcome.scored:
        return replace(panel_result, details=details, attempts=panel_result.attempts + strong.attempts)
    if "winner" in details:
        details["winner"] = strong.verdict
    return replace(
        strong, attempts=panel_result.attempts + strong.attempts, details=details | _shared_details([strong])
    )


@dataclass(frozen=True, slots=True)
class PanelResults:
    """A panel's combined results, each member's own, and which rows were escalated."""

    panel: Panel
    combined: list[RowResult]
    by_member: list[list[RowResult]]
    escalated: list[int]
    escalation_calls: int = 0  # calls the escalation judge made (cached judgments cost none)

    def agreement(self) -> dict[str, object]:
        """Pairwise Cohen's kappa of the members, Fleiss' kappa of all, and how often all agreed."""
        labels = [[_label(vote) if _gave_verdict(vote) else None for vote in results] for results in self.by_member]
        pairwise: dict[str, float | None] = {}
        for (i, first), (j, second) in combinations(enumerate(labels), 2):
            pairs = [(x, y) for x, y in zip(first, second, strict=True) if x is not None and y is not None]
            pairwise[f"{self.panel.members[i]} | {self.panel.members[j]}"] = _rounded(cohen_kappa(pairs))
        complete = [row for row in zip(*labels, strict=True) if all(label is not None for label in row)]
        categories = sorted({label for row in complete for label in row if label is not None})
        table = [[row.count(category) for category in categories] for row in complete]
        return {
            "cohen_kappa": pairwise,
            "fleiss_kappa": _rounded(fleiss_kappa(table)),
            "unanimous": _rounded(sum(1 for row in complete if len(set(row)) == 1) / len(complete))
            if complete
            else None,
            "n_rows_all_members": len(complete),
        }

    def escalation(self) -> dict[str, object] | None:
        """How many rows went to the escalation judge, and how many of its judgments were not needed."""
        if self.panel.escalate_to is None:
            return None
        total, asked = len(self.combined), len(self.escalated)
        per_row = self.escalation_calls / asked if asked and self.escalation_calls else None
        return {
            "judge_model": self.panel.escalate_to,
            "rows": asked,
            "share": _rounded(asked / total) if total else None,
            "calls": self.escalation_calls,
            # What judging every row with the stronger judge would have cost more, at its measured calls per row.
            "calls_saved": None if per_row is None else round(per_row * (total - asked)),
            "rows_not_escalated": total - asked,
            "spread": None if self.panel.choices else self.panel.escalate_spread,
        }

    def report(self, functions: Sequence[Aggregation], stats: Statistics) -> dict[str, object]:
        """The panel in the aggregates: members, rule, each member's aggregates, their agreement, escalation."""
        by_member = {
            model: aggregate(results, functions, stats)
            for model, results in zip(self.panel.members, self.by_member, strict=True)
        }
        report: dict[str, object] = {
            "members": list(self.panel.members),
            "combine": self.panel.combine.value,
            "by_member": by_member,
            "agreement": self.agreement(),
        }
        if (escalation := self.escalation()) is not None:
            report["escalation"] = escalation
        return report


def panel_results_from_rows(
    panel: Panel, combined: Sequence[RowResult], escalation_calls: int = 0
) -> PanelResults | None:
    """A panel's results rebuilt from its combined rows, which keep every member's judgment (``None`` if one lost it).

    An eval job scores in pages; its panel report is made once over all of them from the stored rows.
    """
    by_member: list[list[RowResult]] = [[] for _ in panel.members]
    for result in combined:
        votes = (result.details or {}).get("panel")
        if not isinstance(votes, list) or len(votes) != len(panel.members):
            return None
        for member, vote in zip(by_member, votes, strict=True):
            member.append(compact_result(vote))
    escalated = [index for index, result in enumerate(combined) if "escalated_to" in (result.details or {})]
    return PanelResults(panel, list(combined), by_member, escalated, escalation_calls)


def _rounded(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, 4)
