"""The background processor, as the real one behaves (its audio_processor and transcription_service).

Every poll it reads ONE Scan page of pending jobs (LastEvaluatedKey never followed), fails the ineligible ones
(retries used up, older than 24 h) before any attempt, logs its heartbeat, and works through the rest without
claiming them: two processors transcribe the same job twice. Any failure fails the job at once; nothing is
retried. A failure inside the transcription step is written on the job by that step, and the processor still
logs `[OK] Job <id> completed successfully` (the real one's false success line): only the item tells.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from fake_backend.audio import (
    DECRYPT_FAILED,
    JobError,
    convert_to_wav,
    decrypt,
    keep_decrypted,
    key_from_secret,
    wav_seconds,
)
from fake_backend.config import PENDING_EXPIRY_HOURS, Settings

# The processor's lines: plain Python logging (stderr, the journal only), under the real module's name.
log = logging.getLogger("decision_data.backend.services.audio_processor")
# The transcription service's lines: the loguru-style logger (stdout and ./logs).
service_log = logging.getLogger("fake_backend")
# Fail a poll in seconds, not minutes, when the endpoint is gone.
CLIENT_CONFIG = Config(connect_timeout=5, read_timeout=30, retries={"mode": "standard", "max_attempts": 3})
MB = 1024 * 1024

EXPIRED = "Job expired - too old"
MAX_RETRIES = "Exceeded maximum retries ({max_retries})"
NO_AUDIO_ID = "No audio file ID provided"
AUDIO_NOT_IN_DB = "Audio file not found in database"
AUDIO_FETCH_FAILED = "Failed to fetch audio file: {error}"
USER_NOT_FOUND = "User not found in database"
USER_FETCH_FAILED = "Failed to fetch user: {error}"
FILE_TOO_LARGE = "File too large ({size:.1f}MB)"
AUDIO_NOT_FOUND = "Audio file not found or access denied"
PREFERENCES_NOT_FOUND = "User preferences not found"
PREFERENCES_FETCH_FAILED = "Failed to fetch preferences: {error}"
JOB_FAILED = "Job processing failed: {error}"
PROCESSING_ERROR = "Processing error: {error}"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def parse_created_at(value: Any) -> datetime | None:
    """The real processor compares naive UTC; uploads carry +00:00. Unparseable: treated as not expired."""
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class Stats:
    """For the health body's `processor` key (the fake's own addition; tests read it, the roles never do)."""

    polls: int = 0
    jobs_completed: int = 0
    jobs_failed: int = 0
    last_poll_at: str | None = None
    last_poll_ok: bool = False
    last_error: str | None = None


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
        stats["processor_alive"] = self._thread.is_alive()
        stats["host"] = self.host
        return stats

    def _count(self, outcome: str) -> None:
        with self._lock:
            setattr(self.stats, outcome, getattr(self.stats, outcome) + 1)

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
                for job in self.poll():
                    if self._stop.is_set():
                        break
                    self.process(job)
            except Exception as error:  # the loop must outlive any one bad job
                log.error("[ERROR] Error in processing loop: %s", _short(error), exc_info=True)
            self._stop.wait(self.settings.poll_interval)

    # One poll -----------------------------------------------------------------------------
    def poll(self) -> list[dict[str, Any]]:
        """The eligible jobs of this poll, after failing the ineligible ones; logs the heartbeat."""
        error = None
        try:
            jobs = self.scan_page()
            eligible = [job for job in jobs if self.eligible(job)]
        except (BotoCoreError, ClientError) as scan_error:
            error = _short(scan_error)
            log.error("[ERROR] Error querying jobs: %s", error)
            eligible = []
        with self._lock:
            self.stats.polls += 1
            self.stats.last_poll_at = now_iso()
            self.stats.last_poll_ok = error is None
            self.stats.last_error = error
        log.info("[INFO] Checked for jobs, found %d eligible jobs", len(eligible))
        return eligible

    def scan_page(self) -> list[dict[str, Any]]:
        """One Scan call: DynamoDB filters after reading a 1 MB page, and the real code never asks for the next."""
        page = self.dynamodb.scan(
            TableName=self.settings.jobs_table,
            FilterExpression="#s = :pending",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":pending": {"S": "pending"}},
        )
        return [_plain(item) for item in page["Items"]]

    def eligible(self, job: dict[str, Any]) -> bool:
        """Retries used up, or pending for over 24 h: failed here, before any attempt."""
        if int(job.get("retry_count") or 0) >= self.settings.max_retries:
            self.fail(job, MAX_RETRIES.format(max_retries=self.settings.max_retries))
            return False
        created = parse_created_at(job.get("created_at"))
        if created and datetime.now(UTC) - created > timedelta(hours=PENDING_EXPIRY_HOURS):
            self.fail(job, EXPIRED)
            return False
        return True

    # One job ------------------------------------------------------------------------------
    def process(self, job: dict[str, Any]) -> None:
        started = time.monotonic()
        job_id = job["job_id"]
        # Not a claim: unconditional, so another processor that scanned the same page works on it too.
        self._update(job_id, "SET #s = :s, last_attempt_at = :now", {":s": "processing", ":now": now_iso()})
        log.info(
            "[AUDIO] Processing %s job %s for user %s", job.get("job_type", "transcription"), job_id, job.get("user_id")
        )
        try:
            if job.get("job_type") == "daily_summary":
                self._daily_summary(job)
            else:
                audio_file = self._checked_audio_file(job)
                self._transcribe(job, audio_file)
        except JobError as error:
            self.fail(job, str(error))
            return
        except Exception as error:
            self.fail(job, JOB_FAILED.format(error=_short(error)))
            return
        log.info("[OK] Job %s completed successfully in %.1fs", job_id, time.monotonic() - started)

    def _checked_audio_file(self, job: dict[str, Any]) -> dict[str, Any]:
        """The processor's own checks before transcription: audio row, user, size."""
        if not job.get("audio_file_id"):
            raise JobError(NO_AUDIO_ID)
        try:
            audio_file = self._get(self.settings.audio_files_table, "file_id", job["audio_file_id"])
        except (BotoCoreError, ClientError) as error:
            raise JobError(AUDIO_FETCH_FAILED.format(error=_short(error))) from None
        if audio_file is None:
            raise JobError(AUDIO_NOT_IN_DB)
        try:
            user = self._get(self.settings.users_table, "user_id", job.get("user_id", ""))
        except (BotoCoreError, ClientError) as error:
            raise JobError(USER_FETCH_FAILED.format(error=_short(error))) from None
        if user is None:
            raise JobError(USER_NOT_FOUND)
        try:
            # The real code divides the row's file_size; a row without one is its TypeError, as a processing error.
            size_mb = audio_file.get("file_size") / MB
        except TypeError as error:
            raise JobError(PROCESSING_ERROR.format(error=error)) from None
        if size_mb > self.settings.max_file_size_mb:
            raise JobError(FILE_TOO_LARGE.format(size=size_mb))
        return audio_file

    def _transcribe(self, job: dict[str, Any], audio_file: dict[str, Any]) -> None:
        """The transcription service: it fails the job itself and returns normally, so the processor's
        `[OK]` line follows even then."""
        try:
            seconds = self._convert(job)
        except JobError as error:
            detail = f" ({error.detail})" if error.detail else ""
            service_log.error("[ERROR] Transcription failed for job %s: %s%s", job["job_id"], error, detail)
            self.fail(job, str(error), quiet=True)
            return
        self._complete(job, audio_file, seconds)

    def _convert(self, job: dict[str, Any]) -> float:
        user_id, audio_file_id = job["user_id"], job["audio_file_id"]
        key_name = f"{self.settings.audio_prefix}/{user_id}/{audio_file_id}.3gp_encrypted"
        try:
            self.s3.head_object(Bucket=self.settings.audio_bucket, Key=key_name)
        except ClientError as error:
            service_log.error("[S3 ERROR] Audio file %s: %s", key_name, _short(error))
            raise JobError("Audio file not found or access denied") from None
        audio = self._decrypted(user_id, key_name)
        source = keep_decrypted(audio)
        return wav_seconds(convert_to_wav(source, self.settings.ffmpeg))

    def _decrypted(self, user_id: str, key_name: str) -> bytes:
        """Key, download, decryption: any failure is the one item message; the log says which."""
        try:
            secret = self.secrets.get_secret_value(SecretId=f"{self.settings.key_secret_prefix}/{user_id}")
            key = key_from_secret(secret["SecretString"])
        except ClientError as error:
            if error.response["Error"]["Code"] == "ResourceNotFoundException":
                service_log.error("[KEY ERROR] Encryption key not found in Secrets Manager for user %s", user_id)
            else:
                service_log.error("[KEY ERROR] Failed to fetch encryption key: %s", _short(error))
            raise JobError(DECRYPT_FAILED) from None
        except JobError as error:
            service_log.error("[KEY ERROR] Failed to fetch encryption key: %s", error)
            raise JobError(DECRYPT_FAILED) from None
        try:
            blob = self.s3.get_object(Bucket=self.settings.audio_bucket, Key=key_name)["Body"].read()
        except (BotoCoreError, ClientError) as error:
            service_log.error("[S3 ERROR] Failed to download from S3: %s", _short(error))
            raise JobError(DECRYPT_FAILED) from None
        try:
            return decrypt(blob, key)
        except JobError as error:
            service_log.error("[DECRYPT ERROR] Decryption failed: %s", error)
            logging.getLogger().error("[ERROR] Error decrypting audio file: %s", error, exc_info=True)
            raise JobError(DECRYPT_FAILED) from None

    def _daily_summary(self, job: dict[str, Any]) -> None:
        try:
            preferences = self._get(self.settings.preferences_table, "user_id", job.get("user_id", ""))
        except (BotoCoreError, ClientError) as error:
            raise JobError(PREFERENCES_FETCH_FAILED.format(error=_short(error))) from None
        if preferences is None:
            raise JobError(PREFERENCES_NOT_FOUND)
        self._update(job["job_id"], "SET #s = :s, completed_at = :now", {":s": "completed", ":now": now_iso()})
        self._count("jobs_completed")

    def _complete(self, job: dict[str, Any], audio_file: dict[str, Any], seconds: float) -> None:
        now = now_iso()
        self.dynamodb.put_item(
            TableName=self.settings.transcripts_table,
            Item={
                "transcript_id": {"S": str(uuid.uuid4())},
                "user_id": {"S": job["user_id"]},
                "job_id": {"S": job["job_id"]},
                "audio_file_id": {"S": audio_file["file_id"]},
                "transcript": {"S": f"fake transcript of {seconds:.1f} s"},
                "duration_seconds": {"N": str(Decimal(f"{seconds:.3f}"))},
                "created_at": {"S": now},
            },
        )
        self._update(job["job_id"], "SET #s = :s, completed_at = :now", {":s": "completed", ":now": now})
        self._count("jobs_completed")

    def fail(self, job: dict[str, Any], message: str, quiet: bool = False) -> None:
        """status failed with the message, completed_at set (as the real one does on failures), retry_count + 1.
        `quiet`: the transcription step's own failures, which the processor does not log as [FAIL]."""
        if not quiet:
            log.warning("[FAIL] Job %s marked as failed: %s", job["job_id"], message)
        self._count("jobs_failed")
        try:
            self._update(
                job["job_id"],
                "SET #s = :s, error_message = :message, completed_at = :now, last_attempt_at = :now "
                "ADD retry_count :one",
                {":s": "failed", ":message": message, ":now": now_iso(), ":one": 1},
            )
        except (BotoCoreError, ClientError) as error:
            # The job stays `processing`; the ops tools report it as stuck, which is the truth.
            log.error("[ERROR] Failed to update job %s: %s", job["job_id"], _short(error))

    # Tables -------------------------------------------------------------------------------
    def _update(self, job_id: str, expression: str, values: dict[str, Any]) -> None:
        self.dynamodb.update_item(
            TableName=self.settings.jobs_table,
            Key={"job_id": {"S": job_id}},
            UpdateExpression=expression,
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                name: {"N": str(value)} if isinstance(value, int) else {"S": value} for name, value in values.items()
            },
        )

    def _get(self, table: str, key: str, value: str) -> dict[str, Any] | None:
        item = self.dynamodb.get_item(TableName=table, Key={key: {"S": value}}).get("Item")
        return _plain(item) if item is not None else None


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    """DynamoDB JSON to plain values: numbers as int or float, everything else as its one value."""
    plain: dict[str, Any] = {}
    for name, typed in item.items():
        ((kind, value),) = typed.items()
        plain[name] = (float(value) if "." in value else int(value)) if kind == "N" else value
    return plain


def _short(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text[:300] if text else type(error).__name__
