"""What a cleanup dry run prints: one screen of counts by default, the ids with -v (ansible-playbook against moto)."""

from __future__ import annotations

import json

from support.playbook import run_playbook
from test_cleanup_playbook import GUIDE_NOW, PROCEDURE_1, guide


def test_the_dry_run_diff_gives_counts_by_default_and_ids_with_v(aws, tmp_path):
    expected, _ = guide(aws.endpoint_url)
    legacy = expected["job_ids"]["by_category"]["legacy_encryption"]
    extra = {
        "cleanup_jobs_now": GUIDE_NOW,
        "cleanup_jobs_archive_path": str(tmp_path / "archive.jsonl"),
        "cleanup_jobs_report_path": str(tmp_path / "report.json"),
        **PROCEDURE_1,
    }
    env = {"AWS_ENDPOINT_URL": aws.endpoint_url}
    tmp_path.chmod(0o700)  # the report's directory, private: a dry run must not widen it
    quiet = run_playbook("cleanup_jobs.yml", extra_vars=extra, check=True, diff=True, env=env)
    assert quiet.returncode == 0, quiet.output[-3000:]
    assert tmp_path.stat().st_mode & 0o777 == 0o700
    assert f"job_ids: {len(legacy)} jobs, ids listed with -v" in quiet.stdout
    assert f"audio_objects: {len(legacy)} objects, keys listed with -v" in quiet.stdout
    assert not any(job_id in quiet.stdout for job_id in legacy)
    verbose = run_playbook("cleanup_jobs.yml", extra_vars=extra, check=True, diff=True, env=env, verbosity=1)
    assert verbose.returncode == 0, verbose.output[-3000:]
    assert all(job_id in verbose.stdout for job_id in legacy)
    # Measured on the guide's procedure 1: 206 lines, then 138 (ids and keys only with -v), now 54: the role
    # includes only the phases a run needs, so no skipped task is printed.
    assert len(quiet.output.splitlines()) <= 60, quiet.output
    assert "skipping:" not in quiet.output
    assert len(quiet.output.splitlines()) < len(verbose.output.splitlines()) // 2
    # The report has what the screen shows.
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["counts"]["changed"] == len(legacy) and report["deleted_objects_count"] == len(legacy)
    assert sorted(report["job_ids"]) == sorted(legacy)
