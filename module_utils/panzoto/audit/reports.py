"""The audit's reports, all rendered from one document (the JSON report).

The document is what processing_jobs_audit writes as job-audit.json. Every other
format (text, Markdown, JUnit, Prometheus; HTML in audit/html) is a view of
it, so the numbers agree by construction. Files are written atomically (temp file
in the same directory, fsync, rename), so a reader (node_exporter, a CI upload)
never sees half a report.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

from ansible.module_utils.panzoto.classification import NEXT_STEPS
from ansible.module_utils.panzoto.junit import render_suite

SCHEMA_VERSION = 1
_MILLISECOND = timedelta(milliseconds=1)
REPORT_FILES = {
    "json": "job-audit.json",
    "text": "job-audit.txt",
    "markdown": "job-audit.md",
    "junit": "job-audit-junit.xml",
    "prometheus": "job-audit.prom",
    "html": "job-audit.html",
}
DIAGNOSIS_REPORT = "job-diagnosis.html"
# Situations that call for a step of their own, beside each rule's next step (classification.NEXT_STEPS).
SITUATION_STEPS = ("requeue_processing", "retention", "check_processor", "check_clocks", "could_not_run")
# C0 and C1 control characters (ESC starts terminal escape sequences), DEL: never shown raw.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def shown(value: object) -> str:
    """Text from a job field made safe to print: control characters and escape sequences as \\xNN."""
    return CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", str(value))


# --- readable values -------------------------------------------------------


def readable_time(value: str | None) -> str:
    """`2025-10-19T18:00:00.123456Z` as `2025-10-19 18:00 UTC`."""
    if not value:
        return "n/a"
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def readable_age(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def percent(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate * 100:.1f}%"


def seconds_text(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value >= 120:
        return f"{value:.1f} s ({value / 60:.1f} min)"
    return f"{value:.1f} s"


def share(count: int, total: int) -> str:
    return f"{round(count * 100 / total) if total else 0}%"


# --- the document ------------------------------------------------------------


def threshold_results(thresholds: dict[str, int], values: dict[str, int], waived: set[str]) -> list[dict]:
    """Each threshold's value and limit; `breached` counts against the run, `waived` is over but accepted."""
    results = []
    for name, limit in thresholds.items():
        over = values.get(name, 0) > limit
        results.append(
            {
                "name": name,
                "value": values.get(name, 0),
                "limit": limit,
                "breached": over and name not in waived,
                "waived": over and name in waived,
            }
        )
    return results


STEP_WHY = {
    "cleanup": "{names}: cleanup may delete these jobs; preview it",
    "diagnose": "{names}: find the root cause in the servers' logs first",
    "repair_ffmpeg": "{names}: ffmpeg cannot convert on a host; repair it, then requeue",
    "requeue": "{names}: transient failures; requeue them once the cause is gone",
    "review": "{names}: review these jobs by hand",
}


def step(kind: str, why: str, commands: dict[str, str], categories: list[str] | None = None) -> dict:
    """One next step; its command is the caller's text for `kind` (`{categories}` becomes a JSON list)."""
    template = commands.get(kind)
    command = template.replace("{categories}", json.dumps(categories or [])) if template else None
    return {"step": kind, "why": why, "command": command, "categories": categories or []}


def next_steps(doc: dict, commands: dict[str, str]) -> list[dict]:
    """What to do next for what was found (the guide's "Recommended Action").

    Each category's step is its rule's `next_step`; `commands` (from the playbook) spells each
    step as a command, so no module_util knows a playbook's variable names.
    """
    if doc["status"] == "error":
        return [step("could_not_run", "the audit could not run", commands)]
    by_step: dict[str, list[str]] = {}
    for entry in doc["categories"]:
        by_step.setdefault(entry["next_step"], []).append(entry["category"])
    steps = [
        step(kind, STEP_WHY[kind].format(names=", ".join(by_step[kind])), commands, by_step[kind])
        for kind in NEXT_STEPS
        if kind in by_step
    ]
    processing = doc["processing_stuck"]["count"]
    if processing:
        steps.append(
            step(
                "requeue_processing",
                f"{processing} job(s) stuck in processing past the timeout: nothing resets them; requeue them",
                commands,
            )
        )
    invisible = doc["pending_invisible"]["count"]
    if invisible:
        steps.append(
            step(
                "retention",
                f"{invisible} pending job(s) lie beyond the one scan page the processor reads: it will never see"
                " them until finished jobs are deleted (retention)",
                commands,
            )
        )
    if doc["pending_stuck"]["count"]:
        steps.append(step("check_processor", "pending jobs are stuck: check that the processor is up", commands))
    if doc["future_dated"]["count"]:
        steps.append(
            step(
                "check_clocks",
                "jobs dated in the future: a writer's clock is ahead (clock skew); check NTP on the API hosts",
                commands,
            )
        )
    return steps


def history_entry(doc: dict) -> dict:
    """The compact line each run appends to the history."""
    entry = {"at": doc["now"], "status": doc["status"]}
    if doc["status"] == "error":
        entry["error"] = doc["error"]
        return entry
    entry.update(
        total=sum(doc["by_status"].values()),
        failed=doc["by_status"]["failed"],
        pending_stuck=doc["pending_stuck"]["count"],
        failed_recent=doc["failed_recent"],
        success_rate=doc["completed"]["success_rate"],
        breached={item["name"]: item["value"] for item in doc["breached"]},
    )
    return entry


def changes_since(previous: dict | None, current: dict) -> list[tuple[str, str, str, str]]:
    """(what, before, now, change) rows between the previous run's history entry and this one."""
    if not previous or previous.get("status") == "error" or current.get("status") == "error":
        return []
    rows = []
    for key, label in (("failed", "failed jobs"), ("pending_stuck", "stuck pending jobs"), ("total", "jobs")):
        before, now = previous.get(key), current.get(key)
        if isinstance(before, int) and isinstance(now, int):
            rows.append((label, str(before), str(now), f"{now - before:+d}"))
    before, now = previous.get("success_rate"), current.get("success_rate")
    if before is not None and now is not None:
        rows.append(("success rate", percent(before), percent(now), f"{(now - before) * 100:+.1f} pt"))
    return rows


# --- text --------------------------------------------------------------------


def processor_view_line(invisible: dict) -> str:
    page = invisible["processor_page"]
    if page is None:
        return "[PROCESSOR VIEW] not checked"
    more = "more pages follow, never read" if page["more_pages"] else "the whole table fits in it"
    return (
        f"[PROCESSOR VIEW] its one scan page read {page['scanned_count']} item(s) and returned"
        f" {page['pending_returned']} pending ({more}); {invisible['count']} pending job(s) it cannot see"
    )


def render_text(doc: dict, show_job_ids: bool) -> str:
    if doc["status"] == "error":
        return f"Job audit of {doc['table']} at {readable_time(doc['now'])}: could not run\n  {shown(doc['error'])}\n"
    by_status = doc["by_status"]
    total = sum(by_status.values())
    lines = [
        f"Job audit of {doc['table']} at {readable_time(doc['now'])}: {total} jobs"
        f" ({doc['total_items']} items scanned)",
        "",
        "[SUMMARY] Status Breakdown:",
    ]
    for status, mark in (("completed", "✅"), ("failed", "❌"), ("pending", "⏳"), ("processing", "⚙")):
        lines.append(f"  {mark} {status + ':':<12}{by_status[status]} ({share(by_status[status], total)})")
    lines += ["", "[ERROR CATEGORIES]"]
    lines += [f"  {shown(c['category'])}: {c['count']}" for c in doc["categories"]] or ["  (no failed jobs)"]
    if doc["categories"]:
        lines += ["", "[DETAILED ERROR BREAKDOWN]"]
        for c in doc["categories"]:
            lines += [
                f"  {shown(c['category'].upper())} ({c['count']} jobs):",
                f"    → SOLUTION: {shown(c['solution'])}",
                f"    → failed between {readable_time(c['oldest_failure'])} and {readable_time(c['newest_failure'])};"
                f" cleanup may delete: {'yes' if c['deletable'] else 'no'}",
            ]
            if show_job_ids:
                ids = c["example_job_ids"]
                lines.append(f"    → job ids (first {len(ids)}): {', '.join(shown(i) for i in ids)}")
    stuck = doc["pending_stuck"]
    lines += ["", f"[STUCK PENDING] {stuck['count']} pending job(s) waiting longer than {doc['stuck_after']}"]
    if show_job_ids:
        for job in stuck["jobs"]:
            lines.append(
                f"    → {shown(job['job_id'])} created {readable_time(job['created_at'])}"
                f" ({readable_age(job['age_seconds'])} ago)"
            )
    processing = doc["processing_stuck"]
    lines.append(
        f"[STUCK PROCESSING] {processing['count']} job(s) in processing longer than"
        f" {doc['processing_stuck_after']} (timeout plus margin)"
    )
    if show_job_ids:
        for job in processing["jobs"]:
            lines.append(
                f"    → {shown(job['job_id'])} processing since {readable_time(job['since'])}"
                f" ({readable_age(job['age_seconds'])} ago)"
            )
    lines.append(processor_view_line(doc["pending_invisible"]))
    if show_job_ids:
        for job in doc["pending_invisible"]["jobs"]:
            lines.append(f"    → {shown(job['job_id'])} created {readable_time(job['created_at'])}")
    future = doc["future_dated"]
    if future["count"]:
        lines.append(f"[CLOCK SKEW] {future['count']} job(s) dated after the audit time: not counted as recent")
        if show_job_ids:
            for job in future["examples"]:
                lines.append(f"    → {shown(job['job_id'])} dated {readable_time(job['dated'])}")
    malformed = doc["malformed"]
    reasons = ", ".join(f"{reason} {n}" for reason, n in malformed["by_reason"].items())
    lines.append(f"[MALFORMED] {malformed['count']} item(s){': ' + reasons if reasons else ''}")
    completed = doc["completed"]
    lines += [
        "",
        f"[METRICS] success rate {percent(completed['success_rate'])}, processing time avg "
        f"{seconds_text(completed['processing_seconds_average'])},"
        f" p95 {seconds_text(completed['processing_seconds_p95'])};"
        f" {doc['failed_recent']} failed in the last {doc['recent_window']}",
        f"[CIRCUIT BREAKER] {doc['repeated_failures']['count']} audio file(s) failed in more than one job",
    ]
    if show_job_ids:
        for audio in doc["repeated_failures"]["audio_files"]:
            lines.append(
                f"    → {shown(audio['audio_file_id'])}: {audio['failures']} failures"
                f" ({', '.join(shown(j) for j in audio['job_ids'])})"
            )
    if doc["waived"]:
        lines.append("[THRESHOLDS] WAIVED: " + "; ".join(shown(item["message"]) for item in doc["waived"]))
    if doc["breached"]:
        lines.append("[THRESHOLDS] BREACHED: " + "; ".join(shown(item["message"]) for item in doc["breached"]))
    else:
        limits = ", ".join(f"{item['name']} <= {item['limit']}" for item in doc["threshold_results"])
        lines.append(f"[THRESHOLDS] all within limits ({limits})")
    requests = doc["requests"]
    lines.append(
        f"[COST] {requests['pages']} scan page(s), {requests['http_requests']} HTTP request(s),"
        f" {requests['segments']} segment(s)"
    )
    lines += ["", "[NEXT STEPS]"]
    for item in doc["next_steps"]:
        lines.append(f"  # {item['why']}")
        if item["command"]:
            lines.append(f"  {shown(item['command'])}")
    if not doc["next_steps"]:
        lines.append("  nothing to do")
    return "\n".join(lines) + "\n"


# --- Markdown (a CI job summary) ---------------------------------------------


def threshold_verdict(result: dict) -> str:
    if result["breached"]:
        return "❌ breached"
    return "🟡 waived" if result["waived"] else "✅ ok"


def markdown_cell(text: str) -> str:
    """Text that stays in its table cell (user-written solutions may hold pipes or newlines)."""
    return shown(text.replace("|", "\\|").replace("\n", " "))


def render_markdown(doc: dict, previous: dict | None) -> str:
    icon = {"ok": "✅", "breached": "🚨", "error": "⚠️"}[doc["status"]]
    lines = [f"## {icon} Job audit of `{doc['table']}`: {doc['status']}", "", f"At {readable_time(doc['now'])}.", ""]
    if doc["status"] == "error":
        lines += [f"The audit could not run: `{shown(doc['error'])}`", ""]
    else:
        total = sum(doc["by_status"].values())
        lines += ["| status | jobs | share |", "|---|---:|---:|"]
        lines += [f"| {status} | {n} | {share(n, total)} |" for status, n in doc["by_status"].items()]
        lines += ["", "| threshold | value | limit | result |", "|---|---:|---:|---|"]
        lines += [
            f"| {t['name']} | {t['value']} | {t['limit']} | {threshold_verdict(t)} |" for t in doc["threshold_results"]
        ]
        if doc["categories"]:
            lines += ["", "| category | failed jobs | solution |", "|---|---:|---|"]
            lines += [
                f"| {markdown_cell(c['category'])} | {c['count']} | {markdown_cell(c['solution'])} |"
                for c in doc["categories"]
            ]
        completed = doc["completed"]
        lines += [
            "",
            f"Success rate {percent(completed['success_rate'])}; processing time avg "
            f"{seconds_text(completed['processing_seconds_average'])}, p95 "
            f"{seconds_text(completed['processing_seconds_p95'])}; {doc['pending_stuck']['count']} stuck pending;"
            f" {doc['future_dated']['count']} dated in the future; {doc['processing_stuck']['count']} stuck in"
            f" processing; {doc['pending_invisible']['count']} pending beyond the processor's scan page.",
            "",
        ]
    rows = changes_since(previous, history_entry(doc))
    if rows:
        lines += [f"### Since the previous run ({readable_time(previous['at'])})", ""]
        lines += ["| | before | now | change |", "|---|---:|---:|---:|"]
        lines += [f"| {what} | {before} | {now} | {change} |" for what, before, now, change in rows]
        lines.append("")
    elif previous is None:
        lines += ["No previous run in the history.", ""]
    lines += ["### Next steps", ""]
    if doc["next_steps"]:
        for item in doc["next_steps"]:
            lines += [f"{item['why']}:", ""]
            if item["command"]:
                lines += ["```bash", shown(item["command"]), "```", ""]
    else:
        lines += ["Nothing to do.", ""]
    return "\n".join(lines)


# --- JUnit ---------------------------------------------------------------------


def render_junit(doc: dict) -> str:
    """One test case per threshold; an audit that could not run is one errored case."""
    elapsed = doc.get("duration_seconds") or 0.0
    classname = f"job-audit.{doc['table']}"
    if doc["status"] == "error":
        cases = [dict(classname=classname, name="audit run", time=elapsed, result="error", message=doc["error"])]
    else:
        results = doc["threshold_results"]
        each = elapsed / len(results) if results else 0.0
        cases = []
        for t in results:
            case = dict(classname=classname, name=f"{t['name']} <= {t['limit']}", time=each)
            if t["breached"]:
                case.update(result="failure", message=f"{t['name']}: {t['value']} > {t['limit']}")
            elif t["waived"]:
                case.update(result="skipped", message=f"{t['name']}: {t['value']} > {t['limit']}, waived")
            cases.append(case)
    return render_suite(dict(name="job-audit", cases=cases, time=elapsed, timestamp=doc["now"][:19]))


# --- Prometheus text format (node_exporter's textfile collector) -------------


def unix_seconds(moment: datetime) -> str:
    """Exact Unix time to the millisecond, from integer milliseconds (a float with {:g} keeps 6 digits)."""
    millis = (moment - datetime(1970, 1, 1, tzinfo=moment.tzinfo)) // _MILLISECOND
    return f"{millis // 1000}.{millis % 1000:03d}"


def sample_value(value: object) -> str:
    """Integers as integers, floats in their shortest exact form, preformatted text as is."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _label(value: str) -> str:
    return shown(value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n"))


def render_prometheus(doc: dict) -> str:
    table = _label(doc["table"])
    out: list[str] = []

    def gauge(name: str, help_text: str, samples: list[tuple[dict, float]]) -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} gauge")
        for labels, value in samples:
            text = ",".join(f'{key}="{_label(str(val))}"' for key, val in {"table": table, **labels}.items())
            out.append(f"{name}{{{text}}} {sample_value(value)}")

    at = datetime.fromisoformat(doc["now"].replace("Z", "+00:00"))
    gauge("panzoto_job_audit_up", "1 when the audit could read the table, 0 when it could not run.",
          [({}, 0 if doc["status"] == "error" else 1)])  # fmt: skip
    gauge("panzoto_job_audit_timestamp_seconds", "When the audit was taken (Unix time).", [({}, unix_seconds(at))])
    if doc["status"] != "error":
        gauge("panzoto_jobs", "Jobs per status.", [({"status": s}, n) for s, n in doc["by_status"].items()])
        gauge("panzoto_failed_jobs", "Failed jobs per error category.",
              [({"category": c["category"]}, c["count"]) for c in doc["categories"]])  # fmt: skip
        gauge("panzoto_jobs_stuck_pending", "Pending jobs waiting longer than stuck_after.",
              [({}, doc["pending_stuck"]["count"])])  # fmt: skip
        gauge("panzoto_jobs_stuck_processing", "Jobs in processing longer than the timeout plus margin.",
              [({}, doc["processing_stuck"]["count"])])  # fmt: skip
        gauge("panzoto_jobs_pending_invisible", "Pending jobs beyond the one scan page the processor reads.",
              [({}, doc["pending_invisible"]["count"])])  # fmt: skip
        page = doc["pending_invisible"]["processor_page"]
        if page is not None:
            gauge("panzoto_processor_page_scanned_items", "Items the processor's one Scan page reads.",
                  [({}, page["scanned_count"])])  # fmt: skip
            gauge("panzoto_processor_page_more", "1 when the table holds more than the processor's one page.",
                  [({}, int(page["more_pages"]))])  # fmt: skip
        gauge("panzoto_jobs_failed_recent", "Jobs that failed within the recent window.", [({}, doc["failed_recent"])])
        gauge("panzoto_jobs_future_dated", "Jobs dated after the audit time (clock skew).",
              [({}, doc["future_dated"]["count"])])  # fmt: skip
        gauge("panzoto_jobs_malformed", "Items that could not be read as jobs.", [({}, doc["malformed"]["count"])])
        completed = doc["completed"]
        if completed["success_rate"] is not None:
            gauge("panzoto_job_success_ratio", "Completed over completed plus failed.",
                  [({}, float(completed["success_rate"]))])  # fmt: skip
        for key, name in (("processing_seconds_average", "avg"), ("processing_seconds_p95", "p95")):
            if completed[key] is not None:
                gauge(f"panzoto_job_processing_seconds_{name}", f"Processing time of completed jobs ({name}).",
                      [({}, float(completed[key]))])  # fmt: skip
        gauge("panzoto_job_audit_threshold_breached", "1 when the count is above its threshold.",
              [({"threshold": t["name"]}, int(t["breached"])) for t in doc["threshold_results"]])  # fmt: skip
        gauge("panzoto_job_audit_threshold_waived", "1 when the count is above its threshold under a waiver.",
              [({"threshold": t["name"]}, int(t["waived"])) for t in doc["threshold_results"]])  # fmt: skip
    return "\n".join(out) + "\n"
