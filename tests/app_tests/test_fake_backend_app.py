"""The fake backend as the deployed service: uvicorn, /api/health and the job processor,
run from its locked dependencies against the local AWS endpoint (moto on 127.0.0.1)."""

from __future__ import annotations

import base64
import os
import subprocess
import tomllib
from pathlib import Path

import local_aws
from packaging.requirements import Requirement
from support import backend_jobs

USER = "user-1"


def test_a_good_job_completes_with_a_transcript(backend_aws, start_backend):
    app = start_backend(backend_aws.endpoint_url)
    job_id = backend_jobs.submit_job(backend_aws.endpoint_url, USER, backend_jobs.make_3gp_clip(2.0))

    job = backend_jobs.wait_for_job(backend_aws.endpoint_url, job_id)

    assert job["status"] == "completed", job
    assert job["completed_at"].endswith("+00:00")
    assert "error_message" not in job
    [transcript] = backend_jobs.transcripts_for_job(backend_aws.endpoint_url, job_id)
    assert transcript["user_id"] == USER
    assert transcript["transcript"] == "fake transcript of 2.0 s"
    status, body = app.health()
    assert status == 200 and body["status"] == "healthy"
    assert body["processor"]["jobs_completed"] == 1
    assert body["processor"]["jobs_failed"] == 0
    assert f"job {job_id} user {USER} completed" in app.output()


def test_failures_carry_the_guides_messages(backend_aws, start_backend):
    endpoint = backend_aws.endpoint_url
    app = start_backend(endpoint)
    clip = backend_jobs.make_3gp_clip(2.0)
    wrong_key = backend_jobs.submit_job(endpoint, USER, clip, key=os.urandom(32))
    too_short = backend_jobs.submit_job(endpoint, USER, backend_jobs.make_3gp_clip(0.5))
    not_audio = backend_jobs.submit_job(endpoint, USER, b"this is not a 3gp file at all")

    expected = {
        wrong_key: "MAC check failed",
        too_short: "Transcription failed or too short",
        not_audio: "File does not start with RIFF id",
    }
    for job_id, message in expected.items():
        job = backend_jobs.wait_for_job(endpoint, job_id)
        assert (job["status"], job["error_message"]) == ("failed", message), job
        assert job["retry_count"] == 1
        assert job["last_attempt_at"].endswith("+00:00")
        assert "completed_at" not in job
        assert backend_jobs.transcripts_for_job(endpoint, job_id) == []
        assert f"job {job_id} user {USER} failed" in app.output()
    assert app.health()[1]["processor"]["jobs_failed"] == 3


def test_a_broken_ffmpeg_is_a_format_error_and_a_requeue_after_repair_completes(backend_aws, start_backend):
    endpoint = backend_aws.endpoint_url
    broken = start_backend(endpoint, PANZOTO_FFMPEG="/bin/false")
    job_id = backend_jobs.submit_job(endpoint, USER, backend_jobs.make_3gp_clip(2.0))

    failed = backend_jobs.wait_for_job(endpoint, job_id)
    assert failed["error_message"] == "File does not start with RIFF id"
    assert "ffmpeg exited 1" in broken.output()  # the reason stays in the journal, not in the job

    backend_jobs.stop_app(broken.process)
    start_backend(endpoint)  # "repaired": the default ffmpeg
    backend_jobs.requeue(endpoint, job_id)
    done = backend_jobs.wait_for_job(endpoint, job_id)

    assert done["status"] == "completed", done
    assert done["retry_count"] == 1
    assert "error_message" not in done


def test_a_missing_ffmpeg_is_a_format_error(backend_aws, start_backend):
    start_backend(backend_aws.endpoint_url, PANZOTO_FFMPEG="/nonexistent/ffmpeg")
    job_id = backend_jobs.submit_job(backend_aws.endpoint_url, USER, backend_jobs.make_3gp_clip(2.0))

    job = backend_jobs.wait_for_job(backend_aws.endpoint_url, job_id)

    assert (job["status"], job["error_message"]) == ("failed", "File does not start with RIFF id")


def test_two_processors_never_take_the_same_job(backend_aws, start_backend):
    endpoint = backend_aws.endpoint_url
    clip = backend_jobs.make_3gp_clip(1.5)
    # Queued before both start, so both see every job pending in their first scans.
    job_ids = [backend_jobs.submit_job(endpoint, USER, clip) for _ in range(6)]
    apps = [start_backend(endpoint, wait=False) for _ in range(2)]

    for job_id in job_ids:
        assert backend_jobs.wait_for_job(endpoint, job_id)["status"] == "completed"
    for job_id in job_ids:
        assert len(backend_jobs.transcripts_for_job(endpoint, job_id)) == 1
    completed = [app.wait_healthy()["processor"]["jobs_completed"] for app in apps]
    assert sum(completed) == len(job_ids)


def test_health_is_503_with_a_reason_once_the_endpoint_is_gone(local_aws_server, start_backend, tmp_path):
    # local_aws_server only for the fake credentials it exports; this test stops its own endpoint.
    own = local_aws.start_server(log_path=tmp_path / "own-moto.log", die_with_parent=True)  # ours to stop
    try:
        backend_jobs.create_backend_resources(own.endpoint_url)
        app = start_backend(own.endpoint_url)
        assert app.health()[0] == 200
    finally:
        local_aws.stop_server(own)

    body = backend_jobs.wait_for_health(app.port, 503, timeout=60)

    assert body["status"] == "unhealthy"
    assert body["reason"].startswith("last poll of the jobs table failed")
    assert body["processor"]["processor_alive"] is True
    assert app.process.poll() is None  # unhealthy, not dead: systemd keeps it, the health check reports it
    assert "polling the jobs table fails: Could not connect to the endpoint URL" in app.output()


def test_health_is_503_while_the_jobs_table_is_missing(aws, app_venv, openai_api_key, tmp_path):
    port = backend_jobs.free_port()
    env = backend_jobs.app_environment(aws.endpoint_url, openai_api_key)
    process = backend_jobs.start_app(app_venv, port, env, tmp_path / "app.log")
    try:
        body = backend_jobs.wait_for_health(port, 503, timeout=60, process=process)
    finally:
        backend_jobs.stop_app(process)

    assert "ResourceNotFoundException" in body["reason"]


def test_a_missing_openai_key_stops_startup_with_one_clear_line(aws, app_venv):
    env = backend_jobs.app_environment(aws.endpoint_url, "")
    command = [
        str(app_venv / "bin/python"),
        "-m",
        "uvicorn",
        backend_jobs.APP_MODULE,
        "--app-dir",
        str(backend_jobs.APP_DIR),
    ]

    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)

    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "panzoto fake backend: configuration error: missing required environment variable(s): OPENAI_API_KEY"
    ]


def test_secrets_never_reach_the_apps_output(backend_aws, start_backend, openai_api_key):
    endpoint = backend_aws.endpoint_url
    aws_secret = "h2a-aws-secret-access-key-never-logged"
    app = start_backend(endpoint, AWS_SECRET_ACCESS_KEY=aws_secret)
    user_key = backend_jobs.put_user_key(endpoint, "user-2")
    good = backend_jobs.submit_job(endpoint, "user-2", backend_jobs.make_3gp_clip(2.0))
    bad = backend_jobs.submit_job(endpoint, "user-2", b"garbage", key=os.urandom(32))
    backend_jobs.wait_for_job(endpoint, good)
    backend_jobs.wait_for_job(endpoint, bad)
    app.health()
    backend_jobs.stop_app(app.process)

    output = app.output()
    assert f"job {good} user user-2 completed" in output  # the log is there, and it is clean:
    for secret in (openai_api_key, aws_secret, base64.b64encode(user_key).decode(), user_key.hex()):
        assert secret not in output


def test_the_lock_pins_what_pyproject_asks_for():
    app_dir = Path(backend_jobs.APP_DIR)
    project = tomllib.loads((app_dir / "pyproject.toml").read_text())["project"]
    locked = {
        package["name"]: package["version"]
        for package in tomllib.loads((app_dir / "poetry.lock").read_text())["package"]
    }
    for dependency in project["dependencies"]:
        requirement = Requirement(dependency)
        assert requirement.specifier.contains(locked[requirement.name]), (requirement, locked.get(requirement.name))
