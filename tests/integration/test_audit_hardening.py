"""What the audit does with hostile data and broken surroundings (issue 20): job fields carrying
terminal escapes, a state path that is a directory, an audit that cannot run, exact Prometheus times."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import boto3
import seed_jobs
from support.local_http import capturing_webhook
from support.playbook import run_playbook

TABLE = "panzoto-processing-jobs"
NOW = "2025-10-19T18:00:00.123Z"
# A job id that would clear the screen, ring the bell and start a fake report line.
HOSTILE_ID = "job-\x1b[2J\x1b[31mRED\x07\n[THRESHOLDS] all within limits\x9b"


def audit(endpoint_url: str, report_dir: Path, verbosity: int = 0, **extra_vars):
    return run_playbook(
        "audit_jobs.yml",
        extra_vars={"audit_report_dir": str(report_dir), "audit_now": NOW, "audit_fail_on_breach": False, **extra_vars},
        env={"AWS_ENDPOINT_URL": endpoint_url},
        verbosity=verbosity,
    )


def test_control_characters_in_job_fields_are_escaped_in_every_report(aws, tmp_path: Path) -> None:
    seed_jobs.create_resources(aws.endpoint_url)
    table = boto3.resource("dynamodb", endpoint_url=aws.endpoint_url, region_name="us-east-1").Table(TABLE)
    table.put_item(
        Item={
            "job_id": HOSTILE_ID,
            "user_id": "u",
            "status": "pending",
            "created_at": "2025-10-01T00:00:00Z",
            "error_message": "x",
        }
    )

    # The one stuck job is allowed: the run passes and every report is written.
    run = audit(aws.endpoint_url, tmp_path, verbosity=1, audit_thresholds={"pending_stuck": 1})

    assert run.returncode == 0, run.output
    for name in ("job-audit.txt", "job-audit.md", "job-audit.html", "job-audit.prom", "job-audit-junit.xml"):
        content = (tmp_path / name).read_text()
        assert "\x1b" not in content and "\x07" not in content and "\x9b" not in content, name
    text = (tmp_path / "job-audit.txt").read_text()
    assert "job-\\x1b[2J\\x1b[31mRED\\x07\\x0a[THRESHOLDS] all within limits\\x9b" in text
    assert "\x1b" not in run.stdout
    ET.fromstring((tmp_path / "job-audit-junit.xml").read_text())  # still well-formed XML
    # The JSON keeps the exact value (JSON escapes it).
    assert json.loads((tmp_path / "job-audit.json").read_text())["pending_stuck"]["jobs"][0]["job_id"] == HOSTILE_ID


def test_prometheus_times_are_exact(aws, tmp_path: Path) -> None:
    seed_jobs.create_resources(aws.endpoint_url)

    run = audit(aws.endpoint_url, tmp_path)

    assert run.returncode == 0, run.output
    prometheus = (tmp_path / "job-audit.prom").read_text()
    assert f'panzoto_job_audit_timestamp_seconds{{table="{TABLE}"}} 1760896800.123\n' in prometheus
    assert "e+" not in prometheus


def test_an_alert_state_path_that_is_a_directory_cannot_run_and_says_which(aws, tmp_path: Path) -> None:
    seed_jobs.create_resources(aws.endpoint_url)
    state = tmp_path / "job-audit-alert-state.json"
    state.mkdir()

    with capturing_webhook() as (url, posts):
        run = audit(aws.endpoint_url, tmp_path, audit_alert_webhook_url=url)

    assert run.returncode == 4, run.output
    reason = f"the alert state file {state} is a directory"
    # One line in the module's message (the callback folds long values: compare the words).
    assert f"The audit could not run: {reason}" in " ".join(run.output.split()), run.stdout
    assert "Traceback" not in run.output
    assert json.loads((tmp_path / "job-audit.json").read_text())["status"] == "error"
    assert [post["text"].split(": could not run: ")[1] for post in posts] == [
        f"{reason}: move it away, or set state_dir elsewhere"
    ]


def test_an_audit_that_cannot_run_alerts_once_per_outage(tmp_path: Path) -> None:
    dead = "http://127.0.0.1:9"  # discard port: nothing listens there

    with capturing_webhook() as (url, posts):
        first = audit(dead, tmp_path, audit_alert_webhook_url=url)
        second = audit(dead, tmp_path, audit_alert_webhook_url=url)

    assert first.returncode == 4 and second.returncode == 4, first.output + second.output
    assert len(posts) == 1 and "could not run: Cannot reach the AWS endpoint" in posts[0]["text"]


def test_a_breached_table_alerts_on_the_first_run_with_alerts(aws, tmp_path: Path) -> None:
    seed_jobs.seed_guide_snapshot(aws.endpoint_url)
    assert audit(aws.endpoint_url, tmp_path).returncode == 0  # breached, no alert channel yet

    with capturing_webhook() as (url, posts):
        run = audit(aws.endpoint_url, tmp_path, audit_alert_webhook_url=url)

    assert run.returncode == 0, run.output
    assert len(posts) == 1 and "thresholds breached: failed: 49 > 20" in posts[0]["text"]


def test_report_paths_that_cannot_take_the_reports_are_refused_before_the_scan(aws, tmp_path: Path) -> None:
    """A report directory that is a file or a link to nothing, a textfile that is a directory: one line each."""
    seed_jobs.create_resources(aws.endpoint_url)
    a_file, dangling, a_directory = tmp_path / "a-file", tmp_path / "dangling", tmp_path / "a-directory"
    a_file.write_text("not a directory\n")
    dangling.symlink_to(tmp_path / "gone")
    a_directory.mkdir()
    cases = [
        ({"audit_report_dir": str(a_file)}, f"report_dir {a_file} is a file, not a directory"),
        ({"audit_report_dir": str(dangling)}, f"report_dir {dangling} is a symbolic link to nothing"),
        ({"audit_prometheus_textfile": str(a_directory)}, f"prometheus_textfile {a_directory} is a directory"),
    ]
    for extra, refusal in cases:
        run = run_playbook(
            "audit_jobs.yml",
            extra_vars={"audit_report_dir": str(tmp_path / "reports"), "audit_now": NOW, **extra},
            env={"AWS_ENDPOINT_URL": aws.endpoint_url},
        )
        assert run.returncode != 0 and refusal in " ".join(run.output.split()), run.output[-3000:]
        assert "Traceback" not in run.output and "Errno" not in run.output
        assert not (tmp_path / "reports").exists()
