"""playbooks/audit_jobs.yml through ansible-playbook against moto's server.

Expected numbers come from the seeder, which knows them by construction
(tools/seed_jobs.py does not use the project's classification).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import local_aws
import pytest
import seed_jobs
from fault_proxy import FaultPlan, FaultProxy, FaultRule
from support.playbook import PlaybookRun, run_playbook

GUIDE_NOW = "2025-10-19T18:00:00Z"
# Every category the seeder writes (docs/DESIGN.md §4), the catch-all included.
CATEGORIES = seed_jobs.CATEGORIES


def audit(tmp_path: Path, endpoint_url: str, **extra_vars) -> tuple[PlaybookRun, dict | None]:
    """Run the audit playbook; return the run and the JSON report it wrote (None if it wrote none)."""
    report_dir = tmp_path / "reports"
    run = run_playbook(
        "audit_jobs.yml",
        extra_vars={"audit_report_dir": str(report_dir), "audit_now": GUIDE_NOW, **extra_vars},
        env={"AWS_ENDPOINT_URL": endpoint_url},
    )
    report_file = report_dir / "job-audit.json"
    return run, json.loads(report_file.read_text()) if report_file.exists() else None


@pytest.fixture(scope="module")
def guide(module_aws) -> tuple[str, dict]:
    """The guide's snapshot, seeded once: the audit only reads it."""
    return module_aws.endpoint_url, seed_jobs.seed_guide_snapshot(module_aws.endpoint_url)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict]]:
    """10,000 generated jobs on an endpoint of their own, seeded once."""
    with local_aws.running_server(tmp_path_factory.mktemp("moto") / "moto.log") as server:
        yield server.endpoint_url, seed_jobs.seed_synthetic(server.endpoint_url, jobs=10_000, seed=7)


def category_counts(report: dict) -> dict[str, int]:
    counts = {category: 0 for category in CATEGORIES}
    counts.update({entry["category"]: entry["count"] for entry in report["categories"]})
    return counts


def assert_report_matches(report: dict, expected: dict) -> None:
    assert report["total_items"] == expected["total_items"]
    assert report["by_status"] == expected["by_status"]
    assert report["by_job_type"] == {k: v for k, v in expected["by_job_type"].items() if v}
    assert category_counts(report) == expected["by_category"]
    assert report["malformed"]["count"] == expected["malformed"]
    assert report["malformed"]["by_reason"] == {k: v for k, v in expected["malformed_by_reason"].items() if v}
    assert report["pending_stuck"]["count"] == expected["pending_stuck"]
    assert report["repeated_failures"]["count"] == expected["repeated_failure_audio_files"]
    processing = expected["completed_processing_seconds"]
    assert report["completed"]["processing_seconds_count"] == processing["count"]
    assert report["completed"]["processing_seconds_average"] == pytest.approx(processing["avg"], abs=0.001)
    # p95 is tallied at 0.1 s resolution to keep memory flat.
    assert report["completed"]["processing_seconds_p95"] == pytest.approx(processing["p95"], abs=0.05)
    finished = expected["by_status"]["completed"] + expected["by_status"]["failed"]
    assert report["completed"]["success_rate"] == pytest.approx(expected["by_status"]["completed"] / finished, abs=1e-4)


def test_guide_snapshot_gives_exactly_the_guide_numbers(guide, tmp_path: Path) -> None:
    endpoint_url, expected = guide

    run, report = audit(tmp_path, endpoint_url, audit_fail_on_breach=False)

    assert run.returncode == 0, run.output
    assert report["by_status"] == {"completed": 9, "failed": 49, "pending": 2, "processing": 0}
    assert category_counts(report) == {
        **dict.fromkeys(CATEGORIES, 0),
        "legacy_encryption": 34,
        "max_retries": 10,
        "transcription_failed": 5,
    }
    assert_report_matches(report, expected)
    # The printed report is the guide's, with each category's solution.
    for line in ["✅ completed:  9 (15%)", "❌ failed:     49 (82%)", "⏳ pending:    2 (3%)", "legacy_encryption: 34",
                 "max_retries: 10", "transcription_failed: 5", "LEGACY_ENCRYPTION (34 jobs):",
                 "→ SOLUTION: Delete these jobs and their audio files from S3"]:  # fmt: skip
        assert line in run.stdout
    assert "job ids" not in run.stdout  # only with -v or audit_show_job_ids
    assert run.stdout.count("[SUMMARY] Status Breakdown") == 1 and len(run.stdout.splitlines()) < 70
    legacy = next(entry for entry in report["categories"] if entry["category"] == "legacy_encryption")
    assert legacy["deletable"] is True
    assert legacy["oldest_failure"].startswith("2025-10-09") and legacy["newest_failure"].startswith("2025-10-09")


def test_job_ids_are_shown_with_verbose_and_reports_are_written(guide, tmp_path: Path) -> None:
    endpoint_url, expected = guide
    legacy_ids = set(expected["job_ids"]["by_category"]["legacy_encryption"])

    run = run_playbook(
        "audit_jobs.yml",
        extra_vars={"audit_report_dir": str(tmp_path), "audit_now": GUIDE_NOW, "audit_fail_on_breach": False},
        env={"AWS_ENDPOINT_URL": endpoint_url},
        verbosity=1,
    )

    assert run.returncode == 0, run.output
    shown = run.stdout.split("job ids (first 5): ")[1].splitlines()[0].split(", ")
    assert len(shown) == 5 and set(shown) <= legacy_ids
    # The report once, no dumps of the other formats.
    assert run.stdout.count("[SUMMARY] Status Breakdown") == 1
    assert "<html" not in run.stdout and '"schema_version"' not in run.stdout and "<testsuite" not in run.stdout
    # The report (about 60 lines), the task's summary (counts, six thresholds, about 100) and the two checks
    # before the scan (the endpoint guard and the variables' names, 5 lines each under -v), nothing else.
    assert len(run.stdout.splitlines()) < 190
    assert (tmp_path / "job-audit.txt").read_text().startswith("Job audit of panzoto-processing-jobs")
    junit = (tmp_path / "job-audit-junit.xml").read_text()
    assert 'failures="2"' in junit and "failed: 49 &gt; 20" in junit


def test_breached_thresholds_fail_the_playbook_with_their_names(guide, tmp_path: Path) -> None:
    endpoint_url, _ = guide

    run, report = audit(tmp_path, endpoint_url)

    assert run.returncode == 2
    assert "Job audit thresholds breached: failed: 49 > 20; legacy_encryption: 34 > 10" in run.output
    # The report is still written, so CI can publish it.
    assert [entry["name"] for entry in report["breached"]] == ["failed", "legacy_encryption"]


def test_thresholds_within_limits_pass(guide, tmp_path: Path) -> None:
    endpoint_url, _ = guide

    run, report = audit(tmp_path, endpoint_url, audit_thresholds={"failed": 49, "legacy_encryption": 34, "pending": 2})

    assert run.returncode == 0, run.output
    assert report["breached"] == []
    assert "all within limits" in run.stdout


def test_stuck_pending_jobs_breach_the_guide_threshold(guide, tmp_path: Path) -> None:
    endpoint_url, _ = guide

    # A day later, the guide's two pending jobs have waited far longer than an hour.
    run, report = audit(tmp_path, endpoint_url, audit_now="2025-10-20T18:00:00Z", audit_thresholds={"pending_stuck": 0})

    assert run.returncode == 2
    assert report["pending_stuck"]["count"] == 2
    assert "pending_stuck: 2 > 0" in run.output


@pytest.mark.parametrize("segments", [1, 4])
def test_synthetic_table_gives_exactly_the_generated_counts(synthetic, tmp_path: Path, segments: int) -> None:
    endpoint_url, expected = synthetic

    run, report = audit(
        tmp_path, endpoint_url, audit_now=expected["now"], audit_segments=segments, audit_fail_on_breach=False
    )

    assert run.returncode == 0, run.output
    assert_report_matches(report, expected)
    assert expected["malformed"] > 0 and all(expected["malformed_by_reason"].values())
    assert all(expected["by_category"].values())
    # Pages follow DynamoDB's 1 MB limit whatever the segment count; one request per page plus DescribeTable,
    # plus the one page the processor reads (its view: pending jobs it cannot see).
    assert report["requests"]["segments"] == segments
    assert report["requests"]["by_operation"]["Scan"] == report["requests"]["pages"] + 1
    assert report["requests"]["pages"] >= math.ceil(10_000 * 150 / 1_048_576)


def test_page_size_bounds_each_request(guide, tmp_path: Path) -> None:
    endpoint_url, expected = guide

    run, report = audit(tmp_path, endpoint_url, audit_segments=1, audit_fail_on_breach=False, audit_page_size=7)

    assert run.returncode == 0, run.output
    assert report["by_status"] == expected["by_status"]
    # 60 items, 7 per page: 9 pages, the last one empty-handed or short.
    assert report["requests"]["pages"] == math.ceil(60 / 7) + (1 if 60 % 7 == 0 else 0)


def test_user_rules_reclassify_jobs(guide, tmp_path: Path) -> None:
    endpoint_url, _ = guide
    rules = [{"category": "retries_exhausted", "match": "maximum retries", "solution": "Requeue after the fix."}]

    run, report = audit(tmp_path, endpoint_url, audit_classification_rules=rules, audit_fail_on_breach=False)

    assert run.returncode == 0, run.output
    counts = {entry["category"]: entry["count"] for entry in report["categories"]}
    assert counts == {"legacy_encryption": 34, "retries_exhausted": 10, "transcription_failed": 5}
    assert "RETRIES_EXHAUSTED (10 jobs):" in run.stdout and "Requeue after the fix." in run.stdout


def assert_error_report(run: PlaybookRun, report: dict | None, reason: str) -> None:
    """An audit that could not run: rc 4 (not a breach's 2), the reason on one line, and a JSON report saying so."""
    assert run.returncode == 4, run.output
    assert report is not None and report["status"] == "error" and report["schema_version"] == 1
    assert reason in report["error"] and "\n" not in report["error"]
    # The callback folds long values: compare the words.
    assert f"The audit could not run: {report['error']}" in " ".join(run.output.split())
    assert "Traceback" not in run.output


def test_missing_table_writes_an_error_report(guide, tmp_path: Path) -> None:
    run, report = audit(tmp_path, guide[0], audit_table="no-such-table")

    assert_error_report(run, report, "ResourceNotFoundException while trying to audit table no-such-table at ")
    assert "(region us-east-1)" in report["error"] and "check the table name and region" in report["error"]


def test_unreachable_endpoint_writes_an_error_report_and_exits_apart_from_a_breach(tmp_path: Path) -> None:
    dead = "http://127.0.0.1:9"  # discard port: nothing listens there

    run, report = audit(tmp_path, dead)

    reason = f"Cannot reach the AWS endpoint at {dead} (region us-east-1) while trying to audit table "
    reason += "panzoto-processing-jobs"
    assert_error_report(run, report, reason)
    reports = tmp_path / "reports"
    assert 'panzoto_job_audit_up{table="panzoto-processing-jobs"} 0' in (reports / "job-audit.prom").read_text()
    assert 'errors="1"' in (reports / "job-audit-junit.xml").read_text()
    assert reason in (reports / "job-audit.md").read_text() and reason in (reports / "job-audit.html").read_text()
    history = [json.loads(line) for line in (reports / "job-audit-history.jsonl").read_text().splitlines()]
    assert [entry["status"] for entry in history] == ["error"]


@pytest.mark.parametrize(
    ("extra_vars", "message"),
    [
        ({"audit_thresholds": {"failures": 3}}, "unknown threshold 'failures'"),
        ({"audit_thresholds": {"failed": "many"}}, "thresholds: 'failed' must be a whole number, got 'many'"),
        # Never truncated or taken as 1.
        ({"audit_thresholds": {"failed": 1.9}}, "thresholds: 'failed' must be a whole number, got 1.9"),
        ({"audit_thresholds": {"failed": True}}, "thresholds: 'failed' must be a whole number, got True"),
        ({"audit_thresholds": {"pending_stuck": -1}}, "thresholds: 'pending_stuck' cannot be negative"),
        # A check that checks nothing is refused, not reported as "all within limits".
        (
            {"audit_thresholds": {}},
            "thresholds is empty: the audit would check no limit; leave it unset for the guide's",
        ),
        ({"audit_stuck_after": "a while"}, "stuck_after: invalid duration 'a while'"),
        ({"audit_realert_after": "soon"}, "realert_after: invalid duration 'soon'"),
        ({"audit_now": "tomorrow"}, "invalid now 'tomorrow'"),
        ({"audit_segments": 0}, "segments must be between 1 and 64"),
        ({"audit_page_size": 0}, "page_size must be 1 or more, got 0"),
        ({"audit_classification_rules": [{"category": "x y", "match": "z"}]}, "lower_snake_case"),
    ],
)
def test_bad_options_are_one_clear_line(guide, tmp_path: Path, extra_vars: dict, message: str) -> None:
    run, report = audit(tmp_path, guide[0], **extra_vars)

    assert run.returncode == 2 and report is None
    assert message in run.output
    assert "Traceback" not in run.output


def test_missing_credentials_are_one_clear_line(guide, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    run, report = audit(tmp_path, guide[0])

    assert_error_report(run, report, "No AWS credentials found")


def test_throttling_and_server_errors_are_retried_to_exact_counts(guide, tmp_path: Path) -> None:
    endpoint_url, expected = guide
    plan = FaultPlan(
        [
            FaultRule("Scan", "throttling", every=3),
            FaultRule("Scan", "http_500", every=5),
            FaultRule("DescribeTable", "http_503", first=1),
        ]
    )

    with FaultProxy(endpoint_url, plan=plan) as proxy:
        run, report = audit(tmp_path, proxy.url, audit_fail_on_breach=False, audit_page_size=10, audit_segments=2)
        faults = sum(proxy.faults.values())

    assert run.returncode == 0, run.output
    assert report["by_status"] == expected["by_status"]
    assert category_counts(report)["legacy_encryption"] == 34
    assert faults > 0
    # Every fault cost one more HTTP request than pages read, and nothing was counted twice
    # (plus DescribeTable and the processor's one page).
    assert report["requests"]["http_requests"] == report["requests"]["pages"] + 2 + faults
