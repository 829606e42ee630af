"""Helpers for the diagnosis tests: failed jobs in the local AWS endpoint and the backend's log lines.

The lines follow the real backend's format (loguru: `2025-10-09 14:03:27 | ERROR | file:function:line - message`,
the stdout sink with ANSI colours forced on, tracebacks on the lines after an error).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import seed_jobs
import yaml

JOBS_TABLE = "panzoto-processing-jobs"
GREEN, LEVEL_COLOUR, CYAN, RESET = "\x1b[32m", "\x1b[31m\x1b[1m", "\x1b[36m", "\x1b[0m"
LOCATIONS = {
    "INFO": "audio_processor.py:process_job:180",
    "WARNING": "audio_processor.py:process_job:201",
    "ERROR": "audio_processor.py:process_job:254",
}
# A secret that leaks into a traceback (an OpenAI key in a logged request header).
PLANTED_SECRET = "sk-proj-PlantedSecret0123456789abcdefXYZ"
PROCESSOR_LOGGER = "decision_data.backend.services.audio_processor"
# Secret shapes that must never leave a host (tests/unit/test_diagnosis_secrets.yml).
SECRET_CORPUS = yaml.safe_load((Path(__file__).parents[1] / "unit" / "test_diagnosis_secrets.yml").read_text())


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def loguru_line(moment: datetime, level: str, message: str, colour: bool = False) -> str:
    """One record's first line as the backend's loguru sinks write it (local time of the host: UTC here)."""
    stamp = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    where = LOCATIONS.get(level, LOCATIONS["INFO"])
    if colour:
        return f"{GREEN}{stamp}{RESET} | {LEVEL_COLOUR}{level: <8}{RESET} | {CYAN}{where}{RESET} - {message}"
    return f"{stamp} | {level: <8} | {where} - {message}"


def plain_line(level: str, message: str, logger: str = PROCESSOR_LOGGER) -> str:
    """One record's first line as the backend's processor writes it (Python logging's default format, no time)."""
    return f"{level}:{logger}:{message}"


@dataclass
class FailedJob:
    """A failed job and the records the backend logged about it (first line, then traceback lines).

    A record is (level, message, traceback) in loguru's format, or (level, message, traceback, logger) in the
    processor's plain logging format (journal only: it has no time of its own).
    """

    cause: str
    created_at: datetime
    last_attempt_at: datetime
    records: list[tuple] = field(default_factory=list)
    category_message: str = "Exceeded maximum retries (3)"
    status: str = "failed"
    job_type: str = "transcription"
    job_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    audio_file_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    user_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def item(self) -> dict:
        item = {
            "job_id": self.job_id,
            "user_id": self.user_id,
            "job_type": self.job_type,
            "status": self.status,
            "audio_file_id": self.audio_file_id,
            "created_at": iso(self.created_at),
            "last_attempt_at": iso(self.last_attempt_at),
            "retry_count": 3,
        }
        if self.status == "failed":
            item["error_message"] = self.category_message
            item["completed_at"] = iso(self.last_attempt_at)
        return item

    def lines(self, colour: bool = False) -> list[str]:
        """The records spread over the job's window, one second apart from created_at."""
        out = []
        for index, (level, message, traceback, *logger) in enumerate(self.records):
            if logger:
                out.append(plain_line(level, message, logger[0]))
            else:
                out.append(loguru_line(self.created_at + timedelta(seconds=index + 1), level, message, colour))
            out.extend(traceback)
        return out


def processor_records(job: FailedJob, error: str, traceback: Iterable[str] = (), attempt: int = 3) -> list:
    """The processor's records of a job's last attempt that failed with `error`."""
    return [
        ("INFO", f"[AUDIO] Processing transcription job {job.job_id} (attempt {attempt}/3) for user {job.user_id}", []),
        ("ERROR", f"[ERROR] Job {job.job_id} processing failed (attempt {attempt}/3): {error}", list(traceback)),
        ("WARNING", f"[WARN] Job {job.job_id} exceeded max retries (3)", []),
        ("ERROR", f"[FAIL] Job {job.job_id} marked as failed: Exceeded maximum retries (3)", []),
    ]


def todays_records(job: FailedJob, *failure: tuple, plain: bool = False) -> list[tuple]:
    """What the backend of 2025-10-29 logs for a job that fails: the processor names the job, the service that
    failed logs why (`failure`, loguru records), and the processor marks it failed with the item's message.
    With `plain`, the processor's own two lines are in its plain logging format (as in the journal)."""
    logger = (PROCESSOR_LOGGER,) if plain else ()
    return [
        ("INFO", f"[AUDIO] Processing transcription job {job.job_id} for user {job.user_id}", [], *logger),
        *failure,
        ("WARNING", f"[FAIL] Job {job.job_id} marked as failed: {job.category_message}", [], *logger),
    ]


def seed_failed_jobs(endpoint_url: str, jobs: Iterable[FailedJob]) -> None:
    seed_jobs.create_resources(endpoint_url)
    table = boto3.resource("dynamodb", endpoint_url=endpoint_url, region_name="us-east-1").Table(JOBS_TABLE)
    for job in jobs:
        table.put_item(Item=job.item())


def read_reports(report_dir: Path) -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted(report_dir.glob("job-diagnosis.*"))}


def report_json(report_dir: Path) -> dict:
    return json.loads((report_dir / "job-diagnosis.json").read_text())
