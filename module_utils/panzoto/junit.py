"""JUnit XML, written in one place: test suites and their cases in, one XML document out.

Every report the project hands to CI as JUnit (the audit's thresholds, the diagnosis's jobs, the preflight's
checklist items) is made here, by the audit's reports.py in Python and by library/junit_report.py for the
playbooks. What a case says may come from a job's error message or a server's log line, so the text is made
safe twice over: control characters (C0, DEL, C1: a raw ESC would reach a CI page as a terminal escape, and
most of them are not even allowed in XML 1.0) and the characters XML 1.0 forbids are written as visible
`\\xNN` / `\\uNNNN` escapes, and XML's specials (`&`, `<`, `>`, quotes) as entities, so `]]>` or a quote in a
message never ends anything early.

A case is a dict: name (required), classname, time (seconds), result (None when it passed, else "failure",
"error" or "skipped"), message and type (the result's attributes), details (the result's text) and output
(`<system-out>`). A suite is a dict: name, cases, and optionally timestamp and time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

RESULTS = ("failure", "error", "skipped")
DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'

# C0 and C1 control characters and DEL: never written raw. Element text keeps tab and newline (a traceback
# stays readable); an attribute is one line, so there they are escaped too.
_ATTRIBUTE_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_TEXT_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Code points XML 1.0 forbids outside the control range: lone surrogates and the two non-characters.
_NOT_XML = re.compile("[\ud800-\udfff\ufffe\uffff]")
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;"}
_SPECIAL = re.compile("[&<>\"']")


def visible(value: object, *, keep_lines: bool = False) -> str:
    """`value` as text with control and non-XML characters written as `\\xNN` or `\\uNNNN` escapes."""
    control = _TEXT_CONTROL if keep_lines else _ATTRIBUTE_CONTROL
    text = control.sub(lambda match: f"\\x{ord(match.group()):02x}", str(value))
    return _NOT_XML.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def _escaped(text: str) -> str:
    return _SPECIAL.sub(lambda match: _ENTITIES[match.group()], text)


def attribute(value: object) -> str:
    """An attribute value, quoted: one line, every special character an entity."""
    return '"' + _escaped(visible(value)) + '"'


def text(value: object) -> str:
    """Element text: lines kept, every special character an entity (so `]]>` is `]]&gt;`)."""
    return _escaped(visible(value, keep_lines=True))


def _attributes(pairs: Iterable[tuple[str, object]]) -> str:
    return "".join(f" {name}={attribute(value)}" for name, value in pairs if value is not None)


def _seconds(value: float | None) -> str | None:
    return None if value is None else f"{float(value):.3f}"


def counts(cases: list[dict]) -> dict[str, int]:
    """tests, failures, errors and skipped of a list of cases."""
    results = [case.get("result") for case in cases]
    unknown = sorted({str(result) for result in results if result is not None and result not in RESULTS})
    if unknown:
        raise ValueError(f"unknown JUnit result {', '.join(unknown)}: use one of {', '.join(RESULTS)}.")
    return {
        "tests": len(cases),
        "failures": results.count("failure"),
        "errors": results.count("error"),
        "skipped": results.count("skipped"),
    }


def _case(case: dict, indent: str) -> str:
    head = f"{indent}<testcase" + _attributes(
        (("classname", case.get("classname")), ("name", case["name"]), ("time", _seconds(case.get("time"))))
    )
    body = []
    result = case.get("result")
    if result is not None:
        element = f"<{result}" + _attributes((("message", case.get("message")), ("type", case.get("type"))))
        details = case.get("details")
        body.append(f"{element}>{text(details)}</{result}>" if details is not None else f"{element}/>")
    if case.get("output") is not None:
        body.append(f"<system-out>{text(case['output'])}</system-out>")
    if not body:
        return head + "/>"
    inner = "".join(f"\n{indent}  {line}" for line in body)
    return f"{head}>{inner}\n{indent}</testcase>"


def _suite(suite: dict, indent: str) -> str:
    cases = list(suite.get("cases") or [])
    tally = counts(cases)
    head = f"{indent}<testsuite" + _attributes(
        (
            ("name", suite["name"]),
            *tally.items(),
            ("time", _seconds(suite.get("time"))),
            ("timestamp", suite.get("timestamp")),
        )
    )
    if not cases:
        return head + "/>"
    inner = "\n".join(_case(case, indent + "  ") for case in cases)
    return f"{head}>\n{inner}\n{indent}</testsuite>"


def render_suite(suite: dict) -> str:
    """One `<testsuite>` as a whole XML document."""
    return DECLARATION + _suite(suite, "") + "\n"


def render_suites(name: str, suites: list[dict]) -> str:
    """Several suites under one `<testsuites>` (named `name`, with the totals) as a whole XML document."""
    total = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite in suites:
        for key, value in counts(list(suite.get("cases") or [])).items():
            total[key] += value
    head = "<testsuites" + _attributes((("name", name), *total.items()))
    if not suites:
        return DECLARATION + head + "/>\n"
    inner = "\n".join(_suite(suite, "  ") for suite in suites)
    return f"{DECLARATION}{head}>\n{inner}\n</testsuites>\n"
