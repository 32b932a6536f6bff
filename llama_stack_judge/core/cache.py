"""A content-keyed store of judge replies: the same request is never paid for twice."""

import asyncio
import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from typing import Protocol

from llama_stack_judge.core.chat import ChatReply, ChatRequest, TokenLogprob

CACHE_VERSION = 1  # part of every key: bump it when what a key covers changes


def cache_key(request: ChatRequest, sample: int, *, scope: str = "") -> str:
    """Hash of everything that decides a reply: model, sampling, response format, messages, and sample number.

    The verdict patterns are not part of it: replies are stored raw and parsed again on every use. A ``scope``
    (a tenant's name) keeps one tenant's entries apart from everyone else's: no one can learn from a cache hit
    that another tenant judged the same text.
    """
    # The fields as ``dataclasses.asdict`` gives them (keys stored before hold), built without its deep copy.
    content: dict[str, object] = {
        "v": CACHE_VERSION,
        "sample": sample,
        "model": request.model,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
        "top_p": request.top_p,
        "response_schema": request.response_schema,
    }
    for added_later in ("grammar", "top_logprobs"):  # left out when unset, so keys stored before them hold
        if (value := getattr(request, added_later)) is not None:
            content[added_later] = value
    if scope:
        content["scope"] = scope
    return hashlib.sha256(json.dumps(content, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def encode_reply(reply: ChatReply) -> str:
    """A reply as stored text: its fields as ``dataclasses.asdict`` gives them, built without its deep copy."""
    logprobs = reply.logprobs
    return json.dumps(
        {
            "text": reply.text,
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "finish_reason": reply.finish_reason,
            "logprobs": None
            if logprobs is None
            else [
                {"token": token.token, "logprob": token.logprob, "offset": token.offset, "top": token.top}
                for token in logprobs
            ],
        },
        ensure_ascii=False,
    )


def decode_reply(stored: str) -> ChatReply | None:
    """A stored reply, or ``None`` for an entry that cannot be read (it is then judged again)."""
    try:
        data = json.loads(stored)
        tokens = data.pop("logprobs", None)
        logprobs = None if tokens is None else tuple(_token(token) for token in tokens)
        return ChatReply(**data, logprobs=logprobs)
    except (TypeError, ValueError, KeyError, AttributeError):  # JSONDecodeError is a ValueError
        return None


def _token(data: dict[str, object]) -> TokenLogprob:
    top = data.get("top") or []
    if not isinstance(top, list):
        raise ValueError("top alternatives must be a list")
    return TokenLogprob(
        token=str(data["token"]),
        logprob=float(data["logprob"]),  # type: ignore[arg-type]
        offset=int(data["offset"]),  # type: ignore[call-overload]
        top=tuple((str(text), float(logprob)) for text, logprob in top),
    )


class ReplyCache(Protocol):
    """Where judge replies are kept between calls and runs; batch operations, so a store pays per batch."""

    async def get_many(self, keys: Sequence[str]) -> dict[str, ChatReply]:
        """The stored replies among ``keys``."""
        ...

    async def put_many(self, replies: Mapping[str, ChatReply]) -> None:
        """Store ``replies`` (replacing any under the same keys)."""
        ...


class MemoryCache:
    """A reply cache held in memory (tests, one-off runs)."""

    def __init__(self) -> None:
        self.replies: dict[str, ChatReply] = {}

    async def get_many(self, keys: Sequence[str]) -> dict[str, ChatReply]:
        """The stored replies among ``keys``."""
        return {key: self.replies[key] for key in keys if key in self.replies}

    async def put_many(self, replies: Mapping[str, ChatReply]) -> None:
        """Store ``replies``."""
        self.replies.update(replies)


class CacheWriter:
    """Collects new replies and stores them in batches: every ``batch_size`` replies or ``interval_s`` seconds.

    One write at a time: replies that come in while a write is under way wait for the next. Writes that overlap
    contend for the database's write lock, and each one past the connection pool's size opens a connection (with
    aiosqlite, a thread): against a model that answers at once, that more than doubled the cost of a stored reply.
    With ``batch_size`` 1 (durable jobs) every ``add`` returns only once its reply is stored, after the write under
    way; the replies that waited together go in one write.

    Call ``flush`` at the end (also on cancellation) so nothing judged is lost.
    """

    def __init__(self, cache: ReplyCache, *, batch_size: int = 256, interval_s: float = 2.0) -> None:
        self._cache = cache
        self._pending: dict[str, ChatReply] = {}
        self._batch_size = batch_size
        self._interval_s = interval_s
        self._last_flush = time.monotonic()
        self._writing = asyncio.Lock()

    async def add(self, key: str, reply: ChatReply) -> None:
        """Queue one reply; store the queue when it is full or old enough (and no write is under way, but for 1)."""
        self._pending[key] = reply
        due = len(self._pending) >= self._batch_size or time.monotonic() - self._last_flush >= self._interval_s
        if due and (self._batch_size == 1 or not self._writing.locked()):
            await self.flush()

    async def flush(self) -> None:
        """Store every queued reply (after the write under way, if any)."""
        async with self._writing:
            batch, self._pending = self._pending, {}
            self._last_flush = time.monotonic()
            if not batch:
                return
            try:
                await self._cache.put_many(batch)
            except BaseException:  # e.g. cancelled mid-write: kept for the final flush (a stored key is replaced)
                self._pending = batch | self._pending
                raise
