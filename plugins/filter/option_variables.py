"""Filter panzoto_option_problems: a playbook's command-line variables checked against its role's argument spec.

A misspelt variable (`cleanup_jobs_user_id` for `cleanup_jobs_user_ids`) is otherwise silently ignored, so the
selection it meant to narrow runs wider. Called once, before the role, by a playbook that maps a prefix
(`cleanup_jobs_`) onto its role's options (`job_cleanup_`): each problem is one line naming the variable as
the user typed it, with the close match for an unknown name, and without the role's whole spec.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

DOCUMENTATION = r"""
name: panzoto_option_problems
short_description: One-line problems of a playbook's prefixed variables (unknown names, wrong types or choices)
description:
  - Takes the host's variables (C(hostvars[inventory_hostname]), which hold the extra vars and the inventory's),
    keeps those starting with O(prefix), and checks them against the options of a role's argument spec whose names
    start with O(option_prefix) (C(job_cleanup_max_changes) is the variable C(cleanup_jobs_max_changes)).
  - Returns a list of one-line messages, empty when every variable is known and valid.
options:
  _input: {description: The host's variables., type: dict, required: true}
  prefix: {description: The playbook's variable prefix, e.g. C(cleanup_jobs_)., type: str, required: true}
  argument_specs: {description: The role's meta/argument_specs.yml as data., type: dict, required: true}
  option_prefix: {description: The role's option prefix, e.g. C(job_cleanup_)., type: str, required: true}
  entry_point: {description: The argument spec entry point., type: str, default: main}
"""

EXAMPLES = r"""
- name: Refuse misspelt or ill-typed cleanup_jobs_* variables
  ansible.builtin.assert:
    that: problems | length == 0
    fail_msg: "{{ problems | join('; ') }}; nothing was changed."
    quiet: true
  vars:
    problems: >-
      {{ hostvars[inventory_hostname] | panzoto_option_problems('cleanup_jobs_',
         lookup('ansible.builtin.file', playbook_dir ~ '/../roles/job_cleanup/meta/argument_specs.yml') | from_yaml,
         'job_cleanup_') }}
"""

RETURN = r"""
_value: {description: One line per problem (empty when there is none)., type: list, elements: str}
"""

# Keys of an argument spec option that describe it for people; the rest is what the validator checks.
_DESCRIPTIVE_KEYS = frozenset({"description", "version_added", "default", "required"})


def _checkable(option: Mapping) -> dict:
    spec = {key: value for key, value in option.items() if key not in _DESCRIPTIVE_KEYS}
    if isinstance(spec.get("options"), Mapping):
        spec["options"] = {name: _checkable(sub) for name, sub in spec["options"].items()}
    return spec


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def option_problems(
    variables: Mapping, prefix: str, argument_specs: Mapping, option_prefix: str, entry_point: str = "main"
) -> list[str]:
    try:
        options = argument_specs["argument_specs"][entry_point]["options"]
    except (KeyError, TypeError):
        raise AnsibleFilterError(f"panzoto_option_problems: no options for entry point {entry_point!r}") from None
    known = {
        prefix + name[len(option_prefix) :]: spec for name, spec in options.items() if name.startswith(option_prefix)
    }
    given = sorted(name for name in variables if str(name).startswith(prefix))
    problems = []
    for name in given:
        if name not in known:
            close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.8)
            hint = f"did you mean {close[0]}?" if close else f"the {prefix}* variables are the role's options"
            problems.append(f"{name} is not a variable of this playbook ({hint})")
    checked = {name: variables[name] for name in given if name in known}
    if checked:
        spec = {name: _checkable(known[name]) for name in checked}
        result = ArgumentSpecValidator(spec).validate(checked)
        problems.extend(_one_line(error) for error in result.error_messages)
    return problems


class FilterModule:
    def filters(self):
        return {"panzoto_option_problems": option_problems}
