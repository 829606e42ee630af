"""A long cleanup shows its progress: the role runs the real run in the background and prints a line per poll
from the module's progress file (progress_path), and the run's result is the one a foreground run gives."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import seed_jobs
from cleanup_module import run_cleanup_module
from fault_proxy import FaultProxy
from test_cleanup_playbook import AUDIO_KEY, BUCKET, TABLE, cleanup, client, job, object_keys, table_items

JOBS = 240
PROCEDURE_1 = {"cleanup_jobs_categories": ["legacy_encryption"], "cleanup_jobs_delete_audio": True}
PROGRESS_LINE = re.compile(r"msg: '?deleted ([\d,]+) of ([\d,]+) jobs")
# What Ansible adds to a background run's result; none of it may reach the report.
ASYNC_KEYS = {"ansible_job_id", "finished", "started", "results_file", "stdout", "stderr", "erased"}


class SlowWrites(FaultProxy):
    """The local endpoint, with each DeleteItem taking a while, as a big table's writes do in total."""

    def admit(self, operation: str, request_bytes: int) -> int:
        if operation == "DeleteItem":
            time.sleep(0.02)
        return super().admit(operation, request_bytes)


def changed_tasks(stdout: str) -> list[str]:
    return [block.split("]")[0] for block in stdout.split("TASK [")[1:] if "\nchanged: " in block]


def seed(endpoint_url: str) -> list[dict]:
    seed_jobs.create_resources(endpoint_url)
    jobs = [
        job(f"job-{index:04d}", "failed", "2025-10-09T10:00:00Z", user_id=f"user-{index % 5}",
            error_message="Automatic decryption not yet implemented")
        for index in range(JOBS)
    ]  # fmt: skip
    seed_jobs.write_items(client(endpoint_url, "dynamodb"), TABLE, jobs)
    seed_jobs.put_objects(client(endpoint_url, "s3"), BUCKET, ((AUDIO_KEY.format(**j), b"x") for j in jobs))
    return jobs


def test_a_background_cleanup_prints_progress_and_ends_as_the_foreground_run_does(aws, tmp_path):
    seed(aws.endpoint_url)
    progress_file = tmp_path / "report.progress.json"
    mode = tmp_path.stat().st_mode & 0o777  # the role enforces 0755 on the report directory: both runs start alike
    with SlowWrites(aws.endpoint_url) as proxy:
        run, report = cleanup(tmp_path, proxy.url, cleanup_jobs_poll_seconds=1, cleanup_jobs_parallel=1, **PROCEDURE_1)
    assert run.returncode == 0, run.output
    lines = PROGRESS_LINE.findall(run.stdout)
    assert lines, run.stdout
    assert all(total == f"{JOBS:,}" for _, total in lines)
    assert int(lines[-1][0].replace(",", "")) <= JOBS

    final = json.loads(progress_file.read_text())
    assert final["phase"] == "done" and final["finished"] is True
    assert final["counts"] == report["counts"] and final["changed"] == report["counts"]["changed"] == JOBS
    assert final["skipped"] == report["counts"]["skipped"] == 0
    assert final["done"] == final["total"] == report["selected"] == JOBS
    assert final["audio"] == {"deleted": report["audio"]["deleted"], "failed": 0}
    assert final["run_id"] == report["archive"]["run_id"] and final["state"] == "absent"
    assert final["started"] <= final["updated"]
    assert table_items(aws.endpoint_url) == {} and object_keys(aws.endpoint_url) == set()
    assert not ASYNC_KEYS & set(report)

    # The same cleanup in the foreground (poll_seconds 0) reports the same keys and outcomes, and no progress.
    seed(aws.endpoint_url)
    progress_file.unlink()
    foreground_dir = tmp_path / "foreground"
    foreground_dir.mkdir(mode=mode)
    quiet, same = cleanup(foreground_dir, aws.endpoint_url, cleanup_jobs_poll_seconds=0, **PROCEDURE_1)
    assert quiet.returncode == 0, quiet.output
    assert not PROGRESS_LINE.search(quiet.stdout)
    assert not (foreground_dir / "report.progress.json").exists()
    assert set(same) == set(report)
    # The recap counts the run once, as the foreground run does: starting it in the background changes nothing.
    assert quiet.changed() == run.changed(), [changed_tasks(run.stdout), changed_tasks(quiet.stdout)]
    for name in ("counts", "by_category", "job_ids", "deleted_objects", "deleted_objects_count", "changed", "failed"):
        assert same.get(name) == report.get(name), name


def test_a_dry_run_stays_in_the_foreground_and_writes_no_progress(aws, tmp_path):
    seed(aws.endpoint_url)
    before = table_items(aws.endpoint_url)
    run, report = cleanup(tmp_path, aws.endpoint_url, check=True, cleanup_jobs_poll_seconds=1, **PROCEDURE_1)
    assert run.returncode == 0, run.output
    assert report["counts"]["changed"] == JOBS and report["check_mode"] is True
    assert "Follow the background run" not in run.stdout
    assert not (tmp_path / "report.progress.json").exists()
    assert table_items(aws.endpoint_url) == before


def test_a_refused_background_run_fails_in_one_line_changing_nothing(aws, tmp_path):
    seed(aws.endpoint_url)
    before = table_items(aws.endpoint_url)
    run, report = cleanup(
        tmp_path, aws.endpoint_url, cleanup_jobs_poll_seconds=1, cleanup_jobs_max_changes=10, **PROCEDURE_1
    )
    assert run.returncode != 0
    refusal = f"The selection would change {JOBS} jobs, more than max_changes=10: nothing was changed"
    assert refusal in run.stdout
    assert table_items(aws.endpoint_url) == before
    # Reported as a foreground run's refusal is: the report says it, with no key of Ansible's async.
    assert report["failed"] is True and refusal in report["msg"] and report["selected"] == JOBS
    assert not ASYNC_KEYS & set(report)
    # The progress file ends as the run did.
    final = json.loads((tmp_path / "report.progress.json").read_text())
    assert final["phase"] == "failed" and final["finished"] is True and refusal in final["msg"]


def test_the_module_refuses_a_progress_path_it_cannot_write_before_anything_changes(aws, tmp_path):
    seed(aws.endpoint_url)
    before = table_items(aws.endpoint_url)
    missing = tmp_path / "no-such-dir" / "progress.json"
    result = run_cleanup_module(
        aws.endpoint_url, tmp_path, categories=["legacy_encryption"], progress_path=str(missing)
    )
    assert result.get("failed") and result["msg"] == (
        f"progress_path {missing}: its directory {missing.parent} does not exist; nothing was changed."
    )
    assert table_items(aws.endpoint_url) == before
    assert not Path(tmp_path / "archive.jsonl").exists()


def test_the_module_writes_no_progress_in_check_mode(aws, tmp_path):
    seed(aws.endpoint_url)
    progress = tmp_path / "progress.json"
    result = run_cleanup_module(
        aws.endpoint_url, tmp_path, check_mode=True, categories=["legacy_encryption"], progress_path=str(progress)
    )
    assert result["counts"]["changed"] == JOBS
    assert not progress.exists()


def test_the_progress_file_ends_as_the_result_says_for_a_delete_and_its_restore(aws, tmp_path):
    jobs = seed(aws.endpoint_url)
    progress = tmp_path / "progress.json"
    deleted = run_cleanup_module(
        aws.endpoint_url, tmp_path, categories=["legacy_encryption"], progress_path=str(progress)
    )
    assert deleted["counts"]["changed"] == JOBS, deleted.get("msg")
    final = json.loads(progress.read_text())
    assert (final["phase"], final["state"], final["counts"]) == ("done", "absent", deleted["counts"])
    assert final["done"] == final["total"] == deleted["selected"]

    restored = run_cleanup_module(aws.endpoint_url, tmp_path, state="restored", progress_path=str(progress))
    assert restored["counts"]["changed"] == JOBS, restored.get("msg")
    final = json.loads(progress.read_text())
    assert (final["phase"], final["state"], final["counts"]) == ("done", "restored", restored["counts"])
    assert final["done"] == final["total"] == restored["selected"] == len(jobs)
    assert final["run_id"] == restored["archive"]["run_id"] != deleted["archive"]["run_id"]
