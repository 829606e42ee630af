"""Items dated at the calendar's edge: valid ISO-8601, out of range once in UTC (issue 20.2).

`0001-01-01T00:00:00+14:00` is year 0 in UTC and `9999-12-31T23:59:59-14:00` year 10000: Python
cannot hold either. The audit, the cleanup's dry run and the diagnosis' selection all read items
through module_utils/panzoto/jobs.py, so each must count such an item as malformed and carry on.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
import yaml
from support.diagnose import JOBS_TABLE, FailedJob, report_json, seed_failed_jobs
from support.playbook import run_playbook

NOW = "2025-10-10T09:00:00Z"
T0 = datetime(2025, 10, 9, 14, 0, tzinfo=UTC)
EDGES = ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00")


@pytest.fixture(scope="module")
def edge_table(module_aws) -> tuple[str, FailedJob]:
    """One well-formed failed job and one failed job per edge date, all max_retries."""
    endpoint_url = module_aws.endpoint_url
    good = FailedJob("processing_timeout", created_at=T0, last_attempt_at=T0 + timedelta(minutes=10))
    seed_failed_jobs(endpoint_url, [good])
    table = boto3.resource("dynamodb", endpoint_url=endpoint_url, region_name="us-east-1").Table(JOBS_TABLE)
    for index, edge in enumerate(EDGES):
        table.put_item(Item={**good.item(), "job_id": f"edge-{index}", "created_at": edge, "last_attempt_at": edge})
    return endpoint_url, good


def test_the_audit_counts_edge_dates_as_malformed(edge_table, tmp_path: Path) -> None:
    endpoint_url, _ = edge_table
    run = run_playbook(
        "audit_jobs.yml",
        extra_vars={"audit_report_dir": str(tmp_path), "audit_now": NOW, "audit_fail_on_breach": False},
        env={"AWS_ENDPOINT_URL": endpoint_url},
    )

    assert run.returncode == 0, run.output
    report = json.loads((tmp_path / "job-audit.json").read_text())
    assert report["status"] == "ok"
    assert report["malformed"]["by_reason"] == {"created_at_out_of_range": len(EDGES)}
    assert report["by_status"]["failed"] == 1


def test_a_cleanup_dry_run_skips_edge_dates_and_plans_the_rest(edge_table, tmp_path: Path) -> None:
    endpoint_url, good = edge_table
    report_path = tmp_path / "cleanup.json"
    run = run_playbook(
        "cleanup_jobs.yml",
        extra_vars={
            "cleanup_jobs_now": NOW,
            "cleanup_jobs_categories": ["max_retries"],
            "cleanup_jobs_older_than": "1h",
            "cleanup_jobs_archive_path": str(tmp_path / "archive.jsonl"),
            "cleanup_jobs_report_path": str(report_path),
        },
        check=True,
        env={"AWS_ENDPOINT_URL": endpoint_url},
    )

    assert run.returncode == 0, run.output
    assert "Traceback" not in run.output and "OverflowError" not in run.output
    report = json.loads(report_path.read_text())
    assert good.job_id in json.dumps(report)
    assert "edge-0" not in json.dumps(report) and "edge-1" not in json.dumps(report)


def test_the_diagnosis_selection_skips_edge_dates(edge_table, tmp_path: Path) -> None:
    endpoint_url, good = edge_table
    (tmp_path / "logs").mkdir()
    # A log that was read (a diagnosis that read nothing fails: it would have checked nothing).
    (tmp_path / "logs" / "app_20251019_120000.log").write_text("2025-10-19 12:00:00 | INFO | main:start:1 - up\n")
    hosts = {
        "api-a": {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "diagnose_jobs_log_dir": str(tmp_path / "logs"),
            "diagnose_jobs_read_journal": False,
            "diagnose_jobs_become": False,
        }
    }
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {"api_servers": {"hosts": hosts}}}}))
    run = run_playbook(
        "diagnose_jobs.yml",
        inventory=inventory,
        extra_vars={"diagnose_jobs_report_dir": str(tmp_path / "reports"), "diagnose_jobs_now": NOW},
        env={"AWS_ENDPOINT_URL": endpoint_url, "TZ": "UTC"},
    )

    assert run.returncode == 0, run.output
    assert "Traceback" not in run.output and "OverflowError" not in run.output
    selected = [job["job_id"] for job in report_json(tmp_path / "reports")["jobs"]]
    assert selected == [good.job_id]
