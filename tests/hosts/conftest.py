"""Fixtures for host tests: real Debian containers with systemd as PID 1 under podman (docs/DESIGN.md §5).

- `host_image`: the Debian 12 image reference from tools/build-host-image.sh (built when missing);
  `host_image_for(suite)` gives the image of either supported suite (`bookworm`, `trixie`).
- `target_hosts`: a factory; `target_hosts(count=2, prefix="svc", suite="trixie")` starts booted hosts
  (Debian 12 unless `suite` says otherwise) and removes them when the test ends. Each `TargetHost` has a
  unique `.name`, its own free `.app_port` (every host shares the machine's network, so ports must not
  collide) and a `.testinfra` host.
- `write_inventory(path, hosts, ...)`: an Ansible inventory reaching those hosts through podman.
- `deployment`: the session's Debian 13 host deployed by deploy.yml (tests/support/deployment.py), shared by the
  files that read a deployed host; a module that changes its settings leaves their restore
  (`Deployment.restore`), run when the next module asks for it. `fake_aws_credentials` gives a module's
  control-node runs the fake keys.
- `apt_cache`: the session's caching proxy for the Debian mirror (tests/harness/apt_cache.py); every host
  started here or by Molecule downloads its packages through it, so a package is fetched once per machine.
  Hosts also share root's pip cache and Poetry's artifact cache (`.cache/host-python-packages`).

The helpers behind them live in tests/support/hosts.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import local_aws
import pytest
from apt_cache import AptCache
from support.deployment import Deployment, deployed_host
from support.hosts import (
    APT_CACHE_CONF_ENV,
    CONNECTION_PLUGINS_DIR,
    CONNECTION_PLUGINS_ENV,
    CONTAINERS_CONF,
    DEFAULT_SUITE,
    PYTHON_CACHE_ENV,
    PYTHON_CACHES_ON_HOST,
    HostPool,
    TargetHost,
    build_host_image,
    owner_label_value,
    remove_containers,
    stale_test_containers,
    write_inventory,
)

# Kept between runs (make clean removes them): the same packages serve every later run on this machine.
CACHE_ROOT = Path(__file__).resolve().parents[2] / ".cache"
APT_CACHE_DIR = CACHE_ROOT / "apt-archives"
PYTHON_CACHE_DIR = CACHE_ROOT / "host-python-packages"


@pytest.fixture(scope="session")
def apt_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AptCache]:
    """The session's package cache, and the apt.conf.d snippet hosts mount to use it (path in the environment)."""
    with AptCache(APT_CACHE_DIR) as cache:
        cache.write_apt_config(tmp_path_factory.mktemp("apt-cache") / "apt-cache.conf")
        yield cache


@pytest.fixture(scope="session", autouse=True)
def podman_environment(apt_cache: AptCache) -> Iterator[None]:
    """Every podman call of this run (ours, Ansible's, Testinfra's, Molecule's) uses the harness settings,
    every Ansible run finds the harness's connection to the hosts, and every host it starts downloads its
    packages through the session's caches."""
    for name in PYTHON_CACHES_ON_HOST:
        (PYTHON_CACHE_DIR / name).mkdir(parents=True, exist_ok=True)
    overrides = {
        "CONTAINERS_CONF": str(CONTAINERS_CONF),
        CONNECTION_PLUGINS_ENV: str(CONNECTION_PLUGINS_DIR),
        APT_CACHE_CONF_ENV: str(apt_cache.config_file),
        PYTHON_CACHE_ENV: str(PYTHON_CACHE_DIR),
    }
    previous = {name: os.environ.get(name) for name in overrides}
    os.environ.update(overrides)
    remove_containers(stale_test_containers())
    yield
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(name="sweep_stale_test_containers")
def sweep_stale_test_containers_fixture() -> Callable[[], list[str]]:
    """Removes labelled containers of dead test runs and returns their names (what every session starts with)."""

    def sweep() -> list[str]:
        stale = stale_test_containers()
        remove_containers(stale)
        return stale

    return sweep


@pytest.fixture(scope="session")
def host_image_for(podman_environment: None) -> Callable[[str], str]:
    """The systemd Debian image reference of a suite, built by tools/build-host-image.sh when missing."""
    built: dict[str, str] = {}

    def image(suite: str = DEFAULT_SUITE) -> str:
        if suite not in built:
            built[suite] = build_host_image(suite)
        return built[suite]

    return image


@pytest.fixture(scope="session")
def host_image(host_image_for: Callable[[str], str]) -> str:
    """The Debian 12 image reference."""
    return host_image_for(DEFAULT_SUITE)


@pytest.fixture(scope="session")
def test_run_owner() -> str:
    """The owner label value for containers other tools create for this run (Molecule's `extra_opts`)."""
    return owner_label_value()


@pytest.fixture(scope="session")
def reserved_ports() -> set[int]:
    return set()


@pytest.fixture
def target_hosts(
    host_image_for: Callable[[str], str], reserved_ports: set[int]
) -> Iterator[Callable[..., list[TargetHost]]]:
    """Factory of booted target hosts, all removed when the test ends (even if it fails)."""
    pool = HostPool(host_image_for, reserved_ports)
    yield pool.make
    pool.remove()


@pytest.fixture(name="write_inventory")
def write_inventory_fixture() -> Callable[..., Path]:
    """`write_inventory` as a fixture, so tests need no import from a conftest."""
    return write_inventory


@pytest.fixture(scope="session")
def shared_deployment(
    host_image_for: Callable[[str], str], reserved_ports: set[int], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """The deployed Debian 13 host, built once per session (per worker: the scheduler sends its users to one)."""
    with deployed_host(host_image_for, reserved_ports, tmp_path_factory.mktemp("deployment")) as deployed:
        yield deployed


@pytest.fixture(scope="module")
def deployment(shared_deployment: Deployment) -> Deployment:
    """The shared host with the session's settings, put back first if a module before this one left them changed."""
    return shared_deployment.settled()


@pytest.fixture(scope="module")
def fake_aws_credentials() -> Iterator[None]:
    """The fake keys in this module's environment: ansible-playbook's control-node look-ups (Secrets Manager)
    sign with them."""
    with pytest.MonkeyPatch.context() as env:
        for name, value in local_aws.FAKE_CREDENTIALS.items():
            env.setenv(name, value)
        yield
