"""The audit feeding monitoring: CloudWatch metrics, the guide's alarms, webhook and email alerts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
import seed_jobs
from support.local_http import capturing_webhook
from support.local_smtp import capturing_smtp
from support.playbook import PlaybookRun, run_playbook

TABLE = "panzoto-processing-jobs"


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
                            "Dimensions": [{"Name": k, "Value": v} for k, v in {"Table": TABLE, **dimensions}.items()],
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
    # Every known category is published, 0 included, so an alarm on it never sees missing data.
    assert latest("FailedJobCountByCategory", Category="format_error") == 0
    assert latest("StuckProcessingJobCount") == 0 and latest("InvisiblePendingJobCount") == 0
    # Every point names its table: nothing is published without the Table dimension.
    metrics = cloudwatch.list_metrics(Namespace="Panzoto")["Metrics"]
    assert metrics and all({"Name": "Table", "Value": TABLE} in metric["Dimensions"] for metric in metrics)
    # The guide's snapshot is from 2025: its pending jobs are long stuck by now.
    assert latest("StuckPendingJobCount") == 2
    assert latest("JobSuccessRate") == pytest.approx(9 / 58 * 100, abs=0.01)


def test_check_mode_audit_publishes_nothing(guide_snapshot, tmp_path: Path) -> None:
    run = audit_publishing_metrics(guide_snapshot.endpoint_url, tmp_path, check=True)
    assert run.returncode == 0, run.output
    cloudwatch = boto3.client("cloudwatch", endpoint_url=guide_snapshot.endpoint_url)
    assert cloudwatch.list_metrics(Namespace="Panzoto")["Metrics"] == []


SMTP_USER, SMTP_PASSWORD = "ops", "planted-smtp-password"
TOPIC = "arn:aws:sns:us-east-1:123456789012:panzoto-oncall"
GUIDE_NOW = "2025-10-19T18:00:00Z"


def alerting_audit(endpoint_url: str, report_dir: Path, webhook: str, smtp_port: int, **extra_vars) -> PlaybookRun:
    return run_playbook(
        "audit_jobs.yml",
        extra_vars={
            "audit_report_dir": str(report_dir),
            "audit_now": GUIDE_NOW,
            "audit_fail_on_breach": False,
            "audit_thresholds": {"failed": 20},
            "audit_alert_webhook_url": webhook,
            "audit_alert_email": {
                "smtp_host": "127.0.0.1",
                "smtp_port": smtp_port,
                "starttls": False,
                "username": SMTP_USER,
                "password": SMTP_PASSWORD,
                "sender": "audit@example.invalid",
                "to": ["oncall@example.invalid"],
            },
            **extra_vars,
        },
        env={"AWS_ENDPOINT_URL": endpoint_url},
        verbosity=3,
    )


def add_failed_jobs(endpoint_url: str, count: int) -> None:
    table = boto3.resource("dynamodb", endpoint_url=endpoint_url).Table("panzoto-processing-jobs")
    for n in range(count):
        table.put_item(
            Item={
                "job_id": f"added-{n}",
                "user_id": "u",
                "status": "failed",
                "created_at": "2025-10-19T17:00:00Z",
                "error_message": "Automatic decryption not yet implemented",
            }
        )


def test_alerts_once_per_breach_on_worse_and_on_recovery_by_webhook_and_email(guide_snapshot, tmp_path: Path) -> None:
    endpoint = guide_snapshot.endpoint_url
    sent: list[tuple[int, int]] = []  # (webhook posts, emails) after each run
    runs = []
    with capturing_webhook() as (url, posts), capturing_smtp(SMTP_USER, SMTP_PASSWORD) as (port, mails):

        def run(**extra_vars) -> None:
            outcome = alerting_audit(endpoint, tmp_path, url, port, **extra_vars)
            assert outcome.returncode == 0, outcome.output
            runs.append(outcome)
            sent.append((len(posts), len(mails)))

        run()  # the breach starts: failed 49 > 20
        run()  # unchanged
        add_failed_jobs(endpoint, 3)
        run()  # worse: 52
        (tmp_path / "job-audit-alert-state.json").write_text('{"channels": {"webhook": {"breached"')
        run()  # corrupt state: at most one duplicate
        run()  # and then quiet again
        run(audit_thresholds={"failed": 100})  # recovered
        run(audit_thresholds={"failed": 100})  # stays recovered

    assert sent == [(1, 1), (1, 1), (2, 2), (3, 3), (3, 3), (4, 4), (4, 4)]
    texts = [post["text"] for post in posts]
    assert "thresholds breached: failed: 49 > 20" in texts[0]
    assert "breach worsened: failed: 52 > 20" in texts[1]
    assert "recovered" in texts[3] and "breached" not in texts[3]
    assert [mail["Subject"].split(": ")[-1] for mail in mails] == [
        "thresholds breached", "breach worsened", "thresholds breached", "recovered",
    ]  # fmt: skip
    assert mails[0]["To"] == "oncall@example.invalid"
    assert "ansible-playbook playbooks/cleanup_jobs.yml --check --diff" in mails[0].get_payload()
    state = tmp_path / "job-audit-alert-state.json"
    assert state.stat().st_mode & 0o777 == 0o600
    for outcome in runs:
        assert "secret-token" not in outcome.output and SMTP_PASSWORD not in outcome.output


@pytest.mark.parametrize(
    "url",
    [
        "hooks.example.invalid/services/T000/B000/secret-token",
        "https://hooks.example.invalid:99999/services/T000/B000/secret-token",
        "https://[hooks.example.invalid/services/T000/B000/secret-token",
    ],
    ids=["no-scheme", "port-out-of-range", "broken-ipv6"],
)
def test_a_malformed_webhook_url_is_refused_without_printing_it(guide_snapshot, tmp_path: Path, url: str) -> None:
    run = run_playbook(
        "audit_jobs.yml",
        extra_vars={"audit_report_dir": str(tmp_path), "audit_now": GUIDE_NOW, "audit_alert_webhook_url": url},
        env={"AWS_ENDPOINT_URL": guide_snapshot.endpoint_url},
        verbosity=3,
    )
    assert run.returncode == 2
    assert "alert_webhook_url " in run.output and "its value is not shown" in run.output
    assert "secret-token" not in run.output and "hooks.example" not in run.output
    # Bad options change nothing: no report, no history.
    assert not (tmp_path / "job-audit.json").exists()


def test_failing_deliveries_warn_without_secrets_and_are_retried(guide_snapshot, tmp_path: Path) -> None:
    dead_webhook = "http://127.0.0.1:9/services/T000/B000/secret-token"
    with capturing_smtp(SMTP_USER, "another-password") as (port, mails):
        first = alerting_audit(guide_snapshot.endpoint_url, tmp_path, dead_webhook, port)
    assert first.returncode == 0, first.output
    assert "webhook alert (breach) not delivered: cannot reach the webhook" in first.output
    assert "email alert (breach) not delivered: the SMTP server refused the login (code 535)" in first.output
    assert mails == []
    assert "secret-token" not in first.output and SMTP_PASSWORD not in first.output
    # The next run, with both channels working, delivers the alert it owes.
    with capturing_webhook() as (url, posts), capturing_smtp(SMTP_USER, SMTP_PASSWORD) as (port, mails):
        second = alerting_audit(guide_snapshot.endpoint_url, tmp_path, url, port)
    assert second.returncode == 0, second.output
    assert len(posts) == 1 and len(mails) == 1


def test_no_alert_when_within_limits(guide_snapshot, tmp_path: Path) -> None:
    with capturing_webhook() as (url, received):
        run = run_playbook(
            "audit_jobs.yml",
            extra_vars={
                "audit_report_dir": str(tmp_path),
                "audit_now": GUIDE_NOW,
                "audit_thresholds": {"failed": 100},
                "audit_alert_webhook_url": url,
            },
            env={"AWS_ENDPOINT_URL": guide_snapshot.endpoint_url},
        )
    assert run.returncode == 0, run.output
    assert received == []
    html = (tmp_path / "job-audit.html").read_text()
    assert '<span data-metric="category.legacy_encryption">34</span>' in html
    assert "All thresholds within limits." in html


def test_monitoring_creates_the_guide_alarms_idempotently(aws) -> None:
    env = {"AWS_ENDPOINT_URL": aws.endpoint_url}
    actions = {"monitoring_alarm_actions": [TOPIC]}
    cloudwatch = boto3.client("cloudwatch", endpoint_url=aws.endpoint_url)

    preview = run_playbook("monitoring.yml", env=env, check=True, extra_vars=actions)
    assert preview.returncode == 0, preview.output
    assert preview.changed() == 1
    assert cloudwatch.describe_alarms()["MetricAlarms"] == []

    first = run_playbook("monitoring.yml", env=env, extra_vars=actions)
    second = run_playbook("monitoring.yml", env=env, extra_vars=actions)

    assert first.returncode == 0 and first.changed() == 1, first.output
    assert second.returncode == 0 and second.changed() == 0, second.output
    alarms = {alarm["AlarmName"]: alarm for alarm in cloudwatch.describe_alarms()["MetricAlarms"]}
    assert set(alarms) == {
        "panzoto-job-failures",
        "panzoto-jobs-stuck-pending",
        "panzoto-jobs-stuck-processing",
        "panzoto-jobs-invisible-to-processor",
        "panzoto-legacy-encryption-jobs",
    }
    failures = alarms["panzoto-job-failures"]
    assert (failures["MetricName"], failures["Threshold"], failures["ComparisonOperator"]) == (
        "RecentFailedJobCount",
        5.0,
        "GreaterThanThreshold",
    )
    assert all(alarm["AlarmActions"] == [TOPIC] for alarm in alarms.values())
    assert all(alarm["TreatMissingData"] == "breaching" for alarm in alarms.values())
    assert failures["Dimensions"] == [{"Name": "Table", "Value": TABLE}]
    assert sorted(alarms["panzoto-legacy-encryption-jobs"]["Dimensions"], key=lambda d: d["Name"]) == [
        {"Name": "Category", "Value": "legacy_encryption"},
        {"Name": "Table", "Value": TABLE},
    ]


@pytest.mark.parametrize("actions", [[], ["sns-topic-name"], "arn:aws:sns:us-east-1:123456789012:t"])
def test_monitoring_refuses_missing_or_non_arn_alarm_actions_in_one_line(aws, actions) -> None:
    cloudwatch = boto3.client("cloudwatch", endpoint_url=aws.endpoint_url)

    run = run_playbook(
        "monitoring.yml", env={"AWS_ENDPOINT_URL": aws.endpoint_url}, extra_vars={"monitoring_alarm_actions": actions}
    )

    assert run.returncode != 0
    # One line saying what is wrong and what was given (ansible's error header; its msg repeats it, folded).
    refusal = "monitoring_alarm_actions must be a non-empty list of ARNs"
    lines = [line for line in run.stdout.splitlines() if line.startswith("[ERROR]") and refusal in line]
    assert len(lines) == 1 and "got " in lines[0], run.stdout
    assert cloudwatch.describe_alarms()["MetricAlarms"] == []


@pytest.mark.parametrize(
    ("extra", "refusal"),
    [
        ({"monitoring_namespce": "Wrong"}, "monitoring_namespce is not a variable of this playbook"),
        ({"monitoring_alarms": []}, "monitoring_alarms is empty: a run that ensures no alarm checks nothing"),
    ],
)
def test_monitoring_refuses_a_misspelt_variable_and_an_empty_alarm_list(aws, extra: dict, refusal: str) -> None:
    cloudwatch = boto3.client("cloudwatch", endpoint_url=aws.endpoint_url)

    run = run_playbook(
        "monitoring.yml",
        env={"AWS_ENDPOINT_URL": aws.endpoint_url},
        extra_vars={"monitoring_alarm_actions": [TOPIC], **extra},
    )

    assert run.returncode != 0 and refusal in run.stdout, run.stdout[-3000:]
    assert cloudwatch.describe_alarms()["MetricAlarms"] == []
