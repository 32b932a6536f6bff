"""Options of one scoring call or job: how to run the judges, not what they judge.

They travel in the stack's per-request provider data (the ``X-LlamaStack-Provider-Data`` header) under
``judge_options``, because the scoring API's params have a fixed set of fields.
"""

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidatorFunctionWrapHandler, WrapValidator

from llama_stack_judge.core.definitions import MAX_JUDGE_TOKENS, FailurePolicy, JudgeDefinition
from llama_stack_judge.core.panel import Combine
from llama_stack_judge.errors import JudgeInputError, validation_problems

PROVIDER_DATA_KEY = "judge_options"
PROVIDER_DATA_HEADER = "X-LlamaStack-Provider-Data"
SERVER_DEFAULT = "server"  # a sampling option's value that leaves the setting to the model's server: it is not sent
ServerDefault = Literal["server"]  # SERVER_DEFAULT, as a type


def _or_server(number: str) -> WrapValidator:
    """One error for a sampling option that is neither ``number`` nor 'server' (not one per member of its union)."""

    def validate(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError:
            raise ValueError(f"must be {number}, or '{SERVER_DEFAULT}' to leave it to the model's server") from None

    return WrapValidator(validate)


class JudgeOptions(BaseModel):
    """Per-call options; unset fields keep the provider's and the definition's settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_concurrency: int | None = Field(default=None, ge=1, le=1024, description="Judge calls in flight at once.")
    use_cache: bool = Field(
        default=True, description="Reuse stored judgments of identical requests; off judges afresh (and stores)."
    )
    num_samples: int | None = Field(default=None, ge=1, le=32, description="Judgments per row.")
    temperature: Annotated[
        Annotated[float, Field(ge=0.0, le=2.0)] | ServerDefault | None, _or_server("a number from 0 to 2")
    ] = Field(default=None, description="Judge sampling temperature; 'server' leaves it to the model's server.")
    failure_policy: FailurePolicy | None = None
    structured_output: bool | None = None
    verdict_grammar: bool | None = None
    verdict_first: bool | None = Field(default=None, description="Ask for the verdict before the explanation.")
    max_tokens: Annotated[
        Annotated[int, Field(ge=1, le=MAX_JUDGE_TOKENS)] | ServerDefault | None,
        _or_server(f"a whole number from 1 to {MAX_JUDGE_TOKENS}"),
    ] = Field(
        default=None,
        description="Longest judge reply, in tokens; 'server' leaves it to the model's server (OpenAI's reasoning "
        "models refuse max_tokens, and temperature 0).",
    )
    max_explanation_chars: int | None = Field(
        default=None, ge=0, le=100_000, description="With verdict_grammar: the longest explanation allowed."
    )
    verdict_weighting: Literal["sampled", "expected"] | None = Field(
        default=None, description="'expected': verdicts weighted by the judge's token probabilities."
    )
    durable: bool = Field(
        default=False,
        description="Store each judgment the moment it is made instead of in batches (eval jobs do: after a crash "
        "no judgment is made twice).",
    )
    group_by: tuple[Annotated[str, Field(min_length=1, max_length=200)], ...] = Field(
        default=(), max_length=16, description="Row fields to report per-group means by."
    )
    details: bool = Field(
        default=False,
        description="Report the judge calls' usage, the judges, their judge card and the aggregation plan beside the "
        "aggregations. Off, aggregated results hold exactly one entry per aggregation function, as the Scoring API's "
        "clients expect; each carries the row counts it was computed over.",
    )
    panel_combine: Combine | None = Field(
        default=None,
        description="How a panel's verdicts on a row become one (a panel: several judge models, or definitions "
        "with theirs, separated by commas): "
        "mean or median of ratings, majority of choices (a tie when none has one). Default: mean for ratings, "
        "majority for choices.",
    )
    escalate_to: str | None = Field(
        default=None,
        min_length=1,
        description="A stronger judge model (for a panel of definitions: '<function>@<model>') that judges only the "
        "rows a panel disagrees on; its verdict is the row's.",
    )
    escalate_spread: float = Field(
        default=2.0,
        ge=0,
        description="A rating panel disagrees when its highest and lowest scores differ by more than this; a choice "
        "panel when its verdicts differ.",
    )
    bootstrap_resamples: int = Field(default=1000, ge=0, le=100_000, description="0 turns confidence intervals off.")
    seed: int = Field(default=0, ge=0, le=2**63 - 1, description="Seed of the bootstrap, for reproducible intervals.")

    @classmethod
    def parse(cls, data: Any, *, where: str) -> "JudgeOptions":
        """Validate raw options, with an error that names ``where`` and each bad field."""
        if data is None:
            return cls()
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise JudgeInputError(f"{where}: invalid judge options: {validation_problems(exc)}") from None

    def apply(self, definition: JudgeDefinition) -> JudgeDefinition:
        """``definition`` with these options' judge settings laid over it (a validated copy, or itself)."""
        changes: dict[str, Any] = {
            name: value
            for name in (
                "num_samples", "failure_policy", "structured_output", "verdict_grammar", "verdict_weighting",
                "verdict_first", "max_explanation_chars",
            )
            if (value := getattr(self, name)) is not None
        }  # fmt: skip
        sampling = {
            name: None if value == SERVER_DEFAULT else value
            for name in ("temperature", "max_tokens")
            if (value := getattr(self, name)) is not None
        }
        if sampling:
            changes["sampling"] = definition.sampling.model_copy(update=sampling)
        return definition.with_changes(**changes) if changes else definition

    def provider_data(self) -> dict[str, Any]:
        """These options as provider data, to merge with any other provider data of the request."""
        return {PROVIDER_DATA_KEY: self.model_dump(mode="json", exclude_unset=True)}

    def headers(self) -> dict[str, str]:
        """``extra_headers`` for a client call: ``client.scoring.score(..., extra_headers=options.headers())``."""
        return {PROVIDER_DATA_HEADER: json.dumps(self.provider_data())}


def weighting_options(weighting: str | None) -> dict[str, Any]:
    """The options of a chosen verdict weighting; 'expected' also turns structured output off (it reads text)."""
    if weighting is None:
        return {}
    return {"verdict_weighting": weighting} | ({"structured_output": False} if weighting == "expected" else {})
