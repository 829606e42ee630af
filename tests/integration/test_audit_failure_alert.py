"""The audit_schedule unit's OnFailure= alert: the unit files as the role renders them (through
ansible-playbook) and the alert script run as systemd runs it, against a local webhook."""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.local_http import capturing_webhook
from support.playbook import REPO_ROOT, run_playbook

ROLE = REPO_ROOT / "roles" / "audit_schedule"
SCRIPT = ROLE / "files" / "audit_failed_alert.py"


def unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read_string(path.read_text().replace("\\\n", " "))
    return parser


def test_the_service_names_a_failure_unit_that_runs_the_alert(tmp_path: Path) -> None:
    playbook = tmp_path / "render.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  vars_files: [" + str(ROLE / "defaults" / "main.yml") + "]\n"
        "  vars: {ansible_managed: managed}\n  tasks:\n"
        + "".join(
            f"    - ansible.builtin.template: {{src: {ROLE}/templates/{src}, dest: {tmp_path}/{dest}, mode: '0644'}}\n"
            for src, dest in (("audit.service.j2", "audit.service"), ("audit-failed.service.j2", "failed.service"))
        )
    )

    run = run_playbook(str(playbook))

    assert run.returncode == 0, run.output
    service, failed = unit(tmp_path / "audit.service"), unit(tmp_path / "failed.service")
    assert service["Unit"]["OnFailure"] == "panzoto-audit-failed.service"
    command = failed["Service"]["ExecStart"].split()
    assert command[:2] == ["/usr/bin/python3", "/opt/panzoto-ops/audit_failed_alert.py"]
    assert command[2:] == ["--vars", "/etc/panzoto-audit/audit-vars.json", "--unit", "panzoto-audit.service"]
    assert failed["Service"]["User"] == "panzoto-audit"


def alert(tmp_path: Path, audit_vars: dict, exit_status: str, **env: str) -> subprocess.CompletedProcess:
    variables = tmp_path / "audit-vars.json"
    variables.write_text(json.dumps(audit_vars))
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--vars", str(variables), "--unit", "panzoto-audit.service"],
        env={
            **os.environ,
            "MONITOR_SERVICE_RESULT": "exit-code",
            "MONITOR_EXIT_STATUS": exit_status,
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_failed_run_alerts_through_the_audits_webhook_without_printing_it(tmp_path: Path) -> None:
    with capturing_webhook() as (url, posts):
        run = alert(tmp_path, {"audit_alert_webhook_url": url}, exit_status="2")

    assert run.returncode == 0, run.stderr
    assert len(posts) == 1
    assert "panzoto-audit.service failed on" in posts[0]["text"] and "exit status 2" in posts[0]["text"]
    assert url not in run.stdout + run.stderr


@pytest.mark.parametrize("where", ["vars", "environment"])
def test_the_webhook_comes_from_the_audit_vars_or_its_environment(tmp_path: Path, where: str) -> None:
    with capturing_webhook() as (url, posts):
        if where == "vars":
            run = alert(tmp_path, {"audit_alert_webhook_url": url}, exit_status="1")
        else:
            run = alert(tmp_path, {}, exit_status="1", PANZOTO_AUDIT_WEBHOOK_URL=url)

    assert run.returncode == 0, run.stderr
    assert len(posts) == 1


def test_an_audit_that_could_not_run_already_alerted_so_nothing_is_sent_twice(tmp_path: Path) -> None:
    with capturing_webhook() as (url, posts):
        run = alert(tmp_path, {"audit_alert_webhook_url": url}, exit_status="4")

    assert run.returncode == 0 and posts == [], run.stderr
    assert "alerted that itself" in run.stdout


def test_an_undeliverable_alert_fails_the_alert_unit_in_one_line(tmp_path: Path) -> None:
    run = alert(tmp_path, {"audit_alert_webhook_url": "http://127.0.0.1:9/hook/secret-token"}, exit_status="1")

    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == ["webhook alert not sent: URLError"]


def test_a_webhook_url_with_credentials_is_refused_in_one_line_without_them(tmp_path: Path) -> None:
    """urllib would send user:password@ to the name resolver as part of the host name: nothing is posted."""
    with capturing_webhook() as (url, posts):
        with_credentials = url.replace("http://", "http://alerts:hunter2@", 1)
        run = alert(tmp_path, {"audit_alert_webhook_url": with_credentials}, exit_status="1")

    assert run.returncode == 1 and posts == []
    assert run.stderr.strip().splitlines() == [
        "webhook alert not sent: the URL holds credentials (user:password@); webhooks take their token in the path"
    ]
    assert "hunter2" not in run.stdout + run.stderr
