"""The cleanup archive: JSON Lines of whole job items, written before anything is deleted.

Items are stored in DynamoDB's own JSON (the wire format: `{"N": "1.50"}`,
binary as base64), so numbers keep their exact Decimal text, sets stay sets
and binary stays binary: a restored item is equal to the original, type for type.

Every append is flushed and fsynced before the caller deletes what it
describes, so a run killed at any point leaves an archive that holds every job
it deleted. Lines are complete JSON documents; a torn last line (a crash in the
middle of a write, before the matching delete) is skipped when reading.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

try:
    from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
except ImportError:  # the modules report a missing boto3 themselves
    TypeDeserializer = TypeSerializer = None

ARCHIVE_FORMAT = 1
# Record kinds: a job as it was selected (written before its change), the
# outcome of its change, and the S3 audio keys dealt with after a batch.
JOB_RECORD = "job"
RESULT_RECORD = "result"
AUDIO_RECORD = "audio"


def _encode_binary(value: dict) -> dict:
    """A serialized attribute value with bytes as base64 text, recursively (JSON cannot hold bytes)."""
    ((kind, inner),) = value.items()
    if kind == "B":
        return {"B": base64.b64encode(bytes(inner)).decode("ascii")}
    if kind == "BS":
        return {"BS": [base64.b64encode(bytes(part)).decode("ascii") for part in inner]}
    if kind == "M":
        return {"M": {key: _encode_binary(part) for key, part in inner.items()}}
    if kind == "L":
        return {"L": [_encode_binary(part) for part in inner]}
    return value


def _decode_binary(value: dict) -> dict:
    ((kind, inner),) = value.items()
    if kind == "B":
        return {"B": base64.b64decode(inner)}
    if kind == "BS":
        return {"BS": [base64.b64decode(part) for part in inner]}
    if kind == "M":
        return {"M": {key: _decode_binary(part) for key, part in inner.items()}}
    if kind == "L":
        return {"L": [_decode_binary(part) for part in inner]}
    return value


def item_to_json(item: dict) -> dict:
    """A deserialized item (boto3 types) as JSON-safe DynamoDB JSON."""
    serialize = TypeSerializer().serialize
    return {name: _encode_binary(serialize(value)) for name, value in item.items()}


def wire_to_json(item: dict) -> dict:
    """A low-level item as returned by the client (bytes for binary) as JSON-safe DynamoDB JSON."""
    return {name: _encode_binary(value) for name, value in item.items()}


def json_to_wire(item: dict) -> dict:
    """Archived DynamoDB JSON as a low-level item the client can put back."""
    return {name: _decode_binary(value) for name, value in item.items()}


def json_to_item(item: dict) -> dict:
    deserialize = TypeDeserializer().deserialize
    return {name: deserialize(value) for name, value in json_to_wire(item).items()}


@dataclass
class ArchiveWriter:
    """Appends records to a JSON Lines file, durably (flush + fsync per append)."""

    path: Path
    records_written: int = 0
    _handle: object = field(default=None, repr=False)

    def open(self) -> ArchiveWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Jobs hold user ids and error texts: private to the operator (0600).
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._handle = os.fdopen(fd, "a", encoding="utf-8")
        return self

    def append(self, records: Iterable[dict]) -> int:
        lines = [json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n" for record in records]
        if not lines:
            return 0
        self._handle.write("".join(lines))
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self.records_written += len(lines)
        return len(lines)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def encode_records(records: Iterable[dict]) -> bytes:
    """Records as JSON Lines bytes (for an S3 copy of a batch)."""
    return "".join(json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n" for record in records).encode()


@dataclass
class ReadStats:
    lines: int = 0
    unreadable: int = 0


def parse_lines(lines: Iterable[str], stats: ReadStats) -> Iterator[dict]:
    """Records from JSON Lines text; lines that are not a JSON object (a torn tail) are counted and skipped."""
    for line in lines:
        if not line.strip():
            continue
        stats.lines += 1
        try:
            record = json.loads(line)
        except ValueError:
            stats.unreadable += 1
            continue
        if not isinstance(record, dict) or record.get("format") != ARCHIVE_FORMAT:
            stats.unreadable += 1
            continue
        yield record


def read_archive(path: Path, stats: ReadStats) -> Iterator[dict]:
    with open(path, encoding="utf-8") as handle:
        yield from parse_lines(handle, stats)


@dataclass
class ArchivedJob:
    """The last known full item of an archived job, and what happened to it."""

    job_id: str
    item: dict  # DynamoDB JSON
    category: str | None
    audio_key: str | None
    audio_archive_key: str | None
    run_id: str
    outcome: str | None = None


def latest_jobs(records: Iterable[dict], table: str | None = None) -> dict[str, ArchivedJob]:
    """Archived jobs by id: the newest job record wins, and a delete's returned item replaces the selected one.

    Records of other tables are ignored when `table` is given.
    """
    jobs: dict[str, ArchivedJob] = {}
    for record in records:
        if table is not None and record.get("table") != table:
            continue
        job_id = record.get("job_id")
        if record.get("record") == JOB_RECORD and isinstance(record.get("item"), dict):
            jobs[job_id] = ArchivedJob(
                job_id=job_id,
                item=record["item"],
                category=record.get("category"),
                audio_key=record.get("audio_key"),
                audio_archive_key=record.get("audio_archive_key"),
                run_id=record.get("run_id", ""),
            )
        elif record.get("record") == RESULT_RECORD and job_id in jobs:
            jobs[job_id].outcome = record.get("outcome")
            if isinstance(record.get("item"), dict):
                jobs[job_id].item = record["item"]
    return jobs


def unresolved_audio(records: Iterable[dict], table: str) -> dict[str, str]:
    """Audio keys of archived deletions whose S3 object was never dealt with, by job id.

    A run killed after deleting jobs but before deleting their audio leaves
    these; the next run with the same archive finishes them.
    """
    return {job_id: key for job_id, (key, _user) in unresolved_audio_owners(records, table).items()}


def unresolved_audio_owners(records: Iterable[dict], table: str) -> dict[str, tuple[str, str | None]]:
    """As unresolved_audio(), with the user id of each archived job: {job_id: (audio key, user_id or None)}.

    A run that reads only some users' jobs (a Query on the user index) can
    finish only those users' leftovers: it cannot see who else uses a key.
    """
    pending: dict[str, tuple[str, str | None]] = {}
    # Records are applied in file order, so a key kept by one run and selected
    # again by a later one is pending again until that later run resolves it.
    for record in records:
        if record.get("table") != table:
            continue
        kind = record.get("record")
        if kind == JOB_RECORD and record.get("delete_audio") and record.get("audio_key"):
            user = (record.get("item") or {}).get("user_id")
            owner = user.get("S") if isinstance(user, dict) else None
            pending[record["job_id"]] = (record["audio_key"], owner)
        elif kind == RESULT_RECORD and record.get("outcome") == "skipped":
            # Definitely not deleted. A failed delete stays pending: the caller
            # drops jobs that the table still holds.
            pending.pop(record.get("job_id"), None)
        elif kind == AUDIO_RECORD:
            done = {*record.get("deleted", []), *record.get("kept", []), *record.get("missing", [])}
            if done:
                pending = {job_id: entry for job_id, entry in pending.items() if entry[0] not in done}
    return pending
