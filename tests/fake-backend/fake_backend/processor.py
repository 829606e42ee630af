"""The background processor: claims pending jobs and carries each to completed or failed."""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from fake_backend.audio import TOO_SHORT, JobError, convert_to_wav, decrypt, key_from_secret, wav_seconds
from fake_backend.config import Settings

log = logging.getLogger("fake_backend")
# Fail a poll in seconds, not minutes, when the endpoint is gone, so /api/health notices.
CLIENT_CONFIG = Config(connect_timeout=5, read_timeout=30, retries={"mode": "standard", "max_attempts": 3})
MIN_SECONDS = 1.0
# The real processor's attempts per job (its lines say "attempt n/3"); this fake fails a job at the first.
MAX_ATTEMPTS = 3


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Stats:
    jobs_completed: int = 0
    jobs_failed: int = 0
    last_poll_at: str | None = None
    last_poll_ok: bool = False
    last_error: str | None = None
    # Monotonic time of the last call to the jobs table that worked (poll, claim or update).
    last_table_ok: float | None = None


class Processor:
    def __init__(self, settings: Settings, broken: bool = False) -> None:
        self.settings = settings
        self.broken = broken
        self.host = socket.gethostname()
        self.stats = Stats()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="job-processor", daemon=True)
        session = boto3.session.Session(region_name=settings.region)
        self.dynamodb = session.client("dynamodb", config=CLIENT_CONFIG)
        self.s3 = session.client("s3", config=CLIENT_CONFIG)
        self.secrets = session.client("secretsmanager", config=CLIENT_CONFIG)

    # Lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30) -> None:
        self._stop.set()
        self._thread.join(timeout)
        log.info("Audio processor stopped")

    def stats_snapshot(self) -> dict[str, Any]:
        with self._lock:
            stats = dict(vars(self.stats))
        stats.pop("last_table_ok")
        stats["processor_alive"] = self._thread.is_alive()
        stats["host"] = self.host
        return stats

    def _record_poll(self, error: str | None) -> None:
        with self._lock:
            was_ok = self.stats.last_poll_ok or self.stats.last_poll_at is None
            self.stats.last_poll_at = now_iso()
            self.stats.last_poll_ok = error is None
            self.stats.last_error = error
            if error is None:
                self.stats.last_table_ok = time.monotonic()
        # Log changes only: a table that is down for an hour should not fill the journal.
        if error is not None and was_ok:
            log.error("[ERROR] Error checking for pending jobs: %s", error)
        elif error is None and not was_ok:
            log.info("Checking for pending jobs works again")

    def _run(self) -> None:
        # Like the real processor task: its errors are logged and swallowed, the API keeps answering.
        try:
            if self.broken:
                raise RuntimeError("audio processor could not start (FAKE_BACKEND_BREAK_PROCESSOR)")
            log.info("[START] Starting cost-safe audio processor...")
        except Exception as error:
            log.error("[ERROR] Audio processor failed: %s", error, exc_info=True)
            return
        while not self._stop.is_set():
            try:
                for job in self.pending_jobs():
                    if self._stop.is_set():
                        break
                    if self.claim(job):
                        self.process(job)
            except (BotoCoreError, ClientError) as error:
                self._record_poll(_short(error))
            except Exception as error:  # the loop must outlive any one bad poll
                self._record_poll(_short(error))
                log.error("[ERROR] Unexpected error in the processor loop: %s", _short(error), exc_info=True)
            self._stop.wait(self.settings.poll_interval)

    # Jobs table ---------------------------------------------------------------------------
    def pending_jobs(self) -> list[dict[str, Any]]:
        jobs: list[dict[str, Any]] = []
        paginator = self.dynamodb.get_paginator("scan")
        pages = paginator.paginate(
            TableName=self.settings.jobs_table,
            FilterExpression="#s = :pending AND (attribute_not_exists(job_type) OR job_type = :transcription)",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":pending": {"S": "pending"}, ":transcription": {"S": "transcription"}},
        )
        for page in pages:
            jobs.extend({name: next(iter(value.values())) for name, value in item.items()} for item in page["Items"])
        self._record_poll(None)
        return jobs

    def claim(self, job: dict[str, Any]) -> bool:
        """Move pending -> processing atomically, so two hosts never take the same job."""
        try:
            self.dynamodb.update_item(
                TableName=self.settings.jobs_table,
                Key={"job_id": {"S": job["job_id"]}},
                UpdateExpression="SET #s = :processing, last_attempt_at = :now, processed_by = :host",
                ConditionExpression="#s = :pending",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":processing": {"S": "processing"},
                    ":pending": {"S": "pending"},
                    ":now": {"S": now_iso()},
                    ":host": {"S": self.host},
                },
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                log.info("Job %s was claimed by another processor", job["job_id"])
                return False
            raise
        return True

    def process(self, job: dict[str, Any]) -> None:
        started = time.monotonic()
        attempt = int(job.get("retry_count") or 0) + 1
        log.info(
            "[AUDIO] Processing transcription job %s (attempt %d/%d) for user %s",
            job["job_id"], attempt, MAX_ATTEMPTS, job.get("user_id"),
        )  # fmt: skip
        try:
            seconds = self._transcribe(job)
        except JobError as error:
            self._fail(job, str(error), error.detail, attempt, error)
        except (BotoCoreError, ClientError) as error:
            self._fail(job, _short(error), "", attempt, error)
        else:
            log.info(
                "[OK] Job %s completed successfully in %.1fs (%.1fs of audio)",
                job["job_id"], time.monotonic() - started, seconds,
            )  # fmt: skip
            with self._lock:
                self.stats.jobs_completed += 1

    def _transcribe(self, job: dict[str, Any]) -> float:
        user_id, audio_file_id = job.get("user_id"), job.get("audio_file_id")
        if not user_id or not audio_file_id:
            raise JobError("Job has no user_id or audio_file_id")
        key_name = f"{self.settings.audio_prefix}/{user_id}/{audio_file_id}.3gp_encrypted"
        blob = self.s3.get_object(Bucket=self.settings.audio_bucket, Key=key_name)["Body"].read()
        secret = self.secrets.get_secret_value(SecretId=f"{self.settings.key_secret_prefix}/{user_id}")
        audio = decrypt(blob, key_from_secret(secret["SecretString"]))
        seconds = wav_seconds(convert_to_wav(audio, self.settings.ffmpeg))
        if seconds < MIN_SECONDS:
            raise JobError(TOO_SHORT, f"audio is {seconds:.2f}s long")
        self._complete(job, seconds)
        return seconds

    def _complete(self, job: dict[str, Any], seconds: float) -> None:
        now = now_iso()
        self.dynamodb.put_item(
            TableName=self.settings.transcripts_table,
            Item={
                "transcript_id": {"S": str(uuid.uuid4())},
                "user_id": {"S": job["user_id"]},
                "job_id": {"S": job["job_id"]},
                "audio_file_id": {"S": job["audio_file_id"]},
                "transcript": {"S": f"fake transcript of {seconds:.1f} s"},
                "duration_seconds": {"N": str(Decimal(f"{seconds:.3f}"))},
                "created_at": {"S": now},
            },
        )
        self.dynamodb.update_item(
            TableName=self.settings.jobs_table,
            Key={"job_id": {"S": job["job_id"]}},
            UpdateExpression="SET #s = :completed, completed_at = :now REMOVE error_message",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":completed": {"S": "completed"}, ":now": {"S": now}},
        )
        with self._lock:
            self.stats.last_table_ok = time.monotonic()

    def _fail(self, job: dict[str, Any], message: str, detail: str, attempt: int, error: BaseException) -> None:
        # The real processor's two lines: the ERROR line with the exception and its traceback (where the
        # underlying reason lives), then the job's fate. The job item only gets `message`.
        reason = f"{message} ({detail})" if detail else message
        log.error(
            "[ERROR] Job %s processing failed (attempt %d/%d): %s",
            job["job_id"], attempt, MAX_ATTEMPTS, reason, exc_info=(type(error), error, error.__traceback__),
        )  # fmt: skip
        log.info("[FAIL] Job %s marked as failed: %s", job["job_id"], message)
        with self._lock:
            self.stats.jobs_failed += 1
        try:
            self.dynamodb.update_item(
                TableName=self.settings.jobs_table,
                Key={"job_id": {"S": job["job_id"]}},
                UpdateExpression="SET #s = :failed, error_message = :message, last_attempt_at = :now "
                "ADD retry_count :one",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":failed": {"S": "failed"},
                    ":message": {"S": message},
                    ":now": {"S": now_iso()},
                    ":one": {"N": "1"},
                },
            )
        except (BotoCoreError, ClientError) as error:
            # The job stays `processing`; the ops tools report it as stuck, which is the truth.
            log.warning("[WARN] Job %s could not be marked failed: %s", job["job_id"], _short(error))


def _short(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text[:300] if text else type(error).__name__
