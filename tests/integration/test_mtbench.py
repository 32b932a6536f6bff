"""MT-bench through the stack: routing to the eight judges, the position swap, verdicts, and the mt-bench command."""

import copy
import hashlib
import json
import math
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llama_stack_judge.core.definitions import load_definition_file
from llama_stack_judge.core.options import JudgeOptions
from llama_stack_judge.core.runner import render_request
from llama_stack_judge.mtbench.questions import NEED_REFERENCE, data_file, load_questions, load_turn_answers
from tests.browser import render
from tests.fake_openai import fake_openai
from tests.integration.test_cli import CLI, _run
from tests.stacks import INTERRUPTIBLE, REPO, bad_request, run_config_file, selected_providers, stack_client

pytestmark = pytest.mark.integration

RATING = "judge::response_assessment.rating"
PAIRWISE = "judge::response_assessment.pairwise_comparison"
QUESTIONS = load_questions(data_file("question.jsonl"))
REFERENCES = load_turn_answers(data_file("reference_answer_gpt-4.jsonl"))


@pytest.fixture(scope="module", params=["library", "served"])
def logged(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Path]]:
    """A stack whose scripted judge logs every call, and the log's path."""
    state = tmp_path_factory.mktemp(f"mtbench-{request.param}")
    providers = copy.deepcopy(selected_providers())
    log = state / "calls.jsonl"
    providers["inference"][0]["config"]["call_log"] = str(log)
    with stack_client(request.param, run_config_file(state, providers)) as client:
        yield client, log


def _calls(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _score(client: Any, function: str, rows: list[dict[str, Any]], **options: Any) -> Any:
    extra = {"extra_headers": JudgeOptions(**options).headers()} if options else {}
    return client.scoring.score(input_rows=rows, scoring_functions={function: None}, **extra).results[function]


def _one_question_per_category() -> list[int]:
    seen: dict[str, int] = {}
    for question in sorted(QUESTIONS.values(), key=lambda q: q.question_id):
        seen.setdefault(question.category, question.question_id)
    return sorted(seen.values())


def test_every_category_and_turn_goes_to_its_judge_with_its_fields(logged: tuple[Any, Path]) -> None:
    client, log = logged
    tag = uuid.uuid4().hex[:8]
    rows, expected = [], []
    for qid in _one_question_per_category():
        question = QUESTIONS[qid]
        for turn in (1, 2):
            row: dict[str, Any] = {
                "question": list(question.turns[:turn]),
                "response": [f"{tag} turn-1 answer to {qid} SCORE=3", f"{tag} turn-2 answer to {qid} SCORE=6"][:turn],
                "category": question.category,
                "turn": turn,
            }
            with_reference = question.category in NEED_REFERENCE
            if with_reference:
                row["reference"] = list(REFERENCES[qid][:turn])
            rows.append(row)
            name = ("single-math-v1" if with_reference else "single-v1") + ("-multi-turn" if turn == 2 else "")
            expected.append(name)
    before = len(_calls(log))
    result = _score(client, RATING, rows)
    assert [row["judge"] for row in result.score_rows] == expected
    assert [row["score"] for row in result.score_rows] == [3.0, 6.0] * (len(rows) // 2)
    calls = _calls(log)[before:]
    assert len(calls) == len(rows)
    for row, name in zip(rows, expected, strict=True):
        definition = load_definition_file(
            REPO / "llama_stack_judge" / "mtbench" / "judges" / f"mt-bench-{name}.json", prefix="j"
        )
        turn = row["turn"]
        names = ["question", "response"] + (["reference"] if "reference" in row else [])
        fields = (
            {n: row[n][0] for n in names} if turn == 1 else {f"{n}_{i}": row[n][i - 1] for n in names for i in (1, 2)}
        )
        rendered = render_request(definition, fields, judge_model="scripted/judge")
        wanted = [{"role": m.role, "content": m.content} for m in rendered.messages]
        assert any(call["messages"] == wanted for call in calls), f"no call rendered as {name} for {row}"


def test_pairwise_is_judged_in_both_orders(logged: tuple[Any, Path]) -> None:
    client, log = logged
    tag = uuid.uuid4().hex[:8]
    rows = [
        {"question": f"{tag} q1", "response_a": "GOOD answer", "response_b": "weak answer"},
        {"question": f"{tag} q2", "response_a": "weak answer", "response_b": "GOOD answer"},
        {"question": f"BIASED {tag} q3", "response_a": "one", "response_b": "two"},
        {"question": f"{tag} q4", "response_a": "same", "response_b": "same"},
    ]
    before = len(_calls(log))
    result = _score(client, PAIRWISE, rows)
    winners = [row["winner"] for row in result.score_rows]
    assert winners == ["model_a", "model_b", "tie (inconsistent)", "tie"]
    assert [[o["verdict"] for o in row["orders"]] for row in result.score_rows] == [
        ["A", "B"],
        ["B", "A"],
        ["A", "A"],
        ["C", "C"],
    ]
    assert [row["score"] for row in result.score_rows] == [1.0, 0.0, 0.5, 0.5]
    aggregated = result.aggregated_results
    assert aggregated["position_bias"] == {
        "position_consistency": 0.75,
        "first_position_win_rate": 0.5,  # A in 4 of the 8 verdicts
        "n_pairs_both_orders": 4,
    } | {"n_scored": 4, "n_parse_error": 0, "n_inference_error": 0, "n_total": 4}
    assert aggregated["win_rate"]["win_rate"] == 0.5 and aggregated["win_rate"]["ties"] == 2
    first = [c["messages"][-1]["content"] for c in _calls(log)[before:] if f"{tag} q1" in c["messages"][-1]["content"]]
    assert len(first) == 2
    orders = sorted(first, key=lambda text: text.index("GOOD"))
    assert "Assistant A's Answer]\nGOOD answer" in orders[0] and "Assistant B's Answer]\nGOOD answer" in orders[1]


def test_verdicts_from_real_looking_judge_outputs(logged: tuple[Any, Path]) -> None:
    client, _ = logged
    tag = uuid.uuid4().hex[:8]
    answers = ["SCORE=8.5", "LENIENT=4", "UNPARSEABLE", "SCORE=11", "SCORE=2"]
    rows = [{"question": f"{tag} {i}", "response": a, "turn": 1} for i, a in enumerate(answers)]
    rows[-1] = {"question": [f"{tag} x", "y"], "response": ["SCORE=9", "SCORE=2"], "turn": 2}
    result = _score(client, RATING, rows, group_by=["turn"])
    assert [r["status"] for r in result.score_rows] == ["scored", "scored", "parse_error", "parse_error", "scored"]
    assert [r["score"] for r in result.score_rows] == [8.5, 4.0, None, None, 2.0]
    assert result.score_rows[0]["judge_feedback"].startswith('Following the format "[[rating]]"')
    assert "outside [1.0, 10.0]" in result.score_rows[3]["error"]
    aggregated = result.aggregated_results
    assert aggregated["average"]["average"] == pytest.approx((8.5 + 4.0 + 2.0) / 3)
    assert aggregated["average"]["by_group"]["turn"]["1"] == {"average": 6.25, "n": 2, "n_total": 4}
    assert (aggregated["average"]["n_scored"], aggregated["average"]["n_parse_error"]) == (3, 2)


def test_failure_policy_minimum_applies_to_the_tasks(logged: tuple[Any, Path]) -> None:
    client, _ = logged
    tag = uuid.uuid4().hex[:8]
    rows = [{"question": f"{tag} {i}", "response": a, "turn": 1} for i, a in enumerate(["SCORE=8", "UNPARSEABLE"])]
    assert _score(client, RATING, rows).aggregated_results["average"]["average"] == 8.0
    minimum = _score(client, RATING, rows, failure_policy="minimum").aggregated_results
    assert minimum["average"]["average"] == pytest.approx((8.0 + 1.0) / 2)
    assert (minimum["average"]["n_scored"], minimum["average"]["n_parse_error"]) == (1, 1)
    pairs = [
        {"question": f"{tag} p0", "response_a": "GOOD answer", "response_b": "plain", "turn": 1},
        {"question": f"{tag} p1 UNDECIDED", "response_a": "x", "response_b": "y", "turn": 1},
    ]
    excluded = _score(client, PAIRWISE, pairs).aggregated_results["win_rate"]
    counted = _score(client, PAIRWISE, pairs, failure_policy="minimum").aggregated_results["win_rate"]
    assert (excluded["win_rate"], counted["win_rate"]) == (1.0, 0.5)  # the failed comparison counts as A's loss


def test_task_rows_are_checked_before_judging(logged: tuple[Any, Path]) -> None:
    client, _ = logged
    with bad_request("row 1: category 'math' is judged against a reference answer", "row 2: missing field 'question'"):
        _score(
            client,
            RATING,
            [
                {"question": "q", "response": "r"},
                {"question": "q", "response": "r", "category": "math"},
                {"response": "r"},
            ],
        )
    with bad_request("only judge_model can be set per call"):
        client.scoring.score(
            input_rows=[{"question": "q", "response": "r"}],
            scoring_functions={RATING: {"type": "llm_as_judge", "judge_model": "", "prompt_template": "{x}"}},
        )


def _answers(path: Path, model: str, answers: dict[int, list[str]]) -> Path:
    lines = [
        {"question_id": qid, "model_id": model, "choices": [{"index": 0, "turns": turns}]}
        for qid, turns in answers.items()
    ]
    file = path / f"{model}.jsonl"
    file.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return file


def _last_answer(text: str, side: str) -> str:
    """The last answer shown for assistant ``side`` ("" for single-answer prompts) in an MT-bench prompt."""
    name = f" {side}" if side else ""
    single = re.findall(rf"\[The Start of Assistant{name}'s Answer\]\n(.*?)\n\[The End", text, re.S)
    multi = re.findall(rf"### Assistant {side or 'A'}:\n(.*?)(?:\n\n###|\n\n<\|The End)", text, re.S)
    found = single or multi
    return found[-1] if found else ""


def _fake_judge(messages: list[dict[str, Any]]) -> str:
    """Rates an answer saying 'good' 8 and others 3; prefers the answer that says 'good'."""
    text = "\n".join(m["content"] for m in messages)
    if "[[A]]" in text:
        a, b = ("good" in _last_answer(text, side) for side in "AB")
        return "A is better. [[A]]" if a and not b else "B is better. [[B]]" if b and not a else "Tie. [[C]]"
    return "Rating: [[8]]" if "good" in _last_answer(text, "") else "Rating: [[3]]"


def test_mt_bench_pairwise_with_a_judge_panel(tmp_path: Path) -> None:
    alpha = _answers(tmp_path, "alpha", {81: ["good poem"]})
    beta = _answers(tmp_path, "beta", {81: ["meh poem"]})
    with fake_openai(["judge", "second"], _fake_judge) as server:
        done = _run(
            "mt-bench", "pairwise", "--answers", str(alpha), str(beta), "--question-ids", "81", "--turns", "1",
            "--inference-url", server.url, "--judge-model", "judge", "--judge-model", "second",
            "--state-dir", str(tmp_path / "state"), "--output", str(tmp_path / "out"),
        )  # fmt: skip
        asked = sorted(request["model"] for request in server.log)
    assert done.returncode == 0, done.stderr
    assert asked == ["judge", "judge", "second", "second"]  # each member judged the pair in both orders
    (judgment,) = [json.loads(line) for line in (tmp_path / "out" / "judgments.jsonl").read_text().splitlines()]
    assert judgment["winner"] == "model_a" and (judgment["verdict_ab"], judgment["verdict_ba"]) == ("A", "B")
    assert [(m["judge_model"], m["winner"]) for m in judgment["panel"]] == [
        ("endpoint/judge", "model_a"),
        ("endpoint/second", "model_a"),
    ]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["leaderboard"]["models"][0]["model"] == "alpha"  # both members preferred its answer
    report = (tmp_path / "out" / "report.html").read_text()
    assert "majority panel member</td><td>endpoint/second" in report


def test_mt_bench_command_end_to_end(tmp_path: Path) -> None:
    ids = [81, 111]  # writing, and math (reference-guided)
    alpha = _answers(tmp_path, "alpha", {81: ["good poem", "good rewrite"], 111: ["good math", "bad math"]})
    beta = _answers(tmp_path, "beta", {81: ["meh poem", "meh rewrite"], 111: ["meh math", "good math 2"]})
    answers = ["--answers", str(alpha), str(beta), "--question-ids", ",".join(map(str, ids))]
    with fake_openai("judge", _fake_judge) as server:
        url, log = server.url, server.log

        def mt_bench(kind: str, output: str, *extra: str) -> None:
            judge = ["--inference-url", url, "--judge-model", "judge", "--state-dir", str(tmp_path / "state")]
            done = _run("mt-bench", kind, *answers, "--output", str(tmp_path / output), *judge, *extra)
            assert done.returncode == 0, done.stderr
            outputs[output] = done.stdout

        outputs: dict[str, str] = {}
        mt_bench("single", "single")
        calls_single = len(log)
        mt_bench("pairwise", "pair", "--baseline", "beta")
        mt_bench("single", "single-again")
        assert len(log) == calls_single + 8  # pairwise: 4 rows x 2 orders; the single re-run came from the cache
    judgments = [json.loads(line) for line in (tmp_path / "single" / "judgments.jsonl").read_text().splitlines()]
    assert len(judgments) == 8 and set(judgments[0]) == {
        "question_id",
        "model",
        "turn",
        "category",
        "judge",
        "score",
        "verdict",
        "status",
        "judge_output",
        "error",
        "verdict_in_response",
    }
    by_key = {(j["model"], j["question_id"], j["turn"]): j for j in judgments}
    assert by_key[("alpha", 111, 1)]["judge"] == "single-math-v1" and by_key[("alpha", 111, 1)]["score"] == 8.0
    assert (
        by_key[("alpha", 111, 2)]["judge"] == "single-math-v1-multi-turn" and by_key[("alpha", 111, 2)]["score"] == 3.0
    )
    summary = json.loads((tmp_path / "single" / "summary.json").read_text())
    assert summary["models"]["alpha"]["turn_1"] == 8.0 and summary["models"]["alpha"]["turn_2"] == 5.5
    assert summary["models"]["beta"]["overall"] == pytest.approx((3 + 3 + 3 + 8) / 4)
    assert summary["usage"]["inference_calls"] == 8 and "alpha" in outputs["single"] and "turn 1" in outputs["single"]
    assert (tmp_path / "single" / "scores.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (tmp_path / "single" / "report.html").read_text()
    assert report.count('<section id="j') == 8 and 'href="#j7"' in report and "data:image/png;base64," in report
    run = summary["run"]  # what produced the run, in summary.json and the report
    assert run["command"].startswith("llama-stack-judge mt-bench single --answers")
    assert run["versions"]["llama-stack"] == "0.7.3" and run["scoring_function"] == "judge::response_assessment.rating"
    assert run["judge_source"] == f"OpenAI-compatible endpoint {url}"
    names = ("single-v1", "single-math-v1", "single-v1-multi-turn", "single-math-v1-multi-turn")
    assert set(run["judges"]) == {f"judge::mt-bench-{name}" for name in names}
    for judge in run["judges"].values():
        assert judge["judge_model"] == "endpoint/judge" and len(judge["content_hash"]) == 64
        assert judge["verdict_mode"] == "patterns" and judge["sampling"]["temperature"] == 0.0
    assert [f["sha256"] for f in run["files"]["answers"]] == [
        hashlib.sha256(Path(path).read_bytes()).hexdigest() for path in (alpha, beta)
    ]
    rendered = render(tmp_path / "single" / "report.html")  # in a real browser
    assert rendered.console == [] and rendered.broken_links() == []
    assert run["judges"]["judge::mt-bench-single-v1"]["content_hash"][:16] in rendered.dom
    assert rendered.dom.count('<section id="j') == 8
    pairs = [json.loads(line) for line in (tmp_path / "pair" / "judgments.jsonl").read_text().splitlines()]
    assert len(pairs) == 4 and {p["model_a"] for p in pairs} == {"alpha"} and {p["model_b"] for p in pairs} == {"beta"}
    assert {(p["question_id"], p["turn"]): p["winner"] for p in pairs} == {
        (81, 1): "model_a",
        (81, 2): "model_a",
        (111, 1): "model_a",
        (111, 2): "model_b",
    }
    assert all(p["verdict_ab"] and p["verdict_ba"] and p["judge_output_ba"] for p in pairs)
    pair_summary = json.loads((tmp_path / "pair" / "summary.json").read_text())
    assert pair_summary["models"]["alpha"]["win_rate"] == 0.75 and pair_summary["position_consistency"] == 1.0
    board = pair_summary["leaderboard"]  # 8 battles (both orders), alpha won 6: odds 3 against the baseline
    assert board["anchor"] == "beta" and board["n_battles"] == 8
    alpha = next(row for row in board["models"] if row["model"] == "alpha")
    assert alpha["rating"] == pytest.approx(1000 + 400 * math.log10(3), abs=0.01) and alpha["raw_win_rate"] == 0.75
    assert "Bradley-Terry leaderboard (8 battles" in outputs["pair"]
    styled = pair_summary["leaderboard_style_controlled"]
    assert set(styled["style_coefficients"]) == {"length", "headers", "list_items", "bold"} and styled["n_battles"] == 8
    assert "style-controlled Bradley-Terry leaderboard" in outputs["pair"]
    assert 'alt="ratings"' in (tmp_path / "pair" / "report.html").read_text()
    controlled = pair_summary["length_controlled"]  # alpha's answers are longer in 3 of 4 rows: raw 0.75 is flattered
    assert controlled["baseline"] == "beta" and controlled["models"]["alpha"]["win_rate"] == 0.75
    assert controlled["models"]["alpha"]["n"] == 8 and "length-controlled" in outputs["pair"]
    votes = tmp_path / "votes.jsonl"
    votes.write_text(
        "".join(
            json.dumps(v) + "\n"
            for v in [
                {
                    "question_id": 81,
                    "model_a": "beta",
                    "model_b": "alpha",
                    "turn": 1,
                    "winner": "model_b",
                    "judge": "human",
                },
                {
                    "question_id": 111,
                    "model_a": "alpha",
                    "model_b": "beta",
                    "turn": 2,
                    "winner": "model_a",
                    "judge": "human",
                },
            ]
        )
    )
    agreed = _run(
        "mt-bench",
        "agreement",
        "--judgments",
        str(tmp_path / "pair" / "judgments.jsonl"),
        "--labels",
        str(votes),
        "--output",
        str(tmp_path / "agreement.json"),
    )
    assert agreed.returncode == 0, agreed.stderr
    report_json = json.loads((tmp_path / "agreement.json").read_text())
    assert report_json["all"]["ours_vs_votes"]["with_ties"] == {"agreement": 0.5, "n": 2}
    assert report_json["turn_1"]["ours_vs_votes"]["with_ties"] == {"agreement": 1.0, "n": 1}


def test_mt_bench_command_reports_bad_input(tmp_path: Path) -> None:
    broken = tmp_path / "m.jsonl"
    broken.write_text('{"question_id": 81, "choices": [{"turns": "not a list"}]}\n')
    done = _run(
        "mt-bench", "single", "--answers", str(broken), "--output", str(tmp_path / "o"), "--stack-config", "unused.yaml"
    )
    assert done.returncode == 2 and f"{broken}:1: 'turns': expected a non-empty list of strings" in done.stderr
    assert Path(CLI).exists()


def test_ctrl_c_keeps_what_was_judged_and_a_rerun_resumes(tmp_path: Path) -> None:
    answers = _answers(tmp_path, "gamma", {qid: [f"answer {qid}", f"second {qid}"] for qid in range(81, 87)})
    output = tmp_path / "out"

    def slow_judge(messages: list[dict[str, Any]]) -> str:
        time.sleep(0.15)
        return "Rating: [[6]]"

    with fake_openai("judge", slow_judge) as server:
        url, log = server.url, server.log
        command = [
            CLI,
            "mt-bench",
            "single",
            "--answers",
            str(answers),
            "--max-concurrency",
            "1",
            "--output",
            str(output),
            "--inference-url",
            url,
            "--judge-model",
            "judge",
            "--state-dir",
            str(tmp_path / "s"),
        ]
        env = {"LLAMA_STACK_LOG_FORMAT": "json", "PATH": str(Path(CLI).parent), "HOME": str(Path.home())}
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **INTERRUPTIBLE
        )
        judgments = output / "judgments.jsonl"
        deadline = time.monotonic() + 60
        while not (judgments.exists() and len(judgments.read_text().splitlines()) >= 4):  # a chunk is 4 rows here
            assert time.monotonic() < deadline and process.poll() is None, process.communicate()
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 130, stderr
        assert "interrupted:" in stderr and "Traceback" not in stderr, stderr[-3000:]
        kept = len(judgments.read_text().splitlines())
        assert 4 <= kept < 12
        summary = json.loads((output / "summary.json").read_text())
        assert summary["complete"] is False and summary["n_judgments"] == kept
        first_calls = len(log)
        again = _run(*command[1:])
        assert again.returncode == 0, again.stderr
    resumed = json.loads((output / "summary.json").read_text())
    assert resumed["complete"] is True and resumed["n_judgments"] == 12
    assert resumed["usage"]["cache_hits"] >= kept  # what was judged before is not paid for again
    assert len(log) - first_calls == resumed["usage"]["inference_calls"] == 12 - resumed["usage"]["cache_hits"]


def test_the_leaderboard_command_reads_fastchat_and_vote_files(tmp_path: Path) -> None:
    gpt4 = data_file("dev") / "gpt4_pair_judgments_dev.jsonl"
    done = _run("mt-bench", "leaderboard", "--judgments", str(gpt4), "--resamples", "100", "--output",
                str(tmp_path / "board.json"), "--anchor", "llama-13b")  # fmt: skip
    assert done.returncode == 0, done.stderr
    board = json.loads((tmp_path / "board.json").read_text())
    assert board["anchor"] == "llama-13b" and board["n_battles"] == 1200 and board["models"][0]["model"] == "gpt-4"
    assert "gpt-4" in done.stdout and "Bradley-Terry leaderboard (1,200 battles" in done.stdout
    fastchat = tmp_path / "gpt-4_pair.jsonl"
    fastchat.write_text(
        json.dumps({"question_id": 81, "model_1": "a", "model_2": "b", "g1_winner": "model_1", "g2_winner": "tie"})
        + "\n"
    )
    done = _run("mt-bench", "leaderboard", "--judgments", str(tmp_path), "--judge", "none-such", "--resamples", "0")
    assert done.returncode == 2 and "no battle in the judgment files by a judge named none-such*" in done.stderr
    done = _run("mt-bench", "leaderboard", "--judgments", str(tmp_path), "--resamples", "0")
    assert done.returncode == 0 and "(2 battles, 0 bootstrap refits)" in done.stdout  # both orders of the one pair
    answers = data_file("dev") / "answers"
    styled = _run("mt-bench", "leaderboard", "--judgments", str(gpt4), "--resamples", "20", "--answers",
                  *(str(answers / f"{m}.jsonl") for m in ("gpt-4", "llama-13b")), "--judge", "gpt4")  # fmt: skip
    assert styled.returncode == 2 and "--answers hold no answer of" in styled.stderr  # four models' answers missing
    styled = _run("mt-bench", "leaderboard", "--judgments", str(gpt4), "--resamples", "20", "--answers",
                  *map(str, sorted(answers.glob("*.jsonl"))), "--output", str(tmp_path / "styled.json"))  # fmt: skip
    assert styled.returncode == 0, styled.stderr
    assert json.loads((tmp_path / "styled.json").read_text())["style_coefficients"]["length"]["ci95"]
