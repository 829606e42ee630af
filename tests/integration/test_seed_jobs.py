"""The seeder writes what its expected counts say: checked with plain boto3 scans against moto's server.

The checks re-derive every count from the stored items with the definitions in
tools/seed_jobs.py's docstring, written again here on purpose (and not taken
from module_utils/), so a generator that miscounts its own decisions fails.
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import fault_proxy
import pytest
import seed_jobs

NOW = datetime(2025, 10, 19, 18, 0, 0, tzinfo=UTC)
RULES = (  # the guide's categories, then today's (BACKEND.md's messages), in the classification's order
    ("legacy_encryption", r"automatic decryption not yet implemented"),
    ("max_retries", r"exceeded maximum retries"),
    ("transcription_failed", r"transcription failed or too short"),
    ("decryption_error", r"mac check failed"),
    ("format_error", r"file does not start with riff id"),
    ("ffmpeg_missing", r"ffmpeg is not installed"),
    ("audio_conversion", r"audio conversion (failed|timed out)"),
    ("transcription_api", r"error code: 429|request timed out|connection error"),
    ("decryption_failed", r"failed to decrypt audio file"),
    ("audio_missing", r"audio file not found|no audio file id provided"),
    ("user_missing", r"user not found in database"),
    ("file_too_large", r"file too large"),
    ("audio_duration", r"audio duration .* outside valid range"),
    ("expired", r"job expired - too old"),
    ("daily_summary", r"user preferences not found|failed to fetch preferences"),
    ("lookup_failed", r"failed to fetch (user|audio file)"),
    ("timeout", r"timeout"),
    ("processing_error", r"^(processing error|job processing failed):"),
)
LATER = datetime(2025, 11, 5, 12, 0, 0, tzinfo=UTC)  # 30 days back holds the guide's era and today's


def scan_all(endpoint_url: str, table: str) -> list[dict[str, Any]]:
    resource = boto3.resource("dynamodb", endpoint_url=endpoint_url, region_name="us-east-1")
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {}
    while True:
        page = resource.Table(table).scan(**kwargs)
        items.extend(page["Items"])
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def parse(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def malformed_reason(item: dict[str, Any]) -> str | None:
    status = item.get("status")
    if "status" not in item:
        return "status_missing"
    if not isinstance(status, str):
        return "status_not_string"
    if status not in ("pending", "processing", "completed", "failed"):
        return "status_unknown"
    if "created_at" not in item:
        return "created_at_missing"
    if parse(item["created_at"]) is None:
        return "created_at_unparseable"
    if "retry_count" in item and not isinstance(item["retry_count"], Decimal):
        return "retry_count_not_number"
    if status == "failed" and "error_message" in item and not isinstance(item["error_message"], str):
        return "error_message_not_string"
    return None


def category(message: str | None) -> str:
    text = (message or "").casefold()
    return next((name for name, pattern in RULES if re.search(pattern, text)), "other")


def counts_from_items(items: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
    """Every count of the expected dict, derived from the stored items alone."""
    by_status: Counter = Counter()
    by_type: Counter = Counter()
    by_category: Counter = Counter()
    malformed: Counter = Counter()
    failed_audio: Counter = Counter()
    seconds: list[float] = []
    stuck = 0
    for item in items:
        reason = malformed_reason(item)
        if reason:
            malformed[reason] += 1
            continue
        status = item["status"]
        by_status[status] += 1
        by_type[item.get("job_type", "unknown")] += 1
        created = parse(item["created_at"])
        if status == "failed":
            by_category[category(item.get("error_message"))] += 1
            if item.get("audio_file_id"):
                failed_audio[item["audio_file_id"]] += 1
        elif status == "pending":
            stuck += now - created > timedelta(hours=1)
        elif status == "completed":
            seconds.append((parse(item["completed_at"]) - created).total_seconds())
    ordered = sorted(seconds)
    return {
        "total_items": len(items),
        "by_status": dict(by_status),
        "by_job_type": dict(by_type),
        "by_category": dict(by_category),
        "malformed": sum(malformed.values()),
        "malformed_by_reason": dict(malformed),
        "pending_stuck": stuck,
        "repeated_failure_audio_files": sum(1 for count in failed_audio.values() if count >= 2),
        "completed_processing_seconds": {
            "count": len(ordered),
            "avg": sum(ordered) / len(ordered) if ordered else None,
            "p95": ordered[math.ceil(0.95 * len(ordered)) - 1] if ordered else None,
        },
    }


def without_zeros(counts: dict[str, int]) -> dict[str, int]:
    return {key: value for key, value in counts.items() if value}


def assert_counts_match(expected: dict[str, Any], observed: dict[str, Any]) -> None:
    for key in ("total_items", "malformed", "pending_stuck", "repeated_failure_audio_files"):
        assert observed[key] == expected[key], key
    for key in ("by_status", "by_job_type", "by_category", "malformed_by_reason"):
        assert without_zeros(observed[key]) == without_zeros(expected[key]), key
    stats, seen = expected["completed_processing_seconds"], observed["completed_processing_seconds"]
    assert seen["count"] == stats["count"]
    assert seen["avg"] == pytest.approx(stats["avg"])
    assert seen["p95"] == pytest.approx(stats["p95"])


def test_guide_snapshot_holds_exactly_the_guides_current_status(aws) -> None:
    expected = seed_jobs.seed_guide_snapshot(aws.endpoint_url)
    items = scan_all(aws.endpoint_url, "panzoto-processing-jobs")

    assert_counts_match(expected, counts_from_items(items, NOW))
    assert expected["by_status"] == {"completed": 9, "failed": 49, "pending": 2, "processing": 0}
    assert without_zeros(expected["by_category"]) == {
        "legacy_encryption": 34,
        "max_retries": 10,
        "transcription_failed": 5,
    }
    messages = Counter(item["error_message"] for item in items if item["status"] == "failed")
    assert messages == {
        "Automatic decryption not yet implemented - requires manual trigger": 34,
        "Exceeded maximum retries (3)": 10,
        "Transcription failed or too short": 5,
    }
    failed_days = {
        message: Counter(parse(item["created_at"]).day for item in items if item.get("error_message") == message)
        for message in messages
    }
    assert failed_days["Automatic decryption not yet implemented - requires manual trigger"] == {9: 34}
    assert failed_days["Exceeded maximum retries (3)"] == {9: 10}
    assert set(failed_days["Transcription failed or too short"]) == {6, 9}
    assert {item["retry_count"] for item in items if item.get("error_message") == "Exceeded maximum retries (3)"} == {3}
    pending = [parse(item["created_at"]) for item in items if item["status"] == "pending"]
    assert all(
        datetime(2025, 10, 19, 17, 30, tzinfo=UTC) <= p < datetime(2025, 10, 19, 18, tzinfo=UTC) for p in pending
    )
    # All three timestamp forms of docs/DESIGN.md §3 appear.
    forms = Counter(
        "z" if c.endswith("Z") else "offset" if c.endswith("+00:00") else "naive"
        for c in (i["created_at"] for i in items)
    )
    assert set(forms) == {"z", "offset", "naive"}
    assert len({item["user_id"] for item in items}) == 5

    s3 = boto3.client("s3", endpoint_url=aws.endpoint_url)
    keys = {obj["Key"] for obj in s3.list_objects_v2(Bucket="panzoto")["Contents"]}
    assert keys == {f"audio_upload/{i['user_id']}/{i['audio_file_id']}.3gp_encrypted" for i in items}
    assert expected["s3_objects"] == 60

    audio = {a["file_id"]: a for a in scan_all(aws.endpoint_url, "panzoto-audio-files")}
    assert set(audio) == {item["audio_file_id"] for item in items}
    short = {i["audio_file_id"] for i in items if i.get("error_message") == "Transcription failed or too short"}
    assert all((audio[a]["duration_seconds"] < 1) == (a in short) for a in audio)

    secrets = boto3.client("secretsmanager", endpoint_url=aws.endpoint_url)
    for user_id in {item["user_id"] for item in items}:
        value = json.loads(secrets.get_secret_value(SecretId=f"panzoto/encryption-keys/{user_id}")["SecretString"])
        assert value["user_id"] == user_id
        assert len(base64.b64decode(value["encryption_key"])) == 32
    assert len(secrets.list_secrets()["SecretList"]) == 5


def test_resources_have_the_design_keys_and_indexes_and_seeding_is_repeatable(aws) -> None:
    assert len(seed_jobs.create_resources(aws.endpoint_url)) == 11  # 10 tables (3 in us-east-1 for cost) and the bucket
    assert seed_jobs.create_resources(aws.endpoint_url) == []
    dynamodb = boto3.client("dynamodb", endpoint_url=aws.endpoint_url)
    jobs = dynamodb.describe_table(TableName="panzoto-processing-jobs")["Table"]
    assert jobs["KeySchema"] == [{"AttributeName": "job_id", "KeyType": "HASH"}]
    assert jobs["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    # Both indexes the backend needs since 2025-10-29: its job list queries user-jobs-by-created-at.
    indexes = {
        index["IndexName"]: ([(k["AttributeName"], k["KeyType"]) for k in index["KeySchema"]], index["Projection"])
        for index in jobs["GlobalSecondaryIndexes"]
    }
    assert indexes == {
        "user-jobs-index": ([("user_id", "HASH")], {"ProjectionType": "ALL"}),
        "user-jobs-by-created-at": ([("user_id", "HASH"), ("created_at", "RANGE")], {"ProjectionType": "ALL"}),
    }
    transcripts = dynamodb.describe_table(TableName="panzoto-transcripts")["Table"]
    assert transcripts["GlobalSecondaryIndexes"][0]["IndexName"] == "user-transcripts-index"

    first = seed_jobs.seed_guide_snapshot(aws.endpoint_url)
    second = seed_jobs.seed_guide_snapshot(aws.endpoint_url)
    assert first == second  # same ids and values: the second run overwrites, adds nothing
    assert len(scan_all(aws.endpoint_url, "panzoto-processing-jobs")) == 60


def test_synthetic_table_matches_its_expected_counts(aws) -> None:
    expected = seed_jobs.seed_synthetic(aws.endpoint_url, 2000, seed=7, now=NOW)
    items = scan_all(aws.endpoint_url, "panzoto-processing-jobs")

    assert len(items) == 2000
    assert_counts_match(expected, counts_from_items(items, NOW))
    # Every category of the guide's era (all of it before 2025-10-29), status, malformed reason and form is present.
    assert set(expected["by_category"]) == set(seed_jobs.CATEGORIES)
    assert all(expected["by_category"][name] > 0 for name in seed_jobs.CATEGORIES)
    assert all(expected["by_status"][name] > 0 for name in seed_jobs.STATUSES)
    assert all(expected["malformed_by_reason"][name] > 0 for name in seed_jobs.MALFORMED_REASONS)
    assert expected["by_job_type"]["unknown"] > 0
    assert expected["repeated_failure_audio_files"] > 0

    by_id = {item["job_id"]: item for item in items}
    ids = expected["job_ids"]
    for name, job_ids in ids["by_category"].items():
        assert {category(by_id[j].get("error_message")) for j in job_ids} <= {name}
    for reason, job_ids in ids["malformed_by_reason"].items():
        assert {malformed_reason(by_id[j]) for j in job_ids} <= {reason}
    assert len(ids["pending_stuck"]) == expected["pending_stuck"]

    # The stuck boundary: exactly one hour old is not stuck, one second more is, in every form.
    limit = NOW - timedelta(hours=1)
    for moment, stuck in ((limit, False), (limit - timedelta(seconds=1), True)):
        rendered = {seed_jobs.render_timestamp(moment, form) for form in seed_jobs.TIMESTAMP_FORMS}
        at_boundary = {i["job_id"] for i in items if i.get("status") == "pending" and i.get("created_at") in rendered}
        assert len(at_boundary) == 3
        assert at_boundary <= set(ids["pending_stuck" if stuck else "pending_fresh"])
    messages = {i.get("error_message") for i in items if i.get("status") == "failed" and not malformed_reason(i)}
    assert {"", None, "automatic decryption NOT yet implemented", "Summary generation timeout (5 minutes)"} <= messages


def test_synthetic_is_deterministic_and_its_audio_objects_exist(aws) -> None:
    names = seed_jobs.Names(jobs_table="jobs-a", bucket="audio-a")
    first = seed_jobs.seed_synthetic(aws.endpoint_url, 300, seed=3, audio=True, names=names)
    again = seed_jobs.seed_synthetic(aws.endpoint_url, 300, seed=3, names=seed_jobs.Names(jobs_table="jobs-b"))
    other = seed_jobs.seed_synthetic(aws.endpoint_url, 300, seed=4, names=seed_jobs.Names(jobs_table="jobs-c"))
    assert first["job_ids"] == again["job_ids"]
    assert first["job_ids"] != other["job_ids"]

    items = scan_all(aws.endpoint_url, "jobs-a")
    wanted = {f"audio_upload/{i['user_id']}/{i['audio_file_id']}.3gp_encrypted" for i in items if "audio_file_id" in i}
    s3 = boto3.client("s3", endpoint_url=aws.endpoint_url)
    keys = {
        obj["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket="audio-a")
        for obj in page.get("Contents", [])
    }
    assert keys == wanted
    assert first["s3_objects"] == len(wanted)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    tool = Path(seed_jobs.__file__)
    return subprocess.run([sys.executable, str(tool), *args], capture_output=True, text=True, env=env, timeout=120)


def test_cli_writes_expected_counts_and_refuses_bad_endpoints(aws, tmp_path: Path) -> None:
    out = tmp_path / "expected.json"
    done = run_cli("synthetic", "--jobs", "250", "--endpoint-url", aws.endpoint_url, "--expected-out", str(out))
    assert done.returncode == 0, done.stderr
    expected = json.loads(out.read_text())
    assert json.loads(done.stdout)["total_items"] == 250
    assert_counts_match(expected, counts_from_items(scan_all(aws.endpoint_url, "panzoto-processing-jobs"), NOW))

    remote = run_cli("create-resources", "--endpoint-url", "https://dynamodb.us-east-1.amazonaws.com")
    assert remote.returncode == 2
    assert remote.stderr.count("\n") == 1 and "refusing" in remote.stderr
    env = {key: value for key, value in os.environ.items() if key != "AWS_ENDPOINT_URL"}
    missing = run_cli("create-resources", env=env)
    assert missing.returncode == 2 and "AWS_ENDPOINT_URL" in missing.stderr and missing.stderr.count("\n") == 1
    too_few = run_cli("synthetic", "--jobs", "5", "--endpoint-url", aws.endpoint_url)
    assert too_few.returncode == 2 and "at least" in too_few.stderr and too_few.stderr.count("\n") == 1


def test_seeding_through_faults_loses_nothing(aws) -> None:
    """Unprocessed items and throttling (from tests/harness/fault_proxy.py) are retried until every job is written."""
    plan = fault_proxy.FaultPlan(
        [
            fault_proxy.FaultRule("BatchWriteItem", "unprocessed", every=2),
            fault_proxy.FaultRule("BatchWriteItem", "throttling", every=5),
        ]
    )
    with fault_proxy.FaultProxy(aws.endpoint_url, plan=plan) as proxy:
        expected = seed_jobs.seed_synthetic(proxy.url, 500, seed=11)
    assert proxy.faults["BatchWriteItem:unprocessed"] > 0 and proxy.faults["BatchWriteItem:throttling"] > 0
    assert max(proxy.batch_sizes["BatchWriteItem"]) == 25
    assert_counts_match(expected, counts_from_items(scan_all(aws.endpoint_url, "panzoto-processing-jobs"), NOW))


def test_jobs_since_the_backends_change_carry_todays_messages_older_ones_the_guides(aws) -> None:
    names = seed_jobs.Names(jobs_table="jobs-later")
    expected = seed_jobs.seed_synthetic(aws.endpoint_url, 1500, seed=5, now=LATER, names=names)
    items = scan_all(aws.endpoint_url, "jobs-later")

    assert_counts_match(expected, counts_from_items(items, LATER))
    assert set(expected["by_category"]) == set(seed_jobs.ALL_CATEGORIES)
    assert all(expected["by_category"][name] > 0 for name in seed_jobs.ALL_CATEGORIES)
    # Messages both eras wrote (the 5-minute timeouts) may sit on either side.
    today_all = {message for messages in seed_jobs.TODAY_MESSAGES.values() for message in messages}
    guide_all = {message for messages in seed_jobs.MESSAGES.values() for message in messages}
    today, guide = today_all - guide_all, guide_all - today_all
    failed = [i for i in items if i.get("status") == "failed" and not malformed_reason(i)]
    for item in failed:
        created = parse(item["created_at"])
        if item.get("error_message") in today:
            assert created >= seed_jobs.TODAY_SINCE, item
        elif item.get("error_message") in guide:
            assert created <= seed_jobs.TODAY_SINCE, item
    assert {
        "Failed to decrypt audio file",
        "Job expired - too old",
        "Automatic decryption not yet implemented - requires manual trigger",
    } <= {i.get("error_message") for i in failed}
    summaries = [i for i in failed if category(i.get("error_message")) == "daily_summary"]
    assert summaries and all(i.get("job_type") == "daily_summary" for i in summaries)
    # Every item was accepted by the table's created_at index (no empty or non-string created_at).
    assert len(items) == 1500
