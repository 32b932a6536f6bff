"""The ``llama-stack-judge`` command: score JSONL files with any registered function, print run configs."""

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from llama_stack_client import APIConnectionError, APIStatusError

from llama_stack_judge import certify_cli, jobs_cli, mtbench_cli
from llama_stack_judge.core.jsonl import read_jsonl
from llama_stack_judge.core.options import JudgeOptions, weighting_options
from llama_stack_judge.core.panel import MEMBER_SEPARATOR
from llama_stack_judge.embedded.models import DEFAULT_MODEL, MODELS
from llama_stack_judge.errors import JudgeError, JudgeInputError
from llama_stack_judge.outputs import DEFAULT_CLI_STATE, output_dir, output_file
from llama_stack_judge.stack_config import (
    build_run_config,
    judging_with,
    load_provider_config,
    select_provider,
    write_run_config,
)

ENDPOINT_PROVIDER_ID = "endpoint"
INTERRUPTED = 130  # the exit code of a command stopped by Ctrl-C


def endpoint_providers(inference_url: str, judge_model: str, api_key: str) -> dict[str, list[dict[str, Any]]]:
    """Providers for judging with any OpenAI-compatible endpoint through the stack's remote::openai provider."""
    config = {"base_url": inference_url, "api_key": api_key}
    return judging_with(ENDPOINT_PROVIDER_ID, "remote::openai", config, judge_model)


@dataclass(frozen=True)
class OpenedStack:
    """An in-process stack's client, and the rows one score call should carry for its judge (None: the caller's)."""

    client: Any
    rows_per_call: int | None = None


@contextlib.contextmanager
def open_stack(args: argparse.Namespace) -> Iterator[OpenedStack]:
    """An in-process stack: the user's run config, one built around a judge option, or the embedded judge."""
    from llama_stack.core.library_client import LlamaStackAsLibraryClient

    state = output_dir(args.state_dir, option="--state-dir")
    # The stack's info logs (and httpx's line per request) would bury the progress bar: warnings and errors only,
    # unless the user chose levels.
    os.environ.setdefault("LLAMA_STACK_LOGGING", "all=warning")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    with contextlib.ExitStack() as resources:
        run_yaml, rows_per_call = _run_config(args, state, resources)
        # The library client prints its whole config at start: kept in a file, not on the terminal.
        with (state / "stack.log").open("w", encoding="utf-8") as log, contextlib.redirect_stdout(log):
            client = LlamaStackAsLibraryClient(str(run_yaml))
        with client:
            yield OpenedStack(client, rows_per_call)


def _run_config(args: argparse.Namespace, state: Path, resources: contextlib.ExitStack) -> tuple[Path, int | None]:
    """The run.yaml to open and the rows per score call its judge suits.

    Starts the embedded judge's server (stopped with ``resources``) when it is the judge.
    """
    if args.stack_config:
        return Path(args.stack_config), None
    rows_per_call = None
    if args.provider_config:
        providers = load_provider_config(Path(args.provider_config))
    elif args.inference_url or args.judge_model:
        if not (args.inference_url and args.judge_model):
            raise JudgeInputError("--inference-url and --judge-model go together")
        api_key = os.environ.get(args.api_key_env, "none")
        for model in args.judge_model:
            check_endpoint(args.inference_url, model, api_key)
        providers = endpoint_providers(args.inference_url, args.judge_model[0], api_key)
    else:
        providers = _start_embedded_judge(
            args.embedded_model, resources, logprobs=judge_options(args).verdict_weighting == "expected"
        )
        # It makes one judgment at a time, seconds each: a call per row keeps a progress bar live.
        rows_per_call = 1
    return write_run_config(build_run_config(providers, state_dir=str(state)), state / "run.yaml"), rows_per_call


def judge_model_param(args: argparse.Namespace) -> str | None:
    """The judge model a command's score calls name: none (the stack's default judge), one, or a panel's members."""
    models: list[str] = args.judge_model or []
    if args.stack_config:
        return MEMBER_SEPARATOR.join(models) or None
    if args.inference_url and len(models) > 1:
        return MEMBER_SEPARATOR.join(f"{ENDPOINT_PROVIDER_ID}/{model}" for model in models)
    return None  # the endpoint's one model is the stack's default judge


def check_endpoint(url: str, model: str, api_key: str) -> None:
    """Fail fast, before any row: the endpoint must answer and serve ``model`` (the error lists what it serves).

    Raises:
        JudgeError: when the endpoint cannot be reached or does not answer as an OpenAI-compatible server.
        JudgeInputError: when it does not serve ``model``.
    """
    models_url = f"{url.rstrip('/')}/models"
    try:
        response = httpx.get(models_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=10)
        response.raise_for_status()
        served = sorted(str(entry["id"]) for entry in response.json()["data"])
    except httpx.HTTPStatusError as exc:
        raise JudgeError(f"the judge at {url} answered {exc.response.status_code} to GET {models_url}") from None
    except httpx.HTTPError as exc:
        raise JudgeError(f"cannot reach the judge at {url}: {type(exc).__name__}: {exc}") from None
    except (ValueError, KeyError, TypeError):
        raise JudgeError(f"the judge at {url} is not an OpenAI-compatible server (GET {models_url})") from None
    if model not in served:
        raise JudgeInputError(f"--judge-model {model!r} is not served at {url}; it serves {served}")


def _start_embedded_judge(
    model_name: str, resources: contextlib.ExitStack, *, logprobs: bool
) -> dict[str, list[dict[str, Any]]]:
    from llama_stack_judge.embedded import embedded_providers, embedded_server

    print(f"embedded judge: checking {model_name} and starting its llama.cpp server", file=sys.stderr)
    server = resources.enter_context(embedded_server(model_name, logprobs=logprobs))
    print(f"embedded judge: {model_name} at {server.base_url}", file=sys.stderr)
    return embedded_providers(server.base_url, model_name)


def serve_judge_command(args: argparse.Namespace) -> int:
    """Run the embedded judge's llama.cpp server until Ctrl-C, printing the inference provider that uses it."""
    from llama_stack_judge.embedded import embedded_providers, embedded_server

    with embedded_server(args.model, port=args.port, logprobs=args.logprobs) as server:
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
    with open_stack(args) as stack:
        response = stack.client.scoring.score(
            input_rows=rows,
            scoring_functions=judge_params(stack.client, args.scoring_fn, judge_model_param(args)),
            extra_headers=judge_options(args).headers(),
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


def _options_json(text: str) -> dict[str, Any]:
    """``--judge-options``: a JSON object of valid judge options."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    try:
        JudgeOptions.parse(data, where="--judge-options")
    except JudgeInputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return data


def judge_options(args: argparse.Namespace, **more: Any) -> JudgeOptions:
    """The judge options a command asks for: ``--judge-options``, then ``--verdict-weighting``, then ``more``.

    With ``details``: the commands show the counts, usage and judge card beside the aggregates.
    """
    chosen = args.judge_options | weighting_options(args.verdict_weighting) | more
    return JudgeOptions(**(chosen | {"details": True}))


def add_judge_options(parser: argparse.ArgumentParser) -> None:
    """Options that choose the judge's stack."""
    group = parser.add_argument_group("judge")
    group.add_argument("--stack-config", help="run.yaml of a distribution that enables our providers")
    group.add_argument("--provider-config", help="a provider config (see provider_configs/) to build the stack from")
    group.add_argument("--inference-url", help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    group.add_argument(
        "--judge-model",
        action="append",
        help="model name at --inference-url (or a model id of --stack-config); repeat it for a judge panel, whose "
        "rule and escalation judge --judge-options sets (panel_combine, escalate_to, escalate_spread)",
    )
    group.add_argument("--api-key-env", default="OPENAI_API_KEY", help="env var holding the endpoint's key")
    group.add_argument(
        "--embedded-model",
        default=DEFAULT_MODEL,
        choices=sorted(MODELS),
        help="with no judge chosen above, the packaged model the embedded llama.cpp judge runs",
    )
    group.add_argument(
        "--verdict-weighting",
        choices=["sampled", "expected"],
        help="'expected': score the judge's probability-weighted verdict (needs a provider that returns log "
        "probabilities; verdicts are then read from text, not JSON)",
    )
    group.add_argument(
        "--judge-options",
        type=_options_json,
        default={},
        help='per-call judge options as JSON, e.g. \'{"verdict_first": true, "max_tokens": 8}\' (docs/usage.md)',
    )
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

    serve = commands.add_parser("serve-judge", help="run the embedded judge's llama.cpp server until Ctrl-C")
    serve.add_argument("--model", default=DEFAULT_MODEL, choices=sorted(MODELS), help="the packaged model")
    serve.add_argument("--port", type=int, help="default: a free port")
    serve.add_argument(
        "--logprobs", action="store_true", help="return log probabilities (expected verdicts): ~1 GB more memory"
    )
    serve.set_defaults(run=serve_judge_command)

    mtbench_cli.add_parser(commands, add_judge_options)
    certify_cli.add_parser(commands, add_judge_options)
    jobs_cli.add_parser(commands)
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
