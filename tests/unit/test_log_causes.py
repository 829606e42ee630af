"""Cause rules: each default cause from the processor's real lines, ordering, and users' rules."""

from __future__ import annotations

import pytest
from ansible.module_utils.panzoto.diagnosis.log_causes import (
    DEFAULT_CAUSE_RULES,
    NO_EVIDENCE,
    REMEDIES,
    UNCLASSIFIED,
    CauseRuleError,
    build_cause_rules,
)
from ansible.module_utils.panzoto.diagnosis.loguru import message_of

PREFIX = "2025-10-09 14:03:27 | ERROR | audio_processor.py:process_job:254 - "

# Records as the backend writes them (BACKEND.md "Its logs"), with the cause each must get.
RECORDS = {
    "decryption_failed": PREFIX + "[ERROR] Job j1 processing failed (attempt 3/3): MAC check failed\n"
    'Traceback (most recent call last):\n  File "/opt/panzoto/app/crypto.py", line 40, in decrypt\n'
    "ValueError: MAC check failed",
    "decryption_iv_length": PREFIX
    + "[ERROR] Job j1 processing failed (attempt 3/3): Incorrect IV length (it must be 16 bytes long)",
    "audio_missing": PREFIX + "[ERROR] Failed to fetch audio file a1: An error occurred (NoSuchKey) when calling the "
    "GetObject operation: The specified key does not exist.",
    "file_too_large": "2025-10-09 14:03:27 | WARNING | audio_processor.py:process_job:201 - "
    "[WARN] File too large: 31.2MB > 25MB",
    "processing_timeout": PREFIX + "[TIMEOUT] Job j1 timed out after 5 minutes",
    "transcription_rate_limited": PREFIX + "[ERROR] Transcription failed for job j1, audio a1: Error code: 429 - "
    "{'error': {'message': 'Rate limit reached for whisper-1'}}",
    "transcription_server_error": PREFIX + "[ERROR] Transcription failed for job j1, audio a1: Error code: 503 - "
    "{'error': {'message': 'Service Unavailable'}}",
    "transcription_timeout": PREFIX + "[ERROR] Job j1 processing failed (attempt 2/3): Request timed out.\n"
    "Traceback (most recent call last):\nhttpx.ReadTimeout: The read operation timed out\n"
    "openai.APITimeoutError: Request timed out.",
    "audio_format": PREFIX + "[ERROR] Job j1 processing failed (attempt 3/3): File does not start with RIFF id",
    "audio_fetch_failed": PREFIX + "[ERROR] Failed to fetch audio file a1: Could not connect to the endpoint URL",
}


@pytest.mark.parametrize("cause", sorted(RECORDS))
def test_each_default_cause_is_found_in_the_processors_lines(cause: str) -> None:
    rules = build_cause_rules()

    assert rules.match(message_of(RECORDS[cause])).cause == cause


def test_every_default_cause_has_a_test_record_an_action_and_a_known_remedy() -> None:
    assert {rule.cause for rule in DEFAULT_CAUSE_RULES} == set(RECORDS)
    for rule in DEFAULT_CAUSE_RULES:
        assert rule.action.strip() and rule.remedy in REMEDIES


@pytest.mark.parametrize(
    "message",
    [
        "[WARN] Job j1 exceeded max retries (3)",
        "[FAIL] Job j1 marked as failed: Exceeded maximum retries (3)",
        "[AUDIO] Processing transcription job j1 (attempt 2/3) for user u1",
        "[OK] Job j2 completed successfully in 12.3s",
    ],
)
def test_bookkeeping_lines_name_no_cause(message: str) -> None:
    assert build_cause_rules().match(message_of(PREFIX + message)) is None


def test_loguru_line_numbers_are_not_read_as_http_status_codes() -> None:
    record = "2025-10-09 14:03:27 | ERROR | audio_processor.py:process_job:503 - [ERROR] Job j1 failed: boom 429x"

    assert build_cause_rules().match(message_of(record)) is None


def test_a_new_user_cause_is_matched_before_the_defaults() -> None:
    rules = build_cause_rules(
        [{"cause": "quota", "match": "insufficient_quota", "action": "Pay.", "remedy": "requeue"}]
    )

    matched = rules.match("RateLimitError: Error code: 429 - insufficient_quota")

    assert (matched.cause, matched.action, matched.remedy) == ("quota", "Pay.", "requeue")


def test_overriding_a_default_keeps_its_place_and_inherits_what_it_omits() -> None:
    default = next(rule for rule in DEFAULT_CAUSE_RULES if rule.cause == "audio_format")
    rules = build_cause_rules([{"cause": "audio_format", "action": "Rebuild the image."}])

    overridden = rules.by_cause()["audio_format"]

    assert [rule.cause for rule in rules.rules] == [rule.cause for rule in DEFAULT_CAUSE_RULES]
    assert (overridden.pattern, overridden.action, overridden.remedy) == (
        default.pattern,
        "Rebuild the image.",
        "repair_host",
    )


def test_a_default_can_be_removed_and_evidence_causes_take_only_an_action() -> None:
    rules = build_cause_rules(
        [{"cause": "audio_fetch_failed", "remove": True}, {"cause": NO_EVIDENCE, "action": "Ok."}]
    )

    assert "audio_fetch_failed" not in rules.by_cause()
    assert rules.no_evidence.action == "Ok."
    assert rules.unclassified.cause == UNCLASSIFIED


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nope", r"cause_rules\[0\] must be a dict"),
        ({"cause": "Bad Name", "match": "x"}, "lower_snake_case"),
        ({"cause": "x", "match": "a", "colour": "red"}, "unknown keys: colour"),
        ({"cause": "new_cause"}, "needs a non-empty match"),
        ({"cause": "x", "match": "(", "regex": True}, "invalid regex"),
        ({"cause": "x", "match": "a", "remedy": "pray"}, "remedy must be one of"),
        ({"cause": "ghost", "remove": True}, "cannot remove unknown cause"),
        ({"cause": NO_EVIDENCE, "match": "x"}, "only its action may change"),
    ],
)
def test_bad_user_rules_fail_with_one_line_naming_the_rule(spec: object, message: str) -> None:
    with pytest.raises(CauseRuleError, match=message) as raised:
        build_cause_rules([spec])

    assert "\n" not in str(raised.value)
