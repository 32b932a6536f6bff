"""The embedded judge's requests on two llama.cpp servers: llama.cpp's ``llama-server`` (which the package runs) and
llama-cpp-python's (which it ran until this measurement).

The main job's judge requests (the shipped MT-bench sample, turn 1, routed to the MT-bench judges as the rating task
routes them, with the embedded judge's options) are sent one at a time to each server, with the same model file,
threads, context and repeat penalty. The script prints seconds and tokens per judgment and how often the two
servers' verdicts agree. llama-cpp-python is no longer a dependency: install it for the comparison.

Run: ``LLAMA_STACK_LOG_FORMAT=json .venv/bin/python benchmarks/llama_servers.py [--limit N]`` (needs
``scripts/setup.sh embedded`` and ``.venv/bin/pip install 'llama-cpp-python[server]==0.3.36'``).
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from llama_stack_judge.core.definitions import load_definitions
from llama_stack_judge.core.options import JudgeOptions
from llama_stack_judge.core.runner import render_request
from llama_stack_judge.embedded import EMBEDDED_JUDGE_OPTIONS, embedded_server
from llama_stack_judge.embedded.models import DEFAULT_MODEL, embedded_model, model_file
from llama_stack_judge.embedded.server import HOST, ServerSettings, free_port
from llama_stack_judge.health import serving
from llama_stack_judge.mtbench.questions import data_file, load_questions, load_turn_answers
from llama_stack_judge.mtbench.routing import JUDGE_PREFIX, rating_inputs
from llama_stack_judge.mtbench.work import conversation_row
from llama_stack_judge.names import PREFIX

JUDGES_DIR = Path(__file__).resolve().parent.parent / "llama_stack_judge" / "mtbench" / "judges"


def judge_bodies() -> list[dict[str, Any]]:
    """The request bodies of the main job's judgments, in its order (question-major)."""
    definitions = {d.identifier.split("::", 1)[1]: d for d in load_definitions(JUDGES_DIR, prefix=PREFIX)}
    options = JudgeOptions(**EMBEDDED_JUDGE_OPTIONS)
    questions = load_questions(data_file("question.jsonl"))
    references = load_turn_answers(data_file("reference_answer_gpt-4.jsonl"))
    answers = {path.stem: load_turn_answers(path) for path in sorted(data_file("sample").glob("*.jsonl"))}
    bodies = []
    for question_id in sorted(set.intersection(*(set(a) for a in answers.values()))):
        for model_answers in answers.values():
            row = conversation_row(questions[question_id], references, 1) | {
                "response": [model_answers[question_id][0]]
            }
            for _, name, fields in rating_inputs(row, where=f"question {question_id}"):
                definition = options.apply(definitions[JUDGE_PREFIX + name])
                request = render_request(definition, fields, judge_model="judge")
                messages = [{"role": m.role, "content": m.content} for m in request.messages]
                body: dict[str, Any] = {"model": "judge", "messages": messages, "max_tokens": request.max_tokens}
                body["temperature"] = request.temperature or 0.0
                bodies.append(body | ({"grammar": request.grammar} if request.grammar else {}))
    return bodies


@contextmanager
def llama_server() -> Iterator[str]:
    with embedded_server(DEFAULT_MODEL) as server:
        yield server.base_url


@contextmanager
def llama_cpp_python() -> Iterator[str]:
    """llama-cpp-python's server with the embedded server's settings: context, threads, one request at a time.

    Its default repeat penalty is the 1.1 the embedded server sets.
    """
    settings = ServerSettings(model_path=model_file(embedded_model(DEFAULT_MODEL)), model_alias="judge")
    port, threads = free_port(), str(settings.n_threads)
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(settings.model_path)]
    command += ["--model_alias", "judge", "--host", HOST, "--port", str(port), "--n_ctx", str(settings.n_ctx)]
    command += ["--n_threads", threads, "--n_threads_batch", threads, "--interrupt_requests", "False"]
    with (Path(tempfile.gettempdir()) / "llama-cpp-python-benchmark.log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    with serving(f"http://{HOST}:{port}/v1/models", process, what="llama-cpp-python's server", within_s=120):
        yield f"http://{HOST}:{port}/v1"


def verdict_of(text: str) -> object:
    try:
        return json.loads(text, strict=False).get("verdict")
    except (json.JSONDecodeError, AttributeError):
        return None


def judge_all(base_url: str, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each body's seconds, generated tokens and verdict, one request at a time."""
    replies = []
    with httpx.Client(base_url=base_url, timeout=900) as client:
        for body in bodies:
            start = time.perf_counter()
            reply = client.post("/chat/completions", json=body).raise_for_status().json()
            seconds = time.perf_counter() - start
            text = reply["choices"][0]["message"]["content"]
            tokens = reply["usage"]["completion_tokens"]
            replies.append({"seconds": seconds, "tokens": tokens, "verdict": verdict_of(text)})
            print(f"  {seconds:5.1f} s, {tokens:4d} tokens, verdict {replies[-1]['verdict']}", flush=True)
    return replies


def summary(name: str, replies: list[dict[str, Any]]) -> str:
    seconds = [r["seconds"] for r in replies]
    tokens = sum(r["tokens"] for r in replies)
    return (
        f"{name}: {sum(seconds):.0f} s for {len(replies)} judgments, {statistics.mean(seconds):.1f} s each"
        f" (median {statistics.median(seconds):.1f}), {tokens} tokens generated, {sum(seconds) / tokens * 1000:.0f} ms"
        " per generated token (prompts included)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, help="only the first N judgments")
    args = parser.parse_args()
    bodies = judge_bodies()[: args.limit]
    print(f"{len(bodies)} judgments of the main job", flush=True)
    print("llama-cpp-python's server:", flush=True)
    with llama_cpp_python() as url:
        python_replies = judge_all(url, bodies)
    print("llama.cpp's llama-server:", flush=True)
    with llama_server() as url:
        native_replies = judge_all(url, bodies)
    same = sum(a["verdict"] == b["verdict"] for a, b in zip(python_replies, native_replies, strict=True))
    close = sum(
        isinstance(a["verdict"], int) and isinstance(b["verdict"], int) and abs(a["verdict"] - b["verdict"]) <= 1
        for a, b in zip(python_replies, native_replies, strict=True)
    )
    total_python = sum(r["seconds"] for r in python_replies)
    total_native = sum(r["seconds"] for r in native_replies)
    print(summary("llama-cpp-python", python_replies))
    print(summary("llama-server", native_replies))
    print(
        f"llama-server is {total_python / total_native:.2f}x as fast; the same verdict {same} of {len(bodies)} times,"
    )
    print(f"within one point {close} times (the two builds' llama.cpp versions differ: replies are not identical)")


if __name__ == "__main__":
    main()
