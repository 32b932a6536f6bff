"""A managed llama.cpp server (llama.cpp's own ``llama-server``, OpenAI-compatible) for the embedded judge.

Started on 127.0.0.1, health-checked, and stopped on exit, on Ctrl-C and on errors (a ``with`` block); on Linux it
also dies with its parent, so a killed CLI leaves no server behind.
"""

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from llama_stack_judge.embedded.llama_server import installed_server
from llama_stack_judge.errors import JudgeError
from llama_stack_judge.health import NotHealthyError, log_tail, wait_until_healthy

HOST = "127.0.0.1"
_PR_SET_PDEATHSIG = 1


class ServerError(JudgeError):
    """The managed llama.cpp server could not be started or did not stay up."""


def free_port(host: str = HOST) -> int:
    """A TCP port of ``host`` that is free now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = HOST) -> bool:
    """Whether something already listens on (or holds) ``host:port``."""
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def available_memory_gb() -> float | None:
    """``MemAvailable`` of /proc/meminfo in GB, or ``None`` where there is no such file."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1e6
    return None


def _load_prctl() -> Callable[..., int] | None:
    if sys.platform != "linux":
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


# Looked up here, not in the child: between fork and exec only a plain call is safe.
_PRCTL = _load_prctl()


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """How to run the server: small-judge defaults (a context that fits MT-bench prompts, a thread per core)."""

    model_path: Path
    model_alias: str
    port: int | None = None  # None: a free port
    n_ctx: int = 8192
    n_threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    startup_timeout_s: float = 180.0
    min_memory_gb: float = 0.0
    # llama-cpp-python's server default, kept when we moved to llama-server (whose default is 1.0): the shipped
    # cards were measured with it, and it curbs the small judge's repetition loops.
    repeat_penalty: float = 1.1

    def command(self, binary: Path, port: int) -> list[str]:
        """The server's command line."""
        threads = str(self.n_threads)
        return [
            str(binary),
            "--model", str(self.model_path), "--alias", self.model_alias,
            "--host", HOST, "--port", str(port),
            "--ctx-size", str(self.n_ctx), "--threads", threads, "--threads-batch", threads,
            # One slot: one reply at a time, with the whole context (the embedded judge sends one call at a time).
            "--parallel", "1",
            "--repeat-penalty", str(self.repeat_penalty),
            # No copies of earlier prompts' state in RAM (8 GB allowed by default; it took the server from 2.4 to
            # 4.6 GB over a certification run): rows come question-major, so the slot's own last prompt is the
            # prefix to reuse.
            "--cache-ram", "0",
            "--no-webui",
        ]  # fmt: skip


class LlamaCppServer:
    """One ``llama-server`` process; use it as a context manager."""

    def __init__(self, settings: ServerSettings, log_path: Path | None = None) -> None:
        self.settings = settings
        self.port: int | None = None
        self.log_path = log_path or Path(tempfile.gettempdir()) / f"llama-stack-judge-server-{os.getpid()}.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible API root, ``http://127.0.0.1:<port>/v1``."""
        if self.port is None:
            raise ServerError("the llama.cpp server is not running")
        return f"http://{HOST}:{self.port}/v1"

    def start(self) -> "LlamaCppServer":
        """Start the server and return once it answers; ``ServerError`` says why it could not."""
        binary = self._check_can_start()
        port = self.settings.port or free_port()
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                self.settings.command(binary, port),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        self.port = port
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _check_can_start(self) -> Path:
        """The binary to run, once it is there, the port is free and memory suffices."""
        if self.settings.port is not None and port_in_use(self.settings.port):
            raise ServerError(f"port {self.settings.port} on {HOST} is in use: choose another with --port")
        memory = available_memory_gb()
        if memory is not None and memory < self.settings.min_memory_gb:
            raise ServerError(
                f"{self.settings.model_alias} needs about {self.settings.min_memory_gb:.1f} GB of free memory while "
                f"judging; this machine has {memory:.1f} GB available"
            )
        return installed_server()

    def _wait_until_ready(self) -> None:
        assert self._process is not None
        try:
            wait_until_healthy(
                f"http://{HOST}:{self.port}/health",  # 503 while the model loads
                self._process,
                what="the llama.cpp server",
                within_s=self.settings.startup_timeout_s,
                log=self.log_path,
            )
        except NotHealthyError as exc:
            raise ServerError(str(exc)) from None

    def log_tail(self) -> str:
        """The last lines of the server's log."""
        return log_tail(self.log_path)

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def stop(self, grace_s: float = 10.0) -> None:
        """Stop the server: SIGTERM, then SIGKILL after ``grace_s``."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> "LlamaCppServer":
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
