"""The core's chat function, served by the stack's inference API (never a client of our own)."""

import contextlib
import json

import httpx
from llama_stack_api import Inference, ListChatCompletionsRequest, OpenAIChatCompletionRequestWithExtraBody

from llama_stack_judge.core.chat import (
    ChatReply,
    ChatRequest,
    LogprobsRefusedError,
    TokenLogprob,
    TransientChatError,
    token_offsets,
)
from llama_stack_judge.core.spacing import StartSpacing
from llama_stack_judge.stack.registry import FirstUseGuard

_TRANSIENT_STATUS = {408, 409, 425, 429}


def is_transient(exc: BaseException) -> bool:
    """Whether a failed inference call is worth retrying (timeouts, 429, 5xx, lost connections)."""
    status = getattr(exc, "status_code", None) or getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(status, int):
        return status in _TRANSIENT_STATUS or status >= 500
    # A body that is not JSON is a server or proxy glitch more often than a lasting fault: worth another try.
    if isinstance(exc, TimeoutError | ConnectionError | httpx.TransportError | json.JSONDecodeError):
        return True
    # openai's connection, timeout and response-validation errors carry no status; matched by name, so that this
    # module does not import openai.
    transient = {"APIConnectionError", "APITimeoutError", "APIResponseValidationError"}
    return any(cls.__name__ in transient for cls in type(exc).__mro__)


def refuses_logprobs(exc: BaseException) -> bool:
    """Whether a failed call that asked for log probabilities was refused for asking them.

    Servers say so in the error's text, with a 400 or (llama-cpp-python) a 500: "logprobs is not supported for
    models created with logits_all=False".
    """
    text = str(exc).lower()
    return "logprob" in text or "logits_all" in text


class StackChat:
    """Sends core chat requests through the stack's inference router, their starts ``spacing_s`` apart."""

    def __init__(self, inference_api: Inference, *, spacing_s: float = 0.0) -> None:
        self._inference = inference_api
        self._tables_ready = FirstUseGuard(self._create_inference_store_tables)
        self._spacing = StartSpacing(spacing_s)

    async def __call__(self, request: ChatRequest) -> ChatReply:
        """Send one request; transient failures are raised as ``TransientChatError``."""
        await self._tables_ready()
        await self._spacing.wait_turn()
        return await self._send(request)

    async def _create_inference_store_tables(self) -> None:
        """Have the stack create its inference-store tables before the first concurrent calls.

        The stack writes each completion to its inference store in a background task, and its SQL store creates
        tables lazily without a lock: concurrent first writes fail with "no such table". One read through the
        store, awaited alone, creates them.
        """
        with contextlib.suppress(NotImplementedError):  # no inference store configured: nothing to create
            await self._inference.list_chat_completions(ListChatCompletionsRequest(limit=1))

    async def _send(self, request: ChatRequest) -> ChatReply:
        # A new params object per call: the router rewrites params.model in place.
        params = OpenAIChatCompletionRequestWithExtraBody(
            model=request.model,
            messages=[{"role": m.role, "content": m.content} for m in request.messages],
            temperature=request.temperature,
            max_tokens=request.max_tokens,
            top_p=request.top_p,
            response_format=None
            if request.response_schema is None
            else {
                "type": "json_schema",
                "json_schema": {"name": "verdict", "schema": dict(request.response_schema), "strict": True},
            },
            # Extra fields travel to the provider as the request body's extras (llama.cpp reads `grammar`).
            **({"grammar": request.grammar} if request.grammar is not None else {}),
            **({"logprobs": True, "top_logprobs": request.top_logprobs} if request.top_logprobs is not None else {}),
        )
        try:
            completion = await self._inference.openai_chat_completion(params)
        except Exception as exc:
            if request.top_logprobs is not None and refuses_logprobs(exc):
                raise LogprobsRefusedError(f"{type(exc).__name__}: {exc}") from exc
            if is_transient(exc):
                raise TransientChatError(f"{type(exc).__name__}: {exc}") from exc
            raise
        choices = getattr(completion, "choices", None)
        if not choices:
            raise TransientChatError("the inference provider returned no choices")
        text = choices[0].message.content
        if not isinstance(text, str):
            text = "".join(getattr(part, "text", "") for part in text or [])
        usage = getattr(completion, "usage", None)
        finish_reason = getattr(choices[0], "finish_reason", None)
        return ChatReply(
            text=text,
            prompt_tokens=getattr(usage, "prompt_tokens", None),
            completion_tokens=getattr(usage, "completion_tokens", None),
            finish_reason=str(getattr(finish_reason, "value", finish_reason)) if finish_reason is not None else None,
            logprobs=_token_logprobs(text, getattr(choices[0], "logprobs", None)),
        )


def _token_logprobs(text: str, logprobs: object) -> tuple[TokenLogprob, ...] | None:
    """The reply's tokens with their log probabilities and alternatives, where the provider gave them."""
    content = getattr(logprobs, "content", None)
    if not content:
        return None
    tokens = [str(token.token) for token in content]
    return tuple(
        TokenLogprob(
            token=token,
            logprob=float(entry.logprob),
            offset=offset,
            top=tuple((str(top.token), float(top.logprob)) for top in entry.top_logprobs or ()),
        )
        for token, offset, entry in zip(tokens, token_offsets(text, tokens), content, strict=True)
    )
