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
  processing_timeout:
    description:
      - The processor's own timeout for one job (the backend's C(TRANSCRIPTION_TIMEOUT_MINUTES), 5 minutes).
      - A job in C(processing) longer than this plus O(processing_margin) counts as stuck in processing
        (RV(processing_stuck)), since nothing in the backend resets it.
    type: str
    default: 5m
  processing_margin:
    description: How long past O(processing_timeout) a job may stay in C(processing) before it counts as stuck.
    type: str
    default: 15m
  check_processor_view:
    description:
      - Also send the one Scan the backend's processor sends (C(status = pending), no projection, first page only) and
        report the pending jobs that page does not return (RV(pending_invisible)), with how full the page is.
      - One extra request, never a second full scan. C(playbooks/audit_jobs.yml) turns it on (C(audit_check_processor_view));
        off by default here so a bare module call sends exactly one Scan per page, as the benchmarks count.
    type: bool
    default: false
  recent_window:
    description: The window for the C(failed_recent) count (jobs that failed within it), like the guide's CloudWatch alarm.
    type: str
    default: 24h
  thresholds:
    description:
      - Counts that must not be exceeded; a value strictly greater than its threshold is reported in RV(breached).
      - Keys are statuses (C(failed), C(pending), ...), error categories (C(legacy_encryption), ...), C(pending_stuck),
        C(processing_stuck), C(pending_invisible), C(malformed), C(failed_recent), C(future_dated) and
        C(repeated_failure_audio_files).
      - Values are whole numbers; C(1.9) or C(true) are refused, never truncated.
      - The defaults are the ops guide's monitoring numbers, plus none stuck in processing and none invisible to the
        processor. C({}) is refused, as an audit that checks no limit would pass whatever the table holds.
    type: dict
    default: {failed: 20, legacy_encryption: 10, pending_stuck: 0, failed_recent: 5, processing_stuck: 0, pending_invisible: 0}
  waivers_file:
    description:
      - A YAML list of waivers, each with C(threshold) (a threshold or category name), C(reason), C(owner) and C(expires)
        (a date, YYYY-MM-DD, the last day it holds, UTC).
      - A waived breach is reported in RV(waived), not RV(breached), and does not fail the run or alert; once its waiver
        has expired it counts again, its message saying so. A file that is not such a list fails in one line.
    type: path
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
      - C(JobCount) per C(Status), C(FailedJobCount), C(FailedJobCountByCategory) per C(Category) (0 for every known
        category), C(RecentFailedJobCount) (failed within O(recent_window)), C(StuckPendingJobCount),
        C(StuckProcessingJobCount), C(InvisiblePendingJobCount), C(MalformedItemCount) and C(JobSuccessRate) (percent).
      - Every point carries a C(Table) dimension (the audited table), so two tables never add into one metric.
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
    description:
      - List job ids (stuck, per category, repeated audio, future-dated) in the text report and in the returned
        RV(pending_stuck), RV(processing_stuck) and RV(pending_invisible).
    type: bool
    default: false
  outputs:
    description:
      - What this run produces; leave one out to skip it (the others are unchanged), or name one alone.
      - The reports C(json), C(text), C(markdown), C(junit), C(html) and C(prometheus) (written only with O(report_dir) or
        O(prometheus_textfile)), the C(cloudwatch) metrics (only with O(cloudwatch_namespace)) and the C(alerts). The
        history is kept whatever this says.
    type: list
    elements: str
    choices: [json, text, markdown, junit, html, prometheus, cloudwatch, alerts]
    default: [json, text, markdown, junit, html, prometheus, cloudwatch, alerts]
  next_step_commands:
    description:
      - The command to print for each next step. Keys are the rules' next steps (C(cleanup), C(diagnose),
        C(repair_ffmpeg), C(requeue), C(review)), where C({categories}) becomes the JSON list of the categories
        concerned, and the situations C(requeue_processing), C(retention), C(check_processor), C(check_clocks)
        and C(could_not_run).
      - A step without a command is still reported, with its reason. C(playbooks/audit_jobs.yml) sets them all.
    type: dict
    default: {}
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
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
extends_documentation_fragment:
  - action_common_attributes
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
  description: Paths of the reports written, by format (json, text, markdown, junit, prometheus, html).
  returned: always
  type: dict
  sample: {json: reports/job-audit.json, html: reports/job-audit.html}
alerts:
  description: Per alert channel, what was due (breach, worse, reminder, recovered or null), whether it was sent, and the redacted error.
  returned: always
  type: list
  elements: dict
  sample: [{channel: webhook, alert: breach, sent: true, error: null}]
total_items:
  description: Items scanned, malformed ones included.
  returned: when the audit ran
  type: int
  sample: 60
by_status:
  description: Well-formed jobs per status (every status, 0 included).
  returned: when the audit ran
  type: dict
  sample: {completed: 9, failed: 49, pending: 2, processing: 0}
by_job_type:
  description: Well-formed jobs per job type.
  returned: when the audit ran
  type: dict
  sample: {transcription: 58, daily_summary: 2}
by_category:
  description: Failed jobs per error category (categories with failed jobs only).
  returned: when the audit ran
  type: dict
  sample: {legacy_encryption: 34, max_retries: 10, transcription_failed: 5}
pending_stuck:
  description: Pending jobs waiting longer than O(stuck_after); C(jobs) (the oldest, with ages) only with O(show_job_ids).
  returned: when the audit ran
  type: dict
  sample: {count: 2, oldest_age_seconds: 7200.0, stuck_after_seconds: 3600.0}
processing_stuck:
  description:
    - Jobs in C(processing) longer than O(processing_timeout) plus O(processing_margin), counted from their last attempt
      (else their creation); C(jobs) (with C(since) and ages) only with O(show_job_ids).
  returned: when the audit ran
  type: dict
  sample: {count: 1, oldest_age_seconds: 5400.0, stuck_after_seconds: 1200.0}
pending_invisible:
  description:
    - Pending jobs the processor cannot see, beyond the one Scan page it reads; C(processor_page) says how full that page
      is (C(scanned_count), C(pending_returned), C(more_pages)); C(checked) is false with O(check_processor_view=false).
    - C(jobs) only with O(show_job_ids).
  returned: when the audit ran
  type: dict
  sample: {count: 1, checked: true, processor_page: {scanned_count: 520, pending_returned: 0, more_pages: true}}
failed_recent:
  description: Jobs that failed within O(recent_window).
  returned: when the audit ran
  type: int
malformed:
  description: Items that could not be read as jobs, with their count per reason.
  returned: when the audit ran
  type: dict
  sample: {count: 2, by_reason: {created_at_out_of_range: 2}}
success_rate:
  description: Completed over completed plus failed (null when none finished).
  returned: when the audit ran
  type: float
threshold_results:
  description: Every threshold checked, with name, value, limit and whether it is breached.
  returned: when the audit ran
  type: list
  elements: dict
  sample: [{name: failed, value: 49, limit: 20, breached: true}]
breached:
  description: Thresholds exceeded, each with name, value, threshold and a one-line message.
  returned: when the audit ran
  type: list
  elements: dict
  sample: [{name: failed, value: 49, threshold: 20, message: "failed: 49 > 20"}]
waived:
  description: Thresholds exceeded under a waiver that still holds, each as in RV(breached) plus C(waiver) (reason, owner, expires).
  returned: when the audit ran
  type: list
  elements: dict
metrics_published:
  description: CloudWatch metric data points published (0 without O(cloudwatch_namespace) or in check mode).
  returned: when the audit ran
  type: int
"""

import gc
import json
import os
import time
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.panzoto.audit.history import HISTORY_FILE, STATE_FILE, append_history, read_history
from ansible.module_utils.panzoto.audit.html import render_html
from ansible.module_utils.panzoto.audit.processor_view import read_processor_page
from ansible.module_utils.panzoto.audit.reports import (
    DIAGNOSIS_REPORT,
    REPORT_FILES,
    SCHEMA_VERSION,
    SITUATION_STEPS,
    history_entry,
    next_steps,
    render_junit,
    render_markdown,
    render_prometheus,
    render_text,
    threshold_results,
)
from ansible.module_utils.panzoto.audit.tally import (
    AGGREGATE_THRESHOLDS,
    AUDIT_ATTRIBUTES,
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
    NEXT_STEPS,
    Rule,
    RuleError,
    build_rules,
    rules_by_category,
    rules_from_options,
)
from ansible.module_utils.panzoto.files import write_atomic
from ansible.module_utils.panzoto.jobs import JOB_STATUSES, isoformat, parse_now
from ansible.module_utils.panzoto.options import OptionError, check_range, duration_option
from ansible.module_utils.panzoto.scan import RequestCounter, ScanStats, scan_items

if TYPE_CHECKING:
    from ansible.module_utils.panzoto.audit.waivers import Waiver

# Alerts (audit/alerts.py: SMTP, email, HTTP), secret redaction (redact.py: its patterns compile on import,
# some 4 ms) and waivers are imported where a run uses them: every run compiles the modules it imports from
# source, and an audit that alerts no one, waives nothing and fails at nothing needs none of them. Ansible
# still ships them: its module_utils finder collects imports made inside functions too.


def redacted(text: str, secrets) -> str:
    """`text` without the run's secrets (redact.redact_values), for error messages."""
    from ansible.module_utils.panzoto.redact import redact_values

    return redact_values(text, list(secrets))


# What a run may produce; each can be chosen alone (audit_jobs.yml maps its tags onto it).
OUTPUTS = ("json", "text", "markdown", "junit", "html", "prometheus", "cloudwatch", "alerts")
EMAIL_OPTIONS = dict(
    smtp_host=dict(type="str", required=True),
    smtp_port=dict(type="int", default=587),
    starttls=dict(type="bool", default=True),
    username=dict(type="str"),
    password=dict(type="str", no_log=True),
    sender=dict(type="str", required=True),
    to=dict(type="list", elements="str", required=True),
)


def argument_spec() -> dict:
    return dict(
        table=dict(type="str", default="panzoto-processing-jobs"),
        classification_rules=dict(type="list", elements="dict", default=[], options=CLASSIFICATION_RULE_OPTIONS),
        stuck_after=dict(type="str", default="1h"),
        processing_timeout=dict(type="str", default="5m"),
        processing_margin=dict(type="str", default="15m"),
        check_processor_view=dict(type="bool", default=False),
        recent_window=dict(type="str", default="24h"),
        thresholds=dict(type="dict", default=DEFAULT_THRESHOLDS),
        waivers_file=dict(type="path"),
        examples=dict(type="int", default=5),
        segments=dict(type="int", default=4),
        page_size=dict(type="int"),
        now=dict(type="str"),
        cloudwatch_namespace=dict(type="str"),
        report_dir=dict(type="path"),
        state_dir=dict(type="path"),
        prometheus_textfile=dict(type="path"),
        show_job_ids=dict(type="bool", default=False),
        outputs=dict(type="list", elements="str", choices=list(OUTPUTS), default=list(OUTPUTS)),
        next_step_commands=dict(type="dict", default={}),
        history_size=dict(type="int", default=500),
        trend_runs=dict(type="int", default=24),
        alert_webhook_url=dict(type="str", no_log=True),
        alert_email=dict(type="dict", options=EMAIL_OPTIONS),
        realert_after=dict(type="str", default="24h"),
        **AWS_ARGUMENT_SPEC,
    )


# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class AuditOptions:
    """The module's options, checked and parsed once: nothing below reads module.params."""

    table: str
    rules: tuple[Rule, ...]
    now: datetime
    stuck_after_text: str
    stuck_after: timedelta
    processing_stuck_after_text: str
    processing_stuck_after: timedelta
    check_processor_view: bool
    recent_window_text: str
    recent_window: timedelta
    thresholds: dict[str, int]
    waivers: dict[str, Waiver]
    examples: int
    segments: int
    page_size: int | None
    cloudwatch_namespace: str | None
    report_dir: str | None
    state_dir: str | None
    prometheus_textfile: str | None
    show_job_ids: bool
    outputs: frozenset[str]
    next_step_commands: dict[str, str]
    history_size: int
    trend_runs: int
    webhook_url: str | None
    email: dict | None
    realert_after: timedelta | None
    endpoint_url: str | None
    secrets: tuple[str, ...]

    @classmethod
    def from_params(cls, params: dict) -> AuditOptions:
        """Raise ValueError (one line, naming the option) before anything is read."""
        try:
            rules = build_rules(rules_from_options(params["classification_rules"]))
        except RuleError as exc:
            raise OptionError(str(exc)) from None
        for name, low, high in (
            ("segments", 1, 64),
            ("examples", 0, 1000),
            ("history_size", 1, 100000),
            ("trend_runs", 1, 1000),
        ):
            check_range(name, params[name], low, high)
        if params["page_size"] is not None:
            check_range("page_size", params["page_size"], 1)
        processing_timeout = duration_option("processing_timeout", params["processing_timeout"])
        processing_margin = duration_option("processing_margin", params["processing_margin"])
        state_dir = params["state_dir"] or params["report_dir"]
        categories = [rule.category for rule in rules]
        return cls(
            table=params["table"],
            rules=rules,
            now=parse_now(params["now"]),
            stuck_after_text=params["stuck_after"],
            stuck_after=duration_option("stuck_after", params["stuck_after"]),
            processing_stuck_after_text=f"{params['processing_timeout']} + {params['processing_margin']}",
            processing_stuck_after=processing_timeout + processing_margin,
            check_processor_view=params["check_processor_view"],
            recent_window_text=params["recent_window"],
            recent_window=duration_option("recent_window", params["recent_window"]),
            thresholds=validate_thresholds(params["thresholds"], [rule.category for rule in rules]),
            waivers=waivers_option(params["waivers_file"], {*JOB_STATUSES, *AGGREGATE_THRESHOLDS, *categories}),
            examples=params["examples"],
            segments=params["segments"],
            page_size=params["page_size"],
            cloudwatch_namespace=params["cloudwatch_namespace"] or None,
            report_dir=output_directory("report_dir", params["report_dir"]),
            state_dir=output_directory("state_dir", state_dir),
            prometheus_textfile=output_file("prometheus_textfile", params["prometheus_textfile"]),
            show_job_ids=params["show_job_ids"],
            outputs=frozenset(params["outputs"]),
            next_step_commands=step_commands(params["next_step_commands"]),
            history_size=params["history_size"],
            trend_runs=params["trend_runs"],
            webhook_url=webhook_url(params["alert_webhook_url"]),
            email=email_settings(params["alert_email"]),
            realert_after=realert_interval(params["realert_after"]),
            endpoint_url=params.get("endpoint_url"),
            secrets=tuple(
                value for value in (params["alert_webhook_url"], (params["alert_email"] or {}).get("password")) if value
            ),
        )

    @property
    def alert_state_file(self) -> str | None:
        return os.path.join(self.state_dir, STATE_FILE) if self.state_dir else None

    @property
    def history_file(self) -> str | None:
        return os.path.join(self.state_dir, HISTORY_FILE) if self.state_dir else None


def waivers_option(path: str | None, names: set[str]) -> dict[str, Waiver]:
    """The waivers file's waivers by threshold name; {} without a file (nothing of audit/waivers.py loaded)."""
    if not path:
        return {}
    from ansible.module_utils.panzoto.audit.waivers import load_waivers

    return load_waivers(path, names)


def step_commands(commands: dict) -> dict[str, str]:
    known = (*NEXT_STEPS, *SITUATION_STEPS)
    for name, command in commands.items():
        if name not in known:
            raise OptionError(f"next_step_commands: unknown step {name!r}: use one of {', '.join(known)}.")
        if not isinstance(command, str):
            raise OptionError(f"next_step_commands: {name!r} must be a command line (text), got {command!r}.")
    return {name: command for name, command in commands.items() if command}


def output_directory(name: str, path: str | None) -> str | None:
    """A directory the run writes into: missing (it is made) or a directory, checked before the scan."""
    if not path:
        return None
    if os.path.islink(path) and not os.path.exists(path):
        raise OptionError(f"{name} {path} is a symbolic link to nothing: point it at a directory; nothing was read.")
    if os.path.exists(path) and not os.path.isdir(path):
        raise OptionError(f"{name} {path} is a file, not a directory: name a directory; nothing was read.")
    return path


def output_file(name: str, path: str | None) -> str | None:
    """A file the run writes: missing or a file, never a directory, checked before the scan."""
    if path and os.path.isdir(path):
        raise OptionError(f"{name} {path} is a directory: name the file inside it; nothing was read.")
    return path or None


def webhook_url(url: str | None) -> str | None:
    if url:
        from ansible.module_utils.panzoto.audit.alerts import webhook_url_problem

        problem = webhook_url_problem(url)
        if problem:
            # Never quote the value: the URL carries the webhook's token.
            raise OptionError(f"alert_webhook_url {problem} (its value is not shown: it is a secret).")
    return url or None


def email_settings(params: dict | None) -> dict | None:
    if not params:
        return None
    if not params["to"]:
        raise OptionError("alert_email.to must name at least one recipient.")
    check_range("alert_email.smtp_port", params["smtp_port"], 1, 65535)
    return params


def realert_interval(value: str | None) -> timedelta | None:
    if value in (None, "", "0"):
        return None
    return duration_option("realert_after", value) or None


# --------------------------------------------------------------------------- reading AWS


class CannotRun(Exception):
    """The audit could not run; its message is the one-line reason."""


class RaisingModule:
    """The module as the AWS helpers see it, raising CannotRun where they would fail the module,
    so that an audit that cannot run still writes its error report."""

    def __init__(self, module: AnsibleModule) -> None:
        self._module = module

    def __getattr__(self, name: str):
        return getattr(self._module, name)

    def fail_json(self, msg: str, **_: object) -> None:
        raise CannotRun(msg)


def scan_table(module: AnsibleModule, opts: AuditOptions, stats: ScanStats) -> tuple[dict, RequestCounter]:
    """The processor's one page (when asked), then the one full scan folded into the report."""
    client = aws_client(RaisingModule(module), "dynamodb", max_pool_connections=opts.segments + 2)
    counter = RequestCounter().attach(client)
    audit = JobAudit(
        now=opts.now,
        stuck_after=opts.stuck_after,
        recent_window=opts.recent_window,
        examples=opts.examples,
        processing_stuck_after=opts.processing_stuck_after,
    )
    try:
        client.describe_table(TableName=opts.table)
        if opts.check_processor_view:
            # Read first: a pending job written during the full scan is then at worst counted visible.
            audit.processor_page = read_processor_page(client, opts.table)
        # Folded item by item, as add(inspect_job(item)) would, without building a Job per item; the scan
        # is closed (its threads stopped, the heap thawed) as soon as the fold ends, however it ends.
        with closing(scan_items(client, opts.table, AUDIT_ATTRIBUTES, opts.segments, opts.page_size, stats)) as items:
            audit.add_items(items, opts.rules)
        return audit.report(rules_by_category(opts.rules)), counter
    except aws_errors() as exc:
        raise CannotRun(describe_aws_error(exc, f"audit table {opts.table}", client=client)) from None
    finally:
        audit.close()


def metric_data(report: dict, table: str, categories: list[str]) -> list[dict]:
    """The report's counts as CloudWatch data points; every point carries the table, so two tables never add up.

    Every known category is published, 0 included: an alarm that treats missing data as breaching
    then only fires when the audit itself stopped.
    """

    def point(name: str, value: float, unit: str = "Count", **dimensions: str) -> dict:
        return {
            "MetricName": name,
            "Value": value,
            "Unit": unit,
            "Dimensions": [{"Name": key, "Value": val} for key, val in {"Table": table, **dimensions}.items()],
        }

    by_category = {name: 0 for name in categories}
    by_category.update({entry["category"]: entry["count"] for entry in report["categories"]})
    points = [point("JobCount", count, Status=status) for status, count in report["by_status"].items()]
    points.append(point("FailedJobCount", report["by_status"]["failed"]))
    points += [point("FailedJobCountByCategory", count, Category=name) for name, count in by_category.items()]
    points.append(point("RecentFailedJobCount", report["failed_recent"]))
    points.append(point("StuckPendingJobCount", report["pending_stuck"]["count"]))
    points.append(point("StuckProcessingJobCount", report["processing_stuck"]["count"]))
    if report["pending_invisible"]["checked"]:
        points.append(point("InvisiblePendingJobCount", report["pending_invisible"]["count"]))
    points.append(point("MalformedItemCount", report["malformed"]["count"]))
    if report["completed"]["success_rate"] is not None:
        points.append(point("JobSuccessRate", report["completed"]["success_rate"] * 100, unit="Percent"))
    return points


def publish_metrics(module: AnsibleModule, opts: AuditOptions, report: dict, counter: RequestCounter) -> int:
    if not opts.cloudwatch_namespace or "cloudwatch" not in opts.outputs or module.check_mode:
        return 0
    client = aws_client(RaisingModule(module), "cloudwatch")
    counter.attach(client)
    points = metric_data(report, opts.table, sorted({rule.category for rule in opts.rules}))
    batch_size = 1000  # PutMetricData's limit of data points per request
    try:
        for start in range(0, len(points), batch_size):
            batch = [{**entry, "Timestamp": opts.now} for entry in points[start : start + batch_size]]
            client.put_metric_data(Namespace=opts.cloudwatch_namespace, MetricData=batch)
    except aws_errors() as exc:
        raise CannotRun(describe_aws_error(exc, "publish metrics to CloudWatch", client=client)) from None
    return len(points)


# --------------------------------------------------------------------------- the document


def check_state_files(opts: AuditOptions) -> None:
    """The history and alert state must be files (or missing): the run cannot remember anything otherwise."""
    for what, path in (("alert state", opts.alert_state_file), ("history", opts.history_file)):
        if path and os.path.isdir(path):
            raise CannotRun(f"the {what} file {path} is a directory: move it away, or set state_dir elsewhere")


def audit_document(module: AnsibleModule, opts: AuditOptions) -> dict:
    """Everything the reports show: the scan's report, thresholds, cost; status error with its reason otherwise."""
    started = time.monotonic()
    stats = ScanStats()
    doc = {
        "schema_version": SCHEMA_VERSION,
        "status": "ok",
        "error": None,
        "table": opts.table,
        "now": isoformat(opts.now),
    }
    try:
        check_state_files(opts)
        report, counter = scan_table(module, opts, stats)
        published = publish_metrics(module, opts, report, counter)
    except CannotRun as exc:
        doc.update(status="error", error=redacted(str(exc), opts.secrets))
    except Exception as exc:  # an audit that cannot run must still say so in its report
        doc.update(status="error", error=redacted(f"{type(exc).__name__}: {exc}".splitlines()[0], opts.secrets))
    doc["duration_seconds"] = round(time.monotonic() - started, 3)
    if doc["status"] != "error":
        values = threshold_values(report)
        breached, waived = breached_thresholds(opts.thresholds, values), []
        if opts.waivers:
            from ansible.module_utils.panzoto.audit.waivers import apply_waivers

            breached, waived = apply_waivers(breached, opts.waivers, opts.now.date())
        doc.update(
            status="breached" if breached else "ok",
            stuck_after=opts.stuck_after_text,
            processing_stuck_after=opts.processing_stuck_after_text,
            recent_window=opts.recent_window_text,
            **report,
            thresholds=opts.thresholds,
            threshold_results=threshold_results(opts.thresholds, values, {item["name"] for item in waived}),
            breached=breached,
            waived=waived,
            metrics_published=published,
            requests={
                "pages": stats.pages,
                "http_requests": counter.total,
                "by_operation": dict(sorted(counter.counts.items())),
                "segments": opts.segments,
            },
        )
    doc["next_steps"] = next_steps(doc, opts.next_step_commands)
    return doc


# --------------------------------------------------------------------------- writing


def send_alerts(module: AnsibleModule, opts: AuditOptions, doc: dict, previous: dict | None) -> list[dict]:
    if not (opts.webhook_url or opts.email) or "alerts" not in opts.outputs:
        return []
    from ansible.module_utils.panzoto.audit.alerts import deliver_alerts, deliver_error_alerts, send_email, send_webhook

    channels = {}
    if opts.webhook_url:
        channels["webhook"] = lambda subject, text: send_webhook(opts.webhook_url, text)
    if opts.email:
        channels["email"] = lambda subject, text: send_email(opts.email, subject, text)
    if doc["status"] == "error":
        return deliver_error_alerts(channels, doc, previous, module.check_mode)
    if not opts.alert_state_file:
        raise OptionError("alerts need report_dir or state_dir, to remember what was already sent.")
    alerts, state = deliver_alerts(
        channels, doc, opts.alert_state_file, previous, opts.now, opts.realert_after, module.check_mode
    )
    if state is not None:
        write_atomic(opts.alert_state_file, json.dumps(state, indent=2) + "\n", mode=0o600)
    return alerts


def write_reports(opts: AuditOptions, doc: dict, history: list[dict], previous: dict | None) -> dict[str, str]:
    """Every report from the one document; returns {format: path}."""
    directory = opts.report_dir
    written = {}
    if directory:
        os.makedirs(directory, exist_ok=True)
        diagnosis = os.path.exists(os.path.join(directory, DIAGNOSIS_REPORT))
        contents = {
            "json": json.dumps(doc, indent=2, sort_keys=False) + "\n",
            "text": render_text(doc, opts.show_job_ids),
            "markdown": render_markdown(doc, previous),
            "junit": render_junit(doc),
            "html": render_html(doc, history, diagnosis),
        }
        for kind, content in contents.items():
            if kind not in opts.outputs:
                continue
            path = os.path.join(directory, REPORT_FILES[kind])
            write_atomic(path, content)
            written[kind] = path
    prometheus = opts.prometheus_textfile or (
        os.path.join(directory, REPORT_FILES["prometheus"]) if directory else None
    )
    if prometheus and "prometheus" in opts.outputs:
        write_atomic(prometheus, render_prometheus(doc))
        written["prometheus"] = prometheus
    return written


def summary(doc: dict, show_job_ids: bool) -> dict:
    """What the task returns: the counts, thresholds and breaches; job ids only when asked (so -v stays short)."""

    def jobs(section: dict) -> dict:
        """The section without what says nothing (no age without jobs), its job ids only when asked."""
        kept = {key: value for key, value in section.items() if key != "jobs" and value is not None}
        return {**kept, "jobs": section["jobs"]} if show_job_ids and section["jobs"] else kept

    return dict(
        total_items=doc["total_items"],
        by_status=doc["by_status"],
        by_job_type=doc["by_job_type"],
        by_category={entry["category"]: entry["count"] for entry in doc["categories"]},
        pending_stuck=jobs(doc["pending_stuck"]),
        processing_stuck=jobs(doc["processing_stuck"]),
        pending_invisible=jobs(doc["pending_invisible"]),
        failed_recent=doc["failed_recent"],
        malformed={"count": doc["malformed"]["count"], "by_reason": doc["malformed"]["by_reason"]},
        success_rate=doc["completed"]["success_rate"],
        threshold_results=doc["threshold_results"],
        breached=doc["breached"],
        waived=doc["waived"],
        metrics_published=doc["metrics_published"],
    )


def run_module() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    require_boto3(module)
    validate_aws_params(module)
    params = module.params
    secrets = [value for value in (params["alert_webhook_url"], (params["alert_email"] or {}).get("password")) if value]
    try:
        opts = AuditOptions.from_params(params)
    except ValueError as exc:
        module.fail_json(msg=redacted(str(exc), secrets))

    doc = audit_document(module, opts)
    history_file = opts.history_file if opts.history_file and not os.path.isdir(opts.history_file) else None
    history = read_history(history_file, opts.history_size) if history_file else []
    previous = history[-1] if history else None
    entry = history_entry(doc)
    try:
        if opts.state_dir and not module.check_mode:
            os.makedirs(opts.state_dir, exist_ok=True)
        doc["alerts"] = alerts = send_alerts(module, opts, doc, previous)
        written = write_reports(opts, doc, [*history, entry][-opts.trend_runs :], previous)
        if history_file and not module.check_mode:
            append_history(history_file, entry, opts.history_size)
    except OptionError as exc:
        module.fail_json(msg=redacted(str(exc), secrets))
    except OSError as exc:
        module.fail_json(msg=redacted(f"cannot write the audit reports: {exc}", secrets))
    for alert in alerts:
        if alert["error"]:
            module.warn(
                f"{alert['channel']} alert ({alert['alert']}) not delivered: {alert['error']}; the next run retries it."
            )

    result = dict(
        changed=False,
        audit_status=doc["status"],
        error=doc["error"],
        table=opts.table,
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
            next_steps=doc["next_steps"],
        )
    module.exit_json(**result, **summary(doc, opts.show_job_ids))


def main() -> None:
    # The collector rests for the whole run. The run is one short process that makes almost no cyclic
    # garbage (a 100,000-job scan leaves about 135 unreachable objects), while its allocations (botocore's
    # models, then every page in flight) would trigger collections that walk them again and again: about
    # 0.02 s of CPU before the scan and 0.05 s per 100,000 jobs during it.
    enabled = gc.isenabled()
    gc.disable()
    try:
        run_module()
    finally:
        if enabled:
            gc.enable()


if __name__ == "__main__":
    main()
