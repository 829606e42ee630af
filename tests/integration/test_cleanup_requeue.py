"""Requeue under the backend's 24 h rule, and stuck `processing` jobs, through ansible-playbook against moto.

The processor fails every pending job created more than 24 h ago as `Job expired - too old` before trying
it; a requeue that keeps such a job's created_at is wasted. Nothing here is requeued that way by accident.
"""

from __future__ import annotations

import seed_jobs
from test_cleanup_playbook import GUIDE_NOW, cleanup, guide, job, put_jobs, table_items

MAX_RETRIES = {"cleanup_jobs_state": "requeued", "cleanup_jobs_categories": ["max_retries"]}


def test_requeue_of_jobs_older_than_a_day_is_refused_in_one_line_naming_the_rule(aws, tmp_path):
    _, before = guide(aws.endpoint_url)
    for check in (True, False):
        run, _report = cleanup(tmp_path, aws.endpoint_url, check=check, **MAX_RETRIES)
        assert run.returncode != 0, run.output[-3000:]
        # Ansible's own error line carries the module's message whole, on one line.
        lines = [line for line in run.output.splitlines() if "[ERROR]" in line and "created more than 24 h" in line]
        assert lines, run.output[-3000:]
        assert "Job expired - too old" in lines[0] and "requeue_fresh=true" in lines[0]
        assert "nothing was changed" in lines[0] and "10 jobs to requeue" in lines[0]
    assert table_items(aws.endpoint_url) == before and not (tmp_path / "archive.jsonl").exists()


def test_a_fresh_requeue_dry_run_shows_whose_created_at_is_reset_and_changes_nothing(aws, tmp_path):
    expected, before = guide(aws.endpoint_url)
    max_retries = set(expected["job_ids"]["by_category"]["max_retries"])
    run, report = cleanup(
        tmp_path, aws.endpoint_url, check=True, diff=True, cleanup_jobs_requeue_fresh=True, **MAX_RETRIES
    )
    assert run.returncode == 0, run.output[-3000:]
    assert report["created_at_reset"]["count"] == len(max_retries)
    assert {entry["job_id"] for entry in report["created_at_reset"]["jobs"]} == max_retries
    assert "original_created_at" in run.stdout  # the diff says what becomes of created_at
    assert table_items(aws.endpoint_url) == before


def test_fresh_jobs_are_requeued_without_the_option_and_keep_their_created_at(aws, tmp_path):
    fresh = job("fresh", "failed", "2025-10-19T12:00:00Z", error_message="Processing error: Request timed out.")
    seed_jobs.create_resources(aws.endpoint_url)
    put_jobs(aws.endpoint_url, [fresh])
    run, report = cleanup(tmp_path, aws.endpoint_url, cleanup_jobs_state="requeued", cleanup_jobs_job_ids=["fresh"])
    assert run.returncode == 0, run.output[-3000:]
    item = table_items(aws.endpoint_url)["fresh"]
    assert item["status"] == {"S": "pending"} and item["created_at"] == {"S": "2025-10-19T12:00:00Z"}
    assert "original_created_at" not in item and "created_at_reset" not in report


def test_stuck_processing_jobs_are_selectable_for_requeue_and_delete(aws, tmp_path):
    # Left `processing` by a restart or by the manual transcribe endpoint: nothing in the backend resets them.
    jobs = [
        job("stuck-1", "processing", "2025-10-19T14:00:00Z"),
        job("stuck-2", "processing", "2025-10-19T15:00:00Z"),
        job("working", "processing", "2025-10-19T17:50:00Z"),  # 10 minutes old at GUIDE_NOW: still working
    ]
    seed_jobs.create_resources(aws.endpoint_url)
    put_jobs(aws.endpoint_url, jobs)
    run, report = cleanup(
        tmp_path, aws.endpoint_url, cleanup_jobs_state="requeued", cleanup_jobs_statuses=["processing"],
        cleanup_jobs_stuck_after="2h", cleanup_jobs_job_ids=["stuck-1", "working"],
    )  # fmt: skip
    assert run.returncode == 0, run.output[-3000:]
    assert report["job_ids"] == ["stuck-1"] and report["now"].startswith(GUIDE_NOW[:16])
    items = table_items(aws.endpoint_url)
    assert items["stuck-1"]["status"] == {"S": "pending"} and items["working"]["status"] == {"S": "processing"}

    run, report = cleanup(tmp_path, aws.endpoint_url, cleanup_jobs_statuses=["processing"])
    assert run.returncode == 0, run.output[-3000:]
    assert report["job_ids"] == ["stuck-2"]
    assert sorted(table_items(aws.endpoint_url)) == ["stuck-1", "working"]
