"""Every role's Molecule scenarios, run offline on the local systemd image: one test per scenario.

`molecule test` runs each scenario's whole sequence (create, prepare, check, converge, idempotence with
changed=0, verify, destroy); a failing step fails the test with Molecule's output.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import local_aws
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
MOLECULE_TIMEOUT_S = 900


def molecule_scenarios() -> list[tuple[str, str]]:
    """(role, scenario) for every roles/*/molecule/*/molecule.yml."""
    return sorted(
        (config.parents[2].name, config.parent.name) for config in REPO_ROOT.glob("roles/*/molecule/*/molecule.yml")
    )


def molecule_env(host_image: str, owner: str, state_dir: Path) -> dict[str, str]:
    """What a scenario needs: the image, podman settings, the venv's tools and the project's Ansible paths."""
    return {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "CONTAINERS_CONF": str(REPO_ROOT / "tests" / "hosts" / "containers.conf"),
        "PANZOTO_HOST_IMAGE": host_image,
        # Unique container names, so concurrent runs never meet "name already in use", and the
        # owner label that lets a later run remove what a killed run left behind.
        "PANZOTO_TEST_RUN_ID": uuid.uuid4().hex[:8],
        "PANZOTO_TEST_OWNER": owner,
        "ANSIBLE_ROLES_PATH": str(REPO_ROOT / "roles"),
        # Molecule keeps a scenario's state under ~/.ansible/tmp by default, shared by concurrent runs.
        "MOLECULE_EPHEMERAL_DIRECTORY": str(state_dir),
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_NOCOLOR": "1",
        "NO_COLOR": "1",
        "PY_COLORS": "0",
    }


@pytest.mark.hosts
@pytest.mark.parametrize(("role", "scenario"), molecule_scenarios(), ids=lambda value: value)
def test_molecule_scenario_passes(
    role: str, scenario: str, host_image: str, test_run_owner: str, tmp_path: Path
) -> None:
    state_dir = tmp_path / "molecule"
    try:
        completed = subprocess.run(
            [str(VENV_BIN / "molecule"), "test", "--scenario-name", scenario],
            cwd=REPO_ROOT / "roles" / role,
            env=molecule_env(host_image, test_run_owner, state_dir),
            capture_output=True,
            text=True,
            timeout=MOLECULE_TIMEOUT_S,
            check=False,
        )
    finally:
        # A scenario that failed before its cleanup step leaves its local AWS endpoint running.
        local_aws.main(["stop", "--state-dir", str(state_dir / "local-aws")])
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, f"molecule test -s {scenario} in roles/{role} failed:\n{output[-12000:]}"
    assert "idempotence: Executed: Successful" in output, output[-4000:]
