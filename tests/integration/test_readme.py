"""The docs' configs and code, run as written: the README's run.yaml served, every Python block against it.

Only what points outside this machine is replaced: the inference endpoint (a fake OpenAI-compatible judge), the
state folder, and the port.
"""

import contextlib
import io
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from llama_stack.core.datatypes import StackConfig

from llama_stack_judge.core.definitions import validate_definition
from tests.fake_openai import fake_openai
from tests.stacks import REPO, reset_model_listing, start_server, stop_server

pytestmark = [pytest.mark.integration, pytest.mark.served]

# The README, then the reference pages in reading order: their Python blocks continue the README's session.
PAGES = [
    REPO / "README.md",
    *(REPO / "docs" / name for name in ("usage.md", "eval-jobs.md", "mt-bench.md", "judge-cards.md")),
]
OTHER_PAGES = sorted(set((REPO / "docs").glob("*.md")) - set(PAGES))
BLOCKS = [
    block
    for page in [*PAGES, *OTHER_PAGES]
    for block in re.findall(r"^```(\w+)\n(.*?)^```", page.read_text(encoding="utf-8"), flags=re.S | re.M)
]
DOCUMENTED_ENDPOINT = "http://127.0.0.1:8000/v1"
DOCUMENTED_STATE = "/var/lib/judge-demo"
DOCUMENTED_STACK = "http://127.0.0.1:8321"
MODELS = ["Qwen2.5-7B-Instruct", "Qwen2.5-1.5B-Instruct", "my-model"]


def _blocks(language: str) -> list[str]:
    return [text for kind, text in BLOCKS if kind == language]


def _run_yaml() -> str:
    (full,) = [text for text in _blocks("yaml") if text.startswith("version: 2")]
    return full


def _judge(messages: list[dict[str, Any]]) -> str:
    """Any judge's or candidate's reply: pairwise prompts get a verdict for A, everything else a rating of 9."""
    text = "\n".join(message["content"] for message in messages)
    return "Assistant A is better. [[A]]" if "[[A]]" in text and "[[B]]" in text else "Rating: [[9]]"


def test_every_json_definition_in_the_readme_is_valid() -> None:
    definitions = _blocks("json")
    assert definitions
    for text in definitions:
        validate_definition({**json.loads(text), "identifier": "readme::example"}, source="README")


def test_every_run_config_fragment_fits_the_documented_run_yaml() -> None:
    full = yaml.safe_load(_run_yaml())
    StackConfig(**full)
    fragments = [yaml.safe_load(text) for text in _blocks("yaml") if not text.startswith("version: 2")]
    assert fragments
    for fragment in fragments:  # each one laid over the full config still validates as llama-stack reads it
        merged = json.loads(json.dumps(full))
        for key, value in fragment.get("storage", {}).get("backends", {}).items():
            merged["storage"]["backends"][key] = value
        for api, entries in fragment.get("providers", {}).items():
            for entry in entries:
                (target,) = [e for e in merged["providers"][api] if e["provider_id"] == entry["provider_id"]]
                target["config"] |= entry.get("config", {})
        StackConfig(**merged)


def test_the_readme_run_yaml_serves_and_its_python_blocks_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with fake_openai(MODELS, _judge) as judge:
        served = tmp_path / "served"
        served.mkdir()
        run_yaml = served / "run.yaml"
        config = _run_yaml().replace(DOCUMENTED_ENDPOINT, judge.url).replace(DOCUMENTED_STATE, str(served))
        run_yaml.write_text(config)
        process, client = start_server(run_yaml)
        try:
            base_url = str(client.base_url).rstrip("/")
            # The library-client block opens "run.yaml" in the working folder: its own copy, with its own state.
            in_process = tmp_path / "in-process"
            in_process.mkdir()
            (in_process / "run.yaml").write_text(config.replace(str(served), str(in_process)))
            monkeypatch.chdir(in_process)
            reset_model_listing()
            namespace: dict[str, Any] = {}
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                for text in _blocks("python"):
                    exec(compile(text.replace(DOCUMENTED_STACK, base_url), "README.md", "exec"), namespace)
        finally:
            stop_server(process)
    assert namespace["evaluated"].scores["judge::helpfulness-v1"].aggregated_results["average"]["average"] == 9.0
    assert set(
        namespace["result"].results["judge::helpfulness-v1"].aggregated_results["average"]["by_group"]["category"]
    ) == {
        "general",
        "math",
    }
    assert "9.0 scored 9 stop" in printed.getvalue()
    card = namespace["card"]  # a judge that rates every answer 9: no correlation, every derived vote a tie
    assert card["n_judgments"] == 14 and card["reference"]["spearman"]["value"] is None and card["card_id"]
    asked = {request["model"] for request in judge.log}
    assert asked == set(MODELS)  # the small judge sits on the panel of docs/usage.md
    assert namespace["panel_report"]["members"] == ["vllm/Qwen2.5-7B-Instruct", "vllm/Qwen2.5-1.5B-Instruct"]
    assert os.listdir(served)  # the state went where the run.yaml says
