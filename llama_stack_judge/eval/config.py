"""Configuration of the judge eval provider."""

from typing import Any

from llama_stack.core.storage.datatypes import SqlStoreReference
from pydantic import BaseModel, ConfigDict, Field, model_validator

from llama_stack_judge.stack.call_fields import adaptive_concurrency_field, call_spacing_field, retry_for_field
from llama_stack_judge.stack.card_store import card_store_reference


class JudgeEvalConfig(BaseModel):
    """How candidate answers are generated."""

    model_config = ConfigDict(extra="forbid")

    max_concurrency: int = Field(default=8, ge=1, description="Generation calls in flight at once, across all jobs.")
    max_retries: int = Field(default=3, ge=0, description="Retries of a generation call after a transient failure.")
    timeout_s: float = Field(default=300.0, gt=0, description="Time limit of one generation call, in seconds.")
    retry_for_s: float = retry_for_field(120.0)
    call_spacing_s: float = call_spacing_field()
    adaptive_concurrency: bool = adaptive_concurrency_field()
    default_max_tokens: int = Field(
        default=1024, ge=1, description="max_tokens when the candidate's sampling params give none."
    )
    page_rows: int = Field(
        default=1000,
        ge=1,
        description="Rows a job generates and judges at a time: its memory depends on this, not on the dataset's size.",
    )
    pages_in_flight: int = Field(
        default=2,
        ge=1,
        description="Pages this replica judges at once, of any job (its own or other replicas'): idle replicas help "
        "with a running job a page at a time.",
    )
    job_store: SqlStoreReference = Field(
        default_factory=lambda: SqlStoreReference(backend="sql_default", table_name="llama_stack_judge_eval"),
        description="SQL store for jobs, generations and results (table_name is the prefix of its three tables).",
    )

    lease_s: float = Field(
        default=30.0,
        gt=0,
        description="How long a replica's claim on a running job lasts without renewal. When a replica dies, another "
        "one takes its jobs over this long after its last renewal (replicas' clocks must agree to well within this).",
    )
    lease_renewal_s: float = Field(
        default=10.0,
        gt=0,
        description="How often a replica renews the leases of its jobs, takes over jobs whose lease ran out, and "
        "notices a job cancelled through another replica.",
    )
    replica_id: str | None = Field(
        default=None,
        description="This replica's name in job leases and logs (default: host name, process id and a random suffix).",
    )

    card_store: SqlStoreReference | None = Field(
        default_factory=card_store_reference,
        description="Where certification jobs file their judge cards (the scoring provider reads the same table); "
        "null: cards are returned with the job's result only.",
    )

    @model_validator(mode="after")
    def _renewed_within_the_lease(self) -> "JudgeEvalConfig":
        if self.lease_renewal_s >= self.lease_s:
            raise ValueError(
                f"lease_renewal_s ({self.lease_renewal_s}) must be shorter than lease_s ({self.lease_s}), "
                "or a replica's jobs would be taken over while it runs them"
            )
        return self

    @classmethod
    def sample_run_config(cls, __distro_dir__: str = "", **kwargs: Any) -> dict[str, Any]:
        """The defaults."""
        return {"max_concurrency": 8}
