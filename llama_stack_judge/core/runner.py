"""Judging rows concurrently: bounded fan-out, retries with backoff, results in input order."""

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from llama_stack_judge.core.chat import ChatFn, ChatMessage, ChatReply, ChatRequest, TransientChatError
from llama_stack_judge.core.definitions import JudgeDefinition
from llama_stack_judge.core.outcomes import Outcome, RowResult
from llama_stack_judge.core.rows import Row, text_columns
from llama_stack_judge.errors import JudgeInputError

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunSettings:
    """How judge calls are made."""

    max_concurrency: int = 16
    max_retries: int = 3
    timeout_s: float = 120.0
    backoff_base_s: float = 0.5
    backoff_max_s: float = 20.0

    def __post_init__(self) -> None:
        if self.max_concurrency < 1:
            raise JudgeInputError(f"max_concurrency must be >= 1, got {self.max_concurrency}")
        if self.max_retries < 0:
            raise JudgeInputError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.timeout_s <= 0:
            raise JudgeInputError(f"timeout_s must be > 0, got {self.timeout_s}")

    def backoff(self, attempt: int) -> float:
        """Delay before retry ``attempt`` (1-based): exponential with full jitter."""
        return random.uniform(0, min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1)))


async def map_bounded[T, R](items: Sequence[T], work: Callable[[T], Awaitable[R]], limit: int) -> list[R]:
    """Run ``work`` on every item, at most ``limit`` at a time; results keep the input order."""
    semaphore = asyncio.Semaphore(limit)

    async def bounded(item: T) -> R:
        async with semaphore:
            return await work(item)

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(bounded(item)) for item in items]
    except ExceptionGroup as failed:  # the first failure, as raised, rather than a group of one
        raise failed.exceptions[0] from None
    return [task.result() for task in tasks]


def build_requests(definition: JudgeDefinition, rows: Sequence[Row], *, judge_model: str) -> list[ChatRequest]:
    """Render every row's judge request; raises ``JudgeInputError`` naming bad rows before any call is made."""
    values = text_columns(rows, definition.required_columns, defaults=definition.defaults, user=definition.identifier)
    sampling = definition.sampling
    roles = ("system", "user") if definition.system_prompt is not None else ("user",)
    return [
        ChatRequest(
            model=judge_model,
            messages=tuple(
                ChatMessage(role, template.render(definition.defaults | row))
                for role, template in zip(roles, definition.templates, strict=True)
            ),
            temperature=sampling.temperature,
            max_tokens=sampling.max_tokens,
            top_p=sampling.top_p,
        )
        for row in values
    ]


class CallFailedError(Exception):
    """A judge call that failed for good, with the attempts it took."""

    def __init__(self, cause: Exception, attempts: int) -> None:
        reason = (
            "TimeoutError: judge call timed out"
            if isinstance(cause, TimeoutError)
            else f"{type(cause).__name__}: {cause}"
        )
        super().__init__(reason)
        self.reason = reason
        self.attempts = attempts


async def call_with_retries(chat: ChatFn, request: ChatRequest, settings: RunSettings) -> tuple[ChatReply, int]:
    """Call ``chat`` with a timeout, retrying transient failures; returns the reply and the attempts made.

    Raises:
        CallFailedError: on a permanent failure, or once the retries are spent.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            async with asyncio.timeout(settings.timeout_s):
                return await chat(request), attempt
        except (TransientChatError, TimeoutError) as exc:
            if attempt > settings.max_retries:
                raise CallFailedError(exc, attempt) from exc
            delay = settings.backoff(attempt)
            logger.debug("judge call failed (%s); retry %d in %.2fs", exc, attempt, delay)
            await asyncio.sleep(delay)
        except Exception as exc:  # permanent: a bad request will not get better by asking again
            raise CallFailedError(exc, attempt) from exc


async def judge_one(
    definition: JudgeDefinition, request: ChatRequest, chat: ChatFn, settings: RunSettings
) -> RowResult:
    """Judge one rendered request; failures become outcomes, never exceptions."""
    try:
        reply, attempts = await call_with_retries(chat, request, settings)
    except CallFailedError as failed:  # a failed call is data: counted and reported, never raised into the batch
        return RowResult(Outcome.inference_error, error=failed.reason, attempts=failed.attempts)
    parsed = definition.parse_verdict(reply.text)
    if parsed.error is not None or parsed.score is None:
        return RowResult(
            Outcome.parse_error, verdict=parsed.label, judge_output=reply.text, error=parsed.error, attempts=attempts
        )
    return RowResult.scored_value(parsed.score, verdict=parsed.label, judge_output=reply.text, attempts=attempts)


async def judge_rows(
    definition: JudgeDefinition, rows: Sequence[Row], chat: ChatFn, *, judge_model: str, settings: RunSettings
) -> list[RowResult]:
    """Judge every row concurrently (at most ``settings.max_concurrency`` calls at once), in input order."""
    requests = build_requests(definition, rows, judge_model=judge_model)
    return await map_bounded(
        requests, lambda request: judge_one(definition, request, chat, settings), settings.max_concurrency
    )
