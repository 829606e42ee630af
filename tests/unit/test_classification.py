"""Error classification: every message of the ops guide and docs/DESIGN.md §3, variants, junk."""

from __future__ import annotations

import pytest
from ansible.module_utils.panzoto.classification import (
    CATCH_ALL,
    DEFAULT_RULES,
    RuleError,
    build_rules,
    classify,
    rules_by_category,
)

GUIDE_MESSAGES = [
    ("Automatic decryption not yet implemented - requires manual trigger", "legacy_encryption"),
    ("Exceeded maximum retries (3)", "max_retries"),
    ("Transcription failed or too short", "transcription_failed"),
    ("MAC check failed", "decryption_error"),
    ("File does not start with RIFF id", "format_error"),
    ("Transcription processing timeout", "timeout"),
    ("Processing timeout (5 minutes)", "timeout"),
    ("Summary generation timeout (5 minutes)", "timeout"),
]


@pytest.mark.parametrize(("message", "category"), GUIDE_MESSAGES)
def test_every_guide_message_has_its_category(message: str, category: str) -> None:
    assert classify(message) == category


@pytest.mark.parametrize(
    ("message", "category"),
    [
        ("AUTOMATIC DECRYPTION NOT YET IMPLEMENTED", "legacy_encryption"),
        ("automatic decryption not yet implemented (job 42)", "legacy_encryption"),
        ("Error: MAC check failed", "decryption_error"),
        ("ValueError: mac CHECK failed", "decryption_error"),
        ("ffmpeg: File does not start with RIFF id", "format_error"),
        ("exceeded maximum retries (5)", "max_retries"),
        ("transcription FAILED or too short: 0.4s", "transcription_failed"),
        ("Timeout while calling Whisper", "timeout"),
    ],
)
def test_case_and_wording_variants_match(message: str, category: str) -> None:
    assert classify(message) == category


@pytest.mark.parametrize("message", ["", "   ", None, "Something nobody has seen", "decryption", "RIFF"])
def test_unknown_empty_and_missing_messages_are_other(message: object) -> None:
    assert classify(message) == CATCH_ALL


@pytest.mark.parametrize("message", [3, 3.5, ["MAC check failed"], {"error": "x"}, b"MAC check failed", True])
def test_non_string_messages_cannot_be_classified(message: object) -> None:
    assert classify(message) is None


def test_first_matching_rule_wins_in_order() -> None:
    # Both patterns occur; legacy_encryption comes first in the guide's order.
    assert classify("Automatic decryption not yet implemented after timeout") == "legacy_encryption"


def test_default_rules_carry_the_guide_advice() -> None:
    rules = rules_by_category(build_rules())
    assert rules["legacy_encryption"].deletable is True
    assert rules["decryption_error"].deletable is True
    assert rules["max_retries"].deletable is False
    assert "retry" in rules["max_retries"].solution.lower()
    assert "ffmpeg" in rules["format_error"].solution
    assert list(rules)[-1] == CATCH_ALL
    guide = ["legacy_encryption", "max_retries", "transcription_failed", "decryption_error", "format_error", "timeout"]
    assert [rule.category for rule in DEFAULT_RULES if rule.category in guide] == guide


# What the backend's code (2025-10-29) writes on items today, as it spells it, with the category each
# must land in: `other` is only for messages nobody has seen.
TODAY_MESSAGES = [
    ("Failed to decrypt audio file", "decryption_failed", "diagnose"),
    ("Processing error: Error code: 429 - {'error': {'message': 'Rate limit reached'}}", "transcription_api",
     "requeue"),
    ("Processing error: Request timed out.", "transcription_api", "requeue"),
    ("Processing error: Connection error.", "transcription_api", "requeue"),
    ("Processing error: Audio conversion failed: [mp3 @ 0x55] Invalid data found", "audio_conversion", "diagnose"),
    ("Processing error: Audio conversion timed out after 30 seconds", "audio_conversion", "diagnose"),
    ("Processing error: ffmpeg is not installed. Please install ffmpeg: apt-get install ffmpeg", "ffmpeg_missing",
     "repair_ffmpeg"),
    ("Processing error: unsupported operand type(s) for /: 'NoneType' and 'int'", "processing_error", "diagnose"),
    ("Processing error: Client.__init__() got an unexpected keyword argument 'proxies'", "processing_error",
     "diagnose"),
    ("Job processing failed: 'NoneType' object is not subscriptable", "processing_error", "diagnose"),
    ("Audio file not found or access denied", "audio_missing", "cleanup"),
    ("Audio file not found in database", "audio_missing", "cleanup"),
    ("No audio file ID provided", "audio_missing", "cleanup"),
    ("File too large (8.0MB)", "file_too_large", "review"),
    ("Audio duration 1.2s outside valid range (3-300s)", "audio_duration", "cleanup"),
    ("User not found in database", "user_missing", "cleanup"),
    ("Failed to fetch user: An error occurred (ExpiredTokenException)", "lookup_failed", "requeue"),
    ("Failed to fetch audio file: An error occurred (ResourceNotFoundException)", "lookup_failed", "requeue"),
    ("Job expired - too old", "expired", "requeue"),
    ("Processing timeout (5 minutes)", "timeout", "requeue"),
    ("User preferences not found", "daily_summary", "diagnose"),
    ("Failed to fetch preferences: An error occurred (AccessDeniedException)", "daily_summary", "diagnose"),
    ("Summary generation timeout (5 minutes)", "timeout", "requeue"),
    ("Exceeded maximum retries (3)", "max_retries", "diagnose"),
]  # fmt: skip


@pytest.mark.parametrize(("message", "category", "next_step"), TODAY_MESSAGES)
def test_every_message_the_code_writes_today_has_its_category_and_next_step(message, category, next_step) -> None:
    rules = build_rules()
    assert classify(message, rules) == category
    assert rules_by_category(rules)[category].next_step == next_step


def test_a_user_rule_may_set_the_next_step_and_a_bad_one_is_refused_in_one_line() -> None:
    rules = rules_by_category(build_rules([{"category": "file_too_large", "next_step": "cleanup"}]))
    assert rules["file_too_large"].next_step == "cleanup" and rules["file_too_large"].pattern == "File too large"
    with pytest.raises(RuleError, match=r"classification_rules\[0\]\.next_step must be one of cleanup, diagnose"):
        build_rules([{"category": "expired", "next_step": "pray"}])


def test_user_rule_adds_a_category_matched_before_broad_defaults() -> None:
    rules = build_rules([{"category": "whisper_timeout", "match": "whisper api timeout"}])
    assert classify("Whisper API timeout after 30s", rules) == "whisper_timeout"
    assert classify("Processing timeout (5 minutes)", rules) == "timeout"


def test_user_rule_overrides_a_default_in_place_and_keeps_the_rest() -> None:
    rules = build_rules([{"category": "timeout", "match": "timed out", "deletable": True}])
    by_name = rules_by_category(rules)
    assert by_name["timeout"].deletable is True
    assert by_name["timeout"].solution == rules_by_category(build_rules())["timeout"].solution
    assert classify("upload timed out", rules) == "timeout"
    # In place: the rules before it still win ("Request timed out." is the transcription API's).
    assert classify("Processing error: Request timed out.", rules) == "transcription_api"
    assert classify("Processing timeout (5 minutes)", rules) == CATCH_ALL


def test_user_rule_can_use_a_regex_and_remove_a_default() -> None:
    rules = build_rules(
        [{"category": "quota", "match": r"quota.*exceeded", "regex": True}, {"category": "timeout", "remove": True}]
    )
    assert classify("Quota for org-1 exceeded", rules) == "quota"
    assert classify("Processing timeout (5 minutes)", rules) == CATCH_ALL
    assert "timeout" not in rules_by_category(rules)


def test_catch_all_advice_can_change_but_it_stays_last() -> None:
    rules = build_rules([{"category": "other", "solution": "Page the on-call."}])
    assert rules[-1].category == CATCH_ALL
    assert rules[-1].solution == "Page the on-call."


@pytest.mark.parametrize(
    ("rule", "fragment"),
    [
        ("not a dict", "must be a dict"),
        ({"match": "x"}, "category must be a lower_snake_case name"),
        ({"category": "Bad Name", "match": "x"}, "lower_snake_case"),
        ({"category": "new_one"}, "needs a non-empty match"),
        ({"category": "new_one", "match": "  "}, "needs a non-empty match"),
        ({"category": "new_one", "match": "(", "regex": True}, "invalid regex"),
        ({"category": "new_one", "match": "x", "colour": "red"}, "unknown keys: colour"),
        ({"category": "new_one", "match": "x", "deletable": "yes"}, "deletable must be true or false"),
        ({"category": "other", "match": "x"}, "takes no match"),
        ({"category": "other", "remove": True}, "cannot be removed"),
        ({"category": "nonexistent", "remove": True}, "cannot remove unknown category"),
    ],
)
def test_bad_rules_give_one_line_errors(rule: object, fragment: str) -> None:
    with pytest.raises(RuleError) as raised:
        build_rules([rule])
    assert fragment in str(raised.value)
    assert "\n" not in str(raised.value)


def test_the_memo_is_per_rule_list_bounded_and_never_changes_an_answer(monkeypatch):
    from ansible.module_utils.panzoto import classification

    monkeypatch.setattr(classification._Matcher, "MEMO", 2)
    custom = build_rules([{"category": "quota", "match": r"quota \d+ exceeded", "regex": True, "solution": "Wait."}])
    messages = ["Quota 7 exceeded", "MAC check failed", "Exceeded maximum retries (3)", "quota x exceeded", "MAC"]
    expected = ["quota", "decryption_error", "max_retries", CATCH_ALL, CATCH_ALL]
    for _ in range(3):  # the first messages are remembered, the rest matched every time: same answers
        assert [classify(message, custom) for message in messages] == expected
    # The same message under the default rules: its own memo, its own answer.
    assert classify("Quota 7 exceeded") == CATCH_ALL
    assert len(classification._matcher(custom).memo) == 2
