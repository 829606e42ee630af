"""Decrypt, convert and measure one recording, failing with the real backend's messages."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import tempfile
import wave
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# Layout of an encrypted upload: a 16-byte IV (the guide insists on 16), then the AES-256-GCM
# ciphertext with its 16-byte tag appended (what AESGCM.encrypt returns).
IV_BYTES = 16
FFMPEG_TIMEOUT_S = 60

MAC_CHECK_FAILED = "MAC check failed"
NOT_RIFF = "File does not start with RIFF id"
TOO_SHORT = "Transcription failed or too short"


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


def convert_to_wav(audio: bytes, ffmpeg: str) -> bytes:
    """Run ffmpeg as the real backend does; anything but a RIFF file out is a FORMAT_ERROR."""
    with tempfile.TemporaryDirectory(prefix="panzoto-") as workdir:
        source, target = Path(workdir, "in.3gp"), Path(workdir, "out.wav")
        source.write_bytes(audio)
        command = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(source), str(target)]
        try:
            done = subprocess.run(command, capture_output=True, timeout=FFMPEG_TIMEOUT_S, check=False)
            detail = f"ffmpeg exited {done.returncode}: {_last_line(done.stderr)}"
        except (OSError, subprocess.TimeoutExpired) as error:
            detail = f"ffmpeg did not run: {error}"
        wav = target.read_bytes() if target.exists() else b""
    if not wav.startswith(b"RIFF"):
        raise JobError(NOT_RIFF, detail)
    return wav


def wav_seconds(wav: bytes) -> float:
    try:
        with wave.open(io.BytesIO(wav), "rb") as reader:
            return reader.getnframes() / float(reader.getframerate())
    except (wave.Error, EOFError, ZeroDivisionError) as error:
        raise JobError(NOT_RIFF, f"unreadable wav: {error}") from None


def _last_line(stderr: bytes) -> str:
    lines = stderr.decode("utf-8", "replace").strip().splitlines()
    return lines[-1] if lines else "no error output"
