"""Judge panels: combining members' verdicts, escalation, and the panel's agreement."""

import asyncio
from collections.abc import Sequence

import pytest

from llama_stack_judge.core.aggregate import Statistics
from llama_stack_judge.core.agreement import fleiss_kappa
from llama_stack_judge.core.definitions import Aggregation
from llama_stack_judge.core.outcomes import Outcome, RowResult, compact_result
from llama_stack_judge.core.panel import Combine, Panel, judge_with_panel, panel_members, panel_results_from_rows
from llama_stack_judge.errors import JudgeInputError
from llama_stack_judge.mtbench.work import pairwise_judgment


def rated(score: float) -> RowResult:
    return RowResult.scored_value(score, verdict=f"{score:g}", attempts=1)


def chose(label: str, score: float) -> RowResult:
    return RowResult.scored_value(score, verdict=label, attempts=1)


FAILED = RowResult(Outcome.inference_error, error="judge down", attempts=4)


def test_fleiss_kappa_on_the_textbook_example() -> None:
    # Fleiss (1971) as tabulated on Wikipedia's "Fleiss' kappa" page: 10 items, 14 raters, 5 categories.
    table = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    assert fleiss_kappa(table) == pytest.approx(0.210, abs=0.001)
    assert fleiss_kappa([[3, 0], [0, 3]]) == pytest.approx(1.0)  # perfect agreement
    assert fleiss_kappa([[3, 0], [3, 0]]) is None  # one category only: chance agreement is total
    with pytest.raises(ValueError, match="same number"):
        fleiss_kappa([[2, 0], [1, 0]])


def test_members_are_named_with_commas() -> None:
    assert panel_members("vllm/a") == ("vllm/a",)
    assert panel_members("vllm/a, vllm/b,vllm/c") == ("vllm/a", "vllm/b", "vllm/c")
    with pytest.raises(JudgeInputError, match="once"):
        panel_members("a,a")
    with pytest.raises(JudgeInputError, match="none empty"):
        panel_members("a,,b")
    with pytest.raises(JudgeInputError, match="at least two"):
        Panel(("a",), Combine.mean)
    with pytest.raises(JudgeInputError, match="already a member"):
        Panel(("a", "b"), Combine.mean, escalate_to="b")


def test_ratings_combine_by_mean_or_median_and_keep_every_member() -> None:
    votes = [rated(2), rated(8), rated(9)]
    by_mean = Panel(("a", "b", "c"), Combine.mean).combined(votes)
    assert by_mean.score == pytest.approx(19 / 3)
    assert Panel(("a", "b", "c"), Combine.median).combined(votes).score == 8
    members = by_mean.details["panel"]  # type: ignore[index]
    assert [(m["judge_model"], m["score"]) for m in members] == [("a", 2), ("b", 8), ("c", 9)]
    assert by_mean.attempts == 3


def test_a_failed_member_is_reported_and_left_out_of_the_combination() -> None:
    panel = Panel(("a", "b", "c"), Combine.mean)
    result = panel.combined([rated(4), FAILED, rated(6)])
    assert result.outcome is Outcome.scored and result.score == 5
    assert result.details["panel"][1]["status"] == "inference_error"  # type: ignore[index]
    none = panel.combined([FAILED, FAILED, FAILED])
    assert none.outcome is Outcome.inference_error and none.score is None
    assert "no panel member judged the row" in (none.error or "")


def test_choices_combine_by_majority_with_a_tie_when_there_is_none() -> None:
    panel = Panel(("a", "b", "c"), Combine.majority)
    won = panel.combined([chose("model_a", 1), chose("model_b", 0), chose("model_a", 1)])
    assert (won.verdict, won.score) == ("model_a", 1)
    split = panel.combined([chose("model_a", 1), chose("model_b", 0), chose("tie", 0.5)])
    assert (split.verdict, split.score) == ("tie", 0.5)
    two = Panel(("a", "b"), Combine.majority).combined([chose("yes", 1), chose("no", 0)])
    assert (two.verdict, two.score) == ("tie", 0.5)


def scripted(verdicts: dict[str, Sequence[RowResult]], asked: list[tuple[str, int]]):  # type: ignore[no-untyped-def]
    async def judge_with(model: str, rows: Sequence[int]) -> list[RowResult]:
        asked.extend((model, row) for row in rows)
        return [verdicts[model][row] for row in rows]

    return judge_with


def test_escalation_asks_the_strong_judge_only_where_the_panel_disagrees() -> None:
    verdicts = {
        "a": [rated(7), rated(2), rated(5), FAILED],
        "b": [rated(8), rated(9), rated(6), rated(5)],
        "strong": [rated(1), rated(3), rated(1), rated(4)],
    }
    asked: list[tuple[str, int]] = []
    panel = Panel(("a", "b"), Combine.mean, escalate_to="strong", escalate_spread=2)
    results = asyncio.run(judge_with_panel(panel, [0, 1, 2, 3], scripted(verdicts, asked)))
    # Rows 0 and 2 agree within 2 points; row 1 does not; row 3 has one verdict only.
    assert [row for model, row in asked if model == "strong"] == [1, 3]
    assert [r.score for r in results.combined] == [7.5, 3, 5.5, 4]
    assert results.combined[1].details["escalated_to"]["judge_model"] == "strong"  # type: ignore[index]
    assert results.escalation() == {
        "judge_model": "strong",
        "rows": 2,
        "share": 0.5,
        "calls": 2,
        "calls_saved": 2,
        "rows_not_escalated": 2,
        "spread": 2,
    }


def test_the_report_rebuilt_from_stored_rows_is_the_report_made_at_judging() -> None:
    """An eval job keeps only score rows (texts left out) and reports its panel over all its pages from them."""
    verdicts = {
        "a": [rated(7), rated(2), rated(5), FAILED],
        "b": [rated(8), rated(9), rated(6), rated(5)],
        "strong": [rated(1), rated(3), rated(1), rated(4)],
    }
    panel = Panel(("a", "b"), Combine.median, escalate_to="strong", escalate_spread=2)
    results = asyncio.run(judge_with_panel(panel, [0, 1, 2, 3], scripted(verdicts, [])))
    stored = [compact_result(row.as_score_row()) for row in results.combined]
    rebuilt = panel_results_from_rows(Panel.from_settings(panel.settings()), stored, results.escalation_calls)
    assert rebuilt is not None
    functions, stats = (Aggregation.average, Aggregation.median), Statistics(bootstrap_resamples=0)
    assert rebuilt.report(functions, stats) == results.report(functions, stats)
    # A row that lost its members' judgments cannot be reported on honestly.
    assert panel_results_from_rows(panel, [*stored[:3], compact_result({"score": 5.0})]) is None


def test_a_failed_escalation_keeps_the_panels_verdict_and_says_so() -> None:
    verdicts = {"a": [chose("A", 1)], "b": [chose("B", 0)], "strong": [FAILED]}
    panel = Panel(("a", "b"), Combine.majority, escalate_to="strong")
    results = asyncio.run(judge_with_panel(panel, [0], scripted(verdicts, [])))
    (row,) = results.combined
    assert (row.verdict, row.score) == ("tie", 0.5)
    assert row.details["escalated_to"]["status"] == "inference_error"  # type: ignore[index]


def test_the_report_gives_each_member_and_the_panels_agreement() -> None:
    verdicts = {
        "a": [chose("A", 1), chose("A", 1), chose("B", 0), chose("B", 0)],
        "b": [chose("A", 1), chose("A", 1), chose("B", 0), chose("A", 1)],
        "c": [chose("A", 1), chose("B", 0), chose("B", 0), FAILED],
    }
    panel = Panel(("a", "b", "c"), Combine.majority)
    results = asyncio.run(judge_with_panel(panel, [0, 1, 2, 3], scripted(verdicts, [])))
    report = results.report((Aggregation.average,), Statistics(bootstrap_resamples=0))
    assert report["members"] == ["a", "b", "c"]
    by_member = report["by_member"]
    assert by_member["a"]["average"]["average"] == 0.5  # type: ignore[index]
    assert by_member["c"]["n_inference_error"] == 1  # type: ignore[index]
    agreement = report["agreement"]
    assert agreement["n_rows_all_members"] == 3  # type: ignore[index]
    assert agreement["unanimous"] == pytest.approx(2 / 3, abs=1e-4)  # type: ignore[index]
    # a and b agree on 3 of 4 rows: observed 0.75, chance 0.5 (each says A half the time): kappa 0.5.
    assert agreement["cohen_kappa"]["a | b"] == 0.5  # type: ignore[index]
    assert agreement["fleiss_kappa"] == pytest.approx(  # type: ignore[index]
        fleiss_kappa([[3, 0], [2, 1], [0, 3]]), abs=1e-4
    )
    assert [r.verdict for r in results.combined] == ["A", "A", "B", "tie"]


def test_a_pairwise_panels_judgment_line_keeps_each_members_winner() -> None:
    def member(model: str, ab: str, ba: str, winner: str) -> dict[str, object]:
        orders = [{"order": "AB", "verdict": ab}, {"order": "BA", "verdict": ba}]
        return {"judge_model": model, "winner": winner, "status": "scored", "orders": orders}

    scored = {
        "status": "scored",
        "verdict": "model_a",
        "winner": "model_a",
        "panel": [
            member("a", "A", "B", "model_a"),
            member("b", "A", "A", "inconsistent"),
            member("c", "A", "B", "model_a"),
        ],
    }
    line = pairwise_judgment({"question_id": 81, "model_a": "x", "model_b": "y", "turn": 1}, scored)
    assert line["winner"] == "model_a"
    assert (line["verdict_ab"], line["verdict_ba"]) == ("A", "B")  # each order's majority
    assert [(m["judge_model"], m["winner"]) for m in line["panel"]] == [
        ("a", "model_a"),
        ("b", "inconsistent"),
        ("c", "model_a"),
    ]
    split = scored | {"panel": [member("a", "A", "B", "model_a"), member("b", "B", "A", "model_b")]}
    assert pairwise_judgment({}, split)["verdict_ab"] == "C"  # no majority in that order: a tie
