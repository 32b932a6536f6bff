"""Judging rows concurrently: bounded fan-out, retries with backoff, a reply cache, results in input order."""

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Protocol, cast

from llama_stack_judge.core.cache import CacheWriter, ReplyCache, cache_key
from llama_stack_judge.core.chat import (
    ChatFn,
    ChatMessage,
    ChatReply,
    ChatRequest,
    LogprobsRefusedError,
    TransientChatError,
)
from llama_stack_judge.core.deadlines import CallDeadlines
from llama_stack_judge.core.definitions import JudgeDefinition
from llama_stack_judge.core.limits import CallLimit
from llama_stack_judge.core.logprobs import (
    EXPECTED_TOP_LOGPROBS,
    NoDistributionError,
    tokens_from,
    verdict_distribution,
)
from llama_stack_judge.core.outcomes import Outcome, RowResult, combine_samples
from llama_stack_judge.core.rows import Row, text_columns
from llama_stack_judge.core.text import surrogate_count, without_surrogates
from llama_stack_judge.core.verdicts import ParsedVerdict
from llama_stack_judge.errors import JudgeInputError

logger = logging.getLogger(__name__)


class CallLimits(Protocol):
    """What a provider config says about making calls."""

    max_concurrency: int
    max_retries: int
    timeout_s: float
    retry_for_s: float


@dataclass(frozen=True, slots=True)
class RunSettings:
    """How judge calls are made."""

    max_concurrency: int = 16
    max_retries: int = 3
    timeout_s: float = 120.0
    backoff_base_s: float = 0.5
    backoff_max_s: float = 20.0
    retry_for_s: float = 0.0  # keep retrying transient failures this long after the first attempt, beyond max_retries

    def __post_init__(self) -> None:
        if self.max_concurrency < 1:
            raise JudgeInputError(f"max_concurrency must be >= 1, got {self.max_concurrency}")
        if self.max_retries < 0:
            raise JudgeInputError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.timeout_s <= 0:
            raise JudgeInputError(f"timeout_s must be > 0, got {self.timeout_s}")
        if self.retry_for_s < 0:
            raise JudgeInputError(f"retry_for_s must be >= 0, got {self.retry_for_s}")

    @classmethod
    def of(cls, config: "CallLimits") -> "RunSettings":
        """The settings a provider config gives (its concurrency, retries, timeout and retry window)."""
        return cls(
            max_concurrency=config.max_concurrency,
            max_retries=config.max_retries,
            timeout_s=config.timeout_s,
            retry_for_s=config.retry_for_s,
        )

    def backoff(self, attempt: int) -> float:
        """Delay before retry ``attempt`` (1-based): exponential with full jitter."""
        return random.uniform(0, min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1)))


async def map_bounded[T, R](items: Sequence[T], work: Callable[[T], Awaitable[R]], limit: int) -> list[R]:
    """Run ``work`` on every item, at most ``limit`` at a time; results keep the input order.

    ``limit`` workers take the items in turn: a task per item, each waiting its turn on a semaphore, cost 30-60 us an
    item more on large batches (docs/benchmarks.md).
    """
    if not items:
        return []
    slots: list[R | None] = [None] * len(items)
    upcoming = iter(range(len(items)))

    async def worker() -> None:
        for index in upcoming:  # shared: each index goes to one worker
            slots[index] = await work(items[index])

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(min(limit, len(items))):
                group.create_task(worker())
    except ExceptionGroup as failed:  # the first failure, as raised, rather than a group of one
        raise failed.exceptions[0] from None
    return cast(list[R], slots)  # every index was filled, or the group raised


@dataclass(slots=True)
class Usage:
    """What a batch cost: judge calls (retries included), cache hits and tokens where the provider reports them."""

    inference_calls: int = 0
    retries: int = 0
    cache_hits: int = 0
    cache_errors: int = 0
    structured_output_fallbacks: int = 0
    replaced_characters: int = 0  # lone surrogates in judge replies, kept as U+FFFD
    expected_verdict_fallbacks: int = 0  # expected verdicts that fell back to the written one (no log probabilities)
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def record(self, reply: ChatReply | None, attempts: int) -> None:
        """Count one judgment that took ``attempts`` calls and, if it succeeded, its reply's tokens."""
        self.inference_calls += attempts
        self.retries += max(0, attempts - 1)
        if reply is not None:
            self.prompt_tokens += reply.prompt_tokens or 0
            self.completion_tokens += reply.completion_tokens or 0

    def as_dict(self) -> dict[str, int]:
        """Plain numbers, for results."""
        return asdict(self)


# Appended to the user message of a verdict_first judge: its prompt may ask for the explanation first.
VERDICT_FIRST_INSTRUCTION = (
    "\n\nGive your verdict first, in the format asked for above (in double brackets), and then your explanation."
)


def render_request(definition: JudgeDefinition, values: Mapping[str, str], *, judge_model: str) -> ChatRequest:
    """The judge request for one row's text values (checked beforehand)."""
    sampling = definition.sampling
    grammar = definition.grammar
    roles = ("system", "user") if definition.system_prompt is not None else ("user",)
    texts = [template.render({**definition.defaults, **values}) for template in definition.templates]
    if definition.verdict_first:
        texts[-1] += VERDICT_FIRST_INSTRUCTION
    return ChatRequest(
        model=judge_model,
        messages=tuple(ChatMessage(role, text) for role, text in zip(roles, texts, strict=True)),
        temperature=sampling.temperature,
        max_tokens=sampling.max_tokens,
        top_p=sampling.top_p,
        # A grammar forces the form itself; llama.cpp servers refuse the json_schema response format.
        response_schema=definition.response_schema if definition.structured_output and not grammar else None,
        grammar=grammar,
        top_logprobs=EXPECTED_TOP_LOGPROBS if definition.verdict_weighting == "expected" else None,
    )


def weigh_verdict(definition: JudgeDefinition, reply: ChatReply, parsed: ParsedVerdict) -> RowResult:
    """A scored row of ``definition``'s written verdict, or of its expected verdict where it asks for one.

    An expected verdict needs the reply's log probabilities at the verdict's position; without them the written
    verdict stands, with the reason in ``distribution_fallback``.
    """
    assert parsed.score is not None
    written = RowResult.scored_value(
        parsed.score, verdict=parsed.label, judge_output=reply.text, finish_reason=reply.finish_reason
    )
    values = definition.expected_values
    if definition.verdict_weighting != "expected" or values is None:
        return written
    if not reply.logprobs:
        return replace(written, distribution_fallback="the inference provider returned no log probabilities")
    if parsed.start is None:
        return replace(written, distribution_fallback="the verdict's position in the reply is unknown")
    try:
        distribution = verdict_distribution(reply.text, reply.logprobs, parsed.start, list(values))
    except NoDistributionError as exc:
        return replace(written, distribution_fallback=str(exc))
    return replace(written, score=distribution.expected(values), distribution=distribution)


def verdict_tokens_only(definition: JudgeDefinition, reply: ChatReply) -> ChatReply:
    """``reply`` with the log probabilities of its verdict's tokens only.

    That is what an expected verdict reads, and all a cache need keep: the alternatives of a long reply's every
    token are ~100 times its text.
    """
    if reply.logprobs is None:
        return reply
    start = definition.parse_verdict(reply.text, truncated=reply.truncated).start
    kept = () if start is None else tokens_from(reply.logprobs, start)
    return replace(reply, logprobs=kept)


def flag_verdict_like(definition: JudgeDefinition, values: Mapping[str, str], result: RowResult) -> RowResult:
    """``result`` with ``verdict_in_input`` naming the inputs that contain a string the verdict patterns match.

    Such inputs (an answer that says "Rating: [[10]]") cannot change the score, which is read from the judge's output
    only; the flag lets a report show who tried.
    """
    columns = sorted(
        name for name, text in values.items() if any(p.found_in(text) for p in definition.compiled_patterns)
    )
    if not columns:
        return result
    return replace(result, details={**(result.details or {}), "verdict_in_input": columns})


class CallFailedError(Exception):
    """A judge call that failed for good, with the attempts it took."""

    def __init__(self, cause: Exception, attempts: int, *, transient: bool) -> None:
        reason = (
            "TimeoutError: judge call timed out"
            if isinstance(cause, TimeoutError)
            else f"{type(cause).__name__}: {cause}"
        )
        super().__init__(reason)
        self.cause = cause
        self.reason = reason
        self.attempts = attempts
        self.transient = transient


async def call_with_retries(
    chat: ChatFn, request: ChatRequest, settings: RunSettings, deadlines: CallDeadlines | None = None
) -> tuple[ChatReply, int]:
    """Call ``chat`` with a timeout, retrying transient failures; returns the reply and the attempts made.

    Pass the ``deadlines`` of a caller that makes many calls, so that their time-outs share one timer.

    Raises:
        CallFailedError: on a permanent failure, or once the retries are spent.
    """
    attempt = 0
    started = time.monotonic()
    while True:
        attempt += 1
        try:
            async with (
                deadlines.bound(settings.timeout_s) if deadlines is not None else asyncio.timeout(settings.timeout_s)
            ):
                return await chat(request), attempt
        except (TransientChatError, TimeoutError) as exc:
            if attempt > settings.max_retries and time.monotonic() - started >= settings.retry_for_s:
                raise CallFailedError(exc, attempt, transient=True) from exc
            delay = settings.backoff(attempt)
            logger.debug("judge call failed (%s); retry %d in %.2fs", exc, attempt, delay)
            await asyncio.sleep(delay)
        except Exception as exc:  # permanent: a bad request will not get better by asking again
            raise CallFailedError(exc, attempt, transient=False) from exc


@dataclass
class _Batch:
    """The state of one ``judge_rows`` call: its usage, the cached replies it found, and its cache writer."""

    usage: Usage
    cached: dict[str, ChatReply] = field(default_factory=dict)
    looked_up: set[str] = field(default_factory=set)
    writer: CacheWriter | None = None


@dataclass
class Judge:
    """Judges rows with one chat function: retries, cache, structured-output fallback and usage accounting.

    With ``reuse_cached`` off, replies are fetched afresh (and still stored). ``no_structured_output`` holds the
    models that refused a response format; keep one ``Judge`` (or share the set) so a model is asked only once.
    """

    chat: ChatFn
    settings: RunSettings = field(default_factory=RunSettings)
    cache: ReplyCache | None = None
    reuse_cached: bool = True
    write_batch: int = 256  # replies per cache write; 1 stores each reply as soon as it is made
    no_structured_output: set[str] = field(default_factory=set)
    no_logprobs: set[str] = field(default_factory=set)  # models that refused to return log probabilities
    # Calls in flight across every batch that shares this semaphore (a provider's callers), on top of each batch's
    # own ``settings.max_concurrency``.
    slots: CallLimit | None = None
    cache_scope: str = ""  # whose cache entries these are ("" for entries everyone shares)
    deadlines: CallDeadlines = field(default_factory=CallDeadlines)  # the time-outs of this judge's calls

    async def _lookup(self, keys: list[str], batch: _Batch) -> dict[str, ChatReply]:
        """Stored replies; a cache that cannot be read is a miss (counted and logged), never a failed batch."""
        assert self.cache is not None
        try:
            return await self.cache.get_many(keys)
        except Exception as exc:  # the cache saves work; results never depend on it
            batch.usage.cache_errors += 1
            logger.warning("judgment cache lookup failed, judging afresh: %s: %s", type(exc).__name__, exc)
            return {}

    async def _store(self, batch: _Batch, write: Callable[[CacheWriter], Awaitable[None]]) -> None:
        """A cache write; when the cache cannot be written (unreadable, full), stop writing for this batch."""
        assert batch.writer is not None
        try:
            await write(batch.writer)
        except Exception as exc:  # results are returned all the same; only the saving of work is lost
            batch.usage.cache_errors += 1
            batch.writer = None
            logger.warning("judgment cache write failed; not caching this batch: %s: %s", type(exc).__name__, exc)

    def _key(self, request: ChatRequest, sample: int) -> str:
        return cache_key(request, sample, scope=self.cache_scope)

    def _effective(self, request: ChatRequest) -> ChatRequest:
        if request.response_schema is not None and request.model in self.no_structured_output:
            request = request.plain()
        if request.top_logprobs is not None and request.model in self.no_logprobs:
            request = request.without_logprobs()
        return request

    async def _cached(self, key: str, batch: _Batch) -> ChatReply | None:
        if self.cache is None or not self.reuse_cached:
            return None
        if key not in batch.looked_up:  # e.g. the plain form of a request after a structured-output fallback
            batch.cached |= await self._lookup([key], batch)
            batch.looked_up.add(key)
        return batch.cached.get(key)

    async def _reply(
        self, request: ChatRequest, sample: int, batch: _Batch, keep: Callable[[ChatReply], ChatReply]
    ) -> tuple[ChatReply, int]:
        """The reply to ``request`` (sample number ``sample``), from the cache when it has it.

        ``keep`` says what of a new reply is worth storing.

        Raises:
            CallFailedError: when no reply could be had.
        """
        request = self._effective(request)
        key = self._key(request, sample) if self.cache is not None else ""  # no cache: no key to pay for
        if (cached := await self._cached(key, batch)) is not None:
            batch.usage.cache_hits += 1
            return cached, 0
        try:
            async with self.slots.slot() if self.slots is not None else contextlib.nullcontext():
                reply, attempts = await call_with_retries(self.chat, request, self.settings, self.deadlines)
        except CallFailedError as failed:
            batch.usage.record(None, failed.attempts)
            if isinstance(failed.cause, LogprobsRefusedError):
                # Asked again without them: the written verdict stands, and the row says why it has no distribution.
                if request.model not in self.no_logprobs:
                    logger.warning("judge model %s refused log probabilities; verdicts are read as written: %s",
                                   request.model, failed.reason)  # fmt: skip
                self.no_logprobs.add(request.model)
                reply, attempts = await self._reply(request.without_logprobs(), sample, batch, keep)
                return reply, failed.attempts + attempts
            if failed.transient or request.response_schema is None:
                raise
            # Rejected with a response format: try once without, and stop asking this model if that works.
            reply, attempts = await self._reply(request.plain(), sample, batch, keep)
            self.no_structured_output.add(request.model)
            batch.usage.structured_output_fallbacks += 1
            return reply, failed.attempts + attempts
        batch.usage.record(reply, attempts)
        if replaced := surrogate_count(reply.text):  # not text: kept as data, readable and storable
            batch.usage.replaced_characters += replaced
            reply = replace(reply, text=without_surrogates(reply.text))
        reply = keep(reply)
        if batch.writer is not None:
            await self._store(batch, lambda writer: writer.add(key, reply))
        return reply, attempts

    async def _judge_sample(
        self, definition: JudgeDefinition, request: ChatRequest, sample: int, batch: _Batch
    ) -> RowResult:
        """One judgment of one rendered request; failures become outcomes, never exceptions."""
        try:
            reply, attempts = await self._reply(
                request, sample, batch, lambda reply: verdict_tokens_only(definition, reply)
            )
        except CallFailedError as failed:  # a failed call is data: counted and reported, never raised into the batch
            return RowResult(Outcome.inference_error, error=failed.reason, attempts=failed.attempts)
        parsed = definition.parse_verdict(reply.text, truncated=reply.truncated)
        if parsed.error is not None or parsed.score is None:
            return RowResult(
                Outcome.parse_error,
                verdict=parsed.label,
                judge_output=reply.text,
                error=parsed.error,
                attempts=attempts,
                finish_reason=reply.finish_reason,
            )
        result = replace(weigh_verdict(definition, reply, parsed), attempts=attempts)
        if result.distribution_fallback is not None:
            batch.usage.expected_verdict_fallbacks += 1
            if request.model in self.no_logprobs:
                result = replace(
                    result, distribution_fallback=f"the judge model {request.model} refuses log probabilities"
                )
        return result

    async def judge_rows(
        self, definition: JudgeDefinition, rows: Sequence[Row], *, judge_model: str, usage: Usage | None = None
    ) -> list[RowResult]:
        """Judge every row with one definition; see ``judge_requests``.

        Rows whose text looks like a verdict are flagged (``verdict_in_input``); their score still comes from the
        judge's output only.
        """
        values = text_columns(
            rows, definition.required_columns, defaults=definition.defaults, user=definition.identifier
        )
        requests = [render_request(definition, row, judge_model=judge_model) for row in values]
        results = await self.judge_requests([(definition, request) for request in requests], usage=usage)
        return [flag_verdict_like(definition, row, result) for row, result in zip(values, results, strict=True)]

    async def judge_requests(
        self, items: Sequence[tuple[JudgeDefinition, ChatRequest]], *, usage: Usage | None = None
    ) -> list[RowResult]:
        """Judge every rendered request ``num_samples`` times (of its definition), concurrently.

        At most ``settings.max_concurrency`` calls are in flight; results keep the input order. Cached replies are
        looked up in one batch first; new ones are stored in batches as they come, and the rest when the call ends,
        even when it is cancelled. Pass ``usage`` to have this batch's calls and tokens added to it.
        """
        batch = _Batch(usage if usage is not None else Usage())
        jobs = [
            (definition, request, sample) for definition, request in items for sample in range(definition.num_samples)
        ]
        if self.cache is not None:
            batch.writer = CacheWriter(self.cache, batch_size=self.write_batch)
            if self.reuse_cached:
                keys = list(dict.fromkeys(self._key(self._effective(r), sample) for _, r, sample in jobs))
                batch.cached = await self._lookup(keys, batch)
                batch.looked_up = set(keys)
        try:
            samples = await map_bounded(
                jobs,
                lambda job: self._judge_sample(job[0], job[1], job[2], batch),
                self.settings.max_concurrency,
            )
        finally:
            if batch.writer is not None:
                await self._store(batch, lambda writer: writer.flush())
        results, start = [], 0
        for definition, _ in items:
            results.append(combine_samples(samples[start : start + definition.num_samples]))
            start += definition.num_samples
        return results
