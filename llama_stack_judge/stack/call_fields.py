"""Config fields of the calls both providers make through the stack (the scoring and eval provider configs)."""

from typing import Any

from pydantic import Field


def call_spacing_field() -> Any:
    """The ``call_spacing_s`` field of the scoring and eval provider configs."""
    return Field(
        default=0.003,
        ge=0,
        description="Least time between the starts of two inference calls of this provider. Calls that start "
        "together come back together, and the stack (several ms of CPU per call) then keeps the next ones waiting; "
        "starts a few ms apart avoid that queue. Allows at most 1/call_spacing_s calls per second; 0 turns it off.",
    )


def adaptive_concurrency_field() -> Any:
    """The ``adaptive_concurrency`` field of the scoring and eval provider configs."""
    return Field(
        default=True,
        description="Keep fewer than max_concurrency calls in flight when the extra ones would only wait on this "
        "process (a model that answers in a few ms): the limit moves between 1 and max_concurrency to the calls that "
        "keep the event loop busy (the quickest call's time over the loop's CPU per call). Against a slow model it "
        "stays at max_concurrency.",
    )


def retry_for_field(default: float) -> Any:
    """The ``retry_for_s`` field of the scoring and eval provider configs, with each one's default."""
    return Field(
        default=default,
        ge=0,
        description="Keep retrying transient failures (server down, 5xx, timeouts) this many seconds after the first "
        "attempt, even past max_retries, so a judge that is away for a while does not fail the work.",
    )
