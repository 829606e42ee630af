"""Cleanup and restore that cannot surprise: each class an adversarial run found, through the module against moto.

One test (or parametrized group) per class: restore puts back only what the
cleanup deleted; runs lock their archive and table; preconditions are checked
before the first write; corrupt or foreign archives are refused; S3 archive
prefixes never confuse audio with records; bad inputs fail on the option.
"""

from __future__ import annotations

import json
import os
import threading

import pytest
import seed_jobs
from cleanup_module import run_cleanup_module
from fault_proxy import FaultProxy
from test_cleanup_playbook import (
    AUDIO_KEY,
    BUCKET,
    READ_OPERATIONS,
    TABLE,
    cleanup,
    client,
    job,
    object_keys,
    put_jobs,
    table_items,
)

LEGACY = "Automatic decryption not yet implemented"
PROCEDURE_1 = {"categories": ["legacy_encryption"], "delete_audio": True}


def seeded(endpoint_url: str, jobs: list[dict], audio: bytes = b"x") -> None:
    seed_jobs.create_resources(endpoint_url)
    put_jobs(endpoint_url, jobs)
    seed_jobs.put_objects(client(endpoint_url, "s3"), BUCKET, {(AUDIO_KEY.format(**j), audio) for j in jobs})


def legacy(job_id: str, **attributes) -> dict:
    return job(job_id, "failed", "2025-10-10T10:00:00Z", error_message=LEGACY, **attributes)


class BeforeFirstDelete(FaultProxy):
    """Runs `change` once, before the first DeleteItem reaches moto (another actor between selection and delete)."""

    def __init__(self, upstream_url: str, change) -> None:
        super().__init__(upstream_url)
        self._change, self._done, self._lock = change, False, threading.Lock()

    def admit(self, operation: str, request_bytes: int) -> bool:
        if operation == "DeleteItem":
            with self._lock:
                if not self._done:
                    self._change()
                    self._done = True
        return super().admit(operation, request_bytes)


# --------------------------------------------------------------------------- restore brings back only deletions


def test_restore_puts_back_only_jobs_the_cleanup_deleted_and_says_what_it_left(aws, tmp_path):
    retries = job("retries", "failed", "2025-10-10T10:00:00Z", error_message="Exceeded maximum retries (3)")
    seeded(aws.endpoint_url, [legacy("deleted-1"), legacy("deleted-2"), legacy("vanishes"), retries])
    dynamodb = client(aws.endpoint_url, "dynamodb")

    requeued = run_cleanup_module(
        aws.endpoint_url, tmp_path, state="requeued", categories=["max_retries"], requeue_fresh=True
    )
    assert requeued["counts"]["changed"] == 1, requeued
    dynamodb.delete_item(TableName=TABLE, Key={"job_id": {"S": "retries"}})  # the app deletes the requeued job later

    def vanish() -> None:
        dynamodb.delete_item(TableName=TABLE, Key={"job_id": {"S": "vanishes"}})

    with BeforeFirstDelete(aws.endpoint_url, vanish) as proxy:
        deleted = run_cleanup_module(proxy.url, tmp_path, categories=["legacy_encryption"])
    assert deleted["counts"]["changed"] == 2 and deleted["counts"]["skipped"] == 1, deleted
    assert set(table_items(aws.endpoint_url)) == set()

    restored = run_cleanup_module(aws.endpoint_url, tmp_path, state="restored")
    assert not restored.get("failed"), restored["msg"]
    assert sorted(table_items(aws.endpoint_url)) == ["deleted-1", "deleted-2"]
    assert restored["counts"]["changed"] == 2
    left = restored["not_restored"]
    assert left["count"] == 2 and left["by_reason"] == {"requeued": 1, "skipped": 1}
    reasons = {entry["job_id"]: entry["reason"] for entry in left["jobs"]}
    assert set(reasons) == {"retries", "vanishes"}
    assert reasons["retries"].startswith("archived by state=requeued") and "skipped" in reasons["vanishes"]


# --------------------------------------------------------------------------- one run at a time; leftovers finished


@pytest.mark.parametrize("scope", ["table", "archive"])
def test_a_run_refuses_in_one_line_while_another_holds_its_lock(aws, tmp_path, scope):
    import processing_jobs_cleanup  # noqa: F401  (puts module_utils in place)
    from ansible.module_utils.panzoto.cleanup.locks import RunLock, archive_lock_path, table_lock_path

    seeded(aws.endpoint_url, [legacy("a"), legacy("b")])
    before = table_items(aws.endpoint_url)
    if scope == "table":
        arn = client(aws.endpoint_url, "dynamodb").describe_table(TableName=TABLE)["Table"]["TableArn"]
        path = table_lock_path(tmp_path / "locks", arn, aws.endpoint_url)
    else:
        path = archive_lock_path(tmp_path / "locks", tmp_path / "archive.jsonl")
    holder = RunLock(path, scope).acquire({"pid": 4242, "run_id": "other-run"})
    try:
        for check_mode in (False, True):
            refused = run_cleanup_module(aws.endpoint_url, tmp_path, check_mode=check_mode, **PROCEDURE_1)
            assert refused.get("failed") and "Another cleanup run holds the lock" in refused["msg"], refused
            assert "pid 4242" in refused["msg"] and "\n" not in refused["msg"]
    finally:
        holder.release()
    assert table_items(aws.endpoint_url) == before and not (tmp_path / "archive.jsonl").exists()
    done = run_cleanup_module(aws.endpoint_url, tmp_path, **PROCEDURE_1)
    assert done["counts"]["changed"] == 2, done


def test_audio_another_run_left_shared_is_finished_by_the_next_run(aws, tmp_path):
    # Both jobs use one object. Another actor deletes `second` (as a concurrent run would)
    # between this run's selection and its deletes: this run keeps the object for `second`.
    seeded(aws.endpoint_url, [legacy("first", audio_file_id="shared"), legacy("second", audio_file_id="shared")])
    shared = AUDIO_KEY.format(user_id="user-1", audio_file_id="shared")
    dynamodb = client(aws.endpoint_url, "dynamodb")

    def other_run() -> None:
        dynamodb.delete_item(TableName=TABLE, Key={"job_id": {"S": "second"}})

    with BeforeFirstDelete(aws.endpoint_url, other_run) as proxy:
        first = run_cleanup_module(proxy.url, tmp_path, **PROCEDURE_1)
    assert first["counts"]["changed"] == 1 and first["audio"]["kept_referenced"] == [shared], first
    assert shared in object_keys(aws.endpoint_url)

    # No job references the object any more: the next run deletes it.
    second = run_cleanup_module(aws.endpoint_url, tmp_path, **PROCEDURE_1)
    assert not second.get("failed"), second["msg"]
    assert second["deleted_objects"] == [shared] and second["audio"]["from_earlier_runs"] == 1
    assert object_keys(aws.endpoint_url) == set()
    third = run_cleanup_module(aws.endpoint_url, tmp_path, **PROCEDURE_1)
    assert third["changed"] is False and third["deleted_objects"] == []


# --------------------------------------------------------------------------- preconditions before the first write


@pytest.mark.parametrize("check_mode", [True, False])
def test_a_missing_bucket_is_found_before_any_job_is_deleted(aws, tmp_path, check_mode):
    seeded(aws.endpoint_url, [legacy("a"), legacy("b")])
    before = table_items(aws.endpoint_url)
    with FaultProxy(aws.endpoint_url) as proxy:
        result = run_cleanup_module(proxy.url, tmp_path, check_mode=check_mode, bucket="no-such-bucket", **PROCEDURE_1)
    assert result.get("failed") and "bucket no-such-bucket does not exist" in result["msg"], result
    assert "service health" not in result["msg"] and "\n" not in result["msg"]
    assert set(proxy.counts) <= READ_OPERATIONS, dict(proxy.counts)
    assert table_items(aws.endpoint_url) == before and not (tmp_path / "archive.jsonl").exists()


def test_expiry_is_refused_when_the_table_expires_items_by_another_attribute(aws, tmp_path):
    seeded(aws.endpoint_url, [legacy("a")])
    client(aws.endpoint_url, "dynamodb").update_time_to_live(
        TableName=TABLE, TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"}
    )
    before = table_items(aws.endpoint_url)
    for check_mode in (True, False):
        result = run_cleanup_module(
            aws.endpoint_url, tmp_path, check_mode=check_mode, state="expiring", categories=["legacy_encryption"]
        )
        assert result.get("failed") and result["msg"].startswith("ttl_attribute expires_at:"), result
        assert "ttl_attribute=ttl" in result["msg"]
    assert table_items(aws.endpoint_url) == before and not (tmp_path / "archive.jsonl").exists()


# --------------------------------------------------------------------------- archives: corrupt, foreign, private


def test_restore_fails_on_unreadable_lines_with_their_numbers_unless_accepted(aws, tmp_path):
    seeded(aws.endpoint_url, [legacy("a"), legacy("b"), legacy("c")])
    run_cleanup_module(aws.endpoint_url, tmp_path, categories=["legacy_encryption"])
    archive = tmp_path / "archive.jsonl"
    lines = archive.read_text().splitlines(keepends=True)
    job_line = next(index for index, line in enumerate(lines) if json.loads(line)["job_id"] == "b")
    lines[job_line] = lines[job_line][: len(lines[job_line]) // 2] + "\n"  # torn in the middle
    archive.write_text("".join(lines))

    for check_mode in (True, False):
        refused = run_cleanup_module(aws.endpoint_url, tmp_path, check_mode=check_mode, state="restored")
        assert refused.get("failed") and f"archive.jsonl:{job_line + 1}" in refused["msg"], refused
        assert "accept_unreadable_lines" in refused["msg"] and "\n" not in refused["msg"]
    assert table_items(aws.endpoint_url) == {}
    accepted = run_cleanup_module(aws.endpoint_url, tmp_path, state="restored", accept_unreadable_lines=True)
    assert not accepted.get("failed"), accepted["msg"]
    assert sorted(table_items(aws.endpoint_url)) == ["a", "c"] and accepted["archive"]["unreadable_lines"] == 1


@pytest.mark.parametrize("content", ["just some notes\n", '{"jobs": []}\n', "\x00\xff binary"])
def test_cleanup_refuses_an_archive_path_that_is_not_its_own_archive(aws, tmp_path, content):
    seeded(aws.endpoint_url, [legacy("a")])
    foreign = tmp_path / "archive.jsonl"
    foreign.write_text(content, encoding="latin-1")
    result = run_cleanup_module(aws.endpoint_url, tmp_path, check_mode=True, categories=["legacy_encryption"])
    assert (
        result.get("failed")
        and result["msg"].startswith("archive_path ")
        and "not a panzoto-ops archive" in result["msg"]
    )
    result = run_cleanup_module(aws.endpoint_url, tmp_path, categories=["legacy_encryption"])
    assert result.get("failed") and "not a panzoto-ops archive" in result["msg"]
    assert foreign.read_text(encoding="latin-1") == content and "a" in table_items(aws.endpoint_url)


def test_an_existing_archive_is_made_private_and_a_torn_tail_never_swallows_the_next_record(aws, tmp_path):
    seeded(aws.endpoint_url, [legacy("a"), legacy("b")])
    run_cleanup_module(aws.endpoint_url, tmp_path, job_ids=["a"])
    archive = tmp_path / "archive.jsonl"
    os.chmod(archive, 0o644)
    with open(archive, "a") as handle:
        handle.write('{"format": 1, "record": "jo')  # a crash in the middle of a write
    run_cleanup_module(aws.endpoint_url, tmp_path, job_ids=["b"])
    assert archive.stat().st_mode & 0o777 == 0o600
    restored = run_cleanup_module(aws.endpoint_url, tmp_path, state="restored", accept_unreadable_lines=True)
    assert sorted(table_items(aws.endpoint_url)) == ["a", "b"], restored
    assert restored["archive"]["unreadable_lines"] == 1


# --------------------------------------------------------------------------- S3 archives beside audio copies


@pytest.mark.parametrize(("records", "audio"), [("ops/", "ops/"), ("audio_upload/", "old/"), ("ops/", "ops/audio/")])
def test_restore_from_an_s3_prefix_holding_audio_copies_reads_only_archive_records(aws, tmp_path, records, audio):
    jobs = [legacy(f"job-{index}") for index in range(3)]
    seeded(aws.endpoint_url, jobs, audio=b"\xd3\x00\xff\xfe not text")
    before = table_items(aws.endpoint_url)
    wipe = run_cleanup_module(
        aws.endpoint_url, tmp_path, wipe_all=True, confirm=TABLE, delete_audio=True,
        archive_s3_prefix=records, archive_audio_prefix=audio,
    )  # fmt: skip
    assert wipe["counts"]["changed"] == 3 and wipe["audio"]["archived"] == 3, wipe
    # Other binary objects under the prefix, one of them named like an archive object.
    strays = [f"{records}stray.3gp", f"{records}20251019T180000Z-abcdef/{TABLE}-00000.jsonl"]
    seed_jobs.put_objects(client(aws.endpoint_url, "s3"), BUCKET, [(key, b"\xd3\x00\xff") for key in strays])
    restored = run_cleanup_module(
        aws.endpoint_url, tmp_path, state="restored", archive_path=None, archive_s3_prefix=records
    )
    assert not restored.get("failed"), restored["msg"]
    assert restored["counts"]["changed"] == 3 and table_items(aws.endpoint_url) == before
    assert restored["audio"]["restored"] == 3 and restored["archive"]["unreadable_lines"] == 0


# --------------------------------------------------------------------------- bad inputs fail on the option


@pytest.mark.parametrize(
    ("args", "option"),
    [
        ({"stuck_after": "99999999999999d"}, "stuck_after"),
        ({"older_than": "99999999999999d"}, "older_than"),
        ({"state": "expiring", "expire_after": "99999999999999d"}, "expire_after"),
        # At the calendar's edge the reference time itself is refused (jobs.py reads such dates as out of range).
        ({"state": "expiring", "now": "9999-12-30T00:00:00Z", "expire_after": "7d"}, "invalid now"),
        (
            {"audio_key_template": "audio_upload/{user_id:d}/{audio_file_id}", "delete_audio": True},
            "audio_key_template",
        ),
        (
            {"audio_key_template": "audio_upload/{user_id!r}/{audio_file_id}", "delete_audio": True},
            "audio_key_template",
        ),
        ({"audio_key_template": "audio_upload/{x!r}", "delete_audio": True}, "audio_key_template"),
        ({"archive_path": "DIRECTORY"}, "archive_path"),
        ({"classification_rules": [{"category": "x", "regex": True, "match": "("}]}, "classification_rules"),
    ],
)
def test_inputs_that_used_to_crash_fail_in_one_line_naming_the_option_and_change_nothing(aws, tmp_path, args, option):
    seeded(aws.endpoint_url, [legacy("a"), legacy("b")])
    before, keys = table_items(aws.endpoint_url), object_keys(aws.endpoint_url)
    if args.get("archive_path") == "DIRECTORY":
        args = {**args, "archive_path": str(tmp_path)}
    for check_mode in (True, False):
        result = run_cleanup_module(
            aws.endpoint_url, tmp_path, check_mode=check_mode, **{"categories": ["legacy_encryption"], **args}
        )
        assert result.get("failed"), result
        assert result["msg"].startswith(option) and "\n" not in result["msg"], result["msg"]
        assert "Traceback" not in json.dumps(result)
    assert table_items(aws.endpoint_url) == before and object_keys(aws.endpoint_url) == keys
    assert not (tmp_path / "archive.jsonl").exists()


# --------------------------------------------------------------------------- counts are not capped by list_limit


def test_kept_counts_are_exact_whatever_list_limit(aws, tmp_path):
    jobs = [legacy(f"legacy-{i}", audio_file_id=f"shared-{i}") for i in range(3)]
    kept = [job(f"done-{i}", "completed", "2025-10-12T10:00:00Z", audio_file_id=f"shared-{i}") for i in range(3)]
    seeded(aws.endpoint_url, jobs + kept)
    result = run_cleanup_module(aws.endpoint_url, tmp_path, list_limit=1, **PROCEDURE_1)
    assert result["counts"]["changed"] == 3 and len(result["audio"]["kept_referenced"]) == 1
    assert result["audio"]["kept_referenced_count"] == 3 and result["audio"]["deleted"] == 0


# --------------------------------------------------------------------------- no reserved result keys


def test_a_requeue_that_changed_one_job_and_skipped_another_reports_changed_not_skipping(aws, tmp_path):
    seeded(
        aws.endpoint_url,
        [
            job("retry-me", "failed", "2025-10-19T10:00:00Z", error_message="Exceeded maximum retries (3)"),
            job("done", "completed", "2025-10-19T10:00:00Z"),
        ],
    )
    run, report = cleanup(
        tmp_path, aws.endpoint_url, cleanup_jobs_state="requeued", cleanup_jobs_job_ids=["retry-me", "done"]
    )
    assert run.returncode == 0, run.output
    # The real run goes to the background (the role's apply_background.yml): its result is the last poll's.
    module_task = run.stdout.rsplit("Collect the cleanup's result.]", 1)[1].split("TASK [", 1)[0]
    assert "changed: [localhost]" in module_task and "skipping:" not in module_task, module_task
    assert report["counts"]["changed"] == 1 and report["counts"]["skipped"] == 1
    assert [entry["job_id"] for entry in report["skipped_jobs"]] == ["done"] and "skipped" not in report


def test_restore_from_the_s3_copy_and_from_the_file_bring_back_the_same_jobs(aws, tmp_path):
    seeded(aws.endpoint_url, [legacy("deleted-1"), legacy("deleted-2"), legacy("vanishes"), legacy("retried")])
    dynamodb = client(aws.endpoint_url, "dynamodb")

    def the_app_acts() -> None:  # between selection and delete: one job deleted, one retried
        dynamodb.delete_item(TableName=TABLE, Key={"job_id": {"S": "vanishes"}})
        dynamodb.update_item(
            TableName=TABLE, Key={"job_id": {"S": "retried"}}, UpdateExpression="SET #s = :p",
            ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":p": {"S": "pending"}},
        )  # fmt: skip

    with BeforeFirstDelete(aws.endpoint_url, the_app_acts) as proxy:
        deleted = run_cleanup_module(proxy.url, tmp_path, archive_s3_prefix="ops-archive/", **PROCEDURE_1)
    assert deleted["counts"]["changed"] == 2 and deleted["counts"]["skipped"] == 2, deleted
    (copy,) = object_keys(aws.endpoint_url, prefix="ops-archive/")  # one object per chunk, outcomes included
    body = client(aws.endpoint_url, "s3").get_object(Bucket=BUCKET, Key=copy)["Body"].read().decode()
    outcomes = {r["job_id"]: r["outcome"] for r in map(json.loads, body.splitlines()) if r["record"] == "result"}
    assert outcomes == {"deleted-1": "deleted", "deleted-2": "deleted", "vanishes": "skipped", "retried": "skipped"}
    dynamodb.delete_item(TableName=TABLE, Key={"job_id": {"S": "retried"}})  # the app finishes with it later

    from_file = run_cleanup_module(aws.endpoint_url, tmp_path, check_mode=True, state="restored")
    from_s3 = run_cleanup_module(
        aws.endpoint_url,
        tmp_path,
        check_mode=True,
        state="restored",
        archive_path=None,
        archive_s3_prefix="ops-archive/",
    )
    for restore in (from_file, from_s3):
        assert not restore.get("failed"), restore["msg"]
        assert restore["job_ids"] == ["deleted-1", "deleted-2"], restore
        assert restore["not_restored"]["by_reason"] == {"skipped": 2}, restore["not_restored"]
    done = run_cleanup_module(
        aws.endpoint_url, tmp_path, state="restored", archive_path=None, archive_s3_prefix="ops-archive/"
    )
    assert sorted(table_items(aws.endpoint_url)) == ["deleted-1", "deleted-2"], done


@pytest.mark.parametrize("check_mode", [True, False])
def test_an_archive_path_that_is_a_dangling_symlink_fails_the_up_front_check(aws, tmp_path, check_mode):
    seeded(aws.endpoint_url, [legacy("a")])
    before = table_items(aws.endpoint_url)
    link = tmp_path / "archive.jsonl"
    link.symlink_to(tmp_path / "gone" / "archive.jsonl")
    result = run_cleanup_module(aws.endpoint_url, tmp_path, check_mode=check_mode, **PROCEDURE_1)
    assert result.get("failed") and "\n" not in result["msg"], result
    assert (
        f"archive_path {link} is a symbolic link to {tmp_path}/gone/archive.jsonl, which does not exist"
        in result["msg"]
    )
    assert "Errno" not in result["msg"] and table_items(aws.endpoint_url) == before
    assert not (tmp_path / "gone").exists()
