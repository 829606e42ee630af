"""Option values an argument spec cannot check: ranges, durations, moments; one line naming the option."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from ansible.module_utils.panzoto.options import OptionError, age_option, check_range, duration_option, moment_after


def test_ranges_name_the_option_and_its_bounds():
    assert check_range("segments", 4, 1, 64) == 4
    with pytest.raises(OptionError, match=r"^segments must be between 1 and 64, got 65\.$"):
        check_range("segments", 65, 1, 64)
    with pytest.raises(OptionError, match=r"^max_changes must be 1 or more, got 0\.$"):
        check_range("max_changes", 0, 1)


@pytest.mark.parametrize("value", ["99999999999999d", "1e400", "nan", "36501d", "-1s", "soon", True])
def test_durations_that_cannot_be_used_fail_on_the_option(value):
    with pytest.raises(OptionError) as error:
        duration_option("expire_after", value)
    assert str(error.value).startswith("expire_after: invalid duration") and "\n" not in str(error.value)


def test_a_long_but_sane_duration_is_taken():
    assert duration_option("older_than", "36500d") == timedelta(days=36500)


def test_a_moment_beyond_the_calendar_fails_on_the_option():
    start = datetime(9999, 12, 30, tzinfo=UTC)
    with pytest.raises(OptionError, match=r"^expire_after: .* is beyond the calendar"):
        moment_after("expire_after", start, timedelta(days=7))
    assert moment_after("expire_after", start, timedelta(hours=1)) == start + timedelta(hours=1)


@pytest.mark.parametrize("value", [30, "30", " 7 ", 0, "0", 0.5])
def test_an_age_without_its_unit_is_refused_naming_the_option(value) -> None:
    with pytest.raises(OptionError, match=rf"^older_than={str(value).strip()} has no unit: write it as "):
        age_option("older_than", value)


def test_an_age_with_its_unit_is_the_duration() -> None:
    assert age_option("older_than", "7d") == timedelta(days=7)
    assert age_option("older_than", "90m") == timedelta(minutes=90)
