"""What a new user meets: errors that keep the connection, refusals that hold, a judge that is not there."""

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from llama_stack_judge.core.options import PROVIDER_DATA_HEADER
from tests.fake_openai import fake_openai
from tests.integration.test_cli import _one_line_error, _rows_file, _run
from tests.stacks import REPO, bad_request, run_config_file, start_server, stop_server

pytestmark = pytest.mark.integration
ROW = {"input_query": "What is the capital of France?", "generated_answer": "Paris", "expected_answer": "Paris"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Path]]:
    """A served stack (scripted judge) and its log."""
    state = tmp_path_factory.mktemp("first-contact")
    log = state / "server.log"
    process, client = start_server(run_config_file(state), log=log)
    try:
        yield client.with_options(max_retries=0), log
    finally:
        stop_server(process)


def test_a_refused_call_keeps_the_connection_and_logs_one_line(served: tuple[Any, Path]) -> None:
    client, log = served
    before = log.read_text()
    for _ in range(3):
        with bad_request("row 0: missing column 'generated_answer'"):
            client.scoring.score(input_rows=[{"input_query": "q"}], scoring_functions={"judge::helpfulness-v1": None})
        started = time.monotonic()  # the next call on the same client: no reconnect, no retry
        assert client.scoring.score(input_rows=[ROW], scoring_functions={"judge::subset_of": None}).results
        assert time.monotonic() - started < 1.0
    added = log.read_text()[len(before) :]
    assert added.count('"event": "Request refused"') == 3
    assert "Traceback" not in added and "Exception in ASGI application" not in added


def test_a_shipped_function_refuses_to_be_unregistered_and_stays_usable(served: tuple[Any, Path]) -> None:
    client, _ = served
    with bad_request("judge::helpfulness-v1 is shipped with the provider and cannot be removed"):
        client.scoring_functions.unregister("judge::helpfulness-v1")
    assert "judge::helpfulness-v1" in {fn.identifier for fn in client.scoring_functions.list()}
    result = client.scoring.score(input_rows=[ROW], scoring_functions={"judge::helpfulness-v1": None})
    assert result.results["judge::helpfulness-v1"].score_rows[0]["score"] == 9.0


def test_a_misspelled_provider_data_key_is_refused(served: tuple[Any, Path]) -> None:
    client, _ = served
    for key in ("judge_option", "judgeoptions", "judge_opts"):
        with bad_request(f"unknown key '{key}'", "did you mean 'judge_options'"):
            client.scoring.score(
                input_rows=[ROW],
                scoring_functions={"judge::subset_of": None},
                extra_headers={PROVIDER_DATA_HEADER: f'{{"{key}": {{"use_cache": false}}}}'},
            )


def test_an_unreachable_judge_fails_fast_naming_the_url(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    rows = ("--rows", str(_rows_file(tmp_path)), "--scoring-fn", "judge::helpfulness-v1")
    started = time.monotonic()
    done = _run("score", *rows, "--inference-url", url, "--judge-model", "m", "--state-dir", str(tmp_path / "s"))
    _one_line_error(done, 1, f"cannot reach the judge at {url}")
    assert time.monotonic() - started < 30


def test_a_model_the_endpoint_does_not_serve_is_named_with_what_it_serves(tmp_path: Path) -> None:
    with fake_openai("grader", lambda messages: "[[5]]") as server:
        judge = ("--inference-url", server.url, "--state-dir", str(tmp_path / "s"))
        rows = ("--rows", str(_rows_file(tmp_path)), "--scoring-fn", "judge::helpfulness-v1")
        done = _run("score", *rows, *judge, "--judge-model", "gradr")
        _one_line_error(done, 2, f"--judge-model 'gradr' is not served at {server.url}; it serves ['grader']")
        assert server.log == []


def test_a_run_that_scores_no_row_exits_non_zero(tmp_path: Path) -> None:
    with fake_openai("grader", lambda messages: "I will not give a verdict.") as server:
        judge = ("--inference-url", server.url, "--judge-model", "grader", "--state-dir", str(tmp_path / "s"))
        rows = ("--rows", str(_rows_file(tmp_path)), "--scoring-fn", "judge::helpfulness-v1")
        done = _run("score", *rows, *judge)
        _one_line_error(done, 1, "judge::helpfulness-v1 scored no row", "no verdict found")
        assert "judge::helpfulness-v1" in done.stdout  # the table is still printed


def test_stack_config_refuses_a_misspelled_field_with_a_hint(tmp_path: Path) -> None:
    config = yaml.safe_load((REPO / "provider_configs" / "scripted.yaml").read_text())
    config["providers"]["scoring"][0]["config"]["max_concurency"] = 4
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(config))
    done = _run("stack-config", str(path))
    _one_line_error(done, 2, "provider judge: config.max_concurency", "did you mean 'max_concurrency'?")


def test_categories_that_match_nothing_list_the_categories(tmp_path: Path) -> None:
    done = _run("mt-bench", "single", "--categories", "maths", "--stack-config", "unused.yaml")
    _one_line_error(done, 2, "--categories: no question is in ['maths']", "'math'", "'writing'")
