"""Expected verdicts: the judge's probability of each allowed verdict, read from the log probabilities of its reply.

A sampled rating is one draw ("8"); the token probabilities at the verdict's position say how sure the judge was
("8" 0.6, "7" 0.3, "9" 0.1), and their mean (7.8) orders answers more finely than the draw. Verdicts spelt over
several tokens ("10" as "1", "0") are followed along the reply: the alternatives of the next token say whether "1"
went on to "10" or ended. An alternative that is a whole verdict and also the start of a longer one, off the
reply's own path (a "1" when the judge wrote "8", on a 1-10 scale), cannot be told apart from one reply: its
probability is left out and reported as ``unresolved``.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from llama_stack_judge.core.chat import TokenLogprob

MAX_EXPECTED_VALUES = 101  # a rating scale longer than this is not read token by token
EXPECTED_TOP_LOGPROBS = 20  # alternatives asked for per token: the most the OpenAI API (and the stack) allows
VERDICT_TOKENS = 8  # tokens kept from the verdict's first: enough to spell any verdict and its closing bracket


@dataclass(frozen=True, slots=True)
class VerdictDistribution:
    """The judge's probabilities of the allowed verdicts at its verdict's position.

    Attributes:
        probabilities: allowed verdict -> probability, renormalised over the allowed verdicts.
        mass: the probability the top alternatives put on allowed verdicts, before renormalising (how much of the
            judge's choice the distribution covers).
        unresolved: probability on alternatives that may be either of two verdicts ("1" or "10"), left out.
    """

    probabilities: Mapping[str, float]
    mass: float
    unresolved: float = 0.0

    def expected(self, values: Mapping[str, float]) -> float:
        """Σ p(v)·value(v): the expected score."""
        return math.fsum(p * values[v] for v, p in self.probabilities.items())

    def as_row(self) -> dict[str, object]:
        """The distribution as a score row shows it (probabilities rounded to 4 places)."""
        row: dict[str, object] = {
            "probabilities": {v: round(p, 4) for v, p in self.probabilities.items()},
            "mass": round(self.mass, 4),
        }
        if self.unresolved:
            row["unresolved"] = round(self.unresolved, 4)
        return row


class NoDistributionError(ValueError):
    """The reply's log probabilities do not give a verdict distribution (the reason is the message)."""


def _continues(char: str) -> bool:
    """Whether a character can continue a verdict ("1" + "0" is "10"); anything else ends it ("8" + "]]")."""
    return char.isalnum() or char == "."


@dataclass
class _Walk:
    values: frozenset[str]
    tokens: Sequence[TokenLogprob]
    mass: dict[str, float]
    unresolved: float = 0.0

    def _value_ended_by(self, text: str) -> str | None:
        """The allowed verdict ``text`` spells and then ends, if any ("8]]" spells "8")."""
        for end in range(len(text) - 1, 0, -1):
            if text[:end] in self.values and not _continues(text[end]):
                return text[:end]
        return None

    def _is_prefix(self, text: str) -> bool:
        return any(value.startswith(text) and value != text for value in self.values)

    def at(self, index: int, prefix: str, weight: float, lead: str) -> None:
        """Share ``weight`` (the probability of reaching token ``index`` with verdict text ``prefix``) out.

        ``lead`` is the part of the token before the verdict starts (a "[[" or a space fused to the verdict).
        """
        token = self.tokens[index]
        alternatives = dict(token.top)
        alternatives.setdefault(token.token, token.logprob)
        for text, logprob in alternatives.items():
            on_path = text == token.token
            if lead:
                stripped = text.lstrip()
                if not stripped.startswith(lead.lstrip()):
                    continue  # not the same lead-in: no verdict starts here on this alternative
                text = stripped[len(lead.lstrip()) :]
            spelt = prefix + text
            probability = weight * math.exp(logprob)
            last = index + 1 == len(self.tokens)
            if (ended := self._value_ended_by(spelt)) is not None:
                self.mass[ended] = self.mass.get(ended, 0.0) + probability
            elif on_path and not last and (spelt in self.values or self._is_prefix(spelt)):
                self.at(index + 1, spelt, probability, lead="")  # the next token says how it goes on
            elif spelt in self.values and (on_path or not self._is_prefix(spelt)):
                self.mass[spelt] = self.mass.get(spelt, 0.0) + probability
            elif spelt in self.values or self._is_prefix(spelt):
                self.unresolved += probability


def verdict_distribution(
    text: str, tokens: Sequence[TokenLogprob], verdict_start: int, values: Sequence[str]
) -> VerdictDistribution:
    """The distribution over ``values`` of the verdict that starts at character ``verdict_start`` of ``text``.

    Raises:
        NoDistributionError: when no token starts the verdict there, or no alternative is an allowed verdict.
    """
    tokens = tokens_from(tokens, verdict_start, len(tokens))
    if not tokens:
        raise NoDistributionError("no token of the log probabilities covers the verdict's position")
    token = tokens[0]
    if text[token.offset : token.offset + len(token.token)] != token.token:
        raise NoDistributionError("the log probabilities' tokens do not line up with the reply text")
    walk = _Walk(frozenset(values), tokens, {})
    walk.at(0, "", 1.0, lead=token.token[: verdict_start - token.offset])
    mass = math.fsum(walk.mass.values())
    if mass <= 0:
        raise NoDistributionError("no alternative at the verdict's position is an allowed verdict")
    probabilities = {value: walk.mass[value] / mass for value in values if value in walk.mass}
    return VerdictDistribution(probabilities, mass=mass, unresolved=walk.unresolved)


def rating_values(minimum: float | None, maximum: float | None) -> list[str] | None:
    """The integer ratings of a bounded integer scale as written ("1" … "10"); ``None`` if it is not one."""
    if minimum is None or maximum is None or not (minimum.is_integer() and maximum.is_integer()):
        return None
    if maximum - minimum + 1 > MAX_EXPECTED_VALUES:
        return None
    return [str(value) for value in range(int(minimum), int(maximum) + 1)]


def tokens_from(tokens: Sequence[TokenLogprob], start: int, count: int = VERDICT_TOKENS) -> tuple[TokenLogprob, ...]:
    """The ``count`` tokens from the one covering character ``start`` (none if no token covers it)."""
    for index, token in enumerate(tokens):
        if token.offset <= start < token.offset + len(token.token):
            return tuple(tokens[index : index + count])
    return ()
