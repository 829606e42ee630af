"""The one JUnit writer (module_utils/panzoto/junit.py): hostile text stays text, counts come from the cases,
and a JUnit library reads back what was given."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from ansible.module_utils.panzoto.junit import render_suite, render_suites
from junitparser import Failure, JUnitXml, Skipped

# A terminal reset and colour, a bell, NUL, DEL, a C1 CSI, a CDATA end, both quotes, markup and an entity,
# a lone surrogate and a non-character: each would break the XML or reach a CI page raw if written as is.
HOSTILE = "a\x1bc\x1b[31mred\x07 \x00\x7f\x9b ]]> \"double\" 'single' <b>&amp; \ud800\uffff end"
HOSTILE_SHOWN = "a\\x1bc\\x1b[31mred\\x07 \\x00\\x7f\\x9b ]]> \"double\" 'single' <b>&amp; \\ud800\\uffff end"


def parse(xml: str) -> ET.Element:
    return ET.fromstring(xml.encode("utf-8"))


def test_hostile_text_in_every_field_parses_back_shown_not_raw() -> None:
    case = dict(
        name=HOSTILE, classname=HOSTILE, result="failure", message=HOSTILE, type=HOSTILE,
        details=f"line one\n{HOSTILE}\n\tindented", output=HOSTILE,
    )  # fmt: skip
    xml = render_suite(dict(name=HOSTILE, timestamp=HOSTILE, cases=[case]))

    assert not any((ord(char) < 32 and char not in "\t\n") or 0x7F <= ord(char) <= 0x9F for char in xml)
    assert "]]>" not in xml.split("?>", 1)[1]
    suite = parse(xml)
    (written,) = list(suite)
    for value in (suite.get("name"), suite.get("timestamp"), written.get("name"), written.get("classname")):
        assert value == HOSTILE_SHOWN
    failure = written.find("failure")
    assert (failure.get("message"), failure.get("type")) == (HOSTILE_SHOWN, HOSTILE_SHOWN)
    # Element text keeps its lines and tabs; attributes are one line.
    assert failure.text == f"line one\n{HOSTILE_SHOWN}\n\tindented"
    assert written.find("system-out").text == HOSTILE_SHOWN


def test_a_newline_in_an_attribute_is_shown_on_its_one_line() -> None:
    xml = render_suite(dict(name="s", cases=[dict(name="c", result="skipped", message="one\ntwo\r\tthree")]))
    assert parse(xml).find("testcase/skipped").get("message") == "one\\x0atwo\\x0d\\x09three"


def test_counts_come_from_the_cases_and_a_junit_library_reads_them() -> None:
    cases = [
        dict(name="passed", classname="k", time=0.25, output="fine"),
        dict(name="failed", classname="k", result="failure", message="broke", details="why"),
        dict(name="errored", classname="k", result="error", message="could not run"),
        dict(name="waived", classname="k", result="skipped", message="waived"),
    ]
    xml = render_suite(dict(name="suite", cases=cases, time=1.5, timestamp="2026-01-02T03:04:05"))

    root = parse(xml)
    assert {key: root.get(key) for key in ("tests", "failures", "errors", "skipped", "time", "timestamp")} == {
        "tests": "4", "failures": "1", "errors": "1", "skipped": "1",
        "time": "1.500", "timestamp": "2026-01-02T03:04:05",
    }  # fmt: skip
    assert root.find("testcase").get("time") == "0.250"
    assert root.find("testcase").find("failure") is None  # a passed case has no result element


def test_several_suites_under_one_root_with_the_totals(tmp_path) -> None:
    suites = [
        dict(name="preflight.localhost", cases=[dict(name="a"), dict(name="b", result="failure", message="m")]),
        dict(name="preflight.web1", cases=[dict(name="c", result="skipped", message="n/a")]),
        dict(name="preflight.empty", cases=[]),
    ]
    path = tmp_path / "report.xml"
    path.write_text(render_suites("preflight", suites), encoding="utf-8")

    root = parse(path.read_text(encoding="utf-8"))
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == ("3", "1", "1")
    read = {suite.name: suite for suite in JUnitXml.fromfile(str(path))}
    assert list(read) == ["preflight.localhost", "preflight.web1", "preflight.empty"]
    results = {case.name: [type(result) for result in case.result] for suite in read.values() for case in suite}
    assert results == {"a": [], "b": [Failure], "c": [Skipped]}


def test_an_unknown_result_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"^unknown JUnit result passed: use one of failure, error, skipped\.$"):
        render_suite(dict(name="s", cases=[dict(name="c", result="passed")]))
