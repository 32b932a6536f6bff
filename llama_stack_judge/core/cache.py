"""A content-keyed store of judge replies: the same request is never paid for twice."""

import hashlib
import json
from dataclasses import asdict
from typing import Protocol

from llama_stack_judge.core.chat import ChatReply, ChatRequest

CACHE_VERSION = 1  # part of every key: bump it when what a key covers changes


def cache_key(request: ChatRequest, sample: int) -> str:
    """Hash of everything that decides a reply: model, sampling, response format, messages, and sample number.

    The verdict patterns are not part of it: replies are stored raw and parsed again on every use.
    """
    content = {"v": CACHE_VERSION, "sample": sample, **asdict(request)}
    return hashlib.sha256(json.dumps(content, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def encode_reply(reply: ChatReply) -> str:
    """A reply as stored text."""
    return json.dumps(asdict(reply), ensure_ascii=False)


def decode_reply(stored: str) -> ChatReply | None:
    """A stored reply, or ``None`` for an entry that cannot be read (it is then judged again)."""
    try:
        data = json.loads(stored)
        return ChatReply(**data)
    except (json.JSONDecodeError, TypeError):
        return None


class ReplyCache(Protocol):
    """Where judge replies are kept between calls and runs."""

    async def get(self, key: str) -> ChatReply | None:
        """The stored reply for ``key``, if any."""
        ...

    async def put(self, key: str, reply: ChatReply) -> None:
        """Store ``reply`` under ``key``."""
        ...


class MemoryCache:
    """A reply cache held in memory (tests, one-off runs)."""

    def __init__(self) -> None:
        self.replies: dict[str, ChatReply] = {}

    async def get(self, key: str) -> ChatReply | None:
        """The stored reply for ``key``, if any."""
        return self.replies.get(key)

    async def put(self, key: str, reply: ChatReply) -> None:
        """Store ``reply`` under ``key``."""
        self.replies[key] = reply
