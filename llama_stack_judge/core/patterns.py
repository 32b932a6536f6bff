"""Verdict patterns run by RE2: matching time is linear in the text, whatever pattern a caller registers.

Python's ``re`` backtracks, so a pattern such as ``(a|a)*b`` takes exponential time on a long run of ``a`` and blocks
the event loop it runs on. RE2 has no backtracking; it refuses the constructs that need it (backreferences,
lookaround, possessive quantifiers), and such patterns are refused at registration with the reason.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import re2

from llama_stack_judge.core.literals import required_literal
from llama_stack_judge.core.text import surrogate_count, utf8

MAX_PATTERN_CHARS = 1_000
# Verdicts sit at the end of a judge's reply (the last match wins): a reply longer than this is read from its tail.
MAX_SCANNED_CHARS = 100_000
_MAX_PROGRAM_BYTES = 8 << 20  # RE2's memory budget per pattern: larger programs are refused, not slowly built

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # the refusal is reported to the caller; RE2 need not also write it to stderr
_OPTIONS.max_mem = _MAX_PROGRAM_BYTES


class PatternError(ValueError):
    """A pattern RE2 cannot run, or one without exactly one capture group."""


@dataclass(frozen=True, slots=True)
class VerdictPattern:
    """One compiled verdict pattern with one capture group."""

    source: str
    _compiled: Any = field(repr=False, compare=False)
    # Text without it cannot match, and is not handed to RE2 (core/literals.py: what a search through RE2 costs).
    _literal: bytes | None = field(default=None, repr=False, compare=False)

    @classmethod
    def compile(cls, source: str) -> "VerdictPattern":
        """Compile ``source`` with RE2.

        Raises:
            PatternError: naming why: too long, not RE2 syntax, too large a program, or not one capture group.
        """
        if len(source) > MAX_PATTERN_CHARS:
            raise PatternError(f"is {len(source)} characters long; the limit is {MAX_PATTERN_CHARS}")
        if surrogate_count(source):
            raise PatternError("holds a lone surrogate, which is not text")
        try:
            compiled = re2.compile(source, _OPTIONS)
        except re2.error as exc:
            reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
            raise PatternError(
                f"does not compile: {reason} (patterns use RE2 syntax: no backreferences or lookaround)"
            ) from None
        if compiled.groups != 1:
            raise PatternError(f"must have exactly one capture group, has {compiled.groups}")
        literal = required_literal(source)
        return cls(source, compiled, None if literal is None else utf8(literal))

    def captures(self, text: str) -> list[tuple[str, int]]:
        """The capture of every match in ``text`` (its last ``MAX_SCANNED_CHARS`` characters) and where it starts."""
        skipped = max(0, len(text) - MAX_SCANNED_CHARS)
        encoded = utf8(text[skipped:])  # a lone surrogate becomes one U+FFFD: character offsets hold
        # RE2 matches UTF-8 bytes: handed a str, its wrapper converts every offset between bytes and characters in
        # Python (~3x the time of the match). Here a byte offset becomes a character offset by decoding the bytes
        # since the previous match (matches come in order and end on character boundaries): linear in the text.
        # In ASCII text the two offsets are the same.
        ascii_text = len(encoded) == len(text) - skipped
        found: list[tuple[str, int]] = []
        byte_at = char_at = 0
        for match in self._matches(encoded):
            # A group that took no part in a match (``(a)?b``) captures nothing: an empty verdict, a parse error.
            offset = max(match.start(1), match.start())
            if not ascii_text:
                byte_at, char_at = offset, char_at + len(encoded[byte_at:offset].decode())
            found.append(((match.group(1) or b"").decode(), skipped + (offset if ascii_text else char_at)))
        return found

    def _matches(self, encoded: bytes) -> Iterable[Any]:
        """RE2's matches in ``encoded``; none without the literal, and one search where it appears once."""
        if self._literal is not None:
            occurrences = encoded.count(self._literal)
            if occurrences <= 1:
                match = self._compiled.search(encoded) if occurrences else None
                return [match] if match is not None else []
        matches: Iterable[Any] = self._compiled.finditer(encoded)
        return matches

    def found_in(self, text: str) -> bool:
        """Whether the pattern matches anywhere in ``text`` (its first and last ``MAX_SCANNED_CHARS`` characters)."""
        if len(text) > 2 * MAX_SCANNED_CHARS:
            return self.found_in(text[:MAX_SCANNED_CHARS]) or self.found_in(text[-MAX_SCANNED_CHARS:])
        encoded = utf8(text)  # bytes: see ``captures``
        if self._literal is not None and self._literal not in encoded:
            return False
        return self._compiled.search(encoded) is not None


def compile_patterns(sources: tuple[str, ...]) -> tuple[VerdictPattern, ...]:
    """Compile every pattern; the error names the first bad one by position and text."""
    compiled = []
    for index, source in enumerate(sources):
        try:
            compiled.append(VerdictPattern.compile(source))
        except PatternError as exc:
            shown = source if len(source) <= 80 else source[:77] + "..."
            raise PatternError(f"pattern {index} {shown!r} {exc}") from None
    return tuple(compiled)
