"""The audit family's one way to write a file: atomically (temp file beside it, fsync, rename),
so a reader (node_exporter, a CI upload, the next run) never sees half a file."""

from __future__ import annotations

import os
import tempfile


def write_atomic(path: str, content: str, mode: int = 0o644) -> None:
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
