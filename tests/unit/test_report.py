"""The HTML report treats every text as data."""

from pathlib import Path

from llama_stack_judge.mtbench.report import write_report
from llama_stack_judge.mtbench.summary import summarize_pairwise, summarize_single

SCRIPT = "<script>alert('x')</script>"


def test_single_report_escapes_judge_output(tmp_path: Path) -> None:
    judgments = [
        {
            "question_id": 81,
            "model": f"m{SCRIPT}",
            "turn": 1,
            "category": "writing",
            "judge": "single-v1",
            "score": 7.0,
            "status": "scored",
            "judge_output": f"Nice {SCRIPT} Rating: [[7]]",
            "error": None,
        },
        {
            "question_id": 82,
            "model": "m",
            "turn": 1,
            "category": "writing",
            "judge": "single-v1",
            "score": None,
            "status": "parse_error",
            "judge_output": SCRIPT,
            "error": f"no verdict {SCRIPT}",
        },
    ]
    summary = {"kind": "single", "complete": True, "models": summarize_single(judgments)}
    write_report(tmp_path, summary, judgments)
    page = (tmp_path / "report.html").read_text()
    assert "<script>" not in page and page.count("&lt;script&gt;") >= 4
    assert (tmp_path / "scores.png").exists()


def test_pairwise_report_escapes_both_orders(tmp_path: Path) -> None:
    judgments = [
        {
            "question_id": 81,
            "model_a": "a",
            "model_b": "b",
            "turn": 1,
            "category": "writing",
            "judge": "pair-v2",
            "winner": "model_a",
            "status": "scored",
            "verdict_ab": "A",
            "verdict_ba": "B",
            "judge_output_ab": f"{SCRIPT} [[A]]",
            "judge_output_ba": f"{SCRIPT} [[B]]",
            "error": None,
        },
    ]
    summary = {"kind": "pair", "complete": True} | summarize_pairwise(judgments)
    write_report(tmp_path, summary, judgments)
    page = (tmp_path / "report.html").read_text()
    assert "<script>" not in page and page.count("&lt;script&gt;") == 2
