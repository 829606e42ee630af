"""Target hosts: real Debian containers with systemd as PID 1 under rootful podman (docs/DESIGN.md §5).

Helpers shared by the host fixtures (tests/hosts/conftest.py), by test modules that keep hosts for
longer than one test, and by Molecule's runner. Containers carry labels naming the pytest process
that owns them, so a later run removes the ones a killed run left behind, and never those of a run
that is still going.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import testinfra
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
HOSTS_DIR = REPO_ROOT / "tests" / "hosts"
CONTAINERS_CONF = HOSTS_DIR / "containers.conf"
BUILD_SCRIPT = REPO_ROOT / "tools" / "build-host-image.sh"

TEST_LABEL = "panzoto-ops-test"
OWNER_LABEL = "panzoto-ops-test.owner"
OWNER_FORMAT = re.compile(r"\d+:\d+")
# The Debian releases the roles support: 12 (bookworm) and 13 (trixie).
SUITES = ("bookworm", "trixie")
DEFAULT_SUITE = "bookworm"
BOOT_TIMEOUT_S = 90
PODMAN_TIMEOUT_S = 120
# The session's package caches, set in the environment by tests/hosts/conftest.py and mounted into every host
# started here and by Molecule's create step: an apt.conf.d snippet pointing apt at the caching proxy
# (tests/harness/apt_cache.py), and a directory shared as root's pip cache and Poetry's artifact cache (both
# write a download under a temporary name and rename it into place, so hosts can share them).
APT_CACHE_CONF_ENV = "PANZOTO_APT_CACHE_CONF"
APT_CACHE_CONF_ON_HOST = "/etc/apt/apt.conf.d/01panzoto-ops-test-cache"
PYTHON_CACHE_ENV = "PANZOTO_PYTHON_CACHE_DIR"
# Ansible's connection to the hosts, a plugin of the harness: tests/hosts/conftest.py puts its directory in the
# environment of every run (CONNECTION_PLUGINS_ENV).
CONNECTION = "podman_pipelined"
CONNECTION_PLUGINS_ENV = "ANSIBLE_CONNECTION_PLUGINS"
CONNECTION_PLUGINS_DIR = REPO_ROOT / "tests" / "harness" / "connection_plugins"
PYTHON_CACHES_ON_HOST = {"pip": "/root/.cache/pip", "pypoetry-artifacts": "/root/.cache/pypoetry/artifacts"}


def process_identity(pid: int) -> str | None:
    """'PID:STARTTIME' of a live process, None if it is gone; the start time tells a reused PID apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (starttime) counted after the ')' that ends the command name, which may contain spaces.
    fields_after_comm = stat.rsplit(")", 1)[1].split()
    return f"{pid}:{fields_after_comm[19]}"


def owner_label_value() -> str:
    identity = process_identity(os.getpid())
    assert identity is not None
    return identity


def owner_is_alive(owner: str) -> bool:
    pid, _, _ = owner.partition(":")
    return pid.isdigit() and process_identity(int(pid)) == owner


def ownership_labels() -> list[str]:
    """podman arguments that mark a container as created by this test run."""
    return ["--label", f"{TEST_LABEL}=1", "--label", f"{OWNER_LABEL}={owner_label_value()}"]


def podman(*args: str, check: bool = True, timeout: float = PODMAN_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and completed.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)} failed ({completed.returncode}): {completed.stderr.strip()}")
    return completed


def stale_test_containers() -> list[str]:
    """Labelled test containers whose owning pytest process is dead.

    Containers without a PID owner (Molecule run by hand: owner "manual") are left to `molecule destroy`.
    """
    listing = podman(
        "ps",
        "-a",
        "--filter",
        f"label={TEST_LABEL}=1",
        "--format",
        f'{{{{.Names}}}} {{{{index .Labels "{OWNER_LABEL}"}}}}',
    )
    stale = []
    for line in listing.stdout.splitlines():
        name, _, owner = line.partition(" ")
        if OWNER_FORMAT.fullmatch(owner.strip()) and not owner_is_alive(owner.strip()):
            stale.append(name)
    return stale


def remove_containers(names: list[str]) -> None:
    # Without --ignore, podman 4.3 stops at the first name already gone and leaves the rest running.
    if names:
        podman("rm", "--force", "--ignore", "--time", "0", *names, check=False)


def free_tcp_port(taken: set[int]) -> int:
    """A TCP port nothing listens on now, and not yet handed to another host of this run."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("0.0.0.0", 0))
            port = probe.getsockname()[1]
        if port not in taken:
            taken.add(port)
            return port


@dataclass
class TargetHost:
    name: str
    app_port: int
    testinfra: Any = field(repr=False)

    def exec(self, *command: str, check: bool = True, timeout: float = PODMAN_TIMEOUT_S) -> subprocess.CompletedProcess:
        """Run a command inside the host as root (test setup: break the host, read logs)."""
        return podman("exec", self.name, *command, check=check, timeout=timeout)


def build_host_image(suite: str = DEFAULT_SUITE) -> str:
    """The image reference of `suite`, built by tools/build-host-image.sh when missing (cached by recipe)."""
    if suite not in SUITES:
        raise ValueError(f"suite must be one of {', '.join(SUITES)}, got {suite!r}")
    completed = subprocess.run(
        [str(BUILD_SCRIPT), "--suite", suite], capture_output=True, text=True, timeout=900, check=False, cwd=REPO_ROOT
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{BUILD_SCRIPT.name} --suite {suite} failed:\n{completed.stderr}")
    return completed.stdout.strip().splitlines()[-1]


def boot_state(name: str) -> str:
    """What `systemctl is-system-running --wait` settles on, bounded; '' while systemd's bus is not up yet."""
    completed = podman(
        "exec", name, "timeout", str(BOOT_TIMEOUT_S), "systemctl", "is-system-running", "--wait", check=False
    )
    return completed.stdout.strip()


def wait_until_booted(name: str) -> None:
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    state = boot_state(name)
    # Right after `podman run`, PID 1 may not answer yet: ask again briefly until it does.
    while state in ("", "offline", "initializing", "starting") and time.monotonic() < deadline:
        time.sleep(0.5)
        state = boot_state(name)
    if state not in ("running", "degraded"):
        failed = podman("exec", name, "systemctl", "--failed", "--no-pager", check=False).stdout
        raise RuntimeError(f"host {name} did not boot (state {state!r}):\n{failed}")


def package_cache_volumes() -> list[str]:
    """podman arguments mounting the session's package caches into a host (none outside a test session)."""
    volumes = []
    if conf := os.environ.get(APT_CACHE_CONF_ENV):
        volumes += ["--volume", f"{conf}:{APT_CACHE_CONF_ON_HOST}:ro"]
    if python_caches := os.environ.get(PYTHON_CACHE_ENV):
        for name, on_host in PYTHON_CACHES_ON_HOST.items():
            volumes += ["--volume", f"{python_caches}/{name}:{on_host}"]
    return volumes


def start_target_host(image: str, name: str, app_port: int) -> TargetHost:
    podman(
        "run", "--detach", "--name", name, "--hostname", name, "--systemd=always", "--network", "host",
        *ownership_labels(), "--label", f"{TEST_LABEL}.app-port={app_port}", *package_cache_volumes(),
        image, "/sbin/init",
    )  # fmt: skip
    wait_until_booted(name)
    return TargetHost(name=name, app_port=app_port, testinfra=testinfra.get_host(f"podman://{name}"))


class HostPool:
    """Starts uniquely named, booted hosts on free ports; `remove()` takes every one of them away.

    `image_for(suite)` gives the image of a Debian suite (the `host_image_for` fixture)."""

    def __init__(self, image_for: Callable[[str], str], reserved_ports: set[int]) -> None:
        self.image_for = image_for
        self.reserved_ports = reserved_ports
        self.started: list[str] = []

    def make(self, count: int = 1, prefix: str = "host", suite: str = DEFAULT_SUITE) -> list[TargetHost]:
        hosts = []
        for _ in range(count):
            name = f"panzoto-ops-{prefix}-{uuid.uuid4().hex[:8]}"
            self.started.append(name)  # before booting, so a host that fails to boot is removed too
            hosts.append(start_target_host(self.image_for(suite), name, free_tcp_port(self.reserved_ports)))
        return hosts

    def remove(self) -> None:
        remove_containers(self.started)


def inventory_host_vars(host: TargetHost) -> dict[str, Any]:
    return {
        # containers.podman.podman with pipelining, as SSH has in production (tests/harness/connection_plugins).
        "ansible_connection": CONNECTION,
        "ansible_host": host.name,
        "ansible_python_interpreter": "/usr/bin/python3",
        "panzoto_app_port": host.app_port,
    }


def write_inventory(
    path: Path,
    hosts: list[TargetHost],
    group: str = "api_servers",
    host_vars: Mapping[str, Mapping[str, Any]] | None = None,
    group_vars: Mapping[str, Any] | None = None,
) -> Path:
    """A YAML inventory with `hosts` in `group`; `host_vars` is keyed by host name and wins over the defaults."""
    group_hosts = {host.name: {**inventory_host_vars(host), **(host_vars or {}).get(host.name, {})} for host in hosts}
    inventory: dict[str, Any] = {"all": {"children": {group: {"hosts": group_hosts}}}}
    if group_vars:
        inventory["all"]["children"][group]["vars"] = dict(group_vars)
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    return path
