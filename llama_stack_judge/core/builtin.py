"""Scorers that need no model."""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from llama_stack_judge.core.definitions import Aggregation
from llama_stack_judge.core.outcomes import RowResult
from llama_stack_judge.core.rows import Row, text_columns


@dataclass(frozen=True, slots=True)
class BuiltinScorer:
    """A deterministic scorer over text columns."""

    identifier: str
    description: str
    columns: tuple[str, ...]
    score_values: Callable[[Mapping[str, str]], float]
    aggregation_functions: tuple[Aggregation, ...]

    def score_rows(self, rows: Sequence[Row]) -> list[RowResult]:
        """Score every row; raises before scoring if a row lacks a column."""
        picked = text_columns(rows, self.columns, defaults={}, user=self.identifier)
        return [RowResult.scored_value(self.score_values(values)) for values in picked]


def _subset_of(values: Mapping[str, str]) -> float:
    return 1.0 if values["expected_answer"] in values["generated_answer"] else 0.0


def builtin_scorers(prefix: str) -> list[BuiltinScorer]:
    """The built-in scorers, with ids under ``prefix``."""
    return [
        BuiltinScorer(
            identifier=f"{prefix}::subset_of",
            description="1.0 if expected_answer is contained in generated_answer, else 0.0.",
            columns=("expected_answer", "generated_answer"),
            score_values=_subset_of,
            aggregation_functions=(Aggregation.accuracy,),
        )
    ]
