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
# The processor's own lines: Python logging's default format, no time of their own (the journal has it).
PROCESSOR = "WARNING:decision_data.backend.services.audio_processor:"
ROOT = "ERROR:root:"


def loguru(module: str, message: str, level: str = "ERROR") -> str:
    return f"2025-10-09 14:03:27 | {level: <8} | {module} - {message}"


# Records as the real backend writes them (its code of 2025-10-29), with the cause each must get.
RECORDS = {
    "dependency_mismatch": PROCESSOR + "[FAIL] Job j1 marked as failed: Processing error: "
    "Client.__init__() got an unexpected keyword argument 'proxies'",
    "encryption_key_missing": loguru(
        "aes_encryption:get_user_key:61", "[KEY ERROR] Encryption key not found in Secrets Manager for user u1"
    ),
    "encryption_key_fetch_failed": loguru(
        "aes_encryption:get_user_key:66",
        "[KEY ERROR] Failed to fetch encryption key: An error occurred (AccessDeniedException) when calling the "
        "GetSecretValue operation: User is not authorized to perform: secretsmanager:GetSecretValue",
    ),
    "decryption_iv_length": PREFIX
    + "[ERROR] Job j1 processing failed (attempt 3/3): Incorrect IV length (it must be 16 bytes long)",
    "decryption_failed": loguru(
        "aes_encryption:decrypt_file:88", "[DECRYPT ERROR] Decryption failed: MAC check failed"
    ),
    "audio_missing": loguru(
        "aes_encryption:download_from_s3:40",
        "[S3 ERROR] Failed to download from S3: An error occurred (NoSuchKey) when calling the GetObject operation: "
        "The specified key does not exist.",
    ),
    "audio_download_failed": loguru(
        "aes_encryption:download_from_s3:40",
        "[S3 ERROR] Failed to download from S3: An error occurred (AccessDenied) when calling the GetObject "
        "operation: Access Denied",
    ),
    "file_too_large": PROCESSOR + "[FAIL] Job j1 marked as failed: File too large (8.0MB)",
    "ffmpeg_missing": loguru(
        "transcription_service:convert_audio:120",
        "Processing error: ffmpeg is not installed. Please install ffmpeg: apt-get install ffmpeg",
    ),
    "audio_conversion_timeout": loguru(
        "transcription_service:convert_audio:125", "Processing error: Audio conversion timed out after 30 seconds"
    ),
    "processing_timeout": PROCESSOR + "[FAIL] Job j1 marked as failed: Processing timeout (5 minutes)",
    "transcription_rate_limited": loguru(
        "transcription_service:process_transcription_job:210",
        "Processing error: Error code: 429 - {'error': {'message': 'Rate limit reached for whisper-1'}}",
    ),
    "transcription_server_error": PREFIX + "[ERROR] Transcription failed for job j1, audio a1: Error code: 503 - "
    "{'error': {'message': 'Service Unavailable'}}",
    "transcription_unreachable": loguru(
        "transcription_service:process_transcription_job:210",
        "Processing error: Connection error.\nTraceback (most recent call last):\n"
        "httpx.ConnectError: [Errno -3] Temporary failure in name resolution\n"
        "openai.APIConnectionError: Connection error.",
    ),
    "transcription_timeout": loguru(
        "transcription_service:process_transcription_job:210",
        "Processing error: Request timed out.\nTraceback (most recent call last):\n"
        "httpx.ReadTimeout: The read operation timed out\nopenai.APITimeoutError: Request timed out.",
    ),
    "audio_format": loguru(
        "transcription_service:convert_audio:118",
        "Processing error: Audio conversion failed: [mov,mp4,m4a,3gp,3g2,mj2 @ 0x55d] moov atom not found",
    ),
    "preferences_missing": PROCESSOR + "[FAIL] Job j1 marked as failed: User preferences not found",
    "audio_fetch_failed": PROCESSOR + "[FAIL] Job j1 marked as failed: Failed to fetch audio file: "
    "Could not connect to the endpoint URL",
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
        # The item's message for four different causes: only the lines before it say which.
        "[FAIL] Job j1 marked as failed: Failed to decrypt audio file",
    ],
)
def test_bookkeeping_lines_name_no_cause(message: str) -> None:
    assert build_cause_rules().match(message_of(PREFIX + message)) is None
    assert build_cause_rules().match(message_of(PROCESSOR + message)) is None


def test_the_processors_root_logging_traceback_is_read_without_its_prefix() -> None:
    record = (
        ROOT + "[ERROR] Error decrypting audio file: MAC check failed\nTraceback (most recent call last):\n"
        "ValueError: MAC check failed"
    )

    assert message_of(record).startswith("[ERROR] Error decrypting")
    assert build_cause_rules().match(message_of(record)).cause == "decryption_failed"


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
