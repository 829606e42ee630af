"""The job_cleanup role's options through playbooks/cleanup_jobs.yml: selections pass through unchanged in
meaning, and bad values fail in one line naming the option before anything is read or changed."""

from __future__ import annotations

import json
from pathlib import Path

from support.playbook import run_playbook
from test_cleanup_playbook import GUIDE_NOW, PROCEDURE_1, TABLE, cleanup, guide, object_keys, table_items


def cleanup_with_strings(tmp_path: Path, endpoint_url: str, *pairs: str, check: bool = False):
    """Run the playbook with key=value extra vars, as typed on a command line (every value is a string)."""
    report = tmp_path / "report.json"
    report.unlink(missing_ok=True)
    paths = {
        "cleanup_jobs_now": GUIDE_NOW,
        "cleanup_jobs_archive_path": str(tmp_path / "archive.jsonl"),
        "cleanup_jobs_report_path": str(report),
    }
    args = [argument for pair in pairs for argument in ("-e", pair)]
    run = run_playbook(
        "cleanup_jobs.yml", extra_vars=paths, check=check, env={"AWS_ENDPOINT_URL": endpoint_url}, args=args
    )
    return run, json.loads(report.read_text()) if report.exists() else None


def assert_nothing_changed(tmp_path: Path, endpoint_url: str, before: dict) -> None:
    assert table_items(endpoint_url) == before and len(object_keys(endpoint_url)) == 60
    assert not (tmp_path / "archive.jsonl").exists(), "nothing may be archived"


def test_an_empty_selection_list_is_refused_never_dropped_into_every_job_of_the_category(aws, tmp_path):
    _, before = guide(aws.endpoint_url)
    for name in ("job_ids", "user_ids", "job_types"):
        run, report = cleanup(tmp_path, aws.endpoint_url, **PROCEDURE_1, **{f"cleanup_jobs_{name}": []})
        assert run.returncode != 0, (name, run.output[-2000:])
        assert "Traceback" not in run.output
        # The module saw the empty list and refused it in one line; the category was not widened to 34 jobs.
        assert f"{name} is an empty list: it would select nothing" in report["msg"], report
        assert "\n" not in report["msg"] and report.get("counts", {}).get("changed", 0) == 0
    assert_nothing_changed(tmp_path, aws.endpoint_url, before)


def test_an_empty_duration_and_empty_diagnosis_causes_are_refused_too(aws, tmp_path):
    _, before = guide(aws.endpoint_url)
    run, report = cleanup(tmp_path, aws.endpoint_url, **PROCEDURE_1, cleanup_jobs_older_than="")
    assert run.returncode != 0 and "Traceback" not in run.output
    # Refused by the module, not dropped into "any age" (its message does not name older_than yet).
    assert "invalid duration ''" in report["msg"] and "\n" not in report["msg"], report["msg"]

    diagnosis = tmp_path / "diagnosis.json"
    diagnosis.write_text(json.dumps({"schema_version": 1, "table": TABLE, "jobs": [], "causes": {}}))
    run, report = cleanup(
        tmp_path, aws.endpoint_url, cleanup_jobs_diagnosis_report=str(diagnosis), cleanup_jobs_diagnosis_causes=[]
    )
    assert run.returncode != 0 and report is None
    assert "cleanup_jobs_diagnosis_report needs cleanup_jobs_diagnosis_causes" in " ".join(run.stdout.split())
    assert_nothing_changed(tmp_path, aws.endpoint_url, before)


def test_a_value_of_the_wrong_type_fails_in_one_line_naming_the_variable_as_typed(aws, tmp_path):
    _, before = guide(aws.endpoint_url)
    cases = [
        ("max_changes=abc", "argument 'cleanup_jobs_max_changes' is of type str and we were unable to convert to int"),
        # Not silently 1, as `| int` made it.
        ("max_changes=1.9", "argument 'cleanup_jobs_max_changes' is of type str and we were unable to convert to int"),
        ("state=deleted", "value of cleanup_jobs_state must be one of: absent, requeued, expiring, restored"),
        ("statuses=broken", "value of cleanup_jobs_statuses must be one or more of"),
        ("delete_audio=maybe", "argument 'cleanup_jobs_delete_audio' is of type str"),
    ]
    for pair, message in cases:
        legacy = "cleanup_jobs_categories=legacy_encryption"
        run, report = cleanup_with_strings(tmp_path, aws.endpoint_url, legacy, f"cleanup_jobs_{pair}")
        assert run.returncode != 0, pair
        # The line naming the variable is one line of the output; no module ran, so no report and no "got 0".
        assert any(message in line and "nothing was changed" in line for line in run.output.splitlines()), (
            pair,
            run.output[-3000:],
        )
        assert report is None and "got 0" not in run.output and "Traceback" not in run.output
        # Stopped before the role's own check, which prints its whole spec (244 lines) with the error.
        assert "job_cleanup_" not in run.output and len(run.output.splitlines()) < 30, run.output
    assert_nothing_changed(tmp_path, aws.endpoint_url, before)


def test_a_misspelt_variable_is_refused_with_the_close_match_and_never_widens_the_selection(aws, tmp_path):
    _, before = guide(aws.endpoint_url)
    # cleanup_jobs_user_id (no s) would be ignored: every failed job of every user would go.
    run, report = cleanup(tmp_path, aws.endpoint_url, cleanup_jobs_statuses=["failed"], cleanup_jobs_user_id=["user-1"])
    assert run.returncode != 0 and report is None, run.output[-3000:]
    line = (
        "cleanup_jobs_user_id is not a variable of this playbook (did you mean cleanup_jobs_user_ids?); "
        "nothing was changed."
    )
    assert any(line in text for text in run.output.splitlines()), run.output[-3000:]
    assert_nothing_changed(tmp_path, aws.endpoint_url, before)
    # A name close to none is refused too, pointing at the options.
    run, _ = cleanup(tmp_path, aws.endpoint_url, cleanup_jobs_statuses=["failed"], cleanup_jobs_everything=True)
    assert run.returncode != 0
    assert "cleanup_jobs_everything is not a variable of this playbook (the cleanup_jobs_* variables" in run.output
    assert_nothing_changed(tmp_path, aws.endpoint_url, before)


def test_a_single_status_given_as_a_string_is_a_one_element_list(aws, tmp_path):
    expected, before = guide(aws.endpoint_url)
    failed = {job_id for ids in expected["job_ids"]["by_category"].values() for job_id in ids}
    run, report = cleanup_with_strings(tmp_path, aws.endpoint_url, "cleanup_jobs_statuses=failed", check=True)
    assert run.returncode == 0, run.output[-3000:]
    assert "Traceback" not in run.output
    assert report["counts"]["changed"] == 49 and set(report["job_ids"]) == failed
    assert table_items(aws.endpoint_url) == before


def test_an_age_typed_without_its_unit_is_refused_not_read_as_seconds(aws, tmp_path):
    """`-e cleanup_jobs_older_than=7` meant 7 days; read as 7 seconds it would select every job of the category."""
    _, before = guide(aws.endpoint_url)
    run, report = cleanup_with_strings(
        tmp_path, aws.endpoint_url, '{"cleanup_jobs_categories": ["legacy_encryption"]}', "cleanup_jobs_older_than=7"
    )
    assert run.returncode != 0 and "Traceback" not in run.output
    assert report["msg"].startswith("older_than=7 has no unit: write it as 7d, 7h or 7m"), report["msg"]
    assert_nothing_changed(tmp_path, aws.endpoint_url, before)


def test_a_report_path_that_is_a_directory_is_refused_before_any_job_changes(aws, tmp_path):
    _, before = guide(aws.endpoint_url)
    directory = tmp_path / "reports"
    directory.mkdir()
    run, _ = cleanup(tmp_path, aws.endpoint_url, **PROCEDURE_1, cleanup_jobs_report_path=str(directory))
    assert run.returncode != 0 and "Traceback" not in run.output
    assert f"cleanup_jobs_report_path {directory} is a directory" in " ".join(run.output.split())
    assert_nothing_changed(tmp_path, aws.endpoint_url, before)


def test_empty_or_null_categories_and_an_empty_string_list_are_refused_naming_the_variable(aws, tmp_path):
    """Given but empty, categories would drop into the menu (which fails without a terminal, naming nothing);
    `-e cleanup_jobs_job_types=` would narrow to one empty string and select nothing without a word."""
    _, before = guide(aws.endpoint_url)
    for value in ([], "", None):
        run, _ = cleanup(tmp_path, aws.endpoint_url, cleanup_jobs_categories=value)
        assert run.returncode != 0 and "Traceback" not in run.output, value
        assert "cleanup_jobs_categories is empty" in " ".join(run.output.split()), (value, run.output[-2000:])
    run, report = cleanup_with_strings(
        tmp_path, aws.endpoint_url, '{"cleanup_jobs_categories": ["legacy_encryption"]}', "cleanup_jobs_job_types="
    )
    assert run.returncode != 0 and "job_types is an empty list: it would select nothing" in report["msg"]
    assert_nothing_changed(tmp_path, aws.endpoint_url, before)
