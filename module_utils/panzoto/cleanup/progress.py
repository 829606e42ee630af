"""A long cleanup's progress, in a small JSON file another process can read while it runs.

The role runs the cleanup's real run in the background and prints one line per poll from this file
(roles/job_cleanup/tasks/poll.yml). The file is always whole - written to a temporary file beside it,
fsynced, then renamed over it - and written at most once per `interval` seconds (phase changes and
the end are always written), so a million-job run pays for a few hundred small writes, not a million.

    {"phase": "writing", "state": "absent", "table": "...", "run_id": "...", "pid": 4242, "done": 12000, "total": 40000,
     "counts": {"changed": 11999, "unchanged": 0, "skipped": 1, "failed": 0, "not_attempted": 0},
     "changed": 11999, "skipped": 1, "started": "...Z", "updated": "...Z", "finished": false}

Phases: reading (the table read, done = items read, total = DescribeTable's approximate item count),
writing (done = jobs archived and sent, total = jobs selected), audio (S3 objects), restoring
(done = archived jobs put back or found present), then done or failed (with `msg`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from ansible.module_utils.panzoto.files import write_atomic

OUTCOMES = ("changed", "unchanged", "skipped", "failed", "not_attempted")
FINAL_PHASES = ("done", "failed")


def _utc(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Progress:
    """The run's progress file; every method is a no-op without a path (check mode, or not asked for)."""

    def __init__(
        self,
        path: Path | None,
        *,
        state: str = "",
        table: str = "",
        run_id: str = "",
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.interval = interval
        self._clock = clock
        self._wall = wall
        self._last_write: float | None = None
        self.writes = 0
        self.error: str | None = None
        self.data: dict = {
            "phase": "starting",
            "state": state,
            "table": table,
            "run_id": run_id,
            "pid": os.getpid(),  # the background run goes on after Ctrl+C of the playbook: this is what to stop
            "done": 0,
            "total": 0,
            "counts": dict.fromkeys(OUTCOMES, 0),
            "changed": 0,
            "skipped": 0,
            "started": _utc(wall()),
            "updated": None,
            "finished": False,
        }

    @property
    def enabled(self) -> bool:
        return self.path is not None

    def phase(self, name: str, total: int = 0, done: int = 0, counts: dict[str, int] | None = None, **fields) -> None:
        """A new phase: always written."""
        self.data.update(phase=name, total=total, done=done, **fields)
        if counts is not None:
            self._counts(counts)
        self._write()

    def update(self, done: int, counts: dict[str, int] | None = None, total: int | None = None) -> None:
        """Within a phase: written only when `interval` has passed since the last write."""
        self.data["done"] = done
        if total is not None:
            self.data["total"] = total
        if counts is not None:
            self._counts(counts)
        if self.enabled and (self._last_write is None or self._clock() - self._last_write >= self.interval):
            self._write()

    def finish(self, counts: dict[str, int] | None, done: int, total: int, msg: str | None = None, **fields) -> None:
        """The end of the run (done, or failed with `msg`): always written, what the result says."""
        if counts is not None:
            self._counts(counts)
        self.data.update(phase="failed" if msg else "done", done=done, total=total, finished=True, **fields)
        if msg:
            self.data["msg"] = msg
        self._write()

    def count_items(self, items: Iterable) -> Iterator:
        """`items` unchanged, counted into the reading phase as they pass."""
        read = 0
        for item in items:
            read += 1
            self.update(read)
            yield item
        self.update(read)

    def _counts(self, counts: dict[str, int]) -> None:
        self.data["counts"] = {name: int(counts.get(name, 0)) for name in OUTCOMES}
        self.data["changed"] = self.data["counts"]["changed"]
        self.data["skipped"] = self.data["counts"]["skipped"]

    def _write(self) -> None:
        if not self.enabled:
            return
        self._last_write = self._clock()
        self.data["updated"] = _utc(self._wall())
        try:
            write_atomic(self.path, json.dumps(self.data, sort_keys=True) + "\n", mode=0o600)
        except OSError as exc:
            # Only the view of the run is lost, never the run: it carries on without the file, and says so.
            self.error = f"progress_path {self.path}: {exc.strerror or exc}; the run went on without progress updates"
            self.path = None
            return
        self.writes += 1
