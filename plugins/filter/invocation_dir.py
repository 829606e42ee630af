"""Filter panzoto_from_invocation_dir: a relative path from the command line, made absolute against where the user ran.

ansible-playbook runs modules and lookups from the playbook's directory, so `-e x=reports/job-diagnosis.json`
would name a file under playbooks/. Users mean the directory they typed the command in: the shell's PWD
(what `cd` sets), or the process's own directory when no shell set it.
"""

from __future__ import annotations

import os

DOCUMENTATION = r"""
name: panzoto_from_invocation_dir
short_description: Make a relative path absolute against the directory ansible-playbook was run from
description:
  - Absolute paths, C(~) paths and empty strings are returned unchanged (C(~) expanded).
  - A relative path is joined to the shell's C(PWD) when it names a directory, else to the current directory.
options:
  _input: {description: The path., type: str, required: true}
"""

EXAMPLES = r"""
archive_path: "{{ job_cleanup_archive_path | panzoto_from_invocation_dir }}"
"""

RETURN = r"""
_value: {description: The absolute path (or the empty string)., type: str}
"""


def invocation_dir() -> str:
    shell_dir = os.environ.get("PWD", "")
    return shell_dir if os.path.isabs(shell_dir) and os.path.isdir(shell_dir) else os.getcwd()


def from_invocation_dir(path: object) -> str:
    text = "" if path is None else str(path)
    if not text:
        return text
    text = os.path.expanduser(text)
    return text if os.path.isabs(text) else os.path.normpath(os.path.join(invocation_dir(), text))


class FilterModule:
    def filters(self):
        return {"panzoto_from_invocation_dir": from_invocation_dir}
