"""What the cleanup does with a selection: each selected job's planned change, in one streamed pass.

The audio key template, a table's key schema (any table: jobs, transcripts), the plan of each
selected job, and the pass that keeps at most max_changes of them and the audio kept jobs reference.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import string
import tempfile
import threading
from array import array
from collections.abc import Container, Iterable, Iterator
from dataclasses import dataclass, field, replace
from decimal import Decimal

from ansible.module_utils.panzoto.classification import Rule
from ansible.module_utils.panzoto.jobs import Job, inspect_job
from ansible.module_utils.panzoto.options import OptionError
from ansible.module_utils.panzoto.selection import ReadPlan, Selection, read_plan

TEMPLATE_FIELDS = ("user_id", "audio_file_id", "job_id")
# A table keyed by job_id alone holds jobs; any other table (panzoto-transcripts) only takes
# what does not need to understand its items: wipe_all, job_ids (its key values) and restore.
JOBS_HASH_KEY = "job_id"
JOBS_ONLY_OPTIONS = (
    "categories",
    "statuses",
    "older_than",
    "job_types",
    "user_ids",
    "delete_audio",
    "archive_audio_prefix",
)
ITEM_GROUP = "item"  # the one group of a table that does not hold jobs


def group_of(job: Job) -> str:
    """The bucket a job is counted in: its error category, else its status, else `malformed`."""
    if job.malformed:
        return "malformed"
    return job.category if job.status == "failed" and job.category else (job.status or "unknown")


def plan_action(job: Job, state: str, ttl_attribute: str) -> tuple[str, str | None]:
    """("changed" | "unchanged" | "skipped", reason) for a selected job, before any request."""
    if state == "requeued":
        if job.malformed:
            return "skipped", f"malformed item ({job.malformed}): not requeued"
        if job.status == "completed":
            return "skipped", "completed jobs are not requeued"
        if job.status == "pending" and not job.item.get("retry_count") and "error_message" not in job.item:
            return "unchanged", "already pending with no retries and no error"
    if state == "expiring" and ttl_attribute in job.item:
        return "unchanged", f"already has {ttl_attribute}"
    return "changed", None


class JobSpool:
    """The selected jobs' items out of the heap until they are written: a private file, read back by position.

    A selection can hold a million jobs, and an item in the heap costs about 3 KB. The last `cache`
    jobs selected stay in the heap as they were selected (a run that selects fewer is never spooled,
    and never decodes a job twice); older ones are pickled (exact types: Decimal, Binary, sets) to an
    unnamed temporary file in TMPDIR, mode 0600, unlinked as soon as it is made, so nothing is left
    behind even by a killed run; only this process reads what it wrote. A job read back is rebuilt
    with the same key and rules (inspect_job is deterministic) and the last `cache` of them are kept,
    so the several reads of one chunk (its archive records, its writes, its outcomes) decode each job once:
    the module makes it the size of its write chunks, no bigger (each job held costs its item).
    """

    CACHE = 2048  # when no size is given

    def __init__(self, key: TableKey, rules: tuple[Rule, ...], cache: int | None = None) -> None:
        self.key, self.rules = key, rules
        self.cache = max(1, cache or self.CACHE)
        self._file = None  # made when the first job is spilled
        self._end = 0
        self._unflushed = False
        self._held: dict[int, Job] = {}  # the last `cache` jobs put, by reference, not written
        self._count = 0
        # Where each spilled job's pickle is: 12 bytes per job, against some 3 KB for its item.
        self._offsets = array("Q")
        self._lengths = array("I")
        self._cache: dict[int, Job] = {}
        self._lock = threading.Lock()  # the writes read jobs from `parallel` threads

    def put(self, job: Job) -> int:
        """Keep a selected job; returns its reference (the order it was put in)."""
        ref = self._count
        self._count += 1
        self._held[ref] = job
        if len(self._held) > self.cache:
            oldest = next(iter(self._held))
            self._spill(self._held.pop(oldest))
        return ref

    def _spill(self, job: Job) -> None:
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="panzoto-selection-")  # noqa: SIM115  (lives as long as the selection)
        data = pickle.dumps(job.item, pickle.HIGHEST_PROTOCOL)
        self._file.write(data)
        # The oldest held job goes first, so jobs are spilled in the order they were put: entry n is reference n.
        self._offsets.append(self._end)
        self._lengths.append(len(data))
        self._end += len(data)
        self._unflushed = True

    def job(self, ref: int) -> Job:
        held = self._held.get(ref)
        if held is not None:
            return held
        with self._lock:
            job = self._cache.get(ref)
            if job is not None:
                return job
            if self._unflushed:
                self._file.flush()
                self._unflushed = False
        data = os.pread(self._file.fileno(), self._lengths[ref], self._offsets[ref])
        job = self.key.as_job(pickle.loads(data), self.rules)
        with self._lock:
            if len(self._cache) >= self.cache:
                del self._cache[next(iter(self._cache))]
            self._cache[ref] = job
        return job

    def close(self) -> None:
        """Let go of every job held or cached and of the file (its pickles go with it)."""
        self._held.clear()
        self._cache.clear()
        self._offsets, self._lengths = array("Q"), array("I")
        if self._file is not None:
            self._file.close()


class Planned:
    """A selected job the run will change, with the group it is counted in and its audio key.

    Holds in the heap only its id, group and audio key; the job itself (`job`) is either held
    (built from a Job) or read back from the selection's JobSpool when asked for. A selection
    (`Selected`) makes them on demand, a chunk at a time, and keeps none.
    """

    __slots__ = ("_job", "_ref", "_spool", "audio_key", "group", "job_id")

    def __init__(self, job: Job, group: str, audio_key: str | None) -> None:
        self.job_id, self.group, self.audio_key = job.job_id, group, audio_key
        self._job, self._spool, self._ref = job, None, 0

    @classmethod
    def spooled(cls, job_id: str, group: str, audio_key: str | None, spool: JobSpool, ref: int) -> Planned:
        planned = cls.__new__(cls)
        planned.job_id, planned.group, planned.audio_key = job_id, group, audio_key
        planned._job, planned._spool, planned._ref = None, spool, ref
        return planned

    @property
    def job(self) -> Job:
        return self._job if self._job is not None else self._spool.job(self._ref)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Planned):
            return NotImplemented
        return (self.job, self.group, self.audio_key) == (other.job, other.group, other.audio_key)

    __hash__ = None

    def __repr__(self) -> str:
        return f"Planned(job_id={self.job_id!r}, group={self.group!r}, audio_key={self.audio_key!r})"


class _Texts:
    """Strings appended one after another into one buffer: about their length in bytes each, no object per string."""

    def __init__(self) -> None:
        self._data = bytearray()
        self._ends = array("Q")

    def append(self, text: str) -> None:
        # surrogatepass: a key read from JSON may hold a lone surrogate, which must come back as it was.
        self._data += text.encode("utf-8", "surrogatepass")
        self._ends.append(len(self._data))

    def __getitem__(self, index: int) -> str:
        start = self._ends[index - 1] if index else 0
        return self._data[start : self._ends[index]].decode("utf-8", "surrogatepass")


class Selected:
    """The jobs a run will change, in the order selected, with no Python object per job.

    A selection can hold a million jobs, and a Planned with its id and audio key costs about
    350 B of heap each, scattered between the scan's pages (whose arenas they then keep). Here
    the ids and audio keys are packed in two byte buffers, the groups are two bytes each (an index
    into the few distinct groups), and the items wait in the JobSpool: some 100 to 150 B per job
    with the default key template. A Planned is made when a job is asked for and kept by no one here;
    job i is the spool's reference i.
    """

    def __init__(self, spool: JobSpool) -> None:
        self.spool = spool
        self._ids = _Texts()
        self._audio = _Texts()  # "" for a job without an audio key (a key is never empty)
        self._groups: list[str] = []  # the distinct groups, a handful
        self._group_of = array("H")

    def append(self, job: Job, group: str, audio_key: str | None) -> None:
        self.spool.put(job)
        self._ids.append(job.job_id)
        self._audio.append(audio_key or "")
        if group not in self._groups:
            self._groups.append(group)
        self._group_of.append(self._groups.index(group))

    def __len__(self) -> int:
        return len(self._group_of)

    def drop_jobs(self) -> None:
        """Let go of what only the writes need (the items, the ids) before the audio's peak; the audio keys stay."""
        self.spool.close()
        self._ids = None  # a job asked for after this fails loudly

    def audio_key(self, index: int) -> str | None:
        return self._audio[index] or None

    def __getitem__(self, index: int) -> Planned:
        if not 0 <= index < len(self):
            raise IndexError(index)
        group = self._groups[self._group_of[index]]
        return Planned.spooled(self._ids[index], group, self.audio_key(index), self.spool, index)

    def __iter__(self) -> Iterator[Planned]:
        return (self[index] for index in range(len(self)))


# --------------------------------------------------------------------------- the audio key template


@dataclass(frozen=True)
class AudioKeyTemplate:
    """The S3 key of a job's audio, e.g. `audio_upload/{user_id}/{audio_file_id}.3gp_encrypted`, parsed once."""

    text: str
    fields: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> AudioKeyTemplate:
        try:
            parts = list(string.Formatter().parse(text))
        except ValueError as exc:
            raise OptionError(f"audio_key_template {text!r} is not a valid template: {exc}.") from None
        fields = tuple(name for _, name, _, _ in parts if name is not None)
        decorated = [f"{{{name}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}}"
                     for _, name, spec, conversion in parts if name is not None and (spec or conversion)]  # fmt: skip
        if decorated:
            # A key is the job's values as they are: {user_id:d} crashes on text, {user_id!r} adds quotes.
            raise OptionError(
                f"audio_key_template {text!r}: {', '.join(decorated)} has a format spec or conversion; "
                f"use plain fields such as {{user_id}}."
            )
        if not fields or any(name not in TEMPLATE_FIELDS for name in fields):
            raise OptionError(
                f"audio_key_template {text!r} must use only {{user_id}}, {{audio_file_id}} and {{job_id}}, "
                f"at least one."
            )
        return cls(text, fields)

    @property
    def has_user(self) -> bool:
        return "user_id" in self.fields

    def key_for(self, item: dict) -> str | None:
        """The key of an item's audio, or None when a field the template needs is missing or not text."""
        values = {}
        for name in self.fields:  # asked of every item read: only the template's own fields
            value = item.get(name)
            if not isinstance(value, str) or not value:
                return None
            values[name] = value
        return self.text.format_map(values)


# --------------------------------------------------------------------------- the table's key


def key_text(value: object) -> str:
    """A key attribute's value as text: strings as they are, numbers in DynamoDB's form, binary as base64."""
    if isinstance(value, str):
        return value
    if isinstance(value, Decimal):
        return str(value)
    raw = getattr(value, "value", value)  # boto3's Binary
    if isinstance(raw, (bytes, bytearray)):
        return base64.b64encode(bytes(raw)).decode("ascii")
    return str(value)


@dataclass(frozen=True)
class TableKey:
    """A table's key schema as DescribeTable gives it."""

    hash_key: str
    range_key: str | None = None

    @classmethod
    def from_description(cls, description: dict) -> TableKey:
        keys = {k["KeyType"]: k["AttributeName"] for k in description["KeySchema"]}
        return cls(keys["HASH"], keys.get("RANGE"))

    @property
    def jobs_table(self) -> bool:
        return self.hash_key == JOBS_HASH_KEY and self.range_key is None

    def names(self) -> tuple[str, ...]:
        return (self.hash_key, self.range_key) if self.range_key else (self.hash_key,)

    def item_id(self, item: dict) -> str:
        """An item's id in reports and the archive: its hash key's value, or [hash, range] as JSON."""
        values = [key_text(item.get(name)) for name in self.names()]
        return values[0] if len(values) == 1 else json.dumps(values)

    def report(self) -> dict:
        return {"hash": self.hash_key, "range": self.range_key, "jobs_table": self.jobs_table}

    def as_job(self, item: dict, rules: tuple[Rule, ...]) -> Job:
        """A jobs-table item read as a job; any other table's item as a plain item with its key as id."""
        if self.jobs_table:
            job = inspect_job(item, rules)
            return job if job.job_id is not None else replace(job, job_id=self.item_id(item))
        return Job(
            item=item,
            job_id=self.item_id(item),
            status=None,
            job_type="unknown",
            user_id=None,
            audio_file_id=None,
            created_at=None,
            completed_at=None,
            error_message=None,
            category=None,
            malformed=None,
        )

    def refuse_jobs_only(self, table: str, state: str, used: list[str]) -> None:
        """OptionError (one line) when options that need jobs (`used`) are given for a table that does not hold them."""
        if self.jobs_table:
            return
        used = list(used)
        if state in ("requeued", "expiring"):
            used.insert(0, f"state={state}")
        if used:
            raise OptionError(
                f"{', '.join(used)}: only for a jobs table (key job_id), and {table} is keyed by "
                f"{' and '.join(self.names())}; "
                "use wipe_all (with confirm), job_ids (its key values) or state=restored."
            )


# --------------------------------------------------------------------------- the read plan


def cleanup_read_plan(
    state: str,
    user_ids: frozenset[str] | None,
    user_index: str,
    delete_audio: bool,
    template: AudioKeyTemplate,
    description: dict,
) -> ReadPlan:
    """The shared read plan, with what the cleanup adds: restore reads the archive; shared audio needs every user.

    With delete_audio, kept jobs that reference a deleted job's audio must all be
    seen; only a key template containing {user_id} guarantees they belong to the
    same users, otherwise every job is read.
    """
    if state == "restored":
        return ReadPlan("archive", reason="restore reads the archive, not the table")
    every_user = None
    if delete_audio and not template.has_user:
        every_user = (
            "audio_key_template has no {user_id}: other users' jobs may reference the same audio, so every job is read"
        )
    return read_plan(user_ids, user_index, description, every_user)


# --------------------------------------------------------------------------- one streamed pass


@dataclass
class SelectionScan:
    """What one pass over the items found: the jobs to change (at most max_changes) and what audio they share."""

    changes: Selected  # each job's item in its spool, its id, group and audio key packed
    change_count: int = 0
    # Audio of jobs this run keeps: anything with add() and `in`; the module passes a
    # KeptKeys (cleanup/keyset.py), whose size does not grow with the table past its cap.
    kept_keys: object = field(default_factory=set)
    seen_pending_jobs: set[str] = field(default_factory=set)  # earlier runs' jobs the table still holds

    @property
    def spool(self) -> JobSpool:
        return self.changes.spool


def select_jobs(
    items: Iterable[dict],
    key: TableKey,
    rules: tuple[Rule, ...],
    selection: Selection,
    state: str,
    ttl_attribute: str,
    template: AudioKeyTemplate | None,
    max_changes: int,
    tally,
    pending_job_ids: Container[str] = (),
    kept_keys=None,
    chunk_size: int | None = None,
) -> SelectionScan:
    """Plan every selected job, keep at most max_changes of them and the audio keys kept jobs reference.

    `template` is given only when audio is deleted; `tally` counts each selected job;
    `kept_keys` (a set by default) collects the kept jobs' audio keys; `chunk_size`, the most jobs
    the caller reads back at once, sizes the spool's heap.
    """
    spool = JobSpool(key, rules, cache=chunk_size)
    result = SelectionScan(Selected(spool), kept_keys=kept_keys if kept_keys is not None else set())
    cannot_match = _cannot_match(selection, key)
    for item in items:
        audio = template.key_for(item) if template is not None else None
        if cannot_match is not None and cannot_match(item):
            # Most of a table: kept, with no Job built for it (what the selection would find from its raw values).
            if pending_job_ids:
                job_id = key.item_id(item)
                if job_id in pending_job_ids:
                    result.seen_pending_jobs.add(job_id)
            if audio:
                result.kept_keys.add(audio)
            continue
        job = key.as_job(item, rules)
        if job.job_id in pending_job_ids:
            result.seen_pending_jobs.add(job.job_id)
        if not selection.matches(job):
            if audio:
                result.kept_keys.add(audio)
            continue
        group = group_of(job) if key.jobs_table else ITEM_GROUP
        tally.select(group)
        action, reason = plan_action(job, state, ttl_attribute)
        if action != "changed":
            tally.outcome(group, job.job_id, action, reason)
            if audio:
                result.kept_keys.add(audio)
            continue
        result.change_count += 1
        if result.change_count <= max_changes:
            result.changes.append(job, group, audio)
    return result


def _cannot_match(selection: Selection, key: TableKey):
    """A test of an item's raw values that is true only for items `selection.matches` would refuse, or None.

    Selection.matches reads the job inspect_job makes of an item; building it for every item read
    was most of the selection's CPU. The job's id and status are the item's own when they are text
    (a status that is not one of the known ones makes a malformed job, which a kind never selects),
    so an item whose id is not named or whose status no category or status asks for is refused here.
    Anything else (ages, job types, users, malformed items named by id) is left to Selection.matches.
    """
    if selection.wipe_all or not key.jobs_table:
        return None
    job_ids = selection.job_ids
    statuses = set(selection.statuses)
    if selection.categories:
        statuses.add("failed")
    kinds = bool(selection.categories or selection.statuses)
    if job_ids is None and not kinds:
        return None

    def cannot_match(item: dict) -> bool:
        if job_ids is not None:
            job_id = item.get(JOBS_HASH_KEY)
            if job_id.__class__ is str and job_id not in job_ids:
                return True
        if kinds:
            status = item.get("status")
            # A status that is not text: inspect_job makes the job malformed (status None), never of a kind.
            return status.__class__ is not str or status not in statuses
        return False

    return cannot_match
