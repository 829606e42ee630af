#!/usr/bin/env python3
"""Seed a local AWS endpoint (moto) with Panzoto tables, audio objects, keys and jobs.

    tools/seed_jobs.py create-resources
    tools/seed_jobs.py snapshot guide-2025-10-19
    tools/seed_jobs.py synthetic --jobs 10000 [--seed 0] [--now 2025-10-19T18:00:00Z] [--audio] [--expected-out F]

The endpoint comes from --endpoint-url or AWS_ENDPOINT_URL and must be a loopback
address (this tool writes junk on purpose; --allow-remote-endpoint overrides).
Every run is deterministic: the same seed writes the same ids and values.

Expected counts are known by construction: the generator decides what each item
is (status, category, malformed reason, stuck or not) and counts that decision.
It does not import the project's classification (module_utils/) and never
re-scans the table, so tests comparing the audit with it are not tautological.

Definitions (the audit implements exactly these):

* malformed item: the first that applies, in this order, is its reason:
  `status_missing` (no `status`), `status_not_string` (e.g. a number),
  `status_unknown` (a string that is not exactly, case-sensitively, one of
  pending/processing/completed/failed, e.g. `cancelled` or `FAILED`),
  `created_at_missing`, `created_at_unparseable` (not a string, or a string
  `datetime.fromisoformat` rejects, e.g. `not-a-date`, blank, `2025-13-45T10:00:00`; the
  seeder writes strings only: created_at keys the user-jobs-by-created-at index, so DynamoDB
  refuses an empty or non-string one),
  `retry_count_not_number` (present but not a DynamoDB number, e.g. the string "3"),
  `error_message_not_string` (a failed job whose `error_message` is present but
  not a string; a non-string message on a job that is not failed is ignored).
  Malformed items count only in `malformed` / `malformed_by_reason`, nowhere else.
  The generator writes each malformed item with exactly one problem.
* failed job without `error_message`, or with an empty one: category `other`.
* classification: module_utils/panzoto/classification.py's rules in their order, case-insensitive,
  first match wins (so `Exceeded maximum retries (3) after timeout` is max_retries). Failed jobs
  created before TODAY_SINCE (2025-10-29, when the backend stopped retrying) carry the ops guide's
  messages (MESSAGES: old data), later ones what the backend writes today (TODAY_MESSAGES).
* `job_type` missing: counted as `unknown` in by_job_type.
* stuck pending: status pending and (now - created_at) > 1 hour, strictly:
  a job created exactly at now-1h is not stuck, one at now-1h-1s is.
  Naive timestamps are UTC.
* repeated failure audio files: distinct `audio_file_id` values that at least
  two well-formed failed jobs reference (daily_summary jobs have no audio).
* processing time of a completed job: completed_at - created_at in seconds;
  stats over well-formed completed jobs: count, avg (mean), p95 by nearest
  rank (sorted ascending, element at index ceil(0.95*n)-1); None when n == 0.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import random
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlparse

import boto3
from boto3.dynamodb.types import TypeSerializer
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

STATUSES = ("pending", "processing", "completed", "failed")
JOB_TYPES = ("transcription", "daily_summary")
CATEGORIES = (  # the guide's, on old data
    "legacy_encryption",
    "max_retries",
    "transcription_failed",
    "decryption_error",
    "format_error",
    "timeout",
    "other",
)
# What the backend's code of 2025-10-29 writes on failed items (module_utils/panzoto/classification.py's names).
TODAY_CATEGORIES = (
    "ffmpeg_missing",
    "audio_conversion",
    "transcription_api",
    "decryption_failed",
    "audio_missing",
    "user_missing",
    "file_too_large",
    "audio_duration",
    "expired",
    "daily_summary",
    "lookup_failed",
    "timeout",
    "processing_error",
)
ALL_CATEGORIES = (*CATEGORIES, *(name for name in TODAY_CATEGORIES if name not in CATEGORIES))
# Jobs created from this day on carry today's messages, older ones the guide's: the backend changed then.
TODAY_SINCE = datetime(2025, 10, 29, tzinfo=UTC)
MALFORMED_REASONS = (
    "status_missing",
    "status_not_string",
    "status_unknown",
    "created_at_missing",
    "created_at_unparseable",
    "retry_count_not_number",
    "error_message_not_string",
)
SNAPSHOTS = ("guide-2025-10-19",)
STUCK_AFTER = timedelta(hours=1)
DEFAULT_NOW = datetime(2025, 10, 19, 18, 0, 0, tzinfo=UTC)
BATCH_SIZE = 25  # DynamoDB BatchWriteItem's limit; moto does not enforce it, AWS does.
WRITER_THREADS = 4
# Beyond this many jobs the per-category id lists would cost real memory.
MAX_JOBS_WITH_IDS = 50_000
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
FAKE_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}

# The guide's messages (old data): wording and case variants per category, each matching only its own
# rule (and, for the last max_retries one, two rules: order decides).
MESSAGES: dict[str, tuple[str, ...]] = {
    "legacy_encryption": (
        "Automatic decryption not yet implemented - requires manual trigger",
        "automatic decryption NOT yet implemented",
        "AUTOMATIC DECRYPTION NOT YET IMPLEMENTED - REQUIRES MANUAL TRIGGER",
        "Error: Automatic decryption not yet implemented",
    ),
    "max_retries": (
        "Exceeded maximum retries (3)",
        "exceeded MAXIMUM retries (5)",
        "Exceeded maximum retries (3) after timeout",
    ),
    "transcription_failed": (
        "Transcription failed or too short",
        "transcription failed or too short (0.4 s)",
        "TRANSCRIPTION FAILED OR TOO SHORT",
    ),
    "decryption_error": (
        "MAC check failed",
        "Error: MAC check failed",
        "Decryption error: mac CHECK FAILED",
    ),
    "format_error": (
        "File does not start with RIFF id",
        "ffmpeg: File does not start with RIFF id",
        "Conversion error: file does not start with riff ID",
    ),
    "timeout": (
        "Processing timeout (5 minutes)",
        "Summary generation timeout (5 minutes)",
        "Transcription processing timeout",
        "TIMEOUT",
        "OpenAI request Timeout after 300s",
    ),
    "other": (
        "Unexpected error: 'NoneType' object has no attribute 'read'",
        "OpenAI API error: 429 Too Many Requests",
        "S3 object not found",
        "",
    ),
}
# Today's messages, as BACKEND.md quotes the code (daily_summary's only on daily_summary jobs).
TODAY_MESSAGES: dict[str, tuple[str, ...]] = {
    "ffmpeg_missing": ("Processing error: ffmpeg is not installed. Please install ffmpeg: apt-get install ffmpeg",),
    "audio_conversion": (
        "Processing error: Audio conversion failed: [mov,mp4,m4a,3gp,3g2,mj2 @ 0x55d5c] moov atom not found",
        "Processing error: Audio conversion timed out after 30 seconds",
    ),
    "transcription_api": (
        "Processing error: Error code: 429 - {'error': {'message': 'Rate limit reached for whisper-1'}}",
        "Processing error: Request timed out.",
        "Processing error: Connection error.",
    ),
    "decryption_failed": ("Failed to decrypt audio file",),
    "audio_missing": (
        "Audio file not found or access denied",
        "Audio file not found in database",
        "No audio file ID provided",
    ),
    "user_missing": ("User not found in database",),
    "file_too_large": ("File too large (8.0MB)",),
    "audio_duration": (
        "Audio duration 1.2s outside valid range (3-300s)",
        "Audio duration 412.5s outside valid range (3-300s)",
    ),
    "expired": ("Job expired - too old",),
    "daily_summary": (
        "User preferences not found",
        "Failed to fetch preferences: An error occurred (ResourceNotFoundException) when calling the GetItem "
        "operation: Requested resource not found",
    ),
    "lookup_failed": (
        "Failed to fetch user: An error occurred (ProvisionedThroughputExceededException) when calling the GetItem "
        "operation",
        "Failed to fetch audio file: Could not connect to the endpoint URL",
    ),
    "timeout": ("Processing timeout (5 minutes)", "Summary generation timeout (5 minutes)"),
    "processing_error": (
        "Processing error: unsupported operand type(s) for /: 'NoneType' and 'int'",
        "Processing error: Client.__init__() got an unexpected keyword argument 'proxies'",
        "Job processing failed: 'NoneType' object has no attribute 'get'",
    ),
}
DAILY_SUMMARY_ONLY = frozenset({"daily_summary"})
GUIDE_MESSAGES = {
    "legacy_encryption": "Automatic decryption not yet implemented - requires manual trigger",
    "max_retries": "Exceeded maximum retries (3)",
    "transcription_failed": "Transcription failed or too short",
}


class SeedError(Exception):
    """Something the user must fix; the message is one line."""


@dataclass(frozen=True)
class Names:
    jobs_table: str = "panzoto-processing-jobs"
    audio_table: str = "panzoto-audio-files"
    transcripts_table: str = "panzoto-transcripts"
    users_table: str = "panzoto-users"
    preferences_table: str = "panzoto-user-preferences"
    daily_summaries_table: str = "panzoto-daily-summaries"
    summary_tracking_table: str = "panzoto-daily-summary-tracking"
    bucket: str = "panzoto"
    secret_prefix: str = "panzoto/encryption-keys/"
    audio_key_template: str = "audio_upload/{user_id}/{audio_file_id}.3gp_encrypted"

    def audio_key(self, user_id: str, audio_file_id: str) -> str:
        return self.audio_key_template.format(user_id=user_id, audio_file_id=audio_file_id)


# --------------------------------------------------------------------------- clients


def _check_endpoint(endpoint_url: str | None, allow_remote: bool) -> str:
    if not endpoint_url:
        raise SeedError("no endpoint: pass --endpoint-url or set AWS_ENDPOINT_URL (e.g. from tools/local_aws.py url)")
    host = urlparse(endpoint_url).hostname
    if host is None:
        raise SeedError(f"endpoint URL {endpoint_url!r} has no host: use e.g. http://127.0.0.1:5000")
    if host not in LOOPBACK_HOSTS and not allow_remote:
        raise SeedError(f"refusing to seed test data into {host}: use a local endpoint or --allow-remote-endpoint")
    return endpoint_url


def make_session(endpoint_url: str, region: str) -> boto3.session.Session:
    """A session with the environment's credentials, or fake ones for a loopback endpoint (moto ignores them)."""
    session = boto3.session.Session(region_name=region)
    if session.get_credentials() is None:
        if urlparse(endpoint_url).hostname not in LOOPBACK_HOSTS:
            raise SeedError("no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
        session = boto3.session.Session(region_name=region, **FAKE_CREDENTIALS)
    return session


def make_client(session: boto3.session.Session, service: str, endpoint_url: str) -> Any:
    config = Config(
        retries={"mode": "standard", "max_attempts": 10},
        max_pool_connections=WRITER_THREADS * 2,
        connect_timeout=5,
        read_timeout=60,
    )
    return session.client(service, endpoint_url=endpoint_url, config=config)


@dataclass
class Clients:
    dynamodb: Any
    s3: Any
    secrets: Any
    region: str
    cost_dynamodb: Any  # the cost-tracking tables live in us-east-1 whatever the service's region

    @classmethod
    def connect(cls, endpoint_url: str | None, region: str, allow_remote: bool = False) -> Clients:
        endpoint = _check_endpoint(endpoint_url, allow_remote)
        session = make_session(endpoint, region)
        dynamodb = make_client(session, "dynamodb", endpoint)
        return cls(
            dynamodb=dynamodb,
            s3=make_client(session, "s3", endpoint),
            secrets=make_client(session, "secretsmanager", endpoint),
            region=region,
            cost_dynamodb=dynamodb
            if region == COST_REGION
            else make_client(make_session(endpoint, COST_REGION), "dynamodb", endpoint),
        )


# --------------------------------------------------------------------------- resources


def _table_spec(name: str, key: str, *indexes: tuple[str, str, str | None]) -> dict[str, Any]:
    """A table keyed by `key`, with GSIs given as (name, hash key, range key or None), all projecting ALL."""
    attributes = {key}
    spec: dict[str, Any] = {
        "TableName": name,
        "KeySchema": [{"AttributeName": key, "KeyType": "HASH"}],
        "BillingMode": "PAY_PER_REQUEST",
    }
    gsis = []
    for index_name, hash_key, range_key in indexes:
        schema = [{"AttributeName": hash_key, "KeyType": "HASH"}]
        if range_key:
            schema.append({"AttributeName": range_key, "KeyType": "RANGE"})
        attributes.update(k["AttributeName"] for k in schema)
        gsis.append({"IndexName": index_name, "KeySchema": schema, "Projection": {"ProjectionType": "ALL"}})
    if gsis:
        spec["GlobalSecondaryIndexes"] = gsis
    spec["AttributeDefinitions"] = [{"AttributeName": a, "AttributeType": "S"} for a in sorted(attributes)]
    return spec


def table_specs(names: Names) -> list[dict[str, Any]]:
    """docs/DESIGN.md §3's tables with their keys and GSIs, on-demand, and the daily-summary tables.

    The jobs table carries both indexes the backend needs since 2025-10-29 (its job list queries
    user-jobs-by-created-at; without it the list comes back empty and duplicate jobs follow).
    """
    return [
        _table_spec(
            names.jobs_table,
            "job_id",
            ("user-jobs-index", "user_id", None),
            ("user-jobs-by-created-at", "user_id", "created_at"),
        ),
        _table_spec(names.audio_table, "file_id"),
        _table_spec(names.transcripts_table, "transcript_id", ("user-transcripts-index", "user_id", None)),
        _table_spec(names.users_table, "user_id"),
        _table_spec(names.preferences_table, "user_id"),
        _table_spec(names.daily_summaries_table, "summary_id"),
        _table_spec(names.summary_tracking_table, "user_id"),
    ]


# The backend's cost tracking writes to these in us-east-1, whatever region the rest of it uses.
COST_REGION = "us-east-1"
COST_TABLE_KEYS = {
    "panzoto-usage-records": "record_id",
    "panzoto-cost-summaries": "summary_id",
    "panzoto-user-credits": "user_id",
}


def cost_table_specs() -> list[dict[str, Any]]:
    return [_table_spec(name, key) for name, key in COST_TABLE_KEYS.items()]


def _create_resources(clients: Clients, names: Names) -> list[str]:
    """Create what is missing; return what was created (empty on a second run)."""
    created: list[str] = []
    tables = [(clients.dynamodb, spec) for spec in table_specs(names)]
    tables += [(clients.cost_dynamodb, spec) for spec in cost_table_specs()]
    for dynamodb, spec in tables:
        try:
            dynamodb.create_table(**spec)
            created.append(f"table {spec['TableName']}")
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceInUseException":
                raise
    for dynamodb, spec in tables:
        dynamodb.get_waiter("table_exists").wait(
            TableName=spec["TableName"], WaiterConfig={"Delay": 1, "MaxAttempts": 30}
        )
    bucket_args: dict[str, Any] = {"Bucket": names.bucket}
    if clients.region != "us-east-1":
        bucket_args["CreateBucketConfiguration"] = {"LocationConstraint": clients.region}
    if not _bucket_exists(clients.s3, names.bucket):
        # us-east-1 answers 200 to creating a bucket you own, so ask first to report truthfully.
        clients.s3.create_bucket(**bucket_args)
        created.append(f"bucket {names.bucket}")
    return created


def _bucket_exists(s3: Any, bucket: str) -> bool:
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("404", "NoSuchBucket", "NotFound"):
            return False
        raise
    return True


def create_resources(
    endpoint_url: str | None, region: str = "us-east-1", names: Names | None = None, allow_remote: bool = False
) -> list[str]:
    """Create every table the backend uses (the cost tables in us-east-1) and the bucket if missing.

    Idempotent; returns what it created."""
    return _create_resources(Clients.connect(endpoint_url, region, allow_remote), names or Names())


# --------------------------------------------------------------------------- writing

_serializer = TypeSerializer()


def _to_dynamodb(item: dict[str, Any]) -> dict[str, Any]:
    return {key: _serializer.serialize(value) for key, value in item.items()}


def _write_batch(dynamodb: Any, table: str, items: list[dict[str, Any]]) -> None:
    """One BatchWriteItem, then its UnprocessedItems again with backoff until none are left."""
    requests: dict[str, list] = {table: [{"PutRequest": {"Item": _to_dynamodb(item)}} for item in items]}
    for attempt in range(12):
        response = dynamodb.batch_write_item(RequestItems=requests)
        requests = response.get("UnprocessedItems") or {}
        if not requests:
            return
        time.sleep(min(2.0, 0.05 * 2**attempt))
    raise SeedError(f"{table}: items still unprocessed after 12 attempts; the endpoint is throttling, try again")


def write_items(dynamodb: Any, table: str, items: Iterable[dict[str, Any]], threads: int = WRITER_THREADS) -> int:
    """Write items in batches of 25 from a few threads, holding only a bounded number of batches; returns the count."""
    written = 0
    in_flight: set[Future] = set()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for batch in _batches(items, BATCH_SIZE):
            if len(in_flight) >= threads * 2:
                done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    future.result()
            in_flight.add(pool.submit(_write_batch, dynamodb, table, batch))
            written += len(batch)
        for future in in_flight:
            future.result()
    return written


def _batches(items: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def put_objects(s3: Any, bucket: str, objects: Iterable[tuple[str, bytes]], threads: int = WRITER_THREADS) -> int:
    """Upload (key, body) pairs from a few threads; returns how many."""
    count = 0
    in_flight: set[Future] = set()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for key, body in objects:
            if len(in_flight) >= threads * 4:
                done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    future.result()
            in_flight.add(pool.submit(s3.put_object, Bucket=bucket, Key=key, Body=body))
            count += 1
        for future in in_flight:
            future.result()
    return count


def put_encryption_key(secrets: Any, names: Names, user_id: str, rng: random.Random) -> None:
    """Create or update the user's key secret (JSON like the service's)."""
    value = json.dumps(
        {
            "encryption_key": base64.b64encode(rng.randbytes(32)).decode("ascii"),
            "user_id": user_id,
            "version": 1,
        }
    )
    name = f"{names.secret_prefix}{user_id}"
    try:
        secrets.create_secret(Name=name, SecretString=value)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceExistsException":
            raise
        secrets.put_secret_value(SecretId=name, SecretString=value)


# --------------------------------------------------------------------------- values


def make_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def render_timestamp(moment: datetime, form: str) -> str:
    """A UTC moment as one of the three ISO-8601 forms the service writes: naive, +00:00 or Z."""
    naive = moment.astimezone(UTC).replace(tzinfo=None).isoformat()
    return {"naive": naive, "offset": naive + "+00:00", "z": naive + "Z"}[form]


TIMESTAMP_FORMS = ("naive", "offset", "z")


def nearest_rank_p95(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[math.ceil(0.95 * len(ordered)) - 1]


@dataclass
class Expected:
    """Counts accumulated while items are generated, from what the generator decided."""

    keep_ids: bool = True
    # The categories counted (zeros included): the guide's, plus today's once the table holds jobs since TODAY_SINCE.
    categories: tuple[str, ...] = CATEGORIES
    total_items: int = 0
    by_status: Counter = field(default_factory=lambda: Counter(dict.fromkeys(STATUSES, 0)))
    by_job_type: Counter = field(default_factory=lambda: Counter(dict.fromkeys((*JOB_TYPES, "unknown"), 0)))
    by_category: Counter = field(default_factory=Counter)
    malformed_by_reason: Counter = field(default_factory=lambda: Counter(dict.fromkeys(MALFORMED_REASONS, 0)))
    pending_stuck: int = 0
    failed_audio: Counter = field(default_factory=Counter)
    processing_seconds: list[float] = field(default_factory=list)
    ids: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_category.update(dict.fromkeys(self.categories, 0))

    def _remember(self, group: str, job_id: str) -> None:
        if self.keep_ids:
            self.ids.setdefault(group, []).append(job_id)

    def add_malformed(self, job_id: str, reason: str) -> None:
        self.total_items += 1
        self.malformed_by_reason[reason] += 1
        self._remember(f"malformed:{reason}", job_id)

    def add_job(
        self,
        job_id: str,
        status: str,
        job_type: str | None,
        *,
        category: str | None = None,
        audio_file_id: str | None = None,
        stuck: bool = False,
        processing_seconds: float | None = None,
    ) -> None:
        self.total_items += 1
        self.by_status[status] += 1
        self.by_job_type[job_type or "unknown"] += 1
        self._remember(f"status:{status}", job_id)
        if status == "failed":
            assert category in self.categories, category
            self.by_category[category] += 1
            self._remember(f"category:{category}", job_id)
            if audio_file_id:
                self.failed_audio[audio_file_id] += 1
        if status == "pending":
            self.pending_stuck += stuck
            self._remember("pending_stuck" if stuck else "pending_fresh", job_id)
        if status == "completed":
            assert processing_seconds is not None
            self.processing_seconds.append(processing_seconds)

    def as_dict(self) -> dict[str, Any]:
        seconds = self.processing_seconds
        repeated = sorted(audio for audio, count in self.failed_audio.items() if count >= 2)
        result: dict[str, Any] = {
            "total_items": self.total_items,
            "by_status": dict(self.by_status),
            "by_job_type": dict(self.by_job_type),
            "by_category": dict(self.by_category),
            "malformed": sum(self.malformed_by_reason.values()),
            "malformed_by_reason": dict(self.malformed_by_reason),
            "pending_stuck": self.pending_stuck,
            "repeated_failure_audio_files": len(repeated),
            "completed_processing_seconds": {
                "count": len(seconds),
                "avg": (sum(seconds) / len(seconds)) if seconds else None,
                "p95": nearest_rank_p95(seconds),
            },
        }
        if self.keep_ids:
            result["job_ids"] = {
                "by_status": {s: self.ids.get(f"status:{s}", []) for s in STATUSES},
                "by_category": {c: self.ids.get(f"category:{c}", []) for c in self.categories},
                "malformed_by_reason": {r: self.ids.get(f"malformed:{r}", []) for r in MALFORMED_REASONS},
                "pending_stuck": self.ids.get("pending_stuck", []),
                "pending_fresh": self.ids.get("pending_fresh", []),
            }
            result["repeated_failure_audio_file_ids"] = repeated
        return result


# --------------------------------------------------------------------------- guide snapshot


@dataclass
class JobPlan:
    """One job the snapshot writes: its item plus the audio file behind it."""

    item: dict[str, Any]
    duration_seconds: Decimal


def _guide_moment(rng: random.Random, day: int, start_hour: int = 0, end_hour: int = 24) -> datetime:
    seconds = rng.randrange(start_hour * 3600, end_hour * 3600)
    return datetime(2025, 10, day, tzinfo=UTC) + timedelta(seconds=seconds, microseconds=rng.randrange(1_000_000))


def _guide_jobs(rng: random.Random, users: list[str]) -> list[tuple[JobPlan, str, str | None]]:
    """The 60 jobs of the guide's Current Status, with (plan, status, category)."""
    plans: list[tuple[JobPlan, str, str | None]] = []

    def job(status: str, created: datetime, category: str | None = None, **extra: Any) -> None:
        user_id = rng.choice(users)
        item: dict[str, Any] = {
            "job_id": make_uuid(rng),
            "user_id": user_id,
            "job_type": "transcription",
            "audio_file_id": make_uuid(rng),
            "status": status,
            "created_at": render_timestamp(created, TIMESTAMP_FORMS[len(plans) % 3]),
            **extra,
        }
        duration = extra.pop("_duration", None)
        item.pop("_duration", None)
        duration = duration if duration is not None else Decimal(rng.randrange(30, 900)) / 10
        plans.append((JobPlan(item, duration), status, category))

    def failed(category: str, created: datetime, retries: int, duration: Decimal | None = None) -> None:
        last_attempt = created + timedelta(seconds=rng.randrange(5, 600))
        job(
            "failed",
            created,
            category,
            error_message=GUIDE_MESSAGES[category],
            retry_count=retries,
            last_attempt_at=render_timestamp(last_attempt, TIMESTAMP_FORMS[len(plans) % 3]),
            _duration=duration,
        )

    for day in (6, 7, 8, 10, 12, 14, 16, 18, 19):  # 9 completed, spread Oct 6-19
        created = _guide_moment(rng, day, 0, 17)
        done = created + timedelta(seconds=rng.randrange(8, 400))
        job(
            "completed",
            created,
            completed_at=render_timestamp(done, TIMESTAMP_FORMS[(day + 1) % 3]),
            retry_count=0,
            last_attempt_at=render_timestamp(created + timedelta(seconds=1), "offset"),
        )
    for _ in range(34):
        failed("legacy_encryption", _guide_moment(rng, 9), retries=rng.randrange(0, 2))
    for _ in range(10):
        failed("max_retries", _guide_moment(rng, 9), retries=3)
    for day in (9, 9, 9, 6, 6):
        failed("transcription_failed", _guide_moment(rng, day), retries=0, duration=Decimal(rng.randrange(1, 10)) / 10)
    for minute in (31, 52):  # fresh: less than an hour before the snapshot's 18:00
        created = datetime(2025, 10, 19, 17, minute, rng.randrange(60), tzinfo=UTC)
        job("pending", created, retry_count=0)
    return plans


def seed_guide_snapshot(
    endpoint_url: str | None,
    region: str = "us-east-1",
    names: Names | None = None,
    snapshot: str = "guide-2025-10-19",
    allow_remote: bool = False,
) -> dict[str, Any]:
    """Write the guide's "Current Status (October 19, 2025)"; return its expected counts (now = 18:00Z that day)."""
    if snapshot not in SNAPSHOTS:
        raise SeedError(f"unknown snapshot {snapshot!r}: choose one of {', '.join(SNAPSHOTS)}")
    names = names or Names()
    clients = Clients.connect(endpoint_url, region, allow_remote)
    _create_resources(clients, names)
    rng = random.Random(20251019)
    users = [make_uuid(rng) for _ in range(5)]
    now = datetime(2025, 10, 19, 18, 0, 0, tzinfo=UTC)
    plans = _guide_jobs(rng, users)

    expected = Expected()
    audio_items = []
    objects = []
    for plan, status, category in plans:
        item = plan.item
        created = parse_iso(item["created_at"])
        seconds = None
        if status == "completed":
            seconds = (parse_iso(item["completed_at"]) - created).total_seconds()
        stuck = status == "pending" and now - created > STUCK_AFTER
        expected.add_job(
            item["job_id"], status, item["job_type"], category=category, audio_file_id=item["audio_file_id"],
            stuck=stuck, processing_seconds=seconds,
        )  # fmt: skip
        key = names.audio_key(item["user_id"], item["audio_file_id"])
        body = rng.randbytes(rng.randrange(64, 512))
        audio_items.append(
            {
                "file_id": item["audio_file_id"],
                "user_id": item["user_id"],
                "s3_key": key,
                "file_size": len(body),
                "duration_seconds": plan.duration_seconds,
                "content_type": "audio/3gpp",
                "encrypted": True,
                "created_at": item["created_at"],
            }
        )
        objects.append((key, body))

    write_items(clients.dynamodb, names.jobs_table, (plan.item for plan, _, _ in plans))
    write_items(clients.dynamodb, names.audio_table, audio_items)
    write_items(clients.dynamodb, names.users_table, _user_items(users))
    put_objects(clients.s3, names.bucket, objects)
    for user_id in users:
        put_encryption_key(clients.secrets, names, user_id, rng)
    result = expected.as_dict()
    result.update(
        snapshot=snapshot,
        now=now.isoformat(),
        users=users,
        s3_objects=len(objects),
        secrets=len(users),
        names=asdict(names),
    )
    return result


def _user_items(users: list[str]) -> Iterator[dict[str, Any]]:
    for index, user_id in enumerate(users):
        yield {"user_id": user_id, "email": f"user{index + 1}@example.com", "created_at": "2025-09-01T00:00:00Z"}


def parse_iso(value: str) -> datetime:
    """Parse the service's timestamps; naive ones are UTC."""
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --------------------------------------------------------------------------- synthetic generator

MIN_SYNTHETIC_JOBS = 200


@dataclass
class Generator:
    """Decides every item of a synthetic table and records each decision in `expected`."""

    rng: random.Random
    now: datetime
    users: list[str]
    expected: Expected
    count: int = 0
    shared_audio: list[tuple[str, str]] = field(default_factory=list)
    audio_refs: dict[str, str] = field(default_factory=dict)  # audio_file_id -> user_id, when tracked

    def _base(self, job_type: str | None = "transcription", user_id: str | None = None) -> dict[str, Any]:
        self.count += 1
        item: dict[str, Any] = {"job_id": make_uuid(self.rng), "user_id": user_id or self.rng.choice(self.users)}
        if job_type is not None:
            item["job_type"] = job_type
        if job_type == "transcription" or job_type is None:
            item["audio_file_id"] = make_uuid(self.rng)
        return item

    def _form(self) -> str:
        return TIMESTAMP_FORMS[self.count % 3]

    def _past(self, max_age: timedelta, min_age: timedelta = timedelta(0)) -> datetime:
        span = int((max_age - min_age).total_seconds() * 1_000_000)
        return self.now - min_age - timedelta(microseconds=self.rng.randrange(max(span, 1)))

    def _track_audio(self, item: dict[str, Any]) -> None:
        if "audio_file_id" in item:
            self.audio_refs[item["audio_file_id"]] = item["user_id"]

    # Each builder returns a finished item and records it exactly once.

    def completed(self, job_type: str | None = "transcription") -> dict[str, Any]:
        item = self._base(job_type)
        created = self._past(timedelta(days=30), timedelta(hours=1))
        seconds = self.rng.randrange(5, 290)
        item.update(
            status="completed",
            created_at=render_timestamp(created, self._form()),
            completed_at=render_timestamp(created + timedelta(seconds=seconds), TIMESTAMP_FORMS[seconds % 3]),
            retry_count=self.rng.choice((0, 0, 0, 1)),
            last_attempt_at=render_timestamp(created + timedelta(seconds=1), "z"),
        )
        self.expected.add_job(item["job_id"], "completed", job_type, processing_seconds=float(seconds))
        self._track_audio(item)
        return item

    def _era_span(self, today: bool) -> tuple[timedelta, timedelta] | None:
        """(max_age, min_age) of the jobs of one era within the last 30 days, or None when it has none."""
        oldest, since = timedelta(days=30), self.now - TODAY_SINCE
        if today:
            return (min(oldest, since), timedelta(0)) if since > timedelta(0) else None
        return (oldest, max(since, timedelta(0))) if since < oldest else None

    def eras(self) -> list[tuple[bool, dict[str, tuple[str, ...]]]]:
        """The message tables of the eras the last 30 days hold: the guide's before TODAY_SINCE, today's after."""
        return [(today, TODAY_MESSAGES if today else MESSAGES) for today in (False, True) if self._era_span(today)]

    def failed(
        self,
        category: str,
        message: str | None,
        job_type: str | None = "transcription",
        share_audio: bool = False,
        today: bool | None = None,
    ) -> dict[str, Any]:
        """A failed job of `category`; created in the era its messages belong to (today's, or the guide's)."""
        item = self._base(job_type)
        if share_audio and "audio_file_id" in item:
            if not self.shared_audio or self.rng.random() < 0.4:
                self.shared_audio.append((item["user_id"], item["audio_file_id"]))
            item["user_id"], item["audio_file_id"] = self.rng.choice(self.shared_audio)
        if today is None:
            today = self.now >= TODAY_SINCE and not self._era_span(False)
        span = self._era_span(today)
        assert span is not None, "no such era in the last 30 days"
        created = self._past(*span)
        # Today's processor fails a job at its first error: no retries counted.
        retries = 3 if category == "max_retries" else 0 if today else self.rng.choice((0, 1, 2))
        item.update(
            status="failed",
            created_at=render_timestamp(created, self._form()),
            retry_count=retries,
            last_attempt_at=render_timestamp(created + timedelta(seconds=self.rng.randrange(1, 600)), "offset"),
        )
        if message is not None:
            item["error_message"] = message
        self.expected.add_job(
            item["job_id"], "failed", job_type, category=category, audio_file_id=item.get("audio_file_id")
        )
        self._track_audio(item)
        return item

    def pending(self, created: datetime, form: str | None = None, job_type: str | None = "transcription") -> dict:
        item = self._base(job_type)
        item.update(status="pending", created_at=render_timestamp(created, form or self._form()), retry_count=0)
        stuck = self.now - created > STUCK_AFTER
        self.expected.add_job(item["job_id"], "pending", job_type, stuck=stuck)
        self._track_audio(item)
        return item

    def processing(self, job_type: str | None = "transcription") -> dict[str, Any]:
        item = self._base(job_type)
        created = self._past(timedelta(hours=3))
        item.update(
            status="processing",
            created_at=render_timestamp(created, self._form()),
            last_attempt_at=render_timestamp(created + timedelta(seconds=2), "z"),
            retry_count=self.rng.choice((0, 1, 2)),
        )
        self.expected.add_job(item["job_id"], "processing", job_type)
        self._track_audio(item)
        return item

    def malformed(self, reason: str, variant: int) -> dict[str, Any]:
        """A job with exactly one problem: `reason`."""
        item = self._base("transcription")
        created = render_timestamp(self._past(timedelta(days=10)), self._form())
        item.update(status="failed", created_at=created, error_message="Exceeded maximum retries (3)", retry_count=3)
        if reason == "status_missing":
            del item["status"]
        elif reason == "status_not_string":
            item["status"] = (1, True, Decimal("3.5"))[variant % 3]
        elif reason == "status_unknown":
            item["status"] = ("cancelled", "FAILED", "done", " pending")[variant % 4]
        elif reason == "created_at_missing":
            del item["created_at"]
        elif reason == "created_at_unparseable":
            # Strings only, none empty: DynamoDB refuses any other created_at, a key of user-jobs-by-created-at.
            item["created_at"] = ("not-a-date", " ", "2025-13-45T10:00:00", "10/09/2025 12:00", "1760000000")[
                variant % 5
            ]
        elif reason == "retry_count_not_number":
            item["retry_count"] = ("3", "three")[variant % 2]
        elif reason == "error_message_not_string":
            item["error_message"] = (500, {"code": "E42"}, ["MAC check failed"])[variant % 3]
        else:
            raise ValueError(reason)
        self.expected.add_malformed(item["job_id"], reason)
        self._track_audio(item)
        return item

    # ------------------------------------------------------------------ plan

    def special_items(self) -> Iterator[dict[str, Any]]:
        """Every edge case once or a few times: variants, boundaries, malformed kinds."""
        hour = STUCK_AFTER
        second = timedelta(seconds=1)
        for form in TIMESTAMP_FORMS:
            yield self.pending(self.now - hour, form)  # exactly at the limit: not stuck
            yield self.pending(self.now - hour - second, form)  # one second over: stuck
            yield self.pending(self.now - hour + second, form)
            yield self.pending(self.now - timedelta(days=2), form)
            yield self.pending(self.now - timedelta(minutes=5), form)
        yield self.pending(self.now - timedelta(hours=3), job_type="daily_summary")
        for today, table in self.eras():
            for category, messages in table.items():
                for message in messages:
                    if category in DAILY_SUMMARY_ONLY:
                        yield self.failed(category, message, job_type="daily_summary", today=today)
                        continue
                    yield self.failed(category, message, today=today)
                    yield self.failed(category, message, job_type=None, today=today)
        old = any(not today for today, _ in self.eras())
        yield self.failed("timeout", "Summary generation timeout (5 minutes)", job_type="daily_summary", today=not old)
        yield self.failed("other", None, today=not old)  # no error_message at all
        yield self.failed("other", None, job_type="daily_summary", today=not old)
        # One audio file failing again and again: a circuit-breaker candidate (old data: through retries).
        repeated = (
            ("max_retries", "Exceeded maximum retries (3)")
            if old
            else ("decryption_failed", "Failed to decrypt audio file")
        )
        for _ in range(4):
            yield self.failed(*repeated, share_audio=True, today=not old)
        # A non-string message on a job that is not failed is not malformed.
        not_failed = self.processing()
        not_failed["error_message"] = {"previous": "Processing timeout (5 minutes)"}
        yield not_failed
        yield self.completed(job_type=None)
        yield self.completed(job_type="daily_summary")
        for reason in MALFORMED_REASONS:
            for variant in range(5 if reason in ("created_at_unparseable", "status_unknown") else 3):
                yield self.malformed(reason, variant)

    def random_item(self) -> dict[str, Any]:
        roll = self.rng.random()
        job_type: str | None = "transcription" if self.rng.random() < 0.8 else "daily_summary"
        if self.rng.random() < 0.02:
            job_type = None
        if roll < 0.45:
            return self.completed(job_type)
        if roll < 0.85:
            today, table = self.rng.choice(self.eras())
            if today:
                category = self.rng.choices(TODAY_CATEGORIES, weights=(2, 6, 10, 20, 8, 2, 6, 8, 10, 4, 4, 8, 12))[0]
                if category in DAILY_SUMMARY_ONLY:
                    job_type = "daily_summary"
            else:
                category = self.rng.choices(CATEGORIES, weights=(40, 15, 10, 5, 5, 15, 10))[0]
            message: str | None = self.rng.choice(table[category])
            if category == "other" and self.rng.random() < 0.1:
                message = None
            return self.failed(category, message, job_type, share_audio=self.rng.random() < 0.15, today=today)
        if roll < 0.95:
            return self.pending(self._past(timedelta(hours=6)), job_type=job_type)
        if roll < 0.99:
            return self.processing(job_type)
        return self.malformed(self.rng.choice(MALFORMED_REASONS), self.rng.randrange(5))

    def items(self, total: int) -> Iterator[dict[str, Any]]:
        yield from self.special_items()
        while self.count < total:
            yield self.random_item()


def seed_synthetic(
    endpoint_url: str | None,
    jobs: int,
    seed: int = 0,
    now: datetime = DEFAULT_NOW,
    audio: bool = False,
    region: str = "us-east-1",
    names: Names | None = None,
    users: int = 20,
    keep_ids: bool | None = None,
    allow_remote: bool = False,
) -> dict[str, Any]:
    """Write `jobs` synthetic jobs; return the expected counts (job ids per group too, up to 50,000 jobs)."""
    if jobs < MIN_SYNTHETIC_JOBS:
        raise SeedError(f"--jobs must be at least {MIN_SYNTHETIC_JOBS} so every edge case fits, got {jobs}")
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    names = names or Names()
    clients = Clients.connect(endpoint_url, region, allow_remote)
    _create_resources(clients, names)
    rng = random.Random(seed)
    user_ids = [make_uuid(rng) for _ in range(users)]
    categories = ALL_CATEGORIES if now > TODAY_SINCE else CATEGORIES
    expected = Expected(keep_ids=jobs <= MAX_JOBS_WITH_IDS if keep_ids is None else keep_ids, categories=categories)
    generator = Generator(rng=rng, now=now, users=user_ids, expected=expected)
    write_items(clients.dynamodb, names.jobs_table, generator.items(jobs))
    result = expected.as_dict()
    result.update(seed=seed, now=now.isoformat(), users=user_ids, names=asdict(names), s3_objects=0)
    if audio:
        # Bodies from their own generator so --audio does not change the jobs' ids.
        body_rng = random.Random(seed + 1)
        audio_items = (
            {"file_id": audio_id, "user_id": user_id, "s3_key": names.audio_key(user_id, audio_id),
             "duration_seconds": Decimal(body_rng.randrange(5, 3000)) / 10, "content_type": "audio/3gpp"}
            for audio_id, user_id in generator.audio_refs.items()
        )  # fmt: skip
        write_items(clients.dynamodb, names.audio_table, audio_items)
        objects = (
            (names.audio_key(user_id, audio_id), body_rng.randbytes(64))
            for audio_id, user_id in generator.audio_refs.items()
        )
        result["s3_objects"] = put_objects(clients.s3, names.bucket, objects)
        key_rng = random.Random(seed + 2)
        for user_id in user_ids:
            put_encryption_key(clients.secrets, names, user_id, key_rng)
    return result


# --------------------------------------------------------------------------- CLI


def _parse_now(value: str) -> datetime:
    try:
        return parse_iso(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 timestamp: {value!r}") from None


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--endpoint-url", default=os.environ.get("AWS_ENDPOINT_URL"))
    common.add_argument("--region", default="us-east-1")
    common.add_argument("--allow-remote-endpoint", action="store_true", help="seed an endpoint that is not loopback")
    defaults = Names()
    for name in ("jobs_table", "audio_table", "transcripts_table", "users_table", "preferences_table", "bucket"):
        common.add_argument(f"--{name.replace('_', '-')}", dest=name, default=getattr(defaults, name))
    common.add_argument("--secret-prefix", default=defaults.secret_prefix)
    common.add_argument("--audio-key-template", default=defaults.audio_key_template)
    common.add_argument("--expected-out", help="also write the expected counts (with job ids) as JSON to this file")

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("create-resources", parents=[common], help="create the tables and bucket (idempotent)")
    snapshot = commands.add_parser("snapshot", parents=[common], help="write a named snapshot")
    snapshot.add_argument("name", choices=SNAPSHOTS)
    synthetic = commands.add_parser("synthetic", parents=[common], help="write N jobs with known expected counts")
    synthetic.add_argument("--jobs", type=int, required=True)
    synthetic.add_argument("--seed", type=int, default=0)
    synthetic.add_argument("--now", type=_parse_now, default=DEFAULT_NOW, help="reference time (default %(default)s)")
    synthetic.add_argument("--users", type=int, default=20)
    synthetic.add_argument("--audio", action="store_true", help="also write audio items, S3 objects and keys (slow)")
    return parser


def run(args: argparse.Namespace) -> dict[str, Any]:
    names = Names(
        jobs_table=args.jobs_table,
        audio_table=args.audio_table,
        transcripts_table=args.transcripts_table,
        users_table=args.users_table,
        preferences_table=args.preferences_table,
        bucket=args.bucket,
        secret_prefix=args.secret_prefix,
        audio_key_template=args.audio_key_template,
    )
    common = {"region": args.region, "names": names, "allow_remote": args.allow_remote_endpoint}
    if args.command == "create-resources":
        return {"created": create_resources(args.endpoint_url, **common)}
    if args.command == "snapshot":
        return seed_guide_snapshot(args.endpoint_url, snapshot=args.name, **common)
    return seed_synthetic(
        args.endpoint_url, args.jobs, seed=args.seed, now=args.now, audio=args.audio, users=args.users, **common
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = run(args)
    except SeedError as exc:
        print(f"seed_jobs: {exc}", file=sys.stderr)
        return 2
    except (ClientError, BotoCoreError) as exc:
        print(f"seed_jobs: AWS call failed at {args.endpoint_url}: {exc}", file=sys.stderr)
        return 1
    if args.expected_out:
        with open(args.expected_out, "w", encoding="utf-8") as out:
            json.dump(result, out, indent=2, sort_keys=True)
    summary = {key: value for key, value in result.items() if key not in ("job_ids", "repeated_failure_audio_file_ids")}
    print(json.dumps(summary, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
