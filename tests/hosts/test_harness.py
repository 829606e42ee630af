"""The target-host harness itself: booted systemd hosts, unique names and ports, stale-container cleanup, and
how the two CI workers share the slow host tests."""

from __future__ import annotations

import http.client
import re
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from apt_cache import AptCache
from scheduling import SHARED_DEPLOYMENT_FILES, FileScheduling
from support.deployment import Deployment
from support.playbook import run_playbook

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
    assert '"ansible_connection": "podman_pipelined"' in listed
    assert '"extra": 1' in listed

    # The harness's connection pipelines a module as SSH does in production: one podman exec with the module on its
    # stdin, no temporary directory, no `podman mount`; a file transfer still works (containers.podman.podman's).
    playbook = tmp_path / "pipelined.yml"
    playbook.write_text(
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.command: hostname\n      register: name\n      changed_when: false\n"
        "    - ansible.builtin.copy: {content: '{{ name.stdout }}', dest: /root/name, mode: '0600'}\n"
    )
    run = run_playbook(str(playbook), inventory=inventory, limit=first.name, verbosity=3)
    assert run.returncode == 0, run.output[-3000:]
    command_task = run.stdout.split("TASK [ansible.builtin.command]", 1)[1].split("TASK [", 1)[0]
    assert command_task.count("RUN [b'/usr/bin/podman'") == 1, command_task
    assert command_task.count("RUN [b'/usr/bin/podman', b'exec'") == 1, command_task
    assert "b'exec', b'--interactive'" in command_task and "AnsiballZ" not in command_task
    assert first.testinfra.file("/root/name").content_string == first.name


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
    # The files that read the session's deployed host go to one worker, which deploys it once.
    shared = ["tests/hosts/test_deploy.py::test_first", "tests/hosts/test_liveness.py::test_timer"]
    assert {scheduler._split_scope(nodeid) for nodeid in shared} == {"tests/hosts/test_deploy.py"}
    assert scheduler._split_scope("tests/hosts/test_releases.py::test_x") == "tests/hosts/test_releases.py"


def test_every_file_using_the_deployed_host_is_scheduled_with_the_others() -> None:
    """A file using `deployment` outside SHARED_DEPLOYMENT_FILES would deploy a second host on another worker."""
    users = {
        path.relative_to(REPO_ROOT).as_posix()
        for path in (REPO_ROOT / "tests").rglob("test_*.py")
        if re.search(r"\bdeployment: Deployment\b", path.read_text())
    }
    assert users == set(SHARED_DEPLOYMENT_FILES)


def test_a_restore_a_module_left_runs_once_when_the_next_module_reads_the_shared_host() -> None:
    """tests/hosts/conftest.py's `deployment` settles the shared host per module: a module that changed its settings
    leaves their restore, which the next reader runs before its tests, and only once."""
    deployment = Deployment(*[None] * 7)
    restored: list[str] = []
    assert deployment.settled() is deployment and restored == []
    deployment.restore = lambda: restored.append("the session's settings")
    assert deployment.settled() is deployment and restored == ["the session's settings"]
    assert deployment.settled() is deployment and restored == ["the session's settings"]


def test_target_host_files_are_handed_out_first_whatever_their_test_count() -> None:
    """xdist's loadfile would hand out the file with the most tests first; the host file goes first instead."""
    selection = ["tests/unit/test_redact.py", "tests/unit/test_tally.py", "tests/hosts/test_molecule.py"]
    output = run_pytest("-n", "2", "--dist", "loadfile", "-v", "-k", f"not {TEST_SCENARIO}", *selection)
    ran = re.findall(r"^\[(gw\d)\] \[ *\d+%\] PASSED (\S+)", output, flags=re.MULTILINE)
    assert len(ran) == int(re.search(r"2 workers \[(\d+) items\]", output)[1]), output
    (host_worker,) = {worker for worker, nodeid in ran if nodeid.startswith("tests/hosts/")}
    first_on_that_worker = next(nodeid for worker, nodeid in ran if worker == host_worker)
    assert first_on_that_worker.startswith("tests/hosts/test_molecule.py::"), output


@pytest.mark.hosts
def test_hosts_download_packages_through_the_sessions_caches_once(target_hosts, apt_cache: AptCache):
    first, second = target_hosts(count=2, prefix="aptcache")
    assert apt_cache.url in first.exec("apt-config", "dump", "Acquire::http::Proxy").stdout
    download = ["sh", "-c", "cd /tmp && apt-get download -q hello"]  # a small package from pool/
    before = apt_cache.counts.copy()
    first.exec(*download)
    fetched = apt_cache.counts - before
    assert fetched["hit"] + fetched["miss"] == 1, fetched  # the first host's .deb came through the cache
    before = apt_cache.counts.copy()
    second.exec(*download)
    assert apt_cache.counts - before == Counter(hit=1)  # ... and the second host's came from it
    digests = {host.exec("sh", "-c", "sha256sum /tmp/hello_*.deb").stdout.split()[0] for host in (first, second)}
    assert len(digests) == 1
    # root's pip cache and Poetry's artifact cache are one directory for every host of the session.
    marker = f"shared-{uuid.uuid4().hex[:8]}"
    caches = ("/root/.cache/pip", "/root/.cache/pypoetry/artifacts")
    try:
        for cache in caches:
            first.exec("sh", "-c", f"echo {marker} > {cache}/{marker}")
            assert second.exec("cat", f"{cache}/{marker}").stdout.strip() == marker
    finally:
        first.exec("rm", "-f", *(f"{cache}/{marker}" for cache in caches))


MIRROR_FILES = {
    "/debian/pool/main/h/hello/hello_2.10_amd64.deb": b"!<arch>\n" + b"package" * 5000,
    "/debian/dists/bookworm/main/binary-amd64/by-hash/SHA256/0a1b": b"Package: hello\n",
}


class FakeMirror(BaseHTTPRequestHandler):
    """A Debian mirror on 127.0.0.1: one package, one hashed index, an InRelease that changes at every request."""

    protocol_version = "HTTP/1.1"
    requests: Counter[str]

    def do_GET(self) -> None:
        self.requests[self.path] += 1
        if self.path == "/debian/dists/bookworm/InRelease":
            body, status = f"Date: release {self.requests[self.path]}\n".encode(), 200
        else:
            body, status = MIRROR_FILES.get(self.path, b"missing"), 200 if self.path in MIRROR_FILES else 404
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_mirror() -> Iterator[tuple[str, Counter[str]]]:
    handler = type("CountingMirror", (FakeMirror,), {"requests": Counter()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/debian", handler.requests
    server.shutdown()
    server.server_close()


def through(cache: AptCache, url: str, method: str = "GET") -> tuple[int, bytes]:
    """A request as apt sends it to a proxy: the absolute URL as the request target."""
    connection = http.client.HTTPConnection("127.0.0.1", cache.port, timeout=30)
    try:
        connection.request(method, url)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_apt_cache_keeps_packages_and_hashed_indexes_and_passes_the_rest_through(fake_mirror, tmp_path) -> None:
    mirror, upstream = fake_mirror
    package = f"{mirror}/pool/main/h/hello/hello_2.10_amd64.deb"
    index = f"{mirror}/dists/bookworm/main/binary-amd64/by-hash/SHA256/0a1b"
    release = f"{mirror}/dists/bookworm/InRelease"
    # Two proxies on one directory, as the two xdist workers: what one fetched, the other serves.
    with AptCache(tmp_path / "cache") as first, AptCache(tmp_path / "cache") as second:
        assert through(first, package) == (200, MIRROR_FILES["/debian/pool/main/h/hello/hello_2.10_amd64.deb"])
        assert through(second, package) == through(first, package)
        assert through(first, index) == through(second, index) == (200, b"Package: hello\n")
        assert [through(first, release)[1], through(second, release)[1]] == [b"Date: release 1\n", b"Date: release 2\n"]
        assert through(first, f"{mirror}/pool/main/g/gone/gone_1_amd64.deb")[0] == 404
        assert through(first, f"{mirror}/pool/main/g/gone/gone_1_amd64.deb")[0] == 404  # a miss is never kept
        assert through(first, "/debian/pool/not-a-proxy-request")[0] == 400
    assert upstream == Counter(
        {
            "/debian/pool/main/h/hello/hello_2.10_amd64.deb": 1,
            "/debian/dists/bookworm/main/binary-amd64/by-hash/SHA256/0a1b": 1,
            "/debian/dists/bookworm/InRelease": 2,
            "/debian/pool/main/g/gone/gone_1_amd64.deb": 2,
        }
    )
    assert first.counts + second.counts == Counter(hit=3, miss=4, passed=2, refused=1)
    assert sorted(path.name for path in (tmp_path / "cache").rglob("*") if path.is_file()) == sorted(
        [first.path_for(package).name, first.path_for(index).name]
    )
