"""Checking where the commands will write, before any judge call is made (and paid for)."""

import os
from pathlib import Path

from llama_stack_judge.errors import JudgeInputError

# Where the commands keep their in-process stack's stores and the judge cards certify files.
DEFAULT_CLI_STATE = Path.home() / ".llama" / "llama-stack-judge" / "cli"


def _writable_parent(path: Path, *, option: str) -> None:
    """The nearest existing folder above ``path`` must be a folder we may write in (the rest is created)."""
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise JudgeInputError(f"{option} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise JudgeInputError(f"{option} {path}: cannot write in {parent}")


def output_file(value: str, *, option: str = "--output") -> Path:
    """A file the command may create or replace; its folders are created.

    Raises:
        JudgeInputError: when it is a folder, or cannot be written.
    """
    path = Path(value)
    if path.is_dir():
        raise JudgeInputError(f"{option} {path}: is a folder; give a file name")
    if path.exists() and not os.access(path, os.W_OK):
        raise JudgeInputError(f"{option} {path}: the file cannot be written")
    _writable_parent(path, option=option)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def output_dir(value: str, *, option: str = "--output") -> Path:
    """A folder the command writes its files in; created if missing.

    Raises:
        JudgeInputError: when it is a file, or cannot be written.
    """
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise JudgeInputError(f"{option} {path}: is a file; give a folder")
    if path.is_dir() and not os.access(path, os.W_OK | os.X_OK):
        raise JudgeInputError(f"{option} {path}: cannot write in this folder")
    if not path.exists():
        _writable_parent(path, option=option)
    path.mkdir(parents=True, exist_ok=True)
    return path
