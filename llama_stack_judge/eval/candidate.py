"""The candidate's answers: each row's turns asked in order through the stack, under one limit for every job."""

from collections.abc import Awaitable, Callable
from typing import Any

from llama_stack_api import BenchmarkConfig, Inference, SamplingParams

from llama_stack_judge.core.chat import ChatRequest
from llama_stack_judge.core.deadlines import CallDeadlines
from llama_stack_judge.core.generation import Conversation, conversations, generation_columns
from llama_stack_judge.core.limits import CallLimit
from llama_stack_judge.core.options import JudgeOptions
from llama_stack_judge.core.runner import CallFailedError, RunSettings, call_with_retries, map_bounded
from llama_stack_judge.core.text import without_surrogates
from llama_stack_judge.errors import GenerationError
from llama_stack_judge.eval.config import JudgeEvalConfig
from llama_stack_judge.stack.inference_api import StackChat

Generation = dict[str, Any]


def sampling_of(params: SamplingParams, default_max_tokens: int) -> dict[str, float | int | None]:
    """The chat request's sampling fields for the stack's sampling params."""
    strategy = params.strategy
    kind = getattr(strategy, "type", "greedy")
    temperature = 0.0 if kind == "greedy" else getattr(strategy, "temperature", None)
    top_p = getattr(strategy, "top_p", None) if kind == "top_p" else None
    return {"temperature": temperature, "top_p": top_p, "max_tokens": params.max_tokens or default_max_tokens}


class Candidate:
    """Asks a benchmark's candidate model for its answers, through the stack's inference API."""

    def __init__(self, inference_api: Inference, config: JudgeEvalConfig) -> None:
        self._chat = StackChat(inference_api, spacing_s=config.call_spacing_s)
        self._settings = RunSettings.of(config)
        self._default_max_tokens = config.default_max_tokens
        # One limit for every job of this process: two jobs share the candidate's capacity instead of doubling it.
        self._slots = CallLimit(config.max_concurrency, adaptive=config.adaptive_concurrency)
        self._deadlines = CallDeadlines()

    async def _answer(self, conversation: Conversation, index: int, model: str, sampling: dict[str, Any]) -> list[str]:
        """The answers to every turn of one row, each turn asked with the earlier answers."""
        answers: list[str] = []
        for _ in range(conversation.turns):
            request = ChatRequest(model=model, messages=conversation.with_answers(answers), **sampling)
            try:
                async with self._slots.slot():
                    reply, _ = await call_with_retries(self._chat, request, self._settings, self._deadlines)
            except CallFailedError as failed:
                raise GenerationError(
                    f"row {index} turn {len(answers) + 1}: generation with {model} failed after "
                    f"{failed.attempts} attempt(s): {failed.reason}"
                ) from None
            answers.append(without_surrogates(reply.text))  # judged and stored as text, whatever the model sent
        return answers

    async def answers(
        self,
        rows: list[dict[str, object]],
        config: BenchmarkConfig,
        options: JudgeOptions,
        done: dict[int, Generation] | None = None,
        keep: Callable[[int, Generation], Awaitable[None]] | None = None,
    ) -> list[Generation]:
        """Every row's answers, concurrently; rows in ``done`` are not asked again, new ones go to ``keep``."""
        candidate = config.eval_candidate
        system = candidate.system_message.content if candidate.system_message is not None else None
        plans = conversations(rows, system_message=system if isinstance(system, str) else None)
        sampling = sampling_of(candidate.sampling_params, self._default_max_tokens)
        done = done or {}

        async def generate(index: int) -> Generation:
            if index in done:
                return done[index]
            generation = generation_columns(await self._answer(plans[index], index, candidate.model, sampling))
            if keep is not None:
                await keep(index, generation)
            return generation

        concurrency = options.max_concurrency or self._settings.max_concurrency
        return await map_bounded(list(range(len(rows))), generate, concurrency)
