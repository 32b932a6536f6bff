"""The one thing the core needs from an inference stack: an async chat function."""

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One chat message."""

    role: str
    content: str


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A chat completion request, independent of any client library."""

    model: str
    messages: tuple[ChatMessage, ...]
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    response_schema: Mapping[str, Any] | None = None  # ask for a JSON reply of this schema
    grammar: str | None = None  # a llama.cpp grammar (GBNF) the reply must follow
    top_logprobs: int | None = None  # ask for this many alternatives, with log probabilities, at each reply token

    def plain(self) -> "ChatRequest":
        """This request without a response format."""
        return replace(self, response_schema=None)

    def without_logprobs(self) -> "ChatRequest":
        """This request without asking for log probabilities."""
        return replace(self, top_logprobs=None)


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """One token of a reply: its text, log probability, character offset in the reply, and the top alternatives."""

    token: str
    logprob: float
    offset: int
    top: tuple[tuple[str, float], ...] = ()


def token_offsets(text: str, tokens: list[str]) -> list[int]:
    """Where each token starts in ``text``, counted back from its end.

    Providers give tokens as text and sometimes drop part of a character split over two tokens; counting from the
    end keeps the offsets of the reply's tail (where verdicts are) right even then. Users check the token is there.
    """
    offsets, end = [], len(text)
    for token in reversed(tokens):
        end -= len(token)
        offsets.append(end)
    return offsets[::-1]


@dataclass(frozen=True, slots=True)
class ChatReply:
    """The text of a completion, why it ended, and its token counts where the provider reports them."""

    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None  # "stop", "length" (cut off by the token limit), …
    logprobs: tuple[TokenLogprob, ...] | None = None  # when asked for and the provider gives them

    @property
    def truncated(self) -> bool:
        """Whether the reply was cut off by the token limit."""
        return self.finish_reason == "length"


class ChatFn(Protocol):
    """Sends one chat request; raises ``TransientChatError`` for failures worth retrying."""

    async def __call__(self, request: ChatRequest) -> ChatReply:
        """Send ``request`` and return the reply."""
        ...


class TransientChatError(Exception):
    """A failure that may pass on retry: timeout, rate limit, 5xx, lost connection."""


class LogprobsRefusedError(Exception):
    """The model will not return log probabilities: asking again will not help, asking without them will.

    llama-cpp-python's server started without ``logits_all`` answers 500 to every request for them.
    """
