"""Reading job items: timestamps in every form the service writes, durations, junk."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from ansible.module_utils.panzoto.jobs import inspect_job, malformed_reason, parse_duration, parse_now, parse_timestamp

MOMENT = datetime(2025, 10, 9, 14, 3, 11, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    [
        "2025-10-09T14:03:11",  # naive: the service's datetime.utcnow().isoformat()
        "2025-10-09T14:03:11+00:00",
        "2025-10-09T14:03:11Z",
        "2025-10-09T14:03:11z",
        "2025-10-09 14:03:11",
        "2025-10-09T16:03:11+02:00",
        "  2025-10-09T14:03:11Z  ",
    ],
)
def test_every_timestamp_form_is_the_same_instant(text: str) -> None:
    assert parse_timestamp(text) == MOMENT


def test_fractional_seconds_are_kept() -> None:
    assert parse_timestamp("2025-10-09T14:03:11.250000Z") == MOMENT + timedelta(milliseconds=250)


@pytest.mark.parametrize(
    "garbage", ["", " ", "yesterday", "2025-13-45T10:00:00", "not-a-date", None, 1760018591, Decimal("1.5"), ["x"]]
)
def test_garbage_timestamps_are_none(garbage: object) -> None:
    assert parse_timestamp(garbage) is None


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("90s", 90),
        ("30m", 1800),
        ("1h", 3600),
        ("7d", 604800),
        ("2w", 1209600),
        ("3600", 3600),
        (45, 45),
        ("1.5h", 5400),
    ],
)
def test_durations(value: object, seconds: int) -> None:
    assert parse_duration(value) == timedelta(seconds=seconds)


@pytest.mark.parametrize("value", ["", "soon", "7 days", "-1h", "1y", True, -5])
def test_bad_durations_raise_one_line(value: object) -> None:
    with pytest.raises(ValueError, match=r"invalid duration|cannot be negative"):
        parse_duration(value)


def test_now_is_fixed_or_current() -> None:
    assert parse_now("2025-10-19T18:00:00Z") == datetime(2025, 10, 19, 18, tzinfo=UTC)
    assert abs(parse_now(None) - datetime.now(UTC)) < timedelta(seconds=5)
    with pytest.raises(ValueError, match="invalid now"):
        parse_now("tomorrow")


GOOD = {
    "job_id": "j1",
    "user_id": "u1",
    "job_type": "transcription",
    "status": "failed",
    "audio_file_id": "a1",
    "created_at": "2025-10-09T14:03:11",
    "retry_count": Decimal(3),
    "error_message": "Exceeded maximum retries (3)",
}


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"status": None}, "status_missing"),
        ({"status": Decimal(1)}, "status_not_string"),
        ({"status": "cancelled"}, "status_unknown"),
        ({"status": "FAILED"}, "status_unknown"),
        ({"created_at": None}, "created_at_missing"),
        ({"created_at": "yesterday"}, "created_at_unparseable"),
        ({"created_at": Decimal(1760018591)}, "created_at_unparseable"),
        ({"retry_count": "3"}, "retry_count_not_number"),
        ({"error_message": Decimal(500)}, "error_message_not_string"),
        ({"error_message": {"detail": "x"}}, "error_message_not_string"),
    ],
)
def test_malformed_items_name_their_first_problem(changes: dict, reason: str) -> None:
    item = {key: value for key, value in {**GOOD, **changes}.items() if value is not None}
    assert malformed_reason(item) == reason
    job = inspect_job(item)
    assert job.malformed == reason
    assert job.status is None and job.category is None


def test_non_string_message_on_a_job_that_did_not_fail_is_ignored() -> None:
    assert malformed_reason({**GOOD, "status": "completed", "error_message": Decimal(1)}) is None


def test_a_well_formed_failed_job() -> None:
    job = inspect_job(GOOD)
    assert job.malformed is None
    assert (job.status, job.category, job.job_type) == ("failed", "max_retries", "transcription")
    assert job.created_at == MOMENT


def test_failed_job_without_a_message_is_other_and_missing_type_is_unknown() -> None:
    item = {key: value for key, value in GOOD.items() if key not in ("error_message", "job_type")}
    job = inspect_job(item)
    assert (job.category, job.job_type) == ("other", "unknown")


@pytest.mark.parametrize(
    "edge",
    [
        "0001-01-01T00:00:00+14:00",  # valid ISO-8601, before year 1 once in UTC
        "9999-12-31T23:59:59-14:00",  # after year 9999 once in UTC
        "0001-01-01T00:00:00Z",  # in range, but a duration subtracted from it would overflow
        "9999-12-31T23:59:59",
    ],
)
def test_dates_at_the_calendars_edge_are_out_of_range_never_a_crash(edge: str) -> None:
    assert parse_timestamp(edge) is None
    item = {"job_id": "j", "status": "failed", "created_at": edge, "error_message": "x"}
    job = inspect_job(item)
    assert job.malformed == "created_at_out_of_range"
    assert inspect_job({**item, "created_at": "2025-10-09T14:03:11Z", "completed_at": edge}).completed_at is None


def test_every_allowed_duration_stays_in_range_from_every_accepted_date() -> None:
    longest = parse_duration("36500d")
    for text in ("0101-01-01T00:00:00Z", "9898-12-31T23:59:59Z"):
        moment = parse_timestamp(text)
        assert moment is not None
        assert moment - longest < moment < moment + longest  # no OverflowError


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-01-01T02:00:00+02:00", datetime(2025, 1, 1, 0, 0, tzinfo=UTC)),  # converted, not taken as UTC
        ("2025-01-01T00:00:00-00:30", datetime(2025, 1, 1, 0, 30, tzinfo=UTC)),
        ("2025-01-01T00:00:00", datetime(2025, 1, 1, tzinfo=UTC)),
        ("2025-01-01T00:00:00Z", datetime(2025, 1, 1, tzinfo=UTC)),
        ("0100-12-01T00:00:00", None),  # near the calendar's edge: the checked way, not the quick one
        ("9999-12-31T23:59:59", None),
    ],
)
def test_the_usual_timestamps_take_the_quick_way_with_the_same_answers(value, expected):
    parsed = parse_timestamp(value)
    assert parsed == expected
    assert parsed is None or parsed.tzinfo is UTC
