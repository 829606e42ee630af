"""playbooks/diagnose_jobs.yml through ansible-playbook: moto's server and two local "API servers".

The two servers are this machine (local connection) with their own log directories, so the whole
playbook (select, read on each server in parallel, classify, reports) runs without containers. The
journal is read on real hosts in tests/hosts/test_diagnose.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from support.diagnose import (
    PLANTED_SECRET,
    SECRET_CORPUS,
    FailedJob,
    processor_records,
    read_reports,
    report_json,
    seed_failed_jobs,
    todays_records,
)
from support.playbook import REPO_ROOT, VENV_BIN, PlaybookRun, run_playbook

T0 = datetime(2025, 10, 9, 14, 0, tzinfo=UTC)
NOW = "2025-10-10T09:00:00Z"


def make_jobs() -> dict[str, FailedJob]:
    window = {"created_at": T0, "last_attempt_at": T0 + timedelta(minutes=10)}
    today = {"category_message": "Failed to decrypt audio file", **window}
    jobs = {
        # The guide's max_retries jobs (old data).
        "decryption": FailedJob("decryption_failed", **window),
        "timeout": FailedJob("transcription_timeout", **window),
        "audio": FailedJob("audio_missing", **window),
        "too_large": FailedJob("file_too_large", **window),
        "rotated": FailedJob(
            "no_evidence", created_at=T0 - timedelta(days=3), last_attempt_at=T0 - timedelta(days=3, minutes=-5)
        ),
        # What the backend writes today: the item says little, the services' lines say why.
        "key_missing": FailedJob("encryption_key_missing", **today),
        "s3_denied": FailedJob("audio_download_failed", **today),
        "mac": FailedJob("decryption_failed", **today),
        "mentioned_only": FailedJob("no_evidence", **today),  # named inside another job's records only
        "proxies": FailedJob(
            "dependency_mismatch",
            category_message="Processing error: Client.__init__() got an unexpected keyword argument 'proxies'",
            **window,
        ),
        "conversion": FailedJob(
            "audio_format", category_message="Processing error: Audio conversion failed: moov atom not found", **window
        ),
        "summary": FailedJob(
            "preferences_missing", category_message="User preferences not found", job_type="daily_summary", **window
        ),
        # Not selected by default: categories whose item already says what to do, and a completed job.
        "other_category": FailedJob("audio_format", category_message="File does not start with RIFF id", **window),
        "expired": FailedJob("none", category_message="Job expired - too old", **window),
        "completed": FailedJob("none", status="completed", **window),
    }
    decryption = jobs["decryption"]
    decryption.records = processor_records(
        decryption,
        "MAC check failed",
        [
            "Traceback (most recent call last):",
            '  File "/opt/panzoto/app/crypto.py", line 40',
            "ValueError: MAC check failed",
        ],
    )
    timeout = jobs["timeout"]
    timeout.records = processor_records(
        timeout,
        "Request timed out.",
        [
            "Traceback (most recent call last):",
            f"httpx.ReadTimeout: headers={{'Authorization': 'Bearer {PLANTED_SECRET}'}}",
            "openai.APITimeoutError: Request timed out.",
        ],
    )
    audio = jobs["audio"]
    audio.records = [
        ("INFO", f"[AUDIO] Processing transcription job {audio.job_id} (attempt 3/3) for user {audio.user_id}", []),
        (
            "ERROR",
            f"[ERROR] Failed to fetch audio file {audio.audio_file_id}: An error occurred (NoSuchKey) when calling "
            "the GetObject operation: The specified key does not exist.",
            [],
        ),
    ]
    large = jobs["too_large"]
    large.records = [
        ("INFO", f"[AUDIO] Processing transcription job {large.job_id} (attempt 3/3) for user {large.user_id}", []),
        ("WARNING", "[WARN] File too large: 31.2MB > 25MB", []),
    ]
    # Today's: the key service names only the user; the S3 error names nothing (the job named last is meant).
    key = jobs["key_missing"]
    key.records = [
        ("ERROR", f"[KEY ERROR] Encryption key not found in Secrets Manager for user {key.user_id}", []),
    ]
    s3 = jobs["s3_denied"]
    s3.records = todays_records(
        s3,
        ("ERROR", "[S3 ERROR] Failed to download from S3: An error occurred (AccessDenied) when calling the "
         "GetObject operation: Access Denied", []),
    )  # fmt: skip
    mac = jobs["mac"]
    mentioned = jobs["mentioned_only"]
    mac.records = [
        ("INFO", f"[AUDIO] Processing transcription job {mac.job_id} for user {mac.user_id}; "
         f"job {mentioned.job_id} shares its audio", []),
        ("ERROR", f"[ERROR] Job {mac.job_id}: not retried, job {mentioned.job_id} holds the same audio", []),
        ("ERROR", "[DECRYPT ERROR] Decryption failed: MAC check failed",
         ["Traceback (most recent call last):", "ValueError: MAC check failed",
          # What a log line may carry that no report may hold as it is: controls and a terminal reset.
          "raw bytes: \x00\x07\x0b\x1bc\x1b]0;title\x07 end"]),
        ("WARNING", f"[FAIL] Job {mac.job_id} marked as failed: Failed to decrypt audio file", []),
    ]  # fmt: skip
    proxies = jobs["proxies"]
    proxies.records = [
        ("INFO", f"[AUDIO] Processing transcription job {proxies.job_id} for user {proxies.user_id}", []),
        ("ERROR", f"[ERROR] Transcription failed for job {proxies.job_id}: Processing error: "
         "Client.__init__() got an unexpected keyword argument 'proxies'", []),
        # The processor logs success for a job transcription_service failed: never evidence of anything.
        ("INFO", f"[OK] Job {proxies.job_id} completed successfully in 0.5s", []),
    ]  # fmt: skip
    conversion = jobs["conversion"]
    conversion.records = todays_records(
        conversion,
        ("ERROR", "Processing error: Audio conversion failed: [mov,mp4,m4a,3gp,3g2,mj2 @ 0x55d] moov atom not found",
         []),
    )  # fmt: skip
    summary = jobs["summary"]
    summary.records = todays_records(summary, ("WARNING", f"User preferences not found for user {summary.user_id}", []))
    other = jobs["other_category"]
    other.records = processor_records(other, "File does not start with RIFF id")
    done = jobs["completed"]
    done.records = [("INFO", f"[OK] Job {done.job_id} completed successfully in 12.3s", [])]
    return jobs


TODAY = ("key_missing", "s3_denied", "mac", "mentioned_only", "proxies", "conversion", "summary")
DEFAULT_SELECTION = ("decryption", "timeout", "audio", "too_large", "rotated", *TODAY)


@pytest.fixture(scope="module")
def planted(module_aws, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict, Path]:
    """Jobs in the table; server api-a logs decryption and the missing audio (plain file), api-b the timeout
    (a rotated .zip) and the too-large file; api-b's directory also holds the unselected jobs' lines."""
    jobs = make_jobs()
    seed_failed_jobs(module_aws.endpoint_url, jobs.values())
    root = tmp_path_factory.mktemp("servers")
    logs_a, logs_b = root / "api-a", root / "api-b"
    logs_a.mkdir()
    logs_b.mkdir()
    todays = [line for name in TODAY for line in jobs[name].lines()]
    (logs_a / "app_20251009_135500.log").write_text(
        "\n".join(jobs["decryption"].lines() + jobs["audio"].lines() + todays) + "\n"
    )
    with zipfile.ZipFile(logs_b / "app_20251009_135000.log.zip", "w") as archive:
        archive.writestr(
            zipfile.ZipInfo("app_20251009_135000.log", date_time=(2025, 10, 9, 14, 12, 0)),
            "\n".join(jobs["timeout"].lines()) + "\n",
        )
    (logs_b / "app_20251009_141200.log").write_text(
        "\n".join(jobs["too_large"].lines() + jobs["other_category"].lines() + jobs["completed"].lines()) + "\n"
    )
    return module_aws.endpoint_url, jobs, root


def local_servers(path: Path, root: Path, overrides: dict | None = None) -> Path:
    hosts = {}
    for name in ("api-a", "api-b"):
        hosts[name] = {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "diagnose_jobs_log_dir": str(root / name),
            "diagnose_jobs_read_journal": False,
            "diagnose_jobs_become": False,
            **(overrides or {}).get(name, {}),
        }
    path.write_text(yaml.safe_dump({"all": {"children": {"api_servers": {"hosts": hosts}}}}))
    return path


def diagnose(tmp_path: Path, endpoint_url: str, root: Path, overrides: dict | None = None, **extra) -> PlaybookRun:
    tmp_path.mkdir(parents=True, exist_ok=True)
    return run_playbook(
        "diagnose_jobs.yml",
        inventory=local_servers(tmp_path / "hosts.yml", root, overrides),
        extra_vars={"diagnose_jobs_report_dir": str(tmp_path / "reports"), "diagnose_jobs_now": NOW, **extra},
        env={"AWS_ENDPOINT_URL": endpoint_url, "TZ": "UTC"},
    )


@pytest.fixture(scope="module")
def default_run(planted, tmp_path_factory: pytest.TempPathFactory) -> tuple[PlaybookRun, Path]:
    """The playbook with its defaults on the planted servers, once for the tests that read it: (run, report dir)."""
    endpoint_url, _, root = planted
    workdir = tmp_path_factory.mktemp("default-run")
    return diagnose(workdir, endpoint_url, root), workdir / "reports"


def test_todays_failures_and_the_guides_max_retries_get_their_causes_hosts_and_actions(planted, default_run) -> None:
    """By default every failed job whose category's next step is the diagnosis: today's `Failed to decrypt audio
    file`, `Processing error: ...` and daily summaries, and the guide's max_retries."""
    _, jobs, _ = planted
    run, report_dir = default_run

    assert run.returncode == 0, run.output
    report = report_json(report_dir)
    assert set(report) >= {"schema_version", "generated_at", "table", "jobs", "causes"}
    assert (report["schema_version"], report["generated_at"], report["table"]) == (1, NOW, "panzoto-processing-jobs")
    by_id = {job["job_id"]: job for job in report["jobs"]}
    host = {"timeout": "api-b", "too_large": "api-b", "rotated": None, "mentioned_only": None}
    expected = {jobs[name].job_id: (jobs[name].cause, host.get(name, "api-a")) for name in DEFAULT_SELECTION}
    assert {job_id: (job["cause"], job["host"]) for job_id, job in by_id.items()} == expected
    categories = {job["job_id"]: job["category"] for job in report["jobs"]}
    assert categories[jobs["decryption"].job_id] == "max_retries"
    assert categories[jobs["key_missing"].job_id] == "decryption_failed"
    assert categories[jobs["proxies"].job_id] == "processing_error"
    assert categories[jobs["summary"].job_id] == "daily_summary"
    for job in report["jobs"]:
        assert set(job) >= {"job_id", "user_id", "status", "category", "cause", "host", "action", "evidence"}
        assert job["status"] == "failed" and job["action"]
    assert by_id[jobs["rotated"].job_id]["evidence"] == []
    # Named inside job mac's records only: no evidence of its own, never mac's cause and its delete remedy.
    assert by_id[jobs["mentioned_only"].job_id]["evidence"] == []
    decryption = by_id[jobs["decryption"].job_id]["evidence"]
    assert any("ValueError: MAC check failed" in record and "[ERROR] Job" in record for record in decryption)
    proxies = by_id[jobs["proxies"].job_id]
    assert proxies["remedy"] == "redeploy" and "lock" in proxies["action"]
    # Both attempted at the same moment: listed in the select step's order (ties by job id, descending).
    assert report["causes"]["decryption_failed"] == {
        "count": 2,
        "hosts": ["api-a"],
        "action": by_id[jobs["decryption"].job_id]["action"],
        "remedy": "delete",
        "job_ids": sorted([jobs["decryption"].job_id, jobs["mac"].job_id], reverse=True),
    }
    assert {cause: entry["count"] for cause, entry in report["causes"].items()} == {
        "decryption_failed": 2,
        "no_evidence": 2,
        "audio_missing": 1,
        "transcription_timeout": 1,
        "file_too_large": 1,
        "encryption_key_missing": 1,
        "audio_download_failed": 1,
        "dependency_mismatch": 1,
        "audio_format": 1,
        "preferences_missing": 1,
    }
    assert report["causes"]["no_evidence"]["hosts"] == []


def test_every_report_is_written_redacted_valid_and_junit_marks_no_evidence_skipped(planted, default_run) -> None:
    _, jobs, _ = planted
    run, report_dir = default_run

    assert run.returncode == 0, run.output
    reports = read_reports(report_dir)
    assert sorted(reports) == ["job-diagnosis.html", "job-diagnosis.json", "job-diagnosis.txt", "job-diagnosis.xml"]
    for name, text in reports.items():
        assert PLANTED_SECRET not in text, name
        # A log line's control characters arrive as visible escapes, in every format.
        assert not any(ord(char) < 32 and char not in "\t\n" for char in text), name
    assert PLANTED_SECRET not in run.output
    assert "Bearer [REDACTED]" in reports["job-diagnosis.json"]
    assert report_json(report_dir)["hosts"]["api-b"]["redactions"] >= 1
    suite = ET.fromstring(reports["job-diagnosis.xml"])  # parses: no control character made it invalid
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("12", "10", "2")
    skipped = {case.get("name") for case in suite if case.find("skipped") is not None}
    assert skipped == {jobs["rotated"].job_id, jobs["mentioned_only"].job_id}
    text = reports["job-diagnosis.txt"]
    assert "raw bytes: \\x00\\x07\\x0b\\x1bc" in text and "\x1b" not in text
    assert "transcription_timeout: 1 job(s) on api-b" in text
    assert f"{jobs['audio'].job_id} (user {jobs['audio'].user_id}, failed/max_retries): audio_missing on api-a" in text
    assert "<td>decryption_failed</td>" in reports["job-diagnosis.html"]
    # The unselected jobs' lines sit in the same files but are not returned.
    for name in ("other_category", "expired", "completed"):
        assert jobs[name].job_id not in reports["job-diagnosis.json"]


def test_no_secret_of_the_corpus_leaves_a_server(module_aws, tmp_path: Path) -> None:
    """Every shape of tests/unit/test_diagnosis_secrets.yml, in a job's traceback, is absent from what
    job_log_evidence returns (printed with -v), from every report and from the output; the PEM block's BEGIN
    line falls in the lines the record cap cuts out."""
    # Its category (expired) is not selected by default: the module's other tests never see it.
    job = FailedJob(
        "decryption_failed", created_at=T0, last_attempt_at=T0 + timedelta(minutes=1),
        category_message="Job expired - too old",
    )  # fmt: skip
    traceback = ["Traceback (most recent call last):"]
    for entry in SECRET_CORPUS:
        traceback += entry["text"].splitlines()
    traceback += ["ValueError: MAC check failed"]
    job.records = processor_records(job, "MAC check failed", traceback)
    seed_failed_jobs(module_aws.endpoint_url, [job])
    root = tmp_path / "servers"
    for name in ("api-a", "api-b"):
        (root / name).mkdir(parents=True)
    (root / "api-a" / "app_20251009_135500.log").write_text("\n".join(job.lines()) + "\n")
    (root / "api-b" / "app_20251009_135500.log").write_text("")  # read, holding nothing about the job

    run = run_playbook(
        "diagnose_jobs.yml",
        inventory=local_servers(tmp_path / "hosts.yml", root),
        extra_vars={"diagnose_jobs_report_dir": str(tmp_path / "reports"), "diagnose_jobs_now": NOW,
                    "diagnose_jobs_job_ids": [job.job_id], "diagnose_jobs_max_record_lines": 12},
        env={"AWS_ENDPOINT_URL": module_aws.endpoint_url, "TZ": "UTC"},
        verbosity=1,
    )  # fmt: skip

    assert run.returncode == 0, run.output
    assert "redactions: " in run.stdout and "bytes_returned: " in run.stdout  # the read results are printed (-v)
    (diagnosed,) = report_json(tmp_path / "reports")["jobs"]
    assert diagnosed["cause"] == "decryption_failed" and "lines omitted" in "".join(diagnosed["evidence"])
    reports = read_reports(tmp_path / "reports")
    for entry in SECRET_CORPUS:
        for secret in entry["secrets"]:
            assert secret not in run.output, entry["name"]
            for name, text in reports.items():
                assert secret not in text, (entry["name"], name)


def test_selection_options_mean_what_the_cleanups_mean(planted, tmp_path: Path) -> None:
    endpoint_url, jobs, root = planted

    by_category = diagnose(tmp_path / "category", endpoint_url, root, diagnose_jobs_categories=["format_error"])
    by_id = diagnose(tmp_path / "ids", endpoint_url, root, diagnose_jobs_job_ids=[jobs["timeout"].job_id])
    by_age = diagnose(tmp_path / "age", endpoint_url, root, diagnose_jobs_older_than="2d")

    assert by_category.returncode == 0, by_category.output
    (job,) = report_json(tmp_path / "category" / "reports")["jobs"]
    assert (job["job_id"], job["category"], job["cause"], job["host"]) == (
        jobs["other_category"].job_id,
        "format_error",
        "audio_format",
        "api-b",
    )
    assert by_id.returncode == 0, by_id.output
    assert [j["job_id"] for j in report_json(tmp_path / "ids" / "reports")["jobs"]] == [jobs["timeout"].job_id]
    assert by_age.returncode == 0, by_age.output
    assert [j["job_id"] for j in report_json(tmp_path / "age" / "reports")["jobs"]] == [jobs["rotated"].job_id]


def test_user_cause_rules_override_the_defaults(planted, tmp_path: Path) -> None:
    endpoint_url, jobs, root = planted
    rule = {"cause": "client_key_rotation", "match": "MAC check", "action": "Re-sync the keys.", "remedy": "requeue"}

    run = diagnose(tmp_path, endpoint_url, root, diagnose_jobs_cause_rules=[rule])

    assert run.returncode == 0, run.output
    report = report_json(tmp_path / "reports")
    (job,) = [job for job in report["jobs"] if job["job_id"] == jobs["decryption"].job_id]
    assert (job["cause"], job["action"]) == ("client_key_rotation", "Re-sync the keys.")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"diagnose_jobs_categories": ["no_such_category"]}, "unknown categories no_such_category"),
        ({"diagnose_jobs_window_margin": "soon"}, "invalid duration 'soon'"),
        ({"diagnose_jobs_cause_rules": [{"cause": "x", "match": "(", "regex": True}]}, "invalid regex"),
        ({"diagnose_jobs_servers": "no_such_group"}, "no hosts in group 'no_such_group'"),
        # [] narrows to nothing, as in the cleanup: refused, never read as "not given" (every default job).
        ({"diagnose_jobs_job_ids": []}, "job_ids is an empty list: it would select nothing"),
        ({"diagnose_jobs_job_types": []}, "job_types is an empty list: it would select nothing"),
        ({"diagnose_jobs_user_ids": []}, "user_ids is an empty list: it would select nothing"),
    ],
)
def test_bad_input_fails_in_one_line_and_writes_no_report(planted, tmp_path: Path, extra: dict, message: str) -> None:
    endpoint_url, _, root = planted

    run = diagnose(tmp_path, endpoint_url, root, **extra)

    assert run.returncode != 0
    assert message in run.output
    assert not (tmp_path / "reports").exists()


def test_a_server_that_cannot_be_read_is_reported_and_fails_the_run(planted, tmp_path: Path) -> None:
    endpoint_url, jobs, root = planted
    broken = {"api-b": {"ansible_python_interpreter": "/nonexistent/python3"}}

    run = diagnose(tmp_path, endpoint_url, root, overrides=broken)

    assert run.returncode != 0
    assert "Logs not read on api-b" in run.output
    report = report_json(tmp_path / "reports")
    assert "error" in report["hosts"]["api-b"] and "error" not in report["hosts"]["api-a"]
    causes = {job["job_id"]: job["cause"] for job in report["jobs"]}
    assert causes[jobs["decryption"].job_id] == "decryption_failed"
    assert "NOT READ" in (tmp_path / "reports" / "job-diagnosis.txt").read_text()


def test_the_playbook_names_work_as_strings_per_server_and_next_to_the_role_names(planted, tmp_path: Path) -> None:
    """The job_diagnosis role reads each diagnose_jobs_<option>: from the command line as key=value strings,
    as a host variable of one server, and its own job_diagnosis_<option> name works too."""
    endpoint_url, jobs, root = planted
    zips_on_b = {"api-b": {"diagnose_jobs_log_globs": ["*.zip"]}}
    strings = ["-e", "diagnose_jobs_categories=max_retries", "-e", "diagnose_jobs_max_jobs=4",
               "-e", "diagnose_jobs_evidence_limit=2"]  # fmt: skip

    run = run_playbook(
        "diagnose_jobs.yml",
        inventory=local_servers(tmp_path / "hosts.yml", root, zips_on_b),
        extra_vars={"diagnose_jobs_report_dir": str(tmp_path / "reports"), "diagnose_jobs_now": NOW},
        env={"AWS_ENDPOINT_URL": endpoint_url, "TZ": "UTC"},
        args=strings,
    )
    by_role_name = diagnose(
        tmp_path / "role", endpoint_url, root, job_diagnosis_categories=["format_error"], job_diagnosis_max_jobs=1
    )

    assert run.returncode == 0, run.output
    assert "4 job(s) of 5 selected" in " ".join(run.stdout.split())
    report = report_json(tmp_path / "reports")
    causes = {job["job_id"]: job["cause"] for job in report["jobs"]}
    assert len(causes) == 4 and jobs["rotated"].job_id not in causes  # the 4 attempted last
    assert all(len(job["evidence"]) <= 2 for job in report["jobs"])
    # api-b read only its rotated zip (its globs): the too-large job, in its current file, has no evidence.
    assert [source["source"] for source in report["hosts"]["api-b"]["sources"]] == ["app_20251009_135000.log.zip"]
    assert (causes[jobs["timeout"].job_id], causes[jobs["too_large"].job_id]) == (
        "transcription_timeout",
        "no_evidence",
    )
    assert causes[jobs["decryption"].job_id] == "decryption_failed"
    (decryption,) = [job for job in report["jobs"] if job["job_id"] == jobs["decryption"].job_id]
    assert len(decryption["evidence"]) == 2  # of its 4 records
    assert by_role_name.returncode == 0, by_role_name.output
    (job,) = report_json(tmp_path / "role" / "reports")["jobs"]
    assert (job["job_id"], job["cause"]) == (jobs["other_category"].job_id, "audio_format")


@pytest.mark.parametrize(
    ("pair", "message", "step_task"),
    [
        (
            "diagnose_jobs_max_jobs=abc",
            "argument 'diagnose_jobs_max_jobs' is of type str and we were unable to convert to int",
            "Select the jobs and their time windows",
        ),
        (
            "diagnose_jobs_max_jobs=1.9",  # not silently 1, as `| int` made it
            "argument 'diagnose_jobs_max_jobs' is of type str and we were unable to convert to int",
            "Select the jobs and their time windows",
        ),
        (
            "diagnose_jobs_statuses=broken",
            "value of diagnose_jobs_statuses must be one or more of",
            "Select the jobs and their time windows",
        ),
        (
            "diagnose_jobs_read_journal=maybe",
            "argument 'diagnose_jobs_read_journal' is of type str and we were unable to convert to bool",
            "Read the journal and the app's log files",
        ),
        (
            "diagnose_jobs_evidence_limit=ten",
            "argument 'diagnose_jobs_evidence_limit' is of type str and we were unable to convert to int",
            "Classify every job's evidence into a cause",
        ),
    ],
)
def test_a_bad_value_fails_in_one_line_naming_the_variable_as_typed_before_any_step_runs(
    planted, tmp_path: Path, pair: str, message: str, step_task: str
) -> None:
    endpoint_url, _, root = planted

    run = run_playbook(
        "diagnose_jobs.yml",
        inventory=local_servers(tmp_path / "hosts.yml", root),
        extra_vars={"diagnose_jobs_report_dir": str(tmp_path / "reports"), "diagnose_jobs_now": NOW},
        env={"AWS_ENDPOINT_URL": endpoint_url, "TZ": "UTC"},
        args=["-e", pair],
    )

    assert run.returncode != 0
    assert any(message in line for line in run.stdout.splitlines()), run.stdout[-3000:]
    assert "Refuse diagnose_jobs_* variables" in run.stdout and "Traceback" not in run.output
    assert "job_diagnosis_" not in run.stdout.split("Refuse diagnose_jobs_* variables")[1]
    # Checked before the role: no step ran (the one the option belongs to included), no report was written.
    assert f"TASK [job_diagnosis : {step_task}" not in run.stdout and "TASK [job_diagnosis" not in run.stdout
    assert not (tmp_path / "reports").exists()


@pytest.mark.parametrize(
    ("overrides", "tried"),
    [
        (
            {"diagnose_jobs_log_dir": "/nonexistent/panzoto-logs"},
            "/nonexistent/panzoto-logs: No such file or directory",
        ),
        ({"diagnose_jobs_log_globs": ["nothing_*"]}, "no log file matches"),
    ],
)
def test_a_server_that_read_nothing_fails_the_run_naming_the_host_and_the_paths(
    planted, tmp_path: Path, overrides: dict, tried: str
) -> None:
    """Not `read 0 bytes, every job no_evidence, exit 0`: a check that checked nothing is a failure."""
    endpoint_url, jobs, root = planted

    run = diagnose(tmp_path, endpoint_url, root, overrides={"api-b": overrides})

    assert run.returncode != 0
    (line,) = [line for line in run.stdout.splitlines() if line.startswith("[ERROR]") and "Logs not read on" in line]
    assert "api-b (failed: Nothing read: " in line and tried in line and "(tried no journal (journal=false), " in line
    assert "api-a" not in line
    report = report_json(tmp_path / "reports")  # still written, listing the host
    assert "Nothing read" in report["hosts"]["api-b"]["error"]
    assert {job["job_id"]: job["cause"] for job in report["jobs"]}[jobs["mac"].job_id] == "decryption_failed"


def test_a_relative_report_dir_is_the_users_working_directorys(planted, tmp_path: Path) -> None:
    endpoint_url, _, root = planted
    workdir = tmp_path / "where-i-am"
    workdir.mkdir()
    command = [
        str(VENV_BIN / "ansible-playbook"), str(REPO_ROOT / "playbooks" / "diagnose_jobs.yml"),
        "-i", str(local_servers(tmp_path / "hosts.yml", root)),
        "-e", json.dumps({"diagnose_jobs_report_dir": "out/diagnosis", "diagnose_jobs_now": NOW}),
    ]  # fmt: skip
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": endpoint_url,
        "TZ": "UTC",
        "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
    }
    env.pop("PWD", None)  # launched without a shell: only the process's own working directory tells

    run = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=600, check=False)

    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert report_json(workdir / "out" / "diagnosis")["schema_version"] == 1
    assert not (REPO_ROOT / "playbooks" / "out").exists() and not (REPO_ROOT / "out").exists()


def test_a_misspelt_variable_is_refused_with_its_close_match_before_anything_is_read(planted, tmp_path: Path) -> None:
    endpoint_url, _, root = planted

    run = diagnose(tmp_path, endpoint_url, root, diagnose_jobs_categorie=["timeout"])

    assert run.returncode != 0
    assert "diagnose_jobs_categorie is not a variable of this playbook (did you mean diagnose_jobs_categories?)" in (
        " ".join(run.output.split())
    )
    assert "TASK [job_diagnosis" not in run.stdout and not (tmp_path / "reports").exists()
