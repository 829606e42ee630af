"""The target-host harness itself: booted systemd hosts, unique names and ports, stale-container cleanup."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest


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
