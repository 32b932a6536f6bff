"""The in-process stack a judging command opens: a run config, one built around a judge, or the embedded judge."""

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from llama_stack_judge.cli.judge_choice import ENDPOINT_PROVIDER_ID, JudgeChoice
from llama_stack_judge.errors import JudgeError, JudgeInputError
from llama_stack_judge.outputs import output_dir
from llama_stack_judge.stack_config import build_run_config, judging_with, load_provider_config, write_run_config


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
def open_stack(choice: JudgeChoice) -> Iterator[OpenedStack]:
    """The in-process stack ``choice`` names, closed (and its embedded judge stopped) on the way out."""
    from llama_stack.core.library_client import LlamaStackAsLibraryClient

    state = output_dir(str(choice.state_dir), option="--state-dir")
    # The stack's info logs (and httpx's line per request) would bury the progress bar: warnings and errors only,
    # unless the user chose levels.
    os.environ.setdefault("LLAMA_STACK_LOGGING", "all=warning")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    with contextlib.ExitStack() as resources:
        run_yaml, rows_per_call = _run_config(choice, state, resources)
        # The library client prints its whole config at start: kept in a file, not on the terminal.
        with (state / "stack.log").open("w", encoding="utf-8") as log, contextlib.redirect_stdout(log):
            client = LlamaStackAsLibraryClient(str(run_yaml))
        with client:
            yield OpenedStack(client, rows_per_call)


def _run_config(choice: JudgeChoice, state: Path, resources: contextlib.ExitStack) -> tuple[Path, int | None]:
    """The run.yaml to open and the rows per score call its judge suits.

    Starts the embedded judge's server (stopped with ``resources``) when it is the judge.
    """
    if choice.stack_config:
        return Path(choice.stack_config), None
    rows_per_call = None
    if choice.provider_config:
        providers = load_provider_config(Path(choice.provider_config))
    elif choice.inference_url or choice.judge_models:
        if not (choice.inference_url and choice.judge_models):
            raise JudgeInputError("--inference-url and --judge-model go together")
        api_key = os.environ.get(choice.api_key_env, "none")
        for model in choice.judge_models:
            check_endpoint(choice.inference_url, model, api_key)
        providers = endpoint_providers(choice.inference_url, choice.judge_models[0], api_key)
    else:
        providers = _start_embedded_judge(choice.embedded_model, resources)
        # It makes one judgment at a time, seconds each: a call per row keeps a progress bar live.
        rows_per_call = 1
    return write_run_config(build_run_config(providers, state_dir=str(state)), state / "run.yaml"), rows_per_call


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


def _start_embedded_judge(model_name: str, resources: contextlib.ExitStack) -> dict[str, list[dict[str, Any]]]:
    from llama_stack_judge.embedded import embedded_providers, embedded_server

    print(f"embedded judge: checking {model_name} and starting its llama.cpp server", file=sys.stderr)
    server = resources.enter_context(embedded_server(model_name))
    print(f"embedded judge: {model_name} at {server.base_url}", file=sys.stderr)
    return embedded_providers(server.base_url, model_name)
