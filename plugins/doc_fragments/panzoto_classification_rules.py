"""Documentation of the classification_rules option (its sub-spec: module_utils/panzoto/classification.py)."""


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  classification_rules:
    description:
      - Rules added to or overriding the default error categories (the same for every module that classifies jobs).
      - Rules are matched in order, the first whose O(classification_rules[].match) occurs in the error message wins;
        C(other) catches the rest.
    type: list
    elements: dict
    default: []
    suboptions:
      category:
        description:
          - The category's name (lower_snake_case). Naming a default category overrides it in place;
            a new category is matched before the defaults.
        type: str
        required: true
      match:
        description:
          - Text that occurs in the error message (case-insensitive), or a regular expression with
            O(classification_rules[].regex=true).
          - Inherited from the default rule of the same category when omitted; required for a new category.
          - Not allowed for C(other), which matches everything else.
        type: str
      regex:
        description: Whether O(classification_rules[].match) is a regular expression.
        type: bool
      solution:
        description: What to do about such jobs, shown in reports.
        type: str
      deletable:
        description: Whether cleanup may delete such jobs when C(deletable) is selected.
        type: bool
      next_step:
        description:
          - What comes next for such jobs, shown as a command in the audit's reports; inherited when omitted
            (C(review) for a new category).
        type: str
        choices: [cleanup, diagnose, repair_ffmpeg, requeue, review]
      remove:
        description: Drop this default category; its jobs then fall to the next rule (or C(other)).
        type: bool
"""
