"""A small OpenAI-compatible server on 127.0.0.1 for tests: /v1/models and /v1/chat/completions, with faults."""

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


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
    log: list[dict[str, Any]] = field(default_factory=list)
    max_in_flight: int = 0
    in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def fake_openai(
    model: str | Sequence[str], reply: Reply, port: int = 0, *, refuse_logprobs: str | None = None
) -> Iterator[FakeServer]:
    """Serve ``model`` (or several; on ``port``, or a free one); each chat completion answers ``reply(messages)``.

    With ``refuse_logprobs``, a request for log probabilities gets a 500 with that message, as llama-cpp-python's
    server started without ``logits_all`` answers.
    """
    models = [model] if isinstance(model, str) else list(model)
    server_state = FakeServer(url="")

    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            listed = [{"id": name, "object": "model", "created": 0, "owned_by": "t"} for name in models]
            self._send(200, json.dumps({"object": "list", "data": listed}).encode())

        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with server_state.lock:
                server_state.log.append(request)
                server_state.in_flight += 1
                server_state.max_in_flight = max(server_state.max_in_flight, server_state.in_flight)
            try:
                if refuse_logprobs is not None and request.get("logprobs"):
                    self._send(500, json.dumps({"error": {"message": refuse_logprobs}}).encode())
                    return
                self._answer(request, reply(request["messages"]))
            finally:
                with server_state.lock:
                    server_state.in_flight -= 1

        def _answer(self, request: dict[str, Any], answer: "str | Fault") -> None:
            finish_reason = "stop"
            if isinstance(answer, Fault):
                time.sleep(answer.delay_s)
                if answer.status is not None:
                    self._send(answer.status, json.dumps({"error": {"message": "injected fault"}}).encode())
                    return
                if answer.body is not None:
                    self._send(200, answer.body)
                    return
                finish_reason = answer.finish_reason
                answer = answer.then or ""
            completion = {
                "id": f"fake-{uuid.uuid4().hex}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": request["model"],
                "choices": [
                    {"index": 0, "finish_reason": finish_reason, "message": {"role": "assistant", "content": answer}}
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            }
            self._send(200, json.dumps(completion).encode())

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server_state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server_state
    finally:
        server.shutdown()
        server.server_close()
