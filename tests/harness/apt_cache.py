"""A caching HTTP proxy for the Debian mirror, shared by the target hosts of a test session.

Every target host starts from the same image and installs the same packages (ffmpeg, git, python3-venv ...)
again and again, on both workers. Hosts reach this proxy on 127.0.0.1 (they share the machine's network)
through `Acquire::http::Proxy`; it keeps what never changes under the same URL and passes the rest through:

    kept on disk      pool/... (.deb files: a new version gets a new name) and .../by-hash/... (index files
                      named by their checksum)
    passed through    everything else: InRelease, Release and the unhashed indexes change in place, so they
                      always come from the mirror, as without the proxy

The cache directory may be shared by several proxies (both xdist workers, one test run after another): a
file is written under a temporary name and renamed into place, so a reader never sees half a file.

    with AptCache(cache_dir) as cache:
        cache.url, cache.counts["hit"], cache.counts["miss"], cache.counts["passed"]
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import tempfile
import threading
from collections import Counter
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from one_write_http import OneWriteHandler

HOST = "127.0.0.1"
UPSTREAM_TIMEOUT_S = 120
# Paths whose content never changes: packages (pool/) and indexes named by their checksum (by-hash/).
IMMUTABLE_PATH = re.compile(r"/pool/|/by-hash/")
# Request headers worth forwarding to the mirror; the rest are hop-by-hop or the proxy's own business.
FORWARDED_REQUEST_HEADERS = ("Accept", "User-Agent", "If-Modified-Since", "If-None-Match", "Range", "Cache-Control")
# Response headers that describe one connection, not the content: never relayed.
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "content-length", "te", "trailer"}


class AptCache:
    """A threaded proxy on 127.0.0.1; a context manager. `counts`: hit, miss, passed, refused."""

    def __init__(self, cache_dir: Path, port: int = 0) -> None:
        self.cache_dir = Path(cache_dir)
        self.port = port
        self.counts: Counter[str] = Counter()
        self.config_file: Path | None = None
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def apt_config(self) -> str:
        """An apt.conf.d snippet sending a host's HTTP downloads through this proxy."""
        return f'Acquire::http::Proxy "{self.url}";\n'

    def write_apt_config(self, path: Path) -> Path:
        """Writes `apt_config()` to `path` (world-readable: hosts mount it read-only) and remembers it."""
        path.write_text(self.apt_config())
        path.chmod(0o644)
        self.config_file = path
        return path

    def start(self) -> AptCache:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        handler = type("BoundAptCacheHandler", (AptCacheHandler,), {"cache": self})
        self._server = ThreadingHTTPServer((HOST, self.port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> AptCache:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def count(self, key: str) -> None:
        with self._lock:
            self.counts[key] += 1

    def path_for(self, url: str) -> Path:
        """Where a URL's content is kept: named by the URL's hash (no path from a request reaches the disk)."""
        digest = hashlib.sha256(url.encode()).hexdigest()
        return self.cache_dir / digest[:2] / f"{digest}-{Path(urlsplit(url).path).name[-80:]}"


class AptCacheHandler(OneWriteHandler):
    cache: AptCache  # bound per server by AptCache.start

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: tests read counts, not access logs."""

    def do_GET(self) -> None:
        self.serve()

    do_HEAD = do_GET

    def serve(self) -> None:
        target = urlsplit(self.path)
        if target.scheme != "http" or not target.hostname:
            self.cache.count("refused")
            self.write_response(400, [("Content-Length", "0")])
            return
        if self.command == "GET" and IMMUTABLE_PATH.search(target.path):
            self.serve_kept(self.path)
        else:
            self.cache.count("passed")
            status, headers, body = self.fetch(self.path, self.forwarded_headers())
            self.relay(status, headers, body)

    def forwarded_headers(self) -> dict[str, str]:
        return {name: self.headers[name] for name in FORWARDED_REQUEST_HEADERS if self.headers.get(name)}

    def fetch(self, url: str, headers: dict[str, str]) -> tuple[int, list[tuple[str, str]], bytes]:
        target = urlsplit(url)
        connection = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=UPSTREAM_TIMEOUT_S)
        try:
            path = target.path + (f"?{target.query}" if target.query else "")
            connection.request(self.command, path or "/", headers=headers)
            response = connection.getresponse()
            body = response.read()
            return response.status, response.getheaders(), body
        except OSError as exc:
            return 502, [("Content-Type", "text/plain")], f"apt_cache: {target.hostname}: {exc}\n".encode()
        finally:
            connection.close()

    def serve_kept(self, url: str) -> None:
        kept = self.cache.path_for(url)
        if kept.is_file():
            self.cache.count("hit")
            self.relay(200, [("Content-Type", "application/octet-stream")], kept.read_bytes())
            return
        # The whole file, whatever part apt asked for: an answer that ignores Range is valid HTTP, and kept whole.
        headers = {name: value for name, value in self.forwarded_headers().items() if name == "User-Agent"}
        status, upstream_headers, body = self.fetch(url, headers)
        self.cache.count("miss")
        if status == 200:
            kept.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=kept.parent, prefix=".partial-", delete=False) as partial:
                partial.write(body)
            os.replace(partial.name, kept)
        self.relay(status, upstream_headers, body)

    def relay(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        kept_headers = [(name, value) for name, value in headers if name.lower() not in HOP_BY_HOP]
        length = str(len(body))
        if self.command == "HEAD":
            # A HEAD answer's Content-Length is the one the mirror gave for the content it did not send.
            length = dict((name.lower(), value) for name, value in headers).get("content-length", "0")
            body = b""
        self.write_response(status, [*kept_headers, ("Content-Length", length)], body)
