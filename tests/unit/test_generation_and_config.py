import json
from pathlib import Path

import pytest

from llama_stack_judge.core.builtin import builtin_scorers
from llama_stack_judge.core.generation import conversations, generation_columns
from llama_stack_judge.errors import JudgeInputError
from llama_stack_judge.stack_config import build_run_config, load_provider_config, select_provider

REPO = Path(__file__).resolve().parents[2]


def test_chat_rows_keep_every_role_after_the_candidate_system_message() -> None:
    chat = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "again"},
    ]
    (conversation,) = conversations([{"chat_completion_input": json.dumps(chat)}], system_message="candidate rules")
    assert conversation.turns == 1
    assert [(m.role, m.content) for m in conversation.opening] == [("system", "candidate rules")] + [
        (m["role"], m["content"]) for m in chat
    ]


def test_query_rows_and_bad_rows() -> None:
    (conversation,) = conversations([{"input_query": "q?"}], system_message=None)
    assert [(m.role, m.content) for m in conversation.opening] == [("user", "q?")]
    with pytest.raises(JudgeInputError, match="row 1: needs a 'turns', 'chat_completion_input'"):
        conversations([{"input_query": "q"}, {"question": "q"}], system_message=None)
    with pytest.raises(JudgeInputError, match="row 0: column 'chat_completion_input' is not valid JSON"):
        conversations([{"chat_completion_input": "[{"}], system_message=None)


def test_multi_turn_rows_are_asked_with_earlier_answers() -> None:
    (conversation,) = conversations([{"turns": ["first?", "second?", "third?"]}], system_message="rules")
    assert conversation.turns == 3
    assert [(m.role, m.content) for m in conversation.with_answers([])] == [("system", "rules"), ("user", "first?")]
    assert [(m.role, m.content) for m in conversation.with_answers(["a1", "a2"])] == [
        ("system", "rules"),
        ("user", "first?"),
        ("assistant", "a1"),
        ("user", "second?"),
        ("assistant", "a2"),
        ("user", "third?"),
    ]
    assert generation_columns(["a1", "a2"]) == {"generated_answer": "a2", "generated_turns": ["a1", "a2"]}
    assert generation_columns(["only"]) == {"generated_answer": "only"}
    with pytest.raises(JudgeInputError, match="row 0: column 'turns' must be a non-empty list"):
        conversations([{"turns": []}], system_message=None)


def test_subset_of() -> None:
    (subset,) = builtin_scorers("p")
    scores = subset.score_rows(
        [
            {"expected_answer": "Paris", "generated_answer": "It is Paris."},
            {"expected_answer": "4", "generated_answer": "5"},
        ]
    )
    assert [r.score for r in scores] == [1.0, 0.0]


def test_provider_config_selection_and_run_config() -> None:
    providers = load_provider_config(REPO / "provider_configs" / "scripted.yaml")
    config = build_run_config(select_provider(providers, "judge"), state_dir="/tmp/x")
    assert [p["provider_id"] for p in config["providers"]["scoring"]] == ["judge"]
    assert config["providers"]["datasetio"][0]["provider_type"] == "inline::localfs"
    assert config["storage"]["backends"]["kv_default"]["db_path"] == "/tmp/x/kvstore.db"
    with pytest.raises(JudgeInputError, match="'nope' is not in the provider config"):
        select_provider(providers, "nope")


def test_generated_run_config_is_a_valid_stack_config() -> None:
    from llama_stack.core.datatypes import StackConfig

    providers = load_provider_config(REPO / "provider_configs" / "scripted.yaml")
    StackConfig(**build_run_config(providers, state_dir="/tmp/x"))


def test_a_run_config_with_our_eval_provider_registers_the_shipped_benchmarks() -> None:
    """MT-bench's dataset and benchmark come from its entry point, for the eval provider of the config; none without."""
    providers = load_provider_config(REPO / "provider_configs" / "scripted.yaml")
    resources = build_run_config(providers, state_dir="/tmp/x")["registered_resources"]
    (dataset,) = resources["datasets"]
    (benchmark,) = resources["benchmarks"]
    assert dataset["dataset_id"] == "mt-bench-questions" and len(dataset["source"]["rows"]) == 80
    eval_id = providers["eval"][0]["provider_id"]
    assert benchmark["benchmark_id"] == "mt-bench" and benchmark["provider_id"] == eval_id
    assert benchmark["metadata"]["mt_bench_questions"] is True  # its rows are filled in by the row expander
    without_eval = {api: entries for api, entries in providers.items() if api != "eval"}
    assert "registered_resources" not in build_run_config(without_eval, state_dir="/tmp/x")


def test_transient_inference_errors_are_told_apart() -> None:
    import httpx

    from llama_stack_judge.stack.inference_api import is_transient

    class StatusError(Exception):
        def __init__(self, status_code: int) -> None:
            self.status_code = status_code

    assert [is_transient(StatusError(code)) for code in (500, 503, 429, 408, 400, 404)] == [
        *(True, True, True, True),
        *(False, False),
    ]
    assert is_transient(httpx.ConnectError("refused")) and is_transient(TimeoutError())
    assert not is_transient(ValueError("model not found"))
