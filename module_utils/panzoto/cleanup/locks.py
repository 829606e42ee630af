"""Run locks on the control node: one cleanup at a time per archive file and per table.

Two runs at once on one table each see the other's selected jobs as kept and
leave shared audio behind; two runs on one archive interleave their records.
A run therefore holds an exclusive, non-blocking fcntl lock on the archive
(`<archive>.lock`, beside it) and on the table (keyed by the table's ARN, under
the lock directory) and refuses in one line while another run holds either.
These are the fast local guard; the lease (lease.py) is what other control
nodes and other lock directories see. The kernel drops the locks when the process ends, however it
ends, so a killed run never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_LOCK_DIR = "~/.cache/panzoto-ops/locks"


class LockHeld(RuntimeError):
    """Another run holds a lock; the message is one line saying which and who."""


@dataclass
class RunLock:
    """An exclusive lock on one file, with who holds it written inside (for the refusal message)."""

    path: Path
    scope: str  # what the lock protects, for messages
    _fd: int | None = field(default=None, repr=False)

    def acquire(self, owner: dict) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_owner(fd)
            os.close(fd)
            raise LockHeld(
                f"Another cleanup run holds the lock on {self.scope} ({holder}): "
                f"wait until it finishes, then run again; nothing was changed."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(owner, sort_keys=True).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _read_owner(fd: int) -> str:
    try:
        owner = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        owner = {}
    if not isinstance(owner, dict) or not owner:
        return "holder unknown"
    return ", ".join(f"{name} {owner[name]}" for name in ("pid", "run_id", "since") if name in owner)


def local_table_identity(table_arn: str, endpoint_url: str | None) -> str:
    """The table as this control node's file lock knows it: its ARN, and the endpoint's host and port when one is given.

    On AWS the ARN is unique; local endpoints (moto, stand-ins) give every table of an account the same ARN, so
    two of them on one machine are told apart by where they listen. Spellings of one endpoint (localhost or
    127.0.0.1, a trailing slash) are one endpoint; across control nodes the DynamoDB lease decides.
    """
    if not endpoint_url:
        return table_arn
    parts = urlsplit(endpoint_url.strip())
    host = (parts.hostname or "").lower()
    host = "127.0.0.1" if host in ("localhost", "::1", "ip6-localhost") else host
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{table_arn}@{host}:{port}"


def table_lock_path(lock_dir: Path, table_arn: str, endpoint_url: str | None = None) -> Path:
    """The lock file of one table, keyed by local_table_identity (its ARN, like the lease)."""
    identity = local_table_identity(table_arn, endpoint_url)
    return lock_dir / f"table-{hashlib.sha256(identity.encode()).hexdigest()[:32]}.lock"


@dataclass
class RunLocks:
    """The locks of one run, taken in a fixed order (table, then archive) and released together."""

    held: list[RunLock] = field(default_factory=list)

    def take(self, lock: RunLock, owner: dict) -> None:
        self.held.append(lock.acquire(owner))

    def release(self) -> None:
        while self.held:
            self.held.pop().release()


def archive_lock_path(lock_dir: Path, archive_path: Path) -> Path:
    """The lock file of one archive file, whatever path spelling reaches it."""
    resolved = str(Path(archive_path).expanduser().resolve())
    return lock_dir / f"archive-{hashlib.sha256(resolved.encode()).hexdigest()[:32]}.lock"
