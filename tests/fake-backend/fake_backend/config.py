"""Settings from the environment, under the real backend's names (its pydantic BaseSettings reads the same)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

REQUIRED = ("REGION_NAME", "OPENAI_API_KEY")
# The real backend's default when SECRET_KEY is unset: an insecure placeholder (deployments must set it).
INSECURE_SECRET_KEY = "your-secret-key-change-in-production"
# Fixed in the real backend's code, not settings.
JOBS_TABLE = "panzoto-processing-jobs"
TRANSCRIPTS_TABLE = "panzoto-transcripts"
PREFERENCES_TABLE = "panzoto-user-preferences"
KEY_SECRET_PREFIX = "panzoto/encryption-keys"
# Hard-coded in the real processor: pending jobs older than this are failed before any attempt.
PENDING_EXPIRY_HOURS = 24


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable, never its value."""


@dataclass(frozen=True)
class Settings:
    region: str
    audio_bucket: str
    audio_prefix: str
    poll_interval: float
    max_file_size_mb: float
    max_retries: int
    users_table: str
    audio_files_table: str
    ffmpeg: str
    prompt_path: str
    # Held only so that startup proves they are set; never sent anywhere or printed.
    openai_api_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    jobs_table: str = JOBS_TABLE
    transcripts_table: str = TRANSCRIPTS_TABLE
    preferences_table: str = PREFERENCES_TABLE
    key_secret_prefix: str = KEY_SECRET_PREFIX

    @property
    def secret_key_is_default(self) -> bool:
        return self.secret_key == INSECURE_SECRET_KEY


def _positive_float(environ: Mapping[str, str], name: str, default: float, unit: str = "seconds") -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of {unit}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be greater than 0")
    return value


def load_settings(environ: Mapping[str, str] = os.environ) -> Settings:
    missing = [name for name in REQUIRED if not environ.get(name, "").strip()]
    if missing:
        raise ConfigError(f"missing required environment variable(s): {', '.join(missing)}")
    return Settings(
        region=environ["REGION_NAME"].strip(),
        audio_bucket=environ.get("AWS_S3_BUCKET_NAME") or "panzoto",
        audio_prefix=(environ.get("AWS_S3_AUDIO_FOLDER") or "audio_upload").strip("/"),
        poll_interval=_positive_float(environ, "TRANSCRIPTION_CHECK_INTERVAL_SECONDS", 60.0),
        max_file_size_mb=_positive_float(environ, "TRANSCRIPTION_MAX_FILE_SIZE_MB", 5.0, "megabytes"),
        max_retries=int(_positive_float(environ, "TRANSCRIPTION_MAX_RETRIES", 3, "retries")),
        users_table=environ.get("USERS_TABLE") or "panzoto-users",
        audio_files_table=environ.get("AUDIO_FILES_TABLE") or "panzoto-audio-files",
        # Not in the real backend (it runs `ffmpeg` from PATH): lets a test break the conversion.
        ffmpeg=environ.get("PANZOTO_FFMPEG") or "ffmpeg",
        # Relative by default, like the real one: resolved against the working directory.
        prompt_path=environ.get("DAILY_SUMMAYR_PROMPT_PATH") or "prompts/daily_summary.txt",
        openai_api_key=environ["OPENAI_API_KEY"],
        secret_key=environ.get("SECRET_KEY") or INSECURE_SECRET_KEY,
    )
