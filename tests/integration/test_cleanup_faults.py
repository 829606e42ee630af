"""The cleanup through a fault-injecting proxy in front of moto: faults lose nothing.

tests/harness/fault_proxy.py injects what AWS really answers under load (throttling,
5xx, S3 SlowDown, per-key DeleteObjects errors) and can kill the endpoint after
N requests. The module never uses BatchWriteItem (it cannot be conditional), so
the proxy's `unprocessed` fault has nothing to hit; its S3 counterpart, keys
left undeleted inside a 200 DeleteObjects answer, is injected here.
"""

from __future__ import annotations

import json

from fault_proxy import FaultPlan, FaultProxy, FaultRule
from test_cleanup_playbook import PROCEDURE_1, audio_key_of, cleanup, guide, object_keys, table_items


def test_throttling_5xx_slowdown_and_key_errors_still_give_exact_counts(aws, tmp_path):
    expected, before = guide(aws.endpoint_url)
    legacy = set(expected["job_ids"]["by_category"]["legacy_encryption"])
    legacy_keys = {audio_key_of(before[job_id]) for job_id in legacy}
    keys_before = object_keys(aws.endpoint_url)
    plan = FaultPlan(
        [
            FaultRule("Scan", "http_503", first=1),
            FaultRule("DeleteItem", "throttling", every=3),
            FaultRule("DeleteItem", "http_500", every=5),
            FaultRule("PutObject", "http_503", first=1),  # the S3 archive copy
            FaultRule("CopyObject", "slowdown", every=4),  # the audio archive copies
            FaultRule("DeleteObjects", "slowdown", first=1),  # whole request; botocore retries it
            FaultRule("DeleteObjects", "delete_errors", every=2, limit=1, key_error_every=2),  # half the keys fail
        ]
    )
    options = {
        **PROCEDURE_1,
        "cleanup_jobs_archive_s3_prefix": "ops-archive/",
        "cleanup_jobs_archive_audio_prefix": "old/",
    }
    with FaultProxy(aws.endpoint_url, plan=plan) as proxy:
        run, report = cleanup(tmp_path, proxy.url, **options)
    assert run.returncode == 0, run.output
    for fault in ("Scan:http_503", "DeleteItem:throttling", "DeleteItem:http_500", "PutObject:http_503",
                  "CopyObject:slowdown", "DeleteObjects:slowdown", "DeleteObjects:delete_errors"):  # fmt: skip
        assert proxy.faults[fault] >= 1, fault
    assert report["counts"] == {"changed": 34, "unchanged": 0, "skipped": 0, "failed": 0, "not_attempted": 0}
    assert set(report["job_ids"]) == legacy and set(report["deleted_objects"]) == legacy_keys
    assert report["audio"]["archived"] == 34 and report["audio"]["failed"] == []
    # 503 then 17 per-key errors: the first call is retried by botocore, the left keys by the module.
    assert proxy.items["DeleteObjects:key_errors"] == 17
    assert proxy.counts["DeleteObjects"] == 3 and report["audio"]["delete_requests"] == 2

    assert set(table_items(aws.endpoint_url)) == set(before) - legacy
    assert object_keys(aws.endpoint_url, prefix="audio_upload/") == keys_before - legacy_keys
    assert object_keys(aws.endpoint_url, prefix="old/") == {f"old/{key}" for key in legacy_keys}
    s3_archive = object_keys(aws.endpoint_url, prefix="ops-archive/")
    assert len(s3_archive) == 1 and report["archive"]["s3_prefix"].endswith("/")


def test_endpoint_killed_mid_run_then_a_rerun_finishes_and_the_archive_holds_every_deleted_job(aws, tmp_path):
    expected, before = guide(aws.endpoint_url)
    legacy = set(expected["job_ids"]["by_category"]["legacy_encryption"])
    legacy_keys = {audio_key_of(before[job_id]) for job_id in legacy}
    keys_before = object_keys(aws.endpoint_url)
    # DescribeTable + 4 Scan segments + 12 DeleteItem, then the endpoint is gone.
    plan = FaultPlan(die_after=17)
    with FaultProxy(aws.endpoint_url, plan=plan) as proxy:
        run, report = cleanup(tmp_path, proxy.url, cleanup_jobs_max_attempts=2, **PROCEDURE_1)
    assert proxy.dead
    assert run.returncode != 0
    assert "Cleanup incomplete" in report["msg"] and "re-run to finish" in report["msg"]
    remaining = set(table_items(aws.endpoint_url)) & legacy
    deleted_first = legacy - remaining
    assert 0 < len(deleted_first) < 34
    assert report["counts"]["changed"] == len(deleted_first), "the report says exactly what was done"
    assert report["counts"]["changed"] + report["counts"]["failed"] + report["counts"]["not_attempted"] == 34
    archived = [json.loads(line) for line in (tmp_path / "archive.jsonl").read_text().splitlines()]
    assert deleted_first <= {record["job_id"] for record in archived if record["record"] == "job"}
    assert object_keys(aws.endpoint_url) == keys_before, "audio waits until its jobs are all dealt with"

    rerun, finished = cleanup(tmp_path, aws.endpoint_url, **PROCEDURE_1)
    assert rerun.returncode == 0, rerun.output
    assert finished["counts"]["changed"] == len(remaining)
    assert finished["audio"]["from_earlier_runs"] == len(deleted_first)
    assert finished["deleted_objects_count"] == len(legacy_keys)
    assert set(table_items(aws.endpoint_url)) == set(before) - legacy
    assert object_keys(aws.endpoint_url) == keys_before - legacy_keys

    archived = [json.loads(line) for line in (tmp_path / "archive.jsonl").read_text().splitlines()]
    assert {record["job_id"] for record in archived if record["record"] == "job"} >= legacy
    last, nothing = cleanup(tmp_path, aws.endpoint_url, **PROCEDURE_1)
    assert last.returncode == 0 and last.changed() == 0 and nothing["deleted_objects"] == []
