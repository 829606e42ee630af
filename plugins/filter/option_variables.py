"""Filters panzoto_option_problems and panzoto_unknown_variables: a playbook's variables checked before it runs.

A misspelt variable (`cleanup_jobs_user_id` for `cleanup_jobs_user_ids`, `audit_fail_on_breech`) is otherwise
silently ignored, so the selection it meant to narrow runs wider or the setting it meant to change keeps its
default. Each problem is one line naming the variable as the user typed it, with the close match for an
unknown name.

- panzoto_option_problems: for a playbook that maps a prefix (`cleanup_jobs_`) onto its role's options
  (`job_cleanup_`): unknown names, and wrong types or choices, against the role's argument spec.
- panzoto_unknown_variables: for a playbook whose settings are its own variables (`audit_*`, `retention_jobs_*`,
  `preflight_*`): unknown names, against the names the playbook itself reads (its play vars, or the list it keeps).
  `hostvars[inventory_hostname] | panzoto_unknown_variables(prefix, known, ignore=[...], where='...')`: `known` is a
  list or a mapping of names; `ignore` holds prefixes of other families sharing the prefix (`audit_schedule_`);
  names with a double underscore after the prefix (the playbook's working variables) are never settings;
  `where` names the place that lists them, for a typo with no close match.
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


def _not_a_variable(name: str, known: list[str], hint: str) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
    return f"{name} is not a variable of this playbook ({f'did you mean {close[0]}?' if close else hint})"


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
            problems.append(_not_a_variable(name, list(known), f"the {prefix}* variables are the role's options"))
    checked = {name: variables[name] for name in given if name in known}
    if checked:
        spec = {name: _checkable(known[name]) for name in checked}
        result = ArgumentSpecValidator(spec).validate(checked)
        problems.extend(_one_line(error) for error in result.error_messages)
    return problems


def unknown_variables(
    variables: Mapping, prefix: str, known: Mapping | list, ignore: list[str] | tuple[str, ...] = (), where: str = ""
) -> list[str]:
    if not isinstance(known, (Mapping, list, tuple)):
        kind = type(known).__name__
        raise AnsibleFilterError(f"panzoto_unknown_variables: known must be a list or a mapping, not {kind}")
    # A double underscore after the prefix marks the playbook's working variables (retention_jobs__selections).
    settings = sorted(
        name for name in map(str, known) if name.startswith(prefix) and not name[len(prefix) :].startswith("_")
    )
    given = sorted(
        name
        for name in map(str, variables)
        if name.startswith(prefix) and not any(name.startswith(other) for other in ignore)
    )
    hint = f"none of its {prefix}* variables is close" + (f"; they are listed in {where}" if where else "")
    return [_not_a_variable(name, settings, hint) for name in given if name not in settings]


class FilterModule:
    def filters(self):
        return {"panzoto_option_problems": option_problems, "panzoto_unknown_variables": unknown_variables}
