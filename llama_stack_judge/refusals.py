"""Our input errors as HTTP answers that keep the client's connection open.

llama-stack 0.7.3's server answers a plain ``ValueError`` through Starlette's generic ``Exception`` handler, which
re-raises after answering: the server logs a traceback and drops the kept-alive connection, and the client's next
call waits ~4 s on a retry (or fails with ``max_retries=0``). FastAPI answers an ``HTTPException`` itself: with its
status, one log line, and the connection kept.
"""

import functools
from collections.abc import Awaitable, Callable

from llama_stack.log import get_logger
from starlette.exceptions import HTTPException

from llama_stack_judge.errors import JudgeInputError, JudgeNotFoundError

logger = get_logger(name=__name__, category="providers")


class RefusedRequestError(HTTPException, ValueError):
    """A request our providers refuse, with its HTTP status; still a ``ValueError`` for in-process callers."""

    def __str__(self) -> str:
        return str(self.detail)


def answers_refusals[**P, R](method: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Turn the ``JudgeInputError`` a provider method raises into a 400 (404 for something unknown)."""

    @functools.wraps(method)
    async def answering(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except JudgeInputError as exc:
            status = 404 if isinstance(exc, JudgeNotFoundError) else 400
            logger.info("Request refused", status=status, method=method.__name__, reason=str(exc))
            raise RefusedRequestError(status_code=status, detail=str(exc)) from None

    return answering
