r"""The longest piece of plain text every match of a pattern contains: a check that needs no regex engine.

A search through RE2's Python binding costs about ten Python calls around the match itself, and lets go of the
interpreter lock, which other threads (llama-stack's sqlite threads) may then hold a while. Text without the literal
cannot match, so it is not handed to RE2 at all: inputs checked for verdict look-alikes rarely hold it. Text holding
it once can match at most once (two matches that do not overlap hold it twice), so one search stands for the whole
scan of a judge's reply.

Only patterns in a plain subset are read: literal characters and escaped punctuation, ``.``, ``^``, ``$``, classes,
groups, ``\d \w \s \b`` (and their capitals), and ``* + ?``. Anything else (``{m,n}``, inline flags, ``\x41``,
``\Q…\E``, POSIX classes, a top-level ``|``) gives no literal: the pattern then always goes to RE2.
"""

import string

_PLAIN_ESCAPES = set("dDwWsSbB")  # one character each, none a literal
_QUANTIFIERS = set("*+?")


def required_literal(source: str) -> str | None:
    """The longest run of literal characters outside groups and classes, unquantified; ``None`` if none or unsure.

    Every match holds that run: the pattern is a sequence of items there, and each of the run's items matches
    exactly its own character.
    """
    runs: list[str] = []
    run: list[str] = []
    depth, index = 0, 0
    while index < len(source):
        char = source[index]
        if char == "\\":
            escaped = source[index + 1 : index + 2]
            if escaped in _PLAIN_ESCAPES:
                item = None
            elif escaped and escaped in string.punctuation:
                item = escaped
            else:  # escapes that read further characters, or mean a character other than their own
                return None
            index += 2
        elif char == "[":
            end = _class_end(source, index)
            if end is None:
                return None
            item, index = None, end + 1
        elif char == "(":
            if source.startswith("(?", index) and not source.startswith(("(?:", "(?P<"), index):
                return None  # inline flags, e.g. (?i), change what a literal matches
            depth, item, index = depth + 1, None, index + 1
        elif char == ")":
            depth, item, index = depth - 1, None, index + 1
        elif char == "{" or (char == "|" and depth == 0):
            return None  # a repetition count, or a top-level choice between alternatives
        else:
            item = None if char in ".^$|*+?" else char  # a quantifier's item was left out of the run already
            index += 1
        quantified = source[index : index + 1] in _QUANTIFIERS
        if depth == 0 and item is not None and not quantified:
            run.append(item)
        else:  # anything else ends the run: what comes next is not right after it in every match
            runs.append("".join(run))
            run = []
    runs.append("".join(run))
    longest = max(runs, key=len)
    return longest or None


def _class_end(source: str, start: int) -> int | None:
    """Where the class opened at ``start`` closes; ``None`` for a POSIX class (``[[:alpha:]]``) or none at all."""
    index = start + 1
    if source[index : index + 1] == "^":
        index += 1
    if source[index : index + 1] == "]":  # a leading ']' is one of the class's characters
        index += 1
    while index < len(source):
        if source.startswith("[:", index):
            return None
        if source[index] == "\\":
            index += 2
            continue
        if source[index] == "]":
            return index
        index += 1
    return None
