"""The ops guide's checklist item for this role, on the converged host: ffmpeg installed, and converting 3gp audio."""

from __future__ import annotations

import pytest

FFMPEG = "ffmpeg -hide_banner -nostdin -loglevel error -y"
WORK_DIR = "/tmp/molecule-verify"


@pytest.fixture(scope="module")
def clip(host) -> str:
    """A 3gp clip (AAC, as phones record) made by the host's ffmpeg."""
    host.run_expect([0], f"mkdir -p {WORK_DIR}")
    host.run_expect([0], f"{FFMPEG} -f lavfi -i sine=duration=1 -ac 1 -ar 16000 -c:a aac -f 3gp {WORK_DIR}/clip.3gp")
    return f"{WORK_DIR}/clip.3gp"


def test_ffmpeg_is_installed(host) -> None:
    assert host.package("ffmpeg").is_installed
    assert host.exists("ffmpeg")


def test_ffmpeg_converts_3gp_audio_to_a_wav_that_starts_with_riff(host, clip: str) -> None:
    host.run_expect([0], f"{FFMPEG} -i {clip} {WORK_DIR}/clip.wav")
    assert host.file(f"{WORK_DIR}/clip.wav").content[:4] == b"RIFF"


def test_ffmpeg_converts_3gp_audio_to_mp3(host, clip: str) -> None:
    host.run_expect([0], f"{FFMPEG} -i {clip} {WORK_DIR}/clip.mp3")
    probe = host.run_expect([0], f"ffprobe -v error -show_entries stream=codec_name -of csv=p=0 {WORK_DIR}/clip.mp3")
    assert probe.stdout.strip() == "mp3"


def test_the_role_proof_left_no_scratch_directory(host) -> None:
    assert host.run("find /tmp -maxdepth 1 -name 'ffmpeg-proof.*'").stdout == ""
