"""State across restarts: registered judges survive, shipped definitions have an upgrade path."""

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.stacks import (
    DETAILS,
    Backends,
    bad_request,
    library_client,
    register_judge,
    run_config_file,
    selected_providers,
    stack_client,
    start_server,
)

pytestmark = pytest.mark.integration

ROW = {"input_query": "What is the capital of France?", "generated_answer": "Paris"}
JUDGE = {
    "description": "a team judge",
    "prompt_template": "Answer: {generated_answer}",
    "verdict": {"type": "rating", "min": 1, "max": 10},
}


def _with_definition_dir(directory: Path) -> dict[str, list[dict[str, Any]]]:
    providers = copy.deepcopy(selected_providers())
    providers["scoring"][0]["config"]["definition_dirs"] = [str(directory)]
    return providers


def test_registered_judge_survives_restart(mode: str, state_dir: Path, storage: Backends) -> None:
    run_yaml = run_config_file(state_dir, backends=storage)
    params = {"type": "llm_as_judge", "judge_model": "scripted/judge", "prompt_template": "Answer: {generated_answer}"}
    # And a panel of definitions with it as a member: the stack hands neither back, both are rebuilt on use.
    panel = {"type": "llm_as_judge", "judge_model": "team::kept, team::kept@scripted/candidate"}
    with stack_client(mode, run_yaml) as client:
        register_judge(client, "team::kept", params, description="kept")
        register_judge(client, "team::panel", panel, description="a panel of definitions")
    with stack_client(mode, run_yaml) as client:
        assert client.scoring_functions.retrieve("team::kept").params.prompt_template == params["prompt_template"]
        judged = client.scoring.score(
            input_rows=[ROW], scoring_functions={"team::kept": None, "team::panel": None}
        ).results
        assert judged["team::kept"].score_rows[0]["score"] == 9.0
        members = judged["team::panel"].score_rows[0]["panel"]
        assert [(m["judge_model"], m["score"]) for m in members] == [
            ("team::kept@scripted/judge", 9),
            ("team::kept@scripted/candidate", 9),
        ]
        client.scoring_functions.unregister("team::panel")
        client.scoring_functions.unregister("team::kept")
    with stack_client(mode, run_yaml) as client:
        assert "team::kept" not in {fn.identifier for fn in client.scoring_functions.list()}


def test_judgments_are_cached_across_restarts(mode: str, state_dir: Path, storage: Backends) -> None:
    run_yaml = run_config_file(state_dir, backends=storage)
    rows = [ROW, {"input_query": "q", "generated_answer": "2+2 is 5"}]
    functions = {"judge::helpfulness-v1": None}
    with stack_client(mode, run_yaml) as client:
        first = client.scoring.score(input_rows=rows[:1], scoring_functions=functions, extra_headers=DETAILS).results
    with stack_client(mode, run_yaml) as client:
        again = client.scoring.score(input_rows=rows, scoring_functions=functions, extra_headers=DETAILS).results[
            "judge::helpfulness-v1"
        ]
    assert first["judge::helpfulness-v1"].aggregated_results["usage"]["inference_calls"] == 1
    assert again.aggregated_results["usage"]["cache_hits"] == 1
    assert again.aggregated_results["usage"]["inference_calls"] == 1  # only the row judged for the first time
    assert [row["score"] for row in again.score_rows] == [9.0, 2.0]


def test_versioned_definition_upgrade(mode: str, state_dir: Path, tmp_path: Path) -> None:
    definitions = tmp_path / "defs"
    definitions.mkdir()
    (definitions / "team-v1.json").write_text(json.dumps(JUDGE))
    run_yaml = run_config_file(state_dir, _with_definition_dir(definitions))
    with stack_client(mode, run_yaml) as client:
        assert client.scoring.score(input_rows=[ROW], scoring_functions={"judge::team-v1": None}).results

    # The upgrade: a changed definition ships under a new version; the old id is retired, not silently changed.
    (definitions / "team-v1.json").unlink()
    (definitions / "team-v2.json").write_text(
        json.dumps({**JUDGE, "prompt_template": "Second version. Answer: {generated_answer}"})
    )
    with stack_client(mode, run_yaml) as client:
        ids = {fn.identifier for fn in client.scoring_functions.list()}
        assert {"judge::team-v1", "judge::team-v2"} <= ids
        judged = client.scoring.score(input_rows=[ROW], scoring_functions={"judge::team-v2": None})
        assert judged.results["judge::team-v2"].score_rows[0]["score"] == 9.0
        with bad_request("judge::team-v1", "retired"):
            client.scoring.score(input_rows=[ROW], scoring_functions={"judge::team-v1": None})
        client.scoring_functions.unregister("judge::team-v1")
        assert "judge::team-v1" not in {fn.identifier for fn in client.scoring_functions.list()}


def test_changing_a_shipped_definition_in_place_is_refused(state_dir: Path, tmp_path: Path) -> None:
    definitions = tmp_path / "defs"
    definitions.mkdir()
    (definitions / "team-v1.json").write_text(json.dumps(JUDGE))
    run_yaml = run_config_file(state_dir, _with_definition_dir(definitions))
    with library_client(run_yaml):
        pass
    (definitions / "team-v1.json").write_text(json.dumps({**JUDGE, "prompt_template": "Changed: {generated_answer}"}))
    with pytest.raises(ValueError, match="conflicting field values"), library_client(run_yaml):
        pass


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{not json", "invalid JSON at line 1"),
        (json.dumps({"description": "no template"}), "prompt_template: Field required"),
        (json.dumps({**JUDGE, "verdict": {"type": "rating", "patterns": ["[[x]]"]}}), "exactly one capture group"),
        (json.dumps({**JUDGE, "aggregation_functions": ["mode"]}), "aggregation_functions"),
        (json.dumps({**JUDGE, "inputs": ["question"]}), "unknown placeholders ['generated_answer']"),
    ],
)
def test_invalid_definition_file_stops_startup_naming_the_file(
    state_dir: Path, tmp_path: Path, content: str, fragment: str
) -> None:
    definitions = tmp_path / "defs"
    definitions.mkdir()
    (definitions / "broken-v1.json").write_text(content)
    run_yaml = run_config_file(state_dir, _with_definition_dir(definitions))
    with pytest.raises(ValueError, match=r"broken-v1\.json") as error, library_client(run_yaml):
        pass
    assert fragment in str(error.value)


def test_served_stack_refuses_to_start_on_a_bad_definition_or_a_symlink(state_dir: Path, tmp_path: Path) -> None:
    definitions = tmp_path / "defs"
    definitions.mkdir()
    (definitions / "broken-v1.json").write_text(json.dumps({**JUDGE, "prompt_template": "{row.__globals__}"}))
    with pytest.raises(RuntimeError, match="llama stack run exited") as error:
        start_server(run_config_file(state_dir, _with_definition_dir(definitions)))
    assert "broken-v1.json" in str(error.value) and "{row.__globals__}" in str(error.value)
    (definitions / "broken-v1.json").unlink()
    outside = tmp_path / "secret.json"
    outside.write_text(json.dumps(JUDGE))
    (definitions / "linked-v1.json").symlink_to(outside)
    with pytest.raises(RuntimeError, match="llama stack run exited") as error:
        start_server(run_config_file(tmp_path / "state2", _with_definition_dir(definitions)))
    assert "linked-v1.json: symlinks and files outside" in str(error.value)


def test_scripted_reply_function(state_dir: Path) -> None:
    providers = copy.deepcopy(selected_providers())
    providers["inference"][0]["config"]["reply_fn"] = "tests.scripted_replies:rate_by_length"
    rows = [{"input_query": "q", "generated_answer": "short"}, {"input_query": "q", "generated_answer": "x" * 200}]
    with library_client(run_config_file(state_dir, providers)) as client:
        judged = client.scoring.score(input_rows=rows, scoring_functions={"judge::helpfulness-v1": None})
    scores = [row["score"] for row in judged.results["judge::helpfulness-v1"].score_rows]
    prompt_lengths = [len(_prompt(row)) for row in rows]
    assert scores == [float(min(10, 1 + n // 40)) for n in prompt_lengths] and scores[0] < scores[1]


def _prompt(row: dict[str, str]) -> str:
    from llama_stack_judge.core.definitions import load_definitions
    from tests.stacks import REPO

    (definition,) = [
        d
        for d in load_definitions(REPO / "llama_stack_judge" / "fn_defs", prefix="judge")
        if d.identifier == "judge::helpfulness-v1"
    ]
    return definition.templates[-1].render(row)
