"""The fake backend's parts in-process: settings, decryption, conversion, the claim, the lock."""

from __future__ import annotations

import base64
import json
import os
import sys

import pytest
from support import backend_jobs

sys.path.insert(0, str(backend_jobs.APP_DIR))  # the app is not installed into the project venv

from fake_backend import audio
from fake_backend.config import ConfigError, load_settings
from fake_backend.processor import Processor

MINIMAL_ENV = {"AWS_REGION": "us-east-1", "OPENAI_API_KEY": "sk-unit-test-key"}


def test_settings_default_to_the_real_names():
    settings = load_settings(MINIMAL_ENV)

    assert (settings.jobs_table, settings.transcripts_table, settings.audio_bucket) == (
        "panzoto-processing-jobs",
        "panzoto-transcripts",
        "panzoto",
    )
    assert (settings.poll_interval, settings.ffmpeg) == (2.0, "ffmpeg")
    assert "sk-unit-test-key" not in repr(settings)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "missing required environment variable(s): AWS_REGION, OPENAI_API_KEY"),
        ({**MINIMAL_ENV, "OPENAI_API_KEY": "  "}, "missing required environment variable(s): OPENAI_API_KEY"),
        ({**MINIMAL_ENV, "PANZOTO_POLL_INTERVAL": "soon"}, "PANZOTO_POLL_INTERVAL must be a number of seconds"),
        ({**MINIMAL_ENV, "PANZOTO_POLL_INTERVAL": "0"}, "PANZOTO_POLL_INTERVAL must be greater than 0"),
    ],
)
def test_bad_settings_are_one_clear_message(env, message):
    with pytest.raises(ConfigError) as raised:
        load_settings(env)

    assert str(raised.value) == message


def test_decrypt_reads_what_the_helper_encrypts():
    key = os.urandom(32)

    assert audio.decrypt(backend_jobs.encrypt_audio(b"3gp bytes", key), key) == b"3gp bytes"


@pytest.mark.parametrize("damage", ["wrong key", "flipped byte", "truncated"])
def test_a_bad_key_or_file_is_a_mac_check_failure(damage):
    key = os.urandom(32)
    blob = bytearray(backend_jobs.encrypt_audio(b"3gp bytes" * 10, key))
    if damage == "wrong key":
        key = os.urandom(32)
    elif damage == "flipped byte":
        blob[20] ^= 0xFF
    else:
        blob = blob[:20]

    with pytest.raises(audio.JobError, match=r"^MAC check failed$"):
        audio.decrypt(bytes(blob), key)


def test_a_key_secret_must_hold_32_bytes():
    secret = json.dumps({"encryption_key": base64.b64encode(b"short").decode()})

    with pytest.raises(audio.JobError, match=r"^Incorrect AES key length \(5 bytes\)$"):
        audio.key_from_secret(secret)


def test_ffmpeg_converts_a_3gp_clip_to_a_wav_of_its_length():
    wav = audio.convert_to_wav(backend_jobs.make_3gp_clip(2.0), "ffmpeg")

    assert wav.startswith(b"RIFF")
    assert audio.wav_seconds(wav) == pytest.approx(2.0, abs=0.1)


@pytest.mark.parametrize("ffmpeg", ["/bin/false", "/nonexistent/ffmpeg"])
def test_a_broken_ffmpeg_is_a_format_error_with_the_reason_kept(ffmpeg):
    with pytest.raises(audio.JobError, match=r"^File does not start with RIFF id$") as raised:
        audio.convert_to_wav(backend_jobs.make_3gp_clip(1.0), ffmpeg)

    assert raised.value.detail.startswith(("ffmpeg exited 1", "ffmpeg did not run"))


def test_a_job_is_claimed_once(aws, monkeypatch):
    backend_jobs.create_backend_resources(aws.endpoint_url)
    backend_jobs.put_user_key(aws.endpoint_url, "user-1")
    job_id = backend_jobs.submit_job(aws.endpoint_url, "user-1", b"audio")
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws.endpoint_url)
    processor = Processor(load_settings(MINIMAL_ENV))
    [job] = processor.pending_jobs()

    assert processor.claim(job) is True
    assert processor.claim(job) is False  # a second host loses the race, whatever its scan said
    assert backend_jobs.get_job(aws.endpoint_url, job_id)["status"] == "processing"
    assert processor.pending_jobs() == []


def test_the_lock_becomes_hash_pinned_requirements():
    lines = backend_jobs.lock_requirements().splitlines()

    names = {line.split("==")[0] for line in lines}
    assert {"fastapi", "uvicorn", "boto3", "cryptography"} <= names
    assert all(" --hash=sha256:" in line for line in lines)
