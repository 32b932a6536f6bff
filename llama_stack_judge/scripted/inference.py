"""An inline inference provider whose replies come from rules, for tests and CI without keys or network."""

import asyncio
import importlib
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from llama_stack_api import (
    InferenceProvider,
    Model,
    ModelsProtocolPrivate,
    ModelType,
    OpenAIChatCompletion,
    OpenAIChatCompletionChunk,
    OpenAIChatCompletionRequestWithExtraBody,
    OpenAICompletion,
    OpenAICompletionRequestWithExtraBody,
    OpenAIEmbeddingsRequestWithExtraBody,
    OpenAIEmbeddingsResponse,
)
from llama_stack_api.inference.models import (
    OpenAIChatCompletionResponseMessage,
    OpenAIChatCompletionUsage,
    OpenAIChoice,
    OpenAIChoiceLogprobs,
    OpenAITokenLogProb,
    OpenAITopLogProb,
)

from llama_stack_judge.scripted.config import ScriptedInferenceConfig


def _text_of(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(getattr(part, "text", "") or "" for part in content)
    return ""


def _load_reply_fn(target: str) -> Callable[[list[dict[str, str]]], object]:
    module_name, _, function_name = target.partition(":")
    if not module_name or not function_name:
        raise ValueError(f"reply_fn must look like 'package.module:function', got {target!r}")
    function = getattr(importlib.import_module(module_name), function_name, None)
    if not callable(function):
        raise ValueError(f"reply_fn {target!r} is not a callable")
    return function  # type: ignore[no-any-return]


# Digits one per token (as Qwen and Llama 2 split numbers), words, runs of spaces, runs of punctuation.
_TOKEN = re.compile(r"\d|[^\W\d]+|\s+|[^\w\s]+")


def _logprobs(reply: str, verdict_alternatives: dict[str, float] | None) -> OpenAIChoiceLogprobs:
    """Tokens of ``reply``, each certain but the verdict's first, which gets ``verdict_alternatives``."""
    tokens = _TOKEN.findall(reply)
    opening = max((i for i, token in enumerate(tokens) if token.endswith("[[")), default=None)
    verdict = None if opening is None else opening + 1
    content = []
    for index, token in enumerate(tokens):
        top = dict(verdict_alternatives or {}) if index == verdict else {}
        top.setdefault(token, 0.0)
        content.append(
            OpenAITokenLogProb(
                token=token,
                logprob=top[token],
                top_logprobs=[OpenAITopLogProb(token=text, logprob=logprob) for text, logprob in top.items()],
            )
        )
    return OpenAIChoiceLogprobs(content=content)


class ScriptedInferenceImpl(InferenceProvider, ModelsProtocolPrivate):
    """Answers chat completions from the rules of its config."""

    __provider_id__: str

    def __init__(self, config: ScriptedInferenceConfig) -> None:
        self.config = config
        self._rules = [(re.compile(rule.match), rule) for rule in config.rules]
        self._log_lock = asyncio.Lock()
        self._reply_fn = _load_reply_fn(config.reply_fn) if config.reply_fn else None

    async def initialize(self) -> None:
        """Nothing to load."""

    async def shutdown(self) -> None:
        """Nothing to release."""

    async def should_refresh_models(self) -> bool:
        """The model list is fixed by the config."""
        return False

    async def list_models(self) -> list[Model] | None:
        """The configured model ids."""
        return [
            Model(
                identifier=name,
                provider_resource_id=name,
                provider_id=self.__provider_id__,
                model_type=ModelType.llm,
            )
            for name in self.config.models
        ]

    async def register_model(self, model: Model) -> Model:
        """Accept only configured models."""
        if model.provider_resource_id not in self.config.models:
            raise ValueError(f"scripted provider serves {self.config.models}, not {model.provider_resource_id!r}")
        return model

    async def unregister_model(self, model_id: str) -> None:
        """Nothing to release."""

    async def openai_chat_completion(
        self, params: OpenAIChatCompletionRequestWithExtraBody
    ) -> OpenAIChatCompletion | AsyncIterator[OpenAIChatCompletionChunk]:
        """Reply by the first matching rule, else the default reply."""
        if params.stream:
            raise ValueError("the scripted provider does not stream")
        model = params.model.removeprefix(f"{self.__provider_id__}/")
        wants_json = getattr(params.response_format, "type", None) == "json_schema"
        allowed = self.config.structured_output_models
        if params.response_format is not None and allowed is not None and model not in allowed:
            raise ValueError(f"model {model!r} does not support response_format")
        conversation = "\n".join(_text_of(message.content) for message in params.messages)
        found = next(
            (
                (match, rule)
                for pattern, rule in self._rules
                if (rule.models is None or model in rule.models) and (match := pattern.search(conversation))
            ),
            None,
        )
        match, rule = found if found is not None else (None, None)
        await self._log(params.model, params.messages, rule, params.response_format)
        delay = self.config.delay_s + (rule.delay_s if rule is not None else 0.0)
        if delay:
            await asyncio.sleep(delay)
        if rule is not None and rule.fail is not None:
            raise RuntimeError(rule.fail)
        if wants_json and rule is not None and rule.json_reply is not None:
            reply = json.dumps(rule.json_reply)
        elif match is not None and rule is not None and rule.reply is not None:
            reply = match.expand(rule.reply)
        elif rule is None and self._reply_fn is not None:
            reply = str(self._reply_fn([{"role": m.role, "content": _text_of(m.content)} for m in params.messages]))
        else:
            reply = self.config.default_reply
        gives_logprobs = self.config.logprobs_models is None or model in self.config.logprobs_models
        logprobs = (
            _logprobs(reply, rule.verdict_logprobs if rule is not None else None)
            if params.logprobs and gives_logprobs
            else None
        )
        return OpenAIChatCompletion(
            id=f"scripted-{uuid.uuid4().hex}",
            created=int(time.time()),
            model=params.model,
            choices=[
                OpenAIChoice(
                    index=0,
                    finish_reason="stop",
                    message=OpenAIChatCompletionResponseMessage(content=reply),
                    logprobs=logprobs,
                )
            ],
            usage=OpenAIChatCompletionUsage(
                prompt_tokens=len(conversation.split()),
                completion_tokens=len(reply.split()),
                total_tokens=len(conversation.split()) + len(reply.split()),
            ),
        )

    async def _log(self, model: str, messages: list[object], rule: object, response_format: object) -> None:
        if self.config.call_log is None:
            return
        entry = {
            "time": time.time(),
            "model": model,
            "response_format": getattr(response_format, "type", None),
            "messages": [
                {"role": getattr(m, "role", "?"), "content": _text_of(getattr(m, "content", ""))} for m in messages
            ],
            "rule": None if rule is None else getattr(rule, "match", None),
        }
        async with self._log_lock:
            with Path(self.config.call_log).open("a", encoding="utf-8") as log:
                log.write(json.dumps(entry) + "\n")

    async def openai_completion(self, params: OpenAICompletionRequestWithExtraBody) -> OpenAICompletion:
        """Text completion is not scripted."""
        raise ValueError("the scripted provider only answers chat completions")

    async def openai_embeddings(self, params: OpenAIEmbeddingsRequestWithExtraBody) -> OpenAIEmbeddingsResponse:
        """Embeddings are not scripted."""
        raise ValueError("the scripted provider only answers chat completions")
