#!/usr/bin/env python3
"""Start, stop and query a local AWS endpoint: moto in server mode on 127.0.0.1.

    tools/local_aws.py start [--port N]   # prints the endpoint URL once it answers
    tools/local_aws.py stop
    tools/local_aws.py url

State (pid, port, log) lives in .local-aws/ so `stop` finds what `start` started.
The same functions are imported by the pytest fixtures.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
DEFAULT_STATE_DIR = Path(__file__).resolve().parent.parent / ".local-aws"
# moto needs credentials to sign requests with; they are never real ones.
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass
class LocalAws:
    pid: int
    port: int
    # The server's Popen when this process started it: stopped through it, it is never signalled after it
    # was reaped, when its pid may already be another process's (a long test run wraps pid_max).
    process: subprocess.Popen | None = field(default=None, compare=False, repr=False)

    @property
    def endpoint_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def reset(self) -> None:
        """Wipe every table, bucket and secret (moto's own reset API)."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        urllib.request.urlopen(request, timeout=10).close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def moto_server_binary() -> str:
    candidate = Path(sys.executable).parent / "moto_server"
    return str(candidate) if candidate.exists() else "moto_server"


def wait_until_answering(url: str, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited with code {process.returncode}")
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"moto_server did not answer on {url} within {timeout:.0f}s")


def _die_with_parent() -> None:
    """In the child before exec: ask Linux to SIGTERM it when its parent dies (a killed test run)."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start_server(
    port: int = 0, log_path: Path | None = None, timeout: float = 30, die_with_parent: bool = False
) -> LocalAws:
    """Start moto_server in its own session; return once it answers.

    `die_with_parent` ties it to this process (tests); otherwise it outlives it (`local_aws.py start`).
    """
    port = port or free_port()
    log_path = log_path or Path(os.devnull)
    with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            [moto_server_binary(), "-H", HOST, "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # survives a Ctrl-C meant for the caller
            preexec_fn=_die_with_parent if die_with_parent else None,
        )
    server = LocalAws(pid=process.pid, port=port, process=process)
    wait_until_answering(server.endpoint_url, process, timeout)
    return server


def stop_server(server: LocalAws, timeout: float = 10) -> None:
    if server.process is not None:
        # Popen signals only a child it has not reaped yet, and nothing else reaps it while it is held.
        server.process.terminate()
        try:
            server.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
        return
    # A server started by another process (`local_aws.py start`): only its pid is known.
    try:
        os.kill(server.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(server.pid, 0)
            # Reap it if it is our child, so it does not linger as a zombie.
            os.waitpid(server.pid, os.WNOHANG)
        except (ProcessLookupError, ChildProcessError):
            return
        time.sleep(0.05)
    os.kill(server.pid, signal.SIGKILL)


@contextmanager
def running_server(log_path: Path | None = None) -> Iterator[LocalAws]:
    """A moto server for the duration of a `with` block, with the fake credentials exported."""
    os.environ.update(FAKE_CREDENTIALS)
    server = start_server(log_path=log_path, die_with_parent=True)
    try:
        yield server
    finally:
        stop_server(server)


def _state_file(state_dir: Path) -> Path:
    return state_dir / "server.json"


def _load(state_dir: Path) -> LocalAws | None:
    try:
        data = json.loads(_state_file(state_dir).read_text())
    except FileNotFoundError:
        return None
    return LocalAws(pid=data["pid"], port=data["port"])


def _is_alive(server: LocalAws) -> bool:
    try:
        os.kill(server.pid, 0)
    except ProcessLookupError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["start", "stop", "url"])
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    args = parser.parse_args(argv)

    running = _load(args.state_dir)
    if args.command == "start":
        if running and _is_alive(running):
            print(running.endpoint_url)
            return 0
        args.state_dir.mkdir(parents=True, exist_ok=True)
        server = start_server(args.port, log_path=args.state_dir / "moto.log")
        _state_file(args.state_dir).write_text(json.dumps({"pid": server.pid, "port": server.port}))
        print(server.endpoint_url)
    elif args.command == "stop":
        if running:
            stop_server(running)
            _state_file(args.state_dir).unlink(missing_ok=True)
    elif args.command == "url":
        if not (running and _is_alive(running)):
            print("local AWS endpoint is not running: start it with tools/local_aws.py start", file=sys.stderr)
            return 1
        print(running.endpoint_url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
