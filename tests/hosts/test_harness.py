"""The target-host harness itself: booted systemd hosts, unique names and ports, stale-container cleanup, and
how the two CI workers share the slow host tests."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from scheduling import FileScheduling

REPO_ROOT = Path(__file__).resolve().parents[2]
TEST_SCENARIO = "test_molecule_scenario_passes_on_debian_12_and_13"


def podman(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=120, check=False)


def container_exists(name: str) -> bool:
    return podman("container", "exists", name).returncode == 0


@pytest.mark.hosts
def test_target_hosts_are_booted_systemd_hosts_with_their_own_names_and_ports(target_hosts, write_inventory, tmp_path):
    first, second = target_hosts(count=2, prefix="harness")
    assert first.name != second.name
    assert first.app_port != second.app_port
    for host in (first, second):
        assert host.testinfra.run("systemctl is-system-running").stdout.strip() in ("running", "degraded")
        assert host.testinfra.process.get(pid=1).comm == "systemd"
        assert host.testinfra.check_output("hostname") == host.name
        assert host.testinfra.file("/usr/bin/python3").exists
    assert "\nanswer\n" in first.exec("sh", "-c", "echo; echo answer").stdout

    inventory = write_inventory(tmp_path / "hosts.yml", [first, second], host_vars={second.name: {"extra": 1}})
    listed = subprocess.run(
        [".venv/bin/ansible-inventory", "-i", str(inventory), "--list"], capture_output=True, text=True, check=True
    ).stdout
    assert f'"panzoto_app_port": {second.app_port}' in listed
    assert '"ansible_connection": "containers.podman.podman"' in listed
    assert '"extra": 1' in listed


@pytest.mark.hosts
def test_sweep_removes_containers_of_dead_runs_and_keeps_those_of_live_runs(host_image, sweep_stale_test_containers):
    suffix = uuid.uuid4().hex[:8]
    dead, live = f"panzoto-ops-harness-dead-{suffix}", f"panzoto-ops-harness-live-{suffix}"
    # No process has PID 0: its owner is certainly gone. PID 1 with its real start time stands for a run still going.
    init_start = Path("/proc/1/stat").read_text().rsplit(")", 1)[1].split()[19]
    owners = {dead: "0:0", live: f"1:{init_start}"}
    try:
        for name, owner in owners.items():
            created = podman(
                "create", "--name", name, "--label", "panzoto-ops-test=1", "--label", f"panzoto-ops-test.owner={owner}",
                host_image,
            )  # fmt: skip
            assert created.returncode == 0, created.stderr
        removed = sweep_stale_test_containers()
        assert dead in removed
        assert live not in removed
        assert not container_exists(dead)
        assert container_exists(live)
    finally:
        podman("rm", "--force", "--ignore", "--time", "0", dead, live)


def run_pytest(*args: str) -> str:
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=REPO_ROOT,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return completed.stdout


def test_every_molecule_scenario_is_a_scheduling_unit_of_its_own_and_other_files_stay_whole() -> None:
    """Two workers can run two Molecule scenarios side by side; a file with module-scoped hosts stays on one."""
    scheduler = object.__new__(FileScheduling)  # the split reads nothing but the node id
    scenarios = [f"tests/hosts/test_molecule.py::{TEST_SCENARIO}[{role}-default]" for role in ("ffmpeg", "panzoto_app")]
    assert [scheduler._split_scope(nodeid) for nodeid in scenarios] == scenarios
    deploy = ["tests/hosts/test_deploy.py::test_first", "tests/hosts/test_deploy.py::test_second[a]"]
    assert {scheduler._split_scope(nodeid) for nodeid in deploy} == {"tests/hosts/test_deploy.py"}


def test_target_host_files_are_handed_out_first_whatever_their_test_count() -> None:
    """xdist's loadfile would hand out the file with the most tests first; the host file goes first instead."""
    selection = ["tests/unit/test_redact.py", "tests/unit/test_tally.py", "tests/hosts/test_molecule.py"]
    output = run_pytest("-n", "2", "--dist", "loadfile", "-v", "-k", f"not {TEST_SCENARIO}", *selection)
    ran = re.findall(r"^\[(gw\d)\] \[ *\d+%\] PASSED (\S+)", output, flags=re.MULTILINE)
    assert len(ran) == int(re.search(r"2 workers \[(\d+) items\]", output)[1]), output
    (host_worker,) = {worker for worker, nodeid in ran if nodeid.startswith("tests/hosts/")}
    first_on_that_worker = next(nodeid for worker, nodeid in ran if worker == host_worker)
    assert first_on_that_worker.startswith("tests/hosts/test_molecule.py::"), output
