"""The ``llama-stack-judge`` command: score JSONL files with any registered function, print run configs."""

import argparse
import contextlib
import json
import os
import shlex
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from llama_stack_client import APIConnectionError, APIStatusError

from llama_stack_judge.cli import certify, jobs, mt_bench
from llama_stack_judge.cli.judge_choice import JudgeChoice
from llama_stack_judge.cli.judging import INTERRUPTED
from llama_stack_judge.cli.stack import open_stack
from llama_stack_judge.core.jsonl import read_jsonl
from llama_stack_judge.embedded.models import DEFAULT_MODEL, MODELS
from llama_stack_judge.errors import JudgeError, JudgeInputError
from llama_stack_judge.outputs import output_file
from llama_stack_judge.stack_config import build_run_config, load_provider_config, select_provider


def serve_judge_command(args: argparse.Namespace) -> int:
    """Run the embedded judge's llama.cpp server until Ctrl-C, printing the inference provider that uses it."""
    from llama_stack_judge.embedded import embedded_providers, embedded_server

    with embedded_server(args.model, port=args.port) as server:
        snippet = {"providers": embedded_providers(server.base_url, args.model)}
        print(f"# {args.model} at {server.base_url}; the providers for a run.yaml:")
        print(yaml.safe_dump(snippet, sort_keys=False), end="")
        print("# serving until Ctrl-C", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while server.running:
                time.sleep(0.5)
        if not server.running and server.port is not None:
            print(f"the llama.cpp server stopped; its log ends:\n{server.log_tail()}", file=sys.stderr)
            return 1
    return 0


def install_server_command(args: argparse.Namespace) -> int:
    """Build llama-server into the cache unless it is there; ``CMAKE_ARGS`` adds cmake flags (a GPU build, say)."""
    from llama_stack_judge.embedded.llama_server import build_server, built_server

    installed = built_server()
    if installed is not None and not args.force:
        print(f"llama-server is installed: {installed} (--force builds it again)")
        return 0
    built = build_server(extra_cmake_args=tuple(shlex.split(os.environ.get("CMAKE_ARGS", ""))), jobs=args.jobs)
    print(f"llama-server is installed: {built}")
    return 0


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
    Console(width=None if sys.stdout.isatty() else 200, markup=False).print(table)  # function ids and errors as text


def score_command(args: argparse.Namespace) -> int:
    """Score a JSONL file and write one line per row with every function's result."""
    rows = read_jsonl(Path(args.rows))
    output = output_file(args.output) if args.output else None  # before any judge call is paid for
    choice = JudgeChoice.from_args(args)
    with open_stack(choice) as stack:
        response = stack.client.scoring.score(
            input_rows=rows,
            scoring_functions=judge_params(stack.client, args.scoring_fn, choice.judge_model_param()),
            extra_headers=choice.options().headers(),
        )
    if output is not None:
        with output.open("w", encoding="utf-8") as out:
            for index, row in enumerate(rows):
                scored = {fn: result.score_rows[index] for fn, result in response.results.items()}
                out.write(json.dumps({"row": row, "results": scored}) + "\n")
    print_aggregates(response.results)
    return unscored_exit(
        {fn: (result.aggregated_results, result.score_rows) for fn, result in response.results.items()}
    )


def judge_params(client: Any, functions: list[str], judge_model: str | None) -> dict[str, Any]:
    """Each function's params for a score call: the chosen judge model (or panel) for judges, nothing for the rest."""
    if judge_model is None:
        return dict.fromkeys(functions)
    judges = {
        fn.identifier for fn in client.scoring_functions.list() if getattr(fn.params, "type", None) == "llm_as_judge"
    }
    params = {"type": "llm_as_judge", "judge_model": judge_model}
    return {fn: params if fn in judges else None for fn in functions}


def unscored_exit(results: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]]) -> int:
    """1, with a line naming each function that scored no row and its first error; else 0."""
    failed = {
        fn: next((row.get("error") for row in rows if row.get("error")), None)
        for fn, (aggregated, rows) in results.items()
        if aggregated.get("n_total", 0) and not aggregated.get("n_scored", 0)
    }
    for fn, error in failed.items():
        print(f"llama-stack-judge: error: {fn} scored no row; the first error: {error}", file=sys.stderr)
    return 1 if failed else 0


def stack_config_command(args: argparse.Namespace) -> int:
    """Print the full run.yaml for a provider config."""
    providers = load_provider_config(Path(args.provider_config))
    if args.provider_id:
        providers = select_provider(providers, args.provider_id)
    kwargs = {"state_dir": args.state_dir} if args.state_dir else {}
    print(yaml.safe_dump(build_run_config(providers, port=args.port, **kwargs), sort_keys=False), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog="llama-stack-judge", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    score = commands.add_parser("score", help="score a JSONL file with registered scoring functions")
    score.add_argument("--rows", required=True, help="JSONL file, one row per line")
    score.add_argument("--scoring-fn", action="append", required=True, help="scoring function id (repeatable)")
    score.add_argument("--output", help="JSONL file for per-row results")
    JudgeChoice.add_arguments(score)
    score.set_defaults(run=score_command)

    stack = commands.add_parser("stack-config", help="print the run.yaml equivalent of a provider config")
    stack.add_argument("provider_config")
    stack.add_argument("--provider-id", help="keep only this provider for its API")
    stack.add_argument("--state-dir", help="directory of the sqlite stores (default: $JUDGE_STATE_DIR or ~/.llama)")
    stack.add_argument("--port", type=int, default=8321)
    stack.set_defaults(run=stack_config_command)

    serve = commands.add_parser("serve-judge", help="run the embedded judge's llama.cpp server until Ctrl-C")
    serve.add_argument("--model", default=DEFAULT_MODEL, choices=sorted(MODELS), help="the packaged model")
    serve.add_argument("--port", type=int, help="default: a free port")
    serve.set_defaults(run=serve_judge_command)

    install = commands.add_parser(
        "install-server", help="build llama.cpp's llama-server for the embedded judge (once, ~7 min on 2 cores)"
    )
    install.add_argument("--force", action="store_true", help="build again even when a build is installed")
    install.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="compile jobs (default: a core each)")
    install.set_defaults(run=install_server_command)

    mt_bench.add_parser(commands)
    certify.add_parser(commands)
    jobs.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; input errors print one line and exit 2, a judge that cannot start exits 1."""
    args = build_parser().parse_args(argv)
    # SIGTERM unwinds like Ctrl-C's exit does, so a managed judge server is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        code = int(args.run(args))
    except (JudgeInputError, ValueError, APIStatusError) as exc:
        print(f"llama-stack-judge: error: {exc}", file=sys.stderr)
        return 2
    except APIConnectionError as exc:
        url = getattr(exc.request, "url", None)
        print(f"llama-stack-judge: error: cannot reach the stack at {url}: {exc}", file=sys.stderr)
        return 1
    except JudgeError as exc:
        print(f"llama-stack-judge: error: {exc}", file=sys.stderr)
        return 1
    if code == INTERRUPTED:
        # What was judged is written and closed. The stack's background writes that Ctrl-C cut short leave sqlite
        # worker threads (not daemons) that never end, and the interpreter would wait for them forever.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
