"""The fake backend's parts in-process: settings, decryption, conversion, the claim, the lock."""

from __future__ import annotations

import base64
import json
import os
import re
import sys

import pytest
from support import backend_jobs

sys.path.insert(0, str(backend_jobs.APP_DIR))  # the app is not installed into the project venv

from fake_backend import audio, logs
from fake_backend.config import ConfigError, load_settings
from fake_backend.processor import Processor

MINIMAL_ENV = {"REGION_NAME": "us-east-1", "OPENAI_API_KEY": "sk-unit-test-key"}


def test_settings_default_to_the_real_backends():
    settings = load_settings(MINIMAL_ENV)

    assert (settings.jobs_table, settings.transcripts_table, settings.audio_bucket) == (
        "panzoto-processing-jobs",
        "panzoto-transcripts",
        "panzoto",
    )
    assert (settings.poll_interval, settings.ffmpeg) == (60.0, "ffmpeg")
    assert settings.prompt_path == "prompts/daily_summary.txt"  # relative, like the real default
    assert settings.secret_key_is_default
    assert "sk-unit-test-key" not in repr(settings)


def test_the_real_backends_names_are_read():
    settings = load_settings(
        {
            **MINIMAL_ENV,
            "SECRET_KEY": "jwt-key",
            "AWS_S3_BUCKET_NAME": "other-bucket",
            "AWS_S3_AUDIO_FOLDER": "/uploads/",
            "TRANSCRIPTION_CHECK_INTERVAL_SECONDS": "5",
            "DAILY_SUMMAYR_PROMPT_PATH": "/opt/panzoto/app/prompts/daily.txt",
        }
    )

    assert (settings.region, settings.audio_bucket, settings.audio_prefix) == ("us-east-1", "other-bucket", "uploads")
    assert (settings.poll_interval, settings.prompt_path) == (5.0, "/opt/panzoto/app/prompts/daily.txt")
    assert not settings.secret_key_is_default
    assert "jwt-key" not in repr(settings)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "missing required environment variable(s): REGION_NAME, OPENAI_API_KEY"),
        ({"AWS_REGION": "us-east-1", "OPENAI_API_KEY": "k"}, "missing required environment variable(s): REGION_NAME"),
        ({**MINIMAL_ENV, "OPENAI_API_KEY": "  "}, "missing required environment variable(s): OPENAI_API_KEY"),
        (
            {**MINIMAL_ENV, "TRANSCRIPTION_CHECK_INTERVAL_SECONDS": "soon"},
            "TRANSCRIPTION_CHECK_INTERVAL_SECONDS must be a number of seconds",
        ),
        (
            {**MINIMAL_ENV, "TRANSCRIPTION_CHECK_INTERVAL_SECONDS": "0"},
            "TRANSCRIPTION_CHECK_INTERVAL_SECONDS must be greater than 0",
        ),
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


def test_ffmpeg_converts_the_decrypted_file_it_leaves_behind(tmp_path):
    source = audio.keep_decrypted(backend_jobs.make_3gp_clip(2.0), tmp_path / "data/processing_audio")

    wav = audio.convert_to_wav(source, "ffmpeg")

    assert wav.startswith(b"RIFF")
    assert audio.wav_seconds(wav) == pytest.approx(2.0, abs=0.1)
    assert [path.name for path in source.parent.iterdir()] == [source.name]  # the plaintext stays, the wav goes


@pytest.mark.parametrize(
    ("ffmpeg", "message"),
    [
        ("/bin/false", "Processing error: Audio conversion failed: no error output"),
        (
            "/nonexistent/ffmpeg",
            "Processing error: ffmpeg is not installed. Please install ffmpeg: apt-get install ffmpeg",
        ),
    ],
)
def test_a_broken_or_missing_ffmpeg_is_the_real_processing_error(tmp_path, ffmpeg, message):
    source = audio.keep_decrypted(backend_jobs.make_3gp_clip(1.0), tmp_path)

    with pytest.raises(audio.JobError) as raised:
        audio.convert_to_wav(source, ffmpeg)

    assert str(raised.value) == message


def test_a_job_is_not_claimed_so_a_second_processor_works_on_it_too(aws, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    backend_jobs.create_backend_resources(aws.endpoint_url)
    backend_jobs.put_user_key(aws.endpoint_url, "user-1")
    job_id = backend_jobs.submit_job(aws.endpoint_url, "user-1", backend_jobs.make_3gp_clip(1.0))
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws.endpoint_url)
    first, second = Processor(load_settings(MINIMAL_ENV)), Processor(load_settings(MINIMAL_ENV))
    [seen_by_first], [seen_by_second] = first.poll(), second.poll()

    first.process(seen_by_first)
    second.process(seen_by_second)  # no conditional write stops it: the same job, transcribed twice

    assert backend_jobs.get_job(aws.endpoint_url, job_id)["status"] == "completed"
    assert len(backend_jobs.transcripts_for_job(aws.endpoint_url, job_id)) == 2


def test_the_lock_becomes_hash_pinned_requirements():
    lines = backend_jobs.lock_requirements().splitlines()

    names = {line.split("==")[0] for line in lines}
    assert {"fastapi", "uvicorn", "boto3", "cryptography"} <= names
    assert all(" --hash=sha256:" in line for line in lines)


def test_logs_have_the_real_format_colours_on_stdout_and_a_file_in_the_working_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    log = logs.configure_logging("fake_backend_format_test")
    try:
        log.info("Starting cost-safe audio processor")
        try:
            raise ValueError("MAC check failed")
        except ValueError:
            log.error("[ERROR] Job job-1 processing failed (attempt 3/3): MAC check failed", exc_info=True)
    finally:
        for handler in log.handlers:
            handler.close()

    [logfile] = (tmp_path / "logs").iterdir()
    assert re.fullmatch(r"app_\d{8}_\d{6}\.log", logfile.name)
    lines = logfile.read_text().splitlines()
    line = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \| %s \| test_fake_backend\.py:%s:\d+ - %s"
    assert re.fullmatch(
        line % ("INFO", "test_logs_have_the_real_format.*", "Starting cost-safe audio processor"), lines[0]
    )
    assert re.fullmatch(
        line % ("ERROR", ".*", re.escape("[ERROR] Job job-1 processing failed (attempt 3/3): MAC check failed")),
        lines[1],
    )
    assert lines[2] == "Traceback (most recent call last):"
    assert lines[-1] == "ValueError: MAC check failed"
    stdout = capsys.readouterr().out
    assert "\x1b[32m" in stdout  # colours forced on, as loguru's colorize=True
    assert re.sub(r"\x1b\[[0-9;]*m", "", stdout).splitlines() == lines
