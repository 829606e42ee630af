"""The checklist item "background processor started successfully" on the converged host: the hardened
unit is enabled and runs uvicorn as the service account, listens, answers healthy, and keeps secrets out
of its journal."""

from __future__ import annotations

import json
import re
import urllib.request

# What this unit achieved here; systemd-analyze rates 0 (locked down) to 10 (unprotected).
MAX_EXPOSURE = 1.5


def test_the_unit_is_enabled_and_running(host) -> None:
    service = host.service("panzoto")
    assert service.is_enabled
    assert service.is_running


def test_uvicorn_runs_as_the_service_account_not_root(host) -> None:
    main_pid = host.check_output("systemctl show --property=MainPID --value panzoto")
    assert host.check_output(f"ps -o user= -p {main_pid}") == "panzoto"
    assert "uvicorn fake_backend.main:app" in host.check_output(f"ps -o args= -p {main_pid}")


def test_the_app_port_is_listening(host, app_port: int) -> None:
    assert host.socket(f"tcp://127.0.0.1:{app_port}").is_listening


def test_the_health_endpoint_answers_healthy(app_port: int) -> None:
    # Host networking: the container's loopback is this machine's.
    with urllib.request.urlopen(f"http://127.0.0.1:{app_port}/api/health", timeout=10) as answer:
        assert answer.status == 200
        assert json.load(answer)["status"] == "healthy"


def test_the_secret_is_in_the_environment_file_but_not_in_the_journal(host, openai_key: str) -> None:
    env_file = host.file("/opt/panzoto/current/panzoto.env")
    assert (env_file.user, env_file.mode) == ("panzoto", 0o600)
    assert openai_key in env_file.content_string, "OPENAI_API_KEY from Secrets Manager is missing"
    journal = host.check_output("journalctl --unit panzoto --no-pager --output cat")
    assert "Application startup complete" in journal
    assert openai_key not in journal, "the OpenAI key appears in the service's journal"


def test_the_processor_logged_its_start_line_in_the_current_run(host) -> None:
    invocation = host.check_output("systemctl show --property=InvocationID --value panzoto")
    journal = host.check_output(f"journalctl _SYSTEMD_INVOCATION_ID={invocation} --no-pager --output cat")
    assert "Starting cost-safe audio processor" in journal


def test_the_app_writes_its_logs_relative_to_its_working_directory_into_var_log(host) -> None:
    """The backend creates ./logs at import: the working directory is the service's own state directory."""
    main_pid = host.check_output("systemctl show --property=MainPID --value panzoto")
    assert host.check_output(f"readlink /proc/{main_pid}/cwd") == "/var/lib/panzoto"
    assert host.file("/var/lib/panzoto/logs").linked_to == "/var/log/panzoto"
    logs = host.file("/var/log/panzoto")
    assert (logs.user, logs.mode) == ("panzoto", 0o750)
    assert host.check_output("ls /var/log/panzoto").startswith("app_")
    assert "PermissionError" not in host.check_output("journalctl --unit panzoto --no-pager --output cat")


def test_the_unit_is_sandboxed(host) -> None:
    report = host.check_output("systemd-analyze security panzoto --no-pager")
    exposure = float(re.search(r"Overall exposure level for panzoto\.service: (\d+\.\d+)", report)[1])
    print(f"systemd-analyze security panzoto.service: exposure {exposure}")
    assert exposure <= MAX_EXPOSURE
