"""playbooks/cleanup_jobs.yml through ansible-playbook against moto's server.

Expected ids come from the seeder (tools/seed_jobs.py), which knows each job's
category by construction; the table and bucket are read back with boto3 to
check what really changed.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import boto3
import seed_jobs
from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer
from fault_proxy import FaultProxy
from support.playbook import run_playbook

GUIDE_NOW = "2025-10-19T18:00:00Z"
TABLE = "panzoto-processing-jobs"
BUCKET = "panzoto"
AUDIO_KEY = "audio_upload/{user_id}/{audio_file_id}.3gp_encrypted"
PROCEDURE_1 = {"cleanup_jobs_categories": ["legacy_encryption"], "cleanup_jobs_delete_audio": True}
# Read-only operations: a dry run may send these and nothing else.
READ_OPERATIONS = {"DescribeTable", "Scan", "GetItem", "DescribeTimeToLive", "HeadObject", "ListObjectsV2", "GetObject"}


# --------------------------------------------------------------------------- helpers


def cleanup(tmp_path: Path, endpoint_url: str, *, check: bool = False, diff: bool = False, **variables):
    """Run the cleanup playbook; return the run and the JSON report it wrote (None if none)."""
    report = tmp_path / "report.json"
    report.unlink(missing_ok=True)
    extra = {
        "cleanup_jobs_now": GUIDE_NOW,
        "cleanup_jobs_archive_path": str(tmp_path / "archive.jsonl"),
        "cleanup_jobs_report_path": str(report),
        **variables,
    }
    run = run_playbook(
        "cleanup_jobs.yml", extra_vars=extra, check=check, diff=diff, env={"AWS_ENDPOINT_URL": endpoint_url}
    )
    return run, json.loads(report.read_text()) if report.exists() else None


def client(endpoint_url: str, service: str):
    return boto3.client(service, endpoint_url=endpoint_url, region_name="us-east-1")


def table_items(endpoint_url: str, table: str = TABLE) -> dict[str, dict]:
    """Every item of the table as low-level attribute values (exact types), by job_id."""
    dynamodb = client(endpoint_url, "dynamodb")
    items: dict[str, dict] = {}
    for page in dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        for item in page["Items"]:
            items[item["job_id"]["S"]] = item
    return items


def object_keys(endpoint_url: str, bucket: str = BUCKET, prefix: str = "") -> set[str]:
    s3 = client(endpoint_url, "s3")
    keys: set[str] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.update(entry["Key"] for entry in page.get("Contents", []))
    return keys


def audio_key_of(item: dict) -> str:
    return AUDIO_KEY.format(user_id=item["user_id"]["S"], audio_file_id=item["audio_file_id"]["S"])


def put_jobs(endpoint_url: str, jobs: list[dict], table: str = TABLE) -> None:
    dynamodb = client(endpoint_url, "dynamodb")
    serialize = TypeSerializer().serialize
    for job in jobs:
        dynamodb.put_item(TableName=table, Item={name: serialize(value) for name, value in job.items()})


def job(job_id: str, status: str, created_at: str, **attributes) -> dict:
    return {
        "job_id": job_id,
        "user_id": "user-1",
        "job_type": "transcription",
        "status": status,
        "audio_file_id": f"audio-{job_id}",
        "created_at": created_at,
        **attributes,
    }


def guide(endpoint_url: str) -> tuple[dict, dict[str, dict]]:
    expected = seed_jobs.seed_guide_snapshot(endpoint_url)
    return expected, table_items(endpoint_url)


# --------------------------------------------------------------------------- procedure 1


def test_procedure_1_dry_run_predicts_the_real_run_which_deletes_exactly_the_legacy_jobs_and_audio(aws, tmp_path):
    expected, before = guide(aws.endpoint_url)
    legacy = set(expected["job_ids"]["by_category"]["legacy_encryption"])
    assert len(legacy) == 34
    legacy_keys = {audio_key_of(before[job_id]) for job_id in legacy}
    keys_before = object_keys(aws.endpoint_url)
    assert len(keys_before) == 60

    dry, predicted = cleanup(tmp_path, aws.endpoint_url, check=True, diff=True, **PROCEDURE_1)
    assert dry.returncode == 0, dry.output
    assert table_items(aws.endpoint_url) == before, "check mode changed the table"
    assert object_keys(aws.endpoint_url) == keys_before, "check mode changed the bucket"
    assert not (tmp_path / "archive.jsonl").exists(), "check mode wrote the archive"
    assert set(predicted["requests"]["by_operation"]) <= READ_OPERATIONS
    assert predicted["counts"] == {"changed": 34, "unchanged": 0, "skipped": 0, "failed": 0, "not_attempted": 0}
    assert set(predicted["job_ids"]) == legacy
    assert set(predicted["deleted_objects"]) == legacy_keys
    assert "34 jobs would be deleted" in dry.stdout
    assert "-        legacy_encryption: 34" in dry.stdout and "+        legacy_encryption: 0" in dry.stdout  # the diff

    real, done = cleanup(tmp_path, aws.endpoint_url, **PROCEDURE_1)
    assert real.returncode == 0, real.output
    assert real.changed() >= 1
    for field in ("counts", "by_category", "job_ids", "deleted_objects", "selected"):
        assert done[field] == predicted[field], field
    assert done["audio"]["delete_requests"] == 1 and done["requests"]["by_operation"]["DeleteObjects"] == 1

    after = table_items(aws.endpoint_url)
    assert set(after) == set(before) - legacy
    assert all(after[job_id] == before[job_id] for job_id in after), "kept jobs were modified"
    assert object_keys(aws.endpoint_url) == keys_before - legacy_keys

    archived = [json.loads(line) for line in (tmp_path / "archive.jsonl").read_text().splitlines()]
    assert {r["job_id"] for r in archived if r["record"] == "job"} == legacy
    assert (tmp_path / "archive.jsonl").stat().st_mode & 0o777 == 0o600

    again, rerun = cleanup(tmp_path, aws.endpoint_url, **PROCEDURE_1)
    assert again.returncode == 0, again.output
    assert again.changed() == 0
    assert rerun["counts"]["changed"] == 0 and rerun["deleted_objects"] == []


def test_audio_still_referenced_by_a_kept_job_survives(aws, tmp_path):
    expected, before = guide(aws.endpoint_url)
    legacy = sorted(expected["job_ids"]["by_category"]["legacy_encryption"])
    shared = before[legacy[0]]
    # A completed job (kept) re-used the audio of a legacy job.
    put_jobs(
        aws.endpoint_url,
        [job("kept-reuse", "completed", "2025-10-18T10:00:00Z", user_id=shared["user_id"]["S"],
             audio_file_id=shared["audio_file_id"]["S"], completed_at="2025-10-18T10:01:00Z")],
    )  # fmt: skip
    shared_key = audio_key_of(shared)

    run, report = cleanup(tmp_path, aws.endpoint_url, **PROCEDURE_1)
    assert run.returncode == 0, run.output
    assert report["counts"]["changed"] == 34
    assert report["audio"]["kept_referenced"] == [shared_key]
    assert shared_key in object_keys(aws.endpoint_url)
    assert shared_key not in report["deleted_objects"] and len(report["deleted_objects"]) == 33


# --------------------------------------------------------------------------- selection boundaries


def test_older_than_and_stuck_pending_are_exact_at_their_boundaries(aws, tmp_path):
    seed_jobs.create_resources(aws.endpoint_url)
    now = datetime(2025, 10, 19, 18, 0, 0, tzinfo=UTC)

    def at(delta: timedelta, form: str) -> str:
        moment = now - delta
        text = moment.replace(tzinfo=None).isoformat()
        return {"naive": text, "z": text + "Z", "offset": text + "+00:00"}[form]

    week, hour, second = timedelta(days=7), timedelta(hours=1), timedelta(seconds=1)
    message = "Exceeded maximum retries (3)"
    put_jobs(
        aws.endpoint_url,
        [
            job("failed-exactly-7d", "failed", at(week, "z"), error_message=message),
            job("failed-7d-1s", "failed", at(week + second, "naive"), error_message=message),
            job("failed-8d", "failed", at(week + timedelta(days=1), "offset"), error_message=message),
            job("failed-6d", "failed", at(week - timedelta(days=1), "z"), error_message=message),
            job("completed-9d", "completed", at(timedelta(days=9), "z")),
            job("pending-exactly-1h", "pending", at(hour, "offset")),
            job("pending-1h-1s", "pending", at(hour + second, "z")),
            job("pending-2d", "pending", at(timedelta(days=2), "naive")),
            job("pending-5m", "pending", at(timedelta(minutes=5), "z")),
            job("processing-3h", "processing", at(timedelta(hours=3), "z")),
        ],
    )
    run, report = cleanup(
        tmp_path, aws.endpoint_url, check=True, cleanup_jobs_statuses=["failed"], cleanup_jobs_older_than="7d"
    )
    assert run.returncode == 0, run.output
    assert sorted(report["job_ids"]) == ["failed-7d-1s", "failed-8d"]

    # The real run: stuck pending and processing jobs (created more than stuck_after=1h ago) are deleted.
    run, report = cleanup(tmp_path, aws.endpoint_url, cleanup_jobs_statuses=["pending", "processing"])
    assert run.returncode == 0, run.output
    assert sorted(report["job_ids"]) == ["pending-1h-1s", "pending-2d", "processing-3h"]
    left = set(table_items(aws.endpoint_url))
    assert {"pending-exactly-1h", "pending-5m"} <= left and not {"pending-1h-1s", "pending-2d", "processing-3h"} & left


# --------------------------------------------------------------------------- races


class ChangingProxy(FaultProxy):
    """Runs `change` once, before the first DeleteItem reaches moto: jobs change between selection and deletion."""

    def __init__(self, upstream_url: str, change: Callable[[], None]) -> None:
        super().__init__(upstream_url)
        self._change = change
        self._changed = False
        self._change_lock = threading.Lock()

    def admit(self, operation: str, request_bytes: int) -> bool:
        if operation == "DeleteItem":
            with self._change_lock:  # every DeleteItem waits until the change is made
                if not self._changed:
                    self._change()
                    self._changed = True
        return super().admit(operation, request_bytes)


def test_a_job_changed_between_selection_and_deletion_is_skipped_not_deleted(aws, tmp_path):
    expected, before = guide(aws.endpoint_url)
    legacy = sorted(expected["job_ids"]["by_category"]["legacy_encryption"])
    requeued, reworded, gone = legacy[:3]
    dynamodb = client(aws.endpoint_url, "dynamodb")

    def change() -> None:
        dynamodb.update_item(
            TableName=TABLE, Key={"job_id": {"S": requeued}}, UpdateExpression="SET #s = :p",
            ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":p": {"S": "pending"}},
        )  # fmt: skip
        dynamodb.update_item(
            TableName=TABLE, Key={"job_id": {"S": reworded}}, UpdateExpression="SET error_message = :m",
            ExpressionAttributeValues={":m": {"S": "MAC check failed"}},
        )  # fmt: skip
        dynamodb.delete_item(TableName=TABLE, Key={"job_id": {"S": gone}})

    with ChangingProxy(aws.endpoint_url, change) as proxy:
        run, report = cleanup(tmp_path, proxy.url, **PROCEDURE_1)
    assert proxy._changed
    assert run.returncode == 0, run.output
    assert report["counts"]["changed"] == 31 and report["counts"]["skipped"] == 3
    reasons = {entry["job_id"]: entry["reason"] for entry in report["skipped_jobs"]}
    assert set(reasons) == {requeued, reworded, gone}
    assert "status is now 'pending'" in reasons[requeued]
    assert "error_message is now 'MAC check failed'" in reasons[reworded]
    assert "no longer exists" in reasons[gone]
    after = table_items(aws.endpoint_url)
    assert {requeued, reworded} <= set(after)
    assert set(after) == set(before) - set(legacy) | {requeued, reworded}
    keys = object_keys(aws.endpoint_url)
    # Audio of the skipped jobs is kept: they were not deleted by this run.
    assert {audio_key_of(before[job_id]) for job_id in (requeued, reworded, gone)} <= keys
    assert len(report["deleted_objects"]) == 31


# --------------------------------------------------------------------------- archive and restore


def test_archive_then_restore_gives_back_items_equal_to_the_originals(aws, tmp_path):
    _, _ = guide(aws.endpoint_url)
    put_jobs(
        aws.endpoint_url,
        [
            job(
                "exotic", "failed", "2025-10-09T10:00:00",
                error_message="Automatic decryption not yet implemented", retry_count=Decimal("2"),
                duration=Decimal("1.50"), big=Decimal("12345678901234567890.123456789"), tags={"a", "b"},
                scores={Decimal("1"), Decimal("2.5")}, blob=Binary(b"\x00\xff\x10"), blobs={Binary(b"x"), Binary(b"y")},
                meta={"nested": [Decimal("1"), "two", None, True, {"deep": Binary(b"\x01")}]}, flag=False, nothing=None,
            )
        ],
    )  # fmt: skip
    original = table_items(aws.endpoint_url)
    s3_before = object_keys(aws.endpoint_url)
    assert len(original) == 61

    wipe = {
        "cleanup_jobs_wipe_all": True,
        "cleanup_jobs_confirm": TABLE,
        "cleanup_jobs_delete_audio": True,
        "cleanup_jobs_archive_audio_prefix": "archive/audio/",
        "cleanup_jobs_archive_s3_prefix": "ops/jobs/",
    }
    run, report = cleanup(tmp_path, aws.endpoint_url, **wipe)
    assert run.returncode == 0, run.output
    assert report["counts"]["changed"] == 61 and report["audio"]["archived"] == 60
    # The exotic job never had an audio object: reported missing, nothing to delete.
    assert report["audio"]["missing"] == ["audio_upload/user-1/audio-exotic.3gp_encrypted"]
    assert table_items(aws.endpoint_url) == {}
    assert object_keys(aws.endpoint_url, prefix="audio_upload/") == set()
    assert object_keys(aws.endpoint_url, prefix="archive/audio/") == {f"archive/audio/{key}" for key in s3_before}

    # The dry run of the restore reads the S3 copy of the archive; the real one the control-node file.
    from_s3 = {
        "cleanup_jobs_state": "restored",
        "cleanup_jobs_archive_path": "",
        "cleanup_jobs_archive_s3_prefix": "ops/jobs/",
    }
    run, report = cleanup(tmp_path, aws.endpoint_url, check=True, **from_s3)
    assert run.returncode == 0, run.output
    assert report["counts"]["changed"] == 61 and report["audio"]["restored"] == 60
    assert set(report["requests"]["by_operation"]) <= READ_OPERATIONS
    assert table_items(aws.endpoint_url) == {}

    run, report = cleanup(tmp_path, aws.endpoint_url, cleanup_jobs_state="restored")
    assert run.returncode == 0, run.output
    assert report["counts"]["changed"] == 61 and report["audio"]["restored"] == 60
    assert table_items(aws.endpoint_url) == original
    deserialize = TypeDeserializer().deserialize
    exotic = {name: deserialize(value) for name, value in table_items(aws.endpoint_url)["exotic"].items()}
    assert exotic["duration"] == Decimal("1.5") and exotic["blob"] == Binary(b"\x00\xff\x10")
    assert s3_before <= object_keys(aws.endpoint_url)

    run, report = cleanup(tmp_path, aws.endpoint_url, cleanup_jobs_state="restored")
    assert run.returncode == 0, run.output
    assert run.changed() == 0 and report["counts"]["unchanged"] == 61


# --------------------------------------------------------------------------- requeue and expire


def test_requeue_resets_retries_records_why_and_a_rerun_changes_nothing(aws, tmp_path):
    expected, before = guide(aws.endpoint_url)
    max_retries = set(expected["job_ids"]["by_category"]["max_retries"])
    reason = {
        "cleanup_jobs_state": "requeued",
        "cleanup_jobs_categories": ["max_retries"],
        "cleanup_jobs_reason": "logs checked",
        "cleanup_jobs_requeue_fresh": True,  # days old: requeued as they are, the backend would expire them at once
    }
    run, report = cleanup(tmp_path, aws.endpoint_url, **reason)
    assert run.returncode == 0, run.output
    assert set(report["job_ids"]) == max_retries
    after = table_items(aws.endpoint_url)
    for job_id in max_retries:
        item = after[job_id]
        assert item["status"] == {"S": "pending"} and item["retry_count"] == {"N": "0"}
        assert "error_message" not in item and item["last_error_message"] == {"S": "Exceeded maximum retries (3)"}
        assert item["requeue_reason"] == {"S": "logs checked"} and item["requeue_count"] == {"N": "1"}
        assert "requeued_at" in item and item["created_at"] == item["requeued_at"]
        assert item["original_created_at"] == before[job_id]["created_at"]
    assert {k: v for k, v in after.items() if k not in max_retries} == {
        k: v for k, v in before.items() if k not in max_retries
    }
    again, rerun = cleanup(tmp_path, aws.endpoint_url, **reason)
    assert again.returncode == 0 and again.changed() == 0 and rerun["counts"]["changed"] == 0


def test_expiring_sets_the_ttl_attribute_once(aws, tmp_path):
    expected, _ = guide(aws.endpoint_url)
    transcription = set(expected["job_ids"]["by_category"]["transcription_failed"])
    options = {
        "cleanup_jobs_state": "expiring",
        "cleanup_jobs_categories": ["transcription_failed"],
        "cleanup_jobs_expire_after": "1d",
    }
    run, report = cleanup(tmp_path, aws.endpoint_url, **options)
    assert run.returncode == 0, run.output
    assert set(report["job_ids"]) == transcription
    epoch = int(datetime(2025, 10, 20, 18, 0, 0, tzinfo=UTC).timestamp())
    after = table_items(aws.endpoint_url)
    assert {job_id for job_id, item in after.items() if item.get("expires_at") == {"N": str(epoch)}} == transcription
    assert "TTL is not enabled" in run.output  # moto's table has no TTL configured
    again, rerun = cleanup(tmp_path, aws.endpoint_url, **options)
    assert again.changed() == 0 and rerun["counts"]["unchanged"] == 5


# --------------------------------------------------------------------------- refusals


def test_refusals_change_nothing_and_say_why_in_one_line(aws, tmp_path):
    _, before = guide(aws.endpoint_url)
    cases = [
        (
            {"cleanup_jobs_max_changes": 33, **PROCEDURE_1},
            "The selection would change 34 jobs, more than max_changes=33: nothing was changed",
        ),
        ({"cleanup_jobs_wipe_all": True}, "set confirm to the table's name to confirm it"),
        ({"cleanup_jobs_categories": ["legacy"]}, "unknown categories legacy: use one of"),
        # Without a selection and without a terminal, the menu cannot be answered.
        ({}, "No valid menu choice"),
    ]
    for variables, message in cases:
        run, report = cleanup(tmp_path, aws.endpoint_url, **variables)
        assert run.returncode != 0, variables
        assert "Traceback" not in run.output
        if report is not None:  # the module ran and failed: its message is one line
            assert message in report["msg"] and "\n" not in report["msg"], report["msg"]
        else:
            assert message in " ".join(run.stdout.split()), run.stdout[-2000:]
    assert table_items(aws.endpoint_url) == before and len(object_keys(aws.endpoint_url)) == 60
    assert not (tmp_path / "archive.jsonl").exists()


# --------------------------------------------------------------------------- request counts


def test_deleting_n_audio_objects_takes_ceil_n_over_1000_delete_objects_requests(aws, tmp_path):
    seed_jobs.create_resources(aws.endpoint_url)
    count = 1001
    jobs = [
        job(f"job-{index:05d}", "failed", "2025-10-09T10:00:00Z", user_id=f"user-{index % 7}",
            error_message="Automatic decryption not yet implemented")
        for index in range(count)
    ]  # fmt: skip
    seed_jobs.write_items(client(aws.endpoint_url, "dynamodb"), TABLE, jobs)
    seed_jobs.put_objects(client(aws.endpoint_url, "s3"), BUCKET, ((AUDIO_KEY.format(**j), b"x") for j in jobs))
    with FaultProxy(aws.endpoint_url) as proxy:
        big = {"cleanup_jobs_max_changes": 2000, "cleanup_jobs_parallel": 16}
        run, report = cleanup(tmp_path, proxy.url, **big, **PROCEDURE_1)
    assert run.returncode == 0, run.output
    assert report["counts"]["changed"] == count and report["audio"]["deleted"] == count
    assert proxy.counts["DeleteObjects"] == 2 and sorted(proxy.batch_sizes["DeleteObjects"]) == [1, 1000]
    assert proxy.counts["DeleteItem"] == count and proxy.counts.get("BatchWriteItem", 0) == 0
    assert object_keys(aws.endpoint_url) == set()


# --------------------------------------------------------------------------- a synthetic table with junk


def test_synthetic_table_selection_is_exact_junk_is_untouched_and_shared_audio_survives(aws, tmp_path):
    expected = seed_jobs.seed_synthetic(aws.endpoint_url, 1000, seed=3, audio=True)
    ids = expected["job_ids"]
    wanted = {*ids["by_category"]["legacy_encryption"], *ids["by_category"]["decryption_error"], *ids["pending_stuck"]}
    malformed = {job_id for group in ids["malformed_by_reason"].values() for job_id in group}
    before = table_items(aws.endpoint_url)
    keys_before = object_keys(aws.endpoint_url)

    selection = {
        "cleanup_jobs_categories": ["deletable"],
        "cleanup_jobs_statuses": ["pending"],
        "cleanup_jobs_delete_audio": True,
        "cleanup_jobs_list_limit": 2000,
    }
    run, report = cleanup(tmp_path, aws.endpoint_url, **selection)
    assert run.returncode == 0, run.output
    assert set(report["job_ids"]) == wanted and report["counts"]["changed"] == len(wanted)
    after = table_items(aws.endpoint_url)
    assert set(after) == set(before) - wanted and malformed <= set(after)

    def key(item: dict) -> str | None:
        if "S" not in item.get("user_id", {}) or "S" not in item.get("audio_file_id", {}):
            return None
        return audio_key_of(item)

    still_used = {key(item) for item in after.values()} - {None}
    keys_after = object_keys(aws.endpoint_url)
    assert set(report["deleted_objects"]) == keys_before - keys_after
    assert not set(report["deleted_objects"]) & still_used, "an object a kept job uses was deleted"
    assert (keys_before & still_used) <= keys_after
    assert report["audio"]["kept_referenced"], "the generator shares audio between failed jobs"
    assert set(report["audio"]["kept_referenced"]) == {key(before[j]) for j in wanted} & still_used
