"""The one fake OpenAI-compatible judge of the tests and benchmarks: /v1/models and /v1/chat/completions on 127.0.0.1.

Tests run it in their own process with ``fake_openai(model, reply)``: every request is logged, and ``reply`` may
answer with a ``Fault`` (an HTTP status, a delay, a raw body, a cut-off reply). Benchmarks run it as a process,
``python -m tests.fake_openai --port P --latency S``: it then answers as a verbosity-biased judge (``bench_reply``)
after a fixed latency, and ``GET /stats`` reports the requests served, the most in flight at once and the process's
CPU time.

It is an async (Starlette) app served by uvicorn: hundreds of requests wait out their latency at once for the
cost of a coroutine each. ``reply`` runs in a worker thread, so a test's reply may block (``time.sleep``) as a slow
model would.
"""

import argparse
import asyncio
import hashlib
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@dataclass(frozen=True)
class Fault:
    """Instead of a reply: an HTTP status, a delay before replying, or a raw body that is not a completion."""

    status: int | None = None
    delay_s: float = 0.0
    body: bytes | None = None
    then: str | None = None  # the reply sent after ``delay_s`` (when there is no status or body)
    finish_reason: str = "stop"  # of that reply: "length" for one cut off by the token limit


Reply = Callable[[list[dict[str, Any]]], "str | Fault"]


@dataclass
class FakeServer:
    """Where the fake server listens, what it was asked, and the most requests it handled at once."""

    url: str
    keep_log: bool = True  # a benchmark's server answers without keeping every request it was sent
    log: list[dict[str, Any]] = field(default_factory=list)
    max_in_flight: int = 0
    in_flight: int = 0
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def entered(self, request: dict[str, Any]) -> None:
        """Count and log a request as it arrives."""
        with self.lock:
            if self.keep_log:
                self.log.append(request)
            self.requests += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def left(self) -> None:
        """Count a request out."""
        with self.lock:
            self.in_flight -= 1


def _completion(model: str, text: str, finish_reason: str, prompt_tokens: int) -> dict[str, Any]:
    return {
        "id": f"fake-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "finish_reason": finish_reason, "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 5, "total_tokens": prompt_tokens + 5},
    }


def build_app(
    models: Sequence[str],
    reply: Reply,
    state: FakeServer,
    *,
    latency_s: float = 0.0,
    blocking_reply: bool = True,
    keep_alive: bool = True,
    refuse_logprobs: str | None = None,
) -> Starlette:
    """The app: each chat completion waits ``latency_s``, then answers ``reply(messages)``.

    ``blocking_reply``: ``reply`` may block, so it runs in a worker thread. Without ``keep_alive``, every response
    closes its connection, so a server stopped and started again on the same port never meets a stale one. With
    ``refuse_logprobs``, a request for log probabilities gets a 500 with that message, as llama-cpp-python's
    server started without ``logits_all`` answers.
    """
    # Enough worker threads for every request a test or benchmark keeps in flight (anyio's default is 40).
    replying = anyio.CapacityLimiter(512)
    headers = None if keep_alive else {"connection": "close"}

    def answer_json(content: Any, status_code: int = 200) -> Response:
        # ASCII JSON: a reply may hold a lone surrogate (a test's broken text), which only a "\ud800" escape carries.
        return Response(json.dumps(content), status_code=status_code, media_type="application/json", headers=headers)

    async def listed(_: Request) -> Response:
        data = [{"id": name, "object": "model", "created": 0, "owned_by": "fake"} for name in models]
        return answer_json({"object": "list", "data": data})

    async def chat(request: Request) -> Response:
        body: dict[str, Any] = await request.json()
        state.entered(body)
        try:
            if refuse_logprobs is not None and body.get("logprobs"):
                return answer_json({"error": {"message": refuse_logprobs}}, 500)
            if latency_s:
                await asyncio.sleep(latency_s)
            messages = body["messages"]
            answer = (
                await anyio.to_thread.run_sync(reply, messages, limiter=replying) if blocking_reply else reply(messages)
            )
            finish_reason = "stop"
            if isinstance(answer, Fault):
                await asyncio.sleep(answer.delay_s)
                if answer.status is not None:
                    return answer_json({"error": {"message": "injected fault"}}, answer.status)
                if answer.body is not None:
                    return Response(answer.body, media_type="application/json", headers=headers)
                answer, finish_reason = answer.then or "", answer.finish_reason
            prompt = " ".join(str(message.get("content", "")) for message in body["messages"])
            return answer_json(_completion(body["model"], answer, finish_reason, len(prompt.split())))
        finally:
            state.left()

    async def stats(_: Request) -> JSONResponse:
        counts = {"requests": state.requests, "in_flight": state.in_flight, "max_in_flight": state.max_in_flight}
        return JSONResponse(counts | {"cpu_s": time.process_time()})  # the server process's CPU, for benchmarks

    async def reset(_: Request) -> JSONResponse:
        with state.lock:
            state.requests, state.max_in_flight = 0, state.in_flight
        return await stats(_)

    return Starlette(
        routes=[
            Route("/v1/models", listed),
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/stats", stats),
            Route("/stats/reset", reset, methods=["POST"]),
        ]
    )


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # in a thread of a test: the test process keeps its own handlers
        pass


@contextmanager
def fake_openai(
    model: str | Sequence[str], reply: Reply, port: int = 0, *, refuse_logprobs: str | None = None
) -> Iterator[FakeServer]:
    """Serve ``model`` (or several; on ``port``, or a free one); each chat completion answers ``reply(messages)``.

    On exit the server stops listening (connections are then refused) once the requests in flight are answered.
    """
    models = [model] if isinstance(model, str) else list(model)
    state = FakeServer(url="")
    app = build_app(models, reply, state, keep_alive=False, refuse_logprobs=refuse_logprobs)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off")
    server = _Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the fake OpenAI server did not start on port {port}")
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    state.url = f"http://127.0.0.1:{bound}/v1"
    try:
        yield state
    finally:
        server.should_exit = True
        thread.join(timeout=30)


_SIDES = {
    side: re.compile(
        rf"\[The Start of Assistant {side}'s Answer\]\n(.*?)\n\[The End of Assistant {side}'s Answer\]"
        rf"|### Assistant {side}:\n(.*?)(?:\n\n### User:|\n\n<\|The End)",
        re.S,
    )
    for side in "AB"
}


def bench_reply(messages: list[dict[str, Any]]) -> str:
    """A benchmark's judge: a rating from a hash of the prompt; pairwise, the longer answer wins (a tie within 10 %)."""
    prompt = "\n".join(str(message.get("content", "")) for message in messages)
    if "[[A]]" not in prompt:
        rating = int(hashlib.sha256(prompt.encode()).hexdigest(), 16) % 10 + 1
        return f"The answer is reasonable. Rating: [[{rating}]]"
    length = {side: sum(len(a or b) for a, b in pattern.findall(prompt)) for side, pattern in _SIDES.items()}
    if abs(length["A"] - length["B"]) <= 0.1 * max(length.values(), default=0):
        return "Both answers are about as good. [[C]]"
    return "Assistant A is more thorough. [[A]]" if length["A"] > length["B"] else "Assistant B is more thorough. [[B]]"


def main() -> None:
    """Serve the benchmark judge (model ``judge``) until killed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds before each reply")
    args = parser.parse_args()
    state = FakeServer(url="", keep_log=False)
    app = build_app(["judge"], bench_reply, state, latency_s=args.latency, blocking_reply=False)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
