"""A stdlib authentication endpoint for llama-stack's ``custom`` auth provider: fixed tokens mapped to users."""

import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@contextmanager
def auth_endpoint(users: Mapping[str, dict[str, Any]]) -> Iterator[str]:
    """Serve ``users`` (token -> {"principal", "attributes"}) on 127.0.0.1; yields the endpoint's URL.

    llama-stack posts ``{"api_key": token, "request": {...}}`` and takes a 200 with the user, anything else as a
    failed authentication.
    """

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            user = users.get(request.get("api_key", ""))
            body = json.dumps(user if user is not None else {"error": "unknown token"}).encode()
            self.send_response(200 if user is not None else 401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/auth"
    finally:
        server.shutdown()
        server.server_close()
