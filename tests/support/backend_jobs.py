"""Work for the fake Panzoto backend (tests/fake-backend), and a way to run it on this machine.

Tests and demos use these to build the backend's AWS resources on the local endpoint, upload
encrypted audio, submit jobs and wait for the processor to finish them:

    create_backend_resources(aws.endpoint_url)
    put_user_key(aws.endpoint_url, "user-1")
    job_id = submit_job(aws.endpoint_url, "user-1", make_3gp_clip(2.0))
    item = wait_for_job(aws.endpoint_url, job_id)   # status completed or failed

Encrypted audio layout (what the app expects): 16-byte IV + AES-256-GCM ciphertext + 16-byte tag.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import seed_jobs  # tools/ is not a package

REGION = "us-east-1"
JOBS_TABLE = "panzoto-processing-jobs"
TRANSCRIPTS_TABLE = "panzoto-transcripts"
AUDIO_FILES_TABLE = "panzoto-audio-files"
USERS_TABLE = "panzoto-users"
BUCKET = "panzoto"
AUDIO_PREFIX = "audio_upload"
KEY_SECRET_PREFIX = "panzoto/encryption-keys"
IV_BYTES = 16
FINAL_STATUSES = frozenset({"completed", "failed"})

# The fake backend's Poetry project (its README says what it fakes): the code the tests run and deploy.
APP_DIR = Path(__file__).resolve().parent.parent / "fake-backend"
APP_MODULE = "fake_backend.main:app"


def _client(service: str, endpoint_url: str, region: str = REGION) -> Any:
    return boto3.client(service, endpoint_url=endpoint_url, region_name=region)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# AWS resources ------------------------------------------------------------------------------
def create_backend_resources(
    endpoint_url: str,
    *,
    jobs_table: str = JOBS_TABLE,
    transcripts_table: str = TRANSCRIPTS_TABLE,
    audio_files_table: str = AUDIO_FILES_TABLE,
    bucket: str = BUCKET,
    region: str = REGION,
) -> None:
    """Every table the backend uses and the bucket, by tools/seed_jobs.py's one creator of the local tables;
    safe to call again."""
    names = seed_jobs.Names(
        jobs_table=jobs_table, transcripts_table=transcripts_table, audio_table=audio_files_table, bucket=bucket
    )
    seed_jobs.create_resources(endpoint_url, region, names)


def put_user_key(
    endpoint_url: str, user_id: str, key: bytes | None = None, *, region: str = REGION, version: int = 1
) -> bytes:
    """Store (or replace) the user's 32-byte key as the backend's secret; returns the key."""
    key = key if key is not None else os.urandom(32)
    secrets = _client("secretsmanager", endpoint_url, region)
    value = json.dumps({"encryption_key": base64.b64encode(key).decode(), "user_id": user_id, "version": version})
    name = f"{KEY_SECRET_PREFIX}/{user_id}"
    try:
        secrets.create_secret(Name=name, SecretString=value)
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceExistsException":
            raise
        secrets.put_secret_value(SecretId=name, SecretString=value)
    return key


def get_user_key(endpoint_url: str, user_id: str, *, region: str = REGION) -> bytes:
    secrets = _client("secretsmanager", endpoint_url, region)
    value = secrets.get_secret_value(SecretId=f"{KEY_SECRET_PREFIX}/{user_id}")["SecretString"]
    return base64.b64decode(json.loads(value)["encryption_key"])


def encrypt_audio(audio: bytes, key: bytes) -> bytes:
    iv = os.urandom(IV_BYTES)
    return iv + AESGCM(key).encrypt(iv, audio, None)


def audio_key(user_id: str, audio_file_id: str) -> str:
    return f"{AUDIO_PREFIX}/{user_id}/{audio_file_id}.3gp_encrypted"


def submit_job(
    endpoint_url: str,
    user_id: str,
    audio_3gp: bytes,
    *,
    duration_seconds: float | None = None,
    key: bytes | None = None,
    job_id: str | None = None,
    audio_file_id: str | None = None,
    jobs_table: str = JOBS_TABLE,
    audio_files_table: str = AUDIO_FILES_TABLE,
    users_table: str = USERS_TABLE,
    bucket: str = BUCKET,
    region: str = REGION,
) -> str:
    """Encrypt and upload the audio, record the file (with its size) and the user, put a pending job; its job_id.

    `key` defaults to the user's key in Secrets Manager; pass another to make a job whose
    decryption fails. `duration_seconds` is the client's claim, stored on the audio file item.
    """
    key = key if key is not None else get_user_key(endpoint_url, user_id, region=region)
    job_id = job_id or str(uuid.uuid4())
    audio_file_id = audio_file_id or str(uuid.uuid4())
    s3_key = audio_key(user_id, audio_file_id)
    encrypted = encrypt_audio(audio_3gp, key)
    _client("s3", endpoint_url, region).put_object(Bucket=bucket, Key=s3_key, Body=encrypted)
    dynamodb = boto3.resource("dynamodb", endpoint_url=endpoint_url, region_name=region)
    created_at = now_iso()
    # The backend checks that the user exists and divides file_size before it transcribes.
    dynamodb.Table(users_table).put_item(Item={"user_id": user_id, "created_at": created_at})
    audio_file: dict[str, Any] = {
        "file_id": audio_file_id,
        "user_id": user_id,
        "s3_key": s3_key,
        "file_size": len(encrypted),
        "uploaded_at": created_at,
    }
    if duration_seconds is not None:
        audio_file["duration"] = Decimal(str(duration_seconds))
    dynamodb.Table(audio_files_table).put_item(Item=audio_file)
    dynamodb.Table(jobs_table).put_item(
        Item={
            "job_id": job_id,
            "user_id": user_id,
            "job_type": "transcription",
            "status": "pending",
            "audio_file_id": audio_file_id,
            "created_at": created_at,
            "retry_count": 0,
        }
    )
    return job_id


def get_job(endpoint_url: str, job_id: str, *, jobs_table: str = JOBS_TABLE, region: str = REGION) -> dict | None:
    item = _client("dynamodb", endpoint_url, region).get_item(
        TableName=jobs_table, Key={"job_id": {"S": job_id}}, ConsistentRead=True
    )
    return _plain(item["Item"]) if "Item" in item else None


def wait_for_job(
    endpoint_url: str,
    job_id: str,
    statuses: Iterable[str] = FINAL_STATUSES,
    timeout: float = 60,
    *,
    jobs_table: str = JOBS_TABLE,
    region: str = REGION,
) -> dict:
    """The job's item once its status is one of `statuses`; TimeoutError (with the last seen) after `timeout`."""
    wanted = set(statuses)
    deadline = time.monotonic() + timeout
    item = None
    while time.monotonic() < deadline:
        item = get_job(endpoint_url, job_id, jobs_table=jobs_table, region=region)
        if item and item.get("status") in wanted:
            return item
        time.sleep(0.25)
    raise TimeoutError(f"job {job_id} not in {sorted(wanted)} after {timeout:.0f}s; last seen: {item}")


def requeue(endpoint_url: str, job_id: str, *, jobs_table: str = JOBS_TABLE, region: str = REGION) -> None:
    """Put the job back to pending, as a retry from the client does; keeps retry_count."""
    _client("dynamodb", endpoint_url, region).update_item(
        TableName=jobs_table,
        Key={"job_id": {"S": job_id}},
        UpdateExpression="SET #s = :pending REMOVE error_message, completed_at",
        ConditionExpression="attribute_exists(job_id)",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":pending": {"S": "pending"}},
    )


def transcripts_for_job(
    endpoint_url: str, job_id: str, *, transcripts_table: str = TRANSCRIPTS_TABLE, region: str = REGION
) -> list[dict]:
    paginator = _client("dynamodb", endpoint_url, region).get_paginator("scan")
    pages = paginator.paginate(
        TableName=transcripts_table,
        FilterExpression="job_id = :job",
        ExpressionAttributeValues={":job": {"S": job_id}},
    )
    return [_plain(item) for page in pages for item in page["Items"]]


def _plain(item: Mapping[str, Any]) -> dict:
    deserializer = TypeDeserializer()
    return {name: deserializer.deserialize(value) for name, value in item.items()}


# Audio --------------------------------------------------------------------------------------
def make_3gp_clip(seconds: float, ffmpeg: str = "ffmpeg") -> bytes:
    """A mono 440 Hz tone of `seconds` in a 3gp container (AAC), made by the host's ffmpeg."""
    # The 3gp muxer seeks back to write its header, so it needs a file rather than a pipe.
    with tempfile.TemporaryDirectory(prefix="panzoto-clip-") as workdir:
        clip = Path(workdir, "clip.3gp")
        command = [
            ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error",
            "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=16000:duration={seconds}",
            "-ac", "1", "-c:a", "aac", "-b:a", "32k", "-f", "3gp", str(clip),
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, check=False, timeout=60)
        if done.returncode != 0 or not clip.exists():
            raise RuntimeError(f"ffmpeg could not make a 3gp clip: {done.stderr.decode(errors='replace').strip()}")
        return clip.read_bytes()


# Running the app on this machine ------------------------------------------------------------
def lock_requirements(lock_path: Path = APP_DIR / "poetry.lock", group: str = "main") -> str:
    """The lock's `group` packages as a hash-pinned requirements file for `pip install --require-hashes`."""
    lock = tomllib.loads(lock_path.read_text())
    lines = []
    for package in lock["package"]:
        if group not in package.get("groups", [group]):
            continue
        markers = package.get("markers", "")
        if isinstance(markers, dict):
            markers = markers.get(group, "")
        line = f"{package['name']}=={package['version']}" + (f" ; {markers}" if markers else "")
        hashes = " ".join(f"--hash={file['hash']}" for file in package["files"])
        lines.append(f"{line} {hashes}")
    return "\n".join(lines) + "\n"


def ensure_app_venv(cache_dir: Path, lock_path: Path = APP_DIR / "poetry.lock") -> Path:
    """A venv with the app's locked dependencies, built once per lock under `cache_dir`.

    Keyed by the lock's hash, so a changed lock gets a new venv; a file lock keeps two test
    runs from building the same one at once.
    """
    requirements = lock_requirements(lock_path)
    digest = hashlib.sha256(requirements.encode()).hexdigest()[:16]
    venv = cache_dir / f"fake-backend-venv-{digest}"
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / f"fake-backend-venv-{digest}.lock", "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        if not (venv / ".complete").exists():
            subprocess.run(["/usr/bin/python3", "-m", "venv", "--clear", str(venv)], check=True)
            (venv / "requirements.txt").write_text(requirements)
            done = subprocess.run(
                [str(venv / "bin/python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                 "--no-deps", "--require-hashes", "-r", str(venv / "requirements.txt")],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if done.returncode != 0:
                raise RuntimeError(f"pip could not install the app's locked dependencies:\n{done.stdout}{done.stderr}")
            (venv / ".complete").write_text(digest)
    return venv


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def app_environment(endpoint_url: str, openai_api_key: str, **overrides: str) -> dict[str, str]:
    """The variables the deploy role writes to the env file (the real backend's names), for the local endpoint."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "REGION_NAME": REGION,
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "OPENAI_API_KEY": openai_api_key,
        "SECRET_KEY": "fake-backend-test-jwt-signing-key",
        "AWS_S3_BUCKET_NAME": BUCKET,
        "TRANSCRIPTION_CHECK_INTERVAL_SECONDS": "0.5",
    }
    env.update(overrides)
    return {name: value for name, value in env.items() if value is not None}


def uvicorn_command(venv: Path, *options: str) -> list[str]:
    """The command line of uvicorn serving APP_MODULE from APP_DIR with `venv`'s packages."""
    return [str(venv / "bin/python"), "-m", "uvicorn", APP_MODULE, "--app-dir", str(APP_DIR), *options]


def start_app(venv: Path, port: int, env: Mapping[str, str], log_path: Path) -> subprocess.Popen:
    """uvicorn serving the app on 127.0.0.1:`port`, output (stdout and stderr) to `log_path`.

    Its working directory is `log_path`'s, where the app creates its `logs/` (as the real one does in its own)."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            uvicorn_command(venv, "--host", "127.0.0.1", "--port", str(port), "--no-access-log"),
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=log_path.parent,
        )


def health(port: int) -> tuple[int, dict]:
    """(HTTP status, JSON body) of /api/health; (0, {}) when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, {}


def wait_for_health(port: int, want: int = 200, timeout: float = 30, process: subprocess.Popen | None = None) -> dict:
    """The health body once /api/health answers `want`; raises if the app exits or the time is up."""
    deadline = time.monotonic() + timeout
    last: tuple[int, dict] = (0, {})
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the app exited with code {process.returncode}")
        last = health(port)
        if last[0] == want:
            return last[1]
        time.sleep(0.2)
    raise TimeoutError(f"/api/health on port {port} did not answer {want} within {timeout:.0f}s; last: {last}")


def stop_app(process: subprocess.Popen, timeout: float = 15) -> int:
    process.terminate()
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait(timeout)


def main(argv: list[str] | None = None) -> int:
    """By hand or from a demo: the same helpers on an endpoint (e.g. `tools/local_aws.py url`)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("venv", help="build the app's venv, print its path").add_argument("cache_dir", type=Path)
    commands.add_parser("resources", help="create the tables and bucket").add_argument("endpoint_url")
    submit = commands.add_parser("submit", help="queue a job with a fresh clip, print its job_id")
    submit.add_argument("endpoint_url")
    submit.add_argument("user_id")
    submit.add_argument("seconds", type=float)
    wait = commands.add_parser("wait", help="wait for a job to finish, print its item as JSON")
    wait.add_argument("endpoint_url")
    wait.add_argument("job_id")
    wait.add_argument("--timeout", type=float, default=60)
    again = commands.add_parser("requeue", help="set jobs back to pending")
    again.add_argument("endpoint_url")
    again.add_argument("job_ids", nargs="+")
    args = parser.parse_args(argv)
    if args.command == "venv":
        print(ensure_app_venv(args.cache_dir))
    elif args.command == "resources":
        create_backend_resources(args.endpoint_url)
    elif args.command == "submit":
        try:
            get_user_key(args.endpoint_url, args.user_id)
        except ClientError:
            put_user_key(args.endpoint_url, args.user_id)
        print(submit_job(args.endpoint_url, args.user_id, make_3gp_clip(args.seconds), duration_seconds=args.seconds))
    elif args.command == "wait":
        try:
            print(json.dumps(wait_for_job(args.endpoint_url, args.job_id, timeout=args.timeout), default=str))
        except TimeoutError as error:
            print(error, file=sys.stderr)
            return 1
    elif args.command == "requeue":
        for job_id in args.job_ids:
            requeue(args.endpoint_url, job_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
