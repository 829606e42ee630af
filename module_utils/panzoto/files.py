"""The one way the modules write a file: atomically (temp file beside it, fsync, rename), so a reader
(node_exporter, a CI upload, a progress poll, the next run) sees the previous file or the new one, never half."""

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
