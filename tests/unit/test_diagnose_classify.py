"""The control-node half: which jobs are selected (the cleanup's meaning) and how evidence becomes a cause."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import processing_jobs_diagnose as diagnose
import pytest
from ansible.module_utils.panzoto.diagnosis.log_causes import build_cause_rules
from ansible.module_utils.panzoto.jobs import inspect_job

NOW = datetime(2025, 10, 19, 18, 0, tzinfo=UTC)
PREFIX = "2025-10-09 14:03:27 | ERROR | audio_processor.py:process_job:254 - "


def params(**overrides) -> dict:
    base = {name: None for name in ("older_than", "job_types", "user_ids", "job_ids")}
    return {**base, "categories": [], "statuses": [], "stuck_after": "1h", **overrides}


def job(job_id: str, status: str = "failed", message: str = "Exceeded maximum retries (3)", **extra):
    item = {"job_id": job_id, "status": status, "user_id": "u1", "created_at": "2025-10-18T10:00:00Z", **extra}
    if status == "failed":
        item["error_message"] = message
    return inspect_job(item)


@pytest.mark.parametrize(
    ("options", "selected"),
    [
        # The default: the failed jobs whose category's next step is the diagnosis.
        ({}, ["retries", "decrypt", "processing", "conversion", "summary"]),
        ({"categories": ["timeout"]}, ["timeout"]),
        (
            {"statuses": ["failed"]},
            [
                "retries",
                "timeout",
                "old",
                "mac",
                "decrypt",
                "processing",
                "conversion",
                "summary",
                "missing",
                "expired",
                "rate",
            ],
        ),
        ({"statuses": ["pending"]}, ["stuck"]),  # pending only when stuck
        ({"job_ids": ["done"]}, ["done"]),  # job ids alone: whatever the status
        ({"job_ids": ["done", "retries"], "categories": ["max_retries"]}, ["retries"]),
        ({"statuses": ["failed"], "older_than": "7d"}, ["old"]),
        ({"statuses": ["failed"], "user_ids": ["u2"]}, ["timeout"]),
        ({"categories": ["deletable"]}, ["mac", "summary", "missing", "expired"]),
    ],
)
def test_selection_means_what_the_cleanups_means(options: dict, selected: list[str]) -> None:
    jobs = [
        job("retries"),
        job("timeout", message="Processing timeout (5 minutes)", user_id="u2"),
        job("old", created_at="2025-10-01T00:00:00Z", message="Transcription failed or too short"),
        job("stuck", status="pending", created_at="2025-10-19T10:00:00Z"),
        job("fresh", status="pending", created_at="2025-10-19T17:59:00Z"),
        job("done", status="completed"),
        job("mac", status="failed", message="MAC check failed", created_at="2025-10-19T12:00:00Z"),
        # Today's messages (the backend of 2025-10-29): these leave the cause open, so they are diagnosed.
        job("decrypt", message="Failed to decrypt audio file"),
        job("processing", message="Processing error: unsupported operand type(s) for /: 'NoneType' and 'int'"),
        job("conversion", message="Processing error: Audio conversion failed: moov atom not found"),
        job("summary", message="User preferences not found", job_type="daily_summary"),
        # ... and these say it already: not diagnosed by default.
        job("missing", message="Audio file not found or access denied"),
        job("expired", message="Job expired - too old"),
        job("rate", message="Processing error: Error code: 429 - rate limit"),
    ]
    selection = diagnose.build_selection(params(**options), diagnose.build_rules(None), NOW)

    assert [j.job_id for j in jobs if selection.matches(j)] == selected


def test_the_window_runs_from_creation_to_the_last_attempt_with_the_margin() -> None:
    entry = diagnose.selected_job(
        job("j1", created_at="2025-10-09T14:00:00Z", last_attempt_at="2025-10-09T14:20:00+00:00"),
        timedelta(minutes=15),
    )

    assert (entry["window_start"], entry["window_end"]) == ("2025-10-09T13:45:00Z", "2025-10-09T14:35:00Z")


def record(host: str, time: str, message: str) -> dict:
    return {"host": host, "time": time, "text": PREFIX + message, "level": "ERROR", "source": "journal"}


def test_the_latest_matching_record_decides_and_stays_in_capped_evidence() -> None:
    records = [
        record("api-1", "2025-10-09T14:00:01Z", "[ERROR] Job j1 processing failed (attempt 1/3): Request timed out."),
        record("api-2", "2025-10-09T14:05:01Z", "[ERROR] Job j1 processing failed (attempt 2/3): MAC check failed"),
        *[record("api-2", f"2025-10-09T14:06:0{n}Z", f"[WARN] Job j1 note {n}") for n in range(5)],
    ]

    result = diagnose.diagnose_job({"job_id": "j1"}, records, build_cause_rules(), limit=3)

    assert (result["cause"], result["host"], result["hosts"]) == ("decryption_failed", "api-2", ["api-1", "api-2"])
    assert len(result["evidence"]) == 3
    assert "MAC check failed" in result["evidence"][0] and result["evidence"][0].startswith("[api-2] ")


@pytest.mark.parametrize("limit", [1, 2])
def test_the_evidence_limit_holds_when_the_deciding_record_is_not_the_last(limit: int) -> None:
    records = [
        record("api-1", "2025-10-09T14:05:01Z", "[ERROR] Job j1 processing failed (attempt 3/3): MAC check failed"),
        *[record("api-1", f"2025-10-09T14:06:0{n}Z", f"[WARN] Job j1 note {n}") for n in range(4)],
    ]

    result = diagnose.diagnose_job({"job_id": "j1"}, records, build_cause_rules(), limit=limit)

    assert len(result["evidence"]) == limit
    assert "MAC check failed" in result["evidence"][0]
    assert all("note 3" in line for line in result["evidence"][1:])


def test_unmatched_lines_are_unclassified_and_no_lines_are_no_evidence() -> None:
    rules = build_cause_rules()
    unmatched = [record("api-1", "2025-10-09T14:00:01Z", "[ERROR] Job j1 processing failed: KeyError 'foo'")]

    assert diagnose.diagnose_job({"job_id": "j1"}, unmatched, rules, 10)["cause"] == "unclassified"
    empty = diagnose.diagnose_job({"job_id": "j1"}, [], rules, 10)
    assert (empty["cause"], empty["host"], empty["evidence"]) == ("no_evidence", None, [])


def test_failed_and_unreachable_hosts_contribute_no_records_and_are_summarised() -> None:
    evidence = {
        "api-1": {"jobs": {"j1": [{"time": "t", "text": "x"}]}, "bytes_read": 10, "bytes_returned": 5},
        "api-2": {"unreachable": True, "msg": "ssh: connect refused"},
    }

    assert list(diagnose.records_by_job(evidence)) == ["j1"]
    assert diagnose.host_summary(evidence["api-2"]) == {"error": "unreachable: ssh: connect refused"}
    assert diagnose.host_summary(evidence["api-1"])["jobs_with_evidence"] == 1


def test_a_rule_made_diagnosable_by_the_user_joins_the_default_selection() -> None:
    rules = diagnose.build_rules([{"category": "expired", "next_step": "diagnose"}])
    selection = diagnose.build_selection(params(), rules, NOW)

    assert selection.matches(job("expired", message="Job expired - too old"))
    assert not selection.matches(job("missing", message="Audio file not found or access denied"))


def test_a_success_line_is_never_evidence_of_success() -> None:
    """The processor logs `[OK] Job <id> completed successfully` for jobs transcription_service failed."""
    rules = build_cause_rules()
    failed_then_ok = [
        record("api-1", "2025-10-09T14:00:01Z", "[KEY ERROR] Encryption key not found in Secrets Manager for user u1"),
        record("api-1", "2025-10-09T14:00:02Z", "[OK] Job j1 completed successfully in 0.5s"),
    ]
    only_ok = failed_then_ok[1:]

    assert diagnose.diagnose_job({"job_id": "j1"}, failed_then_ok, rules, 10)["cause"] == "encryption_key_missing"
    assert diagnose.diagnose_job({"job_id": "j1"}, only_ok, rules, 10)["cause"] == "unclassified"


def test_control_characters_from_a_host_or_the_table_reach_no_report_unescaped() -> None:
    records = [record("api-1", "2025-10-09T14:00:01Z", "[ERROR] Job j\x1b]0;owned\x07 failed: MAC check failed\x00")]

    result = diagnose.diagnose_job({"job_id": "j\x1b[2J", "user_id": "u\x0c"}, records, build_cause_rules(), 10)

    text = repr(result)
    assert "\x1b" not in "".join(result["evidence"]) + result["job_id"]
    assert result["job_id"] == "j\\x1b[2J" and result["user_id"] == "u\\x0c"
    assert "\\x1b]0;owned\\x07" in result["evidence"][0] and "\\x00" in result["evidence"][0] and text
    assert diagnose.host_summary({"failed": True, "msg": "bad \x1b[31mred"}) == {"error": "failed: bad \\x1b[31mred"}
