"""Configuration of the judge scoring provider."""

from typing import Any, Literal

from llama_stack.core.storage.datatypes import SqlStoreReference
from pydantic import BaseModel, ConfigDict, Field, field_validator

from llama_stack_judge.core.options import JudgeOptions
from llama_stack_judge.stack.call_fields import adaptive_concurrency_field, call_spacing_field, retry_for_field
from llama_stack_judge.stack.card_store import card_store_reference


class JudgeScoringConfig(BaseModel):
    """Where judge definitions come from and how judge calls are made.

    Looking for the judge model? Each definition names one; an empty name falls back to ``default_judge_model``,
    which must be a model id of this stack (``client.models.list()``).
    """

    model_config = ConfigDict(extra="forbid")

    default_judge_model: str | None = Field(
        default=None, description="Model id used by definitions that do not name a judge model."
    )
    definition_dirs: list[str] = Field(
        default_factory=list,
        description="Extra directories of JSON judge definitions (trusted: read at start-up, no symlinks).",
    )
    max_concurrency: int = Field(
        default=16, ge=1, description="Judge calls in flight at once, across every caller of this provider."
    )
    max_retries: int = Field(default=3, ge=0, description="Retries of a judge call after a transient failure.")
    timeout_s: float = Field(default=120.0, gt=0, description="Time limit of one judge call, in seconds.")
    retry_for_s: float = retry_for_field(60.0)
    call_spacing_s: float = call_spacing_field()
    adaptive_concurrency: bool = adaptive_concurrency_field()
    max_rows: int = Field(default=50_000, ge=1, description="Rows one score call may carry; more is a 400.")
    max_text_chars: int = Field(
        default=200_000, ge=1, description="Longest text one cell may hold, in characters; longer is a 400."
    )
    judge_options: dict[str, Any] = Field(
        default_factory=dict,
        description="Defaults of the per-call judge options, e.g. {verdict_grammar: true} for a llama.cpp judge; "
        "a call's own options override them field by field.",
    )
    judgment_cache: SqlStoreReference | None = Field(
        default_factory=lambda: SqlStoreReference(backend="sql_default", table_name="llama_stack_judge_replies"),
        description="Where judge replies are kept so identical requests are not paid for twice; null turns it off.",
    )

    card_store: SqlStoreReference | None = Field(
        default_factory=card_store_reference,
        description="Where judge cards are kept (the eval provider files them); a score call's aggregates show the "
        "card of its judges, if one is filed or shipped. null: shipped cards only.",
    )
    judgment_cache_scope: Literal["per_user", "shared"] = Field(
        default="per_user",
        description="With the stack's authentication on: per_user keeps each user's judgments apart (a cache hit "
        "never tells one user that another judged the same text); shared lets users reuse each other's judgments, "
        "which saves judge calls but lets a user confirm a guess at another's rows by its cache hits.",
    )

    @field_validator("judge_options")
    @classmethod
    def _check_judge_options(cls, value: dict[str, Any]) -> dict[str, Any]:
        JudgeOptions.parse(value, where="judge_options")
        return value

    @classmethod
    def sample_run_config(cls, __distro_dir__: str = "", **kwargs: Any) -> dict[str, Any]:
        """A config that judges with the model named in JUDGE_MODEL."""
        return {"default_judge_model": "${env.JUDGE_MODEL:=}", "max_concurrency": 16}
