"""What a cleanup dry run prints: counts at default verbosity, the ids with -v (ansible-playbook against moto)."""

from __future__ import annotations

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
    quiet = run_playbook("cleanup_jobs.yml", extra_vars=extra, check=True, diff=True, env=env)
    assert quiet.returncode == 0, quiet.output[-3000:]
    assert f"job_ids: {len(legacy)} jobs, ids listed with -v" in quiet.stdout
    assert f"audio_objects: {len(legacy)} objects, keys listed with -v" in quiet.stdout
    assert not any(job_id in quiet.stdout for job_id in legacy)
    verbose = run_playbook("cleanup_jobs.yml", extra_vars=extra, check=True, diff=True, env=env, verbosity=1)
    assert verbose.returncode == 0, verbose.output[-3000:]
    assert all(job_id in verbose.stdout for job_id in legacy)
    # Measured on the guide's procedure 1: 206 lines before, now 138 (the diff was 73 lines of ids and keys).
    assert len(quiet.output.splitlines()) < len(verbose.output.splitlines()) // 2
