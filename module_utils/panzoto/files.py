"""The one way the modules write a file: atomically (temp file beside it, fsync, rename), so a reader
(node_exporter, a CI upload, a progress poll, the next run) sees the previous file or the new one, never half;
and the one way they read it back to write only what differs."""

from __future__ import annotations

import os
import tempfile


def write_atomic(path: str | os.PathLike, content: str, mode: int = 0o644) -> None:
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    handle, temp = tempfile.mkstemp(dir=directory, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(content)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


def read_text(path: str | os.PathLike) -> str | None:
    """A file's text as written (newlines kept), or None when it is missing or not UTF-8: a writer that compares
    before writing then writes it anew."""
    try:
        with open(path, encoding="utf-8", newline="") as stream:
            return stream.read()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
