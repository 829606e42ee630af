"""Fixtures for host tests: real Debian containers with systemd as PID 1 under podman (DESIGN §5).

- `host_image`: the image reference from tools/build-host-image.sh (built when missing).
- `target_hosts`: a factory; `target_hosts(count=2, prefix="svc")` starts booted hosts and removes them
  when the test ends. Each `TargetHost` has a unique `.name`, its own free `.app_port` (every host shares
  the machine's network, so ports must not collide) and a `.testinfra` host.
- `write_inventory(path, hosts, ...)`: an Ansible inventory reaching those hosts through podman.

The helpers behind them live in tests/support/hosts.py.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.hosts import (
    BUILD_SCRIPT,
    CONTAINERS_CONF,
    REPO_ROOT,
    HostPool,
    TargetHost,
    owner_label_value,
    remove_containers,
    stale_test_containers,
    write_inventory,
)


@pytest.fixture(scope="session", autouse=True)
def podman_environment() -> Iterator[None]:
    """Every podman call of this run (ours, Ansible's, Testinfra's, Molecule's) uses the harness settings."""
    previous = os.environ.get("CONTAINERS_CONF")
    os.environ["CONTAINERS_CONF"] = str(CONTAINERS_CONF)
    remove_containers(stale_test_containers())
    yield
    if previous is None:
        os.environ.pop("CONTAINERS_CONF", None)
    else:
        os.environ["CONTAINERS_CONF"] = previous


@pytest.fixture(name="sweep_stale_test_containers")
def sweep_stale_test_containers_fixture() -> Callable[[], list[str]]:
    """Removes labelled containers of dead test runs and returns their names (what every session starts with)."""

    def sweep() -> list[str]:
        stale = stale_test_containers()
        remove_containers(stale)
        return stale

    return sweep


@pytest.fixture(scope="session")
def host_image(podman_environment: None) -> str:
    """The systemd Debian image reference, built by tools/build-host-image.sh when missing."""
    completed = subprocess.run(
        [str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=900, check=False, cwd=REPO_ROOT
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{BUILD_SCRIPT.name} failed:\n{completed.stderr}")
    return completed.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def test_run_owner() -> str:
    """The owner label value for containers other tools create for this run (Molecule's `extra_opts`)."""
    return owner_label_value()


@pytest.fixture(scope="session")
def reserved_ports() -> set[int]:
    return set()


@pytest.fixture
def target_hosts(host_image: str, reserved_ports: set[int]) -> Iterator[Callable[..., list[TargetHost]]]:
    """Factory of booted target hosts, all removed when the test ends (even if it fails)."""
    pool = HostPool(host_image, reserved_ports)
    yield pool.make
    pool.remove()


@pytest.fixture(name="write_inventory")
def write_inventory_fixture() -> Callable[..., Path]:
    """`write_inventory` as a fixture, so tests need no import from a conftest."""
    return write_inventory
