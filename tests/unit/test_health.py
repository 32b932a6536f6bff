"""Waiting for a started server: it answers, it exits, or it never answers."""

import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from llama_stack_judge.embedded.server import free_port
from llama_stack_judge.health import NotHealthyError, serving, wait_until_healthy


def sleeper(seconds: float) -> "subprocess.Popen[bytes]":
    return subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({seconds})"])


def test_returns_once_the_url_answers() -> None:
    class Healthy(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Healthy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    process = sleeper(30)
    try:
        wait_until_healthy(f"http://127.0.0.1:{server.server_port}/health", process, what="a server", within_s=10)
    finally:
        process.kill()
        server.shutdown()


def test_a_process_that_exits_is_named_with_its_code_and_its_logs_tail(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("\n".join(f"line {n}" for n in range(100)))
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    with pytest.raises(NotHealthyError, match=r"a server exited with code 3 while starting; its log \(.*\) ends:\n"):
        wait_until_healthy(f"http://127.0.0.1:{free_port()}/", process, what="a server", within_s=30, log=log)
    with pytest.raises(NotHealthyError) as raised:
        wait_until_healthy(f"http://127.0.0.1:{free_port()}/", process, what="a server", within_s=30, log=log)
    assert str(raised.value).endswith("line 99") and "line 84" not in str(raised.value)  # the last 15 lines


def test_a_server_that_never_answers_times_out() -> None:
    process = sleeper(30)
    try:
        with pytest.raises(NotHealthyError, match=r"a server did not answer within 1 s$"):
            wait_until_healthy(f"http://127.0.0.1:{free_port()}/", process, what="a server", within_s=1)
    finally:
        process.kill()


def test_serving_waits_for_health_and_stops_the_server_when_the_block_ends() -> None:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"])
    with serving(f"http://127.0.0.1:{port}/", process, what="a server", within_s=30):
        assert process.poll() is None
        assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 200
    assert process.poll() is not None  # stopped on the way out
