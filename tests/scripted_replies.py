"""Reply functions for the scripted provider's ``reply_fn`` option."""


def rate_by_length(messages: list[dict[str, str]]) -> str:
    """Longer prompts get higher ratings (1-10): a deterministic judge that depends on the row."""
    return f"Length-based. Rating: [[{min(10, 1 + len(messages[-1]['content']) // 40)}]]"
