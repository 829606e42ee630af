"""Settings from environment variables only: the deploy role writes them to an env file."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

REQUIRED = ("AWS_REGION", "OPENAI_API_KEY")


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable, never its value."""


@dataclass(frozen=True)
class Settings:
    region: str
    jobs_table: str
    transcripts_table: str
    audio_bucket: str
    audio_prefix: str
    key_secret_prefix: str
    poll_interval: float
    ffmpeg: str
    # Held only so that startup proves it is set; the stand-in transcriber never sends it anywhere.
    openai_api_key: str = field(repr=False)


def _positive_float(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds") from None
    if value <= 0:
        raise ConfigError(f"{name} must be greater than 0")
    return value


def load_settings(environ: Mapping[str, str] = os.environ) -> Settings:
    missing = [name for name in REQUIRED if not environ.get(name, "").strip()]
    if missing:
        raise ConfigError(f"missing required environment variable(s): {', '.join(missing)}")
    return Settings(
        region=environ["AWS_REGION"].strip(),
        jobs_table=environ.get("PANZOTO_JOBS_TABLE") or "panzoto-processing-jobs",
        transcripts_table=environ.get("PANZOTO_TRANSCRIPTS_TABLE") or "panzoto-transcripts",
        audio_bucket=environ.get("PANZOTO_AUDIO_BUCKET") or "panzoto",
        audio_prefix=(environ.get("PANZOTO_AUDIO_PREFIX") or "audio_upload").strip("/"),
        key_secret_prefix=(environ.get("PANZOTO_KEY_SECRET_PREFIX") or "panzoto/encryption-keys").rstrip("/"),
        poll_interval=_positive_float(environ, "PANZOTO_POLL_INTERVAL", 2.0),
        ffmpeg=environ.get("PANZOTO_FFMPEG") or "ffmpeg",
        openai_api_key=environ["OPENAI_API_KEY"],
    )
