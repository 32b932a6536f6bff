"""Which judge a command uses and how it asks: the judge options of every judging command, read once and typed."""

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llama_stack_judge.core.options import JudgeOptions, weighting_options
from llama_stack_judge.core.panel import MEMBER_SEPARATOR
from llama_stack_judge.embedded.llama_server import runtime
from llama_stack_judge.embedded.models import DEFAULT_MODEL, MODELS
from llama_stack_judge.errors import JudgeInputError
from llama_stack_judge.outputs import DEFAULT_CLI_STATE

ENDPOINT_PROVIDER_ID = "endpoint"  # the inference provider built around --inference-url


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


@dataclass(frozen=True)
class JudgeChoice:
    """The stack that judges (a run config, a provider config, an endpoint or the embedded judge) and the options.

    Exactly one source is used, first match wins: ``stack_config``, ``provider_config``, ``inference_url`` (with
    ``judge_models``), else the embedded judge running ``embedded_model``.
    """

    state_dir: Path = DEFAULT_CLI_STATE
    stack_config: str | None = None
    provider_config: str | None = None
    inference_url: str | None = None
    judge_models: tuple[str, ...] = ()
    api_key_env: str = "OPENAI_API_KEY"
    embedded_model: str = DEFAULT_MODEL
    verdict_weighting: str | None = None
    judge_options: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        """The options that choose the judge's stack, in their own group of ``parser``."""
        group = parser.add_argument_group("judge")
        group.add_argument("--stack-config", help="run.yaml of a distribution that enables our providers")
        group.add_argument("--provider-config", help="a provider config (see provider_configs/) to build the stack")
        group.add_argument("--inference-url", help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
        group.add_argument(
            "--judge-model",
            action="append",
            help="model name at --inference-url (or a model id of --stack-config); repeat it for a judge panel, "
            "whose rule and escalation judge --judge-options sets (panel_combine, escalate_to, escalate_spread)",
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

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "JudgeChoice":
        """The choice ``add_arguments``' options made."""
        return cls(
            state_dir=Path(args.state_dir),
            stack_config=args.stack_config,
            provider_config=args.provider_config,
            inference_url=args.inference_url,
            judge_models=tuple(args.judge_model or ()),
            api_key_env=args.api_key_env,
            embedded_model=args.embedded_model,
            verdict_weighting=args.verdict_weighting,
            judge_options=args.judge_options,
        )

    def options(self, **more: Any) -> JudgeOptions:
        """The judge options of each call: ``--judge-options``, then ``--verdict-weighting``, then ``more``.

        With ``details``: the commands show the counts, usage and judge card beside the aggregates.
        """
        chosen = self.judge_options | weighting_options(self.verdict_weighting) | more
        return JudgeOptions(**(chosen | {"details": True}))

    def judge_model_param(self) -> str | None:
        """The judge model score calls name: none (the stack's default judge), one, or a panel's members."""
        if self.stack_config:
            return MEMBER_SEPARATOR.join(self.judge_models) or None
        if self.inference_url and len(self.judge_models) > 1:
            return MEMBER_SEPARATOR.join(f"{ENDPOINT_PROVIDER_ID}/{model}" for model in self.judge_models)
        return None  # the endpoint's one model is the stack's default judge

    @property
    def source(self) -> str:
        """Where the judge comes from, in words (kept with a run's results)."""
        if self.stack_config:
            return f"stack config {self.stack_config}"
        if self.provider_config:
            return f"provider config {self.provider_config}"
        if self.inference_url:
            return f"OpenAI-compatible endpoint {self.inference_url}"
        return f"embedded judge {self.embedded_model} on {runtime()}"
