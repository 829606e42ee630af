"""Decrypt and convert one recording the way the real transcription service does, failing with its messages.

The real service leaves the decrypted recording on disk: `data/processing_audio/decrypted_<hex>.mp3` under the
working directory, plaintext, one per processed job (only its converted copy is removed). So does this fake.
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
import uuid
import wave
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# Layout of an encrypted upload: a 16-byte IV (the guide insists on 16), then the AES-256-GCM
# ciphertext with its 16-byte tag appended (what AESGCM.encrypt returns).
IV_BYTES = 16
# The real service's conversion timeout, and the message it gives.
FFMPEG_TIMEOUT_S = 30
PROCESSING_DIR = Path("data/processing_audio")

MAC_CHECK_FAILED = "MAC check failed"
# What the job item gets today (the real backend's strings).
DECRYPT_FAILED = "Failed to decrypt audio file"
FFMPEG_MISSING = "Processing error: ffmpeg is not installed. Please install ffmpeg: apt-get install ffmpeg"
CONVERSION_FAILED = "Processing error: Audio conversion failed: {stderr}"
CONVERSION_TIMED_OUT = f"Processing error: Audio conversion timed out after {FFMPEG_TIMEOUT_S} seconds"


class JobError(Exception):
    """A job failure: str() is the job's error_message, `detail` goes only to the log."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


def key_from_secret(secret_string: str) -> bytes:
    try:
        key = base64.b64decode(json.loads(secret_string)["encryption_key"], validate=True)
    except (ValueError, KeyError, TypeError):
        raise JobError("Invalid encryption key secret", "secret is not JSON with a base64 encryption_key") from None
    if len(key) != 32:
        raise JobError(f"Incorrect AES key length ({len(key)} bytes)")
    return key


def decrypt(blob: bytes, key: bytes) -> bytes:
    if len(blob) <= IV_BYTES + 16:
        raise JobError(MAC_CHECK_FAILED, "encrypted object is shorter than IV and tag")
    try:
        return AESGCM(key).decrypt(blob[:IV_BYTES], blob[IV_BYTES:], None)
    except InvalidTag:
        raise JobError(MAC_CHECK_FAILED) from None


def keep_decrypted(audio: bytes, directory: Path = PROCESSING_DIR) -> Path:
    """Write the plaintext where the real service does, and leave it there (as it does)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"decrypted_{uuid.uuid4().hex}.mp3"
    path.write_bytes(audio)
    return path


def convert_to_wav(source: Path, ffmpeg: str) -> bytes:
    """ffmpeg as the real service runs it; its failures are the real `Processing error: ...` messages."""
    target = source.with_suffix(".wav")
    command = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(source), str(target)]
    try:
        done = subprocess.run(command, capture_output=True, timeout=FFMPEG_TIMEOUT_S, check=False)
    except FileNotFoundError:
        raise JobError(FFMPEG_MISSING, f"{ffmpeg} not found") from None
    except subprocess.TimeoutExpired:
        target.unlink(missing_ok=True)
        raise JobError(CONVERSION_TIMED_OUT) from None
    except OSError as error:
        raise JobError(CONVERSION_FAILED.format(stderr=error)) from None
    try:
        if done.returncode != 0:
            raise JobError(CONVERSION_FAILED.format(stderr=_last_line(done.stderr)), f"ffmpeg exited {done.returncode}")
        return target.read_bytes()
    finally:
        # The converted copy goes; the decrypted source stays (the real service's leak).
        target.unlink(missing_ok=True)


def wav_seconds(wav: bytes) -> float:
    try:
        with wave.open(io.BytesIO(wav), "rb") as reader:
            return reader.getnframes() / float(reader.getframerate())
    except (wave.Error, EOFError, ZeroDivisionError) as error:
        raise JobError(CONVERSION_FAILED.format(stderr=f"unreadable wav: {error}")) from None


def _last_line(stderr: bytes) -> str:
    lines = stderr.decode("utf-8", "replace").strip().splitlines()
    return lines[-1] if lines else "no error output"
