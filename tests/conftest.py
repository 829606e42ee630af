"""Fixtures shared by every test: the local AWS endpoint and paths; how the two CI workers share the suite.

The endpoint is moto in server mode, a real HTTP server on 127.0.0.1 started
once per session; `aws` gives each test an empty one. Under `pytest -n 2 --dist
loadfile` the target-host files go first and every Molecule scenario is a unit of
its own (tests/harness/scheduling.py).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import ansible.module_utils
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
HARNESS_DIR = REPO_ROOT / "tests" / "harness"
# Import the project's tools (tools/), the test and benchmark harness (tests/harness/: `import fault_proxy`),
# and the modules and module_utils the way Ansible does.
sys.path.insert(0, str(REPO_ROOT / "tools"))
sys.path.insert(0, str(HARNESS_DIR))
sys.path.insert(0, str(REPO_ROOT / "library"))
# Scripts the tests start in a process of their own (benchmarks/run.py) import the harness by name too.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HARNESS_DIR), os.environ.get("PYTHONPATH")]))
ansible.module_utils.__path__.append(str(REPO_ROOT / "module_utils"))

import local_aws  # noqa: E402

# Tests under these folders need target hosts and take minutes each: they start first (tests/harness/scheduling.py).
SLOW_FIRST = ("tests/hosts/",)


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist: absent under `-p no:xdist`
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """`--dist loadfile` with the refinements of tests/harness/scheduling.py; any other mode as xdist has it."""
    if config.getoption("dist") != "loadfile":
        return None
    from scheduling import FileScheduling

    return FileScheduling(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Target-host files first, every file's tests still together and in their order (a stable sort by file)."""
    items.sort(key=lambda item: not item.nodeid.startswith(SLOW_FIRST))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def local_aws_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[local_aws.LocalAws]:
    with local_aws.running_server(tmp_path_factory.mktemp("moto") / "moto.log") as server:
        yield server


@pytest.fixture(scope="module")
def module_aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[local_aws.LocalAws]:
    """A local AWS endpoint of this test module's own, for data seeded once and only read."""
    with local_aws.running_server(tmp_path_factory.mktemp("moto") / "moto.log") as server:
        yield server


@pytest.fixture
def aws(local_aws_server: local_aws.LocalAws) -> local_aws.LocalAws:
    """An empty local AWS endpoint for this test."""
    local_aws_server.reset()
    return local_aws_server
