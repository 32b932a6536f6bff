import json
import os
import re
from pathlib import Path

import pytest

from llama_stack_judge.core.definitions import (
    JudgeDefinition,
    load_definition_file,
    load_definitions,
    validate_definition,
)
from llama_stack_judge.errors import JudgeDefinitionError

PACKAGE = Path(__file__).resolve().parents[2] / "llama_stack_judge"
SHIPPED_FILES = sorted([*(PACKAGE / "fn_defs").glob("*.json"), *(PACKAGE / "mtbench" / "judges").glob("*.json")])
BASE = {"identifier": "t::x", "prompt_template": "Q: {q}\nA: {a}"}


@pytest.mark.parametrize("path", SHIPPED_FILES, ids=lambda p: p.stem)
def test_every_shipped_definition_is_valid(path: Path) -> None:
    (definition,) = [d for d in load_definitions(path.parent, prefix="judge") if d.identifier == f"judge::{path.stem}"]
    assert definition.description
    assert definition.required_columns
    # Shipped ids carry a version: changing a definition means shipping a new id (see docs/usage.md).
    assert re.search(r"-v\d+(-|$)", path.stem), f"{path.stem} carries no version"


def test_definition_is_frozen_and_changes_make_copies() -> None:
    definition = validate_definition(BASE, source="test")
    changed = definition.with_changes(judge_model="m")
    assert definition.judge_model == "" and changed.judge_model == "m"
    with pytest.raises(Exception, match="frozen"):
        definition.judge_model = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"prompt_template": "{a.__class__}"}, "not allowed"),
        ({"inputs": ["q"]}, "unknown placeholders ['a']"),
        ({"verdict": {"type": "rating", "patterns": ["("]}}, "does not compile"),
        ({"verdict": {"type": "rating", "patterns": [r"(\d)(\d)"]}}, "exactly one capture group"),
        ({"verdict": {"type": "rating", "min": 10, "max": 1}}, "greater than max"),
        ({"verdict": {"type": "choice", "patterns": [r"(\w)"], "choices": {}}}, "choices"),
        ({"aggregation_functions": ["mode"]}, "aggregation_functions"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_invalid_definitions_name_the_field(changes: dict[str, object], fragment: str) -> None:
    with pytest.raises(JudgeDefinitionError) as error:
        validate_definition({**BASE, **changes}, source="my-file.json")
    assert "my-file.json" in str(error.value) and fragment in str(error.value)


def test_defaults_fill_missing_placeholders() -> None:
    definition = validate_definition({**BASE, "inputs": ["a"], "defaults": {"q": "default question"}}, source="t")
    assert definition.required_columns == ("a",)


def test_load_refuses_symlinks_and_names_bad_files(tmp_path: Path) -> None:
    good = {"prompt_template": "{a}"}
    (tmp_path / "ok-v1.json").write_text(json.dumps(good))
    assert [d.identifier for d in load_definitions(tmp_path, prefix="p")] == ["p::ok-v1"]
    outside = tmp_path.parent / f"{tmp_path.name}-outside.json"
    outside.write_text(json.dumps(good))
    os.symlink(outside, tmp_path / "link-v1.json")
    with pytest.raises(JudgeDefinitionError, match="symlinks"):
        load_definitions(tmp_path, prefix="p")
    (tmp_path / "link-v1.json").unlink()
    (tmp_path / "bad-v1.json").write_text("{")
    with pytest.raises(JudgeDefinitionError, match=r"bad-v1.json: invalid JSON at line 1"):
        load_definitions(tmp_path, prefix="p")


def test_identifier_comes_from_the_file_name(tmp_path: Path) -> None:
    (tmp_path / "x-v1.json").write_text(json.dumps({"identifier": "other", "prompt_template": "{a}"}))
    with pytest.raises(JudgeDefinitionError, match="comes from the file name"):
        load_definitions(tmp_path, prefix="p")


def test_json_round_trip() -> None:
    definition = validate_definition(BASE, source="t")
    assert JudgeDefinition.model_validate_json(definition.model_dump_json()) == definition


def test_advertised_metadata_holds_only_what_the_file_sets() -> None:
    """A field added to JudgeDefinition later, with a default, must not change a function stored by a stack."""
    from llama_stack_judge.names import PREFIX
    from llama_stack_judge.scoring.functions import to_scoring_fn

    path = Path(__file__).resolve().parents[2] / "llama_stack_judge" / "fn_defs" / "helpfulness-v1.json"
    definition = load_definition_file(path, prefix=PREFIX)
    advertised = to_scoring_fn(definition, "judge").metadata["definition"]
    assert set(advertised) == set(json.loads(path.read_text())) | {"identifier"}
    assert set(advertised["sampling"]) == {"temperature", "max_tokens"}
