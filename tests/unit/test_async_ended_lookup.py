"""The lookup the cleanup's background poll waits with (roles/job_cleanup/lookup_plugins/panzoto_async_ended.py),
loaded by Ansible's own plugin loader, against status files written as async_wrapper writes them."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import lookup_loader

LOOKUP_DIR = Path(__file__).resolve().parents[2] / "roles" / "job_cleanup" / "lookup_plugins"
RUNNING = {"started": 1, "finished": 0, "ansible_job_id": "j1"}


@pytest.fixture(scope="module")
def lookup():
    lookup_loader.add_directory(str(LOOKUP_DIR))
    plugin = lookup_loader.get("panzoto_async_ended", loader=DataLoader(), templar=None)
    assert plugin is not None, "Ansible does not find the lookup in the role"

    def ended(path: Path, timeout: float) -> tuple[bool, float]:
        start = time.monotonic()
        (answer,) = plugin.run([str(path)], variables={}, timeout=timeout)
        return answer, time.monotonic() - start

    return ended


def write_status(path: Path, status: object) -> None:
    """As async_wrapper does: a temporary file, then a rename."""
    path.with_suffix(".tmp").write_text(json.dumps(status))
    os.rename(path.with_suffix(".tmp"), path)


def test_a_running_task_has_not_ended_after_the_whole_wait(lookup, tmp_path: Path) -> None:
    status = tmp_path / "j1"
    write_status(status, RUNNING)
    ended, waited = lookup(status, 0.5)
    assert ended is False
    assert waited >= 0.5


def test_the_wait_ends_soon_after_the_result_is_written(lookup, tmp_path: Path) -> None:
    status = tmp_path / "j1"
    write_status(status, RUNNING)
    threading.Timer(0.3, write_status, (status, {"changed": True, "invocation": {}})).start()
    ended, waited = lookup(status, 30)
    assert ended is True
    assert 0.3 <= waited < 5


@pytest.mark.parametrize(
    "status",
    [
        {"changed": False, "msg": "done"},  # the module's result: no "started"
        {"failed": 1, "msg": "could not start"},  # async_wrapper's own failure
        {"started": 1, "finished": 1, "ansible_job_id": "j1"},
    ],
    ids=["result", "wrapper-failure", "finished-set"],
)
def test_a_status_async_status_calls_finished_has_ended_at_once(lookup, tmp_path: Path, status: dict) -> None:
    path = tmp_path / "j1"
    write_status(path, status)
    ended, waited = lookup(path, 30)
    assert ended is True
    assert waited < 1


@pytest.mark.parametrize("content", [None, "", "not json", "[1, 2]"], ids=["missing", "empty", "garbage", "list"])
def test_a_missing_or_unreadable_status_counts_as_ended_once_the_wait_is_over(
    lookup, tmp_path: Path, content: str | None
) -> None:
    """async_status, asked next, then says what it is (a job it cannot find, or output it cannot parse)."""
    path = tmp_path / "j1"
    if content is not None:
        path.write_text(content)
    ended, waited = lookup(path, 0.3)
    assert ended is True
    assert waited >= 0.3
