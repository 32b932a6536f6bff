"""Reading JSONL files, with errors that name the file and line."""

import json
from pathlib import Path
from typing import Any

from llama_stack_judge.errors import JudgeInputError


def read_numbered(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """Each JSON object of a JSONL file with its line number; blank lines are skipped."""
    records = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise JudgeInputError(f"{path}: cannot read: {exc}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise JudgeInputError(f"{path}:{number}: invalid JSON: {exc.msg}") from None
        if not isinstance(record, dict):
            raise JudgeInputError(f"{path}:{number}: each line must be a JSON object")
        records.append((number, record))
    return records


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file."""
    return [record for _, record in read_numbered(path)]
