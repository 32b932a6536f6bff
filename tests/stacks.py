"""Starting real stacks for tests: the library client in-process, or `llama stack run` on 127.0.0.1."""

import contextlib
import copy
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llama_stack_client import APIStatusError, BadRequestError, LlamaStackClient, NotFoundError

from llama_stack_judge.core.options import JudgeOptions
from llama_stack_judge.embedded.server import free_port
from llama_stack_judge.health import NotHealthyError, wait_until_healthy
from llama_stack_judge.stack_config import build_run_config, load_provider_config, select_provider, write_run_config

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PROVIDER_CONFIG = REPO / "provider_configs" / "scripted.yaml"
Backends = dict[str, dict[str, Any]] | None  # a run config's storage backends; None: sqlite files in the state dir


def selected_providers() -> dict[str, list[dict[str, Any]]]:
    """Providers from PROVIDER_CONFIG (default: the scripted config), narrowed to PROVIDER_ID when set."""
    path = Path(os.environ.get("PROVIDER_CONFIG") or DEFAULT_PROVIDER_CONFIG)
    providers = load_provider_config(path if path.is_absolute() else REPO / path)
    provider_id = os.environ.get("PROVIDER_ID")
    return select_provider(providers, provider_id) if provider_id else providers


def run_config_file(
    state_dir: Path, providers: dict[str, list[dict[str, Any]]] | None = None, *, backends: Backends = None
) -> Path:
    """Write a run config for ``providers`` whose storage lives in ``state_dir`` (or in ``backends``)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    config = build_run_config(providers or selected_providers(), state_dir=str(state_dir), backends=backends)
    return write_run_config(config, state_dir / "run.yaml")


# Judge options that report usage, judges and cards beside the aggregations (which tests read).
DETAILS = JudgeOptions(details=True).headers()

# Leases short enough that a job of a replica killed with kill -9 is taken over within seconds, not 30 s.
SHORT_LEASES = {"lease_s": 3.0, "lease_renewal_s": 0.5}


def with_eval_config(
    providers: dict[str, list[dict[str, Any]]] | None = None, **config: Any
) -> dict[str, list[dict[str, Any]]]:
    """The test providers (or ``providers``) with ``config`` set on the eval provider."""
    providers = copy.deepcopy(providers or selected_providers())
    providers["eval"][0]["config"] = providers["eval"][0].get("config", {}) | config
    return providers


def with_endpoint(
    url: str, providers: dict[str, list[dict[str, Any]]] | None = None
) -> dict[str, list[dict[str, Any]]]:
    """The test providers (or ``providers``) plus ``remote::openai`` at ``url``: its models are ``endpoint/<name>``."""
    providers = copy.deepcopy(providers or selected_providers())
    providers["inference"].append(
        {"provider_id": "endpoint", "provider_type": "remote::openai", "config": {"base_url": url, "api_key": "none"}}
    )
    return providers


def reset_model_listing() -> None:
    """Let the next in-process stack list its providers' models.

    llama-stack 0.7.3 keeps ``ModelsRoutingTable.listed_providers`` on the class, so a second stack in one process
    skips listing the models of a provider id an earlier stack already listed.
    """
    from llama_stack.core.routing_tables.models import ModelsRoutingTable

    ModelsRoutingTable.listed_providers.clear()


@contextlib.contextmanager
def library_client(run_yaml: Path) -> Iterator[Any]:
    from llama_stack.core.library_client import LlamaStackAsLibraryClient

    reset_model_listing()
    with contextlib.redirect_stdout(open(os.devnull, "w")):
        client = LlamaStackAsLibraryClient(str(run_yaml))
    try:
        yield client
    finally:
        client.close()


def start_server(run_yaml: Path, *, log: Path | None = None) -> tuple[subprocess.Popen[bytes], LlamaStackClient]:
    """``llama stack run`` on a free port of 127.0.0.1, once healthy, and a client for it."""
    (started,) = start_servers(run_yaml, [log or run_yaml.with_suffix(".log")])
    return started


def start_servers(run_yaml: Path, logs: list[Path]) -> list[tuple[subprocess.Popen[bytes], LlamaStackClient]]:
    """Replicas of one stack, a server per log file, all started at once; each once healthy, with a client."""
    env = {**os.environ, "LLAMA_STACK_LOG_FORMAT": "json"}
    llama = Path(sys.executable).parent / "llama"
    launched = []
    for log in logs:
        port = free_port()
        with log.open("ab") as out:
            command = [str(llama), "stack", "run", str(run_yaml), "--port", str(port)]
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        launched.append((process, f"http://127.0.0.1:{port}", log))
    deadline = time.monotonic() + 60 * len(logs)
    for process, base_url, log in launched:
        try:
            left = max(1.0, deadline - time.monotonic())
            wait_until_healthy(f"{base_url}/v1/health", process, what="llama stack run", within_s=left, log=log)
        except NotHealthyError:
            for started, _, _ in launched:
                started.kill()
            raise
    return [(process, LlamaStackClient(base_url=base_url, timeout=120)) for process, base_url, _ in launched]


def stop_server(process: subprocess.Popen[bytes]) -> None:
    """Stop a server started by ``start_server`` (terminate, then kill)."""
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def served_client(run_yaml: Path, *, log: Path | None = None) -> Iterator[LlamaStackClient]:
    process, client = start_server(run_yaml, log=log)
    try:
        yield client
        client.close()
    finally:
        stop_server(process)


@contextlib.contextmanager
def stack_client(mode: str, run_yaml: Path) -> Iterator[Any]:
    factory = library_client if mode == "library" else served_client
    with factory(run_yaml) as client:
        yield client


def bad_request(*fragments: str) -> Any:
    """Expect a 400: ``BadRequestError`` over HTTP, the ValueError itself in library mode; check its message."""
    return _refused(BadRequestError, 400, fragments)


def not_found(*fragments: str) -> Any:
    """Expect a 404: ``NotFoundError`` over HTTP, the error itself (a ValueError) in library mode."""
    return _refused(NotFoundError, 404, fragments)


def _refused(http_error: type[APIStatusError], status: int, fragments: tuple[str, ...]) -> Any:
    class _Check:
        def __enter__(self) -> None:
            return None

        def __exit__(self, kind: Any, error: BaseException | None, tb: Any) -> bool:
            if error is None:
                pytest.fail(f"expected a {status} naming {fragments}, but the call succeeded")
            in_process = isinstance(error, ValueError) and getattr(error, "status_code", status) == status
            if not (isinstance(error, http_error) or in_process):
                return False
            message = str(error)
            missing = [fragment for fragment in fragments if fragment not in message]
            assert not missing, f"error message lacks {missing}: {message}"
            return True

    return _Check()


def register_judge(client: Any, fn_id: str, params: dict[str, Any], **extra: Any) -> str:
    """Register an llm_as_judge function with our scoring provider (``params``: its llm_as_judge fields); its id."""
    client.scoring_functions.register(
        scoring_fn_id=fn_id,
        description=extra.pop("description", "a test judge"),
        return_type={"type": "number"},
        provider_id="judge",
        params={"type": "llm_as_judge", **params},
        **extra,
    )
    return fn_id


def register_benchmark(client: Any, rows: list[dict[str, Any]], functions: list[str], **metadata: Any) -> str:
    """Register ``rows`` as a new dataset and a benchmark over it on our eval provider; returns the benchmark id."""
    dataset_id = f"ds-{uuid.uuid4().hex[:8]}"
    client.beta.datasets.register(
        purpose="eval/question-answer", source={"type": "rows", "rows": rows}, dataset_id=dataset_id
    )
    benchmark_id = f"bench-{uuid.uuid4().hex[:8]}"
    client.alpha.benchmarks.register(
        benchmark_id=benchmark_id,
        dataset_id=dataset_id,
        scoring_functions=functions,
        provider_id="judge-eval",
        metadata=metadata,
    )
    return benchmark_id


def wait_for_job(client: Any, benchmark_id: str, job_id: str, until: set[str], seconds: float = 60) -> str:
    """Poll a job until its status is one of ``until``; returns that status."""
    deadline = time.monotonic() + seconds
    while (status := str(client.alpha.eval.jobs.status(job_id, benchmark_id=benchmark_id).status)) not in until:
        assert time.monotonic() < deadline, f"job {job_id} still {status}"
        time.sleep(0.1)
    return status


def _default_sigint() -> None:  # runs in the child between fork and exec
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# Popen arguments for a command a test interrupts with SIGINT (Ctrl-C). A shell starts background jobs with SIGINT
# ignored, children inherit that, and Python then never raises KeyboardInterrupt: a suite run with `&` would see
# commands that "ignore Ctrl-C". The child gets SIGINT's default back, as on a terminal.
INTERRUPTIBLE: dict[str, Any] = {"preexec_fn": _default_sigint}


def stored_values(state_dir: Path, backends: Backends, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    """The first column of a query on the stack's SQL store, read directly (sqlite file or PostgreSQL).

    ``sql`` uses ``%s`` placeholders. A table the stack has not created yet reads as empty.
    """
    if backends is None:
        import sqlite3

        with sqlite3.connect(state_dir / "sql_store.db") as db:
            try:
                return [row[0] for row in db.execute(sql.replace("%s", "?"), params)]
            except sqlite3.OperationalError:  # no such table yet
                return []
    import psycopg2

    store = backends["sql_default"]
    connection = psycopg2.connect(host=store["host"], port=store["port"], dbname=store["db"], user=store["user"])
    with contextlib.closing(connection), connection.cursor() as cursor:
        try:
            cursor.execute(sql, params)
        except psycopg2.errors.UndefinedTable:
            return []
        return [row[0] for row in cursor.fetchall()]


def count_rows(state_dir: Path, backends: Backends, table: str, job_id: str) -> int:
    """Rows of a job in one of the stack's SQL tables."""
    return len(stored_values(state_dir, backends, f"SELECT job_id FROM {table} WHERE job_id = %s", (job_id,)))
