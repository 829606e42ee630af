"""Acting on a diagnosis: playbooks/cleanup_jobs.yml selects by a diagnosis report (schema_version 1).

The report is written here in the agreed format with real job ids of the guide's snapshot seeded in moto;
playbooks/diagnose_jobs.yml writes the same format from the servers' logs.
"""

from __future__ import annotations

import json
from pathlib import Path

from test_cleanup_playbook import TABLE, cleanup, client, guide, table_items

TIMEOUT = "transcription_timeout"
CORRUPT = "audio_format_unreadable"


def write_report(path: Path, jobs: list[dict], **overrides) -> Path:
    causes: dict[str, dict] = {}
    for entry in jobs:
        cause = causes.setdefault(entry["cause"], {"count": 0, "hosts": [], "action": entry["action"]})
        cause["count"] += 1
        cause["hosts"] = sorted({*cause["hosts"], entry["host"]})
    report = {
        "schema_version": 1,
        "generated_at": "2025-10-19T17:55:00Z",
        "table": TABLE,
        "jobs": jobs,
        "causes": causes,
        **overrides,
    }
    path.write_text(json.dumps(report))
    return path


def diagnosed(items: dict[str, dict], job_ids: list[str], cause: str, host: str, action: str) -> list[dict]:
    return [
        {
            "job_id": job_id,
            "user_id": items[job_id]["user_id"]["S"],
            "status": "failed",
            "category": "max_retries",
            "cause": cause,
            "host": host,
            "action": action,
            "evidence": [f"ERROR job {job_id}: ..."],
        }
        for job_id in job_ids
    ]


def guide_with_report(aws, tmp_path: Path) -> tuple[dict, list[str], list[str], Path]:
    expected, before = guide(aws.endpoint_url)
    max_retries = sorted(expected["job_ids"]["by_category"]["max_retries"])
    assert len(max_retries) >= 4
    timeouts, corrupt = max_retries[:3], max_retries[3:]
    jobs = diagnosed(before, timeouts, TIMEOUT, "api-1", "requeue") + diagnosed(
        before, corrupt, CORRUPT, "api-2", "delete"
    )
    return before, timeouts, corrupt, write_report(tmp_path / "diagnosis.json", jobs)


def test_requeue_from_a_diagnosis_report_dry_run_then_real_archived_and_a_rerun_changes_nothing(aws, tmp_path):
    before, timeouts, corrupt, report_path = guide_with_report(aws, tmp_path)
    requeue = {
        "cleanup_jobs_state": "requeued",
        "cleanup_jobs_reason": "transcription API fixed",
        "cleanup_jobs_requeue_fresh": True,  # the guide's jobs are days old: the backend would expire them at once
        "cleanup_jobs_diagnosis_report": str(report_path),
        "cleanup_jobs_diagnosis_causes": [TIMEOUT],
    }

    dry, predicted = cleanup(tmp_path, aws.endpoint_url, check=True, diff=True, **requeue)
    assert dry.returncode == 0, dry.output[-3000:]
    assert predicted["check_mode"] is True and sorted(predicted["job_ids"]) == timeouts
    assert predicted["counts"]["changed"] == 3 and set(predicted["by_category"]) == {"max_retries"}
    assert "3 jobs with causes transcription_timeout" in " ".join(dry.stdout.split())
    assert "3 jobs would be requeued" in dry.stdout
    assert table_items(aws.endpoint_url) == before and not (tmp_path / "archive.jsonl").exists()

    # Meanwhile the app finished one of them: the report still names it, the cleanup must not requeue it.
    finished = timeouts[0]
    client(aws.endpoint_url, "dynamodb").update_item(
        TableName=TABLE, Key={"job_id": {"S": finished}}, UpdateExpression="SET #s = :c REMOVE error_message",
        ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":c": {"S": "completed"}},
    )  # fmt: skip
    changed_by_app = table_items(aws.endpoint_url)[finished]

    run, done = cleanup(tmp_path, aws.endpoint_url, **requeue)
    assert run.returncode == 0, run.output[-3000:]
    assert sorted(done["job_ids"]) == timeouts[1:] and done["counts"]["changed"] == 2
    assert (
        f"1 of the 3 diagnosed jobs were not changed (no longer as diagnosed, already done, or skipped): {finished}"
        in (" ".join(run.stdout.split()))
    )
    after = table_items(aws.endpoint_url)
    for job_id in timeouts[1:]:
        assert after[job_id]["status"] == {"S": "pending"} and after[job_id]["retry_count"] == {"N": "0"}
        assert after[job_id]["requeue_reason"] == {"S": "transcription API fixed"}
    assert after[finished] == changed_by_app, "a job no longer failed was changed"
    untouched = set(before) - set(timeouts)
    assert {job_id: after[job_id] for job_id in untouched} == {job_id: before[job_id] for job_id in untouched}
    assert set(corrupt) <= untouched

    archived = [json.loads(line) for line in (tmp_path / "archive.jsonl").read_text().splitlines()]
    assert {r["job_id"] for r in archived if r["record"] == "job"} == set(timeouts[1:])
    assert all(r["item"]["status"] == {"S": "failed"} for r in archived if r["record"] == "job")

    again, rerun = cleanup(tmp_path, aws.endpoint_url, **requeue)
    assert again.returncode == 0, again.output[-3000:]
    assert again.changed() == 0 and rerun["counts"]["changed"] == 0
    assert table_items(aws.endpoint_url) == after


def test_delete_by_cause_takes_only_that_causes_jobs_and_job_ids_narrow_it_further(aws, tmp_path):
    before, timeouts, corrupt, report_path = guide_with_report(aws, tmp_path)
    selection = {"cleanup_jobs_diagnosis_report": str(report_path), "cleanup_jobs_diagnosis_causes": [CORRUPT]}
    run, report = cleanup(tmp_path, aws.endpoint_url, check=True, **selection)
    assert run.returncode == 0, run.output[-3000:]
    assert sorted(report["job_ids"]) == corrupt

    run, report = cleanup(tmp_path, aws.endpoint_url, **selection, cleanup_jobs_job_ids=[corrupt[0], timeouts[0]])
    assert run.returncode == 0, run.output[-3000:]
    assert report["job_ids"] == [corrupt[0]], "job ids narrow the report's jobs, never add to them"
    assert set(table_items(aws.endpoint_url)) == set(before) - {corrupt[0]}


def test_a_report_that_cannot_be_acted_on_gets_one_line_and_nothing_changes(aws, tmp_path):
    before, _, _, report_path = guide_with_report(aws, tmp_path)
    good = json.loads(report_path.read_text())
    other_version = write_report(tmp_path / "v2.json", good["jobs"], schema_version=2)
    other_table = write_report(tmp_path / "table.json", good["jobs"], table="panzoto-processing-jobs-dev")
    no_timeouts = write_report(
        tmp_path / "none.json", [j for j in good["jobs"] if j["cause"] != TIMEOUT],
        causes={**good["causes"], TIMEOUT: {"count": 0, "hosts": [], "action": "requeue"}},
    )  # fmt: skip
    cases = [
        (other_version, [TIMEOUT], "schema_version 2 is not 1, the version this playbook reads"),
        (other_table, [TIMEOUT], "it is a report of table panzoto-processing-jobs-dev, not panzoto-processing-jobs"),
        (report_path, ["wrong_key", TIMEOUT], f"unknown causes wrong_key: the report has {CORRUPT}, {TIMEOUT}"),
        (no_timeouts, [TIMEOUT], f"no job has the causes {TIMEOUT}: nothing to select"),
        (tmp_path / "missing.json", [TIMEOUT], "missing.json"),
    ]  # fmt: skip
    for path, causes, message in cases:
        run, report = cleanup(
            tmp_path, aws.endpoint_url, cleanup_jobs_state="requeued",
            cleanup_jobs_diagnosis_report=str(path), cleanup_jobs_diagnosis_causes=causes,
        )  # fmt: skip
        assert run.returncode != 0, path
        assert report is None and "Traceback" not in run.output
        assert message in " ".join(run.stdout.split()), (path, run.stdout[-2000:])

    run, report = cleanup(tmp_path, aws.endpoint_url, cleanup_jobs_diagnosis_causes=[TIMEOUT])
    assert run.returncode != 0 and report is None
    assert "cleanup_jobs_diagnosis_causes selects from a diagnosis report" in " ".join(run.stdout.split())
    assert table_items(aws.endpoint_url) == before and not (tmp_path / "archive.jsonl").exists()
