"""Waiting for a server we started: until its health URL answers, or it exits, or time runs out."""

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

LOG_TAIL_LINES = 15


class NotHealthyError(RuntimeError):
    """A started server that exited, or did not answer in time; the message ends with its log's tail, if any."""


def log_tail(log: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a server's log."""
    try:
        text = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:]) or "(empty log)"


def wait_until_healthy(
    url: str,
    process: "subprocess.Popen[Any]",
    *,
    what: str,
    within_s: float,
    log: Path | None = None,
    poll_s: float = 0.2,
) -> None:
    """Return once ``url`` answers 200 while ``process`` runs.

    Raises:
        NotHealthyError: when ``process`` exits first ("exited with code N while starting") or ``within_s`` seconds
            pass ("did not answer within"), naming ``what`` and ending with the tail of its ``log``.
    """
    deadline = time.monotonic() + within_s
    while True:
        if process.poll() is not None:
            raise NotHealthyError(_with_log(f"{what} exited with code {process.returncode} while starting", log))
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise NotHealthyError(_with_log(f"{what} did not answer within {within_s:.0f} s", log))
        time.sleep(poll_s)


@contextlib.contextmanager
def serving(
    url: str, process: "subprocess.Popen[Any]", *, what: str, within_s: float, log: Path | None = None
) -> Iterator[None]:
    """Wait until ``process`` answers at ``url`` (as ``wait_until_healthy``); stop it when the block ends."""
    try:
        wait_until_healthy(url, process, what=what, within_s=within_s, log=log)
        yield
    finally:
        process.terminate()
        process.wait(timeout=30)


def _with_log(message: str, log: Path | None) -> str:
    return message if log is None else f"{message}; its log ({log}) ends:\n{log_tail(log)}"
