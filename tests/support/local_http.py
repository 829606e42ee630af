"""Small HTTP servers on 127.0.0.1 standing in for outside services in tests.

- fake_openai: OpenAI's `GET /v1/models`, 200 for the one good key, 401 otherwise.
- capturing_webhook: an incoming webhook (Slack-style) that records what is posted.
- recorded_connections: what a stand-in's handler does on the wire (TCP_NODELAY, each write).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


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
def _serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def fake_openai(good_key: str) -> Iterator[str]:
    """Serve on a free 127.0.0.1 port; yields the API base URL (…/v1)."""
    with _serving(_handler(good_key)) as server:
        yield f"http://127.0.0.1:{server.server_port}/v1"


@contextmanager
def capturing_webhook() -> Iterator[tuple[str, list[dict]]]:
    """Yields the webhook URL and the list that every JSON body posted to it is appended to."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args) -> None:
            pass

    with _serving(Handler) as server:
        yield f"http://127.0.0.1:{server.server_port}/services/T000/B000/secret-token", received


@dataclass
class RecordedConnection:
    """One connection a handler served: TCP_NODELAY as the socket reports it, and every write, in order."""

    nodelay: bool = False
    writes: list[bytes] = field(default_factory=list)


class _RecordingSocket:
    """The accepted socket, with every send recorded; everything else is the socket's own."""

    def __init__(self, sock: socket.socket, record: RecordedConnection) -> None:
        self._sock = sock
        self._record = record

    def sendall(self, data: Any) -> None:
        self._record.writes.append(bytes(data))
        self._sock.sendall(data)

    def send(self, data: Any) -> int:
        self._record.writes.append(bytes(data))
        return self._sock.send(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


@contextmanager
def recorded_connections(handler: type[BaseHTTPRequestHandler]) -> Iterator[list[RecordedConnection]]:
    """Every connection `handler` (or a subclass) sets up meanwhile, as the kernel and the socket saw it."""
    connections: list[RecordedConnection] = []
    original_setup = handler.setup

    def setup(self: BaseHTTPRequestHandler) -> None:
        record = RecordedConnection()
        connections.append(record)
        real = self.request
        self.request = _RecordingSocket(real, record)
        original_setup(self)
        record.nodelay = bool(real.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    handler.setup = setup  # type: ignore[method-assign]
    try:
        yield connections
    finally:
        handler.setup = original_setup  # type: ignore[method-assign]
