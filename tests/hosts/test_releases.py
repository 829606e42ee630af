"""Releases, automatic rollback, pruning and playbooks/rollback.yml on real systemd hosts (Debian 12 and 13).

A Debian 12 and a Debian 13 host are deployed together once (the good release), then a release whose processor
never starts is deployed to both: each rolls itself back. The later tests move the Debian 13 host on through a
third release, the rollback playbook (preview, previous, named, refused) and a pruning deploy. The backend's AWS
side is a moto server of this module on 127.0.0.1; the hosts share the machine's network.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import local_aws
import pytest
from support import backend_jobs
from support.hosts import HostPool, TargetHost, write_inventory
from support.playbook import PlaybookRun, run_playbook

SERVICE = "panzoto"
HOME = "/opt/panzoto"
HISTORY = f"{HOME}/deploy-state/history.jsonl"
STARTED_LINE = "Starting cost-safe audio processor"
HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
FIRST_DEPLOY_TIMEOUT_S = 2400
# The fake backend's switch that makes its processor fail at start (tests/fake-backend/README.md).
BREAKS_PROCESSOR = {"FAKE_BACKEND_BREAK_PROCESSOR": "1"}
# Long enough for the good release to start again on a loaded machine (the rollback's restart waits as long).
GATE_TIMEOUT_S = 45

pytestmark = pytest.mark.hosts


@dataclass
class Fleet:
    trixie: TargetHost
    bookworm: TargetHost
    inventory: Path
    endpoint_url: str
    good: PlaybookRun
    broken: PlaybookRun
    good_release: dict[str, str]
    pid_before_broken: dict[str, str]

    @property
    def hosts(self) -> list[TargetHost]:
        return [self.trixie, self.bookworm]


def app_env(endpoint_url: str, **extra: str) -> dict[str, str]:
    return {
        "REGION_NAME": backend_jobs.REGION,
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_S3_BUCKET_NAME": backend_jobs.BUCKET,
        # Each poll is a Scan moto answers: no job is submitted here, so a slow poll costs nothing.
        "TRANSCRIPTION_CHECK_INTERVAL_SECONDS": "2",
        **extra,
    }


def current_release(host: TargetHost) -> str:
    target = host.testinfra.check_output(f"readlink {HOME}/current")
    assert target.startswith("releases/"), target
    return target.removeprefix("releases/")


def releases_on(host: TargetHost) -> set[str]:
    return set(host.testinfra.check_output(f"ls {HOME}/releases").split())


def venv_link(host: TargetHost, release: str) -> str:
    return host.testinfra.check_output(f"readlink {HOME}/releases/{release}/venv")


def venvs_on(host: TargetHost) -> set[str]:
    return set(host.testinfra.check_output(f"ls {HOME}/venvs").split())


def main_pid(host: TargetHost) -> str:
    return host.testinfra.check_output(f"systemctl show --property=MainPID --value {SERVICE}")


def history(host: TargetHost) -> list[dict]:
    return [json.loads(line) for line in host.testinfra.file(HISTORY).content_string.splitlines()]


def current_run_journal(host: TargetHost) -> str:
    invocation = host.testinfra.check_output(f"systemctl show --property=InvocationID --value {SERVICE}")
    return host.testinfra.check_output(f"journalctl --no-pager --output cat _SYSTEMD_INVOCATION_ID={invocation}")


def assert_serving(host: TargetHost) -> None:
    """Running, its processor started in the current run, its API healthy."""
    assert host.testinfra.service(SERVICE).is_running
    assert STARTED_LINE in current_run_journal(host)
    assert backend_jobs.health(host.app_port)[0] == 200


def ran_task(run: PlaybookRun, name: str) -> bool:
    """Whether a task whose name starts with `name` did something on some host (not only skipped)."""
    sections = run.stdout.split("\nTASK [")[1:]
    return any(
        section.partition(" : ")[2].startswith(name) and ("changed:" in section or "ok:" in section)
        for section in sections
    )


def one_line(run: PlaybookRun) -> str:
    return " ".join(run.output.split())


@pytest.fixture(scope="module")
def endpoint_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = local_aws.start_server(log_path=tmp_path_factory.mktemp("releases-aws") / "moto.log", die_with_parent=True)
    with pytest.MonkeyPatch.context() as env:
        for name, value in local_aws.FAKE_CREDENTIALS.items():
            env.setenv(name, value)
        try:
            backend_jobs.create_backend_resources(server.endpoint_url)
            yield server.endpoint_url
        finally:
            local_aws.stop_server(server)


@pytest.fixture(scope="module")
def module_hosts(host_image_for: Callable[[str], str], reserved_ports: set[int]) -> Iterator[Callable[..., list[Any]]]:
    pool = HostPool(host_image_for, reserved_ports)
    yield pool.make
    pool.remove()


@pytest.fixture(scope="module")
def fleet(
    module_hosts: Callable[..., list[TargetHost]], endpoint_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Fleet:
    """Both hosts deployed with a good release, then with one whose processor never starts (both batches at once)."""
    (trixie,) = module_hosts(prefix="releases", suite="trixie")
    (bookworm,) = module_hosts(prefix="releases", suite="bookworm")
    inventory = write_inventory(
        tmp_path_factory.mktemp("releases") / "hosts.yml",
        [trixie, bookworm],
        group_vars={
            "panzoto_app_source": "local",
            "panzoto_app_local_src": str(backend_jobs.APP_DIR),
            "panzoto_app_extra_ca_bundle": HOST_CA_BUNDLE,
            "panzoto_app_env": app_env(endpoint_url),
            "panzoto_app_secret_env": {
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "OPENAI_API_KEY": f"sk-releases-test-{secrets.token_hex(16)}",
                "SECRET_KEY": "releases-test-jwt-signing-key",
            },
            "panzoto_service_asgi_app": backend_jobs.APP_MODULE,
            "panzoto_service_bind_address": "127.0.0.1",
            # ffmpeg is not what this module is about: skipping it keeps the first deploy short.
            "ffmpeg_enabled": False,
            # Two hosts running the processor: allowed on this promise only (this module submits no job).
            "panzoto_backend_claims_jobs": True,
        },
    )
    both = {"deploy_batch_size": 2}
    good = run_playbook("deploy.yml", inventory=inventory, extra_vars=both, timeout=FIRST_DEPLOY_TIMEOUT_S)
    assert good.returncode == 0, good.output[-6000:]
    good_release = {host.name: current_release(host) for host in (trixie, bookworm)}
    pids = {host.name: main_pid(host) for host in (trixie, bookworm)}
    broken = run_playbook(
        "deploy.yml",
        inventory=inventory,
        extra_vars={
            **both,
            "panzoto_app_env": app_env(endpoint_url, **BREAKS_PROCESSOR),
            "panzoto_service_start_timeout": GATE_TIMEOUT_S,
        },
        timeout=FIRST_DEPLOY_TIMEOUT_S,
    )
    return Fleet(trixie, bookworm, inventory, endpoint_url, good, broken, good_release, pids)


# Releases ------------------------------------------------------------------------------------------------
def test_a_deploy_installs_a_release_directory_and_the_service_runs_current(fleet: Fleet) -> None:
    for host in fleet.hosts:
        release = fleet.good_release[host.name]
        files = host.testinfra
        release_dir = files.file(f"{HOME}/releases/{release}")
        assert (release_dir.user, release_dir.group, release_dir.mode) == ("root", "panzoto", 0o750)
        for path in ("app/pyproject.toml", "venv/bin/uvicorn", "release.json"):
            assert files.file(f"{HOME}/releases/{release}/{path}").user == "root", path
        env_file = files.file(f"{HOME}/releases/{release}/panzoto.env")
        assert (env_file.user, env_file.mode) == ("panzoto", 0o600)
        record = json.loads(files.file(f"{HOME}/releases/{release}/release.json").content_string)
        lock_sha1 = hashlib.sha1((backend_jobs.APP_DIR / "poetry.lock").read_bytes()).hexdigest()
        assert (record["id"], record["source"], record["lock_sha1"]) == (release, "local", lock_sha1)
        # The unit names `current`; the state the backend writes stays in its state directory, outside releases.
        unit = files.file(f"/etc/systemd/system/{SERVICE}.service").content_string
        assert f"ExecStart={HOME}/current/venv/bin/uvicorn" in unit
        assert f"EnvironmentFile={HOME}/current/panzoto.env" in unit
        assert "WorkingDirectory=/var/lib/panzoto" in unit
        # The dependencies live in a virtualenv of their own, which the release links to.
        (venv,) = venvs_on(host)
        assert venv_link(host, release) == f"../../venvs/{venv}"
    assert ran_task(fleet.good, "Ensure the virtualenv holds exactly the locked dependencies")


def test_a_release_whose_processor_never_starts_is_rolled_back_by_itself_on_debian_12_and_13(fleet: Fleet) -> None:
    run = fleet.broken
    assert run.returncode != 0
    text = one_line(run)
    for host in fleet.hosts:
        good = fleet.good_release[host.name]
        failed = sorted(releases_on(host) - {good})
        assert len(failed) == 1, failed
        (failed_release,) = failed
        # One line: the host, the release, why, where it went back to, and that the rollout stopped.
        assert (
            f"{host.name}: release {failed_release} failed its health gate ({SERVICE}.service is not proven running:"
            " Background processor started: no"
        ) in text
        assert (
            f"rolled back to {good}, healthy again; the failed release is kept in {HOME}/releases/{failed_release}"
            " (FAILED says why); rollout stopped." in text
        )
        assert run.stats[host.name]["failed"] == 1 and run.stats[host.name]["rescued"] == 1
        # Back on the good release, restarted and proven again ...
        assert current_release(host) == good
        assert main_pid(host) != fleet.pid_before_broken[host.name]
        assert_serving(host)
        # ... and the failed one kept, saying why, for analysis.
        marker = host.testinfra.file(f"{HOME}/releases/{failed_release}/FAILED")
        assert (marker.user, marker.mode) == ("root", 0o600)
        assert "Background processor started: no" in json.loads(marker.content_string)["reason"]
        assert host.testinfra.file(f"{HOME}/releases/{failed_release}/release.json").exists
        # Only its settings differ: it links to the good release's virtualenv, nothing was installed for it.
        assert venv_link(host, failed_release) == venv_link(host, good) and len(venvs_on(host)) == 1
    assert not ran_task(run, "Ensure the virtualenv holds exactly the locked dependencies")


def test_the_deploy_history_records_and_shows_what_was_deployed_when(fleet: Fleet) -> None:
    archive_lines = [line for line in fleet.good.stdout.splitlines() if "healthy (local archive sha1" in line]
    assert len(archive_lines) == 2, fleet.good.stdout[-3000:]  # shown by the deploy, once per host
    for host in fleet.hosts:
        history_file = host.testinfra.file(HISTORY)
        assert (history_file.user, history_file.mode) == ("root", 0o600)
        entries = history(host)
        good = fleet.good_release[host.name]
        healthy = [entry for entry in entries if entry["outcome"] == "healthy"]
        assert [entry["release"] for entry in healthy] == [good]
        assert healthy[0]["archive_sha1"] and healthy[0]["lock_sha1"]
        failed = [entry for entry in entries if entry["outcome"] == "failed"]
        assert len(failed) == 1 and "Background processor started: no" in failed[0]["reason"]
        rolled_back = [entry for entry in entries if entry["outcome"] == "rolled back"]
        assert [(entry["release"], entry["from"]) for entry in rolled_back] == [(good, failed[0]["release"])]


# playbooks/rollback.yml (the Debian 13 host from here on) ------------------------------------------------
def test_the_rollback_playbook_refuses_to_run_without_a_limit(fleet: Fleet) -> None:
    before = {host.name: (current_release(host), main_pid(host)) for host in fleet.hosts}
    run = run_playbook("rollback.yml", inventory=fleet.inventory)
    assert run.returncode != 0
    assert "Name the host to roll back with -l HOST: a rollback is decided host by host." in run.output
    assert all(stats["changed"] == 0 for stats in run.stats.values())
    assert {host.name: (current_release(host), main_pid(host)) for host in fleet.hosts} == before


@pytest.fixture(scope="module")
def third_release(fleet: Fleet) -> str:
    """A third, good release on the Debian 13 host (a harmless new setting)."""
    run = run_playbook(
        "deploy.yml",
        inventory=fleet.inventory,
        limit=fleet.trixie.name,
        extra_vars={"panzoto_app_env": app_env(fleet.endpoint_url, RELEASE_NOTE="third")},
        timeout=FIRST_DEPLOY_TIMEOUT_S,
    )
    assert run.returncode == 0, run.output[-6000:]
    release = current_release(fleet.trixie)
    assert release not in fleet.good_release.values()
    return release


def test_rollback_previews_with_check_and_diff_then_goes_back_to_the_previous_good_release(
    fleet: Fleet, third_release: str
) -> None:
    host, good = fleet.trixie, fleet.good_release[fleet.trixie.name]
    pid = main_pid(host)

    preview = run_playbook("rollback.yml", inventory=fleet.inventory, limit=host.name, check=True, diff=True)
    assert preview.returncode == 0, preview.output[-4000:]
    assert f"-current -> releases/{third_release}" in preview.stdout
    assert f"+current -> releases/{good}" in preview.stdout
    assert (current_release(host), main_pid(host)) == (third_release, pid)

    # Back to the newest release proven healthy before the current one: not the failed one in between.
    rolled = run_playbook("rollback.yml", inventory=fleet.inventory, limit=host.name)
    assert rolled.returncode == 0, rolled.output[-4000:]
    assert current_release(host) == good
    assert main_pid(host) != pid
    assert_serving(host)
    last = history(host)[-1]
    assert (last["release"], last["outcome"], last["reason"], last["from"]) == (
        good,
        "rolled back",
        "by the operator",
        third_release,
    )
    assert f"rolled back (was {third_release}): by the operator" in rolled.stdout  # the history it shows


@pytest.mark.parametrize("named", ["no-such-release", "the-failed-one"])
def test_rollback_to_a_release_that_is_missing_or_failed_is_refused_in_one_line(
    fleet: Fleet, third_release: str, named: str
) -> None:
    host = fleet.trixie
    if named == "the-failed-one":
        named = sorted(releases_on(host) - {fleet.good_release[host.name], third_release})[0]
    before = (current_release(host), main_pid(host))
    run = run_playbook(
        "rollback.yml", inventory=fleet.inventory, limit=host.name, extra_vars={"rollback_release": named}
    )
    assert run.returncode != 0
    assert f"{host.name}: rollback_release {named} is not a complete release that never failed" in one_line(run)
    assert run.stats[host.name]["changed"] == 0
    assert (current_release(host), main_pid(host)) == before


def test_rollback_to_a_named_release(fleet: Fleet, third_release: str) -> None:
    host = fleet.trixie
    run = run_playbook(
        "rollback.yml", inventory=fleet.inventory, limit=host.name, extra_vars={"rollback_release": third_release}
    )
    assert run.returncode == 0, run.output[-4000:]
    assert current_release(host) == third_release
    assert_serving(host)


# Pruning -------------------------------------------------------------------------------------------------
def test_a_deploy_keeps_n_good_releases_and_failed_ones_apart_and_never_the_current_one(
    fleet: Fleet, third_release: str
) -> None:
    """Before: the first good release, the failed one, the third (current) and an interrupted build. A new good
    release with keep 2 and keep_failed 1 leaves it and the third; of the two unfinished ones, the failed one."""
    host = fleet.trixie
    good, interrupted = fleet.good_release[host.name], "0interrupted"
    (failed,) = releases_on(host) - {good, third_release}
    host.exec("mkdir", f"{HOME}/releases/{interrupted}")

    run = run_playbook(
        "deploy.yml",
        inventory=fleet.inventory,
        limit=host.name,
        extra_vars={
            "panzoto_app_env": app_env(fleet.endpoint_url, RELEASE_NOTE="fourth"),
            "panzoto_app_keep_releases": 2,
            "panzoto_app_keep_failed_releases": 1,
        },
        timeout=FIRST_DEPLOY_TIMEOUT_S,
    )
    assert run.returncode == 0, run.output[-6000:]
    fourth = current_release(host)
    assert releases_on(host) == {fourth, third_release, failed}
    assert history(host)[-1]["outcome"] == "pruned"
    assert sorted(history(host)[-1]["releases"]) == sorted([good, interrupted])
    assert_serving(host)
