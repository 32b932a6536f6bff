"""Turning an eval row into the conversation a candidate model answers."""

import json
from collections.abc import Sequence

from llama_stack_judge.core.chat import ChatMessage
from llama_stack_judge.core.rows import Row
from llama_stack_judge.errors import JudgeInputError

_ROLES = {"system", "user", "assistant"}


def _messages_from_json(value: object, index: int) -> list[ChatMessage]:
    where = f"row {index}: column 'chat_completion_input'"
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise JudgeInputError(f"{where} is not valid JSON: {exc.msg}") from None
    if not isinstance(value, list) or not value:
        raise JudgeInputError(f"{where} must be a non-empty list of messages")
    messages = []
    for position, message in enumerate(value):
        role = message.get("role") if isinstance(message, dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        if role not in _ROLES or not isinstance(content, str):
            raise JudgeInputError(f"{where}: message {position} needs a role in {sorted(_ROLES)} and text content")
        messages.append(ChatMessage(role, content))
    return messages


def conversation_from_row(row: Row, index: int, *, system_message: str | None) -> tuple[ChatMessage, ...]:
    """The messages to send for one row: the candidate's system message, then the row's own messages.

    Rows carry either ``chat_completion_input`` (a list of messages, or its JSON text; system, user and assistant
    turns are all kept) or ``input_query`` (one user message).
    """
    if "chat_completion_input" in row:
        messages = _messages_from_json(row["chat_completion_input"], index)
    elif isinstance(row.get("input_query"), str):
        messages = [ChatMessage("user", str(row["input_query"]))]
    else:
        raise JudgeInputError(f"row {index}: needs a 'chat_completion_input' or a text 'input_query' column")
    system = [ChatMessage("system", system_message)] if system_message else []
    return (*system, *messages)


def conversations(rows: Sequence[Row], *, system_message: str | None) -> list[tuple[ChatMessage, ...]]:
    """Conversations of all rows, checked before any generation starts."""
    if not rows:
        raise JudgeInputError("no rows to evaluate")
    return [conversation_from_row(row, index, system_message=system_message) for index, row in enumerate(rows)]
