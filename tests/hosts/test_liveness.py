"""The processor's liveness on a deployed Debian 13 host: preflight's heartbeat item, the host's own liveness timer
(Prometheus textfile, one alert on loss and one on recovery), and the decrypted recordings the backend leaves.

The session's deployed host (tests/support/deployment.py) gets its liveness timer every 2 s for this module,
posting to a webhook on this machine (the hosts share its network). Scans are broken the way production breaks
them while the API keeps answering: the service's environment points at a region where its table does not exist
(as expired credentials do, every scan fails and the heartbeat goes on with N = 0).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import local_aws
import pytest
from support import backend_jobs
from support.deployment import Deployment
from support.local_http import capturing_webhook
from support.playbook import PlaybookRun, checklist_verdicts, run_playbook

SERVICE = "panzoto"
ENV_FILE = "/opt/panzoto/current/panzoto.env"  # the current release's (docs/releases.md)
TEXTFILE = "/var/lib/prometheus/node-exporter/panzoto_liveness.prom"
LEFTOVERS = "/var/lib/panzoto/data/processing_audio"

# The control node's Secrets Manager look-ups (inside ansible-playbook) sign with the fake credentials.
pytestmark = [pytest.mark.hosts, pytest.mark.usefixtures("fake_aws_credentials")]


@dataclass
class Deployed:
    host: Any
    inventory: Path
    endpoint_url: str
    alerts: list[dict]
    webhook_url: str
    second: PlaybookRun


@pytest.fixture(scope="module")
def deployed(deployment: Deployment) -> Iterator[Deployed]:
    """The session's deployed host with its liveness timer every 2 s, posting to a webhook of this module: a
    deploy of that setting, then one more that must change nothing. Tests before this module broke and restored
    the processor; the timer's state is made to say "alive" first, so no recovery is posted for their doing."""

    def recorded_alive() -> bool:
        deployment.host.exec("systemctl", "start", f"{SERVICE}-liveness.service", check=False)
        return (
            deployment.host.testinfra.file(TEXTFILE).exists
            and textfile(deployment.host).get("panzoto_processor_up") == 1
        )

    wait_until(recorded_alive, 90, "the liveness timer's state says alive")
    with capturing_webhook() as (webhook_url, alerts):
        liveness = {
            "panzoto_service_liveness_timer_interval": "2s",
            "panzoto_service_liveness_webhook_url": webhook_url,
        }
        runs = [service_deploy(deployment.inventory, liveness) for _ in range(2)]
        for run in runs:
            assert run.returncode == 0, run.output[-6000:]
        endpoint_url = deployment.backend.endpoint_url
        yield Deployed(deployment.host, deployment.inventory, endpoint_url, alerts, webhook_url, runs[1])

    # A 2 s timer left (the switch test removes it) stops here: the host lives until the session ends. The session's
    # settings (the default timer, no webhook) are deployed again by the next module that reads the host, if one does.
    deployment.host.exec("systemctl", "stop", f"{SERVICE}-liveness.timer", check=False)

    def back_to_the_sessions_settings() -> None:
        # Run from another module's set-up: this module's fake keys (fake_aws_credentials) are not set there.
        back = service_deploy(deployment.inventory, env=local_aws.FAKE_CREDENTIALS)
        assert back.returncode == 0, back.output[-6000:]

    deployment.restore = back_to_the_sessions_settings


def service_deploy(
    inventory: Path, extra_vars: dict[str, Any] | None = None, env: dict[str, str] | None = None
) -> PlaybookRun:
    """deploy.yml's service item alone (`--tags service`), as an operator applies a liveness setting: the timer
    is the service role's, so ffmpeg's proof and the release checks would only repeat what the session proved."""
    return run_playbook("deploy.yml", inventory=inventory, extra_vars=extra_vars, env=env, args=["--tags", "service"])


def host_preflight(deployed: Deployed, *tags: str) -> PlaybookRun:
    """preflight.yml's host items of `tags` alone, in check mode."""
    return run_playbook(
        "preflight.yml",
        inventory=deployed.inventory,
        check=True,
        env={"AWS_ENDPOINT_URL": deployed.endpoint_url},
        args=["--tags", ",".join(tags), "--limit", f"localhost,{deployed.host.name}"],
    )


def textfile(host: Any) -> dict[str, float]:
    """{metric: value} of the liveness textfile."""
    content = host.testinfra.file(TEXTFILE).content_string
    return {
        line.split("{")[0]: float(line.rsplit(" ", 1)[1]) for line in content.splitlines() if not line.startswith("#")
    }


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(1)


def statuses(alerts: list[dict]) -> list[str]:
    return [alert["status"] for alert in alerts]


def test_the_deploy_installs_the_liveness_timer_and_a_second_deploy_changes_nothing(deployed: Deployed) -> None:
    host = deployed.host.testinfra
    assert host.service(f"{SERVICE}-liveness.timer").is_running
    assert host.file("/usr/local/libexec/panzoto-liveness").mode == 0o755
    webhook = host.file("/etc/panzoto-liveness/webhook-url")
    assert (webhook.user, webhook.mode) == ("root", 0o600)
    assert deployed.second.stats[deployed.host.name]["changed"] == 0, deployed.second.output[-4000:]
    assert "secret-token" not in deployed.second.output  # the webhook URL's token


def test_a_live_processor_passes_preflight_and_reads_up_in_the_textfile(deployed: Deployed) -> None:
    wait_until(lambda: textfile(deployed.host).get("panzoto_processor_up") == 1, 60, "up 1 in the textfile")

    run = host_preflight(deployed, "liveness")

    assert run.returncode == 0, run.output[-4000:]
    items = checklist_verdicts(run.stdout)
    name = deployed.host.name
    assert items == {f"{name}: reachable": "PASS", f"{name}: Processor heartbeat": "PASS"}  # alone, with its tag
    assert f"PASS  {deployed.host.name}: Processor heartbeat ({deployed.host.name}: heartbeat " in run.stdout
    assert 0 <= textfile(deployed.host)["panzoto_processor_heartbeat_age_seconds"] <= 10
    assert deployed.alerts == []  # the first verdict is recorded, not alerted


def test_failing_scans_turn_preflight_red_and_alert_once_then_recovery_alerts_once(deployed: Deployed) -> None:
    host = deployed.host
    host.exec("cp", "-p", ENV_FILE, f"{ENV_FILE}.liveness-test")
    host.exec("sed", "-i", "s/^REGION_NAME=.*/REGION_NAME=us-west-2/", ENV_FILE)
    host.exec("systemctl", "restart", SERVICE)
    try:
        wait_until(lambda: "lost" in statuses(deployed.alerts), 60, "an alert that liveness is lost")
        run = host_preflight(deployed, "liveness", "service")
        time.sleep(8)  # four more timer runs, still dead
        assert statuses(deployed.alerts) == ["lost"]
    finally:
        host.exec("mv", f"{ENV_FILE}.liveness-test", ENV_FILE)
        host.exec("systemctl", "restart", SERVICE)

    # The API stayed healthy and the processor started: only the heartbeat tells.
    assert run.returncode == 2
    items = checklist_verdicts(run.stdout)
    name = host.name
    assert items[f"{name}: Health endpoint healthy"] == "PASS"
    assert items[f"{name}: Background processor started"] == "PASS"
    assert items[f"{name}: Processor heartbeat"] == "FAIL"
    heartbeat = f"FAIL  {name}: Processor heartbeat"
    (line,) = [line for line in run.stdout.splitlines() if line.strip().startswith(heartbeat)]
    assert f"({name}: the processor's scans fail; last heartbeat " in line
    assert "last error: Error querying jobs: An error occurred (ResourceNotFoundException)" in line
    assert deployed.alerts[0]["host"] == name and deployed.alerts[0]["alive"] is False
    assert "Error querying jobs" in deployed.alerts[0]["text"]

    wait_until(lambda: "recovered" in statuses(deployed.alerts), 60, "an alert that liveness recovered")
    time.sleep(6)
    assert statuses(deployed.alerts) == ["lost", "recovered"]
    assert textfile(host)["panzoto_processor_up"] == 1
    assert host_preflight(deployed, "liveness").returncode == 0


def test_decrypted_leftovers_older_than_the_rule_are_reported_and_removed(deployed: Deployed) -> None:
    host = deployed.host
    backend_jobs.put_user_key(deployed.endpoint_url, "user-leftovers")
    job_id = backend_jobs.submit_job(deployed.endpoint_url, "user-leftovers", backend_jobs.make_3gp_clip(2.0))
    assert backend_jobs.wait_for_job(deployed.endpoint_url, job_id, timeout=90)["status"] == "completed"
    leftovers = host.testinfra.check_output(f"ls {LEFTOVERS}").split()
    assert leftovers and all(name.startswith("decrypted_") for name in leftovers)  # the backend's leak, for real
    old, fresh = f"{LEFTOVERS}/{leftovers[0]}", f"{LEFTOVERS}/decrypted_fresh.mp3"
    host.exec("touch", "-d", "2 hours ago", old)
    host.exec("install", "-o", SERVICE, "-m", "0600", "/dev/null", fresh)

    red = host_preflight(deployed, "decrypted_audio")
    assert red.returncode == 2
    assert checklist_verdicts(red.stdout)[f"{host.name}: No old decrypted audio"] == "FAIL"
    assert f"1 decrypted recordings older than 1h in {LEFTOVERS}" in red.stdout

    # What systemd-tmpfiles-clean.timer runs (it is active); the deploy's rule decides what goes.
    assert host.testinfra.service("systemd-tmpfiles-clean.timer").is_running
    host.exec("systemd-tmpfiles", "--clean")
    assert not host.testinfra.file(old).exists
    assert host.testinfra.file(fresh).exists
    green = host_preflight(deployed, "decrypted_audio")
    assert green.returncode == 0, green.output[-3000:]


def test_the_venv_is_checked_against_the_lock_and_openai_is_not_applicable(deployed: Deployed) -> None:
    host = deployed.host
    name = host.name
    run = host_preflight(deployed, "lock")

    assert run.returncode == 0, run.output[-3000:]
    matches = rf"^\s*PASS  {name}: Venv matches the lock \(\d+ of \d+ locked packages installed, all at their locked"
    assert re.search(matches, run.stdout, re.MULTILINE), run.stdout[-3000:]
    # The fake backend does not depend on openai: said so, neither passed nor failed.
    not_applicable = "(not applicable: the project does not depend on openai)"
    assert f"N/A  {name}: OpenAI client constructs {not_applicable}" in run.stdout

    # A venv that is not the lock's: the lock now pins another h11 than the one installed.
    lock = "/opt/panzoto/current/app/poetry.lock"
    installed = host.testinfra.check_output(
        "/opt/panzoto/current/venv/bin/python -c 'import h11; print(h11.__version__)'"
    )
    host.exec("cp", "-p", lock, f"{lock}.lock-test")
    try:
        host.exec("sed", "-i", '/^name = "h11"$/,/^version = / s/^version = .*/version = "0.0.1"/', lock)
        red = host_preflight(deployed, "lock")
    finally:
        host.exec("mv", f"{lock}.lock-test", lock)
    assert red.returncode == 2
    assert (
        f"FAIL  {name}: Venv matches the lock (not the locked versions: h11 {installed} (lock 0.0.1); "
        "install strictly from the lock (poetry sync))"
    ) in red.stdout


def test_the_timer_switch_removes_it(deployed: Deployed) -> None:
    off = service_deploy(deployed.inventory, {"panzoto_service_liveness_timer_enabled": False})

    assert off.returncode == 0, off.output[-4000:]
    host = deployed.host.testinfra
    assert not host.file(f"/etc/systemd/system/{SERVICE}-liveness.timer").exists
    assert not host.file("/etc/panzoto-liveness").exists
    assert host.check_output(f"systemctl show --property=LoadState --value {SERVICE}-liveness.timer") == "not-found"
    assert not host.file(TEXTFILE).exists  # no stale "up" left for Prometheus
