"""The embedded judge through the stack: a managed llama.cpp server with the small SmolLM2 model.

SmolLM2-135M is a weak judge (its free-text replies rarely hold a parseable verdict); it is here to run the whole
path fast: server lifecycle, llama-stack's remote::llama-cpp-server provider, and the grammar that forces a verdict.
"""

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from llama_stack_judge.embedded import EMBEDDED_JUDGE_OPTIONS, embedded_providers, embedded_server
from llama_stack_judge.embedded.models import SMOLLM2_135M
from llama_stack_judge.stack_config import build_run_config, write_run_config
from tests.embedded_marks import needs_llama_server, needs_smollm2
from tests.stacks import DETAILS, INTERRUPTIBLE, library_client

pytestmark = [pytest.mark.integration, needs_llama_server, needs_smollm2]
CLI = str(Path(sys.executable).parent / "llama-stack-judge")
ROWS = [
    {"input_query": "What is the capital of France?", "generated_answer": "The capital of France is Paris."},
    {"input_query": "What is 2+2?", "generated_answer": "2+2 is 5."},
]
FUNCTION = "judge::helpfulness-v1"


def _servers_running() -> list[str]:
    found = subprocess.run(["pgrep", "-af", "llama-server"], capture_output=True, text=True).stdout
    return [line for line in found.splitlines() if SMOLLM2_135M.file_name in line]


def test_two_rows_judged_through_the_stack_with_the_default_expected_verdict_first(tmp_path: Path) -> None:
    """The embedded default: the grammar opens the reply with the verdict, a short explanation follows; the server's
    log probabilities, through llama-stack's remote::llama-cpp-server provider, weight the verdict."""
    with embedded_server(SMOLLM2_135M.name, log_path=tmp_path / "server.log") as server:
        providers = embedded_providers(server.base_url, SMOLLM2_135M.name)
        run_yaml = write_run_config(build_run_config(providers, state_dir=str(tmp_path)), tmp_path / "run.yaml")
        with library_client(run_yaml) as client:
            assert f"embedded/{SMOLLM2_135M.name}" in [m.id for m in client.models.list()]
            result = client.scoring.score(
                input_rows=ROWS, scoring_functions={FUNCTION: None}, extra_headers=DETAILS
            ).results[FUNCTION]
    assert not server.running
    assert [row["status"] for row in result.score_rows] == ["scored", "scored"], result.score_rows
    for row in result.score_rows:
        assert row["judge_feedback"].startswith(f"[[{row['verdict']}]]")
        distribution = row["verdict_distribution"]
        assert 0 < distribution["mass"] <= 1.0001 and abs(sum(distribution["probabilities"].values()) - 1) < 1e-3
        assert 1 <= row["score"] <= 10
    usage = result.aggregated_results["usage"]
    assert usage["inference_calls"] == 2 and 0 < usage["completion_tokens"] <= 2 * EMBEDDED_JUDGE_OPTIONS["max_tokens"]
    assert usage["expected_verdict_fallbacks"] == 0


def test_the_cli_judges_with_the_embedded_model_and_leaves_no_server(tmp_path: Path) -> None:
    rows, output = tmp_path / "rows.jsonl", tmp_path / "scores.jsonl"
    rows.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    before = _servers_running()
    done = subprocess.run(
        [CLI, "score", "--rows", str(rows), "--scoring-fn", FUNCTION, "--output", str(output),
         "--embedded-model", SMOLLM2_135M.name, "--state-dir", str(tmp_path / "state")],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"embedded judge: {SMOLLM2_135M.name} at http://127.0.0.1:" in done.stderr
    results = [json.loads(line)["results"][FUNCTION] for line in output.read_text().splitlines()]
    assert [r["status"] for r in results] == ["scored", "scored"]
    assert _servers_running() == before


def test_serve_judge_runs_until_interrupted_and_prints_a_working_provider(tmp_path: Path) -> None:
    before = _servers_running()
    errors = tmp_path / "stderr.txt"  # a file, not a pipe nobody reads: a full pipe would block the command's exit
    server = subprocess.Popen(
        [CLI, "serve-judge", "--model", SMOLLM2_135M.name],
        stdout=subprocess.PIPE,
        stderr=errors.open("w"),
        text=True,
        **INTERRUPTIBLE,
    )
    try:
        assert server.stdout is not None
        printed = list(iter(server.stdout.readline, "# serving until Ctrl-C\n"))
        url = re.search(r"at (http://127\.0\.0\.1:\d+/v1)", printed[0])
        assert url, printed
        provider = yaml.safe_load("".join(printed[1:]))["providers"]["inference"][0]
        assert provider["provider_type"] == "remote::llama-cpp-server"
        assert provider["config"]["base_url"] == url.group(1)
        models = httpx.get(f"{url.group(1)}/models", timeout=10).json()
        assert [m["id"] for m in models["data"]] == [SMOLLM2_135M.name]
    finally:
        server.send_signal(signal.SIGINT)
        try:
            assert server.wait(30) == 0, errors.read_text()[-3000:]
        except subprocess.TimeoutExpired:
            server.kill()
            raise AssertionError(
                f"serve-judge did not stop on Ctrl-C; its stderr: {errors.read_text()[-3000:]}"
            ) from None
    assert _servers_running() == before


def test_a_calls_options_override_the_embedded_defaults(tmp_path: Path) -> None:
    """Sampled verdicts in the grammar's JSON object, asked for per call over the provider's expected default."""
    from llama_stack_judge.core.options import JudgeOptions

    options = JudgeOptions(
        details=True, verdict_weighting="sampled", structured_output=True, verdict_first=False, max_tokens=1024
    )
    with embedded_server(SMOLLM2_135M.name, log_path=tmp_path / "server.log") as server:
        providers = embedded_providers(server.base_url, SMOLLM2_135M.name)
        run_yaml = write_run_config(build_run_config(providers, state_dir=str(tmp_path)), tmp_path / "run.yaml")
        with library_client(run_yaml) as client:
            result = client.scoring.score(
                input_rows=ROWS, scoring_functions={FUNCTION: None}, extra_headers=options.headers()
            ).results[FUNCTION]
    assert [row["status"] for row in result.score_rows] == ["scored", "scored"], result.score_rows
    for row in result.score_rows:
        reply = json.loads(row["judge_feedback"], strict=False)
        assert set(reply) == {"explanation", "verdict"} and reply["verdict"] == row["score"]
        assert "verdict_distribution" not in row
