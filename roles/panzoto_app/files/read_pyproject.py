"""Print the pyproject.toml of a local source (a directory, or a .tar/.tar.gz/.zip archive) on the control node.

    python read_pyproject.py SOURCE [STRIP_COMPONENTS]

Prints nothing when the source has no pyproject.toml at its top (after STRIP_COMPONENTS leading directories
of an archive). Run by the panzoto_app role before anything changes on a host.
"""

from __future__ import annotations

import sys
import tarfile
import zipfile
from pathlib import Path, PurePosixPath


def top_level_pyproject(name: str, strip: int) -> bool:
    parts = [part for part in PurePosixPath(name).parts if part not in (".", "/")]
    return len(parts) == strip + 1 and parts[-1] == "pyproject.toml"


def read(source: Path, strip: int) -> bytes:
    if source.is_dir():
        path = source / "pyproject.toml"
        return path.read_bytes() if path.is_file() else b""
    if zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as archive:
            names = [name for name in archive.namelist() if top_level_pyproject(name, strip)]
            return archive.read(names[0]) if names else b""
    with tarfile.open(source) as archive:
        for member in archive:
            if member.isfile() and top_level_pyproject(member.name, strip):
                extracted = archive.extractfile(member)
                return extracted.read() if extracted else b""
    return b""


if __name__ == "__main__":
    sys.stdout.buffer.write(read(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 0))
