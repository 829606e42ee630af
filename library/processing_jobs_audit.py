#!/usr/bin/python
"""Ansible module: audit the Panzoto processing-jobs table (read-only)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: processing_jobs_audit
short_description: Audit the Panzoto processing-jobs table by status and error category
description:
  - Scans the DynamoDB processing-jobs table once, streaming pages from parallel segments and reading only the attributes it
    needs, and reports what the ops guide's C(check_jobs) script reported and more.
  - Counts jobs by status and by job type; failed jobs by error category, each with its solution, whether cleanup may delete it,
    its oldest and newest failure and example job ids; pending jobs stuck longer than O(stuck_after); malformed items (never a crash);
    success rate and average and p95 processing time of completed jobs; audio files that failed in more than one job
    (candidates for a circuit breaker); and which thresholds are breached.
  - Writes every report from that one scan into O(report_dir), as C(job-audit.json)
    (the whole result, with C(schema_version) and a run C(status) of C(ok), C(breached) or C(error)), C(job-audit.txt),
    C(job-audit.md) (a CI job summary, with the change since the previous run), C(job-audit-junit.xml) (one case per
    threshold), C(job-audit.prom) (Prometheus text format for node_exporter's textfile collector) and C(job-audit.html)
    (self-contained, with inline SVG charts). Files are replaced atomically. Text, Markdown and HTML end with the
    commands to run next.
  - Appends a compact line per run to C(job-audit-history.jsonl) in O(state_dir) (the HTML's trend) and alerts, when
    O(alert_webhook_url) or O(alert_email) is set, once when a breach starts, again when it worsens or after
    O(realert_after), and once when it ends. What was sent is kept in C(job-audit-alert-state.json) (mode 0600).
  - When the table cannot be read (endpoint unreachable, no credentials, no table), the reports are still written with
    status C(error) and the one-line reason, and the task ends as unreachable (C(ansible-playbook) exit code 4), apart
    from a breach.
  - Read-only on AWS; never reports C(changed). Throttling and 5xx answers are retried with jittered backoff.
  - Memory stays flat as the table grows. The repeated-failure report counts one row per failed job in a private
    temporary SQLite database, which spills to an unlinked file in C(TMPDIR), else C(/var/tmp) (about 75 bytes per
    failed job, gone when the run ends, even a killed one); the p95 keeps one counter per distinct 0.1 s processing time.
version_added: "1.0.0"
author: panzoto-ops maintainers (@panzoto-ops)
options:
  table:
    description: Name of the processing-jobs table.
    type: str
    default: panzoto-processing-jobs
  stuck_after:
    description: How long a pending job may wait before it counts as stuck (C(90s), C(30m), C(1h), C(7d) or seconds).
    type: str
    default: 1h
  recent_window:
    description: The window for the C(failed_recent) count (jobs that failed within it), like the guide's CloudWatch alarm.
    type: str
    default: 24h
  thresholds:
    description:
      - Counts that must not be exceeded; a value strictly greater than its threshold is reported in RV(breached).
      - Keys are statuses (C(failed), C(pending), ...), error categories (C(legacy_encryption), ...), C(pending_stuck), C(malformed),
        C(failed_recent), C(future_dated) and C(repeated_failure_audio_files).
      - Values are whole numbers; C(1.9) or C(true) are refused, never truncated.
      - The defaults are the ops guide's monitoring numbers. Pass C({}) to check none.
    type: dict
    default: {failed: 20, legacy_encryption: 10, pending_stuck: 0, failed_recent: 5}
  examples:
    description: How many example job ids to return per category, and how many stuck jobs, malformed items and repeated audio files to list.
    type: int
    default: 5
  segments:
    description: Parallel scan segments (threads). Each reads its part of the table independently.
    type: int
    default: 4
  page_size:
    description: Items per Scan request (DynamoDB's C(Limit)); by default each page is up to 1 MB.
    type: int
  now:
    description: The time the audit is taken at, as ISO-8601, for reproducible reports. Defaults to the current time.
    type: str
  cloudwatch_namespace:
    description:
      - Also publish the counts as CloudWatch metrics in this namespace (for example C(Panzoto)), for alarms and dashboards.
      - C(JobCount) per C(Status), C(FailedJobCount), C(FailedJobCountByCategory) per C(Category), C(RecentFailedJobCount)
        (failed within O(recent_window)), C(StuckPendingJobCount), C(MalformedItemCount) and C(JobSuccessRate) (percent).
      - Not published in check mode. Needs C(cloudwatch:PutMetricData).
    type: str
  report_dir:
    description:
      - Directory the reports are written to (created when missing). Without it, no report is written.
      - Reports are written in check mode too; the history, the alert state and alerts are not.
    type: path
  state_dir:
    description: Directory of the history and the alert state. Defaults to O(report_dir).
    type: path
  prometheus_textfile:
    description: Where the Prometheus report goes (for example C(/var/lib/prometheus/node-exporter/panzoto.prom)). Defaults to O(report_dir).
    type: path
  show_job_ids:
    description: List job ids (stuck, per category, repeated audio, future-dated) in the text report.
    type: bool
    default: false
  history_size:
    description: Runs kept in the history file.
    type: int
    default: 500
  trend_runs:
    description: Runs shown in the HTML report's trend.
    type: int
    default: 24
  alert_webhook_url:
    description:
      - A Slack-compatible incoming webhook to alert. A secret; it never appears in output or errors.
    type: str
  alert_email:
    description: Alert by email over SMTP too.
    type: dict
    suboptions:
      smtp_host:
        description: SMTP server.
        type: str
        required: true
      smtp_port:
        description: SMTP port.
        type: int
        default: 587
      starttls:
        description: Use STARTTLS before logging in.
        type: bool
        default: true
      username:
        description: Login name; no login without it.
        type: str
      password:
        description: Login password. A secret; it never appears in output or errors.
        type: str
      sender:
        description: The From address.
        type: str
        required: true
      to:
        description: Recipients.
        type: list
        elements: str
        required: true
  realert_after:
    description: Alert again about a breach that lasts unchanged after this long (C(24h)); C(0) for never.
    type: str
    default: 24h
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
extends_documentation_fragment:
  - panzoto_aws
  - panzoto_classification_rules
notes:
  - Needs C(dynamodb:DescribeTable) and C(dynamodb:Scan) on the table.
  - Publishing metrics (O(cloudwatch_namespace)) is the only write to AWS, and is skipped in check mode.
  - A future-dated job (created, or failed, after O(now)) is clock skew on the writer's side, reported as C(future_dated)
    and never counted in C(failed_recent).
  - An item counts as malformed, and only as malformed, when its C(status) is missing or unknown, its C(created_at) is missing or
    not ISO-8601, its C(retry_count) is not a number, or it failed with a non-text C(error_message).
"""

EXAMPLES = r"""
- name: Audit the jobs table with the guide's thresholds
  processing_jobs_audit:
    region: us-east-1
  register: audit

- name: Audit a local endpoint at a fixed time, with a team-specific category
  processing_jobs_audit:
    endpoint_url: http://127.0.0.1:5000
    now: "2025-10-19T18:00:00Z"
    stuck_after: 30m
    thresholds:
      failed: 20
      pending_stuck: 0
    classification_rules:
      - category: quota_exceeded
        match: "insufficient_quota"
        solution: Raise the OpenAI quota, then retry.
      - category: timeout
        deletable: false

- name: Fail the run when a threshold is breached
  ansible.builtin.fail:
    msg: "{{ audit.breached | map(attribute='message') | join('; ') }}"
  when: audit.breached | length > 0
"""

RETURN = r"""
audit_status:
  description: C(ok), C(breached) or C(error) (the audit could not run).
  returned: always
  type: str
  sample: breached
error:
  description: Why the audit could not run (one line), or null.
  returned: always
  type: str
table:
  description: The table audited.
  returned: always
  type: str
  sample: panzoto-processing-jobs
now:
  description: The time the audit was taken at (UTC).
  returned: always
  type: str
  sample: "2025-10-19T18:00:00Z"
reports:
  description:
    - Paths of the reports written, by format (json, text, markdown, junit, prometheus, html).
    - The counts, categories, stuck jobs, metrics and thresholds are in the JSON report (see the README).
  returned: always
  type: dict
  sample: {json: reports/job-audit.json, html: reports/job-audit.html}
alerts:
  description: Per alert channel, what was due (breach, worse, reminder, recovered or null), whether it was sent, and the redacted error.
  returned: always
  type: list
  elements: dict
  sample: [{channel: webhook, alert: breach, sent: true, error: null}]
breached:
  description: Thresholds exceeded, each with name, value, threshold and a one-line message.
  returned: when the audit ran
  type: list
  elements: dict
  sample: [{name: failed, value: 49, threshold: 20, message: "failed: 49 > 20"}]
metrics_published:
  description: CloudWatch metric data points published (0 without O(cloudwatch_namespace) or in check mode).
  returned: when the audit ran
  type: int
"""

import json
import os
import time
from datetime import datetime, timedelta

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.panzoto.audit.alerts import (
    STATE_FILE,
    deliver_alerts,
    redact,
    send_email,
    send_webhook,
    webhook_url_problem,
)
from ansible.module_utils.panzoto.audit.history import HISTORY_FILE, append_history, read_history
from ansible.module_utils.panzoto.audit.html import render_html
from ansible.module_utils.panzoto.audit.reports import (
    DIAGNOSIS_REPORT,
    REPORT_FILES,
    SCHEMA_VERSION,
    history_entry,
    next_steps,
    render_junit,
    render_markdown,
    render_prometheus,
    render_text,
    threshold_results,
    write_atomic,
)
from ansible.module_utils.panzoto.audit.tally import (
    DEFAULT_THRESHOLDS,
    JobAudit,
    breached_thresholds,
    threshold_values,
    validate_thresholds,
)
from ansible.module_utils.panzoto.aws import (
    AWS_ARGUMENT_SPEC,
    aws_client,
    aws_errors,
    describe_aws_error,
    require_boto3,
    validate_aws_params,
)
from ansible.module_utils.panzoto.classification import (
    CLASSIFICATION_RULE_OPTIONS,
    RuleError,
    build_rules,
    rules_by_category,
    rules_from_options,
)
from ansible.module_utils.panzoto.jobs import (
    JOB_ATTRIBUTES,
    inspect_job,
    isoformat,
    parse_now,
)
from ansible.module_utils.panzoto.options import check_range, duration_option
from ansible.module_utils.panzoto.scan import RequestCounter, ScanStats, scan_items


def metric_data(report: dict) -> list[dict]:
    """The report's counts as CloudWatch data points, all stamped with the audit time by the caller."""

    def point(name: str, value: float, unit: str = "Count", **dimensions: str) -> dict:
        entry = {"MetricName": name, "Value": value, "Unit": unit}
        if dimensions:
            entry["Dimensions"] = [{"Name": key, "Value": val} for key, val in dimensions.items()]
        return entry

    points = [point("JobCount", count, Status=status) for status, count in report["by_status"].items()]
    points.append(point("FailedJobCount", report["by_status"]["failed"]))
    points += [
        point("FailedJobCountByCategory", entry["count"], Category=entry["category"]) for entry in report["categories"]
    ]
    points.append(point("RecentFailedJobCount", report["failed_recent"]))
    points.append(point("StuckPendingJobCount", report["pending_stuck"]["count"]))
    points.append(point("MalformedItemCount", report["malformed"]["count"]))
    if report["completed"]["success_rate"] is not None:
        points.append(point("JobSuccessRate", report["completed"]["success_rate"] * 100, unit="Percent"))
    return points


def publish_metrics(client, namespace: str, points: list[dict], timestamp: datetime) -> int:
    batch_size = 1000  # PutMetricData's limit of data points per request
    for start in range(0, len(points), batch_size):
        batch = [{**entry, "Timestamp": timestamp} for entry in points[start : start + batch_size]]
        client.put_metric_data(Namespace=namespace, MetricData=batch)
    return len(points)


class CannotRun(Exception):
    """The audit could not read the table; its message is the one-line reason."""


class RaisingModule:
    """The module as the AWS helpers see it, raising CannotRun where they would fail the module,
    so that an audit that cannot run still writes its error report."""

    def __init__(self, module: AnsibleModule) -> None:
        self._module = module

    def __getattr__(self, name: str):
        return getattr(self._module, name)

    def fail_json(self, msg: str, **_: object) -> None:
        raise CannotRun(msg)


def email_settings(params: dict | None) -> dict | None:
    if not params:
        return None
    if not params["to"]:
        raise ValueError("alert_email.to must name at least one recipient.")
    check_range("alert_email.smtp_port", params["smtp_port"], 1, 65535)
    return params


def validate_alert_options(params: dict) -> tuple[dict | None, timedelta | None]:
    url = params["alert_webhook_url"]
    if url:
        problem = webhook_url_problem(url)
        if problem:
            # Never quote the value: the URL carries the webhook's token.
            raise ValueError(f"alert_webhook_url {problem} (its value is not shown: it is a secret).")
    email = email_settings(params["alert_email"])
    realert = (
        duration_option("realert_after", params["realert_after"])
        if params["realert_after"] not in (None, "", "0")
        else None
    )
    return email, realert or None


def scan_table(module: AnsibleModule, audit: JobAudit, rules: tuple, stats: ScanStats) -> RequestCounter:
    params = module.params
    client = aws_client(RaisingModule(module), "dynamodb", max_pool_connections=params["segments"] + 2)
    counter = RequestCounter().attach(client)
    table = params["table"]
    try:
        client.describe_table(TableName=table)
        for item in scan_items(client, table, JOB_ATTRIBUTES, params["segments"], params["page_size"], stats):
            audit.add(inspect_job(item, rules))
    except aws_errors() as exc:
        raise CannotRun(describe_aws_error(exc, f"audit table {table}", params.get("endpoint_url"))) from None
    return counter


def report_path(directory: str | None, name: str) -> str | None:
    return os.path.join(directory, name) if directory else None


def write_reports(params: dict, doc: dict, history: list[dict], previous: dict | None) -> dict[str, str]:
    """Every report from the one document; returns {format: path}."""
    directory = params["report_dir"]
    written = {}
    if directory:
        os.makedirs(directory, exist_ok=True)
        diagnosis = os.path.exists(os.path.join(directory, DIAGNOSIS_REPORT))
        contents = {
            "json": json.dumps(doc, indent=2, sort_keys=False) + "\n",
            "text": render_text(doc, params["show_job_ids"]),
            "markdown": render_markdown(doc, previous),
            "junit": render_junit(doc),
            "html": render_html(doc, history, diagnosis),
        }
        for kind, content in contents.items():
            path = os.path.join(directory, REPORT_FILES[kind])
            write_atomic(path, content)
            written[kind] = path
    prometheus = params["prometheus_textfile"] or report_path(directory, REPORT_FILES["prometheus"])
    if prometheus:
        write_atomic(prometheus, render_prometheus(doc))
        written["prometheus"] = prometheus
    return written


def run_module() -> None:
    argument_spec = dict(
        table=dict(type="str", default="panzoto-processing-jobs"),
        classification_rules=dict(type="list", elements="dict", default=[], options=CLASSIFICATION_RULE_OPTIONS),
        stuck_after=dict(type="str", default="1h"),
        recent_window=dict(type="str", default="24h"),
        thresholds=dict(type="dict", default=DEFAULT_THRESHOLDS),
        examples=dict(type="int", default=5),
        segments=dict(type="int", default=4),
        page_size=dict(type="int"),
        now=dict(type="str"),
        cloudwatch_namespace=dict(type="str"),
        report_dir=dict(type="path"),
        state_dir=dict(type="path"),
        prometheus_textfile=dict(type="path"),
        show_job_ids=dict(type="bool", default=False),
        history_size=dict(type="int", default=500),
        trend_runs=dict(type="int", default=24),
        alert_webhook_url=dict(type="str", no_log=True),
        alert_email=dict(
            type="dict",
            options=dict(
                smtp_host=dict(type="str", required=True),
                smtp_port=dict(type="int", default=587),
                starttls=dict(type="bool", default=True),
                username=dict(type="str"),
                password=dict(type="str", no_log=True),
                sender=dict(type="str", required=True),
                to=dict(type="list", elements="str", required=True),
            ),
        ),
        realert_after=dict(type="str", default="24h"),
        **AWS_ARGUMENT_SPEC,
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    require_boto3(module)
    validate_aws_params(module)
    params = module.params
    secrets = [value for value in (params["alert_webhook_url"], (params["alert_email"] or {}).get("password")) if value]

    try:
        rules = build_rules(rules_from_options(params["classification_rules"]))
        stuck_after = duration_option("stuck_after", params["stuck_after"])
        recent_window = duration_option("recent_window", params["recent_window"])
        now = parse_now(params["now"])
        thresholds = validate_thresholds(params["thresholds"], [rule.category for rule in rules])
        email, realert_after = validate_alert_options(params)
        for name, low, high in (
            ("segments", 1, 64),
            ("examples", 0, 1000),
            ("history_size", 1, 100000),
            ("trend_runs", 1, 1000),
        ):
            check_range(name, params[name], low, high)
        if params["page_size"] is not None:
            check_range("page_size", params["page_size"], 1)
    except (RuleError, ValueError) as exc:
        module.fail_json(msg=redact(str(exc), secrets))

    started = time.monotonic()
    stats = ScanStats()
    audit = JobAudit(now=now, stuck_after=stuck_after, recent_window=recent_window, examples=params["examples"])
    table = params["table"]
    doc = {"schema_version": SCHEMA_VERSION, "status": "ok", "error": None, "table": table, "now": isoformat(now)}
    published = 0
    try:
        counter = scan_table(module, audit, rules, stats)
        report = audit.report(rules_by_category(rules))
        if params["cloudwatch_namespace"] and not module.check_mode:
            cloudwatch = aws_client(RaisingModule(module), "cloudwatch")
            counter.attach(cloudwatch)
            try:
                published = publish_metrics(cloudwatch, params["cloudwatch_namespace"], metric_data(report), now)
            except aws_errors() as exc:
                raise CannotRun(
                    describe_aws_error(exc, "publish metrics to CloudWatch", params.get("endpoint_url"))
                ) from None
    except CannotRun as exc:
        doc.update(status="error", error=redact(str(exc), secrets))
    except Exception as exc:  # an audit that cannot run must still say so in its report
        doc.update(status="error", error=redact(f"{type(exc).__name__}: {exc}".splitlines()[0], secrets))
    finally:
        audit.close()
    doc["duration_seconds"] = round(time.monotonic() - started, 3)
    if doc["status"] != "error":
        values = threshold_values(report)
        breached = breached_thresholds(thresholds, values)
        doc.update(
            status="breached" if breached else "ok",
            stuck_after=params["stuck_after"],
            recent_window=params["recent_window"],
            **report,
            thresholds=thresholds,
            threshold_results=threshold_results(thresholds, values),
            breached=breached,
            metrics_published=published,
            requests={
                "pages": stats.pages,
                "http_requests": counter.total,
                "by_operation": dict(sorted(counter.counts.items())),
                "segments": params["segments"],
            },
        )
    doc["next_steps"] = next_steps(doc)

    state_dir = params["state_dir"] or params["report_dir"]
    history_file = report_path(state_dir, HISTORY_FILE)
    history = read_history(history_file, params["history_size"]) if history_file else []
    previous = history[-1] if history else None
    entry = history_entry(doc)

    alerts: list[dict] = []
    channels = {}
    if params["alert_webhook_url"]:
        channels["webhook"] = lambda subject, text: send_webhook(params["alert_webhook_url"], text)
    if email:
        channels["email"] = lambda subject, text: send_email(email, subject, text)
    try:
        if state_dir and not module.check_mode:
            os.makedirs(state_dir, exist_ok=True)
        if channels and doc["status"] != "error":
            if not state_dir:
                module.fail_json(msg="alerts need report_dir or state_dir, to remember what was already sent.")
            state_file = os.path.join(state_dir, STATE_FILE)
            alerts, state = deliver_alerts(channels, doc, state_file, previous, now, realert_after, module.check_mode)
            if state is not None:
                write_atomic(state_file, json.dumps(state, indent=2) + "\n", mode=0o600)
        doc["alerts"] = alerts
        written = write_reports(params, doc, [*history, entry][-params["trend_runs"] :], previous)
        if history_file and not module.check_mode:
            append_history(history_file, entry, params["history_size"])
    except OSError as exc:
        module.fail_json(msg=redact(f"cannot write the audit reports: {exc}", secrets))
    for alert in alerts:
        if alert["error"]:
            module.warn(
                f"{alert['channel']} alert ({alert['alert']}) not delivered: {alert['error']}; the next run retries it."
            )

    result = dict(
        changed=False,
        audit_status=doc["status"],
        error=doc["error"],
        table=table,
        now=doc["now"],
        reports=written,
        alerts=alerts,
    )
    if doc["status"] == "error":
        # Distinct from a breach (a failed task, rc 2): the data could not be reached, rc 4.
        # Shown as is, so only what a person needs: the reason and where the error report is.
        module.exit_json(
            changed=False,
            unreachable=True,
            msg=f"The audit could not run: {doc['error']}",
            audit_status="error",
            error=doc["error"],
            reports=written,
        )
    module.exit_json(breached=doc["breached"], metrics_published=published, **result)


def main() -> None:
    run_module()


if __name__ == "__main__":
    main()
