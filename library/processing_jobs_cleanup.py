#!/usr/bin/python
"""Ansible module: delete, requeue, expire or restore Panzoto processing jobs, losing nothing."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: processing_jobs_cleanup
short_description: Safely delete, requeue, expire or restore Panzoto processing jobs and their S3 audio
description:
  - Replaces the ops guide's C(smart_cleanup_jobs) and C(cleanup_processing_jobs) scripts with a module that makes losing data hard.
  - Selects jobs explicitly, by error category, status (pending and processing jobs only when stuck longer than O(stuck_after)),
    age, job type, user and job id. Options of different kinds narrow each other; values of one option are alternatives.
    No combination selects the whole table by accident; wiping it needs O(wipe_all) and O(confirm).
  - Streams the table once (parallel scan segments) and keeps only the selected jobs (at most O(max_changes)) and, when
    O(delete_audio) is set, the S3 keys referenced by the jobs it keeps.
  - When O(user_ids) narrows the selection, reads only those users' jobs with a C(Query) per user on the GSI O(user_index)
    (the guide's procedure 3) instead of scanning the table. With O(delete_audio) this is done only when
    O(audio_key_template) contains C({user_id}), because then no other user's job can reference the same object;
    otherwise, or when the index is missing, not keyed by C(user_id) or not projecting C(ALL), the whole table is scanned
    (result C(read) says which and why).
  - Works on any table for O(wipe_all), O(job_ids) and O(state=restored); the key (hash and optional range key) is read
    with C(DescribeTable), so the guide's optional transcripts wipe (procedure 2, step 2) is the same module run on
    C(panzoto-transcripts) with O(confirm=panzoto-transcripts). The other selections, O(delete_audio) and the
    C(requeued)/C(expiring) states need a jobs table (keyed by C(job_id) alone) and fail with one line elsewhere.
  - Writes every selected job, whole, to a JSON Lines archive on the control node (and optionally to S3) and fsyncs it before
    changing that job. O(state=restored) puts archived jobs back exactly.
  - Every delete, requeue or expiry is a conditional write on the job's C(status) and C(error_message) being what was selected;
    a job that changed in between is skipped and reported, never changed. BatchWriteItem is not used because it cannot be
    conditional; instead single-item conditional writes run in parallel, at most O(parallel) at a time, which costs the same
    write capacity and gives a result per job.
  - S3 audio is deleted only after its jobs were deleted, in DeleteObjects batches of up to 1,000 keys, retrying keys that
    failed with a retryable error; an object still referenced by a job that is kept (not selected, skipped or failed) is never deleted.
  - A run that is interrupted or partly fails reports exactly what it did; running it again with the same O(archive_path)
    finishes the rest, including audio of jobs deleted by the interrupted run. An identical second run changes nothing.
  - Check mode is the dry run. It returns what would be changed (counts per category, job ids, S3 keys) and a diff,
    and sends no write request.
version_added: "1.0.0"
author: panzoto-ops maintainers
options:
  state:
    description:
      - C(absent) deletes the selected jobs (and their audio with O(delete_audio)).
      - C(requeued) sets them back to C(pending) with C(retry_count=0), removes C(error_message) and C(completed_at), and records
        C(requeued_at), C(requeue_reason), C(requeue_count) and the previous message as C(last_error_message).
        Completed jobs and malformed items are not requeued (reported as skipped); clean pending jobs are left unchanged.
      - C(expiring) sets O(ttl_attribute) to now plus O(expire_after) (epoch seconds) so DynamoDB's TTL deletes them later;
        jobs that already carry the attribute are left unchanged.
      - C(restored) puts jobs from O(archive_path) (or O(archive_s3_prefix)) back, only where the table has no item with that id,
        and copies archived audio back where the original object is missing. It never overwrites.
    type: str
    choices: [absent, requeued, expiring, restored]
    default: absent
  table:
    description:
      - Name of the processing-jobs table, or of another table for O(wipe_all), O(job_ids) and O(state=restored)
        (for example C(panzoto-transcripts)).
    type: str
    default: panzoto-processing-jobs
  categories:
    description:
      - Select failed jobs in these error categories (see O(classification_rules)).
      - C(deletable) stands for every category whose rule says cleanup may delete it (C(legacy_encryption), C(decryption_error) by default).
      - To select every failed job, use O(statuses=[failed]).
    type: list
    elements: str
    default: []
  statuses:
    description:
      - Select jobs in these statuses. C(pending) and C(processing) jobs are selected only when stuck, that is created more than
        O(stuck_after) before O(now).
      - Combined with O(categories) as alternatives (a job matching either is selected).
    type: list
    elements: str
    choices: [pending, processing, completed, failed]
    default: []
  older_than:
    description: Narrow the selection to jobs created more than this long before O(now) (strictly), e.g. C(7d).
    type: str
  job_types:
    description: Narrow the selection to these job types.
    type: list
    elements: str
  user_ids:
    description:
      - Narrow the selection to jobs of these users. Their jobs are read through O(user_index) when it can be used.
    type: list
    elements: str
  user_index:
    description:
      - GSI keyed by C(user_id) (projection C(ALL)) used to read only the jobs of O(user_ids) with C(Query) instead of a
        full C(Scan). Empty disables it. With O(delete_audio) it is used only when O(audio_key_template) contains
        C({user_id}); audio left by an interrupted earlier run is then finished only for these users.
    type: str
    default: user-jobs-index
  job_ids:
    description:
      - Select these jobs. Alone, it selects them whatever their status (malformed items included);
        with O(categories) or O(statuses) it narrows those.
      - On a table that does not hold jobs, the values of its hash key (or C(["hash", "range"]) as JSON with a range key).
      - With O(state=restored), restores only these.
    type: list
    elements: str
  wipe_all:
    description:
      - Select every item of the table (the guide's procedure 2). Needs O(confirm) set to the table's name, O(state=absent),
        and no other selection option. O(max_changes) still applies.
    type: bool
    default: false
  confirm:
    description: The table's name, to confirm O(wipe_all).
    type: str
  stuck_after:
    description: How long a pending or processing job may wait before it counts as stuck (C(90s), C(30m), C(1h), C(7d) or seconds).
    type: str
    default: 1h
  now:
    description: The reference time as ISO-8601, for reproducible selections. Defaults to the current time.
    type: str
  classification_rules:
    description: Rules added to or overriding the default error categories, exactly as for M(processing_jobs_audit).
    type: list
    elements: dict
    default: []
  max_changes:
    description:
      - Refuse, before touching anything, when more than this many jobs would change. Raise it deliberately for big cleanups.
    type: int
    default: 1000
  delete_audio:
    description: With O(state=absent), also delete each deleted job's S3 audio object, unless a kept job still references it.
    type: bool
    default: false
  bucket:
    description: S3 bucket of the audio objects (and of the S3 archive copies).
    type: str
    default: panzoto
  audio_key_template:
    description: S3 key of a job's audio; C({user_id}), C({audio_file_id}) and C({job_id}) are replaced from the job.
    type: str
    default: "audio_upload/{user_id}/{audio_file_id}.3gp_encrypted"
  archive_audio_prefix:
    description:
      - With O(delete_audio), copy each object to this prefix of O(bucket) (followed by its original key) before deleting it.
      - O(state=restored) copies such archived audio back when the original is missing.
    type: str
  archive_path:
    description:
      - JSON Lines archive on the control node. Records are appended; keep one file per table and reuse it, so a re-run
        finishes what an interrupted run left. Required unless O(state=restored) reads O(archive_s3_prefix).
      - Written with mode 0600. Each line is a record with the whole item in DynamoDB JSON (types preserved).
    type: path
  archive_s3_prefix:
    description:
      - Also put each batch of archive records to S3 under this prefix of O(bucket) (C(<prefix><run_id>/<table>-<batch>.jsonl))
        before changing it. O(state=restored) reads every archive object under the prefix when O(archive_path) is not given.
    type: str
  ttl_attribute:
    description: The table's TTL attribute, for O(state=expiring).
    type: str
    default: expires_at
  expire_after:
    description: For O(state=expiring), how long after O(now) the jobs expire.
    type: str
    default: 7d
  reason:
    description: For O(state=requeued), why the jobs are requeued (stored as C(requeue_reason)). Defaults to a text naming the category.
    type: str
  segments:
    description: Parallel scan segments.
    type: int
    default: 4
  parallel:
    description: Conditional writes (and audio copies) in flight at once.
    type: int
    default: 8
  list_limit:
    description: At most this many job ids, skipped jobs, failures and S3 keys are listed per list in the result (counts are always exact).
    type: int
    default: 100
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
extends_documentation_fragment:
  - panzoto_aws
notes:
  - Needs C(dynamodb:DescribeTable), C(dynamodb:Scan), C(dynamodb:Query) (on the user index), C(dynamodb:DeleteItem),
    C(dynamodb:UpdateItem) (requeue, expire),
    C(dynamodb:PutItem) and C(dynamodb:GetItem) (restore), C(dynamodb:DescribeTimeToLive) (expire), and with audio
    C(s3:DeleteObject), C(s3:GetObject)/C(s3:PutObject) (archive copies), C(s3:ListBucket) (S3 archive restore).
  - A job created after the scan that references an audio object being deleted is not seen; pause uploads for big audio cleanups.
  - Malformed items (see M(processing_jobs_audit)) are selected only by O(job_ids) alone or by O(wipe_all).
  - Reads through O(user_index) are eventually consistent, like the scan's; a job that changed since is skipped by the
    conditional write, and the item DynamoDB deleted is archived when it differs from the one read.
"""

EXAMPLES = r"""
- name: Dry run of the guide's procedure 1 (legacy encryption jobs and their audio)
  processing_jobs_cleanup:
    categories: [legacy_encryption]
    delete_audio: true
    archive_path: archives/panzoto-processing-jobs.jsonl
  check_mode: true
  diff: true
  register: preview

- name: Delete failed jobs older than 7 days (the guide's future improvement), keeping an S3 copy of the archive
  processing_jobs_cleanup:
    statuses: [failed]
    older_than: 7d
    archive_path: archives/panzoto-processing-jobs.jsonl
    archive_s3_prefix: ops-archive/jobs/

- name: Requeue timeouts and max-retries jobs after a fix
  processing_jobs_cleanup:
    state: requeued
    categories: [timeout, max_retries]
    reason: ffmpeg repaired on 2025-10-20
    archive_path: archives/panzoto-processing-jobs.jsonl

- name: Let stuck pending jobs expire in a day through DynamoDB TTL
  processing_jobs_cleanup:
    state: expiring
    statuses: [pending]
    stuck_after: 1h
    expire_after: 1d
    archive_path: archives/panzoto-processing-jobs.jsonl

- name: Put back what a cleanup deleted
  processing_jobs_cleanup:
    state: restored
    archive_path: archives/panzoto-processing-jobs.jsonl

- name: Wipe a development table (the guide's procedure 2)
  processing_jobs_cleanup:
    table: panzoto-processing-jobs-dev
    wipe_all: true
    confirm: panzoto-processing-jobs-dev
    max_changes: 100000
    archive_path: archives/panzoto-processing-jobs-dev.jsonl

- name: And its transcripts (procedure 2, step 2); the key is read from the table
  processing_jobs_cleanup:
    table: panzoto-transcripts-dev
    wipe_all: true
    confirm: panzoto-transcripts-dev
    max_changes: 100000
    archive_path: archives/panzoto-transcripts-dev.jsonl

- name: Delete one user's failed jobs and their audio, reading them through user-jobs-index (procedure 3)
  processing_jobs_cleanup:
    statuses: [failed]
    user_ids: [0f8e0c1e-user-uuid]
    delete_audio: true
    archive_path: archives/panzoto-processing-jobs.jsonl
"""

RETURN = r"""
state:
  description: The action taken (or, in check mode, that would be taken).
  returned: always
  type: str
  sample: absent
table:
  description: The table.
  returned: always
  type: str
  sample: panzoto-processing-jobs
now:
  description: The reference time used for ages (UTC).
  returned: always
  type: str
selected:
  description: Items the selection matched (for restore, archived jobs matched).
  returned: always
  type: int
  sample: 34
counts:
  description:
    - Jobs per outcome. C(changed) is deleted, requeued, expired or restored (or would be, in check mode); C(unchanged) needed nothing;
      C(skipped) changed since selection or cannot take the action; C(failed) got an AWS error; C(not_attempted) were left by an interrupted run.
  returned: always
  type: dict
  sample: {changed: 34, unchanged: 0, skipped: 0, failed: 0, not_attempted: 0}
by_category:
  description:
    - The same counts per error category (or status, or C(malformed), for jobs that are not failed).
    - Items of a table that does not hold jobs are counted under C(item).
  returned: always
  type: dict
  sample: {legacy_encryption: {selected: 34, changed: 34, unchanged: 0, skipped: 0, failed: 0, not_attempted: 0}}
job_ids:
  description: Ids of the jobs changed (or that would be), sorted, at most O(list_limit). The archive has all of them.
  returned: always
  type: list
  elements: str
skipped:
  description: Jobs skipped, each with job_id, category and reason, at most O(list_limit).
  returned: always
  type: list
  elements: dict
  sample: [{job_id: 0b7c..., category: legacy_encryption, reason: "changed since selection: status is now pending"}]
failures:
  description: Jobs and S3 keys that failed, each with job_id or key and error, at most O(list_limit).
  returned: always
  type: list
  elements: dict
audio:
  description: S3 audio handled with O(delete_audio) (or restored with O(state=restored)).
  returned: always
  type: dict
  contains:
    deleted: {description: Objects deleted (or that would be)., type: int}
    deleted_keys: {description: Their keys, sorted, at most O(list_limit)., type: list, elements: str}
    kept_referenced: {description: Keys not deleted because a kept job references them., type: list, elements: str}
    archived: {description: Objects copied to O(archive_audio_prefix)., type: int}
    missing: {description: Keys that did not exist when archiving them., type: list, elements: str}
    failed: {description: Keys that could not be deleted, with S3's error code., type: list, elements: dict}
    from_earlier_runs: {description: Keys of jobs deleted by an earlier, interrupted run, finished now., type: int}
    restored: {description: Objects copied back from the archive prefix (restore)., type: int}
    delete_requests: {description: DeleteObjects requests sent., type: int}
deleted_objects:
  description: Every S3 key deleted (or that would be), sorted.
  returned: always
  type: list
  elements: str
archive:
  description: Where the archive is.
  returned: always
  type: dict
  contains:
    path: {description: The control-node archive file., type: str}
    s3_prefix: {description: The S3 URI prefix of this run's archive objects, or null., type: str}
    run_id: {description: This run's id, stored in every record., type: str}
    records_written: {description: Records appended by this run., type: int}
    unreadable_lines: {description: Archive lines skipped while reading (a torn last line)., type: int}
key:
  description: The table's key as DescribeTable gave it, and whether the table holds jobs (keyed by job_id alone).
  returned: always
  type: dict
  sample: {hash: transcript_id, range: null, jobs_table: false}
read:
  description: How the selection was read, C(scan) or C(query) (with the index), and why; C(archive) for O(state=restored).
  returned: always
  type: dict
  sample: {method: query, index: user-jobs-index, reason: "user_ids narrow the selection: Query on user-jobs-index"}
requests:
  description: What the run cost, in HTTP requests per API operation (retries included) and scan pages.
  returned: always
  type: dict
  sample: {pages: 1, http_requests: 38, by_operation: {DeleteItem: 34, DeleteObjects: 1, DescribeTable: 1, Scan: 1}}
"""

import base64
import json
import secrets
import string
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.panzoto_archive import (
    ARCHIVE_FORMAT,
    AUDIO_RECORD,
    JOB_RECORD,
    RESULT_RECORD,
    ArchivedJob,
    ArchiveWriter,
    ReadStats,
    encode_records,
    item_to_json,
    json_to_item,
    json_to_wire,
    latest_jobs,
    parse_lines,
    read_archive,
    unresolved_audio_owners,
    wire_to_json,
)
from ansible.module_utils.panzoto_aws import (
    AWS_ARGUMENT_SPEC,
    RETRYABLE_ERROR_CODES,
    aws_client,
    aws_errors,
    describe_aws_error,
    error_code,
    require_boto3,
    validate_aws_params,
)
from ansible.module_utils.panzoto_batches import Abort, chunks, delete_objects, run_bounded
from ansible.module_utils.panzoto_job_classification import Rule, RuleError, build_rules
from ansible.module_utils.panzoto_jobs import JOB_STATUSES, Job, inspect_job, isoformat, parse_duration, parse_now
from ansible.module_utils.panzoto_scan import RequestCounter, ScanStats, query_items, scan_items

try:
    from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
except ImportError:  # reported by require_boto3()
    TypeDeserializer = TypeSerializer = None

STATES = ("absent", "requeued", "expiring", "restored")
ACTION_VERBS = {"absent": "delete", "requeued": "requeue", "expiring": "expire", "restored": "restore"}
STUCK_STATUSES = ("pending", "processing")
# Jobs archived and changed per step: one archive fsync (and S3 put) per chunk
# bounds both the cost of durability and what a crash can leave half-done.
CHUNK_SIZE = 100
TEMPLATE_FIELDS = ("user_id", "audio_file_id", "job_id")
OUTCOMES = ("changed", "unchanged", "skipped", "failed", "not_attempted")
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


class OptionError(ValueError):
    """A bad option or combination; the message is one line."""


# --------------------------------------------------------------------------- selection


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


def audio_key(item: dict, template: str) -> str | None:
    values = {name: item.get(name) for name in TEMPLATE_FIELDS}
    needed = [name for _, name, _, _ in string.Formatter().parse(template) if name]
    if any(not isinstance(values[name], str) or not values[name] for name in needed):
        return None
    return template.format(**values)


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


# --------------------------------------------------------------------------- results


@dataclass
class Tally:
    """Counts per group and outcome, with capped lists; exact whatever the size."""

    list_limit: int
    by_group: dict[str, Counter] = field(default_factory=dict)
    changed_ids: list[str] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)

    def select(self, group: str) -> None:
        self.by_group.setdefault(group, Counter(dict.fromkeys(("selected", *OUTCOMES), 0)))["selected"] += 1

    def outcome(self, group: str, job_id: str, outcome: str, reason: str | None = None) -> None:
        self.by_group[group][outcome] += 1
        if outcome == "changed":
            self.changed_ids.append(job_id)  # bounded by max_changes
        elif outcome == "skipped" and len(self.skipped) < self.list_limit:
            self.skipped.append({"job_id": job_id, "category": group, "reason": reason})
        elif outcome == "failed" and len(self.failures) < self.list_limit:
            self.failures.append({"job_id": job_id, "category": group, "error": reason})

    def totals(self) -> dict[str, int]:
        return {name: sum(counts[name] for counts in self.by_group.values()) for name in OUTCOMES}

    def report(self) -> dict:
        return {
            "selected": sum(counts["selected"] for counts in self.by_group.values()),
            "counts": self.totals(),
            "by_category": {group: dict(counts) for group, counts in sorted(self.by_group.items())},
            "job_ids": sorted(self.changed_ids)[: self.list_limit],
            "skipped": self.skipped,
            "failures": self.failures,
        }


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
            "archived": self.archived,
            "missing": sorted(self.missing)[:limit],
            "failed": self.failed[:limit],
            "from_earlier_runs": self.from_earlier_runs,
            "restored": self.restored,
            "delete_requests": self.delete_requests,
        }


# --------------------------------------------------------------------------- options


def validate_options(params: dict, rule_categories: list[str], deletable: list[str]) -> None:
    """Raise OptionError (one line) for options that cannot work together. Nothing has been touched yet."""
    state = params["state"]
    narrowing = [name for name in ("older_than", "job_types", "user_ids", "job_ids") if params[name] is not None]
    if params["wipe_all"]:
        if state != "absent":
            raise OptionError("wipe_all only works with state=absent.")
        others = [name for name in ("categories", "statuses") if params[name]] + narrowing
        if others:
            raise OptionError(f"wipe_all selects every item; do not combine it with {', '.join(others)}.")
        if params["confirm"] != params["table"]:
            raise OptionError(
                f"wipe_all deletes every item of {params['table']}: set confirm to the table's name to confirm it."
            )
    elif params["confirm"] is not None:
        raise OptionError("confirm is only used with wipe_all.")
    elif state != "restored" and not (params["categories"] or params["statuses"] or params["job_ids"]):
        raise OptionError(
            "Nothing selected: give categories, statuses or job_ids (older_than, job_types and user_ids only narrow "
            "a selection); wiping the whole table needs wipe_all=true and confirm=<table name>."
        )
    if state == "restored" and params["statuses"]:
        raise OptionError("statuses does not apply to state=restored; filter with job_ids, user_ids or categories.")
    known = set(rule_categories) | {"deletable"}
    unknown = [name for name in params["categories"] if name not in known]
    if unknown:
        raise OptionError(f"unknown categories {', '.join(unknown)}: use one of {', '.join(sorted(known))}.")
    if "deletable" in params["categories"] and not deletable:
        raise OptionError("categories contains 'deletable' but no classification rule is deletable.")
    for name in ("job_types", "user_ids", "job_ids"):
        if params[name] is not None and not params[name]:
            raise OptionError(f"{name} is an empty list: it would select nothing; leave it out instead.")
    if params["delete_audio"] and state != "absent":
        raise OptionError("delete_audio only works with state=absent.")
    if params["archive_audio_prefix"] and not (params["delete_audio"] or state == "restored"):
        raise OptionError("archive_audio_prefix needs delete_audio=true (or state=restored).")
    if state == "restored":
        if not params["archive_path"] and not params["archive_s3_prefix"]:
            raise OptionError("state=restored needs archive_path or archive_s3_prefix to read the archive from.")
    elif not params["archive_path"]:
        raise OptionError(f"archive_path is required for state={state}: jobs are archived before they are changed.")
    _validate_template(params["audio_key_template"])
    for name, low, high in (
        ("max_changes", 1, None),
        ("segments", 1, 64),
        ("parallel", 1, 64),
        ("list_limit", 0, None),
    ):
        value = params[name]
        if value < low or (high is not None and value > high):
            bounds = f"between {low} and {high}" if high else f"{low} or more"
            raise OptionError(f"{name} must be {bounds}, got {value}.")


def _validate_template(template: str) -> None:
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise OptionError(f"audio_key_template {template!r} is not a valid template: {exc}.") from None
    bad = [name for name in fields if name not in TEMPLATE_FIELDS]
    if bad or not fields:
        raise OptionError(
            f"audio_key_template {template!r} must use only {{user_id}}, {{audio_file_id}} and {{job_id}}, at least one."
        )


def build_selection(params: dict, now: datetime, stuck_after: timedelta, deletable: list[str]) -> Selection:
    categories = set(params["categories"])
    if "deletable" in categories:
        categories.discard("deletable")
        categories.update(deletable)

    def optional(name: str) -> frozenset[str] | None:
        return frozenset(params[name]) if params[name] is not None else None

    return Selection(
        now=now,
        stuck_after=stuck_after,
        categories=frozenset(categories),
        statuses=frozenset(params["statuses"]),
        older_than=parse_duration(params["older_than"]) if params["older_than"] is not None else None,
        job_types=optional("job_types"),
        user_ids=optional("user_ids"),
        job_ids=optional("job_ids"),
        wipe_all=params["wipe_all"],
    )


# --------------------------------------------------------------------------- AWS writes


@dataclass
class Context:
    """Everything a run needs, passed explicitly (no module-level state)."""

    module: AnsibleModule
    dynamodb: object
    table: str
    hash_key: str
    state: str
    now: datetime
    run_id: str
    abort: Abort
    s3: object = None
    range_key: str | None = None

    @property
    def jobs_table(self) -> bool:
        return self.hash_key == JOBS_HASH_KEY and self.range_key is None

    def key_names(self) -> tuple[str, ...]:
        return (self.hash_key, self.range_key) if self.range_key else (self.hash_key,)


@dataclass
class Planned:
    job: Job
    group: str
    audio_key: str | None


def _serialize(value: object) -> dict:
    return TypeSerializer().serialize(value)


def unchanged_condition(ctx: Context, item: dict) -> tuple[list[str], dict, dict]:
    """Condition parts (with names and values) true only while status and error_message are as selected."""
    names = {"#k": ctx.hash_key}
    values: dict = {}
    parts = ["attribute_exists(#k)"]
    for placeholder, attribute, value_name in (("#st", "status", ":st"), ("#er", "error_message", ":er")):
        names[placeholder] = attribute
        if attribute in item:
            parts.append(f"{placeholder} = {value_name}")
            values[value_name] = _serialize(item[attribute])
        else:
            parts.append(f"attribute_not_exists({placeholder})")
    return parts, names, values


def describe_change(selected: dict, current: dict | None) -> str:
    """Why a conditional write failed, from the item DynamoDB returned with the failure."""
    if not current:
        return "changed since selection: the job no longer exists"
    now_item = {name: TypeDeserializer().deserialize(value) for name, value in current.items()}
    changes = [
        f"{name} is now {now_item.get(name)!r}"
        for name in ("status", "error_message")
        if selected.get(name) != now_item.get(name)
    ]
    return "changed since selection: " + ("; ".join(changes) or "status or error_message changed")


def _key(ctx: Context, job: Job) -> dict:
    return {name: _serialize(job.item[name]) for name in ctx.key_names()}


def _write_request(ctx: Context, planned: Planned, reason_text: str, params: dict) -> dict:
    """The conditional DeleteItem/UpdateItem arguments for one job."""
    job = planned.job
    parts, names, values = unchanged_condition(ctx, job.item)
    request = {"TableName": ctx.table, "Key": _key(ctx, job), "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}
    if ctx.state == "absent":
        request["ReturnValues"] = "ALL_OLD"
    elif ctx.state == "requeued":
        names.update({"#rc": "retry_count", "#ra": "requeued_at", "#rr": "requeue_reason", "#rn": "requeue_count"})
        values.update(
            {
                ":pending": {"S": "pending"},
                ":zero": {"N": "0"},
                ":one": {"N": "1"},
                ":now": {"S": isoformat(datetime.now(UTC))},
                ":reason": {"S": reason_text},
            }
        )
        sets = [
            "#st = :pending",
            "#rc = :zero",
            "#ra = :now",
            "#rr = :reason",
            "#rn = if_not_exists(#rn, :zero) + :one",
        ]
        removes = []
        if "error_message" in job.item:
            names["#le"] = "last_error_message"
            values[":le"] = _serialize(job.item["error_message"])
            sets.append("#le = :le")
            removes.append("#er")
        if "completed_at" in job.item:
            names["#ca"] = "completed_at"
            removes.append("#ca")
        request["UpdateExpression"] = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
    else:  # expiring
        names["#ttl"] = params["ttl_attribute"]
        expires = ctx.now + parse_duration(params["expire_after"])
        values[":ttl"] = {"N": str(int(expires.timestamp()))}
        parts.append("attribute_not_exists(#ttl)")
        request["UpdateExpression"] = "SET #ttl = :ttl"
    request["ConditionExpression"] = " AND ".join(parts)
    request["ExpressionAttributeNames"] = names
    if values:
        request["ExpressionAttributeValues"] = values
    return request


def apply_one(ctx: Context, planned: Planned, reason_text: str, params: dict) -> tuple[str, str | None, dict | None]:
    """(outcome, reason, item DynamoDB returned when it differs from the archived one) for one conditional write."""
    if ctx.abort.is_set:
        return "not_attempted", ctx.abort.reason, None
    request = _write_request(ctx, planned, reason_text, params)
    try:
        if ctx.state == "absent":
            response = ctx.dynamodb.delete_item(**request)
            # What DynamoDB deleted may differ from what was archived in attributes
            # the condition does not cover (retry_count, ...): keep it too.
            old = wire_to_json(response.get("Attributes") or {})
            return "changed", None, (old if old and old != item_to_json(planned.job.item) else None)
        ctx.dynamodb.update_item(**request)
        return "changed", None, None
    except aws_errors() as exc:
        code = error_code(exc)
        if code == "ConditionalCheckFailedException":
            return "skipped", describe_change(planned.job.item, exc.response.get("Item")), None
        message = describe_aws_error(exc, f"change job {planned.job.job_id}", params.get("endpoint_url"))
        if code not in RETRYABLE_ERROR_CODES:
            # The endpoint is gone or refuses us: stop starting new work.
            ctx.abort.set(message)
        return "failed", message, None


def job_record(ctx: Context, planned: Planned, params: dict, audio_archive_key: str | None) -> dict:
    return {
        "format": ARCHIVE_FORMAT,
        "record": JOB_RECORD,
        "run_id": ctx.run_id,
        "at": isoformat(datetime.now(UTC)),
        "table": ctx.table,
        "action": ctx.state,
        "job_id": planned.job.job_id,
        "category": planned.group,
        "audio_key": planned.audio_key,
        "audio_archive_key": audio_archive_key,
        "delete_audio": bool(params["delete_audio"]),
        "item": item_to_json(planned.job.item),
    }


def result_record(ctx: Context, job_id: str, outcome: str, reason: str | None, item: dict | None) -> dict:
    record = {
        "format": ARCHIVE_FORMAT,
        "record": RESULT_RECORD,
        "run_id": ctx.run_id,
        "at": isoformat(datetime.now(UTC)),
        "table": ctx.table,
        "action": ctx.state,
        "job_id": job_id,
        "outcome": "deleted" if outcome == "changed" and ctx.state == "absent" else outcome,
        "reason": reason,
    }
    if item is not None:
        record["item"] = item  # what DynamoDB deleted, when it differs from the selected item
    return record


def archive_audio_key(params: dict, key: str | None) -> str | None:
    prefix = params["archive_audio_prefix"]
    return f"{prefix}{key}" if prefix and key else None


# --------------------------------------------------------------------------- reading the table


@dataclass(frozen=True)
class ReadPlan:
    """How the selection is read: a parallel Scan of the table, or a Query per user on the user index."""

    method: str  # "scan" | "query" | "archive" (restore)
    index: str | None = None
    reason: str = ""

    def report(self) -> dict:
        return {"method": self.method, "index": self.index, "reason": self.reason}


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


def item_id(ctx: Context, item: dict) -> str:
    """An item's id in reports and the archive: its hash key's value, or [hash, range] as JSON."""
    values = [key_text(item.get(name)) for name in ctx.key_names()]
    return values[0] if len(values) == 1 else json.dumps(values)


def usable_user_index(description: dict, index: str) -> str | None:
    """Why the GSI `index` cannot replace the scan (None when it can): it must exist, be keyed by user_id and project ALL."""
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


def template_has_user(template: str) -> bool:
    return "user_id" in {name for _, name, _, _ in string.Formatter().parse(template) if name}


def read_plan(params: dict, description: dict) -> ReadPlan:
    """Query the user index when the selection is narrowed by user_ids and that reads everything the run must see.

    With delete_audio, kept jobs that reference a deleted job's audio must all be
    seen; only a key template containing {user_id} guarantees they belong to the
    same users, otherwise every job is read.
    """
    if params["state"] == "restored":
        return ReadPlan("archive", reason="restore reads the archive, not the table")
    if params["user_ids"] is None:
        return ReadPlan("scan")
    index = params["user_index"]
    if not index:
        return ReadPlan("scan", reason="user_index is empty")
    if params["delete_audio"] and not template_has_user(params["audio_key_template"]):
        return ReadPlan(
            "scan",
            reason="audio_key_template has no {user_id}: other users' jobs may reference the same audio, "
            "so every job is read",
        )
    unusable = usable_user_index(description, index)
    if unusable:
        return ReadPlan("scan", reason=f"{unusable}: every job is read")
    return ReadPlan("query", index, f"user_ids narrow the selection: Query on {index}")


def read_items(ctx: Context, params: dict, plan: ReadPlan, stats: ScanStats) -> Iterator[dict]:
    if plan.method == "query":
        return query_items(
            ctx.dynamodb, ctx.table, plan.index, "user_id", sorted(params["user_ids"]), None, params["segments"],
            None, stats,
        )  # fmt: skip
    return scan_items(ctx.dynamodb, ctx.table, None, params["segments"], None, stats)


def as_job(ctx: Context, item: dict, rules: tuple[Rule, ...]) -> Job:
    """A jobs-table item read as a job; any other table's item as a plain item with its key as id."""
    if ctx.jobs_table:
        job = inspect_job(item, rules)
        return job if job.job_id is not None else replace(job, job_id=item_id(ctx, item))
    return Job(
        item=item,
        job_id=item_id(ctx, item),
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


def jobs_only_error(ctx: Context, params: dict) -> str | None:
    """One line when options that need jobs are used on a table that does not hold them."""
    if ctx.jobs_table:
        return None
    used = [name for name in JOBS_ONLY_OPTIONS if params[name] not in (None, [], False)]
    if ctx.state in ("requeued", "expiring"):
        used.insert(0, f"state={ctx.state}")
    if not used:
        return None
    keys = " and ".join(ctx.key_names())
    return (
        f"{', '.join(used)}: only for a jobs table (key job_id), and {ctx.table} is keyed by {keys}; "
        f"use wipe_all (with confirm), job_ids (its key values) or state=restored."
    )


# --------------------------------------------------------------------------- delete / requeue / expire


@dataclass
class ScanResult:
    changes: list[Planned] = field(default_factory=list)
    change_count: int = 0
    kept_keys: set[str] = field(default_factory=set)
    seen_pending_jobs: set[str] = field(default_factory=set)


def select_jobs(
    ctx: Context,
    params: dict,
    selection: Selection,
    rules: tuple[Rule, ...],
    tally: Tally,
    pending_audio: dict[str, str],
    stats: ScanStats,
    plan: ReadPlan,
) -> ScanResult:
    """One streamed read: plan every selected job, keep at most max_changes + 1 of them and the keys kept jobs reference."""
    result = ScanResult()
    template = params["audio_key_template"]
    want_keys = params["delete_audio"]
    for item in read_items(ctx, params, plan, stats):
        job = as_job(ctx, item, rules)
        key = audio_key(item, template) if want_keys else None
        if job.job_id in pending_audio:
            result.seen_pending_jobs.add(job.job_id)
        if not selection.matches(job):
            if key:
                result.kept_keys.add(key)
            continue
        group = group_of(job) if ctx.jobs_table else ITEM_GROUP
        tally.select(group)
        action, reason = plan_action(job, ctx.state, params["ttl_attribute"])
        if action != "changed":
            tally.outcome(group, job.job_id, action, reason)
            if key:
                result.kept_keys.add(key)
            continue
        result.change_count += 1
        if result.change_count <= params["max_changes"]:
            result.changes.append(Planned(job, group, key))
    return result


def default_reason(planned: Planned) -> str:
    return f"requeued by panzoto-ops cleanup ({planned.group})"


def put_s3_archive(ctx: Context, params: dict, batch_number: int, records: list[dict]) -> str:
    key = f"{params['archive_s3_prefix']}{ctx.run_id}/{ctx.table}-{batch_number:05d}.jsonl"
    ctx.s3.put_object(Bucket=params["bucket"], Key=key, Body=encode_records(records))
    return key


def change_jobs(ctx: Context, params: dict, scan: ScanResult, tally: Tally, archive: ArchiveWriter) -> list[Planned]:
    """Archive then conditionally change each chunk; returns the jobs actually deleted/changed."""
    done: list[Planned] = []
    for batch_number, chunk in enumerate(chunks(scan.changes, CHUNK_SIZE)):
        if ctx.abort.is_set:
            for planned in chunk:
                tally.outcome(planned.group, planned.job.job_id, "not_attempted", ctx.abort.reason)
            continue
        records = [job_record(ctx, p, params, archive_audio_key(params, p.audio_key)) for p in chunk]
        try:
            if params["archive_s3_prefix"]:
                put_s3_archive(ctx, params, batch_number, records)
        except aws_errors() as exc:
            ctx.abort.set(describe_aws_error(exc, "write the S3 archive copy", params.get("endpoint_url")))
            for planned in chunk:
                tally.outcome(planned.group, planned.job.job_id, "not_attempted", ctx.abort.reason)
            continue
        archive.append(records)  # durable before any write below

        def apply(planned: Planned) -> tuple[str, str | None, dict | None]:
            reason_text = params["reason"] or default_reason(planned)
            return apply_one(ctx, planned, reason_text, params)

        outcomes = run_bounded(apply, chunk, params["parallel"])
        archive.append(
            result_record(ctx, planned.job.job_id, outcome, reason, item)
            for planned, (outcome, reason, item) in zip(chunk, outcomes, strict=True)
            if outcome != "not_attempted"
        )
        for planned, (outcome, reason, _item) in zip(chunk, outcomes, strict=True):
            tally.outcome(planned.group, planned.job.job_id, outcome, reason)
            if outcome == "changed":
                done.append(planned)
    return done


def audio_to_delete(
    deleted: list[Planned], all_changes: list[Planned], scan: ScanResult, pending_audio: dict
) -> tuple[list[str], list[str], int]:
    """(keys to delete, keys kept because a kept job references them, keys carried over from earlier runs)."""
    deleted_ids = {planned.job.job_id for planned in deleted}
    kept = set(scan.kept_keys)
    kept.update(p.audio_key for p in all_changes if p.audio_key and p.job.job_id not in deleted_ids)
    earlier = {key for job_id, key in pending_audio.items() if job_id not in scan.seen_pending_jobs}
    candidates = {p.audio_key for p in deleted if p.audio_key} | earlier
    return sorted(candidates - kept), sorted(candidates & kept), len(earlier - kept)


def copy_audio_to_archive(ctx: Context, params: dict, keys: list[str], report: AudioReport) -> list[str]:
    """Copy each object to the archive prefix; returns the keys safe to delete (copied)."""
    bucket = params["bucket"]

    def copy(key: str) -> tuple[str, str | None]:
        try:
            ctx.s3.copy_object(
                Bucket=bucket, Key=archive_audio_key(params, key), CopySource={"Bucket": bucket, "Key": key}
            )
            return "copied", None
        except aws_errors() as exc:
            if error_code(exc) in ("NoSuchKey", "404"):
                return "missing", None
            return "failed", describe_aws_error(exc, f"archive s3://{bucket}/{key}", params.get("endpoint_url"))

    safe = []
    for key, (outcome, error) in zip(keys, run_bounded(copy, keys, params["parallel"]), strict=True):
        if outcome == "copied":
            report.archived += 1
            safe.append(key)
        elif outcome == "missing":
            report.missing.append(key)
        else:
            report.failed.append({"key": key, "code": "ArchiveCopyFailed", "message": error})
    return safe


def remove_audio(ctx: Context, params: dict, keys: list[str], kept: list[str], archive, report: AudioReport) -> None:
    if params["archive_audio_prefix"]:
        keys = copy_audio_to_archive(ctx, params, keys, report)
    outcome = delete_objects(ctx.s3, params["bucket"], keys)
    report.delete_requests = outcome.requests
    report.deleted = outcome.deleted
    report.failed.extend(outcome.errors)
    if archive is not None:
        archive.append(
            [
                {
                    "format": ARCHIVE_FORMAT,
                    "record": AUDIO_RECORD,
                    "run_id": ctx.run_id,
                    "at": isoformat(datetime.now(UTC)),
                    "table": ctx.table,
                    "bucket": params["bucket"],
                    "deleted": sorted(outcome.deleted),
                    "kept": kept,
                    "missing": sorted(report.missing),
                }
            ]
        )


def load_pending_audio(params: dict, table: str, read_stats: ReadStats, plan: ReadPlan) -> dict[str, str]:
    """Audio of jobs deleted by earlier, interrupted runs, that this run can finish.

    A Query reads only the selected users' jobs, so only their leftovers are
    finished (their keys hold their user id); others wait for a run that reads them.
    """
    path = Path(params["archive_path"])
    if not params["delete_audio"] or not path.exists():
        return {}
    owners = unresolved_audio_owners(read_archive(path, read_stats), table)
    users = set(params["user_ids"] or ())
    return {job_id: key for job_id, (key, user) in owners.items() if plan.method == "scan" or user in users}


def ttl_warning(ctx: Context, ttl_attribute: str) -> str | None:
    description = ctx.dynamodb.describe_time_to_live(TableName=ctx.table).get("TimeToLiveDescription", {})
    if (
        description.get("TimeToLiveStatus") in ("ENABLED", "ENABLING")
        and description.get("AttributeName") == ttl_attribute
    ):
        return None
    return (
        f"TTL is not enabled on {ctx.table}.{ttl_attribute}: the jobs are marked but DynamoDB will not delete them "
        f"until you enable it (aws dynamodb update-time-to-live)."
    )


def diff_for(state: str, tally_report: dict, audio: list[str], limit: int) -> dict:
    """Before/after summaries: counts per category, ids and keys capped."""
    changed = {group: counts["changed"] for group, counts in tally_report["by_category"].items() if counts["changed"]}
    before = {"jobs": changed, "job_ids": tally_report["job_ids"]}
    after: dict = {"jobs": dict.fromkeys(changed, 0), "job_ids": []}
    if state == "absent":
        before["audio_objects"] = audio[:limit]
        after["audio_objects"] = []
    elif state == "requeued":
        after = {"jobs": {"pending": sum(changed.values())}, "job_ids": tally_report["job_ids"]}
    elif state == "expiring":
        after = {"jobs_expiring": changed, "job_ids": tally_report["job_ids"]}
    else:
        before = {"jobs": {}, "job_ids": []}
        after = {"jobs": changed, "job_ids": tally_report["job_ids"]}
    return {"before": before, "after": after}


def run_cleanup(
    ctx: Context,
    params: dict,
    selection: Selection,
    rules: tuple[Rule, ...],
    result: dict,
    stats: ScanStats,
    plan: ReadPlan,
) -> bool:
    """Delete, requeue or expire; fills `result`; returns whether everything succeeded."""
    module = ctx.module
    tally = Tally(params["list_limit"])
    read_stats = ReadStats()
    pending_audio = load_pending_audio(params, ctx.table, read_stats, plan)
    result["archive"]["unreadable_lines"] = read_stats.unreadable
    if ctx.state == "expiring":
        warning = ttl_warning(ctx, params["ttl_attribute"])
        if warning:
            module.warn(warning)
    scan = select_jobs(ctx, params, selection, rules, tally, pending_audio, stats, plan)
    if scan.change_count > params["max_changes"]:
        module.fail_json(
            msg=f"The selection would change {scan.change_count} {'jobs' if ctx.jobs_table else 'items'}, "
            f"more than max_changes={params['max_changes']}: "
            f"nothing was changed; narrow the selection or raise max_changes.",
            selected=scan.change_count,
        )
    audio_report = AudioReport()
    if module.check_mode:
        for planned in scan.changes:
            tally.outcome(planned.group, planned.job.job_id, "changed")
        keys, kept, earlier = audio_to_delete(scan.changes, scan.changes, scan, pending_audio)
        if ctx.state == "absent" and params["delete_audio"]:
            audio_report.deleted, audio_report.kept_referenced = keys, kept
            audio_report.from_earlier_runs = earlier
            audio_report.delete_requests = -(-len(keys) // 1000)
            audio_report.archived = len(keys) if params["archive_audio_prefix"] else 0
        success = True
    else:
        archive = ArchiveWriter(Path(params["archive_path"])).open() if scan.changes or pending_audio else None
        try:
            done = change_jobs(ctx, params, scan, tally, archive) if scan.changes else []
            keys, kept, earlier = audio_to_delete(done, scan.changes, scan, pending_audio)
            # With the endpoint gone, audio waits for the re-run (the archive says which).
            if params["delete_audio"] and (keys or kept) and not ctx.abort.is_set:
                audio_report.kept_referenced, audio_report.from_earlier_runs = kept, earlier
                remove_audio(ctx, params, keys, kept, archive, audio_report)
        finally:
            if archive is not None:
                result["archive"]["records_written"] = archive.records_written
                archive.close()
        success = not ctx.abort.is_set and not tally.totals()["failed"] and not audio_report.failed
    tally_report = tally.report()
    result.update(tally_report)
    result["audio"] = audio_report.report(params["list_limit"])
    result["deleted_objects"] = sorted(audio_report.deleted)
    result["changed"] = bool(tally_report["counts"]["changed"] or audio_report.deleted or audio_report.archived)
    if module._diff:
        result["diff"] = diff_for(ctx.state, tally_report, sorted(audio_report.deleted), params["list_limit"])
    return success


# --------------------------------------------------------------------------- restore


def read_archive_records(ctx: Context, params: dict, read_stats: ReadStats) -> Iterator[dict]:
    if params["archive_path"]:
        path = Path(params["archive_path"])
        if not path.exists():
            raise OptionError(f"archive_path {path} does not exist: nothing to restore from.")
        return read_archive(path, read_stats)
    return _s3_archive_records(ctx, params, read_stats)


def _s3_archive_records(ctx: Context, params: dict, read_stats: ReadStats) -> Iterator[dict]:
    paginator = ctx.s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=params["bucket"], Prefix=params["archive_s3_prefix"]):
        for entry in page.get("Contents", []):
            body = ctx.s3.get_object(Bucket=params["bucket"], Key=entry["Key"])["Body"].read().decode("utf-8")
            yield from parse_lines(body.splitlines(), read_stats)


def restore_selected(record: ArchivedJob, params: dict, categories: set[str]) -> bool:
    item = json_to_item(record.item)
    if params["job_ids"] is not None and record.job_id not in params["job_ids"]:
        return False
    if params["user_ids"] is not None and item.get("user_id") not in params["user_ids"]:
        return False
    return not categories or record.category in categories


def restore_one(ctx: Context, record: ArchivedJob, params: dict) -> tuple[str, str | None]:
    """Put one archived job back unless an item with its id exists; ("changed" | "unchanged" | "skipped" | "failed", reason)."""
    if ctx.abort.is_set:
        return "not_attempted", ctx.abort.reason
    wanted = json_to_item(record.item)
    wire = json_to_wire(record.item)
    key = {name: wire[name] for name in ctx.key_names()}
    try:
        if ctx.module.check_mode:
            current = ctx.dynamodb.get_item(TableName=ctx.table, Key=key, ConsistentRead=True).get("Item")
            if current is None:
                return "changed", None
        else:
            ctx.dynamodb.put_item(
                TableName=ctx.table,
                Item=json_to_wire(record.item),
                ConditionExpression="attribute_not_exists(#k)",
                ExpressionAttributeNames={"#k": ctx.hash_key},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return "changed", None
    except aws_errors() as exc:
        if error_code(exc) != "ConditionalCheckFailedException":
            message = describe_aws_error(exc, f"restore job {record.job_id}", params.get("endpoint_url"))
            if error_code(exc) not in RETRYABLE_ERROR_CODES:
                ctx.abort.set(message)
            return "failed", message
        current = exc.response.get("Item")
    deserialize = TypeDeserializer().deserialize
    existing = {name: deserialize(value) for name, value in (current or {}).items()}
    if existing == wanted:
        return "unchanged", "already present, equal to the archive"
    return "skipped", "an item with this job_id exists and differs from the archive: not overwritten"


def restore_audio(ctx: Context, params: dict, records: list[ArchivedJob], report: AudioReport) -> None:
    """Copy archived audio back where the original object is missing."""
    bucket = params["bucket"]

    def restore(record: ArchivedJob) -> str:
        try:
            ctx.s3.head_object(Bucket=bucket, Key=record.audio_key)
            return "present"
        except aws_errors() as exc:
            if error_code(exc) not in ("404", "NoSuchKey", "NotFound"):
                report.failed.append({"key": record.audio_key, "code": error_code(exc), "message": str(exc)})
                return "failed"
        try:
            if ctx.module.check_mode:
                # Predict exactly: an archive copy that was never made cannot be restored.
                ctx.s3.head_object(Bucket=bucket, Key=record.audio_archive_key)
                return "restored"
            ctx.s3.copy_object(
                Bucket=bucket, Key=record.audio_key, CopySource={"Bucket": bucket, "Key": record.audio_archive_key}
            )
            return "restored"
        except aws_errors() as exc:
            if error_code(exc) in ("NoSuchKey", "404", "NotFound"):
                report.missing.append(record.audio_archive_key)
                return "missing"
            report.failed.append({"key": record.audio_key, "code": error_code(exc), "message": str(exc)})
            return "failed"

    with_audio = [r for r in records if r.audio_key and r.audio_archive_key]
    report.restored = sum(outcome == "restored" for outcome in run_bounded(restore, with_audio, params["parallel"]))


def run_restore(ctx: Context, params: dict, rules: tuple[Rule, ...], result: dict) -> bool:
    module = ctx.module
    tally = Tally(params["list_limit"])
    read_stats = ReadStats()
    deletable = [rule.category for rule in rules if rule.deletable]
    categories = set(params["categories"]) - {"deletable"}
    if "deletable" in params["categories"]:
        categories.update(deletable)
    archived = latest_jobs(read_archive_records(ctx, params, read_stats), ctx.table)
    result["archive"]["unreadable_lines"] = read_stats.unreadable
    records = [record for record in archived.values() if restore_selected(record, params, categories)]
    records.sort(key=lambda record: record.job_id)
    if len(records) > params["max_changes"]:
        module.fail_json(
            msg=f"The archive holds {len(records)} jobs to restore, more than max_changes={params['max_changes']}: "
            f"nothing was changed; narrow with job_ids/user_ids/categories or raise max_changes.",
            selected=len(records),
        )
    outcomes = run_bounded(lambda record: restore_one(ctx, record, params), records, params["parallel"])
    restored = []
    for record, (outcome, reason) in zip(records, outcomes, strict=True):
        group = record.category or "unknown"
        tally.select(group)
        tally.outcome(group, record.job_id, outcome, reason)
        if outcome in ("changed", "unchanged"):
            restored.append(record)
    audio_report = AudioReport()
    if params["archive_audio_prefix"] or any(r.audio_archive_key for r in restored):
        restore_audio(ctx, params, restored, audio_report)
    tally_report = tally.report()
    result.update(tally_report)
    result["audio"] = audio_report.report(params["list_limit"])
    result["deleted_objects"] = []
    result["changed"] = bool(tally_report["counts"]["changed"] or audio_report.restored)
    if module._diff:
        result["diff"] = diff_for("restored", tally_report, [], params["list_limit"])
    return not ctx.abort.is_set and not tally.totals()["failed"] and not audio_report.failed


# --------------------------------------------------------------------------- entry point


def argument_spec() -> dict:
    return dict(
        state=dict(type="str", choices=list(STATES), default="absent"),
        table=dict(type="str", default="panzoto-processing-jobs"),
        categories=dict(type="list", elements="str", default=[]),
        statuses=dict(type="list", elements="str", choices=list(JOB_STATUSES), default=[]),
        older_than=dict(type="str"),
        job_types=dict(type="list", elements="str"),
        user_ids=dict(type="list", elements="str"),
        job_ids=dict(type="list", elements="str"),
        wipe_all=dict(type="bool", default=False),
        confirm=dict(type="str"),
        stuck_after=dict(type="str", default="1h"),
        now=dict(type="str"),
        classification_rules=dict(type="list", elements="dict", default=[]),
        max_changes=dict(type="int", default=1000),
        delete_audio=dict(type="bool", default=False),
        bucket=dict(type="str", default="panzoto"),
        audio_key_template=dict(type="str", default="audio_upload/{user_id}/{audio_file_id}.3gp_encrypted"),
        archive_audio_prefix=dict(type="str"),
        archive_path=dict(type="path"),
        archive_s3_prefix=dict(type="str"),
        ttl_attribute=dict(type="str", default="expires_at"),
        expire_after=dict(type="str", default="7d"),
        reason=dict(type="str"),
        segments=dict(type="int", default=4),
        parallel=dict(type="int", default=8),
        list_limit=dict(type="int", default=100),
        user_index=dict(type="str", default="user-jobs-index"),
        **AWS_ARGUMENT_SPEC,
    )


def first_failure(result: dict) -> str:
    if result["failures"]:
        entry = result["failures"][0]
        return f"job {entry['job_id']}: {entry['error']}"
    if result["audio"]["failed"]:
        entry = result["audio"]["failed"][0]
        return f"s3 key {entry['key']}: {entry['code']} {entry['message']}"
    return "unknown"


def new_run_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def run_module() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    require_boto3(module)
    validate_aws_params(module)
    params = module.params
    try:
        rules = build_rules(params["classification_rules"])
        deletable = [rule.category for rule in rules if rule.deletable]
        validate_options(params, [rule.category for rule in rules], deletable)
        now = parse_now(params["now"])
        stuck_after = parse_duration(params["stuck_after"])
        parse_duration(params["expire_after"])
        selection = build_selection(params, now, stuck_after, deletable)
    except (RuleError, ValueError) as exc:
        module.fail_json(msg=str(exc))

    dynamodb = aws_client(module, "dynamodb", max_pool_connections=params["segments"] + params["parallel"] + 2)
    counter = RequestCounter().attach(dynamodb)
    needs_s3 = params["delete_audio"] or params["archive_s3_prefix"] or params["state"] == "restored"
    s3 = None
    if needs_s3:
        s3 = aws_client(module, "s3", max_pool_connections=params["parallel"] + 2)
        counter.attach(s3)
    table = params["table"]
    run_id = new_run_id()
    stats = ScanStats()
    s3_uri = f"s3://{params['bucket']}/{params['archive_s3_prefix']}{run_id}/" if params["archive_s3_prefix"] else None
    result: dict = {
        "changed": False,
        "state": params["state"],
        "table": table,
        "now": isoformat(now),
        "archive": {
            "path": params["archive_path"],
            "s3_prefix": s3_uri if params["state"] != "restored" else None,
            "run_id": run_id,
            "records_written": 0,
            "unreadable_lines": 0,
        },
    }
    try:
        description = dynamodb.describe_table(TableName=table)["Table"]
        keys = {k["KeyType"]: k["AttributeName"] for k in description["KeySchema"]}
        ctx = Context(
            module, dynamodb, table, keys["HASH"], params["state"], now, run_id, Abort(), s3, keys.get("RANGE")
        )
        not_jobs = jobs_only_error(ctx, params)
        if not_jobs:
            raise OptionError(not_jobs)
        plan = read_plan(params, description)
        result["key"] = {"hash": ctx.hash_key, "range": ctx.range_key, "jobs_table": ctx.jobs_table}
        result["read"] = plan.report()
        if plan.reason and plan.method == "scan" and params["user_ids"] is not None and params["user_index"]:
            module.warn(f"Not using {params['user_index']}: {plan.reason}.")
        if params["state"] == "restored":
            success = run_restore(ctx, params, rules, result)
        else:
            success = run_cleanup(ctx, params, selection, rules, result, stats, plan)
    except OptionError as exc:
        module.fail_json(msg=str(exc))
    except aws_errors() as exc:
        module.fail_json(
            msg=describe_aws_error(
                exc, f"{ACTION_VERBS[params['state']]} items of table {table}", params.get("endpoint_url")
            ),
            **result,
        )
    result["requests"] = {
        "pages": stats.pages,
        "http_requests": counter.total,
        "by_operation": dict(sorted(counter.counts.items())),
    }
    if not success:
        failed = result["counts"]["failed"] + result["counts"]["not_attempted"] + len(result["audio"]["failed"])
        reason = ctx.abort.reason or first_failure(result)
        module.fail_json(
            msg=f"Cleanup incomplete: {result['counts']['changed']} jobs changed, {failed} jobs or objects failed or "
            f"not attempted (first: {reason}); the archive holds every changed job; re-run to finish.",
            **result,
        )
    module.exit_json(**result)


def main() -> None:
    run_module()


if __name__ == "__main__":
    main()
