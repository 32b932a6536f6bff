"""The ``llama-stack-judge`` command: score JSONL files with any registered function, print run configs."""

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml
from llama_stack_client import APIStatusError

from llama_stack_judge import jobs_cli, mtbench_cli
from llama_stack_judge.core.jsonl import read_jsonl
from llama_stack_judge.errors import JudgeInputError
from llama_stack_judge.provider import SCORING_PROVIDER_TYPE
from llama_stack_judge.stack_config import (
    build_run_config,
    load_provider_config,
    select_provider,
    write_run_config,
)

ENDPOINT_PROVIDER_ID = "endpoint"
DEFAULT_CLI_STATE = Path.home() / ".llama" / "llama-stack-judge" / "cli"


def endpoint_providers(inference_url: str, judge_model: str, api_key: str) -> dict[str, list[dict[str, Any]]]:
    """Providers for judging with any OpenAI-compatible endpoint through the stack's remote::openai provider."""
    return {
        "inference": [
            {
                "provider_id": ENDPOINT_PROVIDER_ID,
                "provider_type": "remote::openai",
                "config": {"base_url": inference_url, "api_key": api_key},
            }
        ],
        "scoring": [
            {
                "provider_id": "judge",
                "provider_type": SCORING_PROVIDER_TYPE,
                "module": "llama_stack_judge",
                "config": {"default_judge_model": f"{ENDPOINT_PROVIDER_ID}/{judge_model}"},
            }
        ],
    }


@contextlib.contextmanager
def open_stack(args: argparse.Namespace) -> Iterator[Any]:
    """An in-process stack: the user's run config, or one built around ``--inference-url``."""
    from llama_stack.core.library_client import LlamaStackAsLibraryClient

    state = Path(args.state_dir)
    if args.stack_config:
        run_yaml = Path(args.stack_config)
    elif args.provider_config or (args.inference_url and args.judge_model):
        if args.provider_config:
            providers = load_provider_config(Path(args.provider_config))
        else:
            api_key = os.environ.get(args.api_key_env, "none")
            providers = endpoint_providers(args.inference_url, args.judge_model, api_key)
        state.mkdir(parents=True, exist_ok=True)
        run_yaml = write_run_config(build_run_config(providers, state_dir=str(state)), state / "run.yaml")
    else:
        raise JudgeInputError(
            "choose a judge: --stack-config run.yaml, --provider-config FILE, or --inference-url URL --judge-model NAME"
        )
    with contextlib.redirect_stdout(sys.stderr):  # the library client prints its whole config
        client = LlamaStackAsLibraryClient(str(run_yaml))
    with client:
        yield client


def print_aggregates(results: dict[str, Any]) -> None:
    """A table of each function's aggregates and outcome counts."""
    from rich.console import Console
    from rich.table import Table

    table = Table("scoring function", "aggregates", "scored", "parse errors", "inference errors")
    for identifier, result in results.items():
        aggregates = result.aggregated_results
        metrics = {k: v for k, v in aggregates.items() if not k.startswith("n_")}
        table.add_row(
            identifier,
            json.dumps(metrics),
            str(aggregates.get("n_scored", "")),
            str(aggregates.get("n_parse_error", "")),
            str(aggregates.get("n_inference_error", "")),
        )
    Console(width=None if sys.stdout.isatty() else 200).print(table)


def score_command(args: argparse.Namespace) -> int:
    """Score a JSONL file and write one line per row with every function's result."""
    rows = read_jsonl(Path(args.rows))
    with open_stack(args) as client:
        response = client.scoring.score(input_rows=rows, scoring_functions=dict.fromkeys(args.scoring_fn))
    if args.output:
        output = Path(args.output)
        output.parent.mkdir(parents=True, exist_ok=True)
        with output.open("w", encoding="utf-8") as out:
            for index, row in enumerate(rows):
                scored = {fn: result.score_rows[index] for fn, result in response.results.items()}
                out.write(json.dumps({"row": row, "results": scored}) + "\n")
    print_aggregates(response.results)
    return 0


def stack_config_command(args: argparse.Namespace) -> int:
    """Print the full run.yaml for a provider config."""
    providers = load_provider_config(Path(args.provider_config))
    if args.provider_id:
        providers = select_provider(providers, args.provider_id)
    kwargs = {"state_dir": args.state_dir} if args.state_dir else {}
    print(yaml.safe_dump(build_run_config(providers, port=args.port, **kwargs), sort_keys=False), end="")
    return 0


def add_judge_options(parser: argparse.ArgumentParser) -> None:
    """Options that choose the judge's stack."""
    group = parser.add_argument_group("judge")
    group.add_argument("--stack-config", help="run.yaml of a distribution that enables our providers")
    group.add_argument("--provider-config", help="a provider config (see provider_configs/) to build the stack from")
    group.add_argument("--inference-url", help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    group.add_argument("--judge-model", help="model name at --inference-url")
    group.add_argument("--api-key-env", default="OPENAI_API_KEY", help="env var holding the endpoint's key")
    group.add_argument("--state-dir", default=str(DEFAULT_CLI_STATE), help="where the in-process stack keeps state")


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog="llama-stack-judge", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    score = commands.add_parser("score", help="score a JSONL file with registered scoring functions")
    score.add_argument("--rows", required=True, help="JSONL file, one row per line")
    score.add_argument("--scoring-fn", action="append", required=True, help="scoring function id (repeatable)")
    score.add_argument("--output", help="JSONL file for per-row results")
    add_judge_options(score)
    score.set_defaults(run=score_command)

    stack = commands.add_parser("stack-config", help="print the run.yaml equivalent of a provider config")
    stack.add_argument("provider_config")
    stack.add_argument("--provider-id", help="keep only this provider for its API")
    stack.add_argument("--state-dir", help="directory of the sqlite stores (default: $JUDGE_STATE_DIR or ~/.llama)")
    stack.add_argument("--port", type=int, default=8321)
    stack.set_defaults(run=stack_config_command)

    mtbench_cli.add_parser(commands, add_judge_options)
    jobs_cli.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; input errors print one line and exit 2."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (JudgeInputError, ValueError, APIStatusError) as exc:
        print(f"llama-stack-judge: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
