"""A local stand-in for OpenAI's `GET /v1/models`: 200 for the one good key, 401 otherwise."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _handler(good_key: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/v1/models":
                self._answer(404, {"error": {"message": "not found"}})
            elif self.headers.get("Authorization") == f"Bearer {good_key}":
                self._answer(200, {"object": "list", "data": [{"id": "whisper-1", "object": "model"}]})
            else:
                self._answer(401, {"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}})

        def _answer(self, status: int, body: dict) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args) -> None:  # keep test output clean
            pass

    return Handler


@contextmanager
def fake_openai(good_key: str) -> Iterator[str]:
    """Serve on a free 127.0.0.1 port; yields the API base URL (…/v1)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(good_key))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1"
    finally:
        server.shutdown()
        server.server_close()
