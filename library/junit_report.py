#!/usr/bin/python
"""Ansible module: write a JUnit XML report, the project's one way for a playbook to do it."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: junit_report
short_description: Write test suites and their cases as a JUnit XML report
description:
  - Writes one JUnit XML file from cases given as data, so CI (GitHub Actions, GitLab CI, Jenkins, AWX) shows each
    item as a test. The diagnosis (C(roles/job_diagnosis)) and the preflight (C(playbooks/preflight.yml)) write theirs
    with it; the audit (M(processing_jobs_audit)) writes its own with the same Python code.
  - Either one C(<testsuite>) (O(name) and O(cases)) or several under one C(<testsuites>) (O(name) and O(suites)).
    The counts of tests, failures, errors and skipped cases are computed from the cases.
  - Text from anywhere (a job's error message, a server's log line) is written safely. Control characters become
    visible escapes such as C(\\x1b), and XML's special characters become entities, so the file always parses.
  - The file is replaced atomically (a temporary file beside it, then a rename), so a reader never sees half a
    report. It is written only when its content differs. O(mode), O(owner) and O(group) are applied as by
    M(ansible.builtin.copy).
  - Bad input (a case both failed and skipped, a missing directory) fails with one line naming it; nothing is written.
version_added: "1.0.0"
author: panzoto-ops maintainers (@panzoto-ops)
options:
  path:
    description:
      - The file to write. Its directory must exist.
    type: path
    required: true
  name:
    description:
      - The name of the suite (with O(cases)) or of the C(<testsuites>) element (with O(suites)).
    type: str
    required: true
  timestamp:
    description:
      - The suite's C(timestamp) attribute (ISO-8601), with O(cases). Left out when not given.
    type: str
  cases:
    description:
      - The cases of the one suite, in order. Exclusive with O(suites).
    type: list
    elements: dict
    suboptions: &case_options
      name:
        description:
          - The case's name.
        type: str
        required: true
      classname:
        description:
          - The case's class name (CI tools group cases by it).
        type: str
      failure:
        description:
          - The case failed. Exclusive with O(cases[].skipped).
        type: bool
        default: false
      skipped:
        description:
          - The case was skipped (it did not apply, or was waived). Exclusive with O(cases[].failure).
        type: bool
        default: false
      reason:
        description:
          - Why the case failed or was skipped, in one line (the C(message) attribute of its C(<failure>) or
            C(<skipped>); an option cannot be called C(message) in Ansible). Ignored for a case that passed.
        type: str
      type:
        description:
          - The failure's C(type) attribute.
        type: str
      details:
        description:
          - The failure's text (several lines allowed), such as the evidence or a traceback.
        type: str
      output:
        description:
          - The case's C(<system-out>) text.
        type: str
      time:
        description:
          - How long the case took, in seconds.
        type: float
  suites:
    description:
      - Several suites, each with its own cases, under one C(<testsuites>). Exclusive with O(cases).
    type: list
    elements: dict
    suboptions:
      name:
        description:
          - The suite's name.
        type: str
        required: true
      timestamp:
        description:
          - The suite's C(timestamp) attribute (ISO-8601).
        type: str
      cases:
        description:
          - The suite's cases, in order, with the fields of O(cases).
        type: list
        elements: dict
        default: []
        suboptions: *case_options
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
extends_documentation_fragment:
  - action_common_attributes
  - files
"""

EXAMPLES = r"""
- name: Write one suite, a case per item
  junit_report:
    path: /var/tmp/reports/checks.xml
    name: checks
    mode: "0644"
    cases:
      - name: disk space
        classname: checks.web1
        output: 41% used
      - name: ffmpeg installed
        classname: checks.web1
        failure: true
        reason: ffmpeg not found on PATH
        type: checklist
      - name: TLS certificate
        classname: checks.web1
        skipped: true
        reason: "not applicable: plain HTTP behind the proxy"

- name: Write one suite per host under one testsuites element
  junit_report:
    path: "{{ report_dir }}/preflight-junit.xml"
    name: preflight
    suites:
      - name: preflight.web1
        cases:
          - name: reachable
            classname: preflight.web1
      - name: preflight.web2
        cases:
          - name: reachable
            classname: preflight.web2
            failure: true
            reason: host unreachable
"""

RETURN = r"""
path:
  description:
    - The file written (or that would be, in check mode).
  returned: always
  type: str
  sample: /var/tmp/reports/checks.xml
counts:
  description:
    - How many cases the report holds (C(tests)), how many of them failed (C(failures)) and how many were skipped
      (C(skipped)), as the file's root element says.
  returned: always
  type: dict
  contains:
    tests:
      description:
        - How many cases the report holds.
      type: int
      sample: 3
    failures:
      description:
        - How many of them failed.
      type: int
      sample: 1
    skipped:
      description:
        - How many of them were skipped.
      type: int
      sample: 1
"""

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.panzoto.files import read_text
from ansible.module_utils.panzoto.junit import render_suite, render_suites

CASE_SPEC = dict(
    name=dict(type="str", required=True),
    classname=dict(type="str"),
    failure=dict(type="bool", default=False),
    skipped=dict(type="bool", default=False),
    reason=dict(type="str"),
    type=dict(type="str"),
    details=dict(type="str"),
    output=dict(type="str"),
    time=dict(type="float"),
)
ARGUMENT_SPEC = dict(
    path=dict(type="path", required=True),
    name=dict(type="str", required=True),
    timestamp=dict(type="str"),
    cases=dict(type="list", elements="dict", options=CASE_SPEC),
    suites=dict(
        type="list",
        elements="dict",
        options=dict(
            name=dict(type="str", required=True),
            timestamp=dict(type="str"),
            cases=dict(type="list", elements="dict", default=[], options=CASE_SPEC),
        ),
    ),
)


class ReportError(ValueError):
    """A bad case; the message is one line and names it."""


def as_case(case: dict, where: str) -> dict:
    """A case option as the writer's case (module_utils/panzoto/junit.py)."""
    if case["failure"] and case["skipped"]:
        raise ReportError(f"{where} ({case['name']!r}) is both failure and skipped: a case has one result.")
    result = "failure" if case["failure"] else "skipped" if case["skipped"] else None
    written = dict(name=case["name"], classname=case["classname"], time=case["time"], result=result)
    if result:
        written.update(message=case["reason"], type=case["type"] if result == "failure" else None)
        written.update(details=case["details"] if result == "failure" else None)
    written["output"] = case["output"]
    return written


def render(params: dict) -> tuple[str, list[dict]]:
    """The report's XML and every case written, or ReportError."""
    if params["suites"] is not None:
        suites = [
            dict(
                name=suite["name"],
                timestamp=suite["timestamp"],
                cases=[as_case(case, f"suites[{s}].cases[{c}]") for c, case in enumerate(suite["cases"])],
            )
            for s, suite in enumerate(params["suites"])
        ]
        return render_suites(params["name"], suites), [case for suite in suites for case in suite["cases"]]
    cases = [as_case(case, f"cases[{c}]") for c, case in enumerate(params["cases"])]
    suite = dict(name=params["name"], timestamp=params["timestamp"], cases=cases)
    return render_suite(suite), cases


def write_atomic(module: AnsibleModule, path: str, content: str) -> None:
    """Temp file beside `path`, fsynced, then moved over it (the module's atomic_move keeps SELinux context)."""
    handle, temp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            stream.write(content)
            stream.flush()
            os.fsync(stream.fileno())
        module.atomic_move(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)


def run_module() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        mutually_exclusive=[("cases", "suites"), ("timestamp", "suites")],
        required_one_of=[("cases", "suites")],
        add_file_common_args=True,
        supports_check_mode=True,
    )
    path = os.path.abspath(module.params["path"])
    directory = os.path.dirname(path)
    if os.path.isdir(path):
        module.fail_json(msg=f"path {module.params['path']} is a directory: name the report file inside it.")
    if not os.path.isdir(directory):
        module.fail_json(msg=f"path {module.params['path']}: the directory {directory} does not exist.")
    try:
        content, cases = render(module.params)
    except ReportError as exc:
        module.fail_json(msg=str(exc))

    before = read_text(path)
    changed = before != content
    if changed and not module.check_mode:
        try:
            write_atomic(module, path, content)
        except OSError as exc:
            module.fail_json(msg=f"cannot write {path}: {exc.strerror or exc}.")
    if os.path.exists(path):
        file_args = module.load_file_common_arguments(module.params, path=path)
        changed = module.set_fs_attributes_if_different(file_args, changed)

    result = dict(
        changed=changed,
        path=path,
        # Under one key: a top-level `skipped` would make Ansible show the task as skipped.
        counts=dict(
            tests=len(cases),
            failures=sum(case["result"] == "failure" for case in cases),
            skipped=sum(case["result"] == "skipped" for case in cases),
        ),
    )
    if module._diff and before != content:
        result["diff"] = dict(before_header=path, after_header=path, before=before or "", after=content)
    module.exit_json(**result)


def main() -> None:
    run_module()


if __name__ == "__main__":
    main()
