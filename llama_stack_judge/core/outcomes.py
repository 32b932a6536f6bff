"""What happened to one row: a typed outcome instead of sentinel scores."""

from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    """How a row ended. Only ``scored`` rows carry a score."""

    scored = "scored"
    parse_error = "parse_error"
    inference_error = "inference_error"


@dataclass(frozen=True, slots=True)
class RowResult:
    """The result of scoring one row.

    Attributes:
        outcome: how the row ended.
        score: the numeric score, present only when ``outcome`` is ``scored``.
        verdict: the judge's verdict as written (``"8.5"``, ``"A"``), when one was parsed.
        judge_output: the judge's raw text, kept whatever the outcome (``None`` for non-LLM scorers).
        error: why the row was not scored.
        attempts: judge calls made for this row (retries included).
    """

    outcome: Outcome
    score: float | None = None
    verdict: str | None = None
    judge_output: str | None = None
    error: str | None = None
    attempts: int = 0

    @classmethod
    def scored_value(
        cls, score: float, *, verdict: str | None = None, judge_output: str | None = None, attempts: int = 0
    ) -> "RowResult":
        """A scored row."""
        return cls(Outcome.scored, score=score, verdict=verdict, judge_output=judge_output, attempts=attempts)

    def as_score_row(self) -> dict[str, object]:
        """The row as the scoring API returns it."""
        return {
            "score": self.score,
            "status": self.outcome.value,
            "verdict": self.verdict,
            "judge_feedback": self.judge_output,
            "error": self.error,
        }
