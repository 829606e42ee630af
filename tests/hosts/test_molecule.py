"""Every role's Molecule scenario, run offline on the local systemd images: one test per scenario.

`molecule test` runs the sequence shared by every scenario (.config/molecule/config.yml: syntax, create,
prepare, check, converge, idempotence with changed=0, verify, cleanup, destroy) on a Debian 12 and a
Debian 13 host side by side; a failing step fails the test with Molecule's output.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import local_aws
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
SHARED_CONFIG = REPO_ROOT / ".config" / "molecule" / "config.yml"
# A guard against a hung step, not a budget: a loaded machine can take several times a quiet one.
MOLECULE_TIMEOUT_S = 2700


def molecule_scenarios() -> list[tuple[str, str]]:
    """(role, scenario) for every roles/*/molecule/*/molecule.yml."""
    return sorted(
        (config.parents[2].name, config.parent.name) for config in REPO_ROOT.glob("roles/*/molecule/*/molecule.yml")
    )


def molecule_env(role: str, image_for: Callable[[str], str], owner: str, state_dir: Path) -> dict[str, str]:
    """What a scenario needs: both images, podman settings, the venv's tools and the project's Ansible paths."""
    return {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "CONTAINERS_CONF": str(REPO_ROOT / "tests" / "hosts" / "containers.conf"),
        "PANZOTO_HOST_IMAGE": image_for("bookworm"),
        "PANZOTO_HOST_IMAGE_TRIXIE": image_for("trixie"),
        # Unique container names, so concurrent runs never meet "name already in use", and the
        # owner label that lets a later run remove what a killed run left behind.
        "PANZOTO_TEST_RUN_ID": f"{role.replace('_', '-')}-{uuid.uuid4().hex[:8]}",
        "PANZOTO_TEST_OWNER": owner,
        "ANSIBLE_ROLES_PATH": str(REPO_ROOT / "roles"),
        # Molecule keeps a scenario's state under ~/.ansible/tmp by default, shared by concurrent runs.
        "MOLECULE_EPHEMERAL_DIRECTORY": str(state_dir),
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_NOCOLOR": "1",
        "NO_COLOR": "1",
        "PY_COLORS": "0",
    }


def test_every_scenario_keeps_only_what_differs_from_the_shared_configuration() -> None:
    """The hosts, steps and sequence live once, in the shared configuration, not in a scenario."""
    for role, scenario in molecule_scenarios():
        scenario_dir = REPO_ROOT / "roles" / role / "molecule" / scenario
        own = (scenario_dir / "molecule.yml").read_text()
        for shared_key in ("platforms:", "driver:", "test_sequence:", "verifier:"):
            assert shared_key not in own, f"{scenario_dir}/molecule.yml repeats {shared_key}"
        for shared_step in ("create.yml", "destroy.yml", "cleanup.yml"):
            assert not (scenario_dir / shared_step).exists(), f"{scenario_dir} has its own {shared_step}"


def failure_summary(output: str) -> str:
    """The verifier's failed tests and their first assertion lines, then the end of the output: a failed verify
    is followed by the cleanup and destroy steps, which push its assertion out of the output's tail."""
    failed = [line for line in output.splitlines() if line.startswith(("FAILED ", "ERROR ", "fatal: "))]
    first_error = output.find("\nE   ")
    assertion = output[max(0, first_error - 1500) : first_error + 3000] if first_error >= 0 else ""
    return "\n".join([*failed, assertion, "[...]", output[-6000:]])


@pytest.mark.hosts
@pytest.mark.parametrize(("role", "scenario"), molecule_scenarios(), ids=lambda value: value)
def test_molecule_scenario_passes_on_debian_12_and_13(
    role: str, scenario: str, host_image_for: Callable[[str], str], test_run_owner: str, tmp_path: Path
) -> None:
    state_dir = tmp_path / "molecule"
    try:
        completed = subprocess.run(
            [str(VENV_BIN / "molecule"), "--base-config", str(SHARED_CONFIG), "test", "--scenario-name", scenario],
            cwd=REPO_ROOT / "roles" / role,
            env=molecule_env(role, host_image_for, test_run_owner, state_dir),
            # One stream, in order: Molecule's step lines (stderr) frame the playbooks' recaps (stdout).
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=MOLECULE_TIMEOUT_S,
            check=False,
        )
    finally:
        # A scenario that failed before its cleanup step leaves its local AWS endpoint running.
        local_aws.main(["stop", "--state-dir", str(state_dir / "local-aws")])
    output = completed.stdout
    assert completed.returncode == 0, f"molecule test -s {scenario} in roles/{role} failed:\n{failure_summary(output)}"
    for step in ("syntax", "create", "check", "converge", "idempotence", "verify", "destroy"):
        assert f"default > {step}: Executed: Successful" in output, f"no successful {step} step:\n{output[-4000:]}"
    # The idempotence run converged both hosts again, changing nothing on either.
    idempotence = output.split("[default > idempotence] Executing", 1)[1].split("[default > idempotence] Executed")[0]
    for suite in ("bookworm", "trixie"):
        recap = rf"-{suite}\s+: ok=\d+\s+changed=0\s+unreachable=0\s+failed=0"
        assert re.search(recap, idempotence), idempotence[-4000:]
