"""Run locks: one run per table and per archive, released however the run ends."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from ansible.module_utils.panzoto.cleanup.locks import (
    LockHeld,
    RunLock,
    RunLocks,
    archive_lock_path,
    local_table_identity,
    table_lock_path,
)


def test_a_second_holder_is_refused_with_who_holds_it_and_may_take_it_once_released(tmp_path: Path):
    path = tmp_path / "locks" / "t.lock"
    first = RunLock(path, "table t").acquire({"pid": 11, "run_id": "run-1"})
    with pytest.raises(LockHeld) as error:
        RunLock(path, "table t").acquire({"pid": 12, "run_id": "run-2"})
    assert "holds the lock on table t (pid 11, run_id run-1)" in str(error.value) and "\n" not in str(error.value)
    first.release()
    RunLock(path, "table t").acquire({"pid": 12}).release()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path):
    path = tmp_path / "t.lock"
    holder = (
        f"import fcntl, os; fd = os.open({str(path)!r}, os.O_RDWR | os.O_CREAT); "
        "fcntl.flock(fd, fcntl.LOCK_EX); os._exit(9)"
    )
    subprocess.run([sys.executable, "-c", holder], check=False)
    RunLock(path, "t").acquire({}).release()


def test_lock_files_are_per_table_arn_and_resolved_archive(tmp_path: Path):
    arn = "arn:aws:dynamodb:us-east-1:123456789012:table/jobs"
    base = table_lock_path(tmp_path, arn)
    assert base == table_lock_path(tmp_path, arn)
    assert base != table_lock_path(tmp_path, arn.replace("us-east-1", "eu-west-1"))
    assert base != table_lock_path(tmp_path, arn.replace("table/jobs", "table/transcripts"))
    (tmp_path / "a").mkdir()
    assert archive_lock_path(tmp_path, tmp_path / "a" / ".." / "x.jsonl") == archive_lock_path(
        tmp_path, tmp_path / "x.jsonl"
    )


def test_run_locks_release_everything_they_took(tmp_path: Path):
    locks = RunLocks()
    locks.take(RunLock(tmp_path / "1.lock", "one"), {})
    locks.take(RunLock(tmp_path / "2.lock", "two"), {})
    locks.release()
    RunLock(tmp_path / "1.lock", "one").acquire({}).release()
    RunLock(tmp_path / "2.lock", "two").acquire({}).release()


def test_the_local_table_lock_is_one_per_table_and_endpoint_whatever_its_spelling(tmp_path: Path):
    arn = "arn:aws:dynamodb:us-east-1:123456789012:table/panzoto-processing-jobs"
    identity = local_table_identity
    assert identity(arn, None) == arn  # AWS: the ARN is unique
    assert identity(arn, "http://127.0.0.1:5000") == identity(arn, "http://localhost:5000/")
    # Two local endpoints give every table the same ARN: they are two tables.
    assert identity(arn, "http://127.0.0.1:5000") != identity(arn, "http://127.0.0.1:5001")
    # The lock file follows the identity.
    assert table_lock_path(tmp_path, arn, "http://localhost:5000/") == table_lock_path(
        tmp_path, arn, "http://127.0.0.1:5000"
    )
    assert table_lock_path(tmp_path, arn, "http://127.0.0.1:5001") != table_lock_path(
        tmp_path, arn, "http://127.0.0.1:5000"
    )
