"""playbooks/audit_jobs.yml under ansible-runner (AWX's engine), unchanged: the reports land in the job's
artifact directory (which AWX keeps) and the summary counts are published with set_stats."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import ansible_runner
import pytest
import seed_jobs

REPO_ROOT = Path(__file__).resolve().parents[2]
GUIDE_NOW = "2025-10-19T18:00:00Z"


@pytest.fixture
def guide_snapshot(aws):
    seed_jobs.seed_guide_snapshot(aws.endpoint_url)
    return aws


def run_under_runner(tmp_path: Path, endpoint_url: str, ident: str, **extravars) -> ansible_runner.Runner:
    (tmp_path / "runner").mkdir(exist_ok=True)
    return ansible_runner.run(
        private_data_dir=str(tmp_path / "runner"),
        project_dir=str(REPO_ROOT),
        playbook="playbooks/audit_jobs.yml",
        ident=ident,
        quiet=True,
        envvars={
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "AWS_ENDPOINT_URL": endpoint_url,
            "ANSIBLE_NOCOLOR": "1",
        },
        extravars={"audit_now": GUIDE_NOW, **extravars},
    )


def test_reports_go_to_the_artifact_directory_and_counts_to_set_stats(guide_snapshot, tmp_path: Path) -> None:
    runner = run_under_runner(tmp_path, guide_snapshot.endpoint_url, "audit-1")

    # A breach is a failed job for AWX (exit 2), with its reports kept.
    assert (runner.status, runner.rc) == ("failed", 2), runner.stdout.read()
    artifacts = tmp_path / "runner" / "artifacts" / "audit-1"
    report = json.loads((artifacts / "job-audit.json").read_text())
    assert report["status"] == "breached" and report["by_status"]["failed"] == 49
    for name in ("job-audit.html", "job-audit.md", "job-audit-junit.xml", "job-audit.prom", "job-audit-history.jsonl"):
        assert (artifacts / name).exists(), name
    stats = next(event for event in runner.events if event["event"] == "playbook_on_stats")
    published = stats["event_data"]["artifact_data"]
    assert published["audit_status"] == "breached"
    assert int(published["audit_failed"]) == 49
    assert published["audit_breached"] == ["failed", "legacy_encryption"]
    assert published["audit_by_category"] == {"legacy_encryption": 34, "max_retries": 10, "transcription_failed": 5}


def test_an_audit_that_cannot_run_is_told_apart_under_runner(tmp_path: Path) -> None:
    runner = run_under_runner(tmp_path, "http://127.0.0.1:9", "audit-error")

    assert runner.rc == 4
    report = json.loads((tmp_path / "runner" / "artifacts" / "audit-error" / "job-audit.json").read_text())
    assert report["status"] == "error" and "Cannot reach the AWS endpoint" in report["error"]
