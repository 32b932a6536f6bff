"""What produced a run, kept with its results: a report that does not say cannot be trusted or reproduced."""

import argparse
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


def _judge_source(args: argparse.Namespace) -> str:
    if args.stack_config:
        return f"stack config {args.stack_config}"
    if args.provider_config:
        return f"provider config {args.provider_config}"
    if args.inference_url:
        return f"OpenAI-compatible endpoint {args.inference_url}"
    return f"embedded judge {args.embedded_model}"


def run_metadata(args: argparse.Namespace, *, function_id: str, judges: dict[str, Any]) -> dict[str, Any]:
    """The command line, date, versions, judge (model, definition hashes, verdict mode, sampling) and input files."""
    return {
        "command": shlex.join(["llama-stack-judge", *sys.argv[1:]]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": versions(),
        "judge_source": _judge_source(args),
        "scoring_function": function_id,
        "judges": judges,
        "selection": {
            "question_ids": args.question_ids,
            "categories": args.categories,
            "turns": list(args.turns),
            "limit": args.limit,
            "use_cache": not args.no_cache,
        },
        "files": {
            "answers": [file_record(path) for path in args.answers],
            "questions": file_record(args.questions),
            "references": file_record(args.references),
        },
    }
