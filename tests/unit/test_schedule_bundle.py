"""The scheduled retention runs the job_cleanup role from a bundle (roles/audit_schedule): every directory the role
has must be in it, or a part added later (its filter plugins) is missing on the host and the run fails there."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_the_bundle_carries_every_directory_of_the_job_cleanup_role() -> None:
    bundled = yaml.safe_load((REPO_ROOT / "roles/audit_schedule/vars/main.yml").read_text())[
        "audit_schedule__job_cleanup_dirs"
    ]
    role = REPO_ROOT / "roles" / "job_cleanup"
    directories = {path.name for path in role.iterdir() if path.is_dir() and path.name != "molecule"}
    assert directories <= set(bundled), sorted(directories - set(bundled))
