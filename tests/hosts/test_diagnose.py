"""playbooks/diagnose_jobs.yml on two real systemd hosts: today's failures and the guide's MAX_RETRIES, end to end.

The processor's lines are planted in the real format (BACKEND.md's loguru lines, ANSI colours as the
stdout sink forces them) through the real journal of a unit named like the service
(`systemd-run --unit=panzoto`), and into the app's log directory as a plain and a rotated, zipped
file. Each job failed for a different reason on one of the two hosts; one job's lines were rotated
out. Host A's journal also holds megabytes of other jobs' lines from before the windows, which must
stay on the host. Today's failures are planted as the backend of 2025-10-29 writes them: the processor's
own lines in Python logging's plain format (journal only), the key service's loguru line naming only the user.
"""

from __future__ import annotations

import io
import json
import subprocess
import time
import uuid
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.diagnose import (
    PLANTED_SECRET,
    FailedJob,
    loguru_line,
    processor_records,
    read_reports,
    report_json,
    seed_failed_jobs,
    todays_records,
)
from support.playbook import run_playbook

pytestmark = pytest.mark.hosts

LOG_DIR = "/var/log/panzoto"  # the default: the service role's LogsDirectory, where ./logs links to
NOISE_LINES = 4_000


def put_file(host, path: str, data: bytes) -> None:
    subprocess.run(
        ["podman", "exec", "-i", host.name, "sh", "-c", f"mkdir -p \"$(dirname '{path}')\" && cat > '{path}'"],
        input=data, check=True, capture_output=True, timeout=120,
    )  # fmt: skip


# Runs as the unit: prints the lines, then stays until journald has filed the last one. journald reads a
# stream after the writer wrote it; lines it reads after the unit's processes are gone lose their unit
# (no _SYSTEMD_UNIT), which a long-running service never sees.
PRINTER = r"""
import subprocess, sys, time
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
sys.stdout.write("\n".join(lines) + "\n")
sys.stdout.flush()
strip = __import__("re").compile(r"\x1b\[[0-9;]*m").sub
deadline = time.monotonic() + 300
while time.monotonic() < deadline:
    last = subprocess.run(["journalctl", "-u", "panzoto.service", "-o", "cat", "-n", "1", "--no-pager"],
                          capture_output=True, text=True).stdout.strip()
    if strip("", last) == strip("", lines[-1]):
        sys.exit(0)
    time.sleep(0.3)
sys.exit(1)
"""


def print_to_journal(host, lines: list[str]) -> None:
    """The lines on the stdout of a unit named like the service, so journald files them under panzoto.service."""
    put_file(host, "/tmp/planted.log", ("\n".join(lines) + "\n").encode())
    put_file(host, "/tmp/printer.py", PRINTER.encode())
    printed = host.exec(
        "systemd-run", "--unit=panzoto", "--wait", "--collect", "--quiet",
        "-p", "LogRateLimitIntervalSec=0", "/usr/bin/python3", "/tmp/printer.py", "/tmp/planted.log",
        timeout=400, check=False,
    )  # fmt: skip
    assert printed.returncode == 0, f"journald on {host.name} did not file the planted lines: {printed.stderr}"


def noise(count: int) -> list[str]:
    """Other jobs' lines as a busy processor writes them, about 2 KB each (a transcript preview): journald's
    cost is per line, so fewer, longer lines make a big journal quickly."""
    lines = []
    now = datetime.now(UTC)
    preview = " ".join(["the meeting moved to thursday and the budget was approved"] * 33)
    for index in range(count):
        job = uuid.uuid4()
        message = f"[OK] Job {job} completed successfully in {index % 60}.3s; transcript: {preview}"
        lines.append(loguru_line(now, "INFO", message, True))
    return lines


def zipped(name: str, text: str, modified: datetime) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(zipfile.ZipInfo(name, date_time=modified.timetuple()[:6]), text)
    return buffer.getvalue()


def journal_bytes(host) -> int:
    """What copying the unit's whole journal would move, in the format the module reads."""
    listing = host.exec(
        "sh",
        "-c",
        "journalctl -u panzoto.service -o json --output-fields MESSAGE --all --no-pager | wc -c",
        timeout=300,
    )
    return int(listing.stdout.strip())


def test_each_failed_job_gets_its_cause_on_the_host_where_it_happened(
    target_hosts, write_inventory, aws, tmp_path: Path
) -> None:
    host_a, host_b = target_hosts(count=2, prefix="diag")
    print_to_journal(host_a, noise(NOISE_LINES))
    time.sleep(3)  # the noise ends before the windows start (margin 2 s below)

    t0 = datetime.now(UTC).replace(microsecond=0)
    window = {"created_at": t0, "last_attempt_at": t0}
    jobs = {
        "decryption": FailedJob("decryption_failed", **window),
        "timeout": FailedJob("transcription_timeout", **window),
        "audio": FailedJob("audio_missing", **window),
        "ffmpeg": FailedJob("audio_format", **window),
        "too_large": FailedJob("file_too_large", **window),
        "rate_limit": FailedJob("transcription_rate_limited", **window),
        "server_error": FailedJob("transcription_server_error", **window),
        "rotated": FailedJob(
            "no_evidence", created_at=t0 - timedelta(days=3), last_attempt_at=t0 - timedelta(days=3, minutes=-5)
        ),
        "key_missing": FailedJob("encryption_key_missing", category_message="Failed to decrypt audio file", **window),
        "proxies": FailedJob(
            "dependency_mismatch",
            category_message="Processing error: Client.__init__() got an unexpected keyword argument 'proxies'",
            **window,
        ),
    }
    j = jobs
    key = j["key_missing"]
    key.records = todays_records(
        key,
        ("ERROR", f"[KEY ERROR] Encryption key not found in Secrets Manager for user {key.user_id}", []),
        ("ERROR", "[ERROR] Error decrypting audio file: 'NoneType' object is not subscriptable",
         ["Traceback (most recent call last):", "TypeError: 'NoneType' object is not subscriptable"], "root"),
        plain=True,
    )  # fmt: skip
    proxies = j["proxies"]
    proxies.records = [
        ("INFO", f"[AUDIO] Processing transcription job {proxies.job_id} for user {proxies.user_id}", [],
         "decision_data.backend.services.audio_processor"),
        ("ERROR", "Processing error: Client.__init__() got an unexpected keyword argument 'proxies'", []),
        # Written for a job transcription_service failed: never evidence of success.
        ("INFO", f"[OK] Job {proxies.job_id} completed successfully in 0.5s", [],
         "decision_data.backend.services.audio_processor"),
    ]  # fmt: skip
    j["decryption"].records = processor_records(
        j["decryption"],
        "MAC check failed",
        [
            "Traceback (most recent call last):",
            '  File "/opt/panzoto/app/crypto.py", line 40',
            "ValueError: MAC check failed",
        ],
    )
    j["timeout"].records = processor_records(
        j["timeout"],
        "Request timed out.",
        [
            "Traceback (most recent call last):",
            f"httpx.ReadTimeout: headers={{'Authorization': 'Bearer {PLANTED_SECRET}'}}",
            "openai.APITimeoutError: Request timed out.",
        ],
    )
    j["audio"].records = [
        ("INFO", f"[AUDIO] Processing transcription job {j['audio'].job_id} (attempt 3/3) for user x1", []),
        (
            "ERROR",
            f"[ERROR] Failed to fetch audio file {j['audio'].audio_file_id}: An error occurred (NoSuchKey) when "
            "calling the GetObject operation: The specified key does not exist.",
            [],
        ),
    ]
    j["ffmpeg"].records = processor_records(j["ffmpeg"], "File does not start with RIFF id")
    j["too_large"].records = [
        ("INFO", f"[AUDIO] Processing transcription job {j['too_large'].job_id} (attempt 3/3) for user x2", []),
        ("WARNING", "[WARN] File too large: 31.2MB > 25MB", []),
    ]
    j["rate_limit"].records = [
        (
            "ERROR",
            f"[ERROR] Transcription failed for job {j['rate_limit'].job_id}, audio {j['rate_limit'].audio_file_id}: "
            "Error code: 429 - {'error': {'message': 'Rate limit reached for whisper-1', 'type': 'requests'}}",
            [],
        )
    ]
    j["server_error"].records = [
        (
            "ERROR",
            f"[ERROR] Transcription failed for job {j['server_error'].job_id}, audio {j['server_error'].audio_file_id}:"
            " Error code: 503 - {'error': {'message': 'Service Unavailable', 'type': 'server_error'}}",
            [],
        )
    ]

    # Host A: its journal (its log directory exists, empty). Host B: ffmpeg and the lock drift in its journal,
    # the rest in the app's own files.
    print_to_journal(
        host_a,
        j["decryption"].lines(True) + j["timeout"].lines(True) + j["audio"].lines(True) + key.lines(True),
    )
    host_a.exec("mkdir", "-p", LOG_DIR)
    print_to_journal(host_b, j["ffmpeg"].lines(True) + proxies.lines(True))
    started = (t0 - timedelta(minutes=1)).strftime("%Y%m%d_%H%M%S")
    put_file(
        host_b,
        f"{LOG_DIR}/app_{started}.log.zip",
        zipped(f"app_{started}.log", "\n".join(j["rate_limit"].lines()) + "\n", t0 + timedelta(seconds=5)),
    )
    current = t0.strftime("%Y%m%d_%H%M%S")
    put_file(
        host_b,
        f"{LOG_DIR}/app_{current}.log",
        ("\n".join(j["too_large"].lines() + j["server_error"].lines()) + "\n").encode(),
    )
    last_attempt = max(datetime.now(UTC), t0 + timedelta(seconds=10))
    for job in jobs.values():
        if job.cause != "no_evidence":
            job.last_attempt_at = last_attempt
    seed_failed_jobs(aws.endpoint_url, jobs.values())
    inventory = write_inventory(tmp_path / "hosts.yml", [host_a, host_b])
    report_dir = tmp_path / "reports"

    run = run_playbook(
        "diagnose_jobs.yml",
        inventory=inventory,
        extra_vars={"diagnose_jobs_report_dir": str(report_dir), "diagnose_jobs_window_margin": "2s"},
        env={"AWS_ENDPOINT_URL": aws.endpoint_url},
    )

    assert run.returncode == 0, run.output
    report = report_json(report_dir)
    got = {job["job_id"]: (job["cause"], job["host"], job["hosts"]) for job in report["jobs"]}
    where = {"decryption": host_a, "timeout": host_a, "audio": host_a, "key_missing": host_a}
    expected = {}
    for key, job in jobs.items():
        host = where.get(key, host_b).name if job.cause != "no_evidence" else None
        expected[job.job_id] = (job.cause, host, [host] if host else [])
    assert got == expected, json.dumps(report["hosts"], indent=1)[:4000]
    assert report["causes"]["no_evidence"]["count"] == 1

    # Evidence: the ERROR line with its traceback, colours stripped, the secret redacted everywhere.
    by_id = {job["job_id"]: job for job in report["jobs"]}
    decryption = "\n".join(by_id[j["decryption"].job_id]["evidence"])
    assert "[ERROR] Job" in decryption and "MAC check failed\nTraceback" in decryption
    assert "ValueError: MAC check failed" in decryption
    reports = read_reports(report_dir)
    for name, text in reports.items():
        assert PLANTED_SECRET not in text, name
        assert "\x1b" not in text and "\\u001b" not in text, name
        assert "Deactivated successfully" not in text, name  # systemd's line about the unit is no traceback
    assert PLANTED_SECRET not in run.output
    assert "Bearer [REDACTED]" in "\n".join(by_id[j["timeout"].job_id]["evidence"])

    # Bounded reading: the noise stayed on host A; only the window was read and only the lines returned.
    size = journal_bytes(host_a)
    read_a = report["hosts"][host_a.name]
    assert size > 5_000_000
    assert read_a["bytes_read"] < size / 50
    assert read_a["bytes_returned"] < size / 500
    assert read_a["bytes_returned"] < read_a["bytes_read"]
    read_b = report["hosts"][host_b.name]
    print(
        f"host A journal {size} bytes; read on the host {read_a['bytes_read']}, returned {read_a['bytes_returned']}; "
        f"host B read {read_b['bytes_read']}, returned {read_b['bytes_returned']}"
    )
    sources_b = {source["source"] for source in report["hosts"][host_b.name]["sources"]}
    assert {f"app_{started}.log.zip", f"app_{current}.log", "journal:panzoto.service"} <= sources_b
    assert json.loads(reports["job-diagnosis.json"])["schema_version"] == 1
