"""Row expanders: a benchmark whose dataset rows are only keys names the hook that fills each row in.

A package offers a hook as an entry point in the ``llama_stack_judge.row_expanders`` group: a function from a page
of dataset rows to the full rows, raising ``JudgeInputError`` that names a row it cannot fill. A benchmark turns one
on with a metadata key of the hook's name set to true. This package's MT-bench benchmark does so
(``{"mt_bench_questions": true}``: rows hold question ids; see ``llama_stack_judge/mtbench/benchmark.py``).

Only installed entry points are looked up, so a benchmark's metadata cannot name arbitrary code to run.
"""

from collections.abc import Callable, Mapping, Sequence
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any, cast

from llama_stack_judge.errors import JudgeInputError

GROUP = "llama_stack_judge.row_expanders"
RowExpander = Callable[[Sequence[dict[str, Any]]], list[dict[str, Any]]]


@cache
def _installed() -> dict[str, EntryPoint]:
    return {point.name: point for point in entry_points(group=GROUP)}


def expander_named_in(metadata: Mapping[str, Any] | None, *, where: str) -> str | None:
    """The row expander a benchmark's metadata turns on, if any.

    Raises:
        JudgeInputError: when it turns on more than one, since their order would be a guess.
    """
    named = sorted(name for name in _installed() if (metadata or {}).get(name) is True)
    if len(named) > 1:
        raise JudgeInputError(f"{where}: metadata turns on more than one row expander: {named}; keep one")
    return named[0] if named else None


@cache
def row_expander(name: str) -> RowExpander:
    """The installed row expander ``name``.

    Raises:
        JudgeInputError: when no installed package offers it (e.g. a job stored by a stack with other packages).
    """
    point = _installed().get(name)
    if point is None:
        installed = sorted(_installed())
        raise JudgeInputError(f"no row expander {name!r} is installed (group {GROUP}); installed: {installed}")
    return cast(RowExpander, point.load())


def expanded(rows: Sequence[dict[str, Any]], expander: str | None) -> list[dict[str, Any]]:
    """``rows`` filled in by the named expander, or as they are when there is none."""
    return list(rows) if expander is None else row_expander(expander)(rows)
