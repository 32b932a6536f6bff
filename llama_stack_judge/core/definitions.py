"""Judge definitions: the data that makes a judge, validated once at load or registration."""

import hashlib
import json
from enum import StrEnum
from functools import cached_property, partial
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from llama_stack_judge.core.grammar import DEFAULT_EXPLANATION_CHARS, json_verdict_grammar, text_verdict_grammar
from llama_stack_judge.core.logprobs import MAX_EXPECTED_VALUES, rating_values
from llama_stack_judge.core.patterns import PatternError, VerdictPattern, compile_patterns
from llama_stack_judge.core.templates import PromptTemplate
from llama_stack_judge.core.text import strings_in, surrogate_count
from llama_stack_judge.core.verdicts import (
    RATING_LIMIT,
    ParsedVerdict,
    check_choice,
    check_rating,
    json_verdict,
    parse_choice,
    parse_rating,
)
from llama_stack_judge.errors import JudgeDefinitionError, validation_problems

# `[[8]]` or `[[8.5]]`; raw strings, so `\[` means a bracket.
DEFAULT_RATING_PATTERN = r"\[\[\s*(-?\d+(?:\.\d+)?)\s*\]\]"


MAX_JUDGE_TOKENS = 131_072  # a longer judge reply is no verdict anyone reads


class Aggregation(StrEnum):
    """Aggregations a judge definition may ask for (the stack's names)."""

    average = "average"
    median = "median"
    accuracy = "accuracy"
    categorical_count = "categorical_count"
    win_rate = "win_rate"  # ours: pairwise scores 1 / 0.5 / 0, ties counted as half
    position_bias = "position_bias"  # ours: position consistency and first-position wins of pairwise tasks
    turn_average = "turn_average"  # ours: mean score per conversation turn, over every turn judged


class FailurePolicy(StrEnum):
    """What aggregates do with rows that could not be scored (they are always counted)."""

    exclude = "exclude"  # left out of the statistics, as MT-bench does
    minimum = "minimum"  # counted as the lowest score the verdict allows


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _compile_patterns(patterns: tuple[str, ...]) -> tuple[str, ...]:
    if not patterns:
        raise ValueError("at least one pattern is needed")
    try:
        compile_patterns(patterns)
    except PatternError as exc:
        raise ValueError(str(exc)) from None
    return patterns


class RatingVerdict(_Frozen):
    """A numeric verdict such as ``[[8]]``, optionally bounded."""

    type: Literal["rating"] = "rating"
    patterns: tuple[str, ...] = Field(
        default=(DEFAULT_RATING_PATTERN,),
        description="Regexes with one capture group, tried in order; the last match of the first that matches wins.",
    )
    min: float | None = Field(
        default=None,
        ge=-RATING_LIMIT,
        le=RATING_LIMIT,
        description=f"Lowest allowed rating; lower is a parse error (unset: -{RATING_LIMIT:g}).",
    )
    max: float | None = Field(
        default=None,
        ge=-RATING_LIMIT,
        le=RATING_LIMIT,
        description=f"Highest allowed rating; higher is a parse error (unset: {RATING_LIMIT:g}).",
    )

    _check_patterns = field_validator("patterns")(_compile_patterns)

    @model_validator(mode="after")
    def _check_range(self) -> "RatingVerdict":
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class ChoiceVerdict(_Frozen):
    """A categorical verdict such as ``[[A]]``, each label mapped to a score."""

    type: Literal["choice"] = "choice"
    patterns: tuple[str, ...] = Field(description="Regexes with one capture group, as for ratings.")
    choices: dict[str, float] = Field(description="Allowed labels and the score each stands for.", min_length=1)

    _check_patterns = field_validator("patterns")(_compile_patterns)


def _verdict_type(value: Any) -> str:
    """The verdict kind; a verdict without ``type`` is a rating."""
    return str(value.get("type", "rating") if isinstance(value, dict) else getattr(value, "type", "rating"))


Verdict = Annotated[
    Annotated[RatingVerdict, Tag("rating")] | Annotated[ChoiceVerdict, Tag("choice")], Discriminator(_verdict_type)
]


class Sampling(_Frozen):
    """Sampling settings of judge calls; null leaves a setting to the model's server (it is not sent).

    Some models refuse settings: OpenAI's reasoning models reject ``temperature`` 0 and ``max_tokens``.
    """

    temperature: float | None = Field(default=0.0, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=1024, ge=1, le=MAX_JUDGE_TOKENS)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)


def token_limit(max_tokens: int | None) -> str:
    """How an error names the token limit a reply reached."""
    return "the server's own limit" if max_tokens is None else f"max_tokens {max_tokens}"


class JudgeDefinition(_Frozen):
    """Everything that makes an LLM judge. Frozen: per-call overrides make a new definition."""

    identifier: str = Field(min_length=1, description="Scoring function id, e.g. 'judge::helpfulness-v1'.")
    description: str = ""
    judge_model: str = Field(default="", description="Model id in the stack; empty means the provider's default.")
    system_prompt: str | None = Field(default=None, description="Template of the system message, if any.")
    prompt_template: str = Field(description="Template of the user message; {name} placeholders come from the row.")
    inputs: tuple[str, ...] | None = Field(
        default=None, description="Row columns the templates may use; when set, any other placeholder is an error."
    )
    defaults: dict[str, str] = Field(default_factory=dict, description="Values for placeholders absent from a row.")
    verdict: Verdict = Field(default_factory=RatingVerdict)
    sampling: Sampling = Field(default_factory=Sampling)
    aggregation_functions: tuple[Aggregation, ...] = (Aggregation.average,)
    num_samples: int = Field(
        default=1, ge=1, le=32, description="Judgments per row; more than one needs a temperature above 0."
    )
    failure_policy: FailurePolicy = FailurePolicy.exclude
    structured_output: bool = Field(
        default=False,
        description="Ask for a JSON verdict (response_format json_schema); falls back to the patterns where the "
        "inference provider does not support it.",
    )
    accept_truncated: bool = Field(
        default=False,
        description="Score a reply cut off by the token limit (finish_reason 'length') when a verdict can be read "
        "from it: for judges that give their verdict first. Off, such rows are parse errors ('truncated'), because "
        "a verdict read from an unfinished reply may be an example the judge was restating.",
    )
    verdict_first: bool = Field(
        default=False,
        description="Ask for the verdict before the explanation (an instruction is appended to the user message; "
        "with verdict_grammar the reply is forced to open with it). The first verdict in the reply counts, and a "
        "reply cut off by the token limit after its verdict is scored, so a small sampling.max_tokens buys the "
        "verdict without paying for the explanation.",
    )
    verdict_weighting: Literal["sampled", "expected"] = Field(
        default="sampled",
        description="'sampled': the verdict the judge wrote. 'expected': the mean of the allowed verdicts weighted by "
        "the judge's probabilities at the verdict's position (asks for top_logprobs; integer ratings with min and "
        "max, or choices). Where the provider returns no log probabilities the written verdict is used and counted.",
    )
    verdict_grammar: bool = Field(
        default=False,
        description="llama.cpp servers only: constrain the reply with a grammar that lets the judge explain, then "
        "forces a well-formed verdict ('[[verdict]]', or the JSON object with structured_output).",
    )
    max_explanation_chars: int = Field(
        default=DEFAULT_EXPLANATION_CHARS,
        ge=0,
        le=100_000,
        description="With verdict_grammar: the longest explanation the grammar lets the judge write before its "
        "verdict (or after it, verdict first). A shorter one is fewer tokens to generate, and a judge that rambles "
        "still ends with a verdict.",
    )

    @model_validator(mode="after")
    def _check_text(self) -> "JudgeDefinition":
        for where, text in strings_in(self.model_dump(mode="json")):
            if surrogate_count(text):
                raise ValueError(f"{where}: holds a lone surrogate (\\ud800-\\udfff), which is not text")
        return self

    @model_validator(mode="after")
    def _check_options(self) -> "JudgeDefinition":
        if self.num_samples > 1 and self.sampling.temperature == 0:
            raise ValueError(f"num_samples {self.num_samples} needs sampling.temperature > 0 (samples would be equal)")
        if self.failure_policy is FailurePolicy.minimum and self.minimum_score is None:
            raise ValueError("failure_policy 'minimum' needs a lowest score: set verdict.min")
        return self

    @model_validator(mode="after")
    def _check_templates(self) -> "JudgeDefinition":
        try:
            templates = self.templates
        except JudgeDefinitionError as exc:
            raise ValueError(str(exc)) from None
        if self.inputs is not None:
            known = set(self.inputs) | set(self.defaults)
            unknown = [name for template in templates for name in template.placeholders if name not in known]
            if unknown:
                raise ValueError(f"unknown placeholders {sorted(set(unknown))}; known: {sorted(known)}")
        return self

    @model_validator(mode="after")
    def _check_grammar(self) -> "JudgeDefinition":
        if self.verdict_grammar and not self.structured_output:
            sample = f"[[{self._sample_verdict()}]]"
            if self.parse_verdict(sample).error is not None:
                raise ValueError(
                    f"verdict_grammar writes verdicts as {sample!r}, which the verdict patterns do not read"
                )
        return self

    @model_validator(mode="after")
    def _check_weighting(self) -> "JudgeDefinition":
        if self.verdict_weighting == "expected":
            if self.structured_output:
                raise ValueError(
                    "verdict_weighting 'expected' reads the verdict's tokens from text: no structured_output"
                )
            if self.expected_values is None:
                raise ValueError(
                    "verdict_weighting 'expected' needs choices or an integer rating scale with min and max "
                    f"(at most {MAX_EXPECTED_VALUES} values)"
                )
        return self

    @cached_property
    def expected_values(self) -> dict[str, float] | None:
        """Each allowed verdict as written and the score it stands for, where the verdicts are a short list."""
        if isinstance(self.verdict, ChoiceVerdict):
            return dict(self.verdict.choices)
        values = rating_values(self.verdict.min, self.verdict.max)
        return None if values is None else {value: float(value) for value in values}

    def _sample_verdict(self) -> str:
        """A verdict this judge allows, as the grammar would write it."""
        if isinstance(self.verdict, ChoiceVerdict):
            return next(iter(self.verdict.choices))
        bound = next((b for b in (self.verdict.min, self.verdict.max) if b is not None), 1.0)
        return str(int(bound)) if bound.is_integer() else str(bound)

    @cached_property
    def grammar(self) -> str | None:
        """The llama.cpp grammar of this judge's replies, if ``verdict_grammar`` is on."""
        if not self.verdict_grammar:
            return None
        form = partial(
            json_verdict_grammar if self.structured_output else text_verdict_grammar,
            verdict_first=self.verdict_first,
            max_explanation_chars=self.max_explanation_chars,
        )
        if isinstance(self.verdict, ChoiceVerdict):
            return form(choices=sorted(self.verdict.choices))
        return form(minimum=self.verdict.min, maximum=self.verdict.max)

    @cached_property
    def templates(self) -> tuple[PromptTemplate, ...]:
        """The parsed system template (if any) and user template."""
        system = (
            () if self.system_prompt is None else (PromptTemplate.parse(self.system_prompt, where="system_prompt"),)
        )
        return (*system, PromptTemplate.parse(self.prompt_template))

    @cached_property
    def required_columns(self) -> tuple[str, ...]:
        """Row columns a row must provide (placeholders without a default)."""
        names = dict.fromkeys(name for template in self.templates for name in template.placeholders)
        return tuple(name for name in names if name not in self.defaults)

    @cached_property
    def compiled_patterns(self) -> tuple[VerdictPattern, ...]:
        """The verdict patterns, compiled once (by RE2: linear-time matching)."""
        return compile_patterns(self.verdict.patterns)

    @property
    def minimum_score(self) -> float | None:
        """The lowest score this judge can give, if bounded."""
        if isinstance(self.verdict, ChoiceVerdict):
            return min(self.verdict.choices.values())
        return self.verdict.min

    @cached_property
    def response_schema(self) -> dict[str, Any]:
        """The JSON schema of a structured verdict: a short explanation, then the verdict."""
        verdict: dict[str, Any]
        if isinstance(self.verdict, ChoiceVerdict):
            verdict = {"type": "string", "enum": sorted(self.verdict.choices)}
        else:
            bounds = {"minimum": self.verdict.min, "maximum": self.verdict.max}
            verdict = {"type": "number", **{k: v for k, v in bounds.items() if v is not None}}
        return {
            "type": "object",
            "properties": {"explanation": {"type": "string"}, "verdict": verdict},
            "required": ["explanation", "verdict"],
            "additionalProperties": False,
        }

    def parse_verdict(self, judge_output: str, *, truncated: bool = False) -> ParsedVerdict:
        """Read this judge's verdict from its output: a JSON verdict if it is one, else by the patterns.

        A ``truncated`` output (cut off by the token limit) has no verdict unless ``accept_truncated`` is set, and
        then only one that is complete: for structured output, a whole JSON object.
        """
        structured = json_verdict(judge_output) if self.structured_output else None
        accept_truncated = self.accept_truncated or self.verdict_first  # the cut came after the verdict
        if truncated and (not accept_truncated or (self.structured_output and structured is None)):
            return ParsedVerdict(
                error=f"truncated: the reply reached the token limit ({token_limit(self.sampling.max_tokens)}) before "
                "it ended, and a verdict read from it may be one the judge was quoting; raise sampling.max_tokens"
                + ("" if accept_truncated else ", or set accept_truncated for a judge that gives its verdict first")
            )
        if structured is not None:
            if isinstance(self.verdict, ChoiceVerdict):
                return check_choice(structured, self.verdict.choices)
            return check_rating(structured, minimum=self.verdict.min, maximum=self.verdict.max)
        first = self.verdict_first
        if isinstance(self.verdict, ChoiceVerdict):
            return parse_choice(judge_output, self.compiled_patterns, self.verdict.choices, first=first)
        return parse_rating(
            judge_output, self.compiled_patterns, minimum=self.verdict.min, maximum=self.verdict.max, first=first
        )

    @cached_property
    def content_hash(self) -> str:
        """sha256 of everything that decides this judge's verdicts (all fields but its id and description)."""
        content = self.model_dump(mode="json", exclude={"identifier", "description"})
        added_later_defaults = (
            ("verdict_weighting", "sampled"),
            ("verdict_first", False),
            ("max_explanation_chars", DEFAULT_EXPLANATION_CHARS),
        )
        for added_later, default in added_later_defaults:
            if content[added_later] == default:  # left out when unset, so hashes made before them hold
                del content[added_later]
        return hashlib.sha256(json.dumps(content, sort_keys=True, ensure_ascii=False).encode()).hexdigest()

    @property
    def verdict_mode(self) -> str:
        """How the verdict is asked for: ``patterns``, ``json`` (structured output), ``grammar`` or ``grammar+json``."""
        if self.verdict_grammar:
            return "grammar+json" if self.structured_output else "grammar"
        return "json" if self.structured_output else "patterns"

    def provenance(self, judge_model: str) -> dict[str, Any]:
        """What produced a judgment with this judge: model, definition hash, verdict mode and sampling."""
        return {
            "judge_model": judge_model,
            "content_hash": self.content_hash,
            "verdict_mode": self.verdict_mode,
            "verdict_weighting": self.verdict_weighting,
            "verdict_first": self.verdict_first,
            "sampling": self.sampling.model_dump(mode="json"),
        }

    def with_changes(self, **changes: Any) -> "JudgeDefinition":
        """A validated copy with some fields replaced; this definition is left unchanged."""
        return validate_definition({**self.model_dump(), **changes}, source=self.identifier)


def validate_definition(data: Any, *, source: str) -> JudgeDefinition:
    """Validate raw data into a definition, with an error that names ``source`` and each bad field."""
    try:
        return JudgeDefinition.model_validate(data)
    except ValidationError as exc:
        raise JudgeDefinitionError(f"{source}: invalid judge definition: {validation_problems(exc)}") from None


def load_definition_file(path: Path, *, prefix: str) -> JudgeDefinition:
    """Load one JSON definition; its id is ``<prefix>::<file stem>``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise JudgeDefinitionError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise JudgeDefinitionError(f"{path}: cannot read: {exc}") from None
    if not isinstance(data, dict):
        raise JudgeDefinitionError(f"{path}: a judge definition must be a JSON object")
    if "identifier" in data:
        raise JudgeDefinitionError(f"{path}: 'identifier' comes from the file name; remove the field")
    return validate_definition({**data, "identifier": f"{prefix}::{path.stem}"}, source=str(path))


def load_definitions(directory: Path, *, prefix: str) -> list[JudgeDefinition]:
    """Load every ``*.json`` definition directly inside ``directory``, in name order.

    Symlinks and anything that resolves outside the directory are refused, so a config directory
    cannot be used to read other files.
    """
    root = directory.resolve()
    if not root.is_dir():
        raise JudgeDefinitionError(f"{directory}: not a directory of judge definitions")
    definitions = []
    for path in sorted(directory.glob("*.json")):
        if path.is_symlink() or path.resolve().parent != root:
            raise JudgeDefinitionError(f"{path}: symlinks and files outside {root} are not read")
        definitions.append(load_definition_file(path, prefix=prefix))
    return definitions
