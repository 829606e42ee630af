"""The host-side reader: records, windows, ties by job and audio id and context, files, zips and the journal's JSON."""

from __future__ import annotations

import json
import os
import stat
import sys
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import job_log_evidence as reader
import pytest

# Loguru writes local time; the reader reads it as the host's local time. Pin UTC for the test.
os.environ["TZ"] = "UTC"
reader.time.tzset()

T0 = datetime(2025, 10, 9, 14, 0, 0, tzinfo=UTC)
WHERE = "audio_processor.py:process_job:254"
GREEN, RED, RESET = "\x1b[32m", "\x1b[31m\x1b[1m", "\x1b[0m"


def stamp(offset_s: float) -> str:
    return (T0 + timedelta(seconds=offset_s)).strftime("%Y-%m-%d %H:%M:%S")


def line(offset_s: float, level: str, message: str, colour: bool = False) -> str:
    if colour:
        return f"{GREEN}{stamp(offset_s)}{RESET} | {RED}{level: <8}{RESET} | {WHERE} - {message}"
    return f"{stamp(offset_s)} | {level: <8} | {WHERE} - {message}"


def wanted(job_id: str, audio: str | None, start_s: float, end_s: float) -> dict:
    iso = lambda s: (T0 + timedelta(seconds=s)).isoformat().replace("+00:00", "Z")  # noqa: E731
    return {"job_id": job_id, "audio_file_id": audio, "window_start": iso(start_s), "window_end": iso(end_s)}


def run(jobs: list[dict], log_dir: Path | None = None, journal: list[dict] | None = None, tmp: Path | None = None,
        **options) -> tuple[dict, dict]:  # fmt: skip
    """Call the reader's functions as the module does; returns (jobs, the module-like result parts)."""
    params = {
        "unit": "panzoto", "journalctl": "journalctl", "log_dir": str(log_dir) if log_dir else "",
        "log_globs": ["app_*"], "max_records_per_job": 50, "max_record_lines": 40, "max_line_chars": 2000,
        **options,
    }  # fmt: skip
    if journal is not None:
        script = tmp / "journalctl"
        dump = tmp / "journal.jsonl"
        dump.write_text("".join(json.dumps(entry) + "\n" for entry in journal))
        # A stand-in honouring --since/--until @EPOCH the way journalctl does.
        script.write_text(
            f"#!{sys.executable}\nimport json, sys\nargs = sys.argv[1:]\n"
            f"open({str(tmp / 'journalctl.args')!r}, 'a').write(' '.join(args) + '\\n')\n"
            "since = int(args[args.index('--since') + 1][1:]) * 10**6\n"
            "until = int(args[args.index('--until') + 1][1:]) * 10**6\n"
            f"for raw in open({str(dump)!r}):\n"
            "    if since <= int(json.loads(raw)['__REALTIME_TIMESTAMP']) <= until:\n"
            "        sys.stdout.write(raw)\n"
        )
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
        params["journalctl"] = str(script)
    parsed = reader.parse_jobs(jobs)
    windows = reader.merge_windows(parsed)
    collector = reader.Collector(parsed, params["max_records_per_job"], params["max_record_lines"],
                                 params["max_line_chars"], reader.build_patterns())  # fmt: skip
    sources: list = []
    read = reader.read_journal(params, windows, collector, sources) if journal is not None else 0
    read += reader.read_files(params, windows, collector, sources)
    return collector.result(), {"bytes_read": read, "sources": sources, "redactions": collector.redactions}


def test_a_record_keeps_its_traceback_and_loses_its_colours(tmp_path: Path) -> None:
    (tmp_path / "app_20251009_140000.log").write_text(
        "\n".join([
            line(10, "INFO", "[AUDIO] Processing transcription job j1 (attempt 3/3) for user u1", colour=True),
            line(11, "ERROR", "[ERROR] Job j1 processing failed (attempt 3/3): MAC check failed", colour=True),
            "Traceback (most recent call last):",
            '  File "/opt/panzoto/app/crypto.py", line 40, in decrypt',
            "ValueError: MAC check failed",
            line(12, "INFO", "[OK] Job j2 completed successfully in 12.3s"),
        ]) + "\n"
    )  # fmt: skip

    jobs, _ = run([wanted("j1", "a1", 0, 60)], tmp_path)

    records = jobs["j1"]
    assert [record["level"] for record in records] == ["INFO", "ERROR"]
    assert records[1]["text"].splitlines()[1:] == [
        "Traceback (most recent call last):",
        '  File "/opt/panzoto/app/crypto.py", line 40, in decrypt',
        "ValueError: MAC check failed",
    ]
    assert "\x1b" not in records[0]["text"] and records[0]["tied_by"] == "job_id"
    assert records[1]["time"] == "2025-10-09T14:00:11Z"


def test_audio_id_ties_and_context_ties_and_windows(tmp_path: Path) -> None:
    other = "5f0c8a2e-1b3d-4c5e-8f7a-9b0c1d2e3f4a"
    (tmp_path / "app_20251009_140000.log").write_text(
        "\n".join([
            line(5, "ERROR", "[ERROR] Job j1 processing failed (attempt 1/3): early, outside the window"),
            line(20, "ERROR", "[ERROR] Failed to fetch audio file a1: NoSuchKey"),
            line(30, "INFO", "[AUDIO] Processing transcription job j3 (attempt 1/3) for user u1"),
            line(31, "WARNING", "[WARN] File too large: 31.2MB > 25MB"),
            line(40, "INFO", "[AUDIO] Processing transcription job unselected9 (attempt 1/3) for user u2"),
            line(41, "WARNING", "[WARN] File too large: 40.0MB > 25MB"),
            line(50, "INFO", "[AUDIO] Processing transcription job j3 (attempt 2/3) for user u1"),
            line(51, "ERROR", f"[ERROR] Failed to fetch audio file {other}: NoSuchKey"),
        ]) + "\n"
    )  # fmt: skip

    jobs, _ = run([wanted("j1", "a1", 10, 60), wanted("j3", "a3", 25, 60)], tmp_path)

    assert [(r["tied_by"], r["text"].split(" - ", 1)[1]) for r in jobs["j1"]] == [
        ("audio_file_id", "[ERROR] Failed to fetch audio file a1: NoSuchKey")
    ]
    assert [(r["tied_by"], r["text"].split(" - ", 1)[1][:22]) for r in jobs["j3"]] == [
        ("job_id", "[AUDIO] Processing tra"),
        ("context", "[WARN] File too large:"),
        ("job_id", "[AUDIO] Processing tra"),
    ]


def test_rotated_zip_and_gz_files_are_read_and_files_outside_the_windows_are_not(tmp_path: Path) -> None:
    inner = line(100, "ERROR", "[ERROR] Transcription failed for job j1, audio a1: Error code: 429") + "\n"
    with zipfile.ZipFile(tmp_path / "app_20251009_140000.log.zip", "w") as archive:
        info = zipfile.ZipInfo("app_20251009_140000.log", date_time=(2025, 10, 9, 14, 5, 0))
        archive.writestr(info, inner)
    old = tmp_path / "app_20251001_000000.log"
    old.write_text(line(-8 * 86400, "ERROR", "[ERROR] Job j1 processing failed: old") + "\n")
    os.utime(old, (T0.timestamp() - 7 * 86400,) * 2)
    (tmp_path / "unrelated.txt").write_text("j1 j1 j1\n")

    jobs, result = run([wanted("j1", "a1", 0, 200)], tmp_path)

    assert [r["source"] for r in jobs["j1"]] == ["app_20251009_140000.log.zip:app_20251009_140000.log"]
    assert [(s["source"], s.get("skipped")) for s in result["sources"]] == [
        ("app_20251001_000000.log", "its time span misses every window"),
        ("app_20251009_140000.log.zip", None),
    ]
    assert result["bytes_read"] == len(inner)


def test_journal_json_with_byte_array_messages_and_one_call_per_merged_window(tmp_path: Path) -> None:
    def entry(offset_s: float, text: str, pid: str = "4242") -> dict:
        micros = str(int((T0.timestamp() + offset_s) * 1_000_000))
        return {"__REALTIME_TIMESTAMP": micros, "MESSAGE": list(text.encode()), "_PID": pid}

    journal = [
        entry(10, line(10, "ERROR", "[ERROR] Job j1 processing failed (attempt 3/3): Request timed out.", colour=True)),
        entry(10, "Traceback (most recent call last):"),
        entry(10, "openai.APITimeoutError: Request timed out. Authorization: Bearer sk-proj-AbCdEf0123456789XyZ_abcd"),
        entry(11, "panzoto.service: Deactivated successfully.", pid="1"),  # systemd's line about the unit
        {"__REALTIME_TIMESTAMP": str(int(T0.timestamp() + 11) * 10**6), "MESSAGE": None},
    ]

    jobs, result = run(
        [wanted("j1", "a1", 0, 60), wanted("j2", None, 30, 90), wanted("j9", None, 3600, 3700)],
        journal=journal, tmp=tmp_path,
    )  # fmt: skip

    (record,) = jobs["j1"]
    assert record["source"] == "journal" and record["text"].count("\n") == 2
    assert "Deactivated" not in record["text"]
    assert "sk-proj" not in record["text"] and "[REDACTED]" in record["text"]
    assert result["redactions"] >= 1
    calls = (tmp_path / "journalctl.args").read_text().splitlines()
    assert len(calls) == 2  # [0, 90] merged, [3600, 3700] apart
    assert f"--unit panzoto.service --since @{int(T0.timestamp())} --until @{int(T0.timestamp()) + 91}" in calls[0]


def test_python_logging_lines_in_the_journal_are_records_too(tmp_path: Path) -> None:
    """The real backend's processor logs `LEVEL:logger:message` (Python's default format) to the journal."""

    def entry(offset_s: float, text: str) -> dict:
        micros = str(int((T0.timestamp() + offset_s) * 1_000_000))
        return {"__REALTIME_TIMESTAMP": micros, "MESSAGE": text, "_PID": "4242"}

    name = "decision_data.backend.services.audio_processor"
    journal = [
        entry(5, f"INFO:{name}:[AUDIO] Processing transcription job j1 (attempt 3/3) for user u1"),
        entry(9, f"ERROR:{name}:[ERROR] Job j1 processing failed (attempt 3/3): MAC check failed"),
        entry(9, "Traceback (most recent call last):"),
        entry(9, "ValueError: MAC check failed"),
        entry(20, f"INFO:{name}:[AUDIO] Processing transcription job j2 (attempt 1/3) for user u2"),
    ]

    jobs, _ = run([wanted("j1", "a1", 0, 60)], journal=journal, tmp=tmp_path)

    first, failed = jobs["j1"]
    assert first["level"] == "INFO" and "Processing transcription job j1" in first["text"]
    assert failed["level"] == "ERROR" and failed["text"].splitlines()[-1] == "ValueError: MAC check failed"
    assert "j2" not in " ".join(record["text"] for record in jobs["j1"])


def test_caps_keep_the_latest_records_and_the_end_of_a_traceback(tmp_path: Path) -> None:
    lines = [line(i, "ERROR", f"[ERROR] Job j1 processing failed: attempt {i}") for i in range(10)]
    lines += [f"  frame {n}" for n in range(30)]
    (tmp_path / "app_20251009_140000.log").write_text("\n".join(lines) + "\n")

    jobs, _ = run([wanted("j1", None, 0, 60)], tmp_path, max_records_per_job=3, max_record_lines=5)

    assert [r["text"].split("attempt ")[1].split("\n")[0] for r in jobs["j1"]] == ["7", "8", "9"]
    assert jobs["j1"][-1]["text"].splitlines()[1:] == [
        "... (26 lines omitted)", "  frame 26", "  frame 27", "  frame 28", "  frame 29",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"job_id": "", "window_start": "2025-10-09T14:00:00Z", "window_end": "2025-10-09T14:00:00Z"}, "job_id"),
        ({"job_id": "j", "window_start": "yesterday", "window_end": "2025-10-09T14:00:00Z"}, "window_start"),
        ({"job_id": "j", "window_start": "2025-10-09T15:00:00Z", "window_end": "2025-10-09T14:00:00Z"}, "before"),
    ],
)
def test_bad_jobs_fail_in_one_line(spec: dict, message: str) -> None:
    with pytest.raises(reader.OptionError, match=message):
        reader.parse_jobs([spec])


def test_a_record_is_evidence_only_for_the_job_it_is_about(tmp_path: Path) -> None:
    """The subject is the first `Job <id>` / `job_id=` of the first line, else the first selected id in it."""
    user_a, user_b = "0a0a0a0a-1b3d-4c5e-8f7a-9b0c1d2e3f4a", "0b0b0b0b-1b3d-4c5e-8f7a-9b0c1d2e3f4a"
    (tmp_path / "app_20251009_140000.log").write_text(
        "\n".join([
            line(10, "ERROR", "[ERROR] Job jA failed: its audio is shared with job jB"),
            line(11, "ERROR", "[FAIL] job_id=jA marked as failed; retry of jB skipped"),
            line(12, "ERROR", "[ERROR] duplicate: jA already covers jB"),  # no subject named: the first id
            line(13, "INFO", f"[AUDIO] Processing transcription job jA for user {user_a}"),
            line(14, "ERROR", f"[KEY ERROR] Encryption key not found in Secrets Manager for user {user_a}"),
            line(15, "ERROR", f"[KEY ERROR] Encryption key not found in Secrets Manager for user {user_b}"),
        ]) + "\n"
    )  # fmt: skip
    jobs_wanted = [wanted("jA", None, 0, 60), wanted("jB", None, 0, 60)]
    jobs_wanted[0]["user_id"], jobs_wanted[1]["user_id"] = user_a, user_b

    jobs, _ = run(jobs_wanted, tmp_path)

    # jB is mentioned by jA's four records, never their subject; only its own user's key error is its.
    assert [(r["tied_by"], r["text"].split(" - ", 1)[1]) for r in jobs["jB"]] == [
        ("user_id", f"[KEY ERROR] Encryption key not found in Secrets Manager for user {user_b}")
    ]
    assert [(r["tied_by"], r["text"].split(" - ", 1)[1][:22]) for r in jobs["jA"]] == [
        ("job_id", "[ERROR] Job jA failed:"),
        ("job_id", "[FAIL] job_id=jA marke"),
        ("job_id", "[ERROR] duplicate: jA "),
        ("job_id", "[AUDIO] Processing tra"),
        ("context", "[KEY ERROR] Encryption"),  # names only jA's own user: jA's, by context
    ]


def test_a_private_key_whose_begin_line_falls_in_the_cut_is_masked_whole(tmp_path: Path) -> None:
    body = [("MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC" + f"{n:013d}")[:64] for n in range(30)]
    lines = [line(10, "ERROR", "[ERROR] Job j1 processing failed: config dump follows")]
    lines += [f"  frame {n}" for n in range(10)] + ["-----BEGIN PRIVATE KEY-----", *body]
    (tmp_path / "app_20251009_140000.log").write_text("\n".join(lines) + "\n")

    jobs, result = run([wanted("j1", None, 0, 60)], tmp_path, max_record_lines=8, max_line_chars=40)

    (record,) = jobs["j1"]
    assert "omitted" in record["text"] and result["redactions"] >= 1
    for secret_line in body:
        assert secret_line[:20] not in record["text"]


def test_control_characters_in_a_line_are_written_as_escapes(tmp_path: Path) -> None:
    (tmp_path / "app_20251009_140000.log").write_text(
        line(10, "ERROR", "[ERROR] Job j1 failed: bell\x07 nul\x00 title\x1b]0;owned\x07 form\x0c end") + "\n"
    )

    jobs, _ = run([wanted("j1", None, 0, 60)], tmp_path)

    text = jobs["j1"][0]["text"]
    assert "bell\\x07 nul\\x00 title" in text and "owned\\x07 form\\x0c end" in text  # colour codes stripped
    assert not any(ord(char) < 32 and char not in "\t\n" for char in text)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"journal": False, "log_dir": "/nonexistent/logs"}, "/nonexistent/logs: No such file or directory"),
        ({"journal": False, "log_dir": ""}, "nothing to read (tried no journal (journal=false), no log files"),
        (
            {"journal": True, "log_dir": "/srv/empty"},
            "no log file matches (tried journal of panzoto, /srv/empty/{app_*})",
        ),
    ],
)
def test_what_read_nothing_says_what_it_tried_in_one_line(options: dict, expected: str) -> None:
    params = {"unit": "panzoto", "log_globs": ["app_*"], **options}
    sources = (
        [{"source": "/nonexistent/logs", "error": "No such file or directory"}] if "nonexistent" in str(options) else []
    )

    message = reader.nothing_checked(params, sources)

    assert expected in message and "\n" not in message


def test_a_user_named_by_two_selected_jobs_at_once_ties_the_line_to_neither(tmp_path: Path) -> None:
    user = "0c0c0c0c-1b3d-4c5e-8f7a-9b0c1d2e3f4a"
    key_error = f"[KEY ERROR] Encryption key not found in Secrets Manager for user {user}"
    (tmp_path / "app_20251009_140000.log").write_text(
        line(20, "ERROR", key_error) + "\n" + line(50, "ERROR", key_error)
    )
    both = [wanted("j1", None, 0, 30), wanted("j2", None, 10, 60)]
    for spec in both:
        spec["user_id"] = user

    jobs, _ = run(both, tmp_path)

    # At 20 s both windows hold the line: never guessed. At 50 s only j2's does.
    assert list(jobs) == ["j2"] and [r["time"] for r in jobs["j2"]] == ["2025-10-09T14:00:50Z"]
