"""What produced a run, kept with its results: a report that does not say cannot be trusted or reproduced."""

import hashlib
import platform
import shlex
import sys
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

_PACKAGES = ("llama-stack-judge", "llama-stack", "llama-stack-client")


def file_record(path: str | Path) -> dict[str, str]:
    """A file by path and sha256 of its bytes."""
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return {"path": str(path), "sha256": digest}


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    """The versions of this package, the stack, its client and Python."""
    return {package: _version(package) for package in _PACKAGES} | {"python": platform.python_version()}


def run_metadata(
    *, judge_source: str, function_id: str, judges: dict[str, Any], inputs: dict[str, Any]
) -> dict[str, Any]:
    """The command line, date, versions, judge (model, definition hashes, verdict mode, sampling) and ``inputs``.

    ``inputs``: what was judged, e.g. the selection made and each input file by path and sha256.
    """
    return {
        "command": shlex.join(["llama-stack-judge", *sys.argv[1:]]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": versions(),
        "judge_source": judge_source,
        "scoring_function": function_id,
        "judges": judges,
        **inputs,
    }
