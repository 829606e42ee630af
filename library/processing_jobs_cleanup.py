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
    O(delete_audio) is set, a Bloom filter of the S3 keys referenced by the jobs it keeps (1 MiB up to 64 MiB, sized from
    the table's item count; it can only err toward keeping an object, which the next run then re-checks).
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
  - Everything that can be known before the first write is checked first, in check mode too, failing with one line that
    names the option - the bucket exists (with audio or an S3 archive), O(archive_path) is a writable archive of this
    module (or a new file), the table's TTL attribute (O(state=expiring)), durations, times and templates.
  - One run at a time per table, across control nodes - a lease item in O(lock_table), keyed by the table's ARN and
    renewed while the run lasts - and per archive file on this control node (see O(lock_dir)).
version_added: "1.0.0"
author: panzoto-ops maintainers (@panzoto-ops)
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
  categories:
    description:
      - Select failed jobs in these error categories (see O(classification_rules)).
      - C(deletable) stands for every category whose rule says cleanup may delete it (C(legacy_encryption), C(decryption_error) by default).
      - To select every failed job, use O(statuses=[failed]).
  user_index:
    description:
      - GSI keyed by C(user_id) (projection C(ALL)) used to read only the jobs of O(user_ids) with C(Query) instead of a
        full C(Scan). Empty disables it. With O(delete_audio) it is used only when O(audio_key_template) contains
        C({user_id}); audio left by an interrupted earlier run is then finished only for these users.
  job_ids:
    description:
      - Select these jobs. Alone, it selects them whatever their status (malformed items included);
        with O(categories) or O(statuses) it narrows those.
      - On a table that does not hold jobs, the values of its hash key (or C(["hash", "range"]) as JSON with a range key).
      - With O(state=restored), restores only these.
  wipe_all:
    description:
      - Select every item of the table (the guide's procedure 2). Needs O(confirm) set to the table's name, O(state=absent),
        and no other selection option. O(max_changes) still applies.
    type: bool
    default: false
  confirm:
    description: The table's name, to confirm O(wipe_all).
    type: str
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
      - A O(delete_audio) run that leaves no audio of its table pending (it read every job, and nothing failed, was kept
        or was cut short) ends with a C(settled) audio record that deals with no key. The next O(delete_audio) run
        looks for audio earlier runs left only after the table's last such record, so the archive read back does not
        grow with every run ever archived.
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
  requeue_fresh:
    description:
      - For O(state=requeued). The backend fails every pending job whose C(created_at) is more than 24 hours old as
        C(Job expired - too old) before trying it, so by default a requeue that selects such a job is refused in one
        line, changing nothing.
      - With C(true), C(created_at) is set to the requeue time and the original kept as C(original_created_at) (the
        first one, over repeated requeues); check mode and the diff list whose C(created_at) is reset
        (result C(created_at_reset)).
    type: bool
    default: false
  reason:
    description: For O(state=requeued), why the jobs are requeued (stored as C(requeue_reason)). Defaults to a text naming the category.
    type: str
  parallel:
    description: Conditional writes (and audio copies) in flight at once.
    type: int
    default: 8
  write_batch_size:
    description:
      - Jobs changed per request. V(1) sends one conditional C(DeleteItem) or C(UpdateItem) per job.
      - V(2) to V(100) sends them as C(TransactWriteItems) transactions of that many jobs, O(parallel) at a time, each job
        keeping its own condition. A job whose condition fails is skipped and reported, and the rest of its
        transaction is sent again. A transactional delete is conditional on the whole archived item (not only
        C(status) and C(error_message)), since DynamoDB returns no deleted item inside a transaction; a job changed in
        any way since it was read is skipped. A transaction costs twice the write units of the same single writes.
      - An endpoint without transactions (C(UnknownOperationException)) gets one request per job, with a warning.
    type: int
    default: 1
  list_limit:
    description: At most this many job ids, skipped jobs, failures and S3 keys are listed per list in the result (counts are always exact).
    type: int
    default: 100
  accept_unreadable_lines:
    description:
      - For O(state=restored), restore the readable records of an archive that has unreadable lines (a torn or edited line).
      - Without it such an archive fails the restore, naming the lines, before anything is restored.
    type: bool
    default: false
  lock_dir:
    description:
      - Directory on the control node for the run locks. A run holds an exclusive lock on its table (per endpoint, region
        and table) and on its O(archive_path), and refuses to start while another run holds either.
      - The locks are released when the run ends, however it ends (they are C(flock) locks).
    type: path
    default: ~/.cache/panzoto-ops/locks
  lock_table:
    description:
      - DynamoDB table holding the cleanup leases (key C(lock_id), a string), in the account and region of O(table).
        A run that changes anything takes the lease of its table - the item keyed by the table's ARN, so every
        control node, endpoint spelling and HOME contends for the same one - and refuses in one line naming the
        owner (host, pid, run id) and the expiry while another run holds it.
      - Created on first use (on-demand billing; needs C(dynamodb:CreateTable)); when it cannot be created the run fails
        in one line giving the C(aws dynamodb create-table) command. Never the jobs table, whose tools would read
        the lease as a malformed job.
      - Check mode takes no lease (it writes nothing) but refuses while another run holds it, as its preview would be stale.
    type: str
    default: panzoto-ops-locks
  progress_path:
    description:
      - A JSON file on the control node that the run keeps up to date while it changes jobs, for another process to read
        (the job_cleanup role prints a line from it per poll while the run goes on in the background).
      - It holds C(phase) (C(reading), C(writing), C(audio), C(restoring), then C(done) or C(failed) with C(msg)),
        C(done) of C(total), the outcome C(counts) so far (with C(changed) and C(skipped) on their own), C(started)
        and C(updated) (UTC), and C(finished); at the end its counts are the result's.
      - Replaced whole (a temporary file beside it, renamed), at most about once a second and at each phase change.
        Its directory must exist. Check mode writes no progress.
    type: path
  lease_duration:
    description:
      - How long a lease lasts without renewal; the run renews it every third of this. A run that died (host down)
        blocks others at most this long; a run of this host whose process is gone is taken over at once.
      - Control nodes' clocks must agree (NTP) to well within this.
    type: str
    default: 60s
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
extends_documentation_fragment:
  - action_common_attributes
  - panzoto_aws
  - panzoto_classification_rules
  - panzoto_selection
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
skipped_jobs:
  description:
    - Jobs skipped, each with job_id, category and reason, at most O(list_limit).
    - Not C(skipped), which Ansible reserves (a task result with it shows as skipped).
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
    deleted: {description: "Objects deleted (or that would be).", type: int}
    deleted_keys: {description: "Their keys, sorted, at most O(list_limit).", type: list, elements: str}
    kept_referenced: {description: "Keys not deleted because a kept job references them (at most O(list_limit)).", type: list, elements: str}
    kept_referenced_count: {description: "How many keys were kept because a kept job references them (exact).", type: int}
    archived: {description: "Objects copied to O(archive_audio_prefix).", type: int}
    missing: {description: "Keys that did not exist when archiving them.", type: list, elements: str}
    failed: {description: "Keys that could not be deleted, with S3's error code.", type: list, elements: dict}
    from_earlier_runs: {description: "Keys of jobs deleted by an earlier, interrupted run, finished now.", type: int}
    restored: {description: "Objects copied back from the archive prefix (restore).", type: int}
    delete_requests: {description: "DeleteObjects requests sent.", type: int}
deleted_objects:
  description: The S3 keys deleted (or that would be), sorted, at most O(list_limit). The archive has all of them.
  returned: always
  type: list
  elements: str
deleted_objects_count:
  description: How many S3 keys were deleted (or would be), exact.
  returned: always
  type: int
truncated:
  description:
    - For each list of the result cut at O(list_limit) (C(job_ids), C(deleted_objects)), how many it shows of how many
      and where every record is (the archive). Empty when nothing was cut.
  returned: always
  type: dict
  sample: {deleted_objects: "100 of 3400 listed (list_limit=100); the archive archives/jobs.jsonl records every deleted audio key"}
writes:
  description:
    - How the conditional writes were sent. In check mode, what a real run would send if no job changes meanwhile.
  returned: when state is absent, requeued or expiring
  type: dict
  contains:
    write_batch_size: {description: "The O(write_batch_size) used.", type: int}
    transactions: {description: "C(TransactWriteItems) requests sent (or predicted); 0 with one request per job.", type: int}
    resubmitted: {description: "Jobs sent again after a transaction was cancelled (0 in check mode).", type: int}
    fallback: {description: "Why the run fell back to one request per job (the endpoint has no transactions), or null.", type: str}
  sample: {write_batch_size: 25, transactions: 2, resubmitted: 0, fallback: null}
archive:
  description: Where the archive is.
  returned: always
  type: dict
  contains:
    path: {description: "The control-node archive file.", type: str}
    s3_prefix: {description: "The S3 URI prefix of this run's archive objects, or null.", type: str}
    run_id: {description: "This run's id, stored in every record.", type: str}
    records_written: {description: "Records appended by this run.", type: int}
    unreadable_lines: {description: "Archive lines that are not readable records (a restore fails on them unless O(accept_unreadable_lines)).", type: int}
    unreadable_at: {description: "Where they are (file or S3 object and line number) - at most 20.", type: list, elements: str}
audio_not_restorable:
  description:
    - For O(state=restored) - audio of the restored jobs that the cleanup deleted without copying it first (it ran without
      O(archive_audio_prefix)); S3 has no copy, so it cannot come back. The jobs are restored without it.
  returned: when state is restored
  type: dict
  contains:
    count: {description: "How many objects.", type: int}
    keys: {description: "Their keys, sorted, at most O(list_limit).", type: list, elements: str}
created_at_reset:
  description: With O(requeue_fresh), the jobs older than 24 hours whose C(created_at) is (or would be) reset to now.
  returned: when requeue_fresh is true
  type: dict
  contains:
    count: {description: "How many.", type: int}
    jobs: {description: "Each with job_id and its original created_at - at most O(list_limit).", type: list, elements: dict}
not_restored:
  description:
    - For O(state=restored) - archived jobs the selection matched that are not put back, because the cleanup did not delete
      them - they were requeued, marked to expire, or their delete was skipped (changed or vanished) or failed.
  returned: when state is restored
  type: dict
  contains:
    count: {description: "How many.", type: int}
    by_reason: {description: "Counts per archived action (requeued, expiring) or delete outcome (skipped, failed).", type: dict}
    jobs: {description: "Each with job_id and reason - at most O(list_limit).", type: list, elements: dict}
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
resource_actions:
  description: The distinct C(service:Operation) calls made, with O(debug_botocore_endpoint_logs).
  returned: when debug_botocore_endpoint_logs is true
  type: list
  elements: str
  sample: [dynamodb:DescribeTable, dynamodb:Scan, dynamodb:DeleteItem]
requests:
  description: What the run cost, in HTTP requests per API operation (retries included) and scan pages.
  returned: always
  type: dict
  sample: {pages: 1, http_requests: 38, by_operation: {DeleteItem: 34, DeleteObjects: 1, DescribeTable: 1, Scan: 1}}
"""


import os
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.panzoto.allocator import map_large_buffers
from ansible.module_utils.panzoto.aws import (
    AWS_ARGUMENT_SPEC,
    aws_client,
    aws_errors,
    describe_aws_error,
    require_boto3,
    resource_actions,
    validate_aws_params,
)
from ansible.module_utils.panzoto.classification import (
    CLASSIFICATION_RULE_OPTIONS,
    Rule,
    RuleError,
    build_rules,
    rules_from_options,
)
from ansible.module_utils.panzoto.cleanup.archive import (
    JOB_RECORD,
    RESULT_RECORD,
    ArchivedJob,
    ArchiveWriter,
    ReadStats,
    RecordHeader,
    S3OutcomeMirror,
    S3ReadStats,
    check_archive_file,
    item_to_json,
    json_to_item,
    latest_jobs,
    put_s3_archive,
    read_archive,
    read_s3_archive,
    s3_archive_key,
    settled_record,
)
from ansible.module_utils.panzoto.cleanup.audio import (
    AudioReport,
    archive_audio_key,
    audio_to_delete,
    load_pending_audio,
    remove_audio,
    require_listable_bucket,
    restore_audio,
)
from ansible.module_utils.panzoto.cleanup.batches import Abort, chunks, run_bounded
from ansible.module_utils.panzoto.cleanup.encoded import send_encoded
from ansible.module_utils.panzoto.cleanup.keyset import KeptKeys
from ansible.module_utils.panzoto.cleanup.lease import DEFAULT_LOCK_TABLE, Lease, LeaseHeld, LeaseSetupError
from ansible.module_utils.panzoto.cleanup.locks import (
    DEFAULT_LOCK_DIR,
    LockHeld,
    RunLock,
    RunLocks,
    archive_lock_path,
    table_lock_path,
)
from ansible.module_utils.panzoto.cleanup.plan import (
    JOBS_ONLY_OPTIONS,
    AudioKeyTemplate,
    Planned,
    Selected,
    TableKey,
    cleanup_read_plan,
    select_jobs,
)
from ansible.module_utils.panzoto.cleanup.progress import Progress
from ansible.module_utils.panzoto.cleanup.requeue import refusal as requeue_refusal
from ansible.module_utils.panzoto.cleanup.requeue import reset_report, too_old
from ansible.module_utils.panzoto.cleanup.tally import Tally, diff_for
from ansible.module_utils.panzoto.cleanup.transact import TRANSACT_LIMIT, TransactWriter, batches
from ansible.module_utils.panzoto.cleanup.writes import WritePlan, put_back
from ansible.module_utils.panzoto.jobs import isoformat, parse_now
from ansible.module_utils.panzoto.options import OptionError, check_range, duration_option, moment_after
from ansible.module_utils.panzoto.scan import RequestCounter, ScanStats
from ansible.module_utils.panzoto.selection import (
    SELECTION_ARGUMENT_SPEC,
    ReadPlan,
    Selection,
    read_items,
    refuse_empty_lists,
    selection_from_params,
)

STATES = ("absent", "requeued", "expiring", "restored")
ACTION_VERBS = {"absent": "delete", "requeued": "requeue", "expiring": "expire", "restored": "restore"}
# Jobs archived and changed per step: one archive fsync (and S3 put) per chunk
# bounds both the cost of durability and what a crash can leave half-done.
CHUNK_SIZE = 100
# Archived jobs put back between two progress updates of a restore.
RESTORE_CHUNK_SIZE = 500
# Items per Scan or Query page. The cleanup reads whole items: a 1 MB page is some 2,000 jobs and
# 11 MiB while decoded, and the scan holds segments + 1 pages; pages of 1,000 halve that for one
# request more per 2,000 jobs.
READ_PAGE_ITEMS = 1000
DEFAULT_AUDIO_KEY_TEMPLATE = "audio_upload/{user_id}/{audio_file_id}.3gp_encrypted"


# --------------------------------------------------------------------------- argument spec


def argument_spec() -> dict:
    return dict(
        state=dict(type="str", choices=list(STATES), default="absent"),
        wipe_all=dict(type="bool", default=False),
        confirm=dict(type="str"),
        classification_rules=dict(type="list", elements="dict", default=[], options=CLASSIFICATION_RULE_OPTIONS),
        max_changes=dict(type="int", default=1000),
        delete_audio=dict(type="bool", default=False),
        bucket=dict(type="str", default="panzoto"),
        audio_key_template=dict(type="str", default=DEFAULT_AUDIO_KEY_TEMPLATE, no_log=False),
        archive_audio_prefix=dict(type="str"),
        archive_path=dict(type="path"),
        archive_s3_prefix=dict(type="str"),
        ttl_attribute=dict(type="str", default="expires_at"),
        expire_after=dict(type="str", default="7d"),
        reason=dict(type="str"),
        parallel=dict(type="int", default=8),
        write_batch_size=dict(type="int", default=1),
        list_limit=dict(type="int", default=100),
        accept_unreadable_lines=dict(type="bool", default=False),
        lock_dir=dict(type="path", default=DEFAULT_LOCK_DIR),
        lock_table=dict(type="str", default=DEFAULT_LOCK_TABLE),
        lease_duration=dict(type="str", default="60s"),
        requeue_fresh=dict(type="bool", default=False),
        progress_path=dict(type="path"),
        **SELECTION_ARGUMENT_SPEC,
        **AWS_ARGUMENT_SPEC,
    )


# What the argument spec checks itself; the rest (values that depend on each other) is in CleanupOptions.
SPEC_CONSTRAINTS = dict(
    required_if=[
        ("state", "absent", ("archive_path",)),
        ("state", "requeued", ("archive_path",)),
        ("state", "expiring", ("archive_path",)),
        ("state", "restored", ("archive_path", "archive_s3_prefix"), True),
    ],
    required_together=[("access_key", "secret_key")],
)


# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class CleanupOptions:
    """The module's options, checked and parsed once: nothing below reads module.params."""

    state: str
    table: str
    rules: tuple[Rule, ...]
    selection: Selection
    categories: frozenset[str]  # `deletable` expanded
    user_index: str
    jobs_only_used: tuple[str, ...]  # options given that need a jobs table
    delete_audio: bool
    bucket: str
    template: AudioKeyTemplate
    archive_audio_prefix: str | None
    archive_path: Path | None
    archive_s3_prefix: str | None
    ttl_attribute: str
    expires_at: datetime
    reason: str | None
    max_changes: int
    segments: int
    parallel: int
    write_batch_size: int  # 1: one request per job; more: TransactWriteItems of that many jobs
    list_limit: int
    accept_unreadable_lines: bool
    lock_dir: Path
    lock_table: str
    lease_seconds: int
    requeue_fresh: bool
    progress_path: Path | None
    endpoint_url: str | None
    region: str | None

    @property
    def now(self) -> datetime:
        return self.selection.now

    @property
    def user_ids(self) -> frozenset[str] | None:
        return self.selection.user_ids

    @property
    def job_ids(self) -> frozenset[str] | None:
        return self.selection.job_ids

    @classmethod
    def from_params(cls, params: dict) -> CleanupOptions:
        """Raise OptionError (one line) for values that cannot work together. Nothing has been touched yet."""
        state = params["state"]
        _check_selection(params)
        if params["requeue_fresh"] and state != "requeued":
            raise OptionError(f"requeue_fresh only works with state=requeued, not state={state}.")
        if params["delete_audio"] and state != "absent":
            raise OptionError("delete_audio only works with state=absent.")
        if params["archive_audio_prefix"] and not (params["delete_audio"] or state == "restored"):
            raise OptionError("archive_audio_prefix needs delete_audio=true (or state=restored).")
        if state != "restored" and not params["archive_path"]:
            raise OptionError(f"archive_path is required for state={state}: jobs are archived before they are changed.")
        if state == "restored" and not (params["archive_path"] or params["archive_s3_prefix"]):
            raise OptionError("state=restored needs archive_path or archive_s3_prefix to read the archive from.")
        try:
            rules = build_rules(rules_from_options(params["classification_rules"]))
        except RuleError as exc:
            raise OptionError(str(exc)) from None
        template = AudioKeyTemplate.parse(params["audio_key_template"])
        for name, low, high in (
            ("max_changes", 1, None),
            ("segments", 1, 64),
            ("parallel", 1, 64),
            ("write_batch_size", 1, TRANSACT_LIMIT),
            ("list_limit", 0, None),
        ):
            check_range(name, params[name], low, high)
        try:
            now = parse_now(params["now"])
        except ValueError as exc:
            raise OptionError(str(exc)) from None
        expire_after = duration_option("expire_after", params["expire_after"])
        lease_seconds = int(duration_option("lease_duration", params["lease_duration"]).total_seconds())
        check_range("lease_duration (seconds)", lease_seconds, 3, 3600)
        if not params["lock_table"] or params["lock_table"] == params["table"]:
            raise OptionError(
                f"lock_table {params['lock_table']!r}: name a table of its own (not the jobs table), "
                f"e.g. {DEFAULT_LOCK_TABLE}."
            )

        selection = selection_from_params(params, rules, now)
        return cls(
            state=state,
            table=params["table"],
            rules=rules,
            selection=selection,
            categories=selection.categories,
            user_index=params["user_index"],
            jobs_only_used=tuple(name for name in JOBS_ONLY_OPTIONS if params[name] not in (None, [], False)),
            delete_audio=params["delete_audio"],
            bucket=params["bucket"],
            template=template,
            archive_audio_prefix=params["archive_audio_prefix"] or None,
            archive_path=Path(params["archive_path"]) if params["archive_path"] else None,
            archive_s3_prefix=params["archive_s3_prefix"] or None,
            ttl_attribute=params["ttl_attribute"],
            expires_at=moment_after("expire_after", now, expire_after),
            reason=params["reason"] or None,
            max_changes=params["max_changes"],
            segments=params["segments"],
            parallel=params["parallel"],
            write_batch_size=params["write_batch_size"],
            list_limit=params["list_limit"],
            accept_unreadable_lines=params["accept_unreadable_lines"],
            lock_dir=Path(params["lock_dir"]).expanduser(),
            lock_table=params["lock_table"],
            lease_seconds=lease_seconds,
            requeue_fresh=params["requeue_fresh"],
            progress_path=Path(params["progress_path"]) if params["progress_path"] else None,
            endpoint_url=params.get("endpoint_url"),
            region=params.get("region"),
        )


def _check_selection(params: dict) -> None:
    """That the options select something on purpose, and never the whole table by accident."""
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
    refuse_empty_lists(params)


# --------------------------------------------------------------------------- one run


@dataclass
class Run:
    """What every handler works with, built once per run."""

    module: AnsibleModule
    opts: CleanupOptions
    dynamodb: object
    s3: object
    key: TableKey
    plan: ReadPlan
    header: RecordHeader
    result: dict
    abort: Abort
    stats: ScanStats
    transactions: object = None  # the client for write_batch_size's transactions (TransactWriter.transactions)
    item_count: int = 0  # DescribeTable's ItemCount (updated by DynamoDB about every six hours)
    progress: Progress = field(default_factory=lambda: Progress(None))  # a real run given progress_path

    def fail(self, msg: str, **fields) -> None:
        """Fail the module, the progress file saying so first."""
        self.progress.finish(None, self.progress.data["done"], self.progress.data["total"], msg=msg)
        self.module.fail_json(msg=msg, **fields)

    @property
    def check_mode(self) -> bool:
        return self.module.check_mode

    def finish(self, tally: Tally, audio: AudioReport, changed: bool) -> None:
        """Fill the result from the run's tally and audio report."""
        tally_report = tally.report()
        self.result.update(tally_report)
        self.result["audio"] = audio.report(self.opts.list_limit)
        deleted = sorted(audio.deleted)
        # The result (and the JSON report made of it) stays small at any table size: the archive has everything.
        self.result["deleted_objects"] = deleted[: self.opts.list_limit]
        self.result["deleted_objects_count"] = len(deleted)
        self.result["truncated"] = truncation_notes(self.result, self.opts, self.check_mode)
        self.result["changed"] = changed
        if self.module._diff:
            self.result["diff"] = diff_for(self.opts.state, tally_report, sorted(audio.deleted), self.opts.list_limit)
            if self.module._verbosity < 1:
                # A dry run's diff fits a screen: counts by default, the ids and keys with -v (the report has them all).
                summary = {
                    "job_ids": f"{tally_report['counts']['changed']} jobs, ids listed with -v",
                    "audio_objects": f"{len(audio.deleted)} objects, keys listed with -v",
                }
                for side in self.result["diff"].values():
                    for name, text in summary.items():
                        if side.get(name):
                            side[name] = text
            reset = self.result.get("created_at_reset")
            if reset and reset["count"]:
                self.result["diff"]["before"]["created_at"] = {
                    job["job_id"]: job["created_at"] for job in reset["jobs"]
                }
                self.result["diff"]["after"]["created_at"] = (
                    "the requeue time (the original kept as original_created_at)"
                )


def truncation_notes(result: dict, opts: CleanupOptions, check_mode: bool) -> dict[str, str]:
    """For each list cut at list_limit, how many it shows of how many, and where the rest is."""
    totals = {
        "job_ids": (len(result["job_ids"]), result["counts"]["changed"], "job"),
        "deleted_objects": (len(result["deleted_objects"]), result["deleted_objects_count"], "deleted audio key"),
    }
    notes = {}
    for name, (shown, total, kind) in totals.items():
        if shown < total:
            rest = (
                "a higher list_limit lists them all"
                if check_mode  # a dry run archives nothing
                else f"the archive {opts.archive_path or opts.archive_s3_prefix} records every {kind}"
            )
            notes[name] = f"{shown} of {total} listed (list_limit={opts.list_limit}); {rest}"
    return notes


def do_deleted(run: Run) -> bool:
    return change_selected(run, WritePlan(run.opts.table, run.key, "absent"))


def do_requeued(run: Run) -> bool:
    reason = run.opts.reason
    return change_selected(
        run,
        WritePlan(
            run.opts.table, run.key, "requeued",
            reason=lambda planned: reason or f"requeued by panzoto-ops cleanup ({planned.group})",
            fresh_created_at=run.opts.requeue_fresh,
        ),
    )  # fmt: skip


def do_expiring(run: Run) -> bool:
    plan = WritePlan(
        run.opts.table, run.key, "expiring", ttl_attribute=run.opts.ttl_attribute, expires_at=run.opts.expires_at
    )
    return change_selected(run, plan)


def do_restored(run: Run) -> bool:
    """Put archived jobs back where the table has no item with their key, then their audio."""
    opts = run.opts
    tally = Tally(opts.list_limit)
    read_stats = ReadStats()
    archived = latest_jobs(archive_records(run, read_stats), opts.table)
    run.result["archive"]["unreadable_lines"] = read_stats.unreadable
    run.result["archive"]["unreadable_at"] = read_stats.unreadable_at
    if read_stats.unreadable and not opts.accept_unreadable_lines:
        raise OptionError(
            f"The archive has {read_stats.unreadable} unreadable lines ({', '.join(read_stats.unreadable_at)}): "
            f"their jobs cannot be restored; repair them, or set accept_unreadable_lines=true to restore the rest; "
            f"nothing was changed."
        )
    matched = sorted((r for r in archived.values() if restore_selected(r, opts)), key=lambda r: r.job_id)
    # Only what the cleanup deleted comes back: never a requeued or expired job, nor one whose delete was skipped.
    records = [r for r in matched if r.deleted_by_cleanup]
    run.result["not_restored"] = not_restored_report([r for r in matched if not r.deleted_by_cleanup], opts.list_limit)
    if len(records) > opts.max_changes:
        run.fail(
            msg=f"The archive holds {len(records)} jobs to restore, more than max_changes={opts.max_changes}: "
            f"nothing was changed; narrow with job_ids/user_ids/categories or raise max_changes.",
            selected=len(records),
        )

    if any(r.audio_archive_key for r in records):
        require_listable_bucket(run.s3, opts.bucket, opts.endpoint_url)

    def restore(record: ArchivedJob) -> tuple[str, str | None]:
        return put_back(
            run.dynamodb, opts.table, run.key, record.job_id, record.item, run.check_mode, run.abort, opts.endpoint_url
        )

    restored = []
    run.progress.phase("restoring", total=len(records))
    for chunk in chunks(records, RESTORE_CHUNK_SIZE):
        for record, (outcome, reason) in zip(chunk, run_bounded(restore, chunk, opts.parallel), strict=True):
            group = record.category or "unknown"
            tally.select(group)
            tally.outcome(group, record.job_id, outcome, reason)
            if outcome in ("changed", "unchanged"):
                restored.append(record)
        run.progress.update(sum(tally.totals().values()), tally.totals())
    # A job's audio deleted without a copy (no archive_audio_prefix) is gone from S3 for good: say so.
    lost = sorted(r.audio_key for r in restored if r.audio_key and not r.audio_archive_key)
    run.result["audio_not_restorable"] = {"count": len(lost), "keys": lost[: opts.list_limit]}
    audio = AudioReport()
    if any(r.audio_archive_key for r in restored):
        run.progress.phase("audio", total=sum(1 for r in restored if r.audio_archive_key))
        restore_audio(run.s3, opts.bucket, restored, opts.parallel, run.check_mode, audio, opts.endpoint_url)
    run.finish(tally, audio, changed=bool(tally.totals()["changed"] or audio.restored))
    return not run.abort.is_set and not tally.totals()["failed"] and not audio.failed


HANDLERS = {"absent": do_deleted, "requeued": do_requeued, "expiring": do_expiring, "restored": do_restored}


# --------------------------------------------------------------------------- delete, requeue, expire


def change_selected(run: Run, writes: WritePlan) -> bool:
    """Select in one streamed read, then archive and conditionally change each chunk, then the audio."""
    opts = run.opts
    tally = Tally(opts.list_limit)
    read_stats = ReadStats()
    pending_audio = (
        load_pending_audio(opts.archive_path, opts.table, run.plan.method, opts.user_ids, read_stats)
        if opts.delete_audio
        else {}
    )
    run.result["archive"]["unreadable_lines"] = read_stats.unreadable
    items = read_items(
        run.dynamodb, opts.table, run.plan, opts.user_ids, opts.segments, run.stats, page_size=READ_PAGE_ITEMS
    )
    if run.progress.enabled:
        run.progress.phase("reading", total=run.item_count)
        items = run.progress.count_items(items)
    scan = select_jobs(
        items, run.key, opts.rules, opts.selection, opts.state, opts.ttl_attribute,
        opts.template if opts.delete_audio else None, opts.max_changes, tally, pending_audio,
        KeptKeys(expected_keys=run.item_count) if opts.delete_audio else None, write_chunk_size(opts),
    )  # fmt: skip
    if scan.change_count > opts.max_changes:
        run.fail(
            msg=f"The selection would change {scan.change_count} {'jobs' if run.key.jobs_table else 'items'}, "
            f"more than max_changes={opts.max_changes}: nothing was changed; narrow the selection or raise max_changes.",
            selected=scan.change_count,
        )
    if opts.state == "requeued":
        check_requeue_age(run, scan.changes)
    audio = AudioReport()
    if run.check_mode:
        for planned in scan.changes:
            tally.outcome(planned.group, planned.job_id, "changed")
        run.result["writes"] = predicted_writes(writes, scan.changes, opts)
        if opts.delete_audio:
            keys, kept, earlier = audio_to_delete(
                audio_keys(scan.changes), (), scan.kept_keys, pending_audio, scan.seen_pending_jobs
            )
            audio.predict(keys, kept, earlier, copies=bool(opts.archive_audio_prefix))
        success = True
    else:
        mirror = (
            S3OutcomeMirror(run.s3, opts.bucket, opts.archive_s3_prefix, run.header.run_id, opts.table)
            if opts.archive_s3_prefix
            else None
        )
        archive = ArchiveWriter(opts.archive_path, mirror).open() if scan.changes or pending_audio else None
        try:
            # The jobs the read already settled (unchanged, skipped) count as done: total is then every selected job.
            settled = tally.totals()
            run.progress.phase(
                "writing", total=len(scan.changes) + sum(settled.values()), done=sum(settled.values()), counts=settled
            )
            done = archive_and_write(run, writes, scan.changes, tally, archive) if scan.changes else bytearray()
            scan.changes.drop_jobs()  # only their audio keys are needed from here on
            keys, kept, earlier = audio_to_delete(
                audio_keys(scan.changes, done, True), audio_keys(scan.changes, done, False), scan.kept_keys,
                pending_audio, scan.seen_pending_jobs,
            )  # fmt: skip
            # With the endpoint gone, audio waits for the re-run (the archive says which).
            if opts.delete_audio and (keys or kept) and not run.abort.is_set:
                audio.kept_referenced, audio.from_earlier_runs = kept, earlier
                run.progress.phase("audio", total=len(keys))
                remove_audio(
                    run.s3, opts.bucket, keys, kept, opts.archive_audio_prefix, opts.parallel, archive, run.header,
                    audio, opts.endpoint_url,
                )  # fmt: skip
            if archive is not None and audio_settled(run, tally, audio, scan.seen_pending_jobs):
                archive.append([settled_record(run.header, opts.bucket, read_stats.unreadable)])
        finally:
            if archive is not None:
                run.result["archive"]["records_written"] = archive.records_written
                archive.close()
            if mirror is not None and mirror.failed:
                # The changes are done, but an S3 restore would take every archived delete of them as done.
                run.abort.set(
                    f"{len(mirror.failed)} S3 archive objects could not be completed with their outcomes (first: "
                    f"{mirror.failed[0]}): restore from {opts.archive_path}, which holds them, rather than from S3"
                )
        success = not run.abort.is_set and not tally.totals()["failed"] and not audio.failed
    run.result.setdefault("writes", predicted_writes(writes, [], opts))  # nothing was sent
    run.finish(tally, audio, changed=bool(tally.totals()["changed"] or audio.deleted or audio.archived))
    return success


def audio_settled(run: Run, tally: Tally, audio: AudioReport, seen_pending_jobs: set[str]) -> bool:
    """Whether this run left no audio of its table pending in the archive, so the next run may read from here on.

    Pending after a run: a failed delete's audio, a key kept because a job references it or that
    could not be copied or deleted, an earlier run's job the table still holds, and anything a
    run that read only some users' jobs (a Query) could not see or one cut short left undone.
    """
    return (
        run.opts.delete_audio
        and run.plan.method == "scan"
        and not run.abort.is_set
        and not tally.totals()["failed"]
        and not audio.failed
        and not audio.kept_referenced
        and not seen_pending_jobs
    )


def check_requeue_age(run: Run, changes: Selected) -> None:
    """The backend's 24 h rule: refuse, or (requeue_fresh) say whose created_at is reset."""
    old = too_old(changes, run.opts.now)
    if old and not run.opts.requeue_fresh:
        raise OptionError(requeue_refusal(old, len(changes)))
    if run.opts.requeue_fresh:
        run.result["created_at_reset"] = reset_report(old, run.opts.list_limit)


def archive_and_write(
    run: Run, writes: WritePlan, changes: Selected, tally: Tally, archive: ArchiveWriter
) -> bytearray:
    """Archive then conditionally change each chunk; returns which jobs were changed (1 at their index).

    With write_batch_size above 1 a chunk is write_batch_size x parallel jobs, archived in one
    append, then sent as transactions of write_batch_size jobs, parallel at a time.
    """
    opts = run.opts
    batch_size = opts.write_batch_size
    writer = TransactWriter(
        run.dynamodb, writes, run.abort, run.header.run_id, opts.endpoint_url, transactions=run.transactions
    )
    chunk_size = write_chunk_size(opts)

    def send(chunk: list[Planned]) -> list[tuple[str, str | None, dict | None]]:
        if batch_size == 1:
            return run_bounded(writer.single, chunk, opts.parallel)
        return [
            outcome
            for part in run_bounded(writer.send, batches(writes, chunk, batch_size), opts.parallel)
            for outcome in part
        ]

    done = bytearray(len(changes))  # a byte per job, not a list of them
    for batch_number, chunk in enumerate(chunks(changes, chunk_size)):
        start = batch_number * chunk_size  # the chunk's first job's index in `changes`
        if run.abort.is_set:
            for planned in chunk:
                tally.outcome(planned.group, planned.job_id, "not_attempted", run.abort.reason)
            continue
        records = [job_record(run, planned) for planned in chunk]
        if opts.archive_s3_prefix:
            key = s3_archive_key(opts.archive_s3_prefix, run.header.run_id, opts.table, batch_number)
            try:
                put_s3_archive(run.s3, opts.bucket, key, records)
            except aws_errors() as exc:
                run.abort.set(describe_aws_error(exc, "write the S3 archive copy", opts.endpoint_url))
                for planned in chunk:
                    tally.outcome(planned.group, planned.job_id, "not_attempted", run.abort.reason)
                continue
        archive.append(records)  # durable before any write below
        outcomes = send(chunk)
        archive.append(
            run.header.record(
                RESULT_RECORD, job_id=planned.job_id, reason=reason, **_outcome_fields(opts.state, outcome, item)
            )
            for planned, (outcome, reason, item) in zip(chunk, outcomes, strict=True)
        )
        for index, (planned, (outcome, reason, _item)) in enumerate(zip(chunk, outcomes, strict=True), start):
            tally.outcome(planned.group, planned.job_id, outcome, reason)
            if outcome == "changed":
                done[index] = 1
        totals = tally.totals()
        run.progress.update(sum(totals.values()), totals)
    run.result["writes"] = {"write_batch_size": batch_size, **writer.stats.report()}
    if writer.stats.refused:
        run.module.warn(f"Sent one request per job: the endpoint has no transactions ({writer.stats.refused}).")
    return done


def write_chunk_size(opts: CleanupOptions) -> int:
    """Jobs archived in one append before their writes: write_batch_size x parallel when batched."""
    return CHUNK_SIZE if opts.write_batch_size == 1 else opts.write_batch_size * opts.parallel


def audio_keys(changes: Selected, done: bytearray | None = None, changed: bool = True) -> Iterator[str | None]:
    """The selected jobs' audio keys; with `done`, only those of the jobs changed (or, changed=False, not)."""
    return (changes.audio_key(index) for index in range(len(changes)) if done is None or bool(done[index]) == changed)


def predicted_writes(writes: WritePlan, changes: Iterable[Planned], opts: CleanupOptions) -> dict:
    """The dry run's `writes`: the transactions a real run would send if nothing changes meanwhile."""
    transactions = 0
    if opts.write_batch_size > 1:
        transactions = sum(
            1
            for chunk in chunks(changes, write_chunk_size(opts))
            for batch in batches(writes, chunk, opts.write_batch_size)
            if all(element for _, element, _ in batch)  # a job that needs its own request takes its batch with it
        )
    return {"write_batch_size": opts.write_batch_size, "transactions": transactions, "resubmitted": 0, "fallback": None}


def _outcome_fields(state: str, outcome: str, item: dict | None) -> dict:
    fields = {"outcome": "deleted" if outcome == "changed" and state == "absent" else outcome}
    if item is not None:
        fields["item"] = item  # what DynamoDB deleted, when it differs from the selected item
    return fields


def job_record(run: Run, planned: Planned) -> dict:
    opts = run.opts
    return run.header.record(
        JOB_RECORD,
        job_id=planned.job_id,
        category=planned.group,
        audio_key=planned.audio_key,
        audio_archive_key=archive_audio_key(opts.archive_audio_prefix, planned.audio_key),
        delete_audio=opts.delete_audio,
        item=item_to_json(planned.job.item),
    )


# --------------------------------------------------------------------------- restore


def archive_records(run: Run, read_stats: ReadStats):
    opts = run.opts
    if opts.archive_path is not None:
        if not opts.archive_path.exists():
            raise OptionError(f"archive_path {opts.archive_path} does not exist: nothing to restore from.")
        return read_archive(opts.archive_path, read_stats)
    return read_s3_archive(run.s3, opts.bucket, opts.archive_s3_prefix, read_stats, S3ReadStats())


def not_restored_report(records: list[ArchivedJob], limit: int) -> dict:
    by_reason: dict[str, int] = {}
    for record in records:
        reason = record.action if record.action != "absent" else record.outcome
        by_reason[reason] = by_reason.get(reason, 0) + 1
    jobs = [{"job_id": r.job_id, "reason": r.why_not_restored()} for r in records[:limit]]
    return {"count": len(records), "by_reason": dict(sorted(by_reason.items())), "jobs": jobs}


def restore_selected(record: ArchivedJob, opts: CleanupOptions) -> bool:
    """The selection's narrowing, applied to what the archive says of a job (its category when it was archived)."""
    if not opts.selection.names(record.job_id, json_to_item(record.item).get("user_id")):
        return False
    return not opts.categories or record.category in opts.categories


# --------------------------------------------------------------------------- entry point


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


def start_result(opts: CleanupOptions, run_id: str) -> dict:
    s3_uri = f"s3://{opts.bucket}/{opts.archive_s3_prefix}{run_id}/" if opts.archive_s3_prefix else None
    return {
        "changed": False,
        "state": opts.state,
        "table": opts.table,
        "now": isoformat(opts.now),
        "archive": {
            "path": str(opts.archive_path) if opts.archive_path else None,
            "s3_prefix": s3_uri if opts.state != "restored" else None,
            "run_id": run_id,
            "records_written": 0,
            "unreadable_lines": 0,
        },
    }


def run_module() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True, **SPEC_CONSTRAINTS)
    require_boto3(module)
    validate_aws_params(module)
    try:
        opts = CleanupOptions.from_params(module.params)
    except OptionError as exc:
        module.fail_json(msg=str(exc))

    dynamodb = aws_client(module, "dynamodb", max_pool_connections=opts.segments + opts.parallel + 2)
    counter = RequestCounter().attach(dynamodb)
    transactions = None
    if opts.write_batch_size > 1:
        # Transactions are built from the items DynamoDB returned: botocore's second walk over every value
        # (a fifth of a batched delete's CPU) is left to the endpoint, which validates them anyway; and they
        # are sent as the JSON the cleanup encoded once (to cut batches by size), not serialized again.
        transactions = aws_client(
            module, "dynamodb", max_pool_connections=opts.parallel + 2, parameter_validation=False
        )
        send_encoded(transactions)
        counter.attach(transactions)
    s3 = None
    if opts.delete_audio or opts.archive_s3_prefix or opts.state == "restored":
        s3 = aws_client(module, "s3", max_pool_connections=opts.parallel + 2)
        counter.attach(s3)
    run_id = new_run_id()
    try:
        description = dynamodb.describe_table(TableName=opts.table)["Table"]
    except aws_errors() as exc:
        module.fail_json(
            msg=describe_aws_error(exc, f"{ACTION_VERBS[opts.state]} items of table {opts.table}", opts.endpoint_url)
        )
    scope = f"table {opts.table}"
    lease = Lease(
        dynamodb, opts.lock_table, description["TableArn"], scope, opts.lease_seconds, run_id, opts.endpoint_url
    )
    locks = RunLocks()
    abort = Abort()
    try:
        take_locks(locks, opts, description["TableArn"], run_id)
        run_locked(module, opts, dynamodb, s3, counter, run_id, description, lease, abort, transactions)
    except LockHeld as exc:
        module.fail_json(msg=str(exc))
    finally:
        warning = lease.release()
        locks.release()
        if warning:
            module.warn(warning)


def take_locks(locks: RunLocks, opts: CleanupOptions, table_arn: str, run_id: str) -> None:
    """The table's lock, then the archive's (a fixed order: two runs never wait on each other in a cycle)."""
    owner = {"pid": os.getpid(), "run_id": run_id, "since": isoformat(datetime.now(UTC))}
    locks.take(RunLock(table_lock_path(opts.lock_dir, table_arn, opts.endpoint_url), f"table {opts.table}"), owner)
    if opts.archive_path is not None:
        path = archive_lock_path(opts.lock_dir, opts.archive_path)
        locks.take(RunLock(path, f"archive {opts.archive_path}"), owner)


def preflight(run: Run) -> None:
    """What can be known before the first write, checked before it (in check mode too); OptionError on the first problem."""
    opts = run.opts
    if opts.progress_path is not None:
        problem = check_progress_file(opts.progress_path)
        if problem:
            raise OptionError(f"progress_path {opts.progress_path}: {problem}; nothing was changed.")
    if opts.state != "restored":
        problem = check_archive_file(opts.archive_path)
        if problem:
            raise OptionError(f"archive_path {problem}.")
        if opts.delete_audio or opts.archive_s3_prefix:
            require_listable_bucket(run.s3, opts.bucket, opts.endpoint_url)
    if opts.state == "expiring":
        if opts.ttl_attribute in run.key.names():
            raise OptionError(f"ttl_attribute {opts.ttl_attribute} is a key attribute of {opts.table}: name another.")
        description = run.dynamodb.describe_time_to_live(TableName=opts.table).get("TimeToLiveDescription", {})
        enabled = description.get("TimeToLiveStatus") in ("ENABLED", "ENABLING")
        attribute = description.get("AttributeName")
        if enabled and attribute != opts.ttl_attribute:
            raise OptionError(
                f"ttl_attribute {opts.ttl_attribute}: {opts.table} expires items by {attribute} "
                f"(TTL {description.get('TimeToLiveStatus')}): set ttl_attribute={attribute}; nothing was changed."
            )
        if not enabled:
            run.module.warn(
                f"TTL is not enabled on {opts.table}.{opts.ttl_attribute}: the jobs are marked but DynamoDB will not "
                f"delete them until you enable it (aws dynamodb update-time-to-live)."
            )


def check_progress_file(path: Path) -> str | None:
    """Why the progress file could not be written (its directory, or a directory in its place), or None."""
    if path.is_dir():
        return "is a directory"
    if not path.parent.is_dir():
        return f"its directory {path.parent} does not exist"
    if not os.access(path.parent, os.W_OK | os.X_OK):
        return f"its directory {path.parent} is not writable"
    return None


def take_lease(run: Run, lease: Lease) -> None:
    """After the read-only checks, before the selection is read: the lease every control node sees."""
    try:
        if run.check_mode:
            lease.refuse_if_held()  # a dry run writes nothing, but its preview would be stale
        else:
            lease.acquire(run.abort)
    except aws_errors() as exc:
        raise OptionError(
            describe_aws_error(exc, f"take the lease on {lease.scope} in {lease.lock_table}", run.opts.endpoint_url)
        ) from None


def run_locked(
    module: AnsibleModule,
    opts: CleanupOptions,
    dynamodb,
    s3,
    counter: RequestCounter,
    run_id: str,
    description: dict,
    lease: Lease,
    abort: Abort,
    transactions=None,
) -> None:
    result = start_result(opts, run_id)
    stats = ScanStats()
    # Started only once the checks passed (preflight): a refused run leaves no progress file behind.
    progress = Progress(
        None if module.check_mode else opts.progress_path, state=opts.state, table=opts.table, run_id=run_id
    )
    progress_wanted, progress.path = progress.path, None
    try:
        key = TableKey.from_description(description)
        key.refuse_jobs_only(opts.table, opts.state, list(opts.jobs_only_used))
        plan = cleanup_read_plan(
            opts.state, opts.user_ids, opts.user_index, opts.delete_audio, opts.template, description
        )
        result["key"] = key.report()
        result["read"] = plan.report()
        if plan.reason and plan.method == "scan" and opts.user_ids is not None and opts.user_index:
            module.warn(f"Not using {opts.user_index}: {plan.reason}.")
        run = Run(
            module,
            opts,
            dynamodb,
            s3,
            key,
            plan,
            RecordHeader(run_id, opts.table, opts.state),
            result,
            abort,
            stats,
            transactions=transactions,
            item_count=int(description.get("ItemCount") or 0),
            progress=progress,
        )
        preflight(run)
        take_lease(run, lease)
        progress.path = progress_wanted
        success = HANDLERS[opts.state](run)
    except (OptionError, LockHeld, LeaseHeld, LeaseSetupError) as exc:
        fail_with_progress(module, progress, str(exc))
    except aws_errors() as exc:
        fail_with_progress(
            module,
            progress,
            describe_aws_error(exc, f"{ACTION_VERBS[opts.state]} items of table {opts.table}", opts.endpoint_url),
            **result,
        )
    # Released before the result is written, so a lease left behind is part of what the run reports.
    lease_problem = lease.release()
    if lease_problem:
        abort.set(lease_problem)
        success = False
    result["requests"] = {
        "pages": stats.pages,
        "http_requests": counter.total,
        "by_operation": dict(sorted(counter.counts.items())),
    }
    result.update(resource_actions(module))
    if not success:
        failed = result["counts"]["failed"] + result["counts"]["not_attempted"] + len(result["audio"]["failed"])
        fail_with_progress(
            module,
            progress,
            f"Cleanup incomplete: {result['counts']['changed']} jobs changed, {failed} jobs or objects failed or "
            f"not attempted (first: {abort.reason or first_failure(result)}); the archive holds every changed job; "
            f"re-run to finish.",
            **result,
        )
    finish_progress(module, progress, result)
    module.exit_json(**result)


def finish_progress(module: AnsibleModule, progress: Progress, result: dict, msg: str | None = None) -> None:
    """The progress file's last state: the result's counts (and its audio), done or failed."""
    counts = result.get("counts")
    done = sum(counts.values()) if counts else progress.data["done"]
    total = result.get("selected", progress.data["total"])
    audio = result.get("audio")
    extra = {"audio": {"deleted": audio["deleted"], "failed": len(audio["failed"])}} if audio else {}
    progress.finish(counts, done, total, msg=msg, **extra)
    if progress.error:
        module.warn(progress.error)


def fail_with_progress(module: AnsibleModule, progress: Progress, msg: str, **result) -> None:
    finish_progress(module, progress, result, msg=msg)
    module.fail_json(msg=msg, **result)


def main() -> None:
    map_large_buffers()  # the scan's pages would otherwise leave their holes resident
    run_module()


if __name__ == "__main__":
    main()
