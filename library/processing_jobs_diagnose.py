#!/usr/bin/python
"""Ansible module: select failed jobs to diagnose, then classify their log evidence into causes."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: processing_jobs_diagnose
short_description: Select Panzoto jobs to diagnose and classify the causes found in the servers' logs
description:
  - The control-node half of the ops guide's MAX_RETRIES investigation ("check server logs, find the root
    cause"). The other half, job_log_evidence, runs on every API server.
  - With O(step=select), reads the processing-jobs table (a scan of the few attributes needed, or one
    C(Query) per user on O(user_index) with O(user_ids)) and returns the selected jobs, each with the
    time window to read logs in (C(created_at) to its last attempt, widened by O(window_margin)).
    Selection options have the names and meaning of processing_jobs_cleanup's; without any, the failed
    jobs of every category whose rule's C(next_step) is C(diagnose) are selected (today's
    C(decryption_failed), C(processing_error), C(audio_conversion), C(daily_summary) and the guide's
    C(max_retries), plus any rule of O(classification_rules) that says so).
  - With O(step=classify), takes those jobs and every server's job_log_evidence result and returns the
    diagnosis report (schema_version 1) - per job its cause, the host its deciding line came from, the
    evidence lines (capped; redacted on the host) and the action; per cause its count, hosts and action.
  - A job's cause is the first rule (O(cause_rules), then the defaults) matching its most recent record
    that matches any rule, so the last attempt decides. Records matching no rule give C(unclassified);
    no record at all gives C(no_evidence). Nothing is guessed.
  - Reads only; never reports C(changed).
version_added: "1.0.0"
author: panzoto-ops maintainers (@panzoto-ops)
options:
  step:
    description: C(select) reads the table; C(classify) builds the report from O(jobs) and O(evidence).
    type: str
    choices: [select, classify]
    required: true
  categories:
    description:
      - Select failed jobs in these error categories (see O(classification_rules)), as processing_jobs_cleanup does;
        C(deletable) stands for every category whose rule says cleanup may delete it.
      - Defaults to every category whose rule's C(next_step) is C(diagnose) when none of O(categories),
        O(statuses) and O(job_ids) is given.
  window_margin:
    description:
      - How much earlier than C(created_at) and later than the last attempt (C(last_attempt_at), else
        C(completed_at), else C(created_at)) the logs are read, for clock skew and the 5-minute processing timeout.
    type: str
    default: 15m
  max_jobs:
    description:
      - At most this many jobs are diagnosed, the most recently attempted ones; RV(selected) says how many matched.
    type: int
    default: 500
  jobs:
    description: For O(step=classify), the RV(jobs) of the select step.
    type: list
    elements: dict
    default: []
  evidence:
    description:
      - For O(step=classify), each API server's inventory name to its job_log_evidence result. A result that
        failed or is unreachable is listed in RV(hosts) with its error.
    type: dict
    default: {}
  cause_rules:
    description:
      - Rules added to or overriding the default causes, applied in order. Each is a dict with C(cause)
        (lower_snake_case) and any of C(match) (case-insensitive substring), C(regex) (C(match) is a regular
        expression), C(action) (what to do), C(remedy) (one of C(requeue), C(delete), C(repair_host),
        C(raise_limit), C(redeploy), C(review)), or C(remove=true) to drop a default.
      - A rule naming a default cause replaces it in place; a new cause is matched before the defaults.
        C(no_evidence) and C(unclassified) take only an C(action).
    type: list
    elements: dict
    default: []
  evidence_limit:
    description: Evidence records shown per job in the report; the deciding record is always one of them.
    type: int
    default: 10
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
  - panzoto_selection
notes:
  - O(step=select) needs C(dynamodb:DescribeTable) and C(dynamodb:Scan) on the table, or C(dynamodb:Query) on
    O(user_index) with O(user_ids).
"""

EXAMPLES = r"""
- name: Select the failed jobs whose category's next step is the diagnosis
  processing_jobs_diagnose:
    step: select
  register: selection

- name: Classify what the servers' logs say about them
  processing_jobs_diagnose:
    step: classify
    jobs: "{{ selection.jobs }}"
    evidence: "{{ dict(groups.api_servers | zip(groups.api_servers | map('extract', hostvars, 'job_evidence'))) }}"
    cause_rules:
      - {cause: ffmpeg_oom, match: "Cannot allocate memory", action: "Give the host more memory, then requeue.", remedy: requeue}
"""

RETURN = r"""
jobs:
  description:
    - With O(step=select), the selected jobs, each with C(job_id), C(user_id), C(status), C(category),
      C(audio_file_id), C(created_at), C(last_attempt_at), C(window_start) and C(window_end).
    - With O(step=classify), the report's jobs, each with C(job_id), C(user_id), C(status), C(category),
      C(cause), C(host), C(hosts), C(action), C(remedy) and C(evidence) (strings, C([host] record)).
  returned: always
  type: list
selected:
  description: With O(step=select), how many jobs matched (more than RV(jobs) when O(max_jobs) cut them).
  returned: when step is select
  type: int
schema_version:
  description: With O(step=classify), 1.
  returned: when step is classify
  type: int
generated_at:
  description: With O(step=classify), when the report was made (ISO-8601).
  returned: when step is classify
  type: str
table:
  description: The table name.
  returned: always
  type: str
causes:
  description: With O(step=classify), each cause to its C(count), C(hosts), C(action), C(remedy) and C(job_ids).
  returned: when step is classify
  type: dict
hosts:
  description:
    - With O(step=classify), each server to what reading its logs cost and found - C(bytes_read), C(bytes_returned),
      C(records_scanned), C(jobs_with_evidence), C(redactions), C(sources), and C(error) when it could not be read.
  returned: when step is classify
  type: dict
read:
  description: With O(step=select), how the table was read (C(method) scan or query, C(index), C(reason), C(pages), C(items)).
  returned: when step is select
  type: dict
"""

from datetime import datetime, timedelta

from ansible.module_utils.basic import AnsibleModule
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
    rules_from_options,
)
from ansible.module_utils.panzoto.diagnosis.log_causes import CauseRuleError, build_cause_rules
from ansible.module_utils.panzoto.diagnosis.loguru import message_of, printable
from ansible.module_utils.panzoto.jobs import (
    JOB_ATTRIBUTES,
    inspect_job,
    isoformat,
    parse_now,
    parse_timestamp,
)
from ansible.module_utils.panzoto.options import OptionError, check_range, duration_option
from ansible.module_utils.panzoto.scan import ScanStats
from ansible.module_utils.panzoto.selection import (
    SELECTION_ARGUMENT_SPEC,
    Selection,
    read_items,
    read_plan,
    selection_from_params,
)

# --------------------------------------------------------------------------- select


def validate_selection(params: dict) -> None:
    for name in ("job_types", "user_ids", "job_ids"):
        if params[name] is not None and not params[name]:
            raise OptionError(f"{name} is an empty list: it would select nothing; leave it out instead.")
    check_range("max_jobs", params["max_jobs"], 1)
    check_range("segments", params["segments"], 1, 64)


def diagnosable_categories(rules: tuple) -> list[str]:
    """The categories whose next step is this diagnosis: what the item's message leaves open."""
    return [rule.category for rule in rules if rule.next_step == "diagnose"]


def build_selection(params: dict, rules: tuple, now: datetime) -> Selection:
    """The shared selection (module_utils/panzoto/selection.py); without one, the diagnosable categories."""
    explicit = params["categories"] or params["statuses"] or params["job_ids"]
    default = [] if explicit else diagnosable_categories(rules)
    return selection_from_params(params, rules, now, params["categories"] or default)


def last_attempt(job) -> datetime:
    return parse_timestamp(job.item.get("last_attempt_at")) or job.completed_at or job.created_at


def selected_job(job, margin: timedelta) -> dict:
    return {
        "job_id": job.job_id,
        "user_id": job.user_id,
        "status": job.status,
        "category": job.category,
        "audio_file_id": job.audio_file_id,
        "created_at": isoformat(job.created_at),
        "last_attempt_at": isoformat(parse_timestamp(job.item.get("last_attempt_at"))),
        "window_start": isoformat(job.created_at - margin),
        "window_end": isoformat(max(last_attempt(job), job.created_at) + margin),
    }


def run_select(module, params: dict) -> dict:
    try:
        rules = build_rules(rules_from_options(params["classification_rules"]))
        validate_selection(params)
        now = parse_now(params["now"])
        margin = duration_option("window_margin", params["window_margin"])
        selection = build_selection(params, rules, now)
    except (RuleError, OptionError, ValueError) as exc:
        module.fail_json(msg=str(exc))
    dynamodb = aws_client(module, "dynamodb", max_pool_connections=params["segments"] + 2)
    stats = ScanStats()
    table = params["table"]
    try:
        description = dynamodb.describe_table(TableName=table)["Table"]
        plan = read_plan(selection.user_ids, params["user_index"], description)
        items = read_items(dynamodb, table, plan, selection.user_ids, params["segments"], stats, JOB_ATTRIBUTES)
        # Malformed items have no time window to read: never diagnosed, even when named by job id.
        jobs = (inspect_job(item, rules) for item in items)
        matched = [job for job in jobs if not job.malformed and job.job_id is not None and selection.matches(job)]
    except aws_errors() as exc:
        module.fail_json(msg=describe_aws_error(exc, f"read the jobs of table {table}", client=dynamodb))
    # Most recently attempted first; ties by job id, so the order never depends on how the scan's segments interleave.
    matched.sort(key=lambda job: (last_attempt(job), job.job_id), reverse=True)
    jobs = [selected_job(job, margin) for job in matched[: params["max_jobs"]]]
    if len(matched) > params["max_jobs"]:
        module.warn(
            f"{len(matched)} jobs matched; diagnosing the {params['max_jobs']} attempted last (raise max_jobs)."
        )
    return {
        "changed": False,
        "table": table,
        "now": isoformat(now),
        "selected": len(matched),
        "jobs": jobs,
        "read": {**plan.report(), "pages": stats.pages, "items": stats.items},
    }


# --------------------------------------------------------------------------- classify


def host_summary(result: object) -> dict:
    if not isinstance(result, dict):
        return {"error": "no result (the host was not read)"}
    if result.get("unreachable") or result.get("failed") or result.get("skipped"):
        reason = "unreachable" if result.get("unreachable") else "failed" if result.get("failed") else "skipped"
        return {"error": printable(f"{reason}: {str(result.get('msg', '')).strip()[:300]}")}
    return {
        "bytes_read": int(result.get("bytes_read", 0)),
        "bytes_returned": int(result.get("bytes_returned", 0)),
        "records_scanned": int(result.get("records_scanned", 0)),
        "jobs_with_evidence": len(result.get("jobs") or {}),
        "redactions": int(result.get("redactions", 0)),
        "sources": result.get("sources", []),
    }


def records_by_job(evidence: dict) -> dict[str, list[dict]]:
    """Every host's records per job, oldest first, each marked with its host."""
    found: dict[str, list[dict]] = {}
    for host in sorted(evidence):
        result = evidence[host]
        if not isinstance(result, dict) or result.get("failed") or result.get("unreachable"):
            continue
        for job_id, records in (result.get("jobs") or {}).items():
            for record in records:
                if isinstance(record, dict) and isinstance(record.get("text"), str):
                    found.setdefault(job_id, []).append({**record, "host": host})
    for records in found.values():
        records.sort(key=lambda record: str(record.get("time", "")))
    return found


def diagnose_job(job: dict, records: list[dict], rules, limit: int) -> dict:
    deciding = None
    rule = None
    for record in reversed(records):  # the most recent attempt decides
        rule = rules.match(message_of(record["text"]))
        if rule:
            deciding = record
            break
    if not records:
        rule = rules.no_evidence
    elif rule is None:
        rule = rules.unclassified
        deciding = records[-1]
    shown = records[-limit:]
    if deciding is not None and deciding not in shown:
        # The deciding record plus the latest limit - 1 others (none when the limit is 1: [-0:] would be all).
        latest = records[-(limit - 1) :] if limit > 1 else []
        shown = sorted([deciding, *latest], key=lambda record: str(record.get("time", "")))
    # Everything read from the table or a host is escaped once more here: the reports (XML, terminals)
    # must hold whatever a job id or a host's answer contains.
    return {
        "job_id": printable_or_none(job.get("job_id")),
        "user_id": printable_or_none(job.get("user_id")),
        "status": job.get("status"),
        "category": job.get("category"),
        "cause": rule.cause,
        "host": deciding["host"] if deciding else None,
        "hosts": sorted({record["host"] for record in records}),
        "action": rule.action,
        "remedy": rule.remedy,
        "evidence": [printable(f"[{record['host']}] {record['text']}") for record in shown],
    }


def printable_or_none(value: object) -> object:
    return printable(value) if isinstance(value, str) else value


def run_classify(module, params: dict) -> dict:
    try:
        rules = build_cause_rules(params["cause_rules"])
        now = parse_now(params["now"])
        if params["evidence_limit"] < 1:
            raise OptionError(f"evidence_limit must be 1 or more, got {params['evidence_limit']}.")
    except (CauseRuleError, OptionError, ValueError) as exc:
        module.fail_json(msg=str(exc))
    found = records_by_job(params["evidence"])
    jobs = [
        diagnose_job(job, found.get(job.get("job_id"), []), rules, params["evidence_limit"])
        for job in params["jobs"]
        if isinstance(job, dict)
    ]
    causes: dict[str, dict] = {}
    by_cause = rules.by_cause()
    for job in jobs:
        entry = causes.setdefault(
            job["cause"],
            {
                "count": 0,
                "hosts": set(),
                "action": job["action"],
                "remedy": by_cause[job["cause"]].remedy,
                "job_ids": [],
            },
        )
        entry["count"] += 1
        entry["job_ids"].append(job["job_id"])
        if job["host"]:
            entry["hosts"].add(job["host"])
    ordered = sorted(causes.items(), key=lambda pair: (-pair[1]["count"], pair[0]))
    return {
        "changed": False,
        "schema_version": 1,
        "generated_at": isoformat(now),
        "table": params["table"],
        "jobs": jobs,
        "causes": {cause: {**entry, "hosts": sorted(entry["hosts"])} for cause, entry in ordered},
        "hosts": {host: host_summary(result) for host, result in sorted(params["evidence"].items())},
    }


def argument_spec() -> dict:
    return dict(
        step=dict(type="str", choices=["select", "classify"], required=True),
        classification_rules=dict(type="list", elements="dict", default=[], options=CLASSIFICATION_RULE_OPTIONS),
        window_margin=dict(type="str", default="15m"),
        max_jobs=dict(type="int", default=500),
        jobs=dict(type="list", elements="dict", default=[]),
        evidence=dict(type="dict", default={}),
        cause_rules=dict(type="list", elements="dict", default=[]),
        evidence_limit=dict(type="int", default=10),
        **SELECTION_ARGUMENT_SPEC,
        **AWS_ARGUMENT_SPEC,
    )


def run_module() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    if module.params["step"] == "select":
        require_boto3(module)
        validate_aws_params(module)
        module.exit_json(**run_select(module, module.params))
    module.exit_json(**run_classify(module, module.params))


def main() -> None:
    run_module()


if __name__ == "__main__":
    main()
