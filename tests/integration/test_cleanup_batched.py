"""Batched conditional writes (write_batch_size): TransactWriteItems against moto's server, through ansible-playbook.

A delete inside a transaction returns no item, so its condition is the whole
archived item: these tests change jobs after they are archived and before (or
while) their transaction reaches moto, and check that each changed job is skipped
and kept, every deleted job is archived exactly as it was deleted, and the rest
of the batch is still deleted.
"""

from __future__ import annotations

import json
import random
import threading
from pathlib import Path

import pytest
import seed_jobs
from cleanup_module import run_cleanup_module
from fault_proxy import FaultPlan, FaultProxy, FaultRule
from support.playbook import run_playbook
from test_cleanup_playbook import (
    GUIDE_NOW,
    TABLE,
    audio_key_of,
    client,
    guide,
    job,
    object_keys,
    put_jobs,
    table_items,
)

LEGACY = "Automatic decryption not yet implemented"


def cleanup_play(tmp_path: Path, endpoint_url: str, *, check: bool = False, diff: bool = False, **options):
    """processing_jobs_cleanup in a one-task playbook (its options set directly, moto-specific parallel=1)."""
    result_path = tmp_path / "result.json"
    result_path.unlink(missing_ok=True)
    arguments = {
        "endpoint_url": endpoint_url,
        "region": "us-east-1",
        "now": GUIDE_NOW,
        "archive_path": str(tmp_path / "archive.jsonl"),
        "lock_dir": str(tmp_path / "locks"),
        "parallel": 1,  # moto's transactions, one at a time (see above)
        **options,
    }
    play = [
        {
            "name": "Batched cleanup",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {"name": "Clean up", "processing_jobs_cleanup": arguments, "register": "done", "ignore_errors": True},
                {
                    "name": "Keep the result",
                    "ansible.builtin.copy": {"content": "{{ done | to_json }}", "dest": str(result_path)},
                    "check_mode": False,
                    "diff": False,
                    "changed_when": False,  # the test's own bookkeeping: the recap counts only the cleanup
                },
            ],
        }
    ]
    playbook = tmp_path / "batched.yml"
    playbook.write_text(json.dumps(play))
    run = run_playbook(str(playbook), check=check, diff=diff, env={"AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing"})  # fmt: skip
    return run, json.loads(result_path.read_text()) if result_path.exists() else None


def archived(tmp_path: Path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "archive.jsonl").read_text().splitlines()]


def legacy_ids(expected: dict) -> set[str]:
    return set(expected["job_ids"]["by_category"]["legacy_encryption"])


class BeforeTransactions(FaultProxy):
    """Calls `change(request_number)` before each TransactWriteItems request reaches moto (after the archive)."""

    def __init__(self, upstream_url: str, change, plan: FaultPlan | None = None) -> None:
        super().__init__(upstream_url, plan=plan)
        self._change, self._seen, self._guard = change, 0, threading.Lock()

    def admit(self, operation: str, request_bytes: int) -> int:
        if operation == "TransactWriteItems":
            with self._guard:
                self._seen += 1
                self._change(self._seen)
        return super().admit(operation, request_bytes)


# --------------------------------------------------------------------------- batches, predicted and exact


def test_batched_deletes_go_in_transactions_and_the_dry_run_predicts_them(aws, tmp_path):
    expected, before = guide(aws.endpoint_url)
    legacy = legacy_ids(expected)
    keys = {audio_key_of(before[job_id]) for job_id in legacy}
    options = {"categories": ["legacy_encryption"], "delete_audio": True, "write_batch_size": 10}

    with FaultProxy(aws.endpoint_url) as proxy:
        preview, predicted = cleanup_play(tmp_path, proxy.url, check=True, diff=True, **options)
    assert preview.returncode == 0, preview.output
    # Reads only (GetItem: the dry run checks that no other run holds the table's lease).
    assert set(proxy.counts) <= {"DescribeTable", "Scan", "ListObjectsV2", "GetItem"}, proxy.counts
    assert predicted["changed"] and set(predicted["job_ids"]) == legacy

    with FaultProxy(aws.endpoint_url) as proxy:
        run, done = cleanup_play(tmp_path, proxy.url, **options)
    assert run.returncode == 0 and not done.get("failed"), run.output
    assert done["counts"] == {"changed": 34, "unchanged": 0, "skipped": 0, "failed": 0, "not_attempted": 0}
    assert set(done["job_ids"]) == set(predicted["job_ids"]) and done["deleted_objects_count"] == len(keys)
    # 34 jobs in transactions of at most 10: four requests, none of them single deletes.
    assert proxy.counts["TransactWriteItems"] == 4 and "DeleteItem" not in proxy.counts
    assert done["writes"] == {"write_batch_size": 10, "transactions": 4, "resubmitted": 0, "fallback": None}
    assert set(table_items(aws.endpoint_url)) == set(before) - legacy
    assert object_keys(aws.endpoint_url, prefix="audio_upload/") & keys == set()

    records = archived(tmp_path)
    jobs = {r["job_id"]: r["item"] for r in records if r["record"] == "job"}
    # The guide's items hold strings and numbers only: their archive form is the low-level one.
    assert set(jobs) == legacy and all(jobs[j] == before[j] for j in legacy), "archived exactly"
    assert {r["outcome"] for r in records if r["record"] == "result"} == {"deleted"}

    again, nothing = cleanup_play(tmp_path, aws.endpoint_url, **options)
    assert again.returncode == 0 and again.changed() == 0 and nothing["counts"]["changed"] == 0, again.output


def test_an_out_of_range_batch_size_is_refused_in_one_line_and_nothing_changes(aws, tmp_path):
    _, before = guide(aws.endpoint_url)
    _, result = cleanup_play(tmp_path, aws.endpoint_url, categories=["legacy_encryption"], write_batch_size=101)
    assert result["failed"] and result["msg"] == "write_batch_size must be between 1 and 100, got 101."
    assert table_items(aws.endpoint_url) == before


# --------------------------------------------------------------------------- changed after the archive


def test_a_job_changed_after_its_archive_is_skipped_kept_and_its_batch_still_deleted(aws, tmp_path):
    """Changes the old status-and-message condition let through: a retry count, a new attribute, a new message."""
    jobs = [job(f"j{index:02d}", "failed", "2025-10-10T10:00:00Z", error_message=LEGACY) for index in range(12)]
    seed_jobs.create_resources(aws.endpoint_url)
    put_jobs(aws.endpoint_url, jobs)
    dynamodb = client(aws.endpoint_url, "dynamodb")
    changes = {
        "j01": ("SET retry_count = :v", {":v": {"N": "4"}}),  # an attribute the job had
        "j05": ("SET last_attempt_at = :v", {":v": {"S": "2025-10-19T17:59:00"}}),  # one it lacked
        "j09": ("SET error_message = :v", {":v": {"S": LEGACY + " (again)"}}),
    }

    def change(request_number: int) -> None:
        if request_number == 1:
            for job_id, (expression, values) in changes.items():
                dynamodb.update_item(
                    TableName=TABLE,
                    Key={"job_id": {"S": job_id}},
                    UpdateExpression=expression,
                    ExpressionAttributeValues=values,
                )

    with BeforeTransactions(aws.endpoint_url, change) as proxy:
        run, done = cleanup_play(tmp_path, proxy.url, categories=["legacy_encryption"], write_batch_size=25)
    assert run.returncode == 0 and not done.get("failed"), run.output
    assert done["counts"]["changed"] == 9 and done["counts"]["skipped"] == 3, done["counts"]
    # One transaction cancelled by the three, then the nine others sent again.
    assert proxy.counts["TransactWriteItems"] == 2
    assert done["writes"]["transactions"] == 2 and done["writes"]["resubmitted"] == 9
    reasons = {entry["job_id"]: entry["reason"] for entry in done["skipped_jobs"]}
    assert set(reasons) == set(changes)
    assert "retry_count is now Decimal('4')" in reasons["j01"]
    assert "last_attempt_at is now '2025-10-19T17:59:00'" in reasons["j05"]
    assert "error_message is now" in reasons["j09"]

    left = table_items(aws.endpoint_url)
    assert set(left) == set(changes), "the changed jobs are kept, the rest deleted"
    assert left["j01"]["retry_count"] == {"N": "4"}
    outcomes = {r["job_id"]: r["outcome"] for r in archived(tmp_path) if r["record"] == "result"}
    assert {job_id for job_id, outcome in outcomes.items() if outcome == "skipped"} == set(changes)

    restored = run_cleanup_module(aws.endpoint_url, tmp_path, state="restored")
    assert not restored.get("failed"), restored
    assert restored["counts"]["changed"] == 9 and restored["not_restored"]["by_reason"] == {"skipped": 3}
    assert table_items(aws.endpoint_url)["j01"]["retry_count"] == {"N": "4"}, "a kept job is never overwritten"


def test_jobs_changed_while_their_batches_are_in_flight_are_never_deleted_unarchived(aws, tmp_path):
    """Writes land on random selected jobs while each transaction is on its way; every delete must match the archive.

    Each write sets retry_count (as the processor does) to a counter; for every deleted job the archive
    must hold the last write that landed on it. The writes are made as each transaction passes the
    proxy, one transaction at a time: moto cancels a transaction by putting back a copy of the whole
    table, which would also undo a write made while it runs (moto's doing, not the cleanup's). With the
    old condition (status and error_message only) this test fails: every job is deleted.
    """
    jobs = [job(f"r{index:03d}", "failed", "2025-10-10T10:00:00Z", error_message=LEGACY) for index in range(120)]
    seed_jobs.create_resources(aws.endpoint_url)
    put_jobs(aws.endpoint_url, jobs)
    dynamodb = client(aws.endpoint_url, "dynamodb")
    last_touch: dict[str, int] = {}  # job -> the counter of the last write that landed on it
    rng = random.Random(7)

    def touch(job_id: str) -> None:
        value = len(last_touch) + sum(last_touch.values()) + 1  # grows with every landed write
        try:
            dynamodb.update_item(
                TableName=TABLE,
                Key={"job_id": {"S": job_id}},
                UpdateExpression="SET retry_count = :n",
                ConditionExpression="attribute_exists(job_id)",
                ExpressionAttributeValues={":n": {"N": str(value)}},
            )
            last_touch[job_id] = value
        except dynamodb.exceptions.ConditionalCheckFailedException:
            pass  # already deleted: this write never landed

    def in_flight(_request_number: int) -> None:
        for _ in range(4):
            touch(f"r{rng.randrange(120):03d}")

    with BeforeTransactions(aws.endpoint_url, in_flight) as proxy:
        done = run_cleanup_module(
            proxy.url, tmp_path, categories=["legacy_encryption"], write_batch_size=20, parallel=1
        )
    assert not done.get("failed"), done.get("msg")
    assert proxy.counts["TransactWriteItems"] >= 6
    left = table_items(aws.endpoint_url)
    archived_items = {r["job_id"]: r["item"] for r in archived(tmp_path) if r["record"] == "job"}
    deleted = set(archived_items) - set(left)
    assert done["counts"]["changed"] == len(deleted) > 0 and done["counts"]["skipped"] == len(left) > 0
    assert set(left) <= set(last_touch), "only jobs written to are kept"
    for job_id in deleted:
        held = archived_items[job_id].get("retry_count", {}).get("N")
        assert held == (str(last_touch[job_id]) if job_id in last_touch else None), (
            f"{job_id} was deleted after a write the archive does not hold"
        )


# --------------------------------------------------------------------------- faults


def test_throttled_and_failing_transactions_are_retried_and_counts_stay_exact(aws, tmp_path):
    expected, before = guide(aws.endpoint_url)
    legacy = legacy_ids(expected)
    plan = FaultPlan(
        [FaultRule("TransactWriteItems", "throttling", every=2), FaultRule("TransactWriteItems", "http_500", every=3)]
    )
    with FaultProxy(aws.endpoint_url, plan=plan) as proxy:
        run, done = cleanup_play(
            tmp_path, proxy.url, categories=["legacy_encryption"], delete_audio=True, write_batch_size=10
        )
    assert run.returncode == 0, run.output
    assert proxy.faults["TransactWriteItems:throttling"] >= 1 and proxy.faults["TransactWriteItems:http_500"] >= 1
    assert done["counts"] == {"changed": 34, "unchanged": 0, "skipped": 0, "failed": 0, "not_attempted": 0}
    assert done["writes"]["transactions"] == 4, "botocore's retries reuse the request and its token"
    assert set(table_items(aws.endpoint_url)) == set(before) - legacy


@pytest.mark.parametrize("state", ["requeued", "expiring"])
def test_requeues_and_expiries_go_in_transactions_too(aws, tmp_path, state):
    expected, before = guide(aws.endpoint_url)
    retries = set(expected["job_ids"]["by_category"]["max_retries"])
    # The guide's jobs are days old: a requeue takes them as fresh jobs (the backend's 24 h rule).
    fresh = {"requeue_fresh": True} if state == "requeued" else {}
    with FaultProxy(aws.endpoint_url) as proxy:
        run, done = cleanup_play(
            tmp_path, proxy.url, state=state, categories=["max_retries"], reason="fixed", write_batch_size=4, **fresh
        )
    assert run.returncode == 0 and done["counts"]["changed"] == len(retries) == 10, run.output
    # No job updated one request at a time (an UpdateItem or two are the lease's renewal and release).
    assert proxy.counts["TransactWriteItems"] == 3 and proxy.counts.get("UpdateItem", 0) < len(retries)
    after = table_items(aws.endpoint_url)
    for job_id in retries:
        if state == "requeued":
            assert after[job_id]["status"] == {"S": "pending"} and "error_message" not in after[job_id]
        else:
            assert "expires_at" in after[job_id] and after[job_id]["status"] == before[job_id]["status"]
    again, nothing = cleanup_play(tmp_path, aws.endpoint_url, state=state, categories=["max_retries"],
                                  reason="fixed", write_batch_size=4)  # fmt: skip
    assert again.returncode == 0 and nothing["counts"]["changed"] == 0, again.output


def test_the_cleanup_reads_pages_of_at_most_a_thousand_jobs(aws, tmp_path):
    """The cleanup reads whole items (a 1 MB page is 11 MiB while decoded): its pages are capped at 1,000 jobs."""
    seed_jobs.create_resources(aws.endpoint_url)
    jobs = [job(f"page-{n:04d}", "failed", "2025-10-01T00:00:00Z", error_message=LEGACY) for n in range(2_050)]
    assert seed_jobs.write_items(client(aws.endpoint_url, "dynamodb"), TABLE, jobs) == 2_050

    with FaultProxy(aws.endpoint_url) as proxy:
        preview, predicted = cleanup_play(
            tmp_path, proxy.url, check=True, categories=["legacy_encryption"], segments=1, max_changes=5_000
        )
    assert preview.returncode == 0, preview.output
    assert predicted["counts"]["changed"] == 2_050
    # 1,000 + 1,000 + 50 items: three pages, where one 1 MB page would hold them all.
    assert proxy.counts["Scan"] == predicted["requests"]["pages"] == 3
