"""What a processing-job item means: parsing its fields and spotting junk.

Real tables hold items without a status, non-string error messages,
unparseable dates and numbers stored as strings (docs/DESIGN.md §3). Every tool reads
items through inspect_job(), so they all agree on what is malformed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from ansible.module_utils.panzoto.classification import CATCH_ALL_RULE, DEFAULT_RULES, Rule, classify

JOB_STATUSES = ("pending", "processing", "completed", "failed")
# Attributes the tools read; scans project only these (status is a DynamoDB reserved word).
JOB_ATTRIBUTES = (
    "job_id",
    "user_id",
    "job_type",
    "status",
    "audio_file_id",
    "created_at",
    "completed_at",
    "retry_count",
    "last_attempt_at",
    "error_message",
)
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*$", re.IGNORECASE)
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# Longer is a typo, and Python's dates end in year 9999: refuse it on the option.
MAX_DURATION_DAYS = 36500


# Dates this far from the calendar's ends are junk, and refusing them keeps every
# `date +/- duration` the tools compute (durations are capped at MAX_DURATION_DAYS) in range.
EARLIEST_DATE = datetime.min.replace(tzinfo=UTC) + timedelta(days=MAX_DURATION_DAYS)
LATEST_DATE = datetime.max.replace(tzinfo=UTC) - timedelta(days=MAX_DURATION_DAYS)
# Years for which any offset keeps a date inside EARLIEST_DATE..LATEST_DATE (exclusive bounds).
SAFE_YEARS = (EARLIEST_DATE.year + 1, LATEST_DATE.year - 1)


def _parse_iso(value: object) -> datetime | None:
    """The datetime an ISO-8601 string spells (naive or aware, not yet in UTC), or None."""
    if not isinstance(value, str):
        return None
    try:
        # Python 3.11's fromisoformat reads all three forms, `Z` included: one call for the usual value.
        return datetime.fromisoformat(value)
    except ValueError:
        text = value.strip()
        if not text:
            return None
        if text[-1] in "zZ":
            text = text[:-1] + "+00:00"
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            return None


def _in_utc(parsed: datetime) -> datetime | None:
    """`parsed` as an aware UTC datetime, or None when it falls outside EARLIEST_DATE..LATEST_DATE.

    `0001-01-01T00:00:00+14:00` is valid ISO-8601 yet before year 1 in UTC (OverflowError).
    """
    try:
        moment = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except OverflowError:
        return None
    return moment if EARLIEST_DATE <= moment <= LATEST_DATE else None


def parse_timestamp(value: object) -> datetime | None:
    """An aware UTC datetime from the ISO-8601 forms the service writes, or None.

    Seen in the table: naive (taken as UTC), with `+00:00`, and with `Z`. A date at the
    calendar's edge (outside EARLIEST_DATE..LATEST_DATE) is None too: junk, never a crash.
    """
    if value.__class__ is str:
        # The usual value, naive or already UTC, in years well inside the range: no conversion, no checks.
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is not None and SAFE_YEARS[0] < parsed.year < SAFE_YEARS[1]:
            zone = parsed.tzinfo
            if zone is None:
                return parsed.replace(tzinfo=UTC)
            if zone is UTC:
                return parsed
    parsed = _parse_iso(value)
    return _in_utc(parsed) if parsed is not None else None


def parse_duration(value: object) -> timedelta:
    """`90s`, `30m`, `1h`, `7d`, `2w` or a number of seconds, as a timedelta.

    Raises ValueError with a one-line message on anything else.
    """
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}: use a number of seconds or forms like 30m, 1h, 7d")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = DURATION.match(str(value))
        if not match:
            raise ValueError(f"invalid duration {value!r}: use a number of seconds or forms like 30m, 1h, 7d")
        seconds = float(match.group(1)) * DURATION_UNITS[(match.group(2) or "s").lower()]
    if seconds < 0:
        raise ValueError(f"invalid duration {value!r}: it cannot be negative")
    if not seconds <= MAX_DURATION_DAYS * 86400:  # also NaN and infinity
        raise ValueError(f"invalid duration {value!r}: at most {MAX_DURATION_DAYS}d (100 years)")
    return timedelta(seconds=seconds)


def parse_now(value: object) -> datetime:
    """The reference time: a given ISO-8601 instant (for reproducible runs) or the current time."""
    if value in (None, ""):
        return datetime.now(UTC)
    parsed = parse_timestamp(value)
    if parsed is None:
        raise ValueError(f"invalid now {value!r}: use an ISO-8601 timestamp such as 2025-10-19T18:00:00Z")
    return parsed


def isoformat(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None


@dataclass(slots=True)
class Job:
    """One item of the jobs table, read defensively (treat it as read-only).

    Not frozen: a frozen dataclass sets each of its eleven fields through object.__setattr__,
    and a job is built for every item of every scan.
    """

    item: dict
    job_id: str | None
    status: str | None
    job_type: str
    user_id: str | None
    audio_file_id: str | None
    created_at: datetime | None
    completed_at: datetime | None
    error_message: object
    category: str | None  # failed jobs only
    malformed: str | None  # why the item cannot be counted, or None

    def age(self, now: datetime) -> timedelta | None:
        return now - self.created_at if self.created_at else None


def malformed_reason(item: dict, created_at: datetime | None = None) -> str | None:
    """Why an item is junk (the first problem found), or None for a well-formed job.

    `created_at` is the item's creation time when the caller has parsed it already.
    """
    status = item.get("status")
    if status is None:
        return "status_missing"
    if not isinstance(status, str):
        return "status_not_string"
    if status not in JOB_STATUSES:
        return "status_unknown"
    if item.get("created_at") is None:
        return "created_at_missing"
    if created_at is None and parse_timestamp(item["created_at"]) is None:
        return "created_at_unparseable" if _parse_iso(item["created_at"]) is None else "created_at_out_of_range"
    if "retry_count" in item and not isinstance(item["retry_count"], (Decimal, int)):
        return "retry_count_not_number"
    if status == "failed" and item.get("error_message") is not None and not isinstance(item["error_message"], str):
        return "error_message_not_string"
    return None


_STATUS_SET = frozenset(JOB_STATUSES)
_ABSENT = object()


def inspect_job(item: dict, rules: tuple[Rule, ...] = (*DEFAULT_RULES, CATCH_ALL_RULE)) -> Job:
    """A Job from a deserialized item (boto3 TypeDeserializer types)."""
    get = item.get
    status = get("status")
    created_at = parse_timestamp(get("created_at"))
    error_message = get("error_message")
    retry_count = get("retry_count", _ABSENT)
    # A well-formed job passes these at once; anything else asks malformed_reason which check failed.
    if (
        status.__class__ is str
        and status in _STATUS_SET
        and created_at is not None
        and (retry_count is _ABSENT or isinstance(retry_count, (Decimal, int)))
        and (error_message is None or status != "failed" or isinstance(error_message, str))
    ):
        reason = None
    else:
        reason = malformed_reason(item, created_at)
        if reason is not None:
            status = None
    job_type = get("job_type")
    job_id = get("job_id")
    user_id = get("user_id")
    audio_file_id = get("audio_file_id")
    completed_at = get("completed_at")
    return Job(
        item,
        job_id if isinstance(job_id, str) else None,
        status,
        job_type if isinstance(job_type, str) and job_type else "unknown",
        user_id if isinstance(user_id, str) else None,
        audio_file_id if isinstance(audio_file_id, str) else None,
        created_at,
        parse_timestamp(completed_at) if completed_at is not None else None,
        error_message,
        classify(error_message, rules) if status == "failed" else None,
        reason,
    )
