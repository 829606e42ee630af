"""The ffmpeg role and playbooks/repair_ffmpeg.yml on hosts whose ffmpeg is broken.

Jobs fail with `Processing error: Audio conversion failed: ...` or `... ffmpeg is not installed ...` today
(the ops guide's FORMAT_ERROR, "File does not start with RIFF id", in old data) on a host whose ffmpeg cannot
convert 3gp audio. The role must report such a host with ffmpeg's own error, and the repair playbook
must bring it back. It breaks the session's deployed host (tests/support/deployment.py), whose deploy installed
ffmpeg, and leaves it repaired, its service never restarted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.deployment import Deployment
from support.playbook import PlaybookRun, run_playbook

ROLE_PLAYBOOK = Path(__file__).resolve().parent / "playbooks" / "ffmpeg.yml"
FORMAT_ERROR = "File does not start with RIFF id"
FFMPEG = "ffmpeg -hide_banner -nostdin -loglevel error -y"
# An ffmpeg earlier on PATH that "succeeds" but writes no audio: a wrong build or a wrapper gone bad.
FAKE_FFMPEG = '#!/bin/sh\nfor last; do :; done\necho "not audio" > "$last"\n'


def remove_libavcodec(host) -> None:
    """Break ffmpeg the way a half-removed upgrade does: its package stays installed, a library is gone."""
    host.exec("sh", "-c", "rm -f /usr/lib/*-linux-gnu/libavcodec.so.*")


def run_role(inventory: Path, extra_vars: dict[str, Any] | None = None) -> PlaybookRun:
    return run_playbook(str(ROLE_PLAYBOOK), inventory=inventory, extra_vars=extra_vars)


def host_converts_3gp_to_riff_wav(host) -> bool:
    ti = host.testinfra
    made = ti.run(f"{FFMPEG} -f lavfi -i sine=duration=1 -c:a aac -f 3gp /root/check.3gp")
    converted = ti.run(f"{FFMPEG} -i /root/check.3gp /root/check.wav")
    return made.rc == 0 and converted.rc == 0 and ti.file("/root/check.wav").content[:4] == b"RIFF"


@pytest.mark.hosts
def test_the_role_reports_a_broken_ffmpeg_with_its_error_and_repair_ffmpeg_brings_it_back(
    deployment: Deployment,
) -> None:
    """On the session's deployed host (its ffmpeg installed by the deploy), without restarting its service."""
    host, inventory = deployment.host, deployment.inventory
    healthy = run_role(inventory)
    assert healthy.returncode == 0, healthy.output
    assert healthy.changed(host.name) == 0, healthy.output

    bad_input = run_role(inventory, {"ffmpeg_verify_clip_seconds": "one second", "ffmpeg_reinstall": True})
    assert bad_input.returncode != 0
    assert "ffmpeg_verify_clip_seconds" in bad_input.output
    assert bad_input.changed(host.name) == 0
    assert host.testinfra.package("ffmpeg").is_installed

    # A wrong ffmpeg earlier on PATH: it exits 0 but the wav is no wav.
    host.exec("sh", "-c", f"printf '{FAKE_FFMPEG}' > /usr/local/bin/ffmpeg && chmod 0755 /usr/local/bin/ffmpeg")
    no_riff = run_role(inventory)
    assert no_riff.returncode != 0
    assert no_riff.stats[host.name]["failed"] == 1
    assert f"ffmpeg on {host.name} cannot convert 3gp audio (jobs fail with " in no_riff.output
    assert FORMAT_ERROR in no_riff.output
    host.exec("rm", "/usr/local/bin/ffmpeg")

    # A library gone while the package stays installed: apt alone sees nothing to do.
    remove_libavcodec(host)
    missing_library = run_role(inventory)
    assert missing_library.returncode != 0
    assert "generating a 3gp clip failed (exit 127)" in missing_library.output
    # ffmpeg's own words, so the engineer sees what is wrong with the host.
    assert "error while loading shared libraries: libavcodec.so" in missing_library.output
    assert host.testinfra.run("ls -d /tmp/ffmpeg-proof.*").rc != 0, "the proof left its scratch directory"

    no_service = {"repair_ffmpeg_restart_service": False}
    unlimited = run_playbook("repair_ffmpeg.yml", inventory=inventory, extra_vars=no_service)
    assert unlimited.returncode != 0
    assert "Name the broken hosts with -l HOST" in unlimited.output
    assert not host_converts_3gp_to_riff_wav(host), "a refused repair changed the host"

    repaired = run_playbook("repair_ffmpeg.yml", inventory=inventory, limit=host.name, extra_vars=no_service)
    assert repaired.returncode == 0, repaired.output
    assert repaired.changed(host.name) >= 2, "ffmpeg was not purged and installed again"
    assert host_converts_3gp_to_riff_wav(host)

    again = run_role(inventory)
    assert again.returncode == 0, again.output
    assert again.changed(host.name) == 0, again.output
