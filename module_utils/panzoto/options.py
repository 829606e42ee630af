"""Checks of option values that an argument spec cannot express, each failing with one line naming the option."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from ansible.module_utils.panzoto.jobs import parse_duration

BARE_NUMBER = re.compile(r"^\s*\d+(\.\d+)?\s*$")


class OptionError(ValueError):
    """A bad option or combination; the message is one line and names the option."""


def check_range(name: str, value: int, low: int, high: int | None = None) -> int:
    """`value` itself when low <= value <= high (no upper bound when high is None)."""
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"{low} or more"
        raise OptionError(f"{name} must be {bounds}, got {value}.")
    return value


def duration_option(name: str, value: object) -> timedelta:
    """A duration option parsed, or OptionError naming it (bad form, negative, or too long)."""
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise OptionError(f"{name}: {exc}.") from None


def age_option(name: str, value: object) -> timedelta:
    """An age that decides which jobs a run selects (older_than): a duration with its unit. A bare number is
    refused, since it would be read as seconds: 30 meant as days would select nearly every finished job."""
    if BARE_NUMBER.match(str(value)):
        number = str(value).strip()
        raise OptionError(
            f"{name}={number} has no unit: write it as {number}d, {number}h or {number}m "
            "(a bare number would be seconds)."
        )
    return duration_option(name, value)


def moment_after(name: str, start: datetime, duration: timedelta) -> datetime:
    """start + duration, or OptionError naming the option when that lies beyond the calendar (year 9999)."""
    try:
        return start + duration
    except OverflowError:
        raise OptionError(f"{name}: {start.isoformat()} plus {duration} is beyond the calendar (year 9999).") from None
