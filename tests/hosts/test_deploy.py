"""playbooks/deploy.yml on real systemd hosts, checked like the ops guide's "Server Deployment Checklist".

The session's deployed Debian 13 host (tests/support/deployment.py: deployed once, then again unchanged with
`-v --diff` and its secret from ansible-vault) is what the checks below read. The rolling test adds a
Debian 12 host whose processor never starts and an untouched one behind it; a Debian 12 host refuses a
project that needs Python 3.12. The backend's AWS side is the session's moto server on 127.0.0.1; the
hosts share the machine's network.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import backend_jobs
from support.deployment import (
    FIRST_DEPLOY_TIMEOUT_S,
    OPENAI_SECRET_ID,
    SERVICE,
    Backend,
    Deployment,
    app_env,
    group_vars,
    service_state,
)
from support.hosts import HostPool, write_inventory
from support.local_http import fake_openai
from support.playbook import PlaybookRun, checklist_verdicts, run_playbook

# The current release (releases/<id>, through the `current` link) holds the code, the virtualenv and the settings.
CURRENT = "/opt/panzoto/current"
ENV_FILE = f"{CURRENT}/panzoto.env"
# What the hardened unit achieved here (systemd-analyze: 0 is locked down, 10 unprotected).
MAX_EXPOSURE = 1.5
STARTED_LINE = "Starting cost-safe audio processor"
# The fake backend's switches for its test variants (tests/fake-backend/README.md).
IMPORTS_DEV_GROUP = {"FAKE_BACKEND_IMPORT_DEV_GROUP": "1"}
BREAKS_PROCESSOR = {"FAKE_BACKEND_BREAK_PROCESSOR": "1"}

# The control node's Secrets Manager look-ups (inside ansible-playbook) sign with the fake credentials.
pytestmark = [pytest.mark.hosts, pytest.mark.usefixtures("fake_aws_credentials")]


def health(port: int) -> tuple[int, dict]:
    """Status and body of /api/health (host networking: the host's loopback is this machine's)."""
    return backend_jobs.health(port)


def journal(host: Any, *selectors: str) -> str:
    return host.testinfra.check_output(
        f"journalctl --no-pager --output cat {' '.join(selectors) or '--unit ' + SERVICE}"
    )


def current_run_journal(host: Any) -> str:
    invocation = host.testinfra.check_output(f"systemctl show --property=InvocationID --value {SERVICE}")
    return journal(host, f"_SYSTEMD_INVOCATION_ID={invocation}")


@pytest.fixture(scope="module")
def backend(deployment: Deployment) -> Backend:
    """The session's AWS endpoint with the backend's tables and the OpenAI key secret (the deployed host's)."""
    return deployment.backend


@pytest.fixture(scope="module")
def module_hosts(host_image_for: Callable[[str], str], reserved_ports: set[int]) -> Iterator[Callable[..., list[Any]]]:
    """Like the harness's `target_hosts`, but the hosts live as long as this module."""
    pool = HostPool(host_image_for, reserved_ports)
    yield pool.make
    pool.remove()


# The checklist, in the guide's order ------------------------------------------------------------
def test_the_first_deploy_applies_the_whole_checklist(deployment: Deployment) -> None:
    stats = deployment.first.stats[deployment.host.name]
    assert stats["failed"] == 0
    assert stats["changed"] > 0
    for role in ("ffmpeg :", "panzoto_app :", "panzoto_service :"):
        assert role in deployment.first.stdout


def test_ffmpeg_is_installed_and_converts_3gp_audio_to_wav(deployment: Deployment) -> None:
    host = deployment.host.testinfra
    assert host.package("ffmpeg").is_installed
    ffmpeg = "ffmpeg -nostdin -hide_banner -loglevel error -y"
    host.run_expect([0], f"{ffmpeg} -f lavfi -i sine=duration=1 -ac 1 -c:a aac -f 3gp /tmp/check.3gp")
    host.run_expect([0], f"{ffmpeg} -i /tmp/check.3gp /tmp/check.wav")
    assert host.file("/tmp/check.wav").content[:4] == b"RIFF"


def test_the_service_account_is_a_system_user_that_cannot_log_in(deployment: Deployment) -> None:
    user = deployment.host.testinfra.user("panzoto")
    assert user.exists
    assert 0 < user.uid < 1000
    assert user.shell == "/usr/sbin/nologin"


def test_root_owns_the_code_and_only_the_service_group_may_read_it(deployment: Deployment) -> None:
    host = deployment.host.testinfra
    home = host.file("/opt/panzoto")
    assert (home.user, home.group, home.mode) == ("root", "panzoto", 0o750)
    assert host.file(f"{CURRENT}/app/pyproject.toml").user == "root"
    # Byte-compiled at install (the service cannot write here, so it would compile at every start).
    assert host.file(f"{CURRENT}/app/fake_backend/__pycache__").user == "root"
    assert host.file(f"{CURRENT}/venv/bin/uvicorn").user == "root"


def test_the_virtualenv_is_built_with_debian_13s_python(deployment: Deployment) -> None:
    host = deployment.host.testinfra
    assert host.check_output(f"{CURRENT}/venv/bin/python --version").startswith("Python 3.13.")
    assert "version = 3.13." in host.file(f"{CURRENT}/venv/pyvenv.cfg").content_string


def test_a_first_deploy_starts_the_service_once(deployment: Deployment) -> None:
    """No start then restart: the unit's journal has one start and no stop before the second deploy."""
    systemd_lines = journal(deployment.host, "--unit", SERVICE, "_PID=1")
    assert systemd_lines.count("Started panzoto.service") == 1, systemd_lines
    assert "Stopping panzoto.service" not in systemd_lines


def test_the_python_dependencies_are_installed_from_the_lock_file(deployment: Deployment) -> None:
    host = deployment.host.testinfra
    assert "2.5.1" in host.check_output("/opt/poetry/bin/poetry --version")
    lock = (backend_jobs.APP_DIR / "poetry.lock").read_text()
    fastapi_pin = re.search(r'name = "fastapi"\nversion = "([^"]+)"', lock)[1]
    assert f"fastapi=={fastapi_pin}" in host.check_output(f"{CURRENT}/venv/bin/python -m pip freeze")


def test_the_unit_is_enabled_and_runs_uvicorn_as_the_service_account(deployment: Deployment) -> None:
    host = deployment.host.testinfra
    service = host.service(SERVICE)
    assert service.is_enabled
    assert service.is_running
    main_pid = deployment.after_second.main_pid
    assert host.check_output(f"ps -o user= -p {main_pid}") == "panzoto"
    assert backend_jobs.APP_MODULE in host.check_output(f"ps -o args= -p {main_pid}")


def test_the_app_port_is_listening(deployment: Deployment) -> None:
    assert deployment.host.testinfra.socket(f"tcp://127.0.0.1:{deployment.host.app_port}").is_listening


def test_the_health_endpoint_answers_healthy(deployment: Deployment) -> None:
    status, body = health(deployment.host.app_port)
    assert status == 200, body
    assert body["status"] == "healthy"


def test_the_processor_logged_its_start_line_in_the_current_run(deployment: Deployment) -> None:
    assert STARTED_LINE in current_run_journal(deployment.host)
    assert "panzoto_service : Wait for the processor's start line and a healthy answer." in deployment.first.stdout


def test_an_app_writing_logs_in_its_working_directory_runs_under_the_hardened_unit(deployment: Deployment) -> None:
    """The backend creates ./logs at import: under ProtectSystem=strict the working directory is the
    service's own state directory, and ./logs leads to its log directory."""
    host = deployment.host.testinfra
    main_pid = deployment.after_second.main_pid
    assert host.check_output(f"readlink /proc/{main_pid}/cwd") == "/var/lib/panzoto"
    assert host.file("/var/lib/panzoto/logs").linked_to == "/var/log/panzoto"
    for directory in ("/var/lib/panzoto", "/var/log/panzoto"):
        state = host.file(directory)
        assert (state.user, state.group, state.mode) == ("panzoto", "panzoto", 0o750)
    logfiles = host.check_output("ls /var/log/panzoto").split()
    assert logfiles and all(re.fullmatch(r"app_\d{8}_\d{6}\.log", name) for name in logfiles), logfiles
    newest = host.file(f"/var/log/panzoto/{max(logfiles)}")
    assert newest.user == "panzoto"
    # The processor logs through plain Python logging on stderr, as the real one does: its start line is in
    # the journal, never in the loguru file sink.
    service_journal = journal(deployment.host)
    assert STARTED_LINE in service_journal and STARTED_LINE not in newest.content_string
    assert "PermissionError" not in service_journal


def test_the_environment_file_is_private_and_holds_the_secret(deployment: Deployment, backend: Backend) -> None:
    env_file = deployment.host.testinfra.file(ENV_FILE)
    assert (env_file.user, env_file.group, env_file.mode) == ("panzoto", "panzoto", 0o600)
    assert f'OPENAI_API_KEY="{backend.openai_key}"' in env_file.content_string.splitlines(), "key not written"


def test_secrets_never_appear_in_the_journal_or_in_ansible_output(deployment: Deployment, backend: Backend) -> None:
    service_journal = journal(deployment.host)
    assert "Application startup complete" in service_journal
    places = {
        "journal": service_journal,
        "first run": deployment.first.output,
        "-v --diff run": deployment.second.output,
    }
    leaks = [place for place, text in places.items() if backend.openai_key in text]
    assert leaks == [], f"the OpenAI key appears in: {leaks}"


def test_a_second_deploy_changes_nothing_and_restarts_nothing(deployment: Deployment) -> None:
    stats = deployment.second.stats[deployment.host.name]
    assert (stats["changed"], stats["failed"]) == (0, 0), deployment.second.output[-4000:]
    assert deployment.after_second == deployment.before_second


def test_a_submitted_job_is_processed_to_completed(deployment: Deployment, backend: Backend) -> None:
    backend_jobs.put_user_key(backend.endpoint_url, "user-deploy")
    job_id = backend_jobs.submit_job(
        backend.endpoint_url, "user-deploy", backend_jobs.make_3gp_clip(2.0), duration_seconds=2.0
    )
    item = backend_jobs.wait_for_job(backend.endpoint_url, job_id, timeout=90)
    assert item["status"] == "completed", item.get("error_message")


def test_the_unit_is_sandboxed_within_the_exposure_budget(deployment: Deployment) -> None:
    report = deployment.host.testinfra.check_output(f"systemd-analyze security {SERVICE} --no-pager")
    exposure = float(re.search(rf"Overall exposure level for {SERVICE}\.service: (\d+\.\d+)", report)[1])
    print(f"systemd-analyze security {SERVICE}.service: overall exposure {exposure} (budget {MAX_EXPOSURE})")
    assert exposure <= MAX_EXPOSURE, report


# Bad input and rollouts ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("bad_settings", "error"),
    [
        ({"panzoto_app_secretsmanager_env": {"OPENAI_API_KEY": "panzoto/no-such-secret"}}, "panzoto/no-such-secret"),
        ({"panzoto_service_asgi_app": "not an app"}, "panzoto_service_asgi_app must be module:attribute"),
        ({"panzoto_app_local_src": "/nonexistent/backend"}, "is neither a directory nor an archive"),
        (
            {"panzoto_app_secret_env": {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}},
            "Required setting(s) unset or empty: SECRET_KEY.",
        ),
        ({"panzoto_app_python": "/usr/bin/python3.99"}, "panzoto_app_python /usr/bin/python3.99 does not run on"),
        ({"panzoto_app_poetry_without": ["main"]}, "leave no dependency group to install"),
        (
            {"panzoto_service_liveness_webhook_url": "https://alerts:hunter2@hooks.example.invalid/T0"},
            "panzoto_service_liveness_webhook_url must be an http:// or https:// URL with no whitespace and no",
        ),
    ],
    ids=[
        "missing-secret",
        "bad-asgi-app",
        "missing-source",
        "required-setting",
        "no-interpreter",
        "no-groups",
        "webhook-credentials",
    ],
)
def test_bad_settings_fail_with_one_clear_error_before_anything_changes(
    deployment: Deployment, bad_settings: dict[str, Any], error: str
) -> None:
    run = run_playbook("deploy.yml", inventory=deployment.inventory, extra_vars=bad_settings)
    assert run.returncode != 0
    assert "hunter2" not in run.output  # a refused secret is named, never shown
    assert error in run.output
    assert run.stats[deployment.host.name]["changed"] == 0
    assert service_state(deployment.host.testinfra) == deployment.after_second


def test_a_rolling_deploy_stops_at_a_debian_12_host_whose_processor_never_starts(
    deployment: Deployment,
    backend: Backend,
    module_hosts: Callable[..., list[Any]],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The API of the broken host answers healthy (the backend's health says so regardless); only the
    processor's missing start line tells, and the deploy fails with the journal's last lines."""
    broken, untouched = module_hosts(count=2, prefix="rolling", suite="bookworm")
    good = deployment.host
    inventory = write_inventory(
        tmp_path_factory.mktemp("rolling") / "hosts.yml",
        [good, broken, untouched],
        # Three hosts running the processor: allowed only on this promise (no job is submitted meanwhile).
        group_vars={**group_vars(backend), "panzoto_backend_claims_jobs": True},
        # (ffmpeg is not what breaks it: skipping its install keeps this test short.)
        host_vars={
            broken.name: {
                "ffmpeg_enabled": False,
                "panzoto_app_env": app_env(backend, **BREAKS_PROCESSOR),
                "panzoto_service_start_timeout": 20,
            }
        },
    )
    run = run_playbook("deploy.yml", inventory=inventory, timeout=FIRST_DEPLOY_TIMEOUT_S)

    assert run.returncode != 0
    assert run.stats[good.name]["failed"] == 0
    assert run.stats[broken.name]["failed"] == 1
    assert f"{SERVICE}.service is not proven running: Background processor started: no" in run.output
    assert f'"{STARTED_LINE}" not logged since its current start (waited 20 s)' in run.output
    assert "[ERROR] Audio processor failed: audio processor could not start" in run.output  # the journal's tail
    assert "Health endpoint healthy: no" not in run.output
    # Its first release: nothing to roll back to, so it stays, marked failed, and the line says so.
    assert "and stays current, marked failed: no earlier release proven healthy to roll back to" in " ".join(
        run.output.split()
    )
    assert health(broken.app_port)[0] == 200
    # Debian 12's Python 3.11 built it: the fake project allows it.
    assert broken.testinfra.check_output(f"{CURRENT}/venv/bin/python --version").startswith("Python 3.11.")
    # The rollout stopped: the host after the broken one was never touched ...
    assert untouched.name not in run.stats
    assert not untouched.testinfra.file(f"/etc/systemd/system/{SERVICE}.service").exists
    assert not untouched.testinfra.user("panzoto").exists
    # ... and the good host kept serving, without a restart.
    assert health(good.app_port)[0] == 200
    assert service_state(good.testinfra) == deployment.after_second


def test_debian_12_refuses_a_project_that_needs_python_3_12_before_changing_anything(
    backend: Backend, module_hosts: Callable[..., list[Any]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The real backend's `python = "^3.12"` on Debian 12 (3.11.2): one line naming both and the ways out;
    no account, no virtualenv, no unit, not even ffmpeg."""
    (host,) = module_hosts(prefix="py312", suite="bookworm")
    workdir = tmp_path_factory.mktemp("py312")
    project = workdir / "backend"
    shutil.copytree(backend_jobs.APP_DIR, project)
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + '\n[tool.poetry.dependencies]\npython = "^3.12"\n')
    inventory = write_inventory(
        workdir / "hosts.yml", [host], group_vars={**group_vars(backend), "panzoto_app_local_src": str(project)}
    )

    run = run_playbook("deploy.yml", inventory=inventory)

    assert run.returncode != 0
    assert (
        "The project's Python constraint ^3.12 (tool.poetry.dependencies.python in pyproject.toml) does not allow"
        f" /usr/bin/python3 3.11.2 on {host.name}: deploy to a distribution whose Python it allows (Debian 13"
        " ships 3.13), or install an allowed interpreter there and set panzoto_app_python to it."
    ) in " ".join(run.output.split())
    assert run.stats[host.name]["changed"] == 0
    for path in ("/opt/panzoto", "/opt/poetry", f"/etc/systemd/system/{SERVICE}.service"):
        assert not host.testinfra.file(path).exists, path
    assert not host.testinfra.user("panzoto").exists
    assert not host.testinfra.package("ffmpeg").is_installed


def test_a_change_an_interrupted_run_never_restarted_for_is_applied_next_time(deployment: Deployment) -> None:
    """A run that stops after writing the environment file but before its handler ran leaves the service
    older than its settings; the next run notices (file newer than the service's start) and restarts it."""
    host = deployment.host
    before = service_state(host.testinfra)
    host.exec("touch", ENV_FILE)
    run = run_playbook("deploy.yml", inventory=deployment.inventory)
    assert run.returncode == 0, run.output[-4000:]
    assert "started before its code, dependencies, environment or unit last changed" in run.output
    after = service_state(host.testinfra)
    assert after.main_pid != before.main_pid
    assert health(host.app_port)[0] == 200


def test_a_backend_importing_a_dev_group_package_needs_that_group_and_a_slow_stop_is_killed_and_reported(
    deployment: Deployment, backend: Backend
) -> None:
    """Like the real backend's `from mypy_boto3_s3 import S3Client` with mypy-boto3-s3 in its dev group:
    main only fails with the import error in the journal's tail; `panzoto_app_poetry_with: [dev]` deploys it;
    going back re-syncs the virtualenv exactly. The last restart meets a service that takes long to stop."""
    host = deployment.host
    frozen = f"{CURRENT}/venv/bin/python -m pip freeze"

    main_only = run_playbook(
        "deploy.yml",
        inventory=deployment.inventory,
        extra_vars={"panzoto_app_env": app_env(backend, **IMPORTS_DEV_GROUP), "panzoto_service_start_timeout": 20},
    )
    assert main_only.returncode != 0
    assert "ModuleNotFoundError: No module named 'mypy_boto3_s3'" in main_only.output
    # That release was rolled back by itself: the host runs the release it had before.
    assert "healthy again; the failed release is kept in /opt/panzoto/releases/" in " ".join(main_only.output.split())
    assert "mypy-boto3-s3==" not in host.testinfra.check_output(frozen)
    assert STARTED_LINE in current_run_journal(host)

    with_dev = run_playbook(
        "deploy.yml",
        inventory=deployment.inventory,
        extra_vars={
            "panzoto_app_env": app_env(backend, **IMPORTS_DEV_GROUP, FAKE_BACKEND_STOP_DELAY_SECONDS="120"),
            "panzoto_app_poetry_with": ["dev"],
            "panzoto_service_stop_timeout": 3,
        },
    )
    assert with_dev.returncode == 0, with_dev.output[-6000:]
    assert "mypy-boto3-s3==" in host.testinfra.check_output(frozen)
    assert STARTED_LINE in current_run_journal(host)

    back = run_playbook("deploy.yml", inventory=deployment.inventory, extra_vars={"panzoto_service_stop_timeout": 3})
    assert back.returncode == 0, back.output[-6000:]
    assert "mypy-boto3-s3==" not in host.testinfra.check_output(frozen)
    assert (
        f"{SERVICE}.service did not stop within 3 s (panzoto_service_stop_timeout, TimeoutStopSec=) and was killed"
        in " ".join(back.output.split())
    )
    assert "Failed with result 'timeout'" in journal(host, "--unit", SERVICE, "_PID=1")
    assert STARTED_LINE in current_run_journal(host)


# The pre-deploy checklist (playbooks/preflight.yml) against the deployed host ----------------------
def preflight(deployment: Deployment, backend: Backend, api_base: str) -> PlaybookRun:
    return run_playbook(
        "preflight.yml",
        inventory=deployment.inventory,
        check=True,
        env={"AWS_ENDPOINT_URL": backend.endpoint_url},
        extra_vars={
            "preflight_openai_api_base": api_base,
            # The key the app reads, from the same secret (preflight never reads the app role's settings).
            "preflight_openai_secret_id": OPENAI_SECRET_ID,
            # The fake backend's tables; its users are whoever has an encryption key.
            "preflight_dynamodb_tables": [
                {
                    "name": backend_jobs.JOBS_TABLE,
                    "key": "job_id",
                    "indexes": ["user-jobs-index", "user-jobs-by-created-at"],
                },
                {"name": backend_jobs.TRANSCRIPTS_TABLE, "key": "transcript_id"},
            ],
            "preflight_users_table": "",
            "preflight_bucket": backend_jobs.BUCKET,
        },
    )


def test_preflight_passes_every_item_on_the_deployed_host_and_changes_nothing(
    deployment: Deployment, backend: Backend
) -> None:
    backend_jobs.put_user_key(backend.endpoint_url, "preflight-user")
    before = service_state(deployment.host.testinfra)
    with fake_openai(backend.openai_key) as api_base:
        run = preflight(deployment, backend, api_base)

    assert run.returncode == 0, run.output[-4000:]
    host = deployment.host.name
    items = checklist_verdicts(run.stdout)
    for item in ("ffmpeg installed and converting", "Python dependencies installed", "Environment file private",
                 "Background processor started", "Health endpoint healthy"):  # fmt: skip
        assert items[f"{host}: {item}"] == "PASS"
    assert items["OpenAI API key"] == "PASS"
    assert run.stats[host]["changed"] == 0 and run.stats["localhost"]["changed"] == 0
    assert service_state(deployment.host.testinfra) == before
    assert backend.openai_key not in run.output


def test_preflight_fails_on_a_stopped_processor(deployment: Deployment, backend: Backend) -> None:
    host = deployment.host
    host.exec("systemctl", "stop", SERVICE)
    try:
        with fake_openai(backend.openai_key) as api_base:
            run = preflight(deployment, backend, api_base)
    finally:
        host.exec("systemctl", "start", SERVICE)

    assert run.returncode != 0
    items = checklist_verdicts(run.stdout)
    assert items[f"{host.name}: Background processor started"] == "FAIL"
    assert items[f"{host.name}: Health endpoint healthy"] == "FAIL"
    assert items[f"{host.name}: ffmpeg installed and converting"] == "PASS"
    assert (
        f"Deployment checklist failed: {host.name}: Background processor started; {host.name}: Health endpoint healthy"
        in (run.output)
    )


# The repair story, end to end, on the deployed host (last: it breaks and repairs the host). Today's backend
# writes `ffmpeg is not installed` (category ffmpeg_missing) where the guide's wrote FORMAT_ERROR. ---
def test_repair_story_a_job_failing_without_ffmpeg_completes_after_repair_ffmpeg(
    deployment: Deployment, backend: Backend, tmp_path: Path
) -> None:
    host = deployment.host
    backend_jobs.put_user_key(backend.endpoint_url, "user-repair")
    host.exec("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "purge", "-y", "-qq", "ffmpeg")

    job_id = backend_jobs.submit_job(
        backend.endpoint_url, "user-repair", backend_jobs.make_3gp_clip(2.0), duration_seconds=2.0
    )
    failed = backend_jobs.wait_for_job(backend.endpoint_url, job_id, timeout=90)
    assert failed["status"] == "failed"
    assert failed["error_message"] == (
        "Processing error: ffmpeg is not installed. Please install ffmpeg: apt-get install ffmpeg"
    )

    pid_before_repair = service_state(host.testinfra).main_pid
    repaired = run_playbook("repair_ffmpeg.yml", inventory=deployment.inventory, limit=host.name)
    assert repaired.returncode == 0, repaired.output[-6000:]
    assert host.testinfra.package("ffmpeg").is_installed
    assert service_state(host.testinfra).main_pid != pid_before_repair, "the service was not restarted"
    assert health(host.app_port)[0] == 200

    # Retry the failed ffmpeg_missing jobs the way an operator would: the cleanup playbook's requeue.
    requeued = run_playbook(
        "cleanup_jobs.yml",
        extra_vars={
            "cleanup_jobs_state": "requeued",
            "cleanup_jobs_categories": ["ffmpeg_missing"],
            "cleanup_jobs_table": backend_jobs.JOBS_TABLE,
            "cleanup_jobs_reason": "ffmpeg repaired",
            "cleanup_jobs_archive_path": str(tmp_path / "archive.jsonl"),
            "cleanup_jobs_report_path": str(tmp_path / "cleanup.json"),
        },
        env={"AWS_ENDPOINT_URL": backend.endpoint_url},
    )
    assert requeued.returncode == 0, requeued.output[-4000:]
    retried = backend_jobs.wait_for_job(backend.endpoint_url, job_id, timeout=90)
    assert retried["status"] == "completed", retried.get("error_message")
    assert backend_jobs.transcripts_for_job(backend.endpoint_url, job_id)
