"""Which items a cleanup run acts on, and how it reads them.

The selection options' argument spec (shared by every module that selects jobs),
the selection model (alternatives within an option, options narrowing each
other), the audio key template, the table's key schema (any table: jobs,
transcripts) and the read plan (a parallel Scan, or a Query per user on the
user index when that sees every job the run must see).
"""

from __future__ import annotations

import base64
import json
import string
from collections.abc import Container, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal

from ansible.module_utils.panzoto.classification import Rule
from ansible.module_utils.panzoto.jobs import JOB_STATUSES, Job, inspect_job
from ansible.module_utils.panzoto.options import OptionError
from ansible.module_utils.panzoto.scan import ScanStats, query_items, scan_items

STUCK_STATUSES = ("pending", "processing")
DELETABLE = "deletable"  # stands for every category whose rule allows deletion
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

# The options that say which table is read, how, and which of its jobs are selected: the same names,
# types and defaults in every module that selects jobs (processing_jobs_cleanup, processing_jobs_diagnose),
# so a selection means the same in each. Each module documents them in its DOCUMENTATION.
SELECTION_ARGUMENT_SPEC = dict(
    table=dict(type="str", default="panzoto-processing-jobs"),
    categories=dict(type="list", elements="str", default=[]),
    statuses=dict(type="list", elements="str", choices=list(JOB_STATUSES), default=[]),
    older_than=dict(type="str"),
    job_types=dict(type="list", elements="str"),
    user_ids=dict(type="list", elements="str"),
    job_ids=dict(type="list", elements="str"),
    stuck_after=dict(type="str", default="1h"),
    user_index=dict(type="str", default="user-jobs-index"),
    now=dict(type="str"),
    segments=dict(type="int", default=4),
)


# --------------------------------------------------------------------------- the selection


def expand_categories(categories: Iterable[str], rules: tuple[Rule, ...]) -> frozenset[str]:
    """The categories asked for, `deletable` replaced by the rules that allow deletion; unknown names refused."""
    wanted = set(categories)
    deletable = {rule.category for rule in rules if rule.deletable}
    known = {rule.category for rule in rules} | {DELETABLE}
    unknown = [name for name in categories if name not in known]
    if unknown:
        raise OptionError(f"unknown categories {', '.join(unknown)}: use one of {', '.join(sorted(known))}.")
    if DELETABLE in wanted:
        if not deletable:
            raise OptionError("categories contains 'deletable' but no classification rule is deletable.")
        wanted.discard(DELETABLE)
        wanted.update(deletable)
    return frozenset(wanted)


@dataclass(frozen=True)
class Selection:
    """Which jobs a run acts on: alternatives within an option, options narrowing each other."""

    now: datetime
    stuck_after: timedelta
    categories: frozenset[str] = frozenset()
    statuses: frozenset[str] = frozenset()
    older_than: timedelta | None = None
    job_types: frozenset[str] | None = None
    user_ids: frozenset[str] | None = None
    job_ids: frozenset[str] | None = None
    wipe_all: bool = False

    def is_stuck(self, job: Job) -> bool:
        age = job.age(self.now)
        return age is not None and age > self.stuck_after

    def _matches_kind(self, job: Job) -> bool:
        if not self.categories and not self.statuses:
            return True  # job_ids alone
        if job.status == "failed" and job.category in self.categories:
            return True
        if job.status in self.statuses:
            return job.status not in STUCK_STATUSES or self.is_stuck(job)
        return False

    def matches(self, job: Job) -> bool:
        if self.wipe_all:
            return True
        if self.job_ids is not None and job.job_id not in self.job_ids:
            return False
        if job.malformed:
            # Junk is only touched when named explicitly.
            return self.job_ids is not None and not self.categories and not self.statuses
        if not self._matches_kind(job):
            return False
        if self.older_than is not None:
            age = job.age(self.now)
            if age is None or age <= self.older_than:
                return False
        if self.job_types is not None and job.job_type not in self.job_types:
            return False
        return self.user_ids is None or job.user_id in self.user_ids


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


@dataclass
class Planned:
    """A selected job the run will change, with the group it is counted in and its audio key."""

    job: Job
    group: str
    audio_key: str | None


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
        values = {name: item.get(name) for name in TEMPLATE_FIELDS}
        if any(not isinstance(values[name], str) or not values[name] for name in self.fields):
            return None
        return self.text.format(**values)


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


@dataclass(frozen=True)
class ReadPlan:
    """How the selection is read: a parallel Scan of the table, or a Query per user on the user index."""

    method: str  # "scan" | "query" | "archive" (restore)
    index: str | None = None
    reason: str = ""

    def report(self) -> dict:
        return {"method": self.method, "index": self.index, "reason": self.reason}


def usable_user_index(description: dict, index: str) -> str | None:
    """Why the GSI `index` cannot replace the scan (None when it can).

    It must exist, be keyed by user_id, project ALL attributes and be active.
    """
    found = next((gsi for gsi in description.get("GlobalSecondaryIndexes", []) if gsi.get("IndexName") == index), None)
    if found is None:
        return f"the table has no index {index}"
    hash_key = next((k["AttributeName"] for k in found.get("KeySchema", []) if k["KeyType"] == "HASH"), None)
    if hash_key != "user_id":
        return f"index {index} is keyed by {hash_key}, not user_id"
    if found.get("Projection", {}).get("ProjectionType") != "ALL":
        # Jobs are archived whole before they change: a partial projection would lose attributes.
        return f"index {index} does not project ALL attributes"
    if found.get("IndexStatus", "ACTIVE") != "ACTIVE":
        return f"index {index} is {found['IndexStatus']}"
    return None


def read_plan(
    state: str,
    user_ids: frozenset[str] | None,
    user_index: str,
    delete_audio: bool,
    template: AudioKeyTemplate,
    description: dict,
) -> ReadPlan:
    """Query the user index when the selection is narrowed by user_ids and that reads everything the run must see.

    With delete_audio, kept jobs that reference a deleted job's audio must all be
    seen; only a key template containing {user_id} guarantees they belong to the
    same users, otherwise every job is read.
    """
    if state == "restored":
        return ReadPlan("archive", reason="restore reads the archive, not the table")
    if user_ids is None:
        return ReadPlan("scan")
    if not user_index:
        return ReadPlan("scan", reason="user_index is empty")
    if delete_audio and not template.has_user:
        return ReadPlan(
            "scan",
            reason="audio_key_template has no {user_id}: other users' jobs may reference the same audio, "
            "so every job is read",
        )
    unusable = usable_user_index(description, user_index)
    if unusable:
        return ReadPlan("scan", reason=f"{unusable}: every job is read")
    return ReadPlan("query", user_index, f"user_ids narrow the selection: Query on {user_index}")


def read_items(
    dynamodb, table: str, plan: ReadPlan, user_ids: Iterable[str] | None, segments: int, stats: ScanStats
) -> Iterator[dict]:
    """The items the plan reads, streamed."""
    if plan.method == "query":
        return query_items(dynamodb, table, plan.index, "user_id", sorted(user_ids or ()), None, segments, None, stats)
    return scan_items(dynamodb, table, None, segments, None, stats)


# --------------------------------------------------------------------------- one streamed pass


@dataclass
class SelectionScan:
    """What one pass over the items found: the jobs to change (at most max_changes) and what audio they share."""

    changes: list[Planned] = field(default_factory=list)
    change_count: int = 0
    # Audio of jobs this run keeps: anything with add() and `in`; the module passes a
    # KeptKeys (cleanup/keyset), whose size does not grow with the table past its cap.
    kept_keys: object = field(default_factory=set)
    seen_pending_jobs: set[str] = field(default_factory=set)  # earlier runs' jobs the table still holds


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
) -> SelectionScan:
    """Plan every selected job, keep at most max_changes of them and the audio keys kept jobs reference.

    `template` is given only when audio is deleted; `tally` counts each selected job;
    `kept_keys` (a set by default) collects the kept jobs' audio keys.
    """
    result = SelectionScan(kept_keys=kept_keys if kept_keys is not None else set())
    for item in items:
        job = key.as_job(item, rules)
        audio = template.key_for(item) if template is not None else None
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
            result.changes.append(Planned(job, group, audio))
    return result
