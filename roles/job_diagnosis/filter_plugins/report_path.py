"""Where a report path given on the command line points.

    {{ 'out/diag' | job_diagnosis_from_cwd }}   -> /where/ansible-playbook/was/run/out/diag

Ansible runs a control-node module in the playbook's directory, so a relative `dest` would land beside the
playbooks. Filters run in the ansible-playbook process itself, whose working directory is the user's: a
relative path is made absolute there, as every command-line tool resolves a relative path.
"""

from __future__ import annotations

import os


def from_cwd(path: str) -> str:
    expanded = os.path.expanduser(str(path))
    return os.path.normpath(os.path.join(os.getcwd(), expanded))


class FilterModule:
    def filters(self) -> dict:
        return {"job_diagnosis_from_cwd": from_cwd}
