"""library/junit_report.py through ansible-playbook: written once, idempotent, check mode and diff honest,
bad input refused in one line with nothing written."""

from __future__ import annotations

import json
import stat
import xml.etree.ElementTree as ET
from pathlib import Path

from support.playbook import PlaybookRun, run_playbook

CASES = [
    {"name": "reachable", "classname": "checks.web1", "output": "answered in 3 ms"},
    {"name": "ffmpeg", "classname": "checks.web1", "failure": True, "reason": "not on PATH", "details": "a\nb"},
    {"name": "tls", "classname": "checks.web1", "skipped": True, "reason": "not applicable"},
]


def write_report(tmp_path: Path, cases: list[dict], *, mode: str = "0640", check: bool = False) -> PlaybookRun:
    playbook = tmp_path / "junit.yml"
    options = {"path": "{{ report_path }}", "name": "checks", "mode": mode, "cases": "{{ report_cases }}"}
    tasks = {"junit_report": options}
    play = [{"name": "Write a report", "hosts": "localhost", "gather_facts": False, "tasks": [tasks]}]
    playbook.write_text(json.dumps(play))
    extra = {"report_path": str(tmp_path / "out" / "checks.xml"), "report_cases": cases}
    return run_playbook(str(playbook), extra_vars=extra, check=check, diff=True)


def test_written_once_then_unchanged_with_check_mode_and_diff_honest(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    report = tmp_path / "out" / "checks.xml"

    predicted = write_report(tmp_path, CASES, check=True)
    assert predicted.returncode == 0, predicted.output
    assert predicted.changed() == 1 and not report.exists()
    assert "+<testsuite" in predicted.stdout  # the diff shows what would be written

    first = write_report(tmp_path, CASES)
    assert first.returncode == 0, first.output
    assert first.changed() == 1
    assert stat.S_IMODE(report.stat().st_mode) == 0o640
    suite = ET.fromstring(report.read_text())
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    assert suite.find("testcase[@name='ffmpeg']/failure").text == "a\nb"
    assert not list(report.parent.glob(".*.tmp"))
    written = report.read_text()

    again = write_report(tmp_path, CASES)
    assert again.returncode == 0 and again.changed() == 0, again.output
    again_checked = write_report(tmp_path, CASES, check=True)
    assert again_checked.returncode == 0 and again_checked.changed() == 0, again_checked.output

    # Another content, in check mode: changed is predicted and the diff shown, the file untouched.
    other = [{**CASES[1], "failure": False}]
    predicted = write_report(tmp_path, other, check=True)
    assert predicted.returncode == 0 and predicted.changed() == 1, predicted.output
    assert '-  <testcase classname="checks.web1" name="reachable">' in predicted.stdout
    assert report.read_text() == written

    # The same content with another mode: a change of the mode only.
    mode_only = write_report(tmp_path, CASES, mode="0644")
    assert mode_only.returncode == 0 and mode_only.changed() == 1, mode_only.output
    assert stat.S_IMODE(report.stat().st_mode) == 0o644 and report.read_text() == written


def test_a_case_both_failed_and_skipped_is_refused_in_one_line_and_nothing_written(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    run = write_report(tmp_path, [CASES[0], {"name": "tls", "failure": True, "skipped": True}])

    assert run.returncode == 2
    assert "cases[1] ('tls') is both failure and skipped: a case has one result." in run.stdout
    assert not (tmp_path / "out" / "checks.xml").exists()


def test_a_missing_directory_is_named(tmp_path: Path) -> None:
    run = write_report(tmp_path, CASES)

    assert run.returncode == 2
    assert f"path {tmp_path / 'out' / 'checks.xml'}: the directory {tmp_path / 'out'} does not exist." in run.stdout
