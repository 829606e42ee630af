"""The hourly audit on the converged hosts: the timer is scheduled, the service runs the audit once per start
into the state directory and the journal, alerts once per breach and once on recovery, and runs never overlap;
it runs on a venv of exactly the project's pins, which a later converge brings back to them."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest
import testinfra

STATE_DIR = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "."))
SCENARIO_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = SCENARIO_DIR.parents[3]
NAME = "panzoto-audit"
VARS_FILE = f"/etc/{NAME}/audit-vars.json"
REPORTS = f"/var/lib/{NAME}/reports"
VENV = "/opt/panzoto-ops/venv"
# The platforms of .config/molecule/config.yml.
RUN_ID = os.environ.get("PANZOTO_TEST_RUN_ID", "manual")
HOSTS = [f"panzoto-ops-molecule-{RUN_ID}-{suite}" for suite in ("bookworm", "trixie")]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins() -> dict[str, str]:
    """The project's requirements/runtime.txt, {name: version}: what the venv must hold."""
    text = (REPO_ROOT / "requirements" / "runtime.txt").read_text()
    lines = (line.partition("#")[0].strip() for line in text.splitlines())
    return {canonical(name): version for name, _, version in (line.partition("==") for line in lines if line)}


def venv_packages(host) -> dict[str, str]:
    freeze = host.run(f"{VENV}/bin/python -m pip --disable-pip-version-check freeze")
    assert freeze.rc == 0, freeze.stderr
    return {canonical(name): version for name, _, version in (line.partition("==") for line in freeze.stdout.split())}


# What an audit run leaves in the state directory (module_utils/panzoto/audit: history, alert state, reports).
AUDIT_STATE = (f"/var/lib/{NAME}/job-audit-history.jsonl", f"/var/lib/{NAME}/job-audit-alert-state.json", REPORTS)


def show(host, unit: str, *properties: str) -> dict[str, str]:
    listing = host.run(f"systemctl show {unit} " + " ".join(f"-p {name}" for name in properties)).stdout
    return dict(line.split("=", 1) for line in listing.splitlines() if "=" in line)


@pytest.fixture(scope="module", autouse=True)
def converged_timers() -> Iterator[dict[str, dict[str, str]]]:
    """Each host's audit timer as the converge left it; then no scheduled run until the tests end.

    The timer is hourly: when verify crosses the hour, it starts the audit in the middle of a test that counts
    runs, history lines and alerts (it did). So the timer is read first (its next elapse is empty for the moment
    it fires: read again), then stopped, a run it started is let finish, and what runs leave is removed: the
    tests start from a converged host that never ran the audit, and the timers run again afterwards. (The converge
    test's converge starts them again: what follows it reads its own last audit run and the retention only.)"""
    hosts = {name: testinfra.get_host(f"podman://{name}") for name in HOSTS}
    timer, service = f"{NAME}.timer", f"{NAME}.service"
    next_elapse = f"systemctl show {timer} -p NextElapseUSecRealtime --value"
    active_state = f"systemctl show {service} -p ActiveState --value"
    states = {}
    for name, host in hosts.items():
        assert host.run(f"timeout 10 sh -c 'until [ -n \"$({next_elapse})\" ]; do sleep 0.2; done'").rc == 0, name
        states[name] = show(host, timer, "ActiveState", "UnitFileState", "NextElapseUSecRealtime")
        host.run(f"systemctl stop {timer}")
        waited = host.run(f"timeout 600 sh -c 'while {active_state} | grep -qx activating; do sleep 1; done'")
        assert waited.rc == 0, f"a scheduled audit run on {name} did not end"
        host.run("rm -rf " + " ".join(AUDIT_STATE))
    yield states
    for host in hosts.values():
        host.run(f"systemctl start {NAME}.timer")


@pytest.fixture(scope="module")
def webhook() -> Iterator[list[tuple[str, dict]]]:
    """The webhook receiver on the port prepare reserved; records (path, body) of every post."""
    received: list[tuple[str, dict]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            received.append((self.path, body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", int((STATE_DIR / "webhook_port").read_text())), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield received
    server.shutdown()
    server.server_close()


def run_audit(host) -> None:
    """One run of the oneshot service; `systemctl start` returns when it has finished."""
    result = host.run(f"systemctl start {NAME}.service")
    assert result.rc == 0, result.stderr + host.run(f"journalctl -u {NAME}.service --no-pager -n 60").stdout


def posts_for(host, webhook: list[tuple[str, dict]]) -> list[str]:
    name = host.backend.get_hostname()
    return [body["text"] for path, body in webhook if path.startswith(f"/{name}/")]


def test_the_timer_is_enabled_and_scheduled_hourly(host, converged_timers) -> None:
    timer = converged_timers[host.backend.get_hostname()]
    assert (timer["UnitFileState"], timer["ActiveState"]) == ("enabled", "active")
    assert host.file(f"/etc/systemd/system/{NAME}.timer").contains("^OnCalendar=hourly$")
    assert timer["NextElapseUSecRealtime"]


def test_the_venv_holds_exactly_the_pins_on_the_hosts_python(host) -> None:
    assert venv_packages(host) == pins()
    version = host.run(f"{VENV}/bin/ansible-playbook --version").stdout.splitlines()[0]
    assert version == f"ansible-playbook [core {pins()['ansible-core']}]"
    version_of = "-c 'import sys; print(sys.version)'"
    assert host.run(f"{VENV}/bin/python {version_of}").stdout == host.run(f"python3 {version_of}").stdout
    # Nothing of Debian's runs the audit, and the wheels the control node sent are gone.
    assert not host.package("ansible-core").is_installed and not host.package("python3-boto3").is_installed
    assert not host.file("/opt/panzoto-ops/wheels").exists
    venv = host.file(VENV)
    assert (venv.user, venv.group, venv.mode) == ("root", "root", 0o755)
    imports = "import ansible.release, boto3, cryptography, yaml"
    as_service = host.run(f"runuser -u {NAME} -- {VENV}/bin/python -c {shlex.quote(imports)}")
    assert as_service.rc == 0, as_service.stderr


def test_the_service_runs_the_venvs_ansible_playbook(host) -> None:
    exec_start = host.run(f"systemctl show {NAME}.service -p ExecStart --value").stdout
    assert f" {VENV}/bin/ansible-playbook /opt/panzoto-ops/playbooks/audit_jobs.yml " in exec_start, exec_start


def test_secrets_are_in_files_only_root_and_the_service_read(host) -> None:
    for path, owner in ((f"/etc/{NAME}/audit.env", "root"), (VARS_FILE, "panzoto-audit")):
        secret = host.file(path)
        assert (secret.user, secret.mode) == (owner, 0o600)
    directory = host.file(f"/etc/{NAME}")
    assert (directory.user, directory.group, directory.mode) == ("root", "panzoto-audit", 0o750)
    unit = host.file(f"/etc/systemd/system/{NAME}.service").content_string
    assert "planted-webhook-token" not in unit and "AWS_SECRET_ACCESS_KEY" not in unit


def test_three_runs_alert_once_then_recover(host, webhook) -> None:
    run_audit(host)  # the breach starts: 49 failed > 20
    report = json.loads(host.file(f"{REPORTS}/job-audit.json").content_string)
    assert report["status"] == "breached" and report["by_status"]["failed"] == 49
    for name in ("job-audit.html", "job-audit.md", "job-audit-junit.xml", "job-audit.prom", "job-audit.txt"):
        assert host.file(f"{REPORTS}/{name}").exists, name
    assert host.file(f"{REPORTS}/job-audit.json").user == "panzoto-audit"
    journal = host.run(f"journalctl -u {NAME}.service --no-pager -o cat").stdout
    assert "Job audit of panzoto-processing-jobs" in journal and "[THRESHOLDS] BREACHED: failed: 49 > 20" in journal
    assert len(posts_for(host, webhook)) == 1

    run_audit(host)  # the breach lasts, unchanged: no repeat
    assert len(posts_for(host, webhook)) == 1

    settings = json.loads(host.file(VARS_FILE).content_string)
    settings["audit_thresholds"] = {"failed": 100}
    host.run(f"printf '%s' {shlex.quote(json.dumps(settings))} > {VARS_FILE}")
    run_audit(host)  # the breach ends
    posts = posts_for(host, webhook)
    assert len(posts) == 2 and "thresholds breached" in posts[0] and "recovered" in posts[1]
    history = host.file(f"/var/lib/{NAME}/job-audit-history.jsonl").content_string.splitlines()
    assert [json.loads(line)["status"] for line in history] == ["breached", "breached", "ok"]
    assert "planted-webhook-token" not in host.run(f"journalctl -u {NAME}.service --no-pager").stdout


def test_a_run_never_overlaps_another(host) -> None:
    history = f"/var/lib/{NAME}/job-audit-history.jsonl"
    before = host.file(history).content_string if host.file(history).exists else ""
    # Another run holds the lock (as a run started by hand would).
    host.run("rm -f /run/audit-lock-held")
    hold = "sh -c 'touch /run/audit-lock-held; sleep 120'"
    host.run(f"systemd-run --unit={NAME}-holder flock /var/lib/{NAME}/audit.lock {hold}")
    try:
        assert host.run("timeout 60 sh -c 'until [ -e /run/audit-lock-held ]; do sleep 0.2; done'").rc == 0
        run_audit(host)
        status = host.run(f"systemctl show {NAME}.service -p ExecMainStatus --value").stdout.strip()
        assert status == "75"
        after = host.file(history).content_string if host.file(history).exists else ""
        assert after == before
    finally:
        host.run(f"systemctl stop {NAME}-holder")


def test_a_converge_brings_a_changed_venv_back_to_the_pins(webhook) -> None:
    """Debian 12's venv looks built by another Python (as after an upgrade): it is built anew. Debian 13's lacks a
    pin and has a package no pin names (as when the pins change): the pin is installed, the stray removed."""
    bookworm, trixie = (testinfra.get_host(f"podman://{name}") for name in HOSTS)
    bookworm.run(f"sed -i 's/^version *=.*/version = 3.9.0/' {VENV}/pyvenv.cfg && touch {VENV}/built-before")
    trixie.run(f"{VENV}/bin/python -m pip uninstall --yes six && touch {VENV}/built-before")
    # The smallest installed distribution pip can list and uninstall: its metadata and the record of its files.
    site = trixie.run(f"{VENV}/bin/python -c 'import sysconfig; print(sysconfig.get_path(\"purelib\"))'").stdout.strip()
    stray = "panzoto_stray-1.0.dist-info"
    metadata = "Metadata-Version: 2.1\nName: panzoto-stray\nVersion: 1.0\n"
    record = f"{stray}/METADATA,,\n{stray}/RECORD,,\n"
    trixie.run(f"mkdir {site}/{stray}")
    for name, content in (("METADATA", metadata), ("RECORD", record)):
        trixie.run(f"printf %s {shlex.quote(content)} > {site}/{stray}/{name}")
    assert "panzoto-stray" in venv_packages(trixie) and "six" not in venv_packages(trixie)

    inventory = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
    converge = subprocess.run(
        ["ansible-playbook", "--inventory", str(inventory), str(SCENARIO_DIR / "converge.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert converge.returncode == 0, converge.stdout[-6000:]

    assert not bookworm.file(f"{VENV}/built-before").exists
    assert trixie.file(f"{VENV}/built-before").exists
    for host in (bookworm, trixie):
        assert venv_packages(host) == pins()
        run_audit(host)  # the venv runs the audit; the settings are the converge's again (a breach at 49 > 20)
        history = host.file(f"/var/lib/{NAME}/job-audit-history.jsonl").content_string.splitlines()
        assert json.loads(history[-1])["status"] == "breached"


# --------------------------------------------------------------------------- retention

RETENTION = f"{NAME}-retention"
# Days old: completed jobs are kept 30 days, failed ones 7 (the role's defaults).
RETENTION_JOBS = {"completed-40d": ("completed", 40), "completed-2d": ("completed", 2), "failed-10d": ("failed", 10),
                  "failed-2d": ("failed", 2), "pending-40d": ("pending", 40)}  # fmt: skip
RETENTION_DUE = {"completed-40d", "failed-10d"}


def dynamodb():
    port = json.loads((STATE_DIR / "local-aws" / "server.json").read_text())["port"]
    return boto3.client("dynamodb", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip


def retention_job_ids(table: str) -> set[str]:
    pages = dynamodb().get_paginator("scan").paginate(TableName=table, ConsistentRead=True)
    return {item["job_id"]["S"] for page in pages for item in page["Items"]}


def test_the_retention_timer_is_scheduled_next_to_the_audit(host):
    assert host.service(f"{RETENTION}.timer").is_enabled
    assert host.service(f"{RETENTION}.timer").is_running
    unit = host.file(f"/etc/systemd/system/{RETENTION}.service").content_string
    assert "flock --nonblock" in unit and "retention.lock" in unit and "playbooks/retention_jobs.yml" in unit
    assert f"StateDirectory={NAME}" in unit and "User=panzoto-audit" in unit
    assert host.file(f"/etc/{NAME}/retention-vars.json").mode == 0o600
    assert host.file("/opt/panzoto-ops/library/processing_jobs_cleanup.py").exists
    assert host.file("/opt/panzoto-ops/roles/job_cleanup/meta/argument_specs.yml").exists


def test_two_retention_runs_delete_what_is_due_once(host):
    table = f"retention-{host.backend.get_hostname()}"
    client = dynamodb()
    client.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                        AttributeDefinitions=[{"AttributeName": "job_id", "AttributeType": "S"}],
                        KeySchema=[{"AttributeName": "job_id", "KeyType": "HASH"}])  # fmt: skip
    now = datetime.now(UTC).replace(tzinfo=None)
    for job_id, (status, days) in RETENTION_JOBS.items():
        item = {"job_id": {"S": job_id}, "user_id": {"S": "user-1"}, "job_type": {"S": "transcription"},
                "status": {"S": status}, "created_at": {"S": (now - timedelta(days=days)).isoformat()},
                "retry_count": {"N": "0"}}  # fmt: skip
        if status == "failed":
            item["error_message"] = {"S": "Job expired - too old"}
        client.put_item(TableName=table, Item=item)

    report_path = f"/var/lib/{NAME}/reports/retention-{table}.json"
    changed = []
    for _ in range(2):
        result = host.run(f"systemctl start {RETENTION}.service")
        assert result.rc == 0, result.stderr + host.run(f"journalctl -u {RETENTION}.service --no-pager -n 60").stdout
        report = json.loads(host.run(f"cat {report_path}").stdout)
        changed.append({status: counts["changed"] for status, counts in report["counts"].items()})
    assert changed == [{"completed": 1, "failed": 1}, {"completed": 0, "failed": 0}]
    assert retention_job_ids(table) == set(RETENTION_JOBS) - RETENTION_DUE
    archive = host.file(f"/var/lib/{NAME}/archives/{table}.jsonl")
    assert archive.mode == 0o600 and archive.user == "panzoto-audit"
    assert "create_missing_transcription_jobs.py" in host.run(f"journalctl -u {RETENTION}.service --no-pager").stdout
