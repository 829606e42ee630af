"""Where the cleanup's files go when given relative paths, and what a restore says it cannot bring back.

Through ansible-playbook against moto, run from a directory other than the repository, as a user does.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from support.playbook import REPO_ROOT, VENV_BIN
from test_cleanup_playbook import GUIDE_NOW, PROCEDURE_1, cleanup, guide, table_items


def playbook_from(cwd: Path, endpoint_url: str, extra: dict, check: bool = False) -> subprocess.CompletedProcess:
    command = [
        str(VENV_BIN / "ansible-playbook"),
        str(REPO_ROOT / "playbooks" / "cleanup_jobs.yml"),
        "-e",
        json.dumps(extra),
    ]
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "AWS_ENDPOINT_URL": endpoint_url,
        "PWD": str(cwd),  # what the user's shell sets after `cd`
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    return subprocess.run(
        command + (["--check"] if check else []),
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_relative_paths_on_the_command_line_resolve_against_the_directory_run_from(aws, tmp_path):
    expected, _ = guide(aws.endpoint_url)
    legacy = set(expected["job_ids"]["by_category"]["legacy_encryption"])
    work = tmp_path / "work"
    work.mkdir()
    relative = {
        "cleanup_jobs_now": GUIDE_NOW,
        "cleanup_jobs_archive_path": "archives/jobs.jsonl",
        "cleanup_jobs_report_path": "reports/cleanup.json",
        **PROCEDURE_1,
    }
    dry = playbook_from(work, aws.endpoint_url, relative, check=True)
    assert dry.returncode == 0, dry.stdout[-3000:] + dry.stderr[-2000:]
    done = playbook_from(work, aws.endpoint_url, relative)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    report = json.loads((work / "reports" / "cleanup.json").read_text())
    assert set(report["job_ids"]) == legacy
    archived = {json.loads(line).get("job_id") for line in (work / "archives" / "jobs.jsonl").read_text().splitlines()}
    assert legacy <= archived
    assert (
        not (REPO_ROOT / "archives" / "jobs.jsonl").exists() and not (REPO_ROOT / "reports" / "cleanup.json").exists()
    )

    # The restore reads the same relative archive, and says the audio deleted without a copy cannot come back.
    restore = playbook_from(work, aws.endpoint_url, {**relative, "cleanup_jobs_state": "restored"} | {
        "cleanup_jobs_categories": [], "cleanup_jobs_delete_audio": False})  # fmt: skip
    assert restore.returncode == 0, restore.stdout[-3000:] + restore.stderr[-2000:]
    assert legacy <= set(table_items(aws.endpoint_url))
    restored = json.loads((work / "reports" / "cleanup.json").read_text())
    assert restored["audio_not_restorable"]["count"] == len(legacy)
    text = " ".join(restore.stdout.split())
    assert f"S3 audio of {len(legacy)} restored jobs was deleted without an archive copy" in text
    assert "it cannot come back" in text

    # Each run's report is also kept under its run id (UTC time first), dry runs marked, beside the latest.
    history = sorted(path.name for path in (work / "reports").glob("cleanup.2*.json"))
    assert len(history) == 3 and sum(name.endswith(".dry-run.json") for name in history) == 1, history
    latest = json.loads((work / "reports" / "cleanup.json").read_text())
    assert (work / "reports" / f"cleanup.{latest['archive']['run_id']}.json").read_text() == (
        work / "reports" / "cleanup.json"
    ).read_text()


def test_audio_copied_before_deletion_is_not_reported_lost(aws, tmp_path):
    guide(aws.endpoint_url)
    with_copy = {**PROCEDURE_1, "cleanup_jobs_archive_audio_prefix": "archive/audio/"}
    run, _ = cleanup(tmp_path, aws.endpoint_url, **with_copy)
    assert run.returncode == 0, run.output[-3000:]
    run, report = cleanup(tmp_path, aws.endpoint_url, cleanup_jobs_state="restored")
    assert run.returncode == 0, run.output[-3000:]
    assert report["audio_not_restorable"] == {"count": 0, "keys": []} and report["audio"]["restored"] > 0
    assert "cannot come back" not in run.stdout
