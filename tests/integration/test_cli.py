"""The llama-stack-judge command, run as a user runs it."""

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fake_openai import fake_openai
from tests.stacks import REPO, run_config_file

pytestmark = pytest.mark.integration
CLI = str(Path(sys.executable).parent / "llama-stack-judge")
ROWS = [
    {"input_query": "What is the capital of France?", "generated_answer": "Paris", "expected_answer": "Paris"},
    {"input_query": "What is 2+2?", "generated_answer": "2+2 is 5", "expected_answer": "4"},
]


def _rows_file(tmp_path: Path) -> Path:
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={"LLAMA_STACK_LOG_FORMAT": "json", "PATH": str(Path(sys.executable).parent), "HOME": str(Path.home())},
    )


BOTH_FUNCTIONS = ("--scoring-fn", "judge::helpfulness-v1", "--scoring-fn", "judge::subset_of")


def _results(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_score_with_a_stack_config(tmp_path: Path) -> None:
    output = tmp_path / "out.jsonl"
    run_yaml = run_config_file(tmp_path / "state")
    done = _run(
        "score",
        "--rows",
        str(_rows_file(tmp_path)),
        *BOTH_FUNCTIONS,
        "--stack-config",
        str(run_yaml),
        "--output",
        str(output),
    )
    assert done.returncode == 0, done.stderr
    results = _results(output)
    assert [r["results"]["judge::helpfulness-v1"]["score"] for r in results] == [9.0, 2.0]
    assert [r["results"]["judge::subset_of"]["score"] for r in results] == [1.0, 0.0]
    assert results[0]["row"] == ROWS[0]
    assert "judge::helpfulness-v1" in done.stdout and '"average": 5.5' in done.stdout


def test_score_against_an_openai_compatible_endpoint(tmp_path: Path) -> None:
    def reply(messages: list[dict[str, Any]]) -> str:
        return "Verdict: [[CORRECT]]" if "Answer: Paris" in messages[-1]["content"] else "Verdict: [[INCORRECT]]"

    output = tmp_path / "out.jsonl"
    with fake_openai("grader", reply) as server:
        url, log = server.url, server.log
        done = _run(
            "score",
            "--rows",
            str(_rows_file(tmp_path)),
            "--scoring-fn",
            "judge::correctness-v1",
            "--inference-url",
            url,
            "--judge-model",
            "grader",
            "--state-dir",
            str(tmp_path / "state"),
            "--output",
            str(output),
        )
    assert done.returncode == 0, done.stderr
    assert [r["results"]["judge::correctness-v1"]["verdict"] for r in _results(output)] == ["CORRECT", "INCORRECT"]
    assert len(log) == 2 and {request["model"] for request in log} == {"grader"}
    assert log[0]["messages"][0]["role"] == "system" and log[0]["temperature"] == 0.0


def test_score_reports_bad_input_clearly(tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"input_query": "q"}\nnot json\n')
    done = _run("score", "--rows", str(rows), "--scoring-fn", "judge::subset_of", "--stack-config", "x.yaml")
    assert done.returncode == 2 and f"{rows}:2: invalid JSON" in done.stderr
    rows.write_text('{"input_query": "q"}\n')
    done = _run(
        "score",
        "--rows",
        str(rows),
        "--scoring-fn",
        "judge::subset_of",
        "--stack-config",
        str(run_config_file(tmp_path / "state")),
    )
    assert done.returncode == 2 and "row 0: missing column 'expected_answer'" in done.stderr


def test_stack_config_prints_a_run_config_that_serves(tmp_path: Path) -> None:
    done = _run(
        "stack-config",
        str(REPO / "provider_configs" / "scripted.yaml"),
        "--provider-id",
        "judge",
        "--state-dir",
        str(tmp_path),
    )
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(done.stdout)
    assert config["providers"]["scoring"][0]["module"] == "llama_stack_judge"
    assert config["storage"]["backends"]["kv_default"]["db_path"] == f"{tmp_path}/kvstore.db"


def _one_line_error(done: subprocess.CompletedProcess[str], code: int, *fragments: str) -> None:
    """The command failed with ``code`` and said why in one line that names every fragment, with no traceback."""
    assert done.returncode == code, (done.returncode, done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.startswith("llama-stack-judge: error:")]
    assert len(lines) == 1 and all(fragment in lines[0] for fragment in fragments), done.stderr
    assert "Traceback" not in done.stderr


def test_output_paths_are_checked_before_any_judge_call(tmp_path: Path) -> None:
    answers = tmp_path / "m.jsonl"
    answers.write_text(json.dumps({"question_id": 81, "choices": [{"turns": ["an answer"]}]}) + "\n")
    a_file = tmp_path / "taken.txt"
    a_file.write_text("not a folder")
    with fake_openai("judge", lambda messages: "Rating: [[5]]") as server:
        judge = ("--inference-url", server.url, "--judge-model", "judge", "--state-dir", str(tmp_path / "state"))
        rows = ("--rows", str(_rows_file(tmp_path)), "--scoring-fn", "judge::helpfulness-v1")
        _one_line_error(_run("score", *rows, *judge, "--output", str(tmp_path)), 2, f"--output {tmp_path}", "folder")
        _one_line_error(_run("score", *rows, *judge, "--output", str(a_file / "out.jsonl")), 2, f"{a_file} is a file")
        single = ("mt-bench", "single", "--answers", str(answers), "--turns", "1", *judge)
        _one_line_error(_run(*single, "--output", str(a_file)), 2, f"--output {a_file}: is a file")
        state = ("--state-dir", str(a_file))
        _one_line_error(_run("score", *rows, *judge[:4], *state), 2, f"--state-dir {a_file}: is a file")
        assert server.log == []  # nothing was judged, so nothing was paid for


def test_an_answer_file_with_two_answers_to_one_question_is_refused(tmp_path: Path) -> None:
    answers = tmp_path / "m.jsonl"
    answers.write_text(
        "".join(json.dumps({"question_id": 81, "choices": [{"turns": [text]}]}) + "\n" for text in ("one", "two"))
    )
    done = _run("mt-bench", "single", "--answers", str(answers), "--stack-config", "unused.yaml")
    _one_line_error(done, 2, f"{answers}:2: question_id 81 again (first at line 1)")


def test_commands_that_call_a_server_that_is_not_there_say_so_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    done = _run("jobs", "status", "some-job", "--benchmark-id", "b", "--url", url)
    _one_line_error(done, 1, f"cannot reach the stack at {url}")


def test_judge_options_on_the_command_line_reach_the_judge_or_are_refused_first(tmp_path: Path) -> None:
    rows = str(_rows_file(tmp_path))
    common = ["score", "--rows", rows, "--scoring-fn", "judge::helpfulness-v1", "--state-dir", str(tmp_path / "s")]
    with fake_openai("judge", lambda messages: "[[7]] Clear and correct.") as server:
        options = '{"verdict_first": true, "max_tokens": 16}'
        done = _run(*common, "--inference-url", server.url, "--judge-model", "judge", "--judge-options", options,
                    "--output", str(tmp_path / "out.jsonl"))  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert {request["max_tokens"] for request in server.log} == {16}
        assert all(request["messages"][-1]["content"].endswith("then your explanation.") for request in server.log)
        assert {r["results"]["judge::helpfulness-v1"]["score"] for r in _results(tmp_path / "out.jsonl")} == {7.0}
        calls = len(server.log)
        refused = _run(*common, "--inference-url", server.url, "--judge-model", "judge",
                       "--judge-options", '{"verdict_frist": true}')  # fmt: skip
        assert refused.returncode == 2 and "verdict_frist" in refused.stderr and "Traceback" not in refused.stderr
        assert len(server.log) == calls  # refused before any judge call


def test_a_repeated_judge_model_is_a_panel(tmp_path: Path) -> None:
    output = tmp_path / "out.jsonl"
    with fake_openai(["lenient", "strict"], lambda messages: "Rating: [[6]]") as server:
        done = _run(
            "score",
            "--rows",
            str(_rows_file(tmp_path)),
            *BOTH_FUNCTIONS,
            "--inference-url",
            server.url,
            "--judge-model",
            "lenient",
            "--judge-model",
            "strict",
            "--judge-options",
            '{"panel_combine": "median"}',
            "--state-dir",
            str(tmp_path / "state"),
            "--output",
            str(output),
        )
        asked = sorted(request["model"] for request in server.log)
    assert done.returncode == 0, done.stderr
    assert asked == ["lenient", "lenient", "strict", "strict"]  # both members judged both rows
    results = _results(output)
    panel = results[0]["results"]["judge::helpfulness-v1"]["panel"]
    assert [(member["judge_model"], member["score"]) for member in panel] == [
        ("endpoint/lenient", 6),
        ("endpoint/strict", 6),
    ]
    assert [r["results"]["judge::subset_of"]["score"] for r in results] == [1.0, 0.0]  # not a judge: no panel
