"""The cleanup archive: JSON Lines of whole job items, written before anything is deleted.

Items are stored in DynamoDB's own JSON (the wire format: `{"N": "1.50"}`,
binary as base64), so numbers keep their exact Decimal text, sets stay sets
and binary stays binary: a restored item is equal to the original, type for type.

Every append is flushed and fsynced before the caller deletes what it
describes, so a run killed at any point leaves an archive that holds every job
it deleted. Lines are complete JSON documents; a torn last line (a crash in the
middle of a write, before the matching delete) is terminated before the next
append, so it never swallows a later record, and reading reports it by line number.

The S3 copy of a batch is one object named `<prefix><run id>/<table>-<batch>.jsonl`
and marked with ARCHIVE_METADATA, so a restore reading a prefix never takes
anything else under it (audio copies, other files) for an archive.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from ansible.module_utils.panzoto.aws import aws_errors, error_summary

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
RECORD_KINDS = frozenset({JOB_RECORD, RESULT_RECORD, AUDIO_RECORD})
# The outcome recorded for a job the run deleted; restore puts back only these.
DELETED = "deleted"
ACTION_DELETE = "absent"
# S3 user metadata on every archive object (x-amz-meta-panzoto-archive).
ARCHIVE_METADATA = {"panzoto-archive": str(ARCHIVE_FORMAT)}
RUN_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{6}$")


class ArchiveError(ValueError):
    """An archive that cannot be used as it is; the message is one line."""


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


def to_wire(value: object) -> dict:
    """A Python value as a DynamoDB attribute value, as boto3's TypeSerializer makes it.

    What a job is made of (text, numbers, booleans, nulls, maps, lists) is built here
    directly: TypeSerializer's checks cost several times more, once per value of every
    archived and conditionally deleted job. Sets and binary go to TypeSerializer.
    Numbers are read from DynamoDB, so already within its 38 digits.
    """
    return _built(value, _serialized)


def _to_json(value: object) -> dict:
    """to_wire() with binary as base64 text (what item_to_json stores)."""
    return _built(value, _serialized_as_json)


def _serialized(value: object) -> dict:
    return TypeSerializer().serialize(value)


def _serialized_as_json(value: object) -> dict:
    return _encode_binary(TypeSerializer().serialize(value))


def _built(value: object, other: Callable[[object], dict]) -> dict:
    """`value` as an attribute value, sets and binary through `other`."""
    kind = type(value)
    if kind is str:
        return {"S": value}
    if kind is Decimal or kind is int:
        return {"N": str(value)}
    if kind is dict:
        return {"M": {name: _built(part, other) for name, part in value.items()}}
    if kind is list:
        return {"L": [_built(part, other) for part in value]}
    if kind is bool:
        return {"BOOL": value}
    if value is None:
        return {"NULL": True}
    return other(value)


def item_to_json(item: dict) -> dict:
    """A deserialized item (boto3 types) as JSON-safe DynamoDB JSON."""
    return {name: _to_json(value) for name, value in item.items()}


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
class S3OutcomeMirror:
    """Completes each S3 archive object of a run with the outcomes of its jobs.

    The caller puts a chunk's job records to S3 before changing them; without their outcomes an S3 restore
    could only assume every archived delete happened, and would bring back a job the app itself changed or
    deleted. When the chunk's result records are appended, the same object is put again with the job
    records followed by the results: still one object per chunk, now with what happened. A put that fails
    leaves the job-only object (the file archive holds the outcomes) and is reported.
    """

    s3: object
    bucket: str
    prefix: str
    run_id: str
    table: str
    batch_number: int = -1
    _jobs: list[dict] = field(default_factory=list, repr=False)
    failed: list[str] = field(default_factory=list)  # one line per object that could not be completed

    def appended(self, records: list[dict]) -> None:
        kinds = {record.get("record") for record in records}
        if kinds == {JOB_RECORD}:
            # Chunks are numbered as the caller numbers them: an aborted run skips only its last chunks.
            self.batch_number += 1
            self._jobs = records
        elif RESULT_RECORD in kinds and self._jobs:
            key = s3_archive_key(self.prefix, self.run_id, self.table, self.batch_number)
            try:
                put_s3_archive(
                    self.s3, self.bucket, key, self._jobs + [r for r in records if r.get("record") == RESULT_RECORD]
                )
            except aws_errors() as exc:
                self.failed.append(f"s3://{self.bucket}/{key} ({error_summary(exc)})")
            self._jobs = []


# What append() writes with json.dumps, as pieces (json's pure-Python iterencode: about 1 µs a list element).
_STREAMING_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"))
_STREAMED_WRITE = 1 << 20


@dataclass
class ArchiveWriter:
    """Appends records to a JSON Lines file, durably (flush + fsync per append); outcomes also to S3 with a mirror."""

    path: Path
    mirror: S3OutcomeMirror | None = None
    records_written: int = 0
    _handle: object = field(default=None, repr=False)

    def open(self) -> ArchiveWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Jobs hold user ids and error texts: private to the operator (0600),
        # also when the file existed with a wider mode.
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(fd, 0o600)
        self._handle = os.fdopen(fd, "a", encoding="utf-8")
        if _ends_torn(fd):
            # A crash mid-write left a line without its newline: end it, so the
            # next record starts on a line of its own instead of joining it.
            self._handle.write("\n")
            self._handle.flush()
        return self

    def append(self, records: Iterable[dict]) -> int:
        records = list(records)
        lines = [json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n" for record in records]
        if not lines:
            return 0
        self._handle.write("".join(lines))
        self._written(records)
        return len(lines)

    def append_streamed(self, record: dict) -> None:
        """One record whose JSON may be many MiB (an audio record of 100,000 keys), written in pieces.

        The same line append() writes, without the whole text held as one string (and again encoded):
        the encoder's pieces go to the file a MiB at a time, flushed and fsynced once at the end.
        """
        pieces, size = [], 0
        for piece in _STREAMING_ENCODER.iterencode(record):
            pieces.append(piece)
            size += len(piece)
            if size >= _STREAMED_WRITE:
                self._handle.write("".join(pieces))
                pieces, size = [], 0
        pieces.append("\n")
        self._handle.write("".join(pieces))
        self._written([record])

    def _written(self, records: list[dict]) -> None:
        """Make the records just written durable, count them, and hand them to the S3 mirror."""
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self.records_written += len(records)
        if self.mirror is not None:
            self.mirror.appended(records)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _ends_torn(fd: int) -> bool:
    size = os.fstat(fd).st_size
    return size > 0 and os.pread(fd, 1, size - 1) != b"\n"


def encode_records(records: Iterable[dict]) -> bytes:
    """Records as JSON Lines bytes (for an S3 copy of a batch)."""
    return "".join(json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n" for record in records).encode()


@dataclass(frozen=True)
class RecordHeader:
    """The fields every record of one run carries, fixed once per run."""

    run_id: str
    table: str
    action: str

    def record(self, kind: str, **fields) -> dict:
        return {
            "format": ARCHIVE_FORMAT,
            "record": kind,
            "run_id": self.run_id,
            "at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "table": self.table,
            "action": self.action,
            **fields,
        }


@dataclass
class ReadStats:
    """What reading an archive met: lines read, and where the unreadable ones are (source, line number)."""

    lines: int = 0
    unreadable: int = 0
    unreadable_at: list[str] = field(default_factory=list)
    limit: int = 20

    def bad_line(self, source: str, number: int) -> None:
        self.unreadable += 1
        if len(self.unreadable_at) < self.limit:
            self.unreadable_at.append(f"{source}:{number}")


def parse_record(line: str) -> dict | None:
    """One archive record from a line, or None when the line is not one (torn, foreign, not JSON)."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or record.get("format") != ARCHIVE_FORMAT:
        return None
    return record if record.get("record") in RECORD_KINDS else None


def parse_lines(lines: Iterable[str], stats: ReadStats, source: str = "archive") -> Iterator[dict]:
    """Records from JSON Lines text; other lines are counted with their number and skipped."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        stats.lines += 1
        record = parse_record(line)
        if record is None:
            stats.bad_line(source, number)
            continue
        yield record


def read_archive(path: Path, stats: ReadStats) -> Iterator[dict]:
    with open(path, encoding="utf-8", errors="replace") as handle:
        yield from parse_lines(handle, stats, str(path))


# An audio record saying that, for its table, no audio was left pending at that point of the
# archive: what came before it need not be read again to find the audio earlier runs left.
# Written by a run that left nothing pending (settled_record), found from the file's end.
SETTLED = "settled"
_SETTLED_NEEDLE = b'"settled":true'  # as append() writes it (sorted keys, no spaces); never inside a string value
_BACKWARD_BLOCK = 1 << 20


def settled_record(header: RecordHeader, bucket: str, unreadable_before: int) -> dict:
    """The marker record: an audio record that deals with no key (older readers apply it as nothing).

    `unreadable_before` carries the count of unreadable lines before it, so a run reading only
    what follows still reports the whole archive's count.
    """
    return header.record(
        AUDIO_RECORD, bucket=bucket, deleted=[], kept=[], missing=[], settled=True, unreadable_before=unreadable_before
    )


def last_settled(path: Path, table: str) -> tuple[int, int]:
    """(byte offset just after the last settled marker of `table`, its unreadable_before); (0, 0) when none.

    Reads the file backwards a block at a time and parses only the lines holding the marker's text.
    """
    with open(path, "rb") as handle:
        position = handle.seek(0, os.SEEK_END)
        carried = b""  # the start of a line that began before the block read last
        while position > 0:
            start = max(0, position - _BACKWARD_BLOCK)
            handle.seek(start)
            block = handle.read(position - start) + carried
            # Lines wholly inside `block` begin after its first newline, unless it starts the file.
            first = block.find(b"\n") + 1 if start > 0 else 0
            if start > 0 and first == 0:
                carried, position = block, start  # one line longer than a block: read on
                continue
            limit = len(block)
            while (hit := block.rfind(_SETTLED_NEEDLE, first, limit)) >= 0:
                line_start = block.rfind(b"\n", 0, hit) + 1
                line_end = block.find(b"\n", hit)
                line_end = len(block) if line_end < 0 else line_end + 1
                record = parse_record(block[line_start:line_end].decode("utf-8", errors="replace"))
                if (
                    record is not None
                    and record["record"] == AUDIO_RECORD
                    and record.get(SETTLED) is True
                    and record.get("table") == table
                ):
                    carried_count = record.get("unreadable_before")
                    return start + line_end, carried_count if isinstance(carried_count, int) else 0
                limit = line_start
            carried, position = block[:first], start
    return 0, 0


def read_archive_since_settled(path: Path, table: str, stats: ReadStats) -> Iterator[dict]:
    """The records after `table`'s last settled marker (all of them when it has none).

    For what earlier runs left pending this equals reading the whole archive: nothing was pending
    at the marker. Unreadable lines before it are counted from the marker; their numbers are not
    listed (line numbers here count from the marker, whose byte offset the source names).
    """
    offset, unreadable_before = last_settled(path, table)
    if offset == 0:
        yield from read_archive(path, stats)
        return
    stats.unreadable += unreadable_before
    with open(path, "rb") as raw:
        raw.seek(offset)  # a line's start: decoding from here is what decoding the whole file gives
        yield from parse_lines(
            io.TextIOWrapper(raw, encoding="utf-8", errors="replace"), stats, f"{path} (after byte {offset})"
        )


def check_archive_file(path: Path) -> str | None:
    """Why `path` cannot be the cleanup's archive (None when it can): it must be a regular file of
    archive records (or not exist yet), writable, in a directory that can hold it."""
    if path.is_symlink() and not path.exists():
        # Opening it would create the link's target, or die with a bare [Errno 2] when its directory is missing.
        target = os.readlink(path)
        return f"{path} is a symbolic link to {target}, which does not exist: fix the link or choose another path"
    if path.is_dir():
        return f"{path} is a directory, not an archive file"
    if path.exists():
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):
            return f"{path} is not a regular file"
        if not os.access(path, os.R_OK | os.W_OK):
            return f"{path} is not readable and writable by this user"
        with open(path, "rb") as handle:
            first = next((line for line in handle if line.strip()), None)
        if first is not None and parse_record(first.decode("utf-8", errors="replace")) is None:
            return f"{path} is not a panzoto-ops archive (its first line is not an archive record): choose another path"
        return None
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        return f"{path} cannot be created: {parent} is not a writable directory"
    return None


# --------------------------------------------------------------------------- the S3 form


def s3_archive_key(prefix: str, run_id: str, table: str, batch_number: int) -> str:
    return f"{prefix}{run_id}/{table}-{batch_number:05d}.jsonl"


def is_s3_archive_key(key: str, prefix: str) -> bool:
    """Whether `key` is named like an archive object under `prefix` (and not, say, an audio copy)."""
    if not key.startswith(prefix) or not key.endswith(".jsonl"):
        return False
    run_id, _, name = key[len(prefix) :].partition("/")
    return bool(RUN_ID.match(run_id)) and "/" not in name and re.search(r"-\d{5}\.jsonl$", name) is not None


def put_s3_archive(s3, bucket: str, key: str, records: list[dict]) -> None:
    s3.put_object(
        Bucket=bucket, Key=key, Body=encode_records(records), ContentType="application/x-ndjson",
        Metadata=ARCHIVE_METADATA,
    )  # fmt: skip


@dataclass
class S3ReadStats:
    objects: int = 0
    ignored: list[str] = field(default_factory=list)  # keys under the prefix that are not archive objects


def read_s3_archive(s3, bucket: str, prefix: str, stats: ReadStats, s3_stats: S3ReadStats) -> Iterator[dict]:
    """Every record of the archive objects under `prefix`; anything else there is listed as ignored, never decoded."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Contents", []):
            key = entry["Key"]
            if not is_s3_archive_key(key, prefix):
                s3_stats.ignored.append(key)
                continue
            response = s3.get_object(Bucket=bucket, Key=key)
            if response.get("Metadata", {}).get("panzoto-archive") != ARCHIVE_METADATA["panzoto-archive"]:
                response["Body"].close()
                s3_stats.ignored.append(key)
                continue
            s3_stats.objects += 1
            text = response["Body"].read().decode("utf-8", errors="replace")
            yield from parse_lines(text.splitlines(), stats, f"s3://{bucket}/{key}")


@dataclass
class ArchivedJob:
    """The last known full item of an archived job, and what happened to it."""

    job_id: str
    item: dict  # DynamoDB JSON
    category: str | None
    audio_key: str | None
    audio_archive_key: str | None
    run_id: str
    action: str | None = None
    outcome: str | None = None

    @property
    def deleted_by_cleanup(self) -> bool:
        """Whether this suite deleted the job: a delete whose outcome was recorded as done, or never
        recorded because the run was interrupted between the delete and its result."""
        return self.action == ACTION_DELETE and self.outcome in (DELETED, None)

    def why_not_restored(self) -> str | None:
        if self.deleted_by_cleanup:
            return None
        if self.action != ACTION_DELETE:
            return f"archived by state={self.action}, not deleted by the cleanup"
        return f"its delete was {self.outcome}, so the cleanup did not delete it"


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
                action=record.get("action"),
            )
        elif (
            record.get("record") == RESULT_RECORD and job_id in jobs and jobs[job_id].run_id == record.get("run_id", "")
        ):
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
        elif kind == RESULT_RECORD and record.get("outcome") in ("skipped", "unchanged", "not_attempted"):
            # Definitely not deleted. A failed delete stays pending: the caller
            # drops jobs that the table still holds.
            pending.pop(record.get("job_id"), None)
        elif kind == AUDIO_RECORD:
            # Keys kept because a job still referenced them stay pending: that job may be
            # deleted later (by a concurrent or a later run), and the next run re-checks.
            done = {*record.get("deleted", []), *record.get("missing", [])}
            if done:
                pending = {job_id: entry for job_id, entry in pending.items() if entry[0] not in done}
    return pending
