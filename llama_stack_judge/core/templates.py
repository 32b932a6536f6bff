"""Prompt templates with plain ``{name}`` placeholders, parsed once and rendered by substitution."""

import string
from collections.abc import Mapping
from dataclasses import dataclass

from llama_stack_judge.errors import JudgeDefinitionError

_FORMATTER = string.Formatter()


@dataclass(frozen=True, slots=True)
class PromptTemplate:
    """A template split into literal text and placeholder names.

    Only bare identifiers are placeholders: ``{0}``, ``{x.y}``, ``{x[0]}``, ``{x!r}`` and ``{x:>9}`` are rejected,
    so a template can never reach attributes or run code. ``{{`` and ``}}`` stand for literal braces. Row values
    are inserted as they are, braces included.
    """

    source: str
    segments: tuple[tuple[str, str | None], ...]

    @classmethod
    def parse(cls, source: str, *, where: str = "prompt_template") -> "PromptTemplate":
        """Parse and check a template.

        Raises:
            JudgeDefinitionError: naming ``where`` and the offending placeholder.
        """
        try:
            parsed = list(_FORMATTER.parse(source))
        except ValueError as exc:
            raise JudgeDefinitionError(
                f"{where}: malformed template ({exc}); write literal braces as '{{{{' and '}}}}'"
            ) from None
        segments: list[tuple[str, str | None]] = []
        for literal, field, spec, conversion in parsed:
            if field is not None:
                shown = "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
                if not field.isidentifier():
                    raise JudgeDefinitionError(
                        f"{where}: placeholder {shown} is not allowed; use a plain column name such as {{response}}"
                    )
                if spec or conversion:
                    raise JudgeDefinitionError(f"{where}: placeholder {shown} may not carry a conversion or format")
            segments.append((literal, field))
        return cls(source=source, segments=tuple(segments))

    @property
    def placeholders(self) -> tuple[str, ...]:
        """Placeholder names in order of first use."""
        return tuple(dict.fromkeys(name for _, name in self.segments if name is not None))

    def render(self, values: Mapping[str, str]) -> str:
        """Fill every placeholder from ``values`` (which must hold all of them)."""
        return "".join(literal + (values[name] if name is not None else "") for literal, name in self.segments)
