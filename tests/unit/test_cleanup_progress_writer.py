"""The cleanup's progress file (module_utils/panzoto/cleanup/progress.py) and the line the role prints from it."""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path

import pytest
from ansible.module_utils.panzoto.cleanup import progress as progress_module
from ansible.module_utils.panzoto.cleanup.progress import Progress

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "roles" / "job_cleanup" / "filter_plugins"))
from progress_line import progress_line


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def read(path: Path) -> dict:
    return json.loads(path.read_text())


def test_updates_within_a_second_of_the_last_write_are_not_written(tmp_path):
    clock = Clock()
    path = tmp_path / "progress.json"
    progress = Progress(path, state="absent", table="jobs", run_id="r1", clock=clock)
    progress.phase("writing", total=1000)  # a phase is always written
    assert progress.writes == 1 and read(path)["phase"] == "writing"

    for done in range(1, 100):
        clock.now += 0.005
        progress.update(done, {"changed": done})
    assert progress.writes == 1, "99 updates within half a second wrote the file again"
    assert read(path)["done"] == 0

    clock.now += 0.6  # a second since the last write
    progress.update(100, {"changed": 99, "skipped": 1})
    assert progress.writes == 2
    written = read(path)
    assert (written["done"], written["changed"], written["skipped"]) == (100, 99, 1)
    assert written["counts"] == {"changed": 99, "unchanged": 0, "skipped": 1, "failed": 0, "not_attempted": 0}

    clock.now += 0.1
    progress.finish({"changed": 999, "skipped": 1}, 1000, 1000)  # the end is always written
    assert progress.writes == 3
    final = read(path)
    assert final["phase"] == "done" and final["finished"] is True and final["done"] == final["total"] == 1000
    assert final["started"] <= final["updated"] and final["run_id"] == "r1"
    assert final["pid"] == os.getpid()  # the process to stop, for who reads the file


def test_counting_items_writes_at_most_once_a_second_and_yields_them_unchanged(tmp_path):
    clock = Clock()
    progress = Progress(tmp_path / "p.json", clock=clock)

    def items():  # one item every 0.3 s
        for value in range(10):
            clock.now += 0.3
            yield value

    assert list(progress.count_items(items())) == list(range(10))
    # Written at the 1st item, then at the first item a second or more later: the 5th (1.2 s) and the 9th.
    assert progress.writes == 3 and progress.data["done"] == 10


def test_without_a_path_nothing_is_written(tmp_path):
    progress = Progress(None)
    progress.phase("writing", total=5)
    progress.update(5, {"changed": 5})
    progress.finish({"changed": 5}, 5, 5)
    assert progress.writes == 0 and list(tmp_path.iterdir()) == []


def test_a_reader_never_sees_half_a_file(tmp_path):
    path = tmp_path / "progress.json"
    progress = Progress(path, interval=0, table="t" * 5000)  # a big file, rewritten as fast as it goes
    progress.phase("writing", total=300)
    seen: list[str] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                seen.append(path.read_text())
            except FileNotFoundError:  # pragma: no cover - the file exists from the first phase on
                seen.append("missing")

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for done in range(300):
            progress.update(done, {"changed": done})
    finally:
        stop.set()
        thread.join()
    assert seen and all(json.loads(text)["phase"] == "writing" for text in seen)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert [entry.name for entry in tmp_path.iterdir()] == ["progress.json"], "a temporary file was left behind"


def test_a_failed_write_keeps_the_previous_file_whole_and_the_run_goes_on(tmp_path, monkeypatch):
    path = tmp_path / "progress.json"
    progress = Progress(path, interval=0)
    progress.phase("writing", total=10)
    before = path.read_text()

    def no_space(_fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(progress_module.os, "fsync", no_space)
    progress.update(5, {"changed": 5})  # does not raise
    assert path.read_text() == before
    assert [entry.name for entry in tmp_path.iterdir()] == ["progress.json"]
    assert progress.error == (
        f"progress_path {path}: No space left on device; the run went on without progress updates"
    )
    assert not progress.enabled
    progress.finish({"changed": 10}, 10, 10)  # nothing more is tried
    assert path.read_text() == before


@pytest.mark.parametrize(
    ("data", "line"),
    [
        (None, "starting: no progress written yet"),
        ({}, "starting: no progress written yet"),
        (
            {"phase": "reading", "table": "jobs", "done": 120000, "total": 400000, "counts": {},
             "started": "2026-01-01T00:00:00Z", "updated": "2026-01-01T00:00:05Z"},
            "reading jobs: 120,000 of about 400,000 items read (5s in)",
        ),
        (
            {"phase": "writing", "state": "absent", "done": 12001, "total": 40000,
             "counts": {"changed": 12000, "skipped": 1}, "started": "2026-01-01T00:00:00Z",
             "updated": "2026-01-01T00:03:05Z"},
            "deleted 12,000 of 40,000 jobs, 1 skipped (12,001 done) (3m 05s in)",
        ),
        (
            {"phase": "writing", "state": "requeued", "done": 7, "total": 9, "counts": {"changed": 7}},
            "requeued 7 of 9 jobs",
        ),
        (
            {"phase": "audio", "state": "absent", "total": 3000, "counts": {"changed": 40000}},
            "deleting S3 audio: 3,000 objects, after 40,000 jobs deleted",
        ),
        (
            {"phase": "done", "state": "restored", "done": 5, "total": 5, "counts": {"changed": 4, "unchanged": 1}},
            "restored 4 of 5 jobs, 1 unchanged: finished",
        ),
        (
            {"phase": "failed", "state": "expiring", "done": 0, "total": 9, "counts": {"changed": 0}},
            "marked to expire 0 of 9 jobs: stopped",
        ),
    ],
)  # fmt: skip
def test_the_line_the_role_prints(data, line):
    assert progress_line(data) == line
