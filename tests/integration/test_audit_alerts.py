"""The audit feeding monitoring: CloudWatch metrics, the guide's alarms, webhook alerts, HTML report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
import seed_jobs
from support.local_http import capturing_webhook
from support.playbook import PlaybookRun, run_playbook


@pytest.fixture
def guide_snapshot(aws):
    seed_jobs.seed_guide_snapshot(aws.endpoint_url)
    return aws


def audit_publishing_metrics(endpoint_url: str, report_dir: Path, check: bool = False) -> PlaybookRun:
    # No fixed audit_now: CloudWatch only takes recent data points.
    return run_playbook(
        "audit_jobs.yml",
        extra_vars={
            "audit_report_dir": str(report_dir),
            "audit_fail_on_breach": False,
            "audit_cloudwatch_namespace": "Panzoto",
        },
        env={"AWS_ENDPOINT_URL": endpoint_url},
        check=check,
    )


def test_audit_publishes_its_counts_as_cloudwatch_metrics(guide_snapshot, tmp_path: Path) -> None:
    run = audit_publishing_metrics(guide_snapshot.endpoint_url, tmp_path)
    assert run.returncode == 0, run.output

    cloudwatch = boto3.client("cloudwatch", endpoint_url=guide_snapshot.endpoint_url)
    now = datetime.now(UTC)

    def latest(name: str, **dimensions: str) -> float:
        data = cloudwatch.get_metric_data(
            MetricDataQueries=[
                {
                    "Id": "m",
                    "MetricStat": {
                        "Metric": {
                            "Namespace": "Panzoto",
                            "MetricName": name,
                            "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
                        },
                        "Period": 60,
                        "Stat": "Maximum",
                    },
                }
            ],
            # A narrow window: moto walks it period by period.
            StartTime=now - timedelta(minutes=10),
            EndTime=now + timedelta(minutes=10),
        )
        return data["MetricDataResults"][0]["Values"][0]

    assert latest("FailedJobCount") == 49
    assert latest("JobCount", Status="completed") == 9
    assert latest("JobCount", Status="pending") == 2
    assert latest("FailedJobCountByCategory", Category="legacy_encryption") == 34
    assert latest("FailedJobCountByCategory", Category="max_retries") == 10
    # The guide's snapshot is from 2025: its pending jobs are long stuck by now.
    assert latest("StuckPendingJobCount") == 2
    assert latest("JobSuccessRate") == pytest.approx(9 / 58 * 100, abs=0.01)


def test_check_mode_audit_publishes_nothing(guide_snapshot, tmp_path: Path) -> None:
    run = audit_publishing_metrics(guide_snapshot.endpoint_url, tmp_path, check=True)
    assert run.returncode == 0, run.output
    cloudwatch = boto3.client("cloudwatch", endpoint_url=guide_snapshot.endpoint_url)
    assert cloudwatch.list_metrics(Namespace="Panzoto")["Metrics"] == []


def test_breached_thresholds_alert_the_webhook_without_printing_its_url(guide_snapshot, tmp_path: Path) -> None:
    with capturing_webhook() as (url, received):
        run = run_playbook(
            "audit_jobs.yml",
            extra_vars={
                "audit_report_dir": str(tmp_path),
                "audit_now": "2025-10-19T18:00:00Z",
                "audit_alert_webhook_url": url,
            },
            env={"AWS_ENDPOINT_URL": guide_snapshot.endpoint_url},
            verbosity=2,
        )

    assert run.returncode == 2
    assert len(received) == 1
    assert "thresholds breached: failed: 49 > 20; legacy_encryption: 34 > 10" in received[0]["text"]
    assert "secret-token" not in run.output


def test_no_alert_when_within_limits(guide_snapshot, tmp_path: Path) -> None:
    with capturing_webhook() as (url, received):
        run = run_playbook(
            "audit_jobs.yml",
            extra_vars={
                "audit_report_dir": str(tmp_path),
                "audit_now": "2025-10-19T18:00:00Z",
                "audit_thresholds": {"failed": 100},
                "audit_alert_webhook_url": url,
            },
            env={"AWS_ENDPOINT_URL": guide_snapshot.endpoint_url},
        )
    assert run.returncode == 0, run.output
    assert received == []
    html = (tmp_path / "job-audit.html").read_text()
    assert "<td>legacy_encryption</td><td>34</td>" in html and "All thresholds within limits." in html


def test_monitoring_creates_the_guide_alarms_idempotently(aws) -> None:
    env = {"AWS_ENDPOINT_URL": aws.endpoint_url}
    cloudwatch = boto3.client("cloudwatch", endpoint_url=aws.endpoint_url)

    preview = run_playbook("monitoring.yml", env=env, check=True)
    assert preview.returncode == 0, preview.output
    assert preview.changed() == 1
    assert cloudwatch.describe_alarms()["MetricAlarms"] == []

    first = run_playbook("monitoring.yml", env=env)
    second = run_playbook("monitoring.yml", env=env)

    assert first.returncode == 0 and first.changed() == 1, first.output
    assert second.returncode == 0 and second.changed() == 0, second.output
    alarms = {alarm["AlarmName"]: alarm for alarm in cloudwatch.describe_alarms()["MetricAlarms"]}
    assert set(alarms) == {"panzoto-job-failures", "panzoto-jobs-stuck-pending", "panzoto-legacy-encryption-jobs"}
    failures = alarms["panzoto-job-failures"]
    assert (failures["MetricName"], failures["Threshold"], failures["ComparisonOperator"]) == (
        "RecentFailedJobCount",
        5.0,
        "GreaterThanThreshold",
    )
    assert alarms["panzoto-legacy-encryption-jobs"]["Dimensions"] == [
        {"Name": "Category", "Value": "legacy_encryption"}
    ]
