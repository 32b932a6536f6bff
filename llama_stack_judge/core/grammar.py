"""llama.cpp grammars (GBNF) that let a judge explain in its own words, then force a well-formed verdict.

Two forms: free text ending in ``[[verdict]]`` (the MT-bench format), and the JSON object
``{"explanation": "...", "verdict": ...}`` of structured output. The explanation is bounded, so a judge that
rambles still ends with a verdict instead of running out of tokens.
"""

import json

DEFAULT_EXPLANATION_CHARS = 1500
# Enumerate integer ratings up to this many values; wider or fractional ranges take any number, range-checked later.
_MAX_ENUMERATED = 101


def _literal(text: str) -> str:
    """A GBNF string literal (JSON escaping is a subset GBNF reads)."""
    return json.dumps(text)


def _rating_rule(minimum: float | None, maximum: float | None) -> str:
    if (
        minimum is not None
        and maximum is not None
        and minimum.is_integer()
        and maximum.is_integer()
        and maximum - minimum < _MAX_ENUMERATED
    ):
        return " | ".join(_literal(str(value)) for value in range(int(minimum), int(maximum) + 1))
    sign = '"-"? ' if minimum is None or minimum < 0 else ""
    return f'{sign}[0-9]{{1,6}} ("." [0-9]{{1,3}})?'


def text_verdict_grammar(
    *, choices: list[str] | None = None, minimum: float | None = None, maximum: float | None = None,
    max_explanation_chars: int = DEFAULT_EXPLANATION_CHARS, verdict_first: bool = False,
) -> str:  # fmt: skip
    """Any explanation without ``[[``, then ``[[verdict]]`` (or the verdict first): a choice label or a rating."""
    verdict = " | ".join(_literal(label) for label in choices) if choices else _rating_rule(minimum, maximum)
    return "\n".join(
        (
            'root ::= "[[" verdict "]]" explanation' if verdict_first else 'root ::= explanation "[[" verdict "]]"',
            # A single "[" is allowed in the explanation; "[[" opens the verdict.
            f'explanation ::= ([^[] | "[" [^[]){{0,{max_explanation_chars}}}',
            f"verdict ::= {verdict}",
        )
    )


def json_verdict_grammar(
    *, choices: list[str] | None = None, minimum: float | None = None, maximum: float | None = None,
    max_explanation_chars: int = DEFAULT_EXPLANATION_CHARS, verdict_first: bool = False,
) -> str:  # fmt: skip
    """The JSON object ``{"explanation": "...", "verdict": ...}`` (or verdict first) with a choice label or rating."""
    verdict = (
        " | ".join(_literal(json.dumps(label)) for label in choices) if choices else _rating_rule(minimum, maximum)
    )
    fields = [r'"\"explanation\"" ws ":" ws string', r'"\"verdict\"" ws ":" ws verdict']
    first, second = fields[::-1] if verdict_first else fields
    return "\n".join(
        (
            f'root ::= "{{" ws {first} ws "," ws {second} ws "}}"',
            rf'string ::= "\"" char{{0,{max_explanation_chars}}} "\""',
            r'char ::= [^"\\\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})',
            r"ws ::= [ \t\n]{0,4}",
            f"verdict ::= {verdict}",
        )
    )
