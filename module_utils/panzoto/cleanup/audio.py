"""The S3 audio lifecycle of deleted jobs: which objects may go, copying them to the archive prefix,
deleting them in DeleteObjects batches, and copying them back on restore.

An object is deleted only after every job of this run that uses it was
deleted, and never while a kept job (not selected, skipped, failed) references
it. Audio of jobs deleted by an earlier, interrupted run is finished here too:
the archive says which keys were never dealt with.
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ansible.module_utils.panzoto.aws import aws_errors, describe_aws_error, error_code, is_not_found
from ansible.module_utils.panzoto.cleanup.archive import (
    AUDIO_RECORD,
    ArchivedJob,
    ArchiveWriter,
    ReadStats,
    RecordHeader,
    read_archive_since_settled,
    unresolved_audio_owners,
)
from ansible.module_utils.panzoto.cleanup.batches import delete_objects, delete_requests_needed, run_bounded
from ansible.module_utils.panzoto.options import OptionError


@dataclass
class AudioReport:
    deleted: list[str] = field(default_factory=list)
    kept_referenced: list[str] = field(default_factory=list)
    archived: int = 0
    missing: list[str] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)
    from_earlier_runs: int = 0
    restored: int = 0
    delete_requests: int = 0

    def report(self, limit: int) -> dict:
        return {
            "deleted": len(self.deleted),
            "deleted_keys": sorted(self.deleted)[:limit],
            "kept_referenced": sorted(self.kept_referenced)[:limit],
            "kept_referenced_count": len(self.kept_referenced),
            "archived": self.archived,
            "missing": sorted(self.missing)[:limit],
            "failed": self.failed[:limit],
            "from_earlier_runs": self.from_earlier_runs,
            "restored": self.restored,
            "delete_requests": self.delete_requests,
        }

    def predict(self, keys: list[str], kept: list[str], earlier: int, copies: bool) -> None:
        """What a real run would do with these keys (check mode)."""
        self.deleted, self.kept_referenced, self.from_earlier_runs = keys, kept, earlier
        self.delete_requests = delete_requests_needed(len(keys))
        self.archived = len(keys) if copies else 0


def archive_audio_key(prefix: str | None, key: str | None) -> str | None:
    """Where an object's archive copy goes: the prefix followed by its original key."""
    return f"{prefix}{key}" if prefix and key else None


def audio_to_delete(
    deleted_keys: Iterable[str | None],
    undeleted_keys: Iterable[str | None],
    kept_keys: Container[str],
    pending_audio: dict[str, str],
    seen_pending_jobs: Container[str],
) -> tuple[list[str], list[str], int]:
    """(keys to delete, keys kept because a kept job references them, keys carried over from earlier runs).

    `deleted_keys` are the audio keys of the jobs deleted, `undeleted_keys` those of the jobs selected
    and not deleted (None for a job without one): those keep theirs, as do the jobs in `kept_keys`
    (not selected, or needing no change). Earlier runs' keys count only for jobs the table no longer holds.
    """
    kept_selected = {key for key in undeleted_keys if key}
    earlier = {key for job_id, key in pending_audio.items() if job_id not in seen_pending_jobs}
    candidates = [key for key in deleted_keys if key]
    candidates.extend(earlier)
    # Sorted, then each key once: no set of every key (4 MiB at 100,000), and the lists share the strings.
    candidates.sort()
    keys, keep = [], []
    previous = None
    for key in candidates:
        if key != previous:
            (keep if key in kept_selected or key in kept_keys else keys).append(key)
            previous = key
    return keys, keep, len(earlier.difference(keep))


def copy_to_archive(
    s3, bucket: str, prefix: str, keys: list[str], parallel: int, report: AudioReport, endpoint_url: str | None
) -> list[str]:
    """Copy each object to the archive prefix; returns the keys safe to delete (copied)."""

    def copy(key: str) -> tuple[str, str | None]:
        try:
            s3.copy_object(Bucket=bucket, Key=archive_audio_key(prefix, key), CopySource={"Bucket": bucket, "Key": key})
            return "copied", None
        except aws_errors() as exc:
            if is_not_found(exc):
                return "missing", None
            return "failed", describe_aws_error(exc, f"archive s3://{bucket}/{key}", endpoint_url)

    safe = []
    for key, (outcome, error) in zip(keys, run_bounded(copy, keys, parallel), strict=True):
        if outcome == "copied":
            report.archived += 1
            safe.append(key)
        elif outcome == "missing":
            report.missing.append(key)
        else:
            report.failed.append({"key": key, "code": "ArchiveCopyFailed", "message": error})
    return safe


def remove_audio(
    s3,
    bucket: str,
    keys: list[str],
    kept: list[str],
    archive_prefix: str | None,
    parallel: int,
    archive: ArchiveWriter | None,
    header: RecordHeader,
    report: AudioReport,
    endpoint_url: str | None = None,
) -> None:
    """Copy (with an archive prefix) then delete `keys`, and record in the archive what was dealt with."""
    if archive_prefix:
        keys = copy_to_archive(s3, bucket, archive_prefix, keys, parallel, report, endpoint_url)
    outcome = delete_objects(s3, bucket, keys)
    report.delete_requests = outcome.requests
    report.deleted = outcome.deleted
    report.failed.extend(outcome.errors)
    if archive is not None and (outcome.deleted or report.missing):
        outcome.deleted.sort()
        archive.append_streamed(
            header.record(
                AUDIO_RECORD, bucket=bucket, deleted=outcome.deleted, kept=kept, missing=sorted(report.missing)
            )
        )


def require_listable_bucket(s3, bucket: str, endpoint_url: str | None = None) -> None:
    """The cleanup's precondition: OptionError (one line) unless `bucket` exists and can be listed; a ListObjectsV2
    of one key, before any write. (The preflight's S3 checklist items, which report instead of refusing and may
    probe writes, are aws_access_check's bucket_checklist_items.)"""
    try:
        s3.list_objects_v2(Bucket=bucket, MaxKeys=1)
    except aws_errors() as exc:
        if is_not_found(exc):
            raise OptionError(
                f"bucket {bucket} does not exist: check bucket and region; nothing was changed."
            ) from None
        raise OptionError(
            describe_aws_error(exc, f"list bucket {bucket} before changing anything", endpoint_url)
        ) from None


def load_pending_audio(
    path: Path | None, table: str, plan_method: str, user_ids: Iterable[str] | None, read_stats: ReadStats
) -> dict[str, str]:
    """Audio of jobs deleted by earlier, interrupted runs, that this run can finish: {job_id: key}.

    A Query reads only the selected users' jobs, so only their leftovers are
    finished (their keys hold their user id); others wait for a run that reads them.
    """
    if path is None or not path.exists():
        return {}
    # Only what follows the last point where this table had nothing pending: every run reads it, so
    # the archive read back must not grow with every run ever archived.
    owners = unresolved_audio_owners(read_archive_since_settled(path, table, read_stats), table)
    users = set(user_ids or ())
    return {job_id: key for job_id, (key, user) in owners.items() if plan_method == "scan" or user in users}


def restore_audio(
    s3,
    bucket: str,
    records: list[ArchivedJob],
    parallel: int,
    check_mode: bool,
    report: AudioReport,
    endpoint_url: str | None = None,
) -> None:
    """Copy archived audio back where the original object is missing."""

    def failed(record: ArchivedJob, exc: Exception, doing: str) -> str:
        message = describe_aws_error(exc, doing, endpoint_url)
        report.failed.append(
            {"key": record.audio_key, "code": error_code(exc) or type(exc).__name__, "message": message}
        )
        return "failed"

    def restore(record: ArchivedJob) -> str:
        try:
            s3.head_object(Bucket=bucket, Key=record.audio_key)
            return "present"
        except aws_errors() as exc:
            if not is_not_found(exc):
                return failed(record, exc, f"check s3://{bucket}/{record.audio_key}")
        try:
            if check_mode:
                # Predict exactly: an archive copy that was never made cannot be restored.
                s3.head_object(Bucket=bucket, Key=record.audio_archive_key)
                return "restored"
            s3.copy_object(
                Bucket=bucket, Key=record.audio_key, CopySource={"Bucket": bucket, "Key": record.audio_archive_key}
            )
            return "restored"
        except aws_errors() as exc:
            if is_not_found(exc):
                report.missing.append(record.audio_archive_key)
                return "missing"
            return failed(record, exc, f"restore s3://{bucket}/{record.audio_key}")

    with_audio = [r for r in records if r.audio_key and r.audio_archive_key]
    report.restored = sum(outcome == "restored" for outcome in run_bounded(restore, with_audio, parallel))
