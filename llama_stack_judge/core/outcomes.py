"""What happened to one row: a typed outcome instead of sentinel scores."""

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from llama_stack_judge.core.logprobs import VerdictDistribution
from llama_stack_judge.core.stats import median


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
        attempts: judge calls made for this row (retries included, cache hits not).
        samples: each judgment of the row when it was judged more than once.
        details: further fields of the scored row (e.g. which judge, both orders of a pairwise judgment).
        finish_reason: why the judge's reply ended (``"length"``: cut off by the token limit), when it says.
        distribution: the judge's probabilities of each allowed verdict, for expected verdicts.
        distribution_fallback: why an expected verdict fell back to the written one.
    """

    outcome: Outcome
    score: float | None = None
    verdict: str | None = None
    judge_output: str | None = None
    error: str | None = None
    attempts: int = 0
    samples: tuple["RowResult", ...] = ()
    details: Mapping[str, object] | None = None
    finish_reason: str | None = None
    distribution: VerdictDistribution | None = None
    distribution_fallback: str | None = None

    @classmethod
    def scored_value(
        cls,
        score: float,
        *,
        verdict: str | None = None,
        judge_output: str | None = None,
        attempts: int = 0,
        finish_reason: str | None = None,
    ) -> "RowResult":
        """A scored row."""
        return cls(
            Outcome.scored,
            score=score,
            verdict=verdict,
            judge_output=judge_output,
            attempts=attempts,
            finish_reason=finish_reason,
        )

    @property
    def spread(self) -> float | None:
        """Highest minus lowest score among the samples, when there are several scored ones."""
        scores = [s.score for s in self.samples if s.score is not None]
        return max(scores) - min(scores) if len(scores) > 1 else None

    def as_score_row(self) -> dict[str, object]:
        """The row as the scoring API returns it."""
        row: dict[str, object] = {
            "score": self.score,
            "status": self.outcome.value,
            "verdict": self.verdict,
            "judge_feedback": self.judge_output,
            "error": self.error,
        }
        if self.finish_reason is not None:
            row["finish_reason"] = self.finish_reason
        if self.distribution is not None:
            row["verdict_distribution"] = self.distribution.as_row()
        if self.distribution_fallback is not None:
            row["verdict_distribution_fallback"] = self.distribution_fallback
        if self.samples:
            row["spread"] = self.spread
            row["samples"] = [sample.as_score_row() for sample in self.samples]
        if self.details:
            row |= self.details
        return row


# Detail fields the aggregations read (pairwise orders and winner, per-turn judgments, a panel's members' judgments
# and escalation); texts are left behind.
_AGGREGATED_DETAILS = ("orders", "winner", "turns", "turn", "panel", "escalated_to")
_TEXT_FIELDS = ("judge_feedback", "error")


def _without_texts(value: object) -> object:
    if isinstance(value, list):
        return [_without_texts(item) for item in value]
    if isinstance(value, dict):
        return {k: _without_texts(v) for k, v in value.items() if k not in _TEXT_FIELDS}
    return value


def _finite(value: object) -> float | None:
    """A score as a finite float; ``None`` for anything else (text, NaN, an integer too large for a float)."""
    if not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def compact_result(row: Mapping[str, object]) -> RowResult:
    """What aggregation needs of a score row (outcome, score, verdict, orders and turns), without its texts.

    Score rows of other providers' functions carry only ``score``: a number is a scored row.
    """
    status, score = row.get("status"), _finite(row.get("score"))
    if isinstance(status, str) and status in Outcome.__members__:
        outcome = Outcome(status)
    else:
        outcome = Outcome.scored if score is not None else Outcome.parse_error
    details = {key: _without_texts(row[key]) for key in _AGGREGATED_DETAILS if key in row}
    verdict = row.get("verdict")
    return RowResult(
        outcome,
        score=score if outcome is Outcome.scored else None,
        verdict=verdict if isinstance(verdict, str) else None,
        details=details or None,
    )


def failure_outcome(failed: Sequence[RowResult], *, every: bool = False) -> Outcome:
    """What a row whose judgments all failed ended as.

    An inference error when any (``every``: all) of them got no reply, otherwise a parse error.
    """
    got_none = [result.outcome is Outcome.inference_error for result in failed]
    return Outcome.inference_error if (all(got_none) if every else any(got_none)) else Outcome.parse_error


def combine_samples(samples: Sequence[RowResult]) -> RowResult:
    """One row judged several times: the median of its scored samples, with every sample kept.

    The shown verdict and output are those of the scored sample nearest the median. A row with no scored sample
    is an inference error when every sample failed to get a reply, otherwise a parse error.
    """
    if len(samples) == 1:
        return samples[0]
    attempts = sum(s.attempts for s in samples)
    scored = [s for s in samples if s.outcome is Outcome.scored and s.score is not None]
    if not scored:
        outcome = failure_outcome(samples, every=True)
        errors = Counter(s.error for s in samples if s.error)
        error = "; ".join(f"{e} (x{n})" if n > 1 else e for e, n in errors.items())
        return RowResult(outcome, error=error or None, attempts=attempts, samples=tuple(samples))
    middle = median([s.score for s in scored if s.score is not None]) or 0.0
    nearest = min(scored, key=lambda s: abs((s.score or 0.0) - middle))
    return RowResult(
        Outcome.scored,
        score=middle,
        verdict=nearest.verdict,
        judge_output=nearest.judge_output,
        attempts=attempts,
        samples=tuple(samples),
        finish_reason=nearest.finish_reason,
    )
