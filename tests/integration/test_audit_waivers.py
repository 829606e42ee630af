"""Waivers, one output at a time through tags, and relative report paths (issue 21), through
ansible-playbook against moto's server with the ops guide's snapshot."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import seed_jobs
from support.local_http import capturing_webhook
from support.playbook import REPO_ROOT, VENV_BIN, run_playbook

GUIDE_NOW = "2025-10-19T18:00:00Z"
THRESHOLDS = {"failed": 100, "legacy_encryption": 10}  # the snapshot breaches legacy_encryption only (34)


@pytest.fixture(scope="module")
def guide(module_aws) -> str:
    seed_jobs.seed_guide_snapshot(module_aws.endpoint_url)
    return module_aws.endpoint_url


def audit(endpoint_url: str, report_dir: Path, args: list[str] | None = None, **extra_vars):
    run = run_playbook(
        "audit_jobs.yml",
        extra_vars={
            "audit_report_dir": str(report_dir),
            "audit_now": GUIDE_NOW,
            "audit_thresholds": THRESHOLDS,
            **extra_vars,
        },
        env={"AWS_ENDPOINT_URL": endpoint_url},
        args=args,
    )
    report = report_dir / "job-audit.json"
    return run, json.loads(report.read_text()) if report.exists() else None


def waiver_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "waivers.yml"
    path.write_text(text)
    return path


def test_a_waived_breach_is_reported_as_waived_and_passes(guide, tmp_path: Path) -> None:
    waivers = waiver_file(
        tmp_path,
        "- threshold: legacy_encryption\n  reason: cleanup after the migration\n  owner: ops@example.com\n"
        "  expires: 2025-10-19\n",  # the last day it holds: the audit's day
    )

    run, report = audit(guide, tmp_path / "reports", audit_waivers_file=str(waivers))

    assert run.returncode == 0, run.output
    assert report["status"] == "ok" and report["breached"] == []
    assert [(w["name"], w["value"], w["waiver"]["owner"]) for w in report["waived"]] == [
        ("legacy_encryption", 34, "ops@example.com")
    ]
    result = next(t for t in report["threshold_results"] if t["name"] == "legacy_encryption")
    assert result["waived"] is True and result["breached"] is False
    text = (tmp_path / "reports" / "job-audit.txt").read_text()
    assert "[THRESHOLDS] WAIVED: legacy_encryption: 34 > 10 (waived: cleanup after the migration)" in text
    junit = ET.fromstring((tmp_path / "reports" / "job-audit-junit.xml").read_text())
    assert junit.get("failures") == "0" and junit.get("skipped") == "1"
    assert "🟡 waived" in (tmp_path / "reports" / "job-audit.md").read_text()


def test_an_expired_waiver_counts_again_and_says_so(guide, tmp_path: Path) -> None:
    waivers = waiver_file(
        tmp_path, "- {threshold: legacy_encryption, reason: migration, owner: ops@example.com, expires: 2025-10-18}\n"
    )

    run, report = audit(guide, tmp_path / "reports", audit_waivers_file=str(waivers))

    assert run.returncode == 2, run.output
    assert report["status"] == "breached" and report["waived"] == []
    assert "legacy_encryption: 34 > 10 (waiver by ops@example.com expired 2025-10-18)" in run.output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "- {threshold: legacy_encryption, reason: r, owner: o, expires: soon}\n",
            "entry 1: expires 'soon' is not a date",
        ),
        (
            "- {threshold: legacy_encryptoin, reason: r, owner: o, expires: 2025-12-01}\n",
            "threshold 'legacy_encryptoin'",
        ),
        ("- {threshold: failed, reason: r, expires: 2025-12-01}\n", "entry 1: owner is missing"),
        ("threshold: failed\n", "must be a YAML list of waivers"),
        ("- [unclosed\n", "not valid YAML"),
    ],
)
def test_a_malformed_waiver_file_fails_in_one_line(guide, tmp_path: Path, text: str, message: str) -> None:
    waivers = waiver_file(tmp_path, text)

    run, report = audit(guide, tmp_path / "reports", audit_waivers_file=str(waivers))

    assert run.returncode == 2 and report is None, run.output
    # ansible's error header carries the module's one line unfolded.
    lines = [line for line in run.stdout.splitlines() if message in line and f"waivers file {waivers}" in line]
    assert lines, run.stdout
    assert "Traceback" not in run.output


def test_each_output_runs_alone_or_is_skipped_by_its_tag(guide, tmp_path: Path) -> None:
    with capturing_webhook() as (url, posts):
        only_junit, _ = audit(guide, tmp_path / "junit", args=["--tags", "junit"], audit_alert_webhook_url=url)
        skipped, _ = audit(guide, tmp_path / "rest", args=["--skip-tags", "html,alerts"], audit_alert_webhook_url=url)
        everything, _ = audit(guide, tmp_path / "all", audit_alert_webhook_url=url)

    assert only_junit.returncode == 2 and skipped.returncode == 2 and everything.returncode == 2
    assert sorted(path.name for path in (tmp_path / "junit").glob("job-audit*")) == [
        "job-audit-history.jsonl",
        "job-audit-junit.xml",
    ]
    rest = {path.name for path in (tmp_path / "rest").glob("job-audit*")}
    assert "job-audit.html" not in rest and {"job-audit.json", "job-audit.prom", "job-audit-junit.xml"} <= rest
    assert "legacy_encryption: 34 > 10" in only_junit.output  # the run still fails on the breach
    assert len(posts) == 1  # only the run that kept its alerts sent one


def test_a_relative_report_dir_is_taken_from_where_the_command_runs(guide, tmp_path: Path) -> None:
    extra = json.dumps({"audit_report_dir": "myreports", "audit_now": GUIDE_NOW, "audit_fail_on_breach": False})
    playbook = REPO_ROOT / "playbooks" / "audit_jobs.yml"
    command = f"cd {shlex.quote(str(tmp_path))} && {VENV_BIN}/ansible-playbook {playbook} -e {shlex.quote(extra)}"
    env = {**os.environ, "AWS_ENDPOINT_URL": guide, "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg")}

    run = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True, timeout=300, check=False)

    assert run.returncode == 0, run.stdout + run.stderr
    assert json.loads((tmp_path / "myreports" / "job-audit.json").read_text())["by_status"]["failed"] == 49
    assert not (REPO_ROOT / "playbooks" / "myreports").exists()
