"""Configuration of the scripted inference provider."""

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ScriptedRule(BaseModel):
    """Reply ``reply`` (or fail with ``fail``) when ``match`` is found in the conversation."""

    model_config = ConfigDict(extra="forbid")

    match: str = Field(description="Regex searched in the request's messages joined by newlines.")
    models: list[str] | None = Field(
        default=None, description="Models this rule answers for (default: all), e.g. to script a panel's dissenter."
    )
    reply: str | None = Field(
        default=None, description="The assistant text to answer with; \\1 or \\g<name> insert groups of the match."
    )
    json_reply: dict[str, Any] | None = Field(
        default=None, description="Reply with this object as JSON when the request asks for a json_schema response."
    )
    fail: str | None = Field(default=None, description="Fail the call with this message instead of replying.")
    delay_s: float = Field(default=0.0, ge=0.0, description="Extra seconds to wait before answering.")
    verdict_logprobs: dict[str, float] | None = Field(
        default=None,
        description="When log probabilities are asked for: the top alternatives (token -> log probability) at the "
        "first token after the reply's last '[['. Other tokens are certain (log probability 0).",
    )

    @field_validator("match")
    @classmethod
    def _compiles(cls, value: str) -> str:
        re.compile(value)
        return value


class ScriptedInferenceConfig(BaseModel):
    """A deterministic model for tests and CI: replies come from rules, not from weights."""

    model_config = ConfigDict(extra="forbid")

    models: list[str] = Field(default=["judge"], description="Model ids this provider serves.")
    rules: list[ScriptedRule] = Field(default_factory=list, description="Tried in order; the first match answers.")
    default_reply: str = Field(default="Rating: [[5]]", description="Reply when no rule matches.")
    reply_fn: str | None = Field(
        default=None,
        description="'module:function' called with the messages (role/content dicts) when no rule matches; "
        "its return value is the reply.",
    )
    delay_s: float = Field(default=0.0, ge=0.0, description="Seconds to wait before each reply.")
    structured_output_models: list[str] | None = Field(
        default=None,
        description="Models that accept a response_format; others refuse such requests. Default: every model.",
    )
    logprobs_models: list[str] | None = Field(
        default=None,
        description="Models that return log probabilities when asked; others return none. Default: every model.",
    )
    call_log: str | None = Field(default=None, description="JSONL file that gets one line per call.")

    @classmethod
    def sample_run_config(cls, __distro_dir__: str = "", **kwargs: Any) -> dict[str, Any]:
        """A config that serves one model named ``judge``."""
        return {"models": ["judge"], "default_reply": "Rating: [[5]]"}
