"""The hourly audit on the converged hosts: the timer is scheduled, the service runs the audit once per start
into the state directory and the journal, alerts once per breach and once on recovery, and runs never overlap."""

from __future__ import annotations

import json
import os
import shlex
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

STATE_DIR = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "."))
NAME = "panzoto-audit"
VARS_FILE = f"/etc/{NAME}/audit-vars.json"
REPORTS = f"/var/lib/{NAME}/reports"


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


def test_the_timer_is_enabled_and_scheduled_hourly(host) -> None:
    timer = host.service(f"{NAME}.timer")
    assert timer.is_enabled and timer.is_running
    assert host.file(f"/etc/systemd/system/{NAME}.timer").contains("^OnCalendar=hourly$")
    assert host.run(f"systemctl show {NAME}.timer -p NextElapseUSecRealtime --value").stdout.strip()


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
