"""Aggregates over work scored in pages: each page's rows kept compact, aggregated once over all of them.

An eval job scores its rows a page at a time so that its memory does not grow with the texts; the statistics
(medians, bootstrap intervals, per-group means) still need every row's score, so each page's score rows are kept
as compact results and aggregated at the end exactly as one scoring call over all rows would have been.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from llama_stack_judge.core.aggregate import (
    AGGREGATION_KEY,
    JUDGE_CARD_KEY,
    JUDGES_KEY,
    PANEL_KEY,
    Statistics,
    aggregate,
)
from llama_stack_judge.core.definitions import Aggregation
from llama_stack_judge.core.outcomes import RowResult, compact_result
from llama_stack_judge.core.panel import Panel, panel_results_from_rows

# A function of another provider does not say how it aggregates: its scores are averaged and counted.
DEFAULT_PLAN: dict[str, Any] = {"functions": [Aggregation.average.value], "failed_score": None}


@dataclass
class PagedScores:
    """One scoring function's results over the pages of a job.

    ``plan`` (how the function aggregates, as its scoring provider reported it) and ``usage`` (summed over pages) are
    small and kept with the job, so a resumed job continues them; the compact results are rebuilt from stored rows.
    """

    plan: dict[str, Any] | None = None
    judges: dict[str, Any] = field(default_factory=dict)
    judge_card: dict[str, Any] | None = None  # of the judges, as the last page's scoring found it
    usage: dict[str, int] = field(default_factory=dict)
    results: list[RowResult] = field(default_factory=list)
    groups: dict[str, list[object]] = field(default_factory=dict)
    escalation_calls: int = 0  # a panel's escalation judge's calls, summed over pages

    def add_rows(self, score_rows: Sequence[Mapping[str, Any]], groups: Mapping[str, Sequence[object]]) -> None:
        """One page's score rows and its rows' ``group_by`` values."""
        self.results.extend(compact_result(row) for row in score_rows)
        for name, values in groups.items():
            self.groups.setdefault(name, []).extend(values)

    def add_aggregates(self, aggregated: Mapping[str, Any]) -> None:
        """What a freshly scored page's aggregated results tell: the plan, and the page's usage."""
        plan = aggregated.get(AGGREGATION_KEY)
        if isinstance(plan, dict):
            self.plan = plan
        self.judges |= aggregated.get(JUDGES_KEY) or {}
        self.judge_card = aggregated.get(JUDGE_CARD_KEY) or self.judge_card
        for key, value in (aggregated.get("usage") or {}).items():
            self.usage[key] = self.usage.get(key, 0) + int(value)
        escalation = (aggregated.get(PANEL_KEY) or {}).get("escalation") or {}
        self.escalation_calls += int(escalation.get("calls") or 0)

    def aggregated(self, *, bootstrap_resamples: int, seed: int) -> dict[str, Any]:
        """The aggregates over every page, with how they were made and the summed usage."""
        plan = self.plan or DEFAULT_PLAN
        functions = [Aggregation(name) for name in plan.get("functions", [])]
        stats = Statistics(plan.get("failed_score"), bootstrap_resamples=bootstrap_resamples, seed=seed)
        merged = aggregate(self.results, functions, stats, groups=self.groups) | {AGGREGATION_KEY: plan}
        if PANEL_KEY in plan:
            panel = panel_results_from_rows(Panel.from_settings(plan[PANEL_KEY]), self.results, self.escalation_calls)
            if panel is not None:
                merged[PANEL_KEY] = panel.report(functions, stats)
        return (
            merged
            | ({"usage": self.usage} if self.usage else {})
            | ({JUDGES_KEY: self.judges} if self.judges else {})
            | ({JUDGE_CARD_KEY: self.judge_card} if self.judge_card else {})
        )
