"""A cleanup failed at every one of its requests, then rerun: nothing is lost (benchmarks/cleanup_fault_sweep.py).

For k = 1..N (N = the HTTP requests of an uninterrupted run, counted at tests/harness/fault_proxy.py), the
endpoint dies at request k, or the module process is SIGKILLed when request k reaches moto; then the
same cleanup is rerun against the healthy endpoint. After each: the table and bucket equal those of
the uninterrupted run, the archive file and its S3 copy hold every deleted job exactly, and no audio
a kept job references is gone. The script runs the same sweep bigger (300 jobs by default).
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

import cleanup_fault_sweep as sweep_script  # noqa: E402

# 40 items: 19 deleted jobs, audio shared across users and with kept jobs; N = 33 requests, so 33 fault
# points per kind (about 1 CPU-minute per kind; the 300-job sweep is the script's default).
JOBS = 40


# --------------------------------------------------------------------------- the judge can fail


def to_archive_json(value: Any) -> Any:
    """Low-level item -> the archive's DynamoDB JSON (binary as base64)."""
    if isinstance(value, dict):
        if len(value) == 1:
            ((kind, inner),) = value.items()
            if kind == "B":
                return {"B": base64.b64encode(inner).decode()}
            if kind == "BS":
                return {"BS": [base64.b64encode(part).decode() for part in inner]}
            if kind in ("M", "L"):
                return {kind: to_archive_json(inner)}
            if kind in ("S", "N", "SS", "NS", "NULL", "BOOL"):
                return value
        return {name: to_archive_json(part) for name, part in value.items()}
    if isinstance(value, list):
        return [to_archive_json(part) for part in value]
    return value


def type_names(value: dict[str, Any]) -> set[str]:
    """The DynamoDB types in a low-level value, nested ones included."""
    ((kind, inner),) = value.items()
    nested = inner.values() if kind == "M" else inner if kind == "L" else []
    return {kind}.union(*(type_names(part) for part in nested))


@pytest.fixture
def judged(tmp_path: Path):
    """A seed, the state an uninterrupted run leaves (built by hand) and its archive file."""
    seed = sweep_script.build_seed(JOBS)
    original = {sweep_script.canon_id(item): sweep_script.canon(item) for item in seed.items}
    records = [
        {"record": "job", "job_id": job_id, "item": to_archive_json(seed.items[int(job_id[4:])])}
        for job_id in sorted(seed.deleted)
    ]
    archive = tmp_path / "archive.jsonl"
    archive.write_text("".join(json.dumps(record) + "\n" for record in records))
    archive.chmod(0o600)
    state = sweep_script.State(seed.expected_table(), seed.expected_bucket(), list(records))
    return seed, original, state, archive, records


def test_the_seed_shares_audio_across_users_and_with_kept_jobs_and_holds_every_type(judged) -> None:
    seed, _, _, _, _ = judged
    users_of: dict[str, set[str]] = {}
    for item in seed.items:
        if "audio_file_id" in item:
            users_of.setdefault(seed.audio_key(item), set()).add(item["user_id"]["S"])
    assert any(len(users) > 1 for users in users_of.values()), "no object shared by two users"
    deleted_keys = {seed.audio_key(item) for item in seed.items if item["job_id"]["S"] in seed.deleted}
    kept_keys = {seed.audio_key(item) for item in seed.items if item["job_id"]["S"] not in seed.deleted}
    assert deleted_keys & kept_keys, "no object shared by a deleted and a kept job"
    assert deleted_keys - kept_keys, "no object the cleanup deletes"
    kinds = set().union(*(type_names({"M": item}) for item in seed.items))
    assert {"S", "N", "B", "SS", "NS", "BS", "M", "L", "NULL", "BOOL"} <= kinds


def test_the_judge_passes_the_right_end_state(judged) -> None:
    seed, original, state, archive, _ = judged
    assert sweep_script.lost(seed, original, state, archive) == []


def test_the_judge_names_every_kind_of_loss(judged) -> None:
    seed, original, state, archive, records = judged
    kept_item = next(item for item in seed.items if item["job_id"]["S"] not in seed.deleted and "audio_file_id" in item)
    kept_key = seed.audio_key(kept_item)
    victim = sorted(seed.deleted)[0]

    bucket = dict(state.bucket)
    del bucket[kept_key]
    problems = sweep_script.lost(seed, original, sweep_script.State(state.table, bucket, records), archive)
    assert any(p.startswith("bucket differs: missing") for p in problems)
    assert any(p.startswith("audio of kept jobs is gone") and kept_key in p for p in problems)

    table = {**state.table, victim: original[victim]}
    problems = sweep_script.lost(seed, original, sweep_script.State(table, state.bucket, records), archive)
    assert problems == [f"table differs: missing [], not deleted ['{victim}'], modified []"]

    # One byte of one binary-set member changed in the S3 copy: not the exact item any more.
    tampered = json.loads(json.dumps(records))
    chunks = tampered[0]["item"]["chunks"]["BS"]
    chunks[0] = base64.b64encode(b"\x09" + base64.b64decode(chunks[0])[1:]).decode()
    problems = sweep_script.lost(seed, original, sweep_script.State(state.table, state.bucket, tampered), archive)
    assert problems == [f"S3 archive lacks the exact item of deleted jobs ['{records[0]['job_id']}'] (1)"]

    archive.write_text("".join(json.dumps(record) + "\n" for record in records[1:]))
    problems = sweep_script.lost(seed, original, state, archive)
    assert problems == [f"archive file lacks the exact item of deleted jobs ['{records[0]['job_id']}'] (1)"]


# --------------------------------------------------------------------------- the sweep


@pytest.mark.parametrize("kind", sweep_script.KINDS)
def test_every_fault_point_of_a_cleanup_loses_nothing_after_a_rerun(aws, kind: str) -> None:
    report = sweep_script.sweep(aws.endpoint_url, JOBS, kinds=(kind,))
    seed = sweep_script.build_seed(JOBS)
    assert report.deleted == len(seed.deleted) > 0
    # The uninterrupted run: one conditional DeleteItem per deleted job, one DeleteObjects batch.
    assert report.requests_by_operation["DeleteItem"] == len(seed.deleted)
    assert report.requests_by_operation["DeleteObjects"] == 1
    assert report.requests == sum(report.requests_by_operation.values())
    assert report.points == report.requests, "every k from 1 to N was tried"
    assert report.failures == [], json.dumps(report.failures, indent=2)


# Transactions of 8 (and chunks of 8: one at a time against moto): 19 deletes cross three transactions,
# each archived (file and S3 copy) before it is sent, and its S3 copy put again with the outcomes after.
BATCH = 8


@pytest.mark.parametrize("kind", sweep_script.KINDS)
def test_every_fault_point_of_a_batched_cleanup_loses_nothing_after_a_rerun(aws, kind: str) -> None:
    report = sweep_script.sweep(aws.endpoint_url, JOBS, kinds=(kind,), write_batch_size=BATCH)
    seed = sweep_script.build_seed(JOBS)
    assert report.deleted == len(seed.deleted) > 0
    by_operation = report.requests_by_operation
    assert (
        by_operation["TransactWriteItems"] == -(-len(seed.deleted) // BATCH) == 3 and "DeleteItem" not in by_operation
    )
    assert by_operation["PutObject"] == 2 * 3 and by_operation["DeleteObjects"] == 1
    assert report.requests == sum(report.requests_by_operation.values())
    assert report.points == report.requests, "every k from 1 to N was tried"
    assert report.failures == [], json.dumps(report.failures, indent=2)
