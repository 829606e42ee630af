"""HTTP/1.1 request handlers that answer the way a real endpoint's stack does: TCP_NODELAY, one write per response.

`BaseHTTPRequestHandler` sends the status line and headers in one write and the body in another. With
Nagle's algorithm on, a small body then waits for the client's delayed ACK of the headers (tens of
milliseconds on Linux), so a stand-in built on it would be slower than the AWS endpoint it stands for, and
benchmarks would measure that wait. Handlers here disable Nagle (the standard library's
`disable_nagle_algorithm`) and write the whole response at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler


class OneWriteHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as botocore's connection pool expects
    disable_nagle_algorithm = True  # StreamRequestHandler.setup sets TCP_NODELAY on each accepted connection

    def write_response(self, status: int, headers: Iterable[tuple[str, str]], body: bytes = b"") -> None:
        """Status line, `headers` and `body` in a single write; `headers` must carry the framing (Content-Length)."""
        reason = self.responses.get(status, ("",))[0]
        lines = [f"{self.protocol_version} {status} {reason}"]
        for name, value in headers:
            lines.append(f"{name}: {value}")
            # As BaseHTTPRequestHandler.send_header does: the answer decides whether the connection stays open.
            if name.lower() == "connection":
                self.close_connection = value.lower() == "close"
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "strict")
        self.wfile.write(head + body)
