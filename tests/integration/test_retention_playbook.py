"""playbooks/retention_jobs.yml through ansible-playbook against moto's server: finished jobs past their
retention are deleted and archived through the cleanup, everything else is kept, and the run is bounded,
previewable and idempotent."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import boto3
import pytest
import seed_jobs
from boto3.dynamodb.types import TypeSerializer
from support.playbook import run_playbook

NOW = "2026-03-01T12:00:00Z"
TABLE = "panzoto-processing-jobs"
BUCKET = "panzoto"
# Days before NOW; completed jobs are kept 30 days, failed ones 7 (the defaults).
JOBS = {
    "completed-45d": ("completed", 45),
    "completed-31d": ("completed", 31),
    "completed-29d": ("completed", 29),
    "failed-10d": ("failed", 10),
    "failed-8d": ("failed", 8),
    "failed-6d": ("failed", 6),
    "pending-60d": ("pending", 60),
    "processing-60d": ("processing", 60),
}
DUE = {"completed-45d", "completed-31d", "failed-10d", "failed-8d"}


def client(endpoint_url: str, service: str):
    return boto3.client(service, endpoint_url=endpoint_url, region_name="us-east-1")


def audio_key(job_id: str) -> str:
    return f"audio_upload/user-1/audio-{job_id}.3gp_encrypted"


def seed(endpoint_url: str) -> None:
    seed_jobs.create_resources(endpoint_url)
    dynamodb, s3 = client(endpoint_url, "dynamodb"), client(endpoint_url, "s3")
    serialize = TypeSerializer().serialize
    for job_id, (status, days) in JOBS.items():
        # Whole days before NOW, naive like the backend's utcnow() timestamps.
        created = (datetime(2026, 3, 1, 12) - timedelta(days=days)).isoformat()
        item = {"job_id": job_id, "user_id": "user-1", "job_type": "transcription", "status": status,
                "audio_file_id": f"audio-{job_id}", "created_at": created, "retry_count": 0}  # fmt: skip
        if status == "failed":
            item["error_message"] = "Job expired - too old"
        dynamodb.put_item(TableName=TABLE, Item={name: serialize(value) for name, value in item.items()})
        s3.put_object(Bucket=BUCKET, Key=audio_key(job_id), Body=b"encrypted")


def job_ids(endpoint_url: str) -> set[str]:
    pages = client(endpoint_url, "dynamodb").get_paginator("scan").paginate(TableName=TABLE, ConsistentRead=True)
    return {item["job_id"]["S"] for page in pages for item in page["Items"]}


def object_keys(endpoint_url: str) -> set[str]:
    pages = client(endpoint_url, "s3").get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    return {entry["Key"] for page in pages for entry in page.get("Contents", [])}


def retention(tmp_path: Path, endpoint_url: str, *, check: bool = False, diff: bool = False, **variables):
    """Run the retention playbook; return the run and its retention report (None if it wrote none)."""
    report = tmp_path / "reports" / f"retention-{TABLE}.json"
    report.unlink(missing_ok=True)
    extra = {
        "retention_jobs_now": NOW,
        "retention_jobs_archive_path": str(tmp_path / "archive.jsonl"),
        "retention_jobs_report_dir": str(tmp_path / "reports"),
        **variables,
    }
    run = run_playbook(
        "retention_jobs.yml", extra_vars=extra, check=check, diff=diff, env={"AWS_ENDPOINT_URL": endpoint_url}
    )
    return run, json.loads(report.read_text()) if report.exists() else None


def test_jobs_past_retention_are_previewed_then_deleted_and_archived_once_and_kept_audio_is_reported(aws, tmp_path):
    seed(aws.endpoint_url)
    keys = object_keys(aws.endpoint_url)

    dry, preview = retention(tmp_path, aws.endpoint_url, check=True, diff=True)
    assert dry.returncode == 0, dry.output
    assert job_ids(aws.endpoint_url) == set(JOBS), "check mode changed the table"
    assert not (tmp_path / "archive.jsonl").exists(), "check mode wrote the archive"
    assert preview["check_mode"] is True
    assert {status: counts["changed"] for status, counts in preview["counts"].items()} == {"completed": 2, "failed": 2}
    assert preview["summary"] == (
        "[DRY RUN] panzoto-processing-jobs: 2 completed jobs older than 30d, 2 failed jobs older than 7d"
        " would be deleted."
    )
    assert "would be deleted" in dry.stdout

    real, done = retention(tmp_path, aws.endpoint_url)
    assert real.returncode == 0, real.output
    assert "Follow the background run" in real.stdout  # the default: progress lines while it runs
    assert job_ids(aws.endpoint_url) == set(JOBS) - DUE
    archived = [json.loads(line) for line in (tmp_path / "archive.jsonl").read_text().splitlines()]
    assert {record["job_id"] for record in archived if record["record"] == "job"} == DUE
    # The audio stays (delete_audio is off): the report warns that upstream's script would re-create the jobs.
    assert object_keys(aws.endpoint_url) == keys
    assert done["audio_kept_for_removed_jobs"] == 4
    assert "upstream's scripts/create_missing_transcription_jobs.py would re-create those jobs" in done["advice"]
    assert "create_missing_transcription_jobs.py" in real.stdout
    assert "retention_jobs_delete_audio=true" in done["advice"]
    for name in ("archive.jsonl", f"reports/retention-{TABLE}.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600, name

    again, rerun = retention(tmp_path, aws.endpoint_url)
    assert again.returncode == 0, again.output
    assert again.changed() == 0
    assert {status: counts["changed"] for status, counts in rerun["counts"].items()} == {"completed": 0, "failed": 0}
    assert rerun["advice"] == ""
    assert job_ids(aws.endpoint_url) == set(JOBS) - DUE


def test_delete_audio_with_an_archive_prefix_deletes_due_audio_and_keeps_a_copy(aws, tmp_path):
    seed(aws.endpoint_url)
    run, report = retention(
        tmp_path, aws.endpoint_url, retention_jobs_delete_audio=True, retention_jobs_archive_audio_prefix="archive/",
        retention_jobs_poll_seconds=0,
    )  # fmt: skip
    assert run.returncode == 0, run.output
    # In the foreground (what the timer unit asks for): no background run to follow, nothing left behind.
    assert "Follow the background run" not in run.stdout
    due_keys = {audio_key(job_id) for job_id in DUE}
    kept_keys = {audio_key(job_id) for job_id in set(JOBS) - DUE}
    assert object_keys(aws.endpoint_url) == kept_keys | {f"archive/{key}" for key in due_keys}
    assert report["audio_kept_for_removed_jobs"] == 0 and report["advice"] == ""


def test_a_selection_larger_than_the_bound_is_refused_before_anything_changes(aws, tmp_path):
    seed(aws.endpoint_url)
    run, _ = retention(tmp_path, aws.endpoint_url, retention_jobs_max_changes=1)
    assert run.returncode != 0
    assert "max_changes" in run.output
    assert job_ids(aws.endpoint_url) == set(JOBS)


def test_other_ages_and_the_ttl_state_are_settings(aws, tmp_path):
    seed(aws.endpoint_url)
    run, report = retention(
        tmp_path, aws.endpoint_url, retention_jobs_completed_after="40d", retention_jobs_failed_after="9d",
        retention_jobs_state="expiring",
    )  # fmt: skip
    assert run.returncode == 0, run.output
    assert {status: counts["changed"] for status, counts in report["counts"].items()} == {"completed": 1, "failed": 1}
    items = client(aws.endpoint_url, "dynamodb").scan(TableName=TABLE, ConsistentRead=True)["Items"]
    assert {item["job_id"]["S"] for item in items if "expires_at" in item} == {"completed-45d", "failed-10d"}


@pytest.mark.parametrize(
    ("setting", "error"),
    [
        ({"retention_jobs_failed_after": "a week"}, "retention_jobs_failed_after=a week is not a duration"),
        ({"retention_jobs_poll_seconds": "-1"}, "retention_jobs_poll_seconds=-1 is not a whole number of seconds"),
    ],
)
def test_a_bad_setting_fails_in_one_line_naming_it_and_changes_nothing(aws, tmp_path, setting, error):
    seed(aws.endpoint_url)
    run, report = retention(tmp_path, aws.endpoint_url, **setting)
    assert run.returncode != 0
    assert error in run.output
    assert report is None and job_ids(aws.endpoint_url) == set(JOBS)


def test_an_age_without_its_unit_is_refused_not_read_as_seconds(aws, tmp_path):
    seed(aws.endpoint_url)
    run, report = retention(tmp_path, aws.endpoint_url, retention_jobs_completed_after=30)
    assert run.returncode != 0
    assert "retention_jobs_completed_after=30 is not a duration with its unit (e.g. 30d, 12h)" in run.output
    assert report is None and job_ids(aws.endpoint_url) == set(JOBS)
