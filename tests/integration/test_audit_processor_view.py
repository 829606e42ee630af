"""The audit's summary through the `ansible` CLI, jobs stuck in processing, and the processor's own
view of the table (issues 17 and 22), against moto's server.

The starvation test fills the table past DynamoDB's 1 MB Scan page, as production did (1,500 completed
jobs of about 2 KB): the backend's processor reads one page filtered on `status = pending` and never
the next, so a pending job beyond it is never processed. The audit must say so.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import local_aws
import pytest
import seed_jobs
import yaml
from support.playbook import REPO_ROOT, VENV_BIN, run_playbook

TABLE = "panzoto-processing-jobs"
NOW = datetime(2025, 10, 19, 18, 0, tzinfo=UTC)
PROCESSOR_SCAN = {
    "FilterExpression": "#s = :p",
    "ExpressionAttributeNames": {"#s": "status"},
    "ExpressionAttributeValues": {":p": {"S": "pending"}},
}


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def job(job_id: str, status: str, created: datetime, **extra) -> dict:
    return {
        "job_id": job_id,
        "user_id": "user-1",
        "job_type": "transcription",
        "status": status,
        "audio_file_id": f"audio-{job_id}",
        "created_at": iso(created),
        "retry_count": 0,
        **extra,
    }


def audit(endpoint_url: str, report_dir: Path, verbosity: int = 0, **extra_vars):
    run = run_playbook(
        "audit_jobs.yml",
        extra_vars={"audit_report_dir": str(report_dir), "audit_now": iso(NOW), "audit_segments": 1, **extra_vars},
        env={"AWS_ENDPOINT_URL": endpoint_url},
        verbosity=verbosity,
    )
    report = report_dir / "job-audit.json"
    return run, json.loads(report.read_text()) if report.exists() else None


def test_the_ansible_cli_returns_the_summary_counts(aws) -> None:
    expected = seed_jobs.seed_guide_snapshot(aws.endpoint_url)

    completed = subprocess.run(
        [
            str(VENV_BIN / "ansible"),
            "localhost",
            "-m",
            "processing_jobs_audit",
            "-a",
            f"table={TABLE} endpoint_url={aws.endpoint_url} now={iso(NOW)} check_processor_view=true",
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr
    result = yaml.safe_load(completed.stdout.split("=>", 1)[1])  # the project's callback prints YAML
    assert result["by_status"] == expected["by_status"]
    assert result["by_category"] == {name: n for name, n in expected["by_category"].items() if n}
    assert {t["name"] for t in result["breached"]} == {"failed", "legacy_encryption"}
    assert len(result["threshold_results"]) == 6 and result["failed_recent"] == 0
    assert result["pending_stuck"]["count"] == expected["pending_stuck"]
    assert "jobs" not in result["pending_stuck"]  # no job ids unless asked
    assert result["processing_stuck"]["count"] == 0 and result["pending_invisible"]["count"] == 0
    assert result["pending_invisible"]["processor_page"] == {
        "scanned_count": 60,
        "pending_returned": 2,
        "more_pages": False,
    }
    assert result["reports"] == {}  # no report_dir: nothing written


def test_jobs_stuck_in_processing_are_reported_alerted_and_requeued(aws, tmp_path: Path) -> None:
    seed_jobs.create_resources(aws.endpoint_url)
    table = boto3.resource("dynamodb", endpoint_url=aws.endpoint_url, region_name="us-east-1").Table(TABLE)
    attempt = NOW - timedelta(hours=2)
    table.put_item(Item=job("forgotten", "processing", NOW - timedelta(hours=3), last_attempt_at=iso(attempt)))
    table.put_item(Item=job("working", "processing", NOW - timedelta(minutes=8)))  # within 5m + 15m

    run, report = audit(aws.endpoint_url, tmp_path, verbosity=1)

    assert run.returncode == 2, run.output
    assert "processing_stuck: 1 > 0" in run.output
    stuck = report["processing_stuck"]
    assert stuck["count"] == 1 and stuck["stuck_after_seconds"] == 1200
    assert stuck["jobs"] == [{"job_id": "forgotten", "since": iso(attempt), "age_seconds": 7200.0}]
    step = next(item for item in report["next_steps"] if item["step"] == "requeue_processing")
    assert '"cleanup_jobs_statuses": ["processing"]' in step["command"]
    assert '"cleanup_jobs_state": "requeued"' in step["command"]
    assert "forgotten processing since 2025-10-19 16:00 UTC" in run.stdout  # -v shows ids
    prometheus = (tmp_path / "job-audit.prom").read_text()
    assert f'panzoto_jobs_stuck_processing{{table="{TABLE}"}} 1' in prometheus


@pytest.fixture(scope="module")
def starved(tmp_path_factory: pytest.TempPathFactory):
    """1,500 completed jobs of ~2 KB, then one pending job: the table is past one 1 MB page."""
    with local_aws.running_server(tmp_path_factory.mktemp("moto") / "moto.log") as server:
        seed_jobs.create_resources(server.endpoint_url)
        client = boto3.client("dynamodb", endpoint_url=server.endpoint_url, region_name="us-east-1")
        padding = "x" * 1900
        done = (
            job(f"done-{n:05d}", "completed", NOW - timedelta(days=2), completed_at=iso(NOW), transcript=padding)
            for n in range(1500)
        )
        seed_jobs.write_items(client, TABLE, done)
        seed_jobs.write_items(client, TABLE, [job("starved", "pending", NOW - timedelta(minutes=10))])
        # The premise, checked as the processor would: its one page does not return the pending job.
        page = client.scan(TableName=TABLE, **PROCESSOR_SCAN)
        assert "LastEvaluatedKey" in page and page["Count"] == 0, "the pending job must lie beyond the first page"
        yield server.endpoint_url


def test_pending_jobs_beyond_the_processors_one_page_are_flagged(starved, tmp_path: Path) -> None:
    run, report = audit(starved, tmp_path, verbosity=1)

    assert run.returncode == 2, run.output
    assert "pending_invisible: 1 > 0" in run.output
    invisible = report["pending_invisible"]
    assert invisible["count"] == 1 and invisible["jobs"][0]["job_id"] == "starved"
    page = invisible["processor_page"]
    assert page["more_pages"] is True and page["pending_returned"] == 0 and 0 < page["scanned_count"] < 1501
    # Not stuck by age (10 minutes old): only the processor's view finds it.
    assert report["pending_stuck"]["count"] == 0
    retention = next(item for item in report["next_steps"] if item["step"] == "retention")
    assert "retention" in retention["why"] and '"cleanup_jobs_statuses": ["completed"]' in retention["command"]
    # One extra request: the full scan's pages plus the processor's one page.
    assert report["requests"]["by_operation"]["Scan"] == report["requests"]["pages"] + 1
    assert "[PROCESSOR VIEW]" in run.stdout and "1 pending job(s) it cannot see" in run.stdout


def test_the_processor_view_can_be_left_out(starved, tmp_path: Path) -> None:
    run, report = audit(starved, tmp_path, audit_check_processor_view=False)

    assert run.returncode == 0, run.output
    assert report["pending_invisible"]["checked"] is False and report["pending_invisible"]["count"] == 0
    assert report["requests"]["by_operation"]["Scan"] == report["requests"]["pages"]
