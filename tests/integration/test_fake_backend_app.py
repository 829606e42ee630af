"""The fake backend (tests/fake-backend) as the deployed service: uvicorn, /api/health and the job
processor, run from its locked dependencies against the local AWS endpoint (moto on 127.0.0.1)."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import local_aws
import pytest
from packaging.requirements import Requirement
from support import backend_jobs

USER = "user-1"
PROCESSOR_LOGGER = "decision_data.backend.services.audio_processor"
HEARTBEAT = "[INFO] Checked for jobs, found %d eligible jobs"
# Distinctive, so a test can prove it never reaches the app's output.
OPENAI_API_KEY = "sk-h2a-fake-openai-key-never-logged-7c1f"


@dataclass
class RunningApp:
    process: subprocess.Popen
    port: int
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def health(self) -> tuple[int, dict]:
        return backend_jobs.health(self.port)

    def wait_healthy(self) -> dict:
        try:
            return backend_jobs.wait_for_health(self.port, 200, timeout=60, process=self.process)
        except (RuntimeError, TimeoutError) as error:
            raise AssertionError(f"{error}\n--- app output ---\n{self.output()}") from None

    def wait_for_output(self, text: str, timeout: float = 60, count: int = 1) -> None:
        deadline = time.monotonic() + timeout
        while self.output().count(text) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not in the app's output:\n{self.output()}")
            time.sleep(0.2)


@pytest.fixture(scope="session")
def app_venv(repo_root: Path) -> Path:
    """The app's locked dependencies, installed once per lock under .cache/ (not into .venv)."""
    return backend_jobs.ensure_app_venv(repo_root / ".cache")


@pytest.fixture
def start_backend(app_venv: Path, tmp_path: Path) -> Iterator[Callable[..., RunningApp]]:
    """Start the app against an endpoint; by default returns once /api/health is 200. Stopped after the test."""
    started: list[RunningApp] = []

    def start(endpoint_url: str, wait: bool = True, **env: str) -> RunningApp:
        port = backend_jobs.free_port()
        log_path = tmp_path / f"app-{port}.log"
        environment = backend_jobs.app_environment(endpoint_url, OPENAI_API_KEY, **env)
        app = RunningApp(backend_jobs.start_app(app_venv, port, environment, log_path), port, log_path)
        started.append(app)
        if wait:
            app.wait_healthy()
        return app

    yield start
    for app in started:
        backend_jobs.stop_app(app.process)


@pytest.fixture
def endpoint(aws: local_aws.LocalAws) -> str:
    """An empty local AWS endpoint with the backend's tables, bucket and USER's key."""
    backend_jobs.create_backend_resources(aws.endpoint_url)
    backend_jobs.put_user_key(aws.endpoint_url, USER)
    return aws.endpoint_url


def submit_clip(endpoint_url: str, seconds: float = 2.0, user: str = USER) -> str:
    """A job for a fresh tone of `seconds`, encrypted with the user's key; its job_id."""
    return backend_jobs.submit_job(endpoint_url, user, backend_jobs.make_3gp_clip(seconds))


def audio_file_id(endpoint_url: str, job_id: str) -> str:
    return backend_jobs.get_job(endpoint_url, job_id)["audio_file_id"]


def set_audio_file(endpoint_url: str, job_id: str, **values: int) -> None:
    table = boto3.resource("dynamodb", endpoint_url=endpoint_url, region_name=backend_jobs.REGION).Table(
        backend_jobs.AUDIO_FILES_TABLE
    )
    for name, value in values.items():
        table.update_item(
            Key={"file_id": audio_file_id(endpoint_url, job_id)},
            UpdateExpression="SET #n = :v",
            ExpressionAttributeNames={"#n": name},
            ExpressionAttributeValues={":v": value},
        )


def set_job(client, job_id: str, name: str, value: dict) -> None:
    client.update_item(
        TableName=backend_jobs.JOBS_TABLE,
        Key={"job_id": {"S": job_id}},
        UpdateExpression="SET #n = :v",
        ExpressionAttributeNames={"#n": name},
        ExpressionAttributeValues={":v": value},
    )


def first_page_job_ids(endpoint_url: str) -> set[str]:
    page = backend_jobs._client("dynamodb", endpoint_url).scan(TableName=backend_jobs.JOBS_TABLE)
    return {item["job_id"]["S"] for item in page["Items"]}


def run_until_exit(app_venv: Path, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """The app run under uvicorn until it exits, for a start that must fail before it serves."""
    command = backend_jobs.uvicorn_command(app_venv)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False, cwd=cwd)


def test_a_good_job_completes_with_a_transcript_and_leaves_its_plaintext_audio(endpoint, start_backend):
    app = start_backend(endpoint)
    job_id = submit_clip(endpoint)

    job = backend_jobs.wait_for_job(endpoint, job_id)

    assert job["status"] == "completed", job
    assert job["completed_at"].endswith("+00:00")
    assert "error_message" not in job
    [transcript] = backend_jobs.transcripts_for_job(endpoint, job_id)
    assert transcript["user_id"] == USER
    assert transcript["transcript"] == "fake transcript of 2.0 s"
    status, body = app.health()
    assert status == 200 and body["status"] == "healthy"
    assert body["processor"]["jobs_completed"] == 1
    assert f"INFO:{PROCESSOR_LOGGER}:[OK] Job {job_id} completed successfully in " in app.output()
    # The real service's leak: the decrypted recording stays in the working directory, plaintext.
    [leftover] = (app.log_path.parent / "data/processing_audio").iterdir()
    assert re.fullmatch(r"decrypted_[0-9a-f]{32}\.mp3", leftover.name)
    assert leftover.read_bytes()[4:8] == b"ftyp"  # the 3gp as uploaded, decrypted


def test_every_poll_logs_the_heartbeat(endpoint, start_backend):
    app = start_backend(endpoint)

    app.wait_for_output(HEARTBEAT % 0)
    app.wait_for_output(HEARTBEAT % 0, count=3)
    lines = app.output().splitlines()
    started = lines.index(f"INFO:{PROCESSOR_LOGGER}:[START] Starting cost-safe audio processor...")
    assert lines.index(f"INFO:{PROCESSOR_LOGGER}:" + HEARTBEAT % 0) > started


def test_failures_carry_todays_messages_and_the_false_success_line(endpoint, start_backend):
    app = start_backend(endpoint)
    wrong_key = backend_jobs.submit_job(endpoint, USER, backend_jobs.make_3gp_clip(2.0), key=os.urandom(32))
    not_audio = backend_jobs.submit_job(endpoint, USER, b"this is not a 3gp file at all")
    too_large = submit_clip(endpoint)
    set_audio_file(endpoint, too_large, file_size=8 * 1024 * 1024)
    no_object = submit_clip(endpoint)
    backend_jobs._client("s3", endpoint).delete_object(
        Bucket=backend_jobs.BUCKET, Key=backend_jobs.audio_key(USER, audio_file_id(endpoint, no_object))
    )

    # The transcription step fails these itself: the processor logs [OK] and no [FAIL].
    by_service = {
        wrong_key: "Failed to decrypt audio file",
        not_audio: "Processing error: Audio conversion failed: ",
        no_object: "Audio file not found or access denied",
    }
    for job_id, message in by_service.items():
        job = backend_jobs.wait_for_job(endpoint, job_id)
        assert job["status"] == "failed" and job["error_message"].startswith(message), job
        assert (job["retry_count"], job["completed_at"][-6:]) == (1, "+00:00")
        assert backend_jobs.transcripts_for_job(endpoint, job_id) == []
        app.wait_for_output(f"[OK] Job {job_id} completed successfully in ")
        assert f"[FAIL] Job {job_id}" not in app.output()
    assert "[DECRYPT ERROR] Decryption failed: MAC check failed" in app.output()  # why, only in the log
    # The processor's own checks: a [FAIL] line on stderr, as plain Python logging.
    job = backend_jobs.wait_for_job(endpoint, too_large)
    assert (job["status"], job["error_message"]) == ("failed", "File too large (8.0MB)")
    assert f"WARNING:{PROCESSOR_LOGGER}:[FAIL] Job {too_large} marked as failed: File too large (8.0MB)" in (
        app.output().splitlines()
    )


def test_a_failing_ffmpeg_is_a_processing_error_and_a_requeue_after_repair_completes(endpoint, start_backend):
    broken = start_backend(endpoint, PANZOTO_FFMPEG="/bin/false")
    job_id = submit_clip(endpoint)

    failed = backend_jobs.wait_for_job(endpoint, job_id)
    assert failed["error_message"] == "Processing error: Audio conversion failed: no error output"

    backend_jobs.stop_app(broken.process)
    start_backend(endpoint)  # "repaired": the default ffmpeg
    backend_jobs.requeue(endpoint, job_id)
    done = backend_jobs.wait_for_job(endpoint, job_id)

    assert done["status"] == "completed", done
    assert done["retry_count"] == 1
    assert "error_message" not in done


def test_a_missing_ffmpeg_says_so(endpoint, start_backend):
    start_backend(endpoint, PANZOTO_FFMPEG="/nonexistent/ffmpeg")

    job = backend_jobs.wait_for_job(endpoint, submit_clip(endpoint))

    assert (job["status"], job["error_message"]) == (
        "failed",
        "Processing error: ffmpeg is not installed. Please install ffmpeg: apt-get install ffmpeg",
    )


def test_old_and_exhausted_jobs_fail_before_any_attempt_and_a_requeue_keeping_created_at_fails_again(
    endpoint, start_backend
):
    old = submit_clip(endpoint)
    exhausted = submit_clip(endpoint)
    jobs = backend_jobs._client("dynamodb", endpoint)
    day_ago = (datetime.now(UTC) - timedelta(hours=25)).replace(tzinfo=None).isoformat()  # naive, like utcnow()
    set_job(jobs, old, "created_at", {"S": day_ago})
    set_job(jobs, exhausted, "retry_count", {"N": "3"})
    app = start_backend(endpoint)

    assert backend_jobs.wait_for_job(endpoint, old)["error_message"] == "Job expired - too old"
    assert backend_jobs.wait_for_job(endpoint, exhausted)["error_message"] == "Exceeded maximum retries (3)"
    for job_id in (old, exhausted):
        assert f"[AUDIO] Processing transcription job {job_id}" not in app.output()  # never attempted
        assert backend_jobs.transcripts_for_job(endpoint, job_id) == []
    backend_jobs.requeue(endpoint, old)
    again = backend_jobs.wait_for_job(endpoint, old)
    assert (again["error_message"], again["retry_count"]) == ("Job expired - too old", 2)


def test_it_reads_one_scan_page_so_a_pending_job_behind_a_large_table_is_never_seen(endpoint, start_backend):
    # About 3 MB of finished jobs: DynamoDB (and moto) filter after reading 1 MB, and the page after is never read.
    filler = "x" * 2000
    resource = boto3.resource("dynamodb", endpoint_url=endpoint, region_name=backend_jobs.REGION)
    with resource.Table(backend_jobs.JOBS_TABLE).batch_writer() as batch:
        for number in range(1500):
            batch.put_item(Item={"job_id": f"done-{number:04d}", "status": "completed", "transcript": filler})
    hidden = backend_jobs.submit_job(endpoint, USER, b"never read", job_id="zzzz-pending-behind-the-first-page")
    assert hidden not in first_page_job_ids(endpoint)  # the premise: it sorts behind the first page
    app = start_backend(endpoint)

    app.wait_for_output(HEARTBEAT % 0, count=4)
    assert backend_jobs.get_job(endpoint, hidden)["status"] == "pending"
    assert HEARTBEAT % 1 not in app.output()


def test_health_stays_healthy_with_the_endpoint_gone_like_the_real_one(local_aws_server, start_backend, tmp_path):
    # local_aws_server only for the fake credentials it exports; this test stops its own endpoint.
    own = local_aws.start_server(log_path=tmp_path / "own-moto.log", die_with_parent=True)  # ours to stop
    try:
        backend_jobs.create_backend_resources(own.endpoint_url)
        app = start_backend(own.endpoint_url)
    finally:
        local_aws.stop_server(own)

    app.wait_for_output(f"ERROR:{PROCESSOR_LOGGER}:[ERROR] Error querying jobs: Could not connect to the endpoint URL")
    # The failed scan still ends in the heartbeat, with no job: the error line is what tells.
    lines = app.output().splitlines()
    error = next(i for i, line in enumerate(lines) if "[ERROR] Error querying jobs" in line)
    assert f"INFO:{PROCESSOR_LOGGER}:" + HEARTBEAT % 0 in lines[error + 1 :]
    status, body = app.health()
    assert (status, body["status"]) == (200, "healthy")  # only the journal tells
    assert app.process.poll() is None


def test_the_processor_logs_on_stderr_only_and_the_service_lines_go_to_its_working_directory(endpoint, start_backend):
    app = start_backend(endpoint)
    backend_jobs.wait_for_job(endpoint, backend_jobs.submit_job(endpoint, USER, b"garbage", key=os.urandom(32)))

    app.wait_for_output(f"INFO:{PROCESSOR_LOGGER}:[START] Starting cost-safe audio processor...")
    [logfile] = (app.log_path.parent / "logs").glob("app_*.log")
    assert re.fullmatch(r"app_\d{8}_\d{6}\.log", logfile.name)
    written = logfile.read_text()
    # The processor's lines (plain logging, stderr) are not in the file; the service's loguru-style lines are.
    assert "Starting cost-safe audio processor" not in written
    assert "Checked for jobs" not in written
    assert re.search(
        r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \| ERROR \| processor\.py:_decrypted:\d+ - "
        r"\[DECRYPT ERROR\] Decryption failed: MAC check failed$",
        written,
        re.MULTILINE,
    )
    assert "\x1b[32m" in app.output()  # stdout (the journal) is coloured, the file is not
    assert "\x1b[" not in written


def test_a_broken_processor_leaves_the_api_healthy_and_logs_no_start_line(endpoint, start_backend):
    app = start_backend(endpoint, FAKE_BACKEND_BREAK_PROCESSOR="1")

    app.wait_for_output("[ERROR] Audio processor failed: audio processor could not start")
    status, body = app.health()
    assert (status, body["status"], body["processor"]["processor_alive"]) == (200, "healthy", False)
    assert "Starting cost-safe audio processor" not in app.output()
    assert "Traceback (most recent call last):" in app.output()


def test_a_dev_group_import_fails_at_startup_without_the_dev_group(aws, app_venv, tmp_path):
    env = backend_jobs.app_environment(aws.endpoint_url, OPENAI_API_KEY, FAKE_BACKEND_IMPORT_DEV_GROUP="1")

    done = run_until_exit(app_venv, env, cwd=tmp_path)

    assert done.returncode != 0
    assert "ModuleNotFoundError: No module named 'mypy_boto3_s3'" in done.stderr


def test_a_slow_stop_keeps_running_after_sigterm_until_its_work_is_done(endpoint, start_backend):
    app = start_backend(endpoint, FAKE_BACKEND_STOP_DELAY_SECONDS="3")

    app.process.terminate()
    app.wait_for_output("Finishing work in flight before shutdown (3s)")
    assert app.process.poll() is None  # still shutting down
    app.process.wait(60)  # uvicorn exits by re-raising SIGTERM once shut down
    assert "Audio processor stopped" in app.output()


def test_a_missing_openai_key_stops_startup_with_one_clear_line(aws, app_venv, tmp_path):
    env = backend_jobs.app_environment(aws.endpoint_url, "")

    done = run_until_exit(app_venv, env, cwd=tmp_path)

    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "panzoto fake backend: configuration error: missing required environment variable(s): OPENAI_API_KEY"
    ]


def test_secrets_never_reach_the_apps_output(endpoint, start_backend):
    aws_secret = "h2a-aws-secret-access-key-never-logged"
    app = start_backend(endpoint, AWS_SECRET_ACCESS_KEY=aws_secret)
    user_key = backend_jobs.put_user_key(endpoint, "user-2")
    good = submit_clip(endpoint, user="user-2")
    bad = backend_jobs.submit_job(endpoint, "user-2", b"garbage", key=os.urandom(32))
    backend_jobs.wait_for_job(endpoint, good)
    backend_jobs.wait_for_job(endpoint, bad)
    app.health()
    backend_jobs.stop_app(app.process)

    output = app.output()
    assert f"[OK] Job {good} completed successfully" in output  # the log is there, and it is clean:
    for secret in (OPENAI_API_KEY, aws_secret, base64.b64encode(user_key).decode(), user_key.hex()):
        assert secret not in output


def test_the_lock_pins_what_pyproject_asks_for():
    project = tomllib.loads((backend_jobs.APP_DIR / "pyproject.toml").read_text())["project"]
    locked = {
        package["name"]: package["version"]
        for package in tomllib.loads((backend_jobs.APP_DIR / "poetry.lock").read_text())["package"]
    }
    for dependency in project["dependencies"]:
        requirement = Requirement(dependency)
        assert requirement.specifier.contains(locked[requirement.name]), (requirement, locked.get(requirement.name))
