"""Turning an eval row into the conversation a candidate model answers."""

import json
from collections.abc import Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class Conversation:
    """What a candidate answers for one row: the opening messages, then further user turns, one at a time.

    Turn k+1 is asked with the model's own earlier answers in the conversation, as MT-bench answer generation does.
    """

    opening: tuple[ChatMessage, ...]
    follow_ups: tuple[str, ...] = ()

    def with_answers(self, answers: Sequence[str]) -> tuple[ChatMessage, ...]:
        """The messages for the next turn, given the answers so far (one per turn already asked)."""
        messages = list(self.opening)
        for answer, user in zip(answers, self.follow_ups, strict=False):
            messages += [ChatMessage("assistant", answer), ChatMessage("user", user)]
        return tuple(messages)

    @property
    def turns(self) -> int:
        """How many answers the row needs."""
        return 1 + len(self.follow_ups)


def _user_turns(value: object, index: int) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(turn, str) for turn in value):
        raise JudgeInputError(f"row {index}: column 'turns' must be a non-empty list of user messages")
    return value


def conversation_from_row(row: Row, index: int, *, system_message: str | None) -> Conversation:
    """The conversation of one row: the candidate's system message, then the row's own messages.

    Rows carry ``turns`` (user messages answered one after another), ``chat_completion_input`` (a list of messages,
    or its JSON text; system, user and assistant turns are all kept) or ``input_query`` (one user message).
    """
    follow_ups: list[str] = []
    if "turns" in row:
        first, *follow_ups = _user_turns(row["turns"], index)
        messages = [ChatMessage("user", first)]
    elif "chat_completion_input" in row:
        messages = _messages_from_json(row["chat_completion_input"], index)
    elif isinstance(row.get("input_query"), str):
        messages = [ChatMessage("user", str(row["input_query"]))]
    else:
        raise JudgeInputError(f"row {index}: needs a 'turns', 'chat_completion_input' or text 'input_query' column")
    system = [ChatMessage("system", system_message)] if system_message else []
    return Conversation((*system, *messages), tuple(follow_ups))


def conversations(rows: Sequence[Row], *, system_message: str | None) -> list[Conversation]:
    """Conversations of all rows, checked before any generation starts."""
    if not rows:
        raise JudgeInputError("no rows to evaluate")
    return [conversation_from_row(row, index, system_message=system_message) for index, row in enumerate(rows)]


def generation_columns(answers: Sequence[str]) -> dict[str, object]:
    """The columns a row's answers add: ``generated_answer`` (the last), and ``generated_turns`` when several."""
    return {"generated_answer": answers[-1]} | ({"generated_turns": list(answers)} if len(answers) > 1 else {})
