#!/usr/bin/python
"""Ansible module: write a run's report files (text, JSON, HTML) into one directory, in one module run."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: report_files
short_description: Write a run's report files into one directory in one go
description:
  - Writes each of O(files) into O(directory), creating the directory when it is missing. The cleanup
    (C(roles/job_cleanup)), the diagnosis (C(roles/job_diagnosis)) and the preflight (C(playbooks/preflight.yml))
    write their text, JSON and HTML reports with it; JUnit reports are written by M(junit_report).
  - One module run for the whole report, where M(ansible.builtin.file) and M(ansible.builtin.copy) take one for the
    directory and two for each file (a C(stat), then the copy), five for a cleanup's report and its dated copy.
  - Each file is replaced atomically (a temporary file beside it, then a rename), so a reader never sees half a
    report, and only when its content differs. O(mode), O(owner) and O(group) apply to every file, as
    M(ansible.builtin.copy) applies them; a file is never readable by others while it is written.
  - O(directory_mode) is applied to the directory, a new one or one that exists; symbolic modes such as C(u+rwx)
    make it usable by its owner without widening what others may do.
  - Bad input (a file name with a directory part, the same name twice, a directory that is a file) fails with one
    line naming it; nothing is written.
version_added: "1.0.0"
author: panzoto-ops maintainers (@panzoto-ops)
options:
  directory:
    description:
      - The directory the files are written to; created with its parents when missing.
    type: path
    required: true
  directory_mode:
    description:
      - The directory's mode, octal (C("0755")) or symbolic (C(u+rwx)). Left as it is when not given (a new directory
        then gets the default permissions of the umask).
    type: raw
  files:
    description:
      - The files to write, in order.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description:
          - The file's name in O(directory), without any directory part.
        type: str
        required: true
      content:
        description:
          - The file's whole content. Never shown in the task's output, not even as its invocation with C(-vvv), as
            M(ansible.builtin.copy) hides its C(content).
        type: str
        required: true
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
extends_documentation_fragment:
  - action_common_attributes
  - files
"""

EXAMPLES = r"""
- name: Write the report as JSON, the latest and its dated copy, readable by the owner only
  report_files:
    directory: "{{ report_path | dirname }}"
    directory_mode: u+rwx
    mode: "0600"
    files:
      - name: "{{ report_path | basename }}"
        content: "{{ report | to_nice_json }}"
      - name: "cleanup-report.{{ run_id }}.json"
        content: "{{ report | to_nice_json }}"
  # The report is the run's output: written in check mode too.
  check_mode: false

- name: Write the diagnosis as text and HTML
  report_files:
    directory: reports
    directory_mode: "0755"
    mode: "0644"
    files:
      - name: job-diagnosis.txt
        content: "{{ diagnosis_text }}"
      - name: job-diagnosis.html
        content: "{{ lookup('ansible.builtin.template', 'report.html.j2') }}"
"""

RETURN = r"""
paths:
  description:
    - The files written (or that would be, in check mode), in the order of O(files).
  returned: always
  type: list
  elements: str
  sample: [/var/tmp/reports/cleanup-report.json, /var/tmp/reports/cleanup-report.20251019T180000Z-1a2b.json]
directory_changed:
  description:
    - Whether O(directory) was created or its mode changed (or would be, in check mode).
  returned: always
  type: bool
  sample: false
written:
  description:
    - The files whose content changed (or would change, in check mode).
  returned: always
  type: list
  elements: str
  sample: [/var/tmp/reports/cleanup-report.20251019T180000Z-1a2b.json]
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.panzoto.files import read_text, write_atomic

ARGUMENT_SPEC = dict(
    directory=dict(type="path", required=True),
    directory_mode=dict(type="raw"),
    files=dict(
        type="list",
        elements="dict",
        required=True,
        options=dict(
            name=dict(type="str", required=True),
            # As ansible.builtin.copy's content: never echoed back in the task's invocation (-vvv).
            content=dict(type="str", required=True, no_log=True),
        ),
    ),
)


def problem(directory: str, files: list[dict]) -> str | None:
    """What makes the request impossible, in one line naming it; None when it can be written."""
    if os.path.exists(directory) and not os.path.isdir(directory):
        return f"directory {directory} is a file: name the directory the reports go to."
    seen = set()
    for index, file in enumerate(files):
        name = file["name"]
        if not name or os.path.basename(name) != name or name in (".", ".."):
            return (
                f"files[{index}].name {name!r} is not a file name: give the name alone, and the directory in directory."
            )
        if name in seen:
            return f"files[{index}].name {name!r} is given twice: each file is written once."
        if os.path.isdir(os.path.join(directory, name)):
            return f"files[{index}].name {name!r} is a directory in {directory}."
        seen.add(name)
    return None


def run_module() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, add_file_common_args=True, supports_check_mode=True)
    directory = os.path.abspath(module.params["directory"])
    files = module.params["files"]
    refused = problem(directory, files)
    if refused:
        module.fail_json(msg=refused)

    directory_changed = False
    if not os.path.isdir(directory):
        directory_changed = True
        if not module.check_mode:
            try:
                os.makedirs(directory)
            except OSError as exc:
                module.fail_json(msg=f"cannot create the directory {directory}: {exc.strerror or exc}.")
    if module.params["directory_mode"] is not None and os.path.isdir(directory):
        directory_changed = module.set_mode_if_different(directory, module.params["directory_mode"], directory_changed)

    changed = directory_changed
    paths, written = [], []
    for file in files:
        path = os.path.join(directory, file["name"])
        paths.append(path)
        if read_text(path) != file["content"]:
            written.append(path)
            if not module.check_mode:
                try:
                    # Owner-only until the mode below is applied: a private report is never readable by others.
                    write_atomic(path, file["content"], 0o600)
                except OSError as exc:
                    module.fail_json(msg=f"cannot write {path}: {exc.strerror or exc}.")
        if os.path.exists(path):
            file_args = module.load_file_common_arguments(module.params, path=path)
            changed = module.set_fs_attributes_if_different(file_args, changed)
    module.exit_json(
        changed=changed or bool(written), directory_changed=directory_changed, paths=paths, written=written
    )


def main() -> None:
    run_module()


if __name__ == "__main__":
    main()
