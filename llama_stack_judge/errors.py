"""Error hierarchy. Every input error is a ValueError, which llama-stack maps to HTTP 400."""

from pydantic import ValidationError


class JudgeError(Exception):
    """Base class of every error raised by llama-stack-judge."""


class JudgeInputError(JudgeError, ValueError):
    """A request, a row or a definition is not usable; the message names the row, column or field."""


class JudgeDefinitionError(JudgeInputError):
    """A judge definition (file, registration or per-call override) is invalid."""


class JudgeNotFoundError(JudgeInputError):
    """A request names something this provider does not have (HTTP 404)."""


class UnknownScoringFunctionError(JudgeNotFoundError):
    """A scoring function id is not served by this provider."""


class JobNotFoundError(JudgeNotFoundError):
    """An eval job id is unknown for the given benchmark."""


class GenerationError(JudgeError):
    """A candidate model could not answer a row, after retries."""


class JobPageError(JudgeError):
    """A page of an eval job could not be judged (on whichever replica worked it)."""


def validation_problems(error: ValidationError) -> str:
    """A pydantic validation error as ``field.path: message; …``."""
    return "; ".join(
        f"{'.'.join(str(part) for part in problem['loc']) or '(top level)'}: {problem['msg']}"
        for problem in error.errors()
    )


MAX_REPORTED = 5  # problems named in one error; the rest are counted


def input_problems(problems: list[str], *, where: str = "", suffix: str = "") -> JudgeInputError:
    """One error naming the first few of ``problems`` (each names its row or field) and counting the rest."""
    more = f" (and {len(problems) - MAX_REPORTED} more)" if len(problems) > MAX_REPORTED else ""
    return JudgeInputError(f"{where}: " * bool(where) + "; ".join(problems[:MAX_REPORTED]) + more + suffix)
