"""The archive read back only as far as needed: a run that leaves no audio pending marks the point, the next
run reads only what follows it, and still finishes every audio object an earlier run left."""

from __future__ import annotations

import json

from cleanup_module import run_cleanup_module
from test_cleanup_playbook import AUDIO_KEY, BUCKET, TABLE, client, job, object_keys
from test_cleanup_safety import legacy, seeded

PROCEDURE_1 = {"categories": ["legacy_encryption"], "delete_audio": True}


def records(tmp_path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "archive.jsonl").read_text().splitlines()]


def is_marker(record: dict) -> bool:
    return record["record"] == "audio" and record.get("settled") is True and record["table"] == TABLE


def test_a_settled_run_marks_the_archive_and_the_next_run_still_finishes_an_earlier_runs_audio(aws, tmp_path):
    seeded(aws.endpoint_url, [legacy("a"), legacy("b"), job("kept", "completed", "2025-10-10T10:00:00Z")])
    first = run_cleanup_module(aws.endpoint_url, tmp_path, **PROCEDURE_1)
    assert first["counts"]["changed"] == 2 and not first.get("failed"), first
    assert is_marker(records(tmp_path)[-1]) and records(tmp_path)[-1]["unreadable_before"] == 0

    # An interrupted run after the marker: job "gone" deleted, its audio never dealt with.
    orphan = AUDIO_KEY.format(user_id="user-1", audio_file_id="audio-gone")
    client(aws.endpoint_url, "s3").put_object(Bucket=BUCKET, Key=orphan, Body=b"x")
    gone = {**records(tmp_path)[0], "job_id": "gone", "run_id": "20251019T170000Z-abcdef", "audio_key": orphan}
    with open(tmp_path / "archive.jsonl", "a") as handle:
        handle.write(json.dumps(gone) + "\n")
        handle.write("torn line\n")
    second = run_cleanup_module(aws.endpoint_url, tmp_path, **PROCEDURE_1)
    assert not second.get("failed"), second
    assert second["audio"]["from_earlier_runs"] == 1 and orphan not in object_keys(aws.endpoint_url)
    assert second["archive"]["unreadable_lines"] == 1
    after = records_after_torn(tmp_path)
    assert is_marker(after[-1]) and after[-1]["unreadable_before"] == 1


def records_after_torn(tmp_path) -> list[dict]:
    lines = (tmp_path / "archive.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines[lines.index("torn line") + 1 :]]


def test_a_run_that_keeps_shared_audio_leaves_no_marker(aws, tmp_path):
    # "b" is kept (completed) and uses the same audio as the deleted "a": the key stays pending.
    shared = {"audio_file_id": "audio-shared"}
    seeded(aws.endpoint_url, [legacy("a", **shared), job("b", "completed", "2025-10-10T10:00:00Z", **shared)])
    done = run_cleanup_module(aws.endpoint_url, tmp_path, **PROCEDURE_1)
    assert done["audio"]["kept_referenced_count"] == 1, done
    assert not any(is_marker(record) for record in records(tmp_path))
