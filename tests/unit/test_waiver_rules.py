"""Waivers: which breach a waiver covers, until when, and how a bad file is refused."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from ansible.module_utils.panzoto.audit.waivers import WaiverError, apply_waivers, load_waivers

KNOWN = {"failed", "legacy_encryption", "pending_stuck"}
BREACH = {"name": "legacy_encryption", "value": 34, "threshold": 10, "message": "legacy_encryption: 34 > 10"}


def waivers(tmp_path: Path, text: str):
    path = tmp_path / "w.yml"
    path.write_text(text)
    return load_waivers(str(path), KNOWN)


def test_a_waiver_holds_through_its_expiry_day_and_not_after(tmp_path: Path) -> None:
    loaded = waivers(tmp_path, "- {threshold: legacy_encryption, reason: r, owner: o, expires: 2025-10-19}\n")
    assert apply_waivers([BREACH], loaded, date(2025, 10, 19)) == (
        [],
        [
            {
                **BREACH,
                "waiver": {"reason": "r", "owner": "o", "expires": "2025-10-19"},
                "message": BREACH["message"] + " (waived: r)",
            }
        ],
    )
    still, waived = apply_waivers([BREACH], loaded, date(2025, 10, 20))
    assert waived == [] and still[0]["message"] == "legacy_encryption: 34 > 10 (waiver by o expired 2025-10-19)"


def test_an_empty_file_waives_nothing(tmp_path: Path) -> None:
    assert waivers(tmp_path, "") == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- {threshold: failed, reason: r, owner: o, expires: 2025-10-19T10:00:00}\n", "is not a date"),
        ("- {threshold: failed, reason: r, owner: o, expires: 2025-10-19, until: x}\n", "unknown field 'until'"),
        ("- {threshold: failed, reason: r, owner: o, expires: 2025-10-19}\n" * 2, "entry 2: 'failed' is waived twice"),
        ("- {threshold: failed, reason: [r], owner: o, expires: 2025-10-19}\n", "reason must be text"),
        ("- failed\n", "entry 1: must be a mapping"),
    ],
)
def test_bad_waivers_are_one_line_naming_file_and_entry(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(WaiverError, match=message) as raised:
        waivers(tmp_path, text)
    assert str(raised.value).startswith(f"waivers file {tmp_path / 'w.yml'}: ") and "\n" not in str(raised.value)


def test_a_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(WaiverError, match=r"waivers file .*/nope.yml: cannot be read \(No such file or directory\)"):
        load_waivers(str(tmp_path / "nope.yml"), KNOWN)
