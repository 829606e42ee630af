"""Every report of playbooks/audit_jobs.yml, from one scan, read by real parsers and a real browser.

The HTML is rendered by headless Chromium (Debian's `chromium`): the screenshot is taken, the charts are
in the rendered DOM, and every number the page shows equals the JSON's. Prometheus output goes through
prometheus_client's parser, JUnit through junitparser, the HTML through html5lib's strict parser.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import boto3
import html5lib
import pytest
import seed_jobs
from junitparser import Failure, JUnitXml
from prometheus_client.parser import text_string_to_metric_families
from support.playbook import PlaybookRun, run_playbook

FIRST_RUN = "2025-10-19T17:00:00Z"
SECOND_RUN = "2025-10-19T18:00:00Z"
CHROMIUM = shutil.which("chromium")


def audit(endpoint_url: str, report_dir: Path, now: str, **extra_vars) -> PlaybookRun:
    return run_playbook(
        "audit_jobs.yml",
        extra_vars={"audit_report_dir": str(report_dir), "audit_now": now, "audit_fail_on_breach": False, **extra_vars},
        env={"AWS_ENDPOINT_URL": endpoint_url},
    )


@pytest.fixture(scope="module")
def reports(module_aws, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two hourly runs on the guide's snapshot; a diagnosis report sits beside the second."""
    seed_jobs.seed_guide_snapshot(module_aws.endpoint_url)
    report_dir = tmp_path_factory.mktemp("reports")
    first = audit(module_aws.endpoint_url, report_dir, FIRST_RUN)
    assert first.returncode == 0, first.output
    first_markdown = (report_dir / "job-audit.md").read_text()
    (report_dir / "job-diagnosis.html").write_text("<!DOCTYPE html><title>diagnosis</title>")
    second = audit(module_aws.endpoint_url, report_dir, SECOND_RUN)
    assert second.returncode == 0, second.output
    return {
        "dir": report_dir,
        "run": second,
        "first_markdown": first_markdown,
        "json": json.loads((report_dir / "job-audit.json").read_text()),
        "endpoint_url": module_aws.endpoint_url,
    }


def test_the_json_report_has_a_schema_version_and_a_run_status(reports) -> None:
    doc = reports["json"]
    assert doc["schema_version"] == 1 and doc["status"] == "breached" and doc["error"] is None
    assert doc["by_status"] == {"completed": 9, "failed": 49, "pending": 2, "processing": 0}
    assert [(t["name"], t["value"], t["limit"], t["breached"]) for t in doc["threshold_results"]] == [
        ("failed", 49, 20, True),
        ("legacy_encryption", 34, 10, True),
        ("pending_stuck", doc["pending_stuck"]["count"], 0, doc["pending_stuck"]["count"] > 0),
        ("failed_recent", 0, 5, False),
        ("processing_stuck", 0, 0, False),
        ("pending_invisible", 0, 0, False),
    ]
    assert sum(day["count"] for day in doc["failures_by_day"]) == 49


def test_the_history_keeps_one_line_per_run(reports) -> None:
    lines = (reports["dir"] / "job-audit-history.jsonl").read_text().splitlines()
    entries = [json.loads(line) for line in lines]
    assert [entry["at"] for entry in entries] == [FIRST_RUN, SECOND_RUN]
    assert entries[-1]["failed"] == 49 and entries[-1]["breached"] == {"failed": 49, "legacy_encryption": 34}


def test_text_markdown_and_html_end_with_the_commands_to_run_next(reports) -> None:
    selection = '{"cleanup_jobs_categories": ["legacy_encryption"]}'
    cleanup = f"ansible-playbook playbooks/cleanup_jobs.yml --check --diff -e '{selection}'"
    diagnose = "ansible-playbook playbooks/diagnose_jobs.yml"
    text = (reports["dir"] / "job-audit.txt").read_text()
    markdown = (reports["dir"] / "job-audit.md").read_text()
    page = (reports["dir"] / "job-audit.html").read_text()
    for report in (text, markdown):
        tail = report.split("NEXT STEPS" if report is text else "### Next steps")[1]
        assert cleanup in tail and diagnose in tail
    next_steps = page.split("<h2>Next steps</h2>")[1]
    assert cleanup.replace('"', "&quot;").replace("'", "&#x27;") in next_steps and diagnose in next_steps


def test_markdown_shows_the_change_since_the_previous_run(reports) -> None:
    assert "No previous run in the history." in reports["first_markdown"]
    markdown = (reports["dir"] / "job-audit.md").read_text()
    assert "### Since the previous run (2025-10-19 17:00 UTC)" in markdown
    assert "| failed jobs | 49 | 49 | +0 |" in markdown
    assert "| failed | 49 | 20 | ❌ breached |" in markdown


def test_prometheus_textfile_parses_and_matches_the_json(reports) -> None:
    doc = reports["json"]
    text = (reports["dir"] / "job-audit.prom").read_text()
    samples = {
        (sample.name, tuple(sorted((k, v) for k, v in sample.labels.items() if k != "table"))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert samples[("panzoto_job_audit_up", ())] == 1
    for status, count in doc["by_status"].items():
        assert samples[("panzoto_jobs", (("status", status),))] == count
    for entry in doc["categories"]:
        assert samples[("panzoto_failed_jobs", (("category", entry["category"]),))] == entry["count"]
    assert samples[("panzoto_job_success_ratio", ())] == pytest.approx(doc["completed"]["success_rate"])
    assert samples[("panzoto_job_audit_threshold_breached", (("threshold", "failed"),))] == 1
    assert samples[("panzoto_job_audit_threshold_breached", (("threshold", "failed_recent"),))] == 0
    # Written atomically: no temp file is left beside it.
    assert not list(reports["dir"].glob(".*.tmp"))


def test_junit_has_one_timed_case_per_threshold(reports) -> None:
    doc = reports["json"]
    suite = next(iter(JUnitXml.fromfile(str(reports["dir"] / "job-audit-junit.xml"))))
    cases = {case.name: case for case in suite}
    assert set(cases) == {f"{t['name']} <= {t['limit']}" for t in doc["threshold_results"]}
    failed = {name for name, case in cases.items() if any(isinstance(r, Failure) for r in case.result)}
    assert failed == {"failed <= 20", "legacy_encryption <= 10"}
    assert suite.failures == 2 and suite.time == pytest.approx(doc["duration_seconds"], abs=0.01)
    assert suite.timestamp == SECOND_RUN[:19]
    assert all(case.time is not None for case in suite)


def test_html_is_self_contained_and_parses_without_errors(reports) -> None:
    page = (reports["dir"] / "job-audit.html").read_text()
    html5lib.HTMLParser(strict=True, namespaceHTMLElements=False).parse(page)
    assert not re.search(r"<(script|link|img|iframe)\b", page) and "url(" not in page
    assert re.findall(r'(?:src|href)="([^"]+)"', page) == ["job-diagnosis.html"]
    # Readable times and ids: no microseconds, no raw ISO-8601 instants, ids kept on one line.
    assert not re.search(r"\d{2}:\d{2}:\d{2}\.\d+", page) and "T18:00:00Z" not in page
    assert "code.id { white-space: nowrap;" in page


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install -y chromium)")
def test_html_renders_in_chromium_with_charts_and_the_json_numbers(reports, tmp_path: Path) -> None:
    doc = reports["json"]
    page = reports["dir"] / "job-audit.html"
    browser = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    screenshot = tmp_path / "job-audit.png"
    subprocess.run(
        [*browser, "--window-size=1200,2600", f"--screenshot={screenshot}", page.as_uri()],
        capture_output=True, timeout=180, check=True,
    )  # fmt: skip
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 20_000
    dom = subprocess.run(
        [*browser, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=180, check=True
    ).stdout
    for chart in ("chart-status", "chart-categories", "chart-failures-per-day", "chart-trend"):
        assert re.search(rf'<svg id="{chart}"[^>]*>.*?<(rect|polyline)', dom, re.S), chart
    shown = dict(re.findall(r'<span data-metric="([^"]+)">([^<]*)</span>', dom))
    assert shown["by_status.total"] == str(sum(doc["by_status"].values()))
    for status, count in doc["by_status"].items():
        assert shown[f"by_status.{status}"] == str(count)
    for entry in doc["categories"]:
        assert shown[f"category.{entry['category']}"] == str(entry["count"])
    for t in doc["threshold_results"]:
        assert (shown[f"threshold.{t['name']}.value"], shown[f"threshold.{t['name']}.limit"]) == (
            str(t["value"]),
            str(t["limit"]),
        )
    assert shown["pending_stuck.count"] == str(doc["pending_stuck"]["count"])
    assert shown["completed.success_rate"] == f"{doc['completed']['success_rate'] * 100:.1f}%"
    assert shown["completed.processing_seconds_average"].startswith(
        f"{doc['completed']['processing_seconds_average']:.1f} s"
    )
    assert shown["completed.processing_seconds_p95"].startswith(f"{doc['completed']['processing_seconds_p95']:.1f} s")
    # The trend has a point per run in the history.
    trend = re.search(r'<svg id="chart-trend".*?</svg>', dom, re.S).group(0)
    assert trend.count('fill="#e15759"') == 2
    assert '<a href="job-diagnosis.html">' in dom


def test_future_dated_failures_are_clock_skew_not_recent(reports, tmp_path: Path) -> None:
    now = "2025-10-09T12:00:00Z"
    moment = datetime(2025, 10, 9, 12, tzinfo=UTC)
    table = boto3.resource("dynamodb", endpoint_url=reports["endpoint_url"]).Table("panzoto-processing-jobs")
    items = table.scan()["Items"]

    def parse(value: str) -> datetime:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)

    def failed_at(item: dict) -> datetime:
        return parse(item.get("last_attempt_at") or item["created_at"])

    future = [i for i in items if parse(i["created_at"]) > moment
              or (i["status"] == "failed" and failed_at(i) > moment)]  # fmt: skip
    recent = [i for i in items if i["status"] == "failed" and (moment - failed_at(i)).total_seconds() <= 86400
              and failed_at(i) <= moment]  # fmt: skip
    assert future and recent

    run = audit(reports["endpoint_url"], tmp_path, now, audit_show_job_ids=True)

    assert run.returncode == 0, run.output
    doc = json.loads((tmp_path / "job-audit.json").read_text())
    assert doc["future_dated"]["count"] == len(future)
    assert doc["failed_recent"] == len(recent)
    assert f"[CLOCK SKEW] {len(future)} job(s) dated after the audit time" in run.stdout
    assert any("clock skew" in step["why"] for step in doc["next_steps"])
